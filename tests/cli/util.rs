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
