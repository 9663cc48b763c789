//! No secret in any output: `keys-gen`, `auth-check`, `scan` and `notify`
//! run in success and in failure, with debug logs on, and every stdout,
//! stderr and file skim wrote (the database with its WAL, the state files)
//! is searched for every secret the test knows, including the live session
//! tokens skim made along the way. Only the 0600 token cache, the key files
//! and the user's own `.env` may hold secrets.
//!
//! To cover another command, add its runs to [`runs`] with the faults that
//! make it fail; [`crate::util::Secrets`] does the searching.

use std::path::PathBuf;

use chrono::{NaiveDate, TimeZone, Utc};
use chrono_tz::Australia::Sydney;
use skim_sim::{FaultKind, PathFault};

use crate::util::{Run, Secrets, SimEnv, TestEnv};

/// One run of the scenario: what it is, the exit status it must have (so a
/// "failure" run really failed), and what it printed.
struct Labelled {
    label: String,
    expected: i32,
    run: Run,
}

/// A simulator at 10:15 on its example day, with skim's clock, the ASX
/// page and Discord pointed at it.
fn trading_day() -> SimEnv {
    let mut s = SimEnv::start();
    let day = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
    let now = Sydney
        .from_local_datetime(&day.and_hms_opt(10, 15, 0).unwrap())
        .unwrap()
        .with_timezone(&Utc);
    s.sim.set_now(now);
    s.env.set("SKIM_NOW", &now.to_rfc3339());
    s.env.set("SKIM_HTTP_TIMEOUT", "1");
    for (key, value) in s.sim.service_env_pairs() {
        s.env.set(key, &value);
    }
    s
}

/// Runs every step, collecting each live session token skim caches on the
/// way into `secrets`.
fn runs(s: &mut SimEnv, secrets: &mut Secrets) -> Vec<Labelled> {
    let mut out = Vec::new();
    let mut step = |s: &mut SimEnv, expected: i32, args: &[&str]| {
        let run = s.skim(args);
        secrets.add_cached_token(&s.env.path("data"));
        out.push(Labelled {
            label: args.join(" "),
            expected,
            run,
        });
    };
    let ibkr_fault = |s: &SimEnv, path: &str, kind: FaultKind| {
        s.sim
            .faults(|f| f.path_faults = vec![PathFault::new(&format!("/v1/api{path}"), kind)]);
    };

    // Success, human and JSON, with debug logs.
    step(s, 0, &["auth-check", "-vv"]);
    step(s, 0, &["auth-check", "--json", "-vv"]);
    step(s, 0, &["auth-check", "--fresh", "--json", "-vv"]);
    step(s, 0, &["scan", "--json", "-vv"]);
    step(s, 0, &["scan", "-vv"]);
    step(
        s,
        0,
        &["notify", "--title", "Hello", "--field", "a=b", "-vv"],
    );
    step(s, 0, &["notify", "--flush", "--json", "-vv"]);

    // IBKR rejects every request, then the token it hands out.
    ibkr_fault(s, "/iserver/", FaultKind::Status(401));
    step(s, 3, &["auth-check", "--json", "-vv"]);
    s.sim.set_faults(skim_sim::Faults {
        wrong_token_signature: true,
        ..Default::default()
    });
    step(s, 3, &["auth-check", "--fresh", "-vv"]);
    s.sim.set_faults(skim_sim::Faults::default());

    // The scan fails at the ASX page, and at IBKR's snapshot.
    s.sim.faults(|f| f.asx.server_error_next = 1);
    step(s, 1, &["scan", "--json", "-vv"]);
    ibkr_fault(s, "/iserver/marketdata/snapshot", FaultKind::MalformedJson);
    step(s, 1, &["scan", "-vv"]);
    s.sim.set_faults(skim_sim::Faults::default());

    // Discord refuses: the webhook is gone, then a bad request.
    s.sim.faults(|f| f.discord.unknown_webhook = true);
    step(s, 1, &["notify", "gone", "-vv"]);
    s.sim.set_faults(skim_sim::Faults::default());
    s.sim.faults(|f| {
        f.path_faults = vec![PathFault::new("/api/", FaultKind::Status(400))];
    });
    step(s, 1, &["notify", "--flush", "--json", "-vv"]);
    s.sim.set_faults(skim_sim::Faults::default());

    // Bad input around the secrets themselves.
    let secret = s.access_token_secret.clone();
    s.env
        .set("OAUTH_ACCESS_TOKEN_SECRET", &format!("{secret} "));
    step(s, 2, &["auth-check", "-vv"]);
    s.env
        .set("OAUTH_ACCESS_TOKEN_SECRET", &format!("{secret}#"));
    step(s, 2, &["scan", "--json", "-vv"]);
    let webhook = s.sim.discord_webhook_url();
    s.env
        .set("DISCORD_WEBHOOK_URL", &webhook.replace("/api/", "/v2/"));
    step(s, 2, &["notify", "x", "-vv"]);
    out
}

#[test]
fn no_secret_reaches_output_logs_or_the_database() {
    let mut leaks = Vec::new();
    let mut searched = 0;

    // keys-gen prints public material only.
    let fresh = TestEnv::new();
    let made = fresh.skim(&["keys-gen", "--dh-group", "ffdhe2048", "-vv"]);
    made.expect_code(0);
    let mut key_secrets = Secrets::default();
    key_secrets.add_private_keys(&fresh.path("oauth_keys"));
    leaks.extend(key_secrets.find_in_run("keys-gen", &made));
    let again = fresh.skim(&["keys-gen", "--dh-group", "ffdhe2048", "--json"]);
    leaks.extend(key_secrets.find_in_run("keys-gen over existing keys", &again));
    searched += 2;

    let mut s = trading_day();
    let mut secrets = s.secrets();
    let runs = runs(&mut s, &mut secrets);
    for labelled in &runs {
        let Labelled {
            label,
            expected,
            run,
        } = labelled;
        assert_eq!(
            run.code, *expected,
            "{label} should exit {expected}: {run:?}"
        );
        assert!(!run.stderr.contains("panicked"), "{label}: {run:?}");
        leaks.extend(secrets.find_in_run(label, run));
        searched += 1;
    }
    let spared: Vec<PathBuf> = vec![
        s.env.path("data/ibkr_session.json"),
        s.env.path("oauth_keys"),
        s.env.path(".env"),
    ];
    assert!(
        s.env.path("data/skim.db").exists(),
        "the runs kept a database"
    );
    leaks.extend(secrets.find_in_files(s.env.dir.path(), &spared));
    eprintln!(
        "secrets: {searched} runs and the files they left searched, {} leaks",
        leaks.len()
    );
    assert!(leaks.is_empty(), "{}", leaks.join("\n"));
}

#[test]
fn the_search_finds_what_it_is_given() {
    let env = TestEnv::new();
    let mut secrets = Secrets::default();
    secrets.add_bytes("token", b"0123456789abcdef");
    std::fs::create_dir(env.path("data")).unwrap();
    std::fs::write(
        env.path("data/a.db"),
        b"\x00\x01MDEyMzQ1Njc4OWFiY2RlZg==\xff",
    )
    .unwrap();
    std::fs::write(
        env.path("data/cache.json"),
        "30313233343536373839616263646566",
    )
    .unwrap();
    let found = secrets.find_in_files(env.dir.path(), &[env.path("data/cache.json")]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("token (base64) found in "),
        "{found:?}"
    );
    let run = Run {
        code: 0,
        stdout: String::new(),
        stderr: "skim: debug: key 30313233343536373839616263646566".to_owned(),
    };
    assert_eq!(secrets.find_in_run("probe", &run).len(), 1);
}
