//! Running skim on a server: the checked-in man pages and completions, the
//! install script, the run log, and the notice when a scheduled login fails.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::Command;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Australia::Sydney;
use serde_json::Value;
use skim_asx::store::{RunRecord, Store};

use crate::util::{SimEnv, TestEnv, mode};

const REFRESH: &str = "refresh with `cargo run -- generate man man/ && \
     cargo run -- generate completions completions/`";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn file_names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap_or_else(|err| panic!("cannot list {}: {err}", dir.display()))
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect()
}

/// Fails naming the first checked-in file that differs from a fresh
/// generation, is missing, or is left over.
fn assert_same_folder(checked_in: &str, fresh: &Path) {
    let kept = repo().join(checked_in);
    let (old, new) = (file_names(&kept), file_names(fresh));
    if let Some(name) = new.difference(&old).next() {
        panic!("{checked_in}/{name} is missing; {REFRESH}");
    }
    if let Some(name) = old.difference(&new).next() {
        panic!("{checked_in}/{name} is no longer generated; delete it and {REFRESH}");
    }
    for name in &new {
        let (a, b) = (
            fs::read(kept.join(name)).unwrap(),
            fs::read(fresh.join(name)).unwrap(),
        );
        assert!(a == b, "{checked_in}/{name} is out of date; {REFRESH}");
    }
}

#[test]
fn checked_in_man_pages_and_completions_are_current() {
    let env = TestEnv::new();
    let out = env.path("out");
    let man = out.join("man");
    let completions = out.join("completions");
    env.skim(&["generate", "man", man.to_str().unwrap()])
        .expect_code(0);
    env.skim(&["generate", "completions", completions.to_str().unwrap()])
        .expect_code(0);
    assert!(file_names(&man).contains("skim-trade-enter.1"));
    assert_same_folder("man", &man);
    assert_same_folder("completions", &completions);
}

/// Runs `scripts/install` with `args` under a cleared environment whose
/// HOME is `home`.
fn install(home: &Path, args: &[&str]) -> (i32, String, String) {
    let output = Command::new("sh")
        .arg(repo().join("scripts/install"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .output()
        .expect("sh runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_skim")
}

#[test]
fn install_dry_run_prints_every_action_and_does_none() {
    let dir = tempfile::tempdir().unwrap();
    let (prefix, home) = (dir.path().join("usr"), dir.path().join("srv/skim"));
    let (p, h) = (prefix.display(), home.display());
    let (code, out, err) = install(
        dir.path(),
        &[
            "--dry-run",
            "--binary",
            binary(),
            "--prefix",
            &p.to_string(),
            "--home",
            &h.to_string(),
            "--owner",
            "skim-test-nobody",
        ],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    let mut expected = vec![
        format!("+ install -m 0755 {} {p}/bin/skim", binary()),
        "+ useradd --system".to_owned(),
        format!("+ install -d -m 0700 {h} {h}/data {h}/oauth_keys"),
        format!("+ install -m 0600 /dev/null {h}/.env"),
        format!("+ chown skim-test-nobody: {h} {h}/data {h}/oauth_keys"),
        format!("{p}/share/bash-completion/completions/skim"),
        format!("{p}/share/zsh/site-functions/_skim"),
        format!("{p}/share/fish/vendor_completions.d/skim.fish"),
        format!("+ write {p}/lib/systemd/system/skim-scan.timer"),
        format!("+ write {p}/lib/systemd/system/skim-positions.service"),
    ];
    for page in file_names(&repo().join("man")) {
        expected.push(format!("/man/{page} {p}/share/man/man1/"));
    }
    for line in expected {
        assert!(out.contains(&line), "no {line:?} in:\n{out}");
    }
    assert!(
        !prefix.exists() && !home.exists(),
        "a dry run created files"
    );

    let (code, out, err) = install(
        dir.path(),
        &[
            "--dry-run",
            "--cron",
            "--binary",
            binary(),
            "--prefix",
            &p.to_string(),
        ],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains(&format!("+ write {p}/share/skim/crontab")),
        "{out}"
    );
    assert!(out.contains("+ crontab -u skim: replace"), "{out}");
    assert!(!out.contains("systemd"), "--cron installs no units: {out}");
    assert!(!prefix.exists());
}

#[test]
fn install_rejects_unknown_options_and_relative_paths() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = install(dir.path(), &["--dry-run", "--frobnicate"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown option --frobnicate"), "{err}");
    let (code, _, err) = install(dir.path(), &["--dry-run", "--prefix", "usr/local"]);
    assert_eq!(code, 2);
    assert!(err.contains("--prefix must be an absolute path"), "{err}");
}

fn unit(dir: &Path, name: &str) -> String {
    fs::read_to_string(dir.join(name)).unwrap_or_else(|err| panic!("{name}: {err}"))
}

#[test]
fn install_for_a_user_into_a_prefix_sets_modes_and_rewrites_the_units() {
    let dir = tempfile::tempdir().unwrap();
    let user_home = dir.path().join("home");
    let prefix = dir.path().join("usr");
    let home = dir.path().join("skim");
    let args = [
        "--user",
        "--no-enable",
        "--binary",
        binary(),
        "--prefix",
        prefix.to_str().unwrap(),
        "--home",
        home.to_str().unwrap(),
    ];
    let (code, out, err) = install(&user_home, &args);
    assert_eq!(code, 0, "{out}\n{err}");

    let skim = prefix.join("bin/skim");
    assert_eq!(mode(&skim), 0o755);
    let version = Command::new(&skim).arg("--version").output().unwrap();
    assert!(version.status.success());
    let man1 = prefix.join("share/man/man1");
    assert_eq!(file_names(&man1), file_names(&repo().join("man")));
    for page in file_names(&man1) {
        assert_eq!(mode(&man1.join(&page)), 0o644, "{page}");
    }
    for completion in [
        "share/bash-completion/completions/skim",
        "share/zsh/site-functions/_skim",
        "share/fish/vendor_completions.d/skim.fish",
    ] {
        assert_eq!(mode(&prefix.join(completion)), 0o644, "{completion}");
    }
    for folder in ["", "data", "oauth_keys"] {
        assert_eq!(mode(&home.join(folder)), 0o700, "{folder}");
    }
    assert_eq!(mode(&home.join(".env")), 0o600);

    let units = user_home.join(".config/systemd/user");
    assert_eq!(
        file_names(&units),
        file_names(&repo().join("scripts/systemd"))
    );
    let scan = unit(&units, "skim-scan.service");
    assert!(
        scan.contains(&format!("\nExecStart={} scan\n", skim.display())),
        "{scan}"
    );
    assert!(
        scan.contains(&format!("\nWorkingDirectory={}\n", home.display())),
        "{scan}"
    );
    for dropped in ["User=", "Group=", "ProtectHome=", "ReadWritePaths="] {
        assert!(
            !scan.contains(&format!("\n{dropped}")),
            "{dropped} kept: {scan}"
        );
    }
    assert!(unit(&units, "skim-scan.timer").contains("10:02:00 Australia/Sydney"));
    assert!(out.contains("enable --now"), "says how to enable: {out}");

    // A second install keeps the user's settings.
    fs::write(home.join(".env"), "SKIM_ALLOW_LIVE=false\n").unwrap();
    let (code, out, err) = install(&user_home, &args);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(
        fs::read_to_string(home.join(".env")).unwrap(),
        "SKIM_ALLOW_LIVE=false\n"
    );
    assert_eq!(mode(&home.join(".env")), 0o600);
}

#[test]
fn a_system_install_into_a_prefix_names_the_owner_in_the_units() {
    let dir = tempfile::tempdir().unwrap();
    let me = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
    let me = me.trim();
    let prefix = dir.path().join("usr");
    let home = dir.path().join("var/skim");
    let (code, out, err) = install(
        dir.path(),
        &[
            "--binary",
            binary(),
            "--owner",
            me,
            "--prefix",
            prefix.to_str().unwrap(),
            "--home",
            home.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    let units = prefix.join("lib/systemd/system");
    let manage = unit(&units, "skim-trade-manage.service");
    assert!(manage.contains(&format!("\nUser={me}\n")), "{manage}");
    assert!(
        manage.contains(&format!("\nReadWritePaths={}\n", home.display())),
        "{manage}"
    );
    assert!(
        out.contains("systemctl link"),
        "units outside systemd's path are not enabled: {out}"
    );
    assert_eq!(mode(&home), 0o700);
}

// --- the run log ------------------------------------------------------------

fn sydney(hour: u32, minute: u32) -> DateTime<Utc> {
    let day = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
    Sydney
        .from_local_datetime(&day.and_hms_opt(hour, minute, 0).unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

/// The simulator's example day at 10:15, skim's clock set to match.
fn trading_morning(tune: impl FnOnce(&mut skim_sim::Config)) -> SimEnv {
    let mut s = SimEnv::start_with(tune);
    let now = sydney(10, 15);
    s.sim.set_now(now);
    s.env.set("SKIM_NOW", &now.to_rfc3339());
    for (key, value) in s.sim.service_env_pairs() {
        s.env.set(key, &value);
    }
    s
}

fn last_runs(s: &SimEnv) -> Vec<RunRecord> {
    Store::open(&s.env.path("data/skim.db"))
        .unwrap()
        .last_runs()
        .unwrap()
}

fn embed_titles(s: &SimEnv) -> Vec<String> {
    s.sim
        .discord_messages()
        .iter()
        .flat_map(|m| m.payload["embeds"].as_array().cloned().unwrap_or_default())
        .map(|e| e["title"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn the_run_log_records_each_command_and_skips_dry_runs() {
    let s = trading_morning(|_| {});
    s.skim(&["scan", "--dry-run"]).expect_code(0);
    assert!(
        !s.env.path("data/skim.db").exists(),
        "a dry run must leave no trace"
    );
    s.skim(&["scan", "--json"]).expect_code(0);
    s.skim(&["auth-check"]).expect_code(0);
    s.skim(&["keys-gen", "--dh-group", "ffdhe2048", "--dir", "more_keys"])
        .expect_code(0);

    let runs = last_runs(&s);
    let names: Vec<&str> = runs.iter().map(|r| r.command.as_str()).collect();
    assert_eq!(names, ["auth-check", "scan"]);
    let scan = &runs[1];
    assert_eq!(scan.started_at, sydney(10, 15), "the market clock");
    assert!(scan.finished_at.unwrap() >= scan.started_at);
    assert_eq!(scan.outcome.as_deref(), Some("ok"));
    assert_eq!(scan.exit_code, Some(0));
    assert!(scan.is_success());
    assert_eq!(scan.message, None);
}

#[test]
fn a_rejected_login_is_logged_and_queues_the_red_notice_for_scheduled_runs_only() {
    let s = trading_morning(|_| {});
    s.sim.faults(|f| f.invalid_consumer = true);
    let run = s.skim(&["scan"]);
    run.expect_code(3);
    s.assert_no_secrets(&run);

    let runs = last_runs(&s);
    assert_eq!(runs.len(), 1);
    let scan = &runs[0];
    assert_eq!(
        (
            scan.command.as_str(),
            scan.outcome.as_deref(),
            scan.exit_code
        ),
        ("scan", Some("auth"), Some(3))
    );
    let message = scan.message.as_deref().unwrap();
    assert!(!message.contains('\n'), "{message}");
    assert!(
        run.stderr.contains(message),
        "the log keeps the error line: {message} / {run:?}"
    );

    let messages = s.sim.discord_messages();
    let login: Vec<&Value> = messages
        .iter()
        .flat_map(|m| m.payload["embeds"].as_array().unwrap().iter())
        .filter(|e| e["title"] == "IBKR Login Failed")
        .collect();
    assert_eq!(login.len(), 1, "{messages:#?}");
    assert_eq!(login[0]["color"], 0xff0000);
    assert_eq!(login[0]["description"].as_str(), Some(message));
    let fields = login[0]["fields"].as_array().unwrap();
    assert!(
        fields
            .iter()
            .any(|f| f["name"] == "Command" && f["value"] == "skim scan"),
        "{fields:?}"
    );
    let all_text =
        serde_json::to_string(&messages.iter().map(|m| &m.payload).collect::<Vec<_>>()).unwrap();
    assert!(!all_text.contains(&s.access_token_secret));

    // A person running auth-check sees the error on the terminal; no notice.
    s.skim(&["auth-check"]).expect_code(3);
    let logins = embed_titles(&s)
        .iter()
        .filter(|t| *t == "IBKR Login Failed")
        .count();
    assert_eq!(logins, 1);
    let runs = last_runs(&s);
    assert_eq!(runs[0].command, "auth-check");
    assert_eq!(runs[0].exit_code, Some(3));
}

#[test]
fn the_login_notice_waits_in_the_outbox_without_a_webhook() {
    let mut s = trading_morning(|_| {});
    s.sim.faults(|f| f.invalid_consumer = true);
    s.env.set("DISCORD_WEBHOOK_URL", "");
    s.skim(&["scan", "--no-notify"]).expect_code(3);
    assert!(s.sim.discord_messages().is_empty());
    let pending = s.skim(&["notify", "--flush", "--json"]);
    pending.expect_code(0);
    let summaries: Vec<String> = pending.json()["pending"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["summary"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        summaries.iter().any(|s| s.contains("IBKR Login Failed")),
        "{summaries:?}"
    );
}

#[test]
fn an_unwritable_database_does_not_fail_a_command_through_the_log() {
    let mut s = trading_morning(|_| {});
    // A file where the database folder should be: nothing can be opened.
    fs::write(s.env.path("blocked"), "").unwrap();
    s.env.set("SKIM_DB", "blocked/skim.db");
    let run = s.skim(&["auth-check", "--fresh", "-v"]);
    run.expect_code(0);
    assert!(run.stderr.contains("this run is not logged"), "{run:?}");
}
