//! Bad input through the binary: every setting malformed, bad flags, broken
//! or misplaced key files, unusable databases. Each must end in one clear
//! `skim: error:` line naming what is wrong, the contract's exit status,
//! and never a panic.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use skim_asx::config::SETTINGS;

use crate::util::{Run, SimEnv, TestEnv};

/// Every command a user or a schedule runs; settings are checked before any
/// of them does work, so each must refuse a malformed one the same way.
const COMMANDS: &[&[&str]] = &[
    &["keys-gen"],
    &["auth-check"],
    &["scan"],
    &["trade", "enter"],
    &["trade", "manage"],
    &["trade", "halt"],
    &["trade", "resume"],
    &["positions"],
    &["notify", "--flush"],
];

/// A 2048-bit hex number that is even, so not a prime.
fn even_2048_bits() -> String {
    let mut hex = "f".repeat(511);
    hex.push('e');
    hex
}

/// (setting, malformed value). Paths (`OAUTH_KEYS_DIR`, `SKIM_DB`) take any
/// text; what they name is checked by the key and database tests below.
fn malformed_settings() -> Vec<(&'static str, String)> {
    let fixed: &[(&str, &str)] = &[
        ("OAUTH_CONSUMER_KEY", " ABCDEFGHI"),
        ("OAUTH_CONSUMER_KEY", "\"ABCDEFGHI\""),
        ("OAUTH_CONSUMER_KEY", "ABCDÉFGHI"),
        ("OAUTH_ACCESS_TOKEN", "0123 4567"),
        ("OAUTH_ACCESS_TOKEN", "'0123456789'"),
        ("OAUTH_ACCESS_TOKEN_SECRET", "abc$defg"),
        ("OAUTH_ACCESS_TOKEN_SECRET", "abcde"),
        ("OAUTH_ACCESS_TOKEN_SECRET", "not base64!"),
        ("OAUTH_DH_PRIME", "xyz"),
        ("OAUTH_DH_PRIME", "0xffffffffffffffff"),
        ("OAUTH_DH_PRIME", "fffffffb"),
        ("OAUTH_REALM", "limited poa"),
        ("IBKR_BASE_URL", "not a url"),
        ("IBKR_BASE_URL", "http://api.ibkr.com/v1/api"),
        ("IBKR_BASE_URL", "ftp://api.ibkr.com/v1/api"),
        ("ASX_ANNOUNCEMENTS_URL", "www.asx.com.au"),
        ("ASX_ANNOUNCEMENTS_URL", "http://www.asx.com.au/x"),
        ("DISCORD_WEBHOOK_URL", "https://example.com/hook"),
        ("DISCORD_WEBHOOK_URL", "https://discord.com/channels/1/2"),
        (
            "DISCORD_WEBHOOK_URL",
            "http://discord.com/api/webhooks/1/T0KEN",
        ),
        ("DISCORD_WEBHOOK_URL", "discord"),
        ("SKIM_NOW", "yesterday"),
        ("SKIM_NOW", "2026-03-02T10:15:00"),
        ("SKIM_NOW", "2026-03-02 10:15"),
        ("SKIM_ALLOW_LIVE", "maybe"),
        ("SKIM_ALLOW_LIVE", "on"),
        ("IBKR_SIGN_QUERY", "2"),
        ("SKIM_HTTP_TIMEOUT", "-1"),
        ("SKIM_HTTP_TIMEOUT", "0"),
        ("SKIM_HTTP_TIMEOUT", "NaN"),
        ("SKIM_HTTP_TIMEOUT", "inf"),
        ("SKIM_HTTP_TIMEOUT", "601"),
        ("SKIM_HTTP_TIMEOUT", "30s"),
        ("SKIM_KEY_ROTATION_DAYS", "0"),
        ("SKIM_KEY_ROTATION_DAYS", "six months"),
        ("SKIM_KEY_ROTATION_DAYS", "-5"),
    ];
    let mut cases: Vec<(&str, String)> = fixed.iter().map(|(k, v)| (*k, v.to_string())).collect();
    cases.push(("OAUTH_DH_PRIME", even_2048_bits()));
    cases
}

/// Asserts `run` exited `code` with exactly one error line that contains
/// every one of `names`, and no panic. Stdout is left to the caller:
/// `auth-check` reports its steps there even when one fails.
fn assert_one_error(run: &Run, code: i32, names: &[&str], case: &str) {
    assert_eq!(run.code, code, "{case}: {run:#?}");
    assert!(!run.stderr.contains("panicked"), "{case}: {run:#?}");
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    let errors: Vec<&&str> = lines.iter().filter(|l| l.contains("error:")).collect();
    assert_eq!(errors.len(), 1, "{case}: one error line expected: {run:#?}");
    for name in names {
        assert!(
            errors[0].contains(name),
            "{case}: the error should name {name}: {run:#?}"
        );
    }
}

/// Like [`assert_one_error`] for skim's own errors: the only other lines
/// allowed are hints.
fn assert_skim_error(run: &Run, code: i32, names: &[&str], case: &str) {
    assert_one_error(run, code, names, case);
    for line in run.stderr.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            line.starts_with("skim: error: ") || line.starts_with("hint: "),
            "{case}: unexpected stderr line {line:?}: {run:#?}"
        );
    }
}

#[test]
fn every_malformed_setting_exits_2_naming_it_in_every_command() {
    let cases = malformed_settings();
    let covered: Vec<&str> = cases.iter().map(|(name, _)| *name).collect();
    for name in SETTINGS {
        assert!(
            covered.contains(name) || ["OAUTH_KEYS_DIR", "SKIM_DB"].contains(name),
            "{name} has no malformed case"
        );
    }
    let mut runs = 0;
    for (name, value) in &cases {
        for command in COMMANDS {
            let mut env = TestEnv::new();
            env.set(name, value);
            let run = env.skim(command);
            let case = format!("{name}={value:?} skim {}", command.join(" "));
            assert_skim_error(&run, 2, &[name], &case);
            assert!(run.stdout.is_empty(), "{case}: {run:#?}");
            if *name == "DISCORD_WEBHOOK_URL" {
                assert!(!run.stderr.contains("T0KEN"), "{case}: token echoed");
            }
            runs += 1;
        }
        // The same value from .env, where dotenvy's quoting allows it.
        if value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ":/._-+".contains(c))
        {
            let env = TestEnv::new();
            env.write_env_file(&[format!("{name}={value}")]);
            let run = env.skim(&["trade", "resume"]);
            assert_skim_error(&run, 2, &[name], &format!("{name}={value:?} in .env"));
            assert!(
                !env.path("data").exists(),
                "nothing is written on a bad setting"
            );
            runs += 1;
        }
    }
    eprintln!(
        "{} malformed values of {} settings: {runs} runs",
        cases.len(),
        SETTINGS.len()
    );
}

/// Runs `skim args` in `dir` with only `name=value` set (besides HOME),
/// for values [`TestEnv`] cannot hold.
fn run_with(dir: &Path, args: &[&str], name: &str, value: &OsStr) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_skim"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("HOME", dir)
        .env(name, value)
        .output()
        .expect("skim runs");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[test]
fn a_setting_that_is_not_utf8_is_named_not_skipped() {
    let env = TestEnv::new();
    for name in SETTINGS {
        let value = OsStr::from_bytes(b"abc\xff\xfe");
        let run = run_with(env.dir.path(), &["trade", "resume"], name, value);
        assert_skim_error(&run, 2, &[name, "UTF-8"], name);
    }
}

#[test]
fn malformed_flags_exit_2_naming_the_flag() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["trade", "enter", "--position-value=-5"],
            "--position-value",
        ),
        (
            &["trade", "enter", "--position-value", "NaN"],
            "--position-value",
        ),
        (
            &["trade", "enter", "--position-value", "inf"],
            "--position-value",
        ),
        (
            &["trade", "enter", "--position-value", "lots"],
            "--position-value",
        ),
        (&["trade", "enter", "--max-risk", "0"], "--max-risk"),
        (&["trade", "enter", "--max-chase=-1"], "--max-chase"),
        (&["trade", "enter", "--limit-cap", "0"], "--limit-cap"),
        (&["trade", "enter", "--or-minutes", "0"], "--or-minutes"),
        (&["trade", "enter", "--or-minutes", "ten"], "--or-minutes"),
        (
            &["trade", "enter", "--max-positions", "many"],
            "--max-positions",
        ),
        (&["trade", "manage", "--cutoff", "25:00"], "--cutoff"),
        (&["trade", "manage", "--cutoff", "noon"], "--cutoff"),
        (&["scan", "--min-gap", "NaN"], "--min-gap"),
        (&["scan", "--min-gap=-1"], "--min-gap"),
        (&["scan", "--min-price=-0.5"], "--min-price"),
        (&["scan", "--min-volume=-1"], "--min-volume"),
        (&["notify", "--color", "mauve", "hello"], "--color"),
        (&["notify", "--field", "novalue", "hello"], "--field"),
        (&["keys-gen", "--dh-group", "ffdhe1"], "--dh-group"),
    ];
    for (args, flag) in cases {
        let env = TestEnv::new();
        let run = env.skim(args);
        assert_one_error(&run, 2, &[flag], &args.join(" "));
        assert!(run.stdout.is_empty(), "{args:?}: {run:#?}");
    }
    eprintln!("{} malformed flags", cases.len());
}

/// A simulator-backed setup with working keys, `auth-check` proven first so
/// that each key case below is the only thing wrong.
fn keyed_env() -> SimEnv {
    let s = SimEnv::start_shared(|_| {});
    s.skim(&["auth-check"]).expect_code(0);
    // A cached session token would spare the keys; make each run need them.
    let _ = fs::remove_file(s.env.path("data/ibkr_session.json"));
    s
}

fn keys(s: &SimEnv) -> PathBuf {
    s.env.path("oauth_keys")
}

#[test]
fn missing_or_unreadable_key_files_exit_2_naming_the_file() {
    let s = keyed_env();
    for file in ["private_signature.pem", "private_encryption.pem"] {
        let path = keys(&s).join(file);
        let good = fs::read(&path).unwrap();

        fs::remove_file(&path).unwrap();
        let run = s.skim(&["auth-check"]);
        assert_skim_error(
            &run,
            2,
            &[file, "does not exist"],
            &format!("{file} missing"),
        );

        fs::write(&path, "hello, not a key\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let run = s.skim(&["auth-check"]);
        assert_skim_error(&run, 2, &[file], &format!("{file} not PEM"));

        let mut broken = String::from_utf8(good.clone()).unwrap();
        broken.truncate(broken.len() / 2);
        fs::write(&path, broken).unwrap();
        let run = s.skim(&["auth-check"]);
        assert_skim_error(&run, 2, &[file], &format!("{file} cut in half"));

        fs::write(&path, &good).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let run = s.skim(&["auth-check"]);
        assert_skim_error(&run, 2, &[file], &format!("{file} mode 0644"));
        assert!(run.stderr.contains("hint: chmod 600"), "{run:#?}");

        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    }
    s.skim(&["auth-check"]).expect_code(0);
}

#[test]
fn a_keys_dir_that_is_a_file_or_absent_is_named() {
    let s = keyed_env();
    let file = s.env.path(".env").display().to_string();
    for dir in [file.as_str(), "/nonexistent/oauth_keys"] {
        let run = run_with(
            s.env.dir.path(),
            &["auth-check"],
            "OAUTH_KEYS_DIR",
            dir.as_ref(),
        );
        assert_skim_error(&run, 2, &[dir], &format!("OAUTH_KEYS_DIR={dir}"));
    }
}

#[test]
fn swapped_signature_and_encryption_keys_exit_3_with_a_hint() {
    let s = keyed_env();
    let sig = keys(&s).join("private_signature.pem");
    let enc = keys(&s).join("private_encryption.pem");
    let (a, b) = (fs::read(&sig).unwrap(), fs::read(&enc).unwrap());
    fs::write(&sig, &b).unwrap();
    fs::write(&enc, &a).unwrap();
    let run = s.skim(&["auth-check"]);
    assert_skim_error(&run, 3, &[], "swapped keys");
    assert!(
        run.stderr.contains("hint: "),
        "a hint names the fix: {run:#?}"
    );
    assert!(
        run.stderr.contains("private_encryption.pem"),
        "the hint or error names the key file: {run:#?}"
    );
    s.assert_no_secrets(&run);
}

/// Makes `path` unwritable even for root (whose permission bits do not
/// bind) with the immutable attribute; undone on drop.
struct Immutable(PathBuf);

impl Immutable {
    /// `None` when the OS still lets this user write `path`.
    fn set(path: &Path) -> Option<Immutable> {
        let mode = if path.is_dir() { 0o555 } else { 0o444 };
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).ok()?;
        let _ = Command::new("chattr").arg("+i").arg(path).status();
        let guard = Immutable(path.to_path_buf());
        let writable = if path.is_dir() {
            let probe = path.join("probe");
            let ok = fs::write(&probe, "").is_ok();
            let _ = fs::remove_file(probe);
            ok
        } else {
            fs::OpenOptions::new().append(true).open(path).is_ok()
        };
        (!writable).then_some(guard)
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
        let mode = if self.0.is_dir() { 0o700 } else { 0o600 };
        let _ = fs::set_permissions(&self.0, fs::Permissions::from_mode(mode));
    }
}

/// Commands that open the database without the network.
const DB_COMMANDS: &[&[&str]] = &[
    &["trade", "resume"],
    &["notify", "--flush"],
    &["notify", "hi"],
];

/// A working folder whose database exists at the current schema.
fn with_database() -> TestEnv {
    let env = TestEnv::new();
    env.skim(&["trade", "resume"]).expect_code(0);
    assert!(env.path("data/skim.db").exists());
    env
}

#[test]
fn a_corrupt_database_exits_2_naming_the_file() {
    // Bytes from a fixed linear congruential sequence: random to SQLite,
    // the same on every run.
    let mut state = 0x2545_f491_u32;
    let noise: Vec<u8> = (0..8192)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 24) as u8
        })
        .collect();
    for command in DB_COMMANDS {
        let env = TestEnv::new();
        fs::create_dir_all(env.path("data")).unwrap();
        fs::write(env.path("data/skim.db"), &noise).unwrap();
        let run = env.skim(command);
        let case = format!("corrupt database, skim {}", command.join(" "));
        assert_skim_error(&run, 2, &["skim.db", "not a SQLite database"], &case);
        assert!(run.stderr.contains("hint: "), "{case}: {run:#?}");
        assert_eq!(
            fs::read(env.path("data/skim.db")).unwrap(),
            noise,
            "{case}: file changed"
        );
    }
}

#[test]
fn a_read_only_database_file_or_folder_exits_1_naming_it() {
    for target in ["data/skim.db", "data"] {
        for command in DB_COMMANDS {
            let env = with_database();
            let Some(_guard) = Immutable::set(&env.path(target)) else {
                eprintln!("skipped: cannot make {target} read-only here");
                return;
            };
            let run = env.skim(command);
            let case = format!("read-only {target}, skim {}", command.join(" "));
            assert_skim_error(&run, 1, &["skim.db"], &case);
            assert!(run.stderr.contains("hint: "), "{case}: {run:#?}");
        }
    }
}

#[test]
fn a_database_from_a_newer_skim_is_refused_untouched() {
    for command in DB_COMMANDS {
        let env = with_database();
        let path = env.path("data/skim.db");
        let conn = rusqlite::Connection::open(&path).unwrap();
        let known: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        conn.pragma_update(None, "user_version", known + 1).unwrap();
        let runs_before: i64 = conn
            .query_row("SELECT count(*) FROM runs", [], |row| row.get(0))
            .unwrap();
        drop(conn);

        let run = env.skim(command);
        let case = format!("newer schema, skim {}", command.join(" "));
        assert_skim_error(&run, 2, &["skim.db", "newer than this skim"], &case);
        assert!(
            run.stderr.contains("hint: upgrade skim"),
            "{case}: {run:#?}"
        );

        let conn = rusqlite::Connection::open(&path).unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        let runs_after: i64 = conn
            .query_row("SELECT count(*) FROM runs", [], |row| row.get(0))
            .unwrap();
        assert_eq!(version, known + 1, "{case}: schema version rewritten");
        assert_eq!(
            runs_after, runs_before,
            "{case}: skim ran on the newer database"
        );
    }
}

#[test]
fn a_database_path_that_is_a_folder_is_named() {
    let mut env = TestEnv::new();
    fs::create_dir_all(env.path("somewhere")).unwrap();
    env.set("SKIM_DB", "somewhere");
    for command in DB_COMMANDS {
        let run = env.skim(command);
        let case = format!("SKIM_DB is a folder, skim {}", command.join(" "));
        assert!(run.code == 1 || run.code == 2, "{case}: {run:#?}");
        assert_skim_error(&run, run.code, &["somewhere"], &case);
    }
}
