//! `TestEnv`: a temporary working folder, a cleared environment, and the
//! `skim` binary.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use tempfile::TempDir;

pub struct TestEnv {
    pub dir: TempDir,
    vars: BTreeMap<String, String>,
}

/// What a finished `skim` run left.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|err| panic!("stdout is not one JSON document ({err}): {self:?}"))
    }

    /// Asserts the exit code, showing the whole run when it differs.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "unexpected exit code: {self:#?}");
        self
    }
}

impl TestEnv {
    pub fn new() -> TestEnv {
        TestEnv {
            dir: tempfile::tempdir().expect("temp dir"),
            vars: BTreeMap::new(),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Sets an environment variable for every later run.
    pub fn set(&mut self, key: &str, value: &str) {
        self.vars.insert(key.to_owned(), value.to_owned());
    }

    /// Removes a variable set with [`TestEnv::set`].
    pub fn unset(&mut self, key: &str) {
        self.vars.remove(key);
    }

    /// Writes `.env` in the working folder, mode 0600, from `lines`.
    pub fn write_env_file(&self, lines: &[String]) {
        let path = self.path(".env");
        fs::write(&path, lines.join("\n") + "\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    }

    /// The `skim` command with `args`, in the working folder and this
    /// environment, for tests that start it themselves.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_skim"));
        command
            .args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .envs(&self.vars);
        command
    }

    /// Runs `skim` with `args` in the working folder.
    pub fn skim(&self, args: &[&str]) -> Run {
        let output = self.command(args).output().expect("skim runs");
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// `skim keys-gen --dh-group ffdhe2048` into `./oauth_keys`.
    pub fn keys_gen(&self) -> PathBuf {
        self.skim(&["keys-gen", "--dh-group", "ffdhe2048"])
            .expect_code(0);
        self.path("oauth_keys")
    }
}

/// A keys folder from one `skim keys-gen`, for tests that need working keys
/// but not their own (key generation is the slow part of a setup). It lives
/// in the target's temporary folder and is made once; tests that change
/// keys copy it with [`copy_keys`].
pub fn shared_keys() -> PathBuf {
    static KEYS: OnceLock<PathBuf> = OnceLock::new();
    KEYS.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("skim-cli-keys");
        if !dir.join("private_encryption.pem").exists() {
            let env = TestEnv::new();
            let made = env.keys_gen();
            // Another test process may be doing the same; the rename is
            // atomic, and a lost race leaves the winner's keys in place.
            let staged = dir.with_extension(format!("{}", std::process::id()));
            let _ = fs::remove_dir_all(&staged);
            fs::rename(&made, &staged)
                .or_else(|_| copy_dir(&made, &staged))
                .expect("stage keys");
            if fs::rename(&staged, &dir).is_err() {
                let _ = fs::remove_dir_all(&staged);
            }
        }
        dir
    })
    .clone()
}

/// Copies the shared keys into `dest`, keeping each file's mode.
pub fn copy_keys(dest: &Path) {
    copy_dir(&shared_keys(), dest).expect("copy keys");
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    fs::create_dir_all(to)?;
    fs::set_permissions(to, fs::Permissions::from_mode(0o700))?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        fs::copy(entry.path(), &target)?;
        fs::set_permissions(&target, entry.metadata()?.permissions())?;
    }
    Ok(())
}

pub fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A working folder with keys from `skim keys-gen`, a simulator that knows
/// them, and a 0600 `.env` pointing skim at it.
pub struct SimEnv {
    pub env: TestEnv,
    pub sim: skim_sim::Simulator,
    pub setup_secret_hex: String,
    pub access_token_secret: String,
}

impl SimEnv {
    pub fn start() -> SimEnv {
        SimEnv::start_with(|_| {})
    }

    /// Like [`SimEnv::start`], letting `tune` change the simulator's config.
    pub fn start_with(tune: impl FnOnce(&mut skim_sim::Config)) -> SimEnv {
        let env = TestEnv::new();
        env.keys_gen();
        SimEnv::start_in(env, tune)
    }

    /// Like [`SimEnv::start_with`], with a copy of the [`shared_keys`]:
    /// quicker, for tests that do not compare two environments' keys or
    /// that start many simulators at once.
    pub fn start_shared(tune: impl FnOnce(&mut skim_sim::Config)) -> SimEnv {
        let env = TestEnv::new();
        copy_keys(&env.path("oauth_keys"));
        SimEnv::start_in(env, tune)
    }

    /// Starts a simulator for the keys in `env`'s `oauth_keys`.
    fn start_in(env: TestEnv, tune: impl FnOnce(&mut skim_sim::Config)) -> SimEnv {
        let keys = env.path("oauth_keys");
        let mut setup = skim_sim::setup::Setup::from_keys_dir(&keys).expect("simulator setup");
        tune(&mut setup.config);
        let secret_hex: String = setup
            .config
            .access_token_secret
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let sim = skim_sim::Simulator::start(setup.config.clone()).expect("simulator starts");
        let mut lines: Vec<String> = setup
            .env_pairs(&sim.base_url())
            .into_iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        lines.push("SKIM_DB=data/skim.db".to_owned());
        env.write_env_file(&lines);
        SimEnv {
            env,
            sim,
            setup_secret_hex: secret_hex,
            access_token_secret: setup.access_token_secret.clone(),
        }
    }

    pub fn skim(&self, args: &[&str]) -> Run {
        self.env.skim(args)
    }

    /// Every secret this environment gives skim or skim derives, as far as
    /// the test can know them: see [`Secrets::for_sim_env`].
    pub fn secrets(&self) -> Secrets {
        Secrets::for_sim_env(self)
    }

    /// Asserts no secret skim holds appears in `run`'s output: the access
    /// token secret, its decrypted form, private key material, the live
    /// session token (once cached) and the webhook token.
    pub fn assert_no_secrets(&self, run: &Run) {
        let leaks = self.secrets().find_in_run("run", run);
        assert!(leaks.is_empty(), "{}\n{run:?}", leaks.join("\n"));
    }
}

/// Secret values a test knows skim holds, to search outputs and files for.
/// Each is kept with a name for the report, never printed itself.
#[derive(Default)]
pub struct Secrets {
    needles: Vec<(String, String)>,
}

impl Secrets {
    /// Adds `value` under `name`; values shorter than 8 characters would
    /// match by chance and are refused.
    pub fn add(&mut self, name: &str, value: &str) {
        assert!(value.len() >= 8, "{name} is too short to search for");
        if !self.needles.iter().any(|(_, v)| v == value) {
            self.needles.push((name.to_owned(), value.to_owned()));
        }
    }

    /// Adds raw secret bytes in the forms skim could print them: hex and
    /// base64.
    pub fn add_bytes(&mut self, name: &str, bytes: &[u8]) {
        use base64::Engine;
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        self.add(&format!("{name} (hex)"), &hex);
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        self.add(&format!("{name} (base64)"), b64.trim_end_matches('='));
    }

    /// Adds the body of every private key PEM in `dir`, line by line, so a
    /// partial dump is caught too, and the PEM armour itself.
    pub fn add_private_keys(&mut self, dir: &Path) {
        for name in ["private_signature.pem", "private_encryption.pem"] {
            let Ok(pem) = fs::read_to_string(dir.join(name)) else {
                continue;
            };
            for (n, line) in pem.lines().filter(|l| !l.starts_with("-----")).enumerate() {
                if line.len() >= 16 {
                    self.add(&format!("{name} line {}", n + 1), line);
                }
            }
        }
        self.add("PEM armour of a private key", "PRIVATE KEY-----");
    }

    /// Adds the live session token cached in `state_dir`, if there is one:
    /// the simulator offers no hook for it, and skim's 0600 cache holds the
    /// token it actually used.
    pub fn add_cached_token(&mut self, state_dir: &Path) {
        use base64::Engine;
        let Ok(text) = fs::read_to_string(state_dir.join("ibkr_session.json")) else {
            return;
        };
        let cached: serde_json::Value = serde_json::from_str(&text).expect("cache is JSON");
        let token = cached["token"].as_str().expect("cache holds a token");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(token)
            .expect("cached token is base64");
        self.add_bytes("live session token", &bytes);
    }

    /// The secrets of a [`SimEnv`]: the access token secret as configured
    /// and decrypted, the private keys, the webhook token, and the live
    /// session token once skim has cached one.
    pub fn for_sim_env(s: &SimEnv) -> Secrets {
        let mut secrets = Secrets::default();
        secrets.add("access token secret", &s.access_token_secret);
        let decrypted: Vec<u8> = (0..s.setup_secret_hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s.setup_secret_hex[i..i + 2], 16).expect("hex"))
            .collect();
        secrets.add_bytes("decrypted access token secret", &decrypted);
        secrets.add_private_keys(&s.env.path("oauth_keys"));
        let url = s.sim.discord_webhook_url();
        let token = url.rsplit('/').next().expect("webhook URL has a token");
        secrets.add("webhook token", token);
        secrets.add_cached_token(&s.env.path("data"));
        secrets
    }

    /// Names each secret found in `text`, which came from `place`.
    pub fn find(&self, place: &str, text: &str) -> Vec<String> {
        self.needles
            .iter()
            .filter(|(_, value)| text.contains(value.as_str()))
            .map(|(name, _)| format!("{name} found in {place}"))
            .collect()
    }

    /// [`Secrets::find`] over a run's stdout and stderr.
    pub fn find_in_run(&self, label: &str, run: &Run) -> Vec<String> {
        let mut found = self.find(&format!("stdout of {label}"), &run.stdout);
        found.extend(self.find(&format!("stderr of {label}"), &run.stderr));
        found
    }

    /// [`Secrets::find`] over the bytes of every file under `dir` except
    /// those in `spared` (e.g. the 0600 token cache, the keys themselves);
    /// SQLite's `-wal` and `-shm` files included.
    pub fn find_in_files(&self, dir: &Path, spared: &[PathBuf]) -> Vec<String> {
        let mut found = Vec::new();
        let Ok(entries) = fs::read_dir(dir) else {
            return found;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if spared.contains(&path) {
                continue;
            }
            if path.is_dir() {
                found.extend(self.find_in_files(&path, spared));
            } else if let Ok(bytes) = fs::read(&path) {
                let text = String::from_utf8_lossy(&bytes);
                found.extend(self.find(&path.display().to_string(), &text));
            }
        }
        found
    }
}
