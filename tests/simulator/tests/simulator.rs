//! Drives the simulator over loopback with a tiny client written here, from
//! the reference, without the simulator's own OAuth code: a bug shared by
//! both sides would otherwise pass unnoticed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use num_bigint::{BigUint, RandBigInt};
use rand::Rng;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::{EncodePublicKey, LineEnding};
use rsa::signature::{SignatureEncoding, Signer};
use rsa::{Pkcs1v15Encrypt, RsaPrivateKey};
use serde_json::Value;
use sha1::Sha1;
use sha2::Sha256;
use skim_sim::{Config, QuerySigning, Setup, Simulator};

const DHPARAM_FFDHE2048: &str = include_str!("data/ffdhe2048-dhparam.txt");

fn vector_keys() -> (RsaPrivateKey, RsaPrivateKey) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/oauth_vectors.json");
    let json: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let v = &json["vectors"][0];
    let key = |name: &str| RsaPrivateKey::from_pkcs1_pem(v[name].as_str().unwrap()).unwrap();
    (key("private_signature_pem"), key("private_encryption_pem"))
}

/// A keys folder like `skim keys-gen` makes, minus the private files.
fn keys_dir(name: &str, signature: &RsaPrivateKey, encryption: &RsaPrivateKey) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("skim-sim-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    let public = |key: &RsaPrivateKey| {
        key.to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap()
    };
    std::fs::write(dir.join("public_signature.pem"), public(signature)).unwrap();
    std::fs::write(dir.join("public_encryption.pem"), public(encryption)).unwrap();
    std::fs::write(dir.join("dhparam.pem"), DHPARAM_FFDHE2048).unwrap();
    dir
}

/// RFC 3986 encoding, written out byte by byte.
fn enc(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn random_nonce() -> String {
    hex(&rand::thread_rng().r#gen::<[u8; 8]>())
}

/// A raw HTTP/1.1 answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }
}

/// Sends one request without a body and reads the whole answer. Headers
/// are given as is, so tests can leave out `Content-Length` or `User-Agent`.
fn exchange(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, String)]) -> Answer {
    exchange_with_body(addr, method, target, headers, "")
}

/// How to sign one request; the defaults give a correct one.
#[derive(Default)]
struct Sign {
    nonce: Option<String>,
    timestamp: Option<i64>,
    include_query: bool,
    tamper: bool,
}

/// The client side of IBKR's OAuth, as the reference describes it.
struct Client {
    addr: SocketAddr,
    consumer_key: String,
    access_token: String,
    signature_key: RsaPrivateKey,
    secret: Vec<u8>,
    prime: BigUint,
    token: Option<Vec<u8>>,
}

impl Client {
    fn url(&self, path: &str) -> String {
        format!("http://{}/v1/api{path}", self.addr)
    }

    fn header(params: &[(String, String)]) -> String {
        let items: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", enc(v)))
            .collect();
        format!("OAuth realm=\"limited_poa\", {}", items.join(", "))
    }

    fn oauth_params(&self, method: &str, nonce: String, timestamp: i64) -> Vec<(String, String)> {
        vec![
            ("oauth_consumer_key".into(), self.consumer_key.clone()),
            ("oauth_nonce".into(), nonce),
            ("oauth_signature_method".into(), method.into()),
            ("oauth_timestamp".into(), timestamp.to_string()),
            ("oauth_token".into(), self.access_token.clone()),
        ]
    }

    fn base(prepend: &str, method: &str, url: &str, params: &mut [(String, String)]) -> String {
        params.sort();
        let joined: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("{prepend}{method}&{}&{}", enc(url), enc(&joined.join("&")))
    }

    /// Runs the handshake; on success stores the token and returns the
    /// answer. `key` signs the request (the right one unless a test says).
    fn handshake_with(&mut self, key: &RsaPrivateKey, sign: Sign) -> Result<Answer, Answer> {
        let a = rand::thread_rng().gen_biguint(256);
        let challenge = BigUint::from(2u8).modpow(&a, &self.prime);
        let mut params = self.oauth_params(
            "RSA-SHA256",
            sign.nonce.unwrap_or_else(random_nonce),
            sign.timestamp.unwrap_or_else(now_secs),
        );
        params.push((
            "diffie_hellman_challenge".into(),
            challenge.to_str_radix(16),
        ));
        let url = self.url("/oauth/live_session_token");
        let base = Self::base(&hex(&self.secret), "POST", &url, &mut params);
        let signature = SigningKey::<Sha256>::new(key.clone())
            .sign(base.as_bytes())
            .to_vec();
        params.push(("oauth_signature".into(), BASE64.encode(signature)));
        let headers = [
            ("Authorization", Self::header(&params)),
            ("User-Agent", "sim-test".to_string()),
            ("Content-Length", "0".to_string()),
        ];
        let answer = exchange(
            self.addr,
            "POST",
            "/v1/api/oauth/live_session_token",
            &headers,
        );
        if answer.status != 200 {
            return Err(answer);
        }

        let body = answer.json();
        let response = BigUint::parse_bytes(
            body["diffie_hellman_response"].as_str().unwrap().as_bytes(),
            16,
        )
        .unwrap();
        let shared = response.modpow(&a, &self.prime);
        // Java's toByteArray: a sign byte when the top bit is set.
        let mut k_bytes = shared.to_bytes_be();
        if k_bytes[0] >= 0x80 {
            k_bytes.insert(0, 0);
        }
        let mut mac = Hmac::<Sha1>::new_from_slice(&k_bytes).unwrap();
        mac.update(&self.secret);
        let token = mac.finalize().into_bytes().to_vec();
        let mut check = Hmac::<Sha1>::new_from_slice(&token).unwrap();
        check.update(self.consumer_key.as_bytes());
        if hex(&check.finalize().into_bytes()) != body["live_session_token_signature"] {
            return Err(answer);
        }
        self.token = Some(token);
        Ok(answer)
    }

    fn handshake(&mut self) -> Answer {
        let key = self.signature_key.clone();
        self.handshake_with(&key, Sign::default())
            .expect("handshake accepted and validated")
    }

    /// Sends an HMAC-signed request to `target` (API path, maybe a query).
    fn send_with(&self, method: &str, target: &str, body: &str, sign: Sign) -> Answer {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let mut params = self.oauth_params(
            "HMAC-SHA256",
            sign.nonce.unwrap_or_else(random_nonce),
            sign.timestamp.unwrap_or_else(now_secs),
        );
        if sign.include_query {
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').unwrap();
                params.push((k.to_string(), v.to_string()));
            }
        }
        let mut signed: Vec<(String, String)> = params.clone();
        let base = Self::base("", method, &self.url(path), &mut signed);
        let token = self.token.as_ref().expect("a live session token");
        let mut mac = Hmac::<Sha256>::new_from_slice(token).unwrap();
        mac.update(base.as_bytes());
        let mut signature = mac.finalize().into_bytes().to_vec();
        if sign.tamper {
            signature[0] ^= 1;
        }
        let mut header_params: Vec<(String, String)> = params
            .into_iter()
            .filter(|(k, _)| k.starts_with("oauth_"))
            .collect();
        header_params.push(("oauth_signature".into(), BASE64.encode(signature)));
        header_params.sort();
        let mut headers = vec![
            ("Authorization", Self::header(&header_params)),
            ("User-Agent", "sim-test".to_string()),
        ];
        if method == "POST" {
            headers.push(("Content-Length", body.len().to_string()));
            headers.push(("Content-Type", "application/json".to_string()));
        }
        let mut answer = exchange_with_body(
            self.addr,
            method,
            &format!("/v1/api{target}"),
            &headers,
            body,
        );
        answer.body = answer.body.trim().to_string();
        answer
    }

    fn send(&self, method: &str, target: &str) -> Answer {
        self.send_with(method, target, "", Sign::default())
    }

    /// Opens the brokerage session and primes the accounts.
    fn open_session(&self) {
        let init = self.send_with(
            "POST",
            "/iserver/auth/ssodh/init",
            INIT_BODY,
            Sign::default(),
        );
        assert_eq!(init.status, 200, "{}", init.body);
        let accounts = self.send("GET", "/iserver/accounts");
        assert_eq!(accounts.status, 200, "{}", accounts.body);
    }
}

const INIT_BODY: &str = r#"{"publish":true,"compete":true}"#;

/// Sends one HTTP/1.1 request with `body` after the headers and reads the
/// whole answer; `Connection: close` lets the answer end at EOF.
fn exchange_with_body(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, String)],
    body: &str,
) -> Answer {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut request =
        format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, rest) = raw.split_once("\r\n\r\n").expect("a complete HTTP answer");
    Answer {
        status: head.split(' ').nth(1).unwrap().parse().unwrap(),
        body: rest.to_string(),
    }
}

/// Starts a simulator from a keys folder, lets the test adjust the config,
/// and returns it with a client holding the matching credentials.
fn start(name: &str, tweak: impl FnOnce(&mut Config)) -> (Simulator, Client, Setup) {
    let (signature, encryption) = vector_keys();
    let mut setup = Setup::from_keys_dir(&keys_dir(name, &signature, &encryption)).unwrap();
    tweak(&mut setup.config);
    let sim = Simulator::start(setup.config.clone()).unwrap();
    let env: std::collections::HashMap<_, _> =
        setup.env_pairs(&sim.base_url()).into_iter().collect();
    let ciphertext = BASE64.decode(&env["OAUTH_ACCESS_TOKEN_SECRET"]).unwrap();
    let client = Client {
        addr: sim.addr(),
        consumer_key: env["OAUTH_CONSUMER_KEY"].clone(),
        access_token: env["OAUTH_ACCESS_TOKEN"].clone(),
        signature_key: signature,
        secret: encryption.decrypt(Pkcs1v15Encrypt, &ciphertext).unwrap(),
        prime: BigUint::parse_bytes(env["OAUTH_DH_PRIME"].as_bytes(), 16).unwrap(),
        token: None,
    };
    (sim, client, setup)
}

#[test]
fn keys_dir_gives_the_client_environment() {
    let (sim, client, setup) = start("env", |_| {});
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
    let (sim, mut client, _) = start("handshake", |_| {});
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
        let status = client.send("POST", "/iserver/auth/status");
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
    let (sim, mut client, _) = start("lifecycle", |_| {});
    client.handshake();
    let status = client.send("POST", "/iserver/auth/status").json();
    assert_eq!(status["authenticated"], false);
    assert_eq!(status["connected"], true);

    let no_bridge = client.send("GET", "/iserver/accounts");
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

    let accounts = client.send("GET", "/iserver/accounts").json();
    assert_eq!(accounts["selectedAccount"], "DU1234567");
    assert_eq!(accounts["accounts"][0], "DU1234567");
    assert_eq!(accounts["isPaper"], true);
    let portfolio = client.send("GET", "/portfolio/accounts").json();
    assert_eq!(portfolio[0]["accountId"], "DU1234567");
    let tickle = client.send("POST", "/tickle").json();
    assert_eq!(tickle["iserver"]["authStatus"]["authenticated"], true);
    assert!(tickle["ssoExpires"].as_u64().unwrap() > 0);

    assert_eq!(client.send("POST", "/logout").json()["status"], true);
    assert_eq!(client.send("POST", "/tickle").status, 401);
    assert_eq!(client.send("GET", "/nowhere").status, 401);
    client.handshake();
    assert_eq!(client.send("GET", "/nowhere").status, 404);
}

#[test]
fn init_takes_effect_after_the_configured_delay() {
    let (sim, mut client, _) = start("init-delay", |c| c.init_delay = Duration::from_millis(300));
    client.handshake();
    let init = client.send_with(
        "POST",
        "/iserver/auth/ssodh/init",
        INIT_BODY,
        Sign::default(),
    );
    assert_eq!(init.json()["authenticated"], false);
    assert_eq!(client.send("GET", "/iserver/accounts").status, 400);
    let started = Instant::now();
    while client.send("POST", "/iserver/auth/status").json()["authenticated"] != true {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "init never took effect"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert!(sim.is_brokerage_authenticated());
    assert_eq!(client.send("GET", "/iserver/accounts").status, 200);
}

#[test]
fn handshake_refuses_bad_signature_stale_timestamp_and_replay() {
    let (sim, mut client, _) = start("handshake-refusals", |_| {});
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
    let (sim, mut client, _) = start("handshake-identity", |_| {});
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
    let (sim, client, _) = start("headers", |_| {});
    let no_length = exchange(
        client.addr,
        "POST",
        "/v1/api/oauth/live_session_token",
        &[("User-Agent", "t".to_string())],
    );
    assert_eq!(no_length.status, 411);
    let no_agent = exchange(client.addr, "GET", "/v1/api/iserver/accounts", &[]);
    assert_eq!(no_agent.status, 400);
    assert_eq!(sim.requests().len(), 2);
}

#[test]
fn signed_requests_accept_good_and_refuse_tampered_stale_or_replayed() {
    let (sim, mut client, _) = start("signed", |_| {});
    client.handshake();
    assert_eq!(client.send("GET", "/portfolio/accounts").status, 200);
    let tampered = Sign {
        tamper: true,
        ..Sign::default()
    };
    let answer = client.send_with("GET", "/portfolio/accounts", "", tampered);
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
    assert_eq!(
        client
            .send_with("GET", "/portfolio/accounts", "", stale)
            .status,
        401
    );
    let first = Sign {
        nonce: Some("n1".into()),
        ..Sign::default()
    };
    assert_eq!(
        client
            .send_with("GET", "/portfolio/accounts", "", first)
            .status,
        200
    );
    let replay = Sign {
        nonce: Some("n1".into()),
        ..Sign::default()
    };
    assert_eq!(
        client
            .send_with("GET", "/portfolio/accounts", "", replay)
            .status,
        401
    );
    let verified: Vec<bool> = sim
        .requests()
        .iter()
        .map(|r| r.signature_verified)
        .collect();
    assert_eq!(verified, [true, true, false, false, true, false]);
}

#[test]
fn query_signing_accepts_only_the_configured_form() {
    let (sim, mut client, _) = start("query", |_| {});
    client.handshake();
    let target = "/portfolio/accounts?conids=265598&fields=31,84";
    let with_query = || Sign {
        include_query: true,
        ..Sign::default()
    };
    assert_eq!(client.send("GET", target).status, 200);
    assert_eq!(
        client.send_with("GET", target, "", with_query()).status,
        401
    );

    sim.set_query_signing(QuerySigning::Included);
    assert_eq!(
        client.send_with("GET", target, "", with_query()).status,
        200
    );
    assert_eq!(client.send("GET", target).status, 401);
    assert_eq!(
        sim.requests().last().unwrap().query,
        "conids=265598&fields=31,84"
    );
}

#[test]
fn token_expires_after_its_lifetime() {
    let (_sim, mut client, _) = start("lifetime", |c| c.lst_lifetime = Duration::from_millis(300));
    client.handshake();
    assert_eq!(client.send("POST", "/tickle").status, 200);
    std::thread::sleep(Duration::from_millis(400));
    let expired = client.send("POST", "/tickle");
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
    let (sim, mut client, _) = start("fault-handshake", |_| {});
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
    let (sim, mut client, _) = start("fault-expiry", |_| {});
    client.handshake();
    client.open_session();
    sim.faults(|f| f.unauthorized_next = 1);
    assert_eq!(client.send("GET", "/iserver/accounts").status, 401);
    assert_eq!(
        client.send("GET", "/iserver/accounts").status,
        401,
        "the token is gone"
    );
    client.handshake();
    assert_eq!(
        client.send("GET", "/iserver/accounts").status,
        400,
        "bridge closed too"
    );
    client.open_session();

    sim.faults(|f| f.gone_next = 2);
    assert_eq!(client.send("POST", "/tickle").status, 410);
    client.handshake();
    assert_eq!(client.send("POST", "/tickle").status, 410);
    client.handshake();
    assert_eq!(client.send("POST", "/tickle").status, 200);
    assert_eq!(sim.handshake_count(), 4);
    sim.expire_token();
    assert_eq!(client.send("POST", "/tickle").status, 401);
}

#[test]
fn fault_no_bridge_and_lost_priming() {
    let (sim, mut client, _) = start("fault-session", |_| {});
    client.handshake();
    client.open_session();
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
    assert_eq!(client.send("GET", "/iserver/accounts").status, 200);
    assert_eq!(switch(&client).status, 200);

    sim.drop_bridge();
    let dropped = client.send("GET", "/iserver/accounts");
    assert_eq!(
        (dropped.status, dropped.body.as_str()),
        (400, "Bad Request: no bridge")
    );
    assert_eq!(
        client.send("POST", "/iserver/auth/status").json()["authenticated"],
        false
    );
    client.open_session();
    assert_eq!(switch(&client).status, 200);
}

#[test]
fn fault_penalty_box_5xx_and_delay() {
    let (sim, mut client, _) = start("fault-server", |_| {});
    client.handshake();
    sim.faults(|f| f.penalty = Some(Duration::from_millis(300)));
    assert_eq!(client.send("POST", "/tickle").status, 429);
    let unsigned = exchange(client.addr, "GET", "/v1/api/tickle", &[]);
    assert_eq!(
        unsigned.status, 429,
        "the penalty box applies to every request"
    );
    std::thread::sleep(Duration::from_millis(350));
    assert_eq!(client.send("POST", "/tickle").status, 200);

    sim.faults(|f| f.server_error = Some((502, 0)));
    assert_eq!(
        client.send("POST", "/tickle").status,
        200,
        "a zero count is no fault"
    );
    sim.faults(|f| f.server_error = Some((503, 2)));
    assert_eq!(client.send("POST", "/tickle").status, 503);
    assert_eq!(client.send("POST", "/tickle").status, 503);
    assert_eq!(client.send("POST", "/tickle").status, 200);

    sim.faults(|f| f.delay = Duration::from_millis(250));
    let started = Instant::now();
    assert_eq!(client.send("POST", "/tickle").status, 200);
    assert!(started.elapsed() >= Duration::from_millis(250));
}

#[test]
fn live_and_paper_accounts() {
    let (sim, mut client, _) = start("accounts", |c| *c = c.clone().with_live_account());
    client.handshake();
    client.open_session();
    let live = client.send("GET", "/iserver/accounts").json();
    assert_eq!(
        (live["selectedAccount"].as_str(), live["isPaper"].as_bool()),
        (Some("U7654321"), Some(false))
    );
    sim.set_account("DU7777777", true).unwrap();
    let paper = client.send("GET", "/iserver/accounts").json();
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
    let (sim, client, _) = start("drop", |_| {});
    assert!(TcpStream::connect(client.addr).is_ok());
    drop(sim);
    assert!(TcpStream::connect(client.addr).is_err());
}
