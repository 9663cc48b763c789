//! No secret leaves skim: every command, in success and in failure, at
//! every verbosity, is searched for the secrets the test knows skim holds
//! (the access token secret as configured and decrypted, the private keys,
//! the live session token, the webhook token). The search covers stdout,
//! stderr, every file in the working folder (database, `-wal`, caches, run
//! log) except the 0600 token cache, the keys and the `.env` the user
//! wrote, and the messages Discord received.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{NaiveDate, TimeZone, Utc};
use chrono_tz::Australia::Sydney;
use skim_sim::scenario::Scenario;

use crate::util::{Run, Secrets, SimEnv, TestEnv, mode};

/// Output settings each command runs under: the quiet default, JSON, skim's
/// debug logs, and every crate's trace logs (HTTP, TLS, HTML parsing).
const MODES: &[(&str, &[&str], Option<&str>)] = &[
    ("default", &[], None),
    ("--json", &["--json"], None),
    ("-vv", &["-vv"], None),
    ("RUST_LOG=trace", &[], Some("trace")),
];

/// Runs and what was searched, for the report on stderr.
#[derive(Default)]
struct Tally {
    runs: usize,
    commands: Vec<String>,
    /// A folder holding a copy of a session token cache skim has since
    /// dropped: that token is searched for too.
    old_token: Option<tempfile::TempDir>,
}

/// The simulator's example week with skim pointed at every service.
fn week() -> SimEnv {
    // skim spaces the 5-second endpoints by 5.25 s, measured when a request
    // leaves; on a loaded test machine one can arrive late enough to look
    // early. Pacing is not what this test is about, so the simulator's
    // documented knob loosens it.
    let mut s = SimEnv::start_shared(|c| c.slow_endpoint_interval = Duration::from_secs(1));
    s.sim.set_scenario(Scenario::example_week());
    for (key, value) in s.sim.service_env_pairs() {
        s.env.set(key, &value);
    }
    s
}

/// Moves the market and skim's clock to `hh:mm` Sydney on 2 March 2026.
fn monday_at(s: &mut SimEnv, hour: u32, minute: u32) {
    let day = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
    let now = Sydney
        .from_local_datetime(&day.and_hms_opt(hour, minute, 0).unwrap())
        .unwrap()
        .with_timezone(&Utc);
    s.sim.set_now(now);
    s.env.set("SKIM_NOW", &now.to_rfc3339());
}

/// Files that hold secrets by design: the user's `.env`, the key folder,
/// and the session token cache, which must be 0600.
fn spared(env: &TestEnv) -> Vec<PathBuf> {
    let cache = env.path("data/ibkr_session.json");
    if cache.exists() {
        assert_eq!(mode(&cache), 0o600, "the token cache must be private");
    }
    vec![env.path(".env"), env.path("oauth_keys"), cache]
}

/// Runs `args` in every mode, expecting `code` each time, and searches
/// everything after each run.
fn run_everywhere(s: &mut SimEnv, args: &[&str], code: i32, tally: &mut Tally, label: &str) {
    for (mode_name, flags, rust_log) in MODES {
        match rust_log {
            Some(level) => s.env.set("RUST_LOG", level),
            None => s.env.unset("RUST_LOG"),
        }
        let mut all = args.to_vec();
        all.extend_from_slice(flags);
        let run = s.skim(&all);
        let case = format!("{label}: skim {} ({mode_name})", args.join(" "));
        assert_eq!(run.code, code, "{case}: {run:#?}");
        assert!(!run.stderr.contains("panicked"), "{case}: {run:#?}");
        search(s, &run, &case, tally);
        tally.runs += 1;
    }
    s.env.unset("RUST_LOG");
    tally.commands.push(format!("{label}: {}", args.join(" ")));
}

/// Every place a secret could end up after `run`.
fn search(s: &SimEnv, run: &Run, case: &str, tally: &Tally) {
    // Rebuilt each time: the live session token joins once it is cached.
    let mut secrets = s.secrets();
    if let Some(dir) = &tally.old_token {
        secrets.add_cached_token(dir.path());
    }
    let mut found = secrets.find_in_run(case, run);
    found.extend(secrets.find_in_files(s.env.dir.path(), &spared(&s.env)));
    for message in s.sim.discord_messages() {
        found.extend(secrets.find("a Discord message", &message.payload.to_string()));
    }
    assert!(found.is_empty(), "{case}:\n{}", found.join("\n"));
}

/// The search must be able to fail: unspared, the `.env`, the keys and the
/// token cache do hold the secrets it looks for.
fn assert_search_finds_the_spared_files(s: &SimEnv) {
    let found = s.secrets().find_in_files(s.env.dir.path(), &[]).join("\n");
    for expected in [
        "access token secret found in",
        "private_signature.pem line 1 found in",
        "live session token (base64) found in",
    ] {
        assert!(
            found.contains(expected),
            "{expected}... missing from:\n{found}"
        );
    }
}

#[test]
fn no_command_leaks_a_secret_in_success() {
    let mut s = week();
    let mut tally = Tally::default();
    monday_at(&mut s, 10, 5);
    run_everywhere(&mut s, &["auth-check"], 0, &mut tally, "ok");
    run_everywhere(&mut s, &["scan"], 0, &mut tally, "ok");
    monday_at(&mut s, 10, 12);
    run_everywhere(&mut s, &["trade", "enter"], 0, &mut tally, "ok");
    monday_at(&mut s, 10, 30);
    run_everywhere(&mut s, &["trade", "manage"], 0, &mut tally, "ok");
    run_everywhere(&mut s, &["positions"], 0, &mut tally, "ok");
    run_everywhere(&mut s, &["notify", "hello"], 0, &mut tally, "ok");
    run_everywhere(&mut s, &["notify", "--flush"], 0, &mut tally, "ok");
    run_everywhere(&mut s, &["trade", "halt"], 0, &mut tally, "ok");
    run_everywhere(&mut s, &["trade", "resume"], 0, &mut tally, "ok");
    assert_search_finds_the_spared_files(&s);
    assert!(
        !s.sim.discord_messages().is_empty(),
        "Discord received messages, so they were searched"
    );
    eprintln!(
        "success: {} commands x {} modes = {} runs",
        tally.commands.len(),
        MODES.len(),
        tally.runs
    );
}

#[test]
fn no_command_leaks_a_secret_in_failure() {
    let mut s = week();
    let mut tally = Tally::default();
    monday_at(&mut s, 10, 5);
    // A cached token first, so it is among the secrets searched for; then
    // a rejected login, which drops it and sends the red notice.
    s.skim(&["auth-check"]).expect_code(0);
    assert_search_finds_the_spared_files(&s);
    let saved = tempfile::tempdir().unwrap();
    let cache = s.env.path("data/ibkr_session.json");
    fs::copy(&cache, saved.path().join("ibkr_session.json")).unwrap();
    tally.old_token = Some(saved);
    s.sim.faults(|f| f.invalid_consumer = true);
    fs::remove_file(&cache).unwrap();
    for args in [
        &["auth-check"][..],
        &["scan"],
        &["trade", "enter"],
        &["trade", "manage"],
        &["positions"],
        &["trade", "halt", "--flatten"],
    ] {
        run_everywhere(&mut s, args, 3, &mut tally, "rejected login");
    }
    s.sim.faults(|f| {
        f.invalid_consumer = false;
        f.wrong_token_signature = true;
    });
    run_everywhere(&mut s, &["auth-check"], 3, &mut tally, "token mismatch");

    s.sim.faults(|f| {
        f.wrong_token_signature = false;
        f.discord.unknown_webhook = true;
    });
    run_everywhere(&mut s, &["notify", "hello"], 1, &mut tally, "Discord 404");
    run_everywhere(&mut s, &["notify", "--flush"], 1, &mut tally, "Discord 404");
    run_everywhere(&mut s, &["scan"], 0, &mut tally, "Discord 404");

    s.sim.faults(|f| f.discord.unknown_webhook = false);
    s.sim.faults(|f| f.server_error = Some((503, 1000)));
    let _ = fs::remove_file(s.env.path("data/ibkr_session.json"));
    run_everywhere(&mut s, &["auth-check"], 1, &mut tally, "IBKR 503");
    eprintln!(
        "failure: {} commands x {} modes = {} runs",
        tally.commands.len(),
        MODES.len(),
        tally.runs
    );
}

#[test]
fn keys_gen_leaks_no_private_key() {
    let mut tally = Tally::default();
    for (mode_name, flags, rust_log) in MODES {
        let mut env = TestEnv::new();
        if let Some(level) = rust_log {
            env.set("RUST_LOG", level);
        }
        let mut args = vec!["keys-gen", "--dh-group", "ffdhe2048"];
        args.extend_from_slice(flags);
        let made = env.skim(&args);
        made.expect_code(0);
        // A second run refuses to overwrite the set: the failure case.
        let refused = env.skim(&args);
        assert_ne!(refused.code, 0, "{refused:#?}");
        let mut secrets = Secrets::default();
        secrets.add_private_keys(&env.path("oauth_keys"));
        for (case, run) in [("keys-gen", &made), ("keys-gen again", &refused)] {
            let mut found = secrets.find_in_run(&format!("{case} ({mode_name})"), run);
            found.extend(secrets.find_in_files(env.dir.path(), &[env.path("oauth_keys")]));
            assert!(found.is_empty(), "{}", found.join("\n"));
            tally.runs += 1;
        }
    }
    eprintln!(
        "keys-gen: 2 outcomes x {} modes = {} runs",
        MODES.len(),
        tally.runs
    );
}
