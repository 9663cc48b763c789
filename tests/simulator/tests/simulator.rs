//! Drives the simulator over loopback with the tests' own client (see
//! `support`): the handshake, signed requests, the session's lifecycle, the
//! faults, the binary and shutdown.

mod support;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use skim_sim::{QuerySigning, Setup, Simulator};
use support::{
    Client, INIT_BODY, Sign, exchange, hex, keys_dir, now_secs, start_with, vector_keys,
};

#[test]
fn keys_dir_gives_the_client_environment() {
    let (sim, client, setup) = start_with("env", |_| {});
    let env = setup.env_lines(&sim.base_url());
    let names: Vec<&str> = env.lines().map(|l| l.split_once('=').unwrap().0).collect();
    assert_eq!(
        names,
        [
            "OAUTH_CONSUMER_KEY",
            "OAUTH_ACCESS_TOKEN",
            "OAUTH_ACCESS_TOKEN_SECRET",
            "OAUTH_DH_PRIME",
            "IBKR_BASE_URL"
        ]
    );
    assert_eq!(
        sim.base_url(),
        format!("http://127.0.0.1:{}/v1/api", sim.addr().port())
    );
    assert!(env.contains(&format!("IBKR_BASE_URL={}\n", sim.base_url())));
    assert_eq!(client.consumer_key.len(), 9);
    assert!(client.consumer_key.bytes().all(|b| b.is_ascii_uppercase()));
    assert_eq!(client.secret, setup.config.access_token_secret);
    assert_eq!(client.secret.len(), 32);
    assert!(
        client
            .prime
            .to_str_radix(16)
            .starts_with("ffffffffffffffffadf85458a2bb4a9a")
    );
    assert!(!format!("{:?}", setup.config).contains(&hex(&client.secret)));
}

#[test]
fn handshake_gives_the_token_the_client_computes() {
    let (sim, mut client, _) = start_with("handshake", |_| {});
    // Several handshakes, so both shapes of K (with and without the sign
    // byte) are very likely exercised.
    for round in 1..=6 {
        let answer = client.handshake();
        let body = answer.json();
        let expires = body["live_session_token_expiration"].as_u64().unwrap();
        let day_ms = 24 * 3600 * 1000;
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        assert!(expires > now_ms + day_ms - 60_000 && expires <= now_ms + day_ms);
        assert_eq!(sim.handshake_count(), round);
        let status = client.send("POST", "/iserver/auth/status", "");
        assert_eq!(status.status, 200, "round {round}: {}", status.body);
    }
    let log = sim.requests();
    assert!(log.iter().all(|r| r.signature_verified && r.status == 200));
    assert!(log.iter().all(|r| {
        r.headers
            .iter()
            .all(|(k, _)| !k.eq_ignore_ascii_case("authorization"))
    }));
    assert_eq!(sim.count("POST", "/oauth/live_session_token"), 6);
}

#[test]
fn session_lifecycle_follows_ibkr() {
    let (sim, mut client, _) = start_with("lifecycle", |_| {});
    client.handshake();
    let status = client.send("POST", "/iserver/auth/status", "").json();
    assert_eq!(status["authenticated"], false);
    assert_eq!(status["connected"], true);

    let no_bridge = client.get("/iserver/accounts");
    assert_eq!(
        (no_bridge.status, no_bridge.body.as_str()),
        (400, "Bad Request: no bridge")
    );

    let refused = client.send_with(
        "POST",
        "/iserver/auth/ssodh/init",
        r#"{"publish":false,"compete":true}"#,
        Sign::default(),
    );
    assert_eq!(refused.status, 500);
    let init = client.send_with(
        "POST",
        "/iserver/auth/ssodh/init",
        INIT_BODY,
        Sign::default(),
    );
    assert_eq!(init.json()["authenticated"], true);
    assert!(sim.is_brokerage_authenticated());

    let accounts = client.get("/iserver/accounts").json();
    assert_eq!(accounts["selectedAccount"], "DU1234567");
    assert_eq!(accounts["accounts"][0], "DU1234567");
    assert_eq!(accounts["isPaper"], true);
    let portfolio = client.get("/portfolio/accounts").json();
    assert_eq!(portfolio[0]["accountId"], "DU1234567");
    let tickle = client.send("POST", "/tickle", "").json();
    assert_eq!(tickle["iserver"]["authStatus"]["authenticated"], true);
    assert!(tickle["ssoExpires"].as_u64().unwrap() > 0);

    assert_eq!(client.send("POST", "/logout", "").json()["status"], true);
    assert_eq!(client.send("POST", "/tickle", "").status, 401);
    assert_eq!(client.get("/nowhere").status, 401);
    client.handshake();
    assert_eq!(client.get("/nowhere").status, 404);
}

#[test]
fn init_takes_effect_after_the_configured_delay() {
    let (sim, mut client, _) =
        start_with("init-delay", |c| c.init_delay = Duration::from_millis(300));
    client.handshake();
    let init = client.send_with(
        "POST",
        "/iserver/auth/ssodh/init",
        INIT_BODY,
        Sign::default(),
    );
    assert_eq!(init.json()["authenticated"], false);
    assert_eq!(client.get("/iserver/accounts").status, 400);
    let started = Instant::now();
    while client.send("POST", "/iserver/auth/status", "").json()["authenticated"] != true {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "init never took effect"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert!(sim.is_brokerage_authenticated());
    assert_eq!(client.get("/iserver/accounts").status, 200);
}

#[test]
fn handshake_refuses_bad_signature_stale_timestamp_and_replay() {
    let (sim, mut client, _) = start_with("handshake-refusals", |_| {});
    let (_, wrong_key) = vector_keys();
    let bad = client
        .handshake_with(&wrong_key, Sign::default())
        .unwrap_err();
    assert_eq!(bad.status, 401);
    assert_eq!(bad.json()["statusCode"], 401);
    assert!(bad.json()["error"].as_str().unwrap().contains("signature"));

    let key = client.signature_key.clone();
    let stale = Sign {
        timestamp: Some(now_secs() - 301),
        ..Sign::default()
    };
    let stale = client.handshake_with(&key, stale).unwrap_err();
    assert_eq!(stale.status, 401);
    assert!(
        stale.json()["error"]
            .as_str()
            .unwrap()
            .contains("timestamp")
    );

    let nonce = Sign {
        nonce: Some("once-only-nonce".into()),
        ..Sign::default()
    };
    client.handshake_with(&key, nonce).unwrap();
    let again = Sign {
        nonce: Some("once-only-nonce".into()),
        ..Sign::default()
    };
    let replay = client.handshake_with(&key, again).unwrap_err();
    assert_eq!(replay.status, 401);
    assert!(replay.json()["error"].as_str().unwrap().contains("nonce"));
    assert_eq!(sim.handshake_count(), 1);

    let verified: Vec<bool> = sim
        .requests()
        .iter()
        .map(|r| r.signature_verified)
        .collect();
    assert_eq!(verified, [false, false, true, true]);
}

#[test]
fn handshake_refuses_wrong_consumer_token_and_missing_header() {
    let (sim, mut client, _) = start_with("handshake-identity", |_| {});
    let key = client.signature_key.clone();
    client.consumer_key = "WRONGKEYX".into();
    let wrong = client.handshake_with(&key, Sign::default()).unwrap_err();
    assert_eq!(wrong.json()["error"], "id: 123, error: invalid consumer");
    let headers = [
        ("User-Agent", "t".to_string()),
        ("Content-Length", "0".to_string()),
    ];
    let bare = exchange(
        client.addr,
        "POST",
        "/v1/api/oauth/live_session_token",
        &headers,
        "",
    );
    assert_eq!(bare.status, 401);
    assert!(
        bare.json()["error"]
            .as_str()
            .unwrap()
            .contains("Authorization")
    );
    assert_eq!(sim.handshake_count(), 0);
}

#[test]
fn ibkr_header_rules_411_and_400() {
    let (sim, client, _) = start_with("headers", |_| {});
    let no_length = exchange(
        client.addr,
        "POST",
        "/v1/api/oauth/live_session_token",
        &[("User-Agent", "t".to_string())],
        "",
    );
    assert_eq!(no_length.status, 411);
    let no_agent = exchange(client.addr, "GET", "/v1/api/iserver/accounts", &[], "");
    assert_eq!(no_agent.status, 400);
    assert_eq!(sim.requests().len(), 2);
}

#[test]
fn signed_requests_accept_good_and_refuse_tampered_stale_or_replayed() {
    let (sim, mut client, _) = start_with("signed", |_| {});
    client.handshake();
    assert_eq!(client.get("/tickle").status, 200);
    let tampered = Sign {
        tamper: true,
        ..Sign::default()
    };
    let answer = client.send_with("GET", "/tickle", "", tampered);
    assert_eq!(answer.status, 401);
    assert!(
        answer.json()["error"]
            .as_str()
            .unwrap()
            .contains("signature")
    );
    let stale = Sign {
        timestamp: Some(now_secs() + 400),
        ..Sign::default()
    };
    assert_eq!(client.send_with("GET", "/tickle", "", stale).status, 401);
    let first = Sign {
        nonce: Some("n1".into()),
        ..Sign::default()
    };
    assert_eq!(client.send_with("GET", "/tickle", "", first).status, 200);
    let replay = Sign {
        nonce: Some("n1".into()),
        ..Sign::default()
    };
    assert_eq!(client.send_with("GET", "/tickle", "", replay).status, 401);
    let verified: Vec<bool> = sim
        .requests()
        .iter()
        .map(|r| r.signature_verified)
        .collect();
    assert_eq!(verified, [true, true, false, false, true, false]);
}

#[test]
fn query_signing_accepts_only_the_configured_form() {
    let (sim, mut client, _) = start_with("query", |_| {});
    client.handshake();
    // /tickle is not paced, so the same call can be repeated at once.
    let target = "/tickle?conids=265598&fields=31,84";
    let with_query = || Sign {
        include_query: true,
        ..Sign::default()
    };
    assert_eq!(client.get(target).status, 200);
    assert_eq!(
        client.send_with("GET", target, "", with_query()).status,
        401
    );

    sim.set_query_signing(QuerySigning::Included);
    assert_eq!(
        client.send_with("GET", target, "", with_query()).status,
        200
    );
    assert_eq!(client.get(target).status, 401);
    assert_eq!(
        sim.requests().last().unwrap().query,
        "conids=265598&fields=31,84"
    );
}

#[test]
fn token_expires_after_its_lifetime() {
    let (_sim, mut client, _) =
        start_with("lifetime", |c| c.lst_lifetime = Duration::from_millis(300));
    client.handshake();
    assert_eq!(client.send("POST", "/tickle", "").status, 200);
    std::thread::sleep(Duration::from_millis(400));
    let expired = client.send("POST", "/tickle", "");
    assert_eq!(expired.status, 401);
    assert!(
        expired.json()["error"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
}

#[test]
fn fault_wrong_token_signature_and_invalid_consumer() {
    let (sim, mut client, _) = start_with("fault-handshake", |_| {});
    let key = client.signature_key.clone();
    sim.faults(|f| f.wrong_token_signature = true);
    let answer = client.handshake_with(&key, Sign::default()).unwrap_err();
    assert_eq!(
        answer.status, 200,
        "the handshake succeeds but cannot validate"
    );
    sim.faults(|f| f.wrong_token_signature = false);
    client.handshake();

    sim.faults(|f| f.invalid_consumer = true);
    let refused = client.handshake_with(&key, Sign::default()).unwrap_err();
    assert_eq!(refused.status, 401);
    assert_eq!(
        refused.body,
        r#"{"error":"id: 123, error: invalid consumer","statusCode":401}"#
    );
}

#[test]
fn fault_401_and_410_forget_the_token() {
    let (sim, mut client, _) = start_with("fault-expiry", |_| {});
    client.handshake();
    client.open_session(true);
    sim.faults(|f| f.unauthorized_next = 1);
    assert_eq!(client.get("/iserver/accounts").status, 401);
    assert_eq!(
        client.get("/iserver/accounts").status,
        401,
        "the token is gone"
    );
    client.handshake();
    assert_eq!(
        client.get("/iserver/accounts").status,
        400,
        "bridge closed too"
    );
    client.open_session(true);

    sim.faults(|f| f.gone_next = 2);
    assert_eq!(client.send("POST", "/tickle", "").status, 410);
    client.handshake();
    assert_eq!(client.send("POST", "/tickle", "").status, 410);
    client.handshake();
    assert_eq!(client.send("POST", "/tickle", "").status, 200);
    assert_eq!(sim.handshake_count(), 4);
    sim.expire_token();
    assert_eq!(client.send("POST", "/tickle", "").status, 401);
}

#[test]
fn fault_no_bridge_and_lost_priming() {
    let (sim, mut client, _) = start_with("fault-session", |_| {});
    client.handshake();
    client.open_session(true);
    let switch = |client: &Client| {
        client.send_with(
            "POST",
            "/iserver/account",
            r#"{"acctId":"DU1234567"}"#,
            Sign::default(),
        )
    };
    assert_eq!(switch(&client).json()["set"], true);

    sim.lose_priming();
    let unprimed = switch(&client);
    assert_eq!(unprimed.status, 400);
    assert!(unprimed.body.contains("Please query /accounts first"));
    assert_eq!(client.get("/iserver/accounts").status, 200);
    assert_eq!(switch(&client).status, 200);

    sim.drop_bridge();
    let dropped = client.get("/iserver/accounts");
    assert_eq!(
        (dropped.status, dropped.body.as_str()),
        (400, "Bad Request: no bridge")
    );
    assert_eq!(
        client.send("POST", "/iserver/auth/status", "").json()["authenticated"],
        false
    );
    client.open_session(true);
    assert_eq!(switch(&client).status, 200);
}

#[test]
fn fault_penalty_box_5xx_and_delay() {
    let (sim, mut client, _) = start_with("fault-server", |_| {});
    client.handshake();
    sim.faults(|f| f.penalty = Some(Duration::from_millis(300)));
    assert_eq!(client.send("POST", "/tickle", "").status, 429);
    let unsigned = exchange(client.addr, "GET", "/v1/api/tickle", &[], "");
    assert_eq!(
        unsigned.status, 429,
        "the penalty box applies to every request"
    );
    std::thread::sleep(Duration::from_millis(350));
    assert_eq!(client.send("POST", "/tickle", "").status, 200);

    sim.faults(|f| f.server_error = Some((502, 0)));
    assert_eq!(
        client.send("POST", "/tickle", "").status,
        200,
        "a zero count is no fault"
    );
    sim.faults(|f| f.server_error = Some((503, 2)));
    assert_eq!(client.send("POST", "/tickle", "").status, 503);
    assert_eq!(client.send("POST", "/tickle", "").status, 503);
    assert_eq!(client.send("POST", "/tickle", "").status, 200);

    sim.faults(|f| f.delay = Duration::from_millis(250));
    let started = Instant::now();
    assert_eq!(client.send("POST", "/tickle", "").status, 200);
    assert!(started.elapsed() >= Duration::from_millis(250));
}

#[test]
fn live_and_paper_accounts() {
    let (sim, mut client, _) = start_with("accounts", |c| *c = c.clone().with_live_account());
    client.handshake();
    client.open_session(true);
    let live = client.get("/iserver/accounts").json();
    assert_eq!(
        (live["selectedAccount"].as_str(), live["isPaper"].as_bool()),
        (Some("U7654321"), Some(false))
    );
    sim.set_account("DU7777777", true).unwrap();
    let paper = client.get("/iserver/accounts").json();
    assert_eq!(
        (
            paper["selectedAccount"].as_str(),
            paper["isPaper"].as_bool()
        ),
        (Some("DU7777777"), Some(true))
    );
    assert!(sim.set_account("U1", true).is_err());
}

#[test]
fn config_mismatch_is_refused_at_start() {
    let (signature, encryption) = vector_keys();
    let mut setup = Setup::from_keys_dir(&keys_dir("bad-config", &signature, &encryption)).unwrap();
    setup.config.paper = false;
    let error = Simulator::start(setup.config.clone()).err().unwrap();
    assert!(error.to_string().contains("DU"), "{error}");
    setup.config.paper = true;
    setup.config.public_signature_pem = "not a key".into();
    assert!(Simulator::start(setup.config).is_err());
}

#[test]
fn binary_prints_the_environment_and_serves() {
    let (signature, encryption) = vector_keys();
    let dir = keys_dir("binary", &signature, &encryption);
    let env_file = dir.join("sim.env");
    let _ = std::fs::remove_file(&env_file);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_skim-sim"))
        .args([
            "--keys-dir",
            dir.to_str().unwrap(),
            "--env-out",
            env_file.to_str().unwrap(),
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("serving") {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "skim-sim exited early"
        );
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&env_file).unwrap().permissions().mode();
    let text = std::fs::read_to_string(&env_file).unwrap();
    let url = text
        .lines()
        .find_map(|l| l.strip_prefix("IBKR_BASE_URL="))
        .unwrap()
        .to_string();
    let addr: SocketAddr = url
        .trim_start_matches("http://")
        .trim_end_matches("/v1/api")
        .parse()
        .unwrap();
    let answer = exchange(
        addr,
        "GET",
        "/v1/api/tickle",
        &[("User-Agent", "t".to_string())],
        "",
    );
    line.clear();
    stderr.read_line(&mut line).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(text.lines().count(), 7);
    assert!(text.contains("ASX_ANNOUNCEMENTS_URL=http://127.0.0.1:"));
    assert!(text.contains("DISCORD_WEBHOOK_URL=http://127.0.0.1:"));
    assert_eq!(answer.status, 401);
    assert!(line.contains("GET /v1/api/tickle -> 401"), "{line}");
}

#[test]
fn dropping_the_simulator_closes_the_port() {
    let (sim, client, _) = start_with("drop", |_| {});
    assert!(TcpStream::connect(client.addr).is_ok());
    drop(sim);
    assert!(TcpStream::connect(client.addr).is_err());
}
