//! `TestEnv`: a temporary working folder, a cleared environment, and the
//! `skim` binary.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

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

    /// Writes `.env` in the working folder, mode 0600, from `lines`.
    pub fn write_env_file(&self, lines: &[String]) {
        let path = self.path(".env");
        fs::write(&path, lines.join("\n") + "\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    }

    /// Runs `skim` with `args` in the working folder.
    pub fn skim(&self, args: &[&str]) -> Run {
        let output = Command::new(env!("CARGO_BIN_EXE_skim"))
            .args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .envs(&self.vars)
            .output()
            .expect("skim runs");
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
        let keys = env.keys_gen();
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

    /// Asserts no secret skim holds appears in `run`'s output: the access
    /// token secret, its decrypted form, private key material.
    pub fn assert_no_secrets(&self, run: &Run) {
        let all = format!("{}{}", run.stdout, run.stderr);
        assert!(
            !all.contains(&self.access_token_secret),
            "access token secret leaked: {run:?}"
        );
        assert!(
            !all.contains(&self.setup_secret_hex),
            "decrypted secret leaked: {run:?}"
        );
        assert!(!all.contains("PRIVATE KEY"), "key material leaked: {run:?}");
        let cache = self.env.path("data/ibkr_session.json");
        if let Ok(text) = std::fs::read_to_string(cache) {
            let cached: serde_json::Value = serde_json::from_str(&text).unwrap();
            let token = cached["token"].as_str().unwrap();
            assert!(!all.contains(token), "live session token leaked: {run:?}");
        }
    }
}
