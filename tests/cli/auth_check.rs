//! `skim auth-check` against the simulator: the whole sign-in, each failure
//! cause with its exit status and hint, healing, and no secret in output.

use std::fs;
use std::time::Duration;

use skim_sim::{FaultKind, PathFault};

use crate::util::{SimEnv, mode};

#[test]
fn keys_gen_then_auth_check_signs_in() {
    let s = SimEnv::start();
    let run = s.skim(&["auth-check", "--json"]);
    run.expect_code(0);
    let doc = run.json();
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["account"], "DU1234567");
    assert_eq!(doc["paper"], true);
    assert_eq!(doc["lst_cached"], false);
    assert!(doc["lst_expires_at"].as_str().unwrap().contains('T'));
    let names: Vec<&str> = doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "configuration",
            "key files",
            "access token secret",
            "live session token",
            "brokerage session",
            "account"
        ]
    );
    assert!(
        doc["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["ok"] == true)
    );
    assert_eq!(s.sim.handshake_count(), 1);
    assert!(s.sim.is_brokerage_authenticated());
    assert_eq!(mode(&s.env.path("data/ibkr_session.json")), 0o600);
    // Every signed call carried skim's User-Agent; every POST a Content-Length
    // (the simulator answers 411 otherwise, so success proves it).
    assert!(
        s.sim
            .requests()
            .iter()
            .all(|r| r.signature_verified || r.path.contains("oauth"))
    );
    s.assert_no_secrets(&run);
}

#[test]
fn a_second_run_reuses_the_cached_token() {
    let s = SimEnv::start();
    s.skim(&["auth-check"]).expect_code(0);
    let run = s.skim(&["auth-check", "--json"]);
    run.expect_code(0);
    assert_eq!(run.json()["lst_cached"], true);
    assert_eq!(s.sim.handshake_count(), 1, "no second handshake");
    let fresh = s.skim(&["auth-check", "--fresh", "--json"]);
    fresh.expect_code(0);
    assert_eq!(fresh.json()["lst_cached"], false);
    assert_eq!(s.sim.handshake_count(), 2);
}

#[test]
fn human_output_is_a_table_of_steps() {
    let s = SimEnv::start();
    let run = s.skim(&["auth-check"]);
    run.expect_code(0);
    for step in [
        "configuration",
        "live session token",
        "account",
        "DU1234567 (paper)",
    ] {
        assert!(run.stdout.contains(step), "{step} missing: {}", run.stdout);
    }
    assert!(
        run.stderr.is_empty(),
        "nothing on stderr on success: {}",
        run.stderr
    );
}

#[test]
fn invalid_consumer_exits_3_with_the_activation_hint() {
    let s = SimEnv::start();
    s.sim.faults(|f| f.invalid_consumer = true);
    let run = s.skim(&["auth-check", "--json"]);
    run.expect_code(3);
    let doc = run.json();
    assert_eq!(doc["ok"], false);
    let step = doc["steps"].as_array().unwrap().last().unwrap();
    assert_eq!(step["name"], "live session token");
    assert!(
        step["hint"].as_str().unwrap().contains("weekend restart"),
        "{doc}"
    );
    assert!(
        run.stderr
            .contains("hint: IBKR activates a new consumer key"),
        "{run:?}"
    );
    s.assert_no_secrets(&run);
}

#[test]
fn a_token_signature_mismatch_exits_3_naming_the_three_pieces() {
    let s = SimEnv::start();
    s.sim.faults(|f| f.wrong_token_signature = true);
    let run = s.skim(&["auth-check"]);
    run.expect_code(3);
    assert!(run.stderr.contains("did not validate"), "{run:?}");
    assert!(
        run.stderr
            .contains("OAUTH_ACCESS_TOKEN_SECRET, private_encryption.pem and OAUTH_DH_PRIME")
    );
    assert!(
        !s.env.path("data/ibkr_session.json").exists(),
        "an unvalidated token is never cached"
    );
}

#[test]
fn a_clock_that_is_off_is_named() {
    let s = SimEnv::start_with(|c| c.clock_skew_secs = 3600);
    let run = s.skim(&["auth-check"]);
    run.expect_code(3);
    assert!(run.stderr.contains("clock"), "{run:?}");
}

#[test]
fn a_wrong_secret_fails_the_decrypt_step() {
    let s = SimEnv::start();
    // Another key set's secret: valid base64, does not decrypt with our key.
    let other = SimEnv::start();
    let env = fs::read_to_string(s.env.path(".env")).unwrap();
    let env = env.replace(&s.access_token_secret, &other.access_token_secret);
    fs::write(s.env.path(".env"), env).unwrap();
    let run = s.skim(&["auth-check", "--json"]);
    run.expect_code(3);
    let step = run.json()["steps"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(step["name"], "access token secret");
    assert_eq!(
        s.sim.requests().len(),
        0,
        "nothing is sent before the secret decrypts"
    );
}

#[test]
fn a_live_account_is_refused_unless_allowed() {
    let s = SimEnv::start_with(|c| *c = c.clone().with_live_account());
    let run = s.skim(&["auth-check", "--json"]);
    run.expect_code(4);
    assert_eq!(run.json()["paper"], false);
    assert!(run.stderr.contains("SKIM_ALLOW_LIVE=true"), "{run:?}");
    let mut env = s.env;
    env.set("SKIM_ALLOW_LIVE", "true");
    env.skim(&["auth-check"]).expect_code(0);
}

#[test]
fn a_401_mid_session_heals_with_a_new_token() {
    let s = SimEnv::start();
    s.skim(&["auth-check"]).expect_code(0);
    s.sim.faults(|f| f.unauthorized_next = 1);
    let run = s.skim(&["auth-check", "--json"]);
    run.expect_code(0);
    assert_eq!(
        s.sim.handshake_count(),
        2,
        "the 401 forced one new handshake"
    );
    assert_eq!(run.json()["ok"], true);
}

#[test]
fn a_410_heals_too_but_not_twice() {
    let s = SimEnv::start();
    s.skim(&["auth-check"]).expect_code(0);
    s.sim.faults(|f| f.gone_next = 1);
    s.skim(&["auth-check"]).expect_code(0);
    s.sim.faults(|f| f.unauthorized_next = 5);
    let run = s.skim(&["auth-check"]);
    run.expect_code(3);
    assert!(run.stderr.contains("auth-check --fresh"), "{run:?}");
}

/// A 401 or 410 on `/iserver/accounts`, the last step of opening the
/// session, renews the token; the new token needs a new brokerage session,
/// which is opened once more.
#[test]
fn a_401_or_410_while_the_session_opens_heals_too() {
    for status in [401, 410] {
        let s = SimEnv::start_shared(|_| {});
        s.skim(&["auth-check"]).expect_code(0);
        s.sim.faults(|f| {
            f.path_faults.push(PathFault::new(
                "GET",
                "/v1/api/iserver/accounts",
                1,
                FaultKind::Status(status),
            ))
        });
        let run = s.skim(&["auth-check", "--json"]);
        run.expect_code(0);
        assert_eq!(run.json()["ok"], true, "{status}");
        assert_eq!(s.sim.handshake_count(), 2, "{status}: one new token");
    }
}

/// A 429 names the call it answered, and the pause it starts.
#[test]
fn a_429_names_the_call() {
    let s = SimEnv::start_shared(|_| {});
    s.skim(&["auth-check"]).expect_code(0);
    s.sim.faults(|f| {
        f.path_faults.push(PathFault::new(
            "GET",
            "/v1/api/iserver/accounts",
            1,
            FaultKind::RateLimited(Duration::from_secs(600)),
        ))
    });
    let run = s.skim(&["auth-check"]);
    run.expect_code(1);
    assert!(
        run.stderr
            .contains("IBKR rate limit (HTTP 429 to GET /iserver/accounts)"),
        "{run:?}"
    );
}

#[test]
fn a_dropped_brokerage_session_is_reopened() {
    let s = SimEnv::start();
    s.skim(&["auth-check"]).expect_code(0);
    s.sim.drop_bridge();
    s.skim(&["auth-check"]).expect_code(0);
    assert!(s.sim.count("POST", "/iserver/auth/ssodh/init") >= 2);
}

#[test]
fn a_429_pauses_all_traffic_across_runs() {
    let s = SimEnv::start();
    s.skim(&["auth-check"]).expect_code(0);
    s.sim.faults(|f| f.penalty = Some(Duration::from_secs(600)));
    let run = s.skim(&["auth-check"]);
    run.expect_code(1);
    assert!(run.stderr.contains("rate limit"), "{run:?}");
    let sent = s.sim.requests().len();
    let again = s.skim(&["auth-check"]);
    again.expect_code(1);
    assert!(
        again.stderr.contains("sends nothing to IBKR until"),
        "{again:?}"
    );
    assert_eq!(s.sim.requests().len(), sent, "no request during the pause");
}

#[test]
fn a_5xx_on_a_post_is_not_retried() {
    let s = SimEnv::start();
    s.skim(&["auth-check"]).expect_code(0);
    let before = s.sim.count("POST", "/iserver/auth/status");
    s.sim.faults(|f| f.server_error = Some((503, 1)));
    let run = s.skim(&["auth-check"]);
    run.expect_code(1);
    assert!(run.stderr.contains("HTTP 503"), "{run:?}");
    assert_eq!(s.sim.count("POST", "/iserver/auth/status"), before + 1);
}

#[test]
fn a_slow_server_times_out_with_a_clear_error() {
    let mut s = SimEnv::start();
    s.sim.faults(|f| f.delay = Duration::from_millis(1500));
    s.env.set("SKIM_HTTP_TIMEOUT", "0.3");
    let run = s.skim(&["auth-check"]);
    run.expect_code(1);
    assert!(run.stderr.contains("skim: error:"), "{run:?}");
    s.assert_no_secrets(&run);
}

#[test]
fn key_files_readable_by_others_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let s = SimEnv::start();
    let key = s.env.path("oauth_keys/private_signature.pem");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    let run = s.skim(&["auth-check"]);
    run.expect_code(2);
    assert!(run.stderr.contains("hint: chmod 600"), "{run:?}");
    assert!(run.stderr.contains("private_signature.pem"), "{run:?}");
}

#[test]
fn a_missing_setting_is_named() {
    let s = SimEnv::start();
    let env = fs::read_to_string(s.env.path(".env")).unwrap();
    let env: Vec<String> = env
        .lines()
        .filter(|l| !l.starts_with("OAUTH_DH_PRIME"))
        .map(str::to_owned)
        .collect();
    s.env.write_env_file(&env);
    let run = s.skim(&["auth-check"]);
    run.expect_code(2);
    assert!(run.stderr.contains("OAUTH_DH_PRIME is not set"), "{run:?}");
}

#[test]
fn a_readable_env_file_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let s = SimEnv::start();
    fs::set_permissions(s.env.path(".env"), fs::Permissions::from_mode(0o644)).unwrap();
    let run = s.skim(&["auth-check"]);
    run.expect_code(2);
    assert!(run.stderr.contains("chmod 600"), "{run:?}");
}

/// The market clock the key age tests pin with `SKIM_NOW`.
const PINNED_NOW: &str = "2026-12-03T09:30:00+11:00";

/// Sets the modification time of both key files to `days` before
/// [`PINNED_NOW`] and pins skim's clock there.
fn age_keys(s: &mut SimEnv, days: u64) {
    let now = chrono::DateTime::parse_from_rfc3339(PINNED_NOW).unwrap();
    let then = std::time::UNIX_EPOCH + Duration::from_secs(now.timestamp() as u64 - days * 86_400);
    for name in ["private_signature.pem", "private_encryption.pem"] {
        let file = fs::File::options()
            .write(true)
            .open(s.env.path(&format!("oauth_keys/{name}")))
            .unwrap();
        file.set_modified(then).unwrap();
    }
    s.env.set("SKIM_NOW", PINNED_NOW);
}

#[test]
fn keys_older_than_the_rotation_period_are_warned_about() {
    let mut s = SimEnv::start();
    age_keys(&mut s, 200);
    let run = s.skim(&["auth-check", "--json"]);
    run.expect_code(0);
    let doc = run.json();
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["key_rotation_days"], 180);
    let keys = doc["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    for key in keys {
        assert_eq!(key["age_days"], 200, "{doc}");
        assert_eq!(key["rotation_due"], true, "{doc}");
    }
    assert!(
        keys[0]["path"]
            .as_str()
            .unwrap()
            .ends_with("private_signature.pem")
    );
    let warnings = doc["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 2, "{doc}");
    assert!(
        warnings[1]
            .as_str()
            .unwrap()
            .contains("private_encryption.pem is 200 days old, past the 180-day rotation period"),
        "{doc}"
    );
    assert!(
        run.stderr.contains("skim: warning: ")
            && run.stderr.contains("private_signature.pem is 200 days old"),
        "{run:?}"
    );

    let human = s.skim(&["auth-check"]);
    human.expect_code(0);
    assert!(
        human
            .stdout
            .contains("200 days old; due for rotation (older than 180 days)"),
        "{human:?}"
    );
    assert!(human.stderr.contains("rotation period"), "{human:?}");
    s.assert_no_secrets(&human);
}

#[test]
fn fresh_keys_and_a_longer_period_give_no_warning() {
    let mut s = SimEnv::start();
    age_keys(&mut s, 10);
    let run = s.skim(&["auth-check", "--json"]);
    run.expect_code(0);
    let doc = run.json();
    assert_eq!(doc["keys"][0]["age_days"], 10);
    assert_eq!(doc["keys"][1]["rotation_due"], false);
    assert_eq!(doc["warnings"], serde_json::json!([]));
    assert!(run.stderr.is_empty(), "{run:?}");

    age_keys(&mut s, 200);
    s.env.set("SKIM_KEY_ROTATION_DAYS", "365");
    let human = s.skim(&["auth-check"]);
    human.expect_code(0);
    assert!(human.stdout.contains("200 days old"), "{human:?}");
    assert!(!human.stdout.contains("rotation"), "{human:?}");
    assert!(human.stderr.is_empty(), "{human:?}");
}

#[test]
fn a_malformed_rotation_period_is_a_usage_error() {
    let mut s = SimEnv::start();
    s.env.set("SKIM_KEY_ROTATION_DAYS", "half a year");
    let run = s.skim(&["auth-check"]);
    run.expect_code(2);
    assert!(
        run.stderr
            .contains("SKIM_KEY_ROTATION_DAYS is \"half a year\""),
        "{run:?}"
    );
    assert_eq!(s.sim.requests().len(), 0, "nothing is sent");
}
