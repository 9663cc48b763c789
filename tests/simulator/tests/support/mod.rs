//! The tests' own client for the simulator: IBKR's OAuth written from the
//! reference (sections 2 and 3) without the simulator's OAuth code, since a
//! bug shared by both sides would otherwise pass unnoticed, with ways to
//! spoil a signature on purpose; plus plain HTTP for the ASX page, the
//! Discord webhook and the control endpoints. Each test binary uses a
//! different part of it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
use skim_sim::{Config, Setup, Simulator};

/// An HTTP answer, read to the end.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    /// The body as JSON; panics, showing the status and body, if it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|_| panic!("not JSON ({}): {}", self.status, self.body))
    }

    /// The first header named `name`, matched without regard to case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one HTTP/1.1 request with `body` after the headers and reads the
/// whole answer; `Connection: close` lets the answer end at EOF. Headers go
/// out as given, so tests can leave out `Content-Length` or `User-Agent`.
pub fn exchange(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, String)],
    body: &str,
) -> Answer {
    parse_answer(&raw_exchange(addr, method, target, headers, body))
}

/// [`exchange`] without parsing: the bytes the server sent before it
/// closed the connection, as text (empty when it sent none).
pub fn raw_exchange(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, String)],
    body: &str,
) -> String {
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
    // A reset instead of a clean close also means "no answer".
    let _ = stream.read_to_string(&mut raw);
    raw
}

/// Splits a raw HTTP answer into status, headers and body; panics when
/// it is not a complete answer.
pub fn parse_answer(raw: &str) -> Answer {
    let (head, rest) = raw.split_once("\r\n\r\n").expect("a complete HTTP answer");
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: rest.to_string(),
    }
}

/// A POST with a JSON body and the headers a careful client sends.
pub fn post_json(addr: SocketAddr, target: &str, user_agent: &str, body: &str) -> Answer {
    let headers = [
        ("User-Agent", user_agent.to_string()),
        ("Content-Type", "application/json".to_string()),
        ("Content-Length", body.len().to_string()),
    ];
    exchange(addr, "POST", target, &headers, body)
}

/// A GET with a User-Agent and nothing else.
pub fn get(addr: SocketAddr, target: &str) -> Answer {
    exchange(
        addr,
        "GET",
        target,
        &[("User-Agent", "Mozilla/5.0 (test)".into())],
        "",
    )
}

/// RFC 3986 encoding, written out byte by byte as OAuth wants it.
pub fn enc(text: &str) -> String {
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

/// Lowercase hex, two digits a byte.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The wall clock in Unix seconds, as an OAuth timestamp wants it.
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn random_nonce() -> String {
    hex(&rand::thread_rng().r#gen::<[u8; 8]>())
}

/// The body `ssodh/init` takes to open the brokerage session.
pub const INIT_BODY: &str = r#"{"publish":true,"compete":true}"#;

/// How to sign one request; the defaults give a correct one.
#[derive(Default)]
pub struct Sign {
    /// A fixed nonce instead of a random one, to test replays.
    pub nonce: Option<String>,
    /// A fixed timestamp instead of the clock, to test the window.
    pub timestamp: Option<i64>,
    /// Signs the query parameters too (they never go in the header).
    pub include_query: bool,
    /// Flips a bit of the signature after computing it.
    pub tamper: bool,
}

/// The client side of IBKR's OAuth, as the reference describes it. The
/// credentials are public so tests can inspect or spoil them.
pub struct Client {
    pub addr: SocketAddr,
    pub consumer_key: String,
    pub access_token: String,
    pub signature_key: RsaPrivateKey,
    pub secret: Vec<u8>,
    pub prime: BigUint,
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

    /// Runs the live session token handshake, signing with `key` (the
    /// right one unless a test says otherwise). Only when the server
    /// answers 200 and its `live_session_token_signature` matches the
    /// token computed here is the token kept and `Ok` returned; any other
    /// answer comes back as `Err`.
    pub fn handshake_with(&mut self, key: &RsaPrivateKey, sign: Sign) -> Result<Answer, Answer> {
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
            "",
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

    /// Runs a correct handshake and returns the server's answer; panics
    /// unless it is accepted and validated.
    pub fn handshake(&mut self) -> Answer {
        let key = self.signature_key.clone();
        self.handshake_with(&key, Sign::default())
            .expect("handshake accepted and validated")
    }

    /// Sends an HMAC-signed request to `target` (an API path, maybe with a
    /// query), signed as `sign` says. POSTs carry `body` as JSON. The
    /// answer's body comes back trimmed. Panics without a live session
    /// token, so call [`Client::handshake`] first.
    pub fn send_with(&self, method: &str, target: &str, body: &str, sign: Sign) -> Answer {
        let headers = self.signed_headers(method, target, body, sign);
        let mut answer = exchange(
            self.addr,
            method,
            &format!("/v1/api{target}"),
            &headers,
            body,
        );
        answer.body = answer.body.trim().to_string();
        answer
    }

    /// A correctly signed request whose raw answer comes back unparsed,
    /// for servers that may close the connection without answering.
    pub fn send_raw(&self, method: &str, target: &str, body: &str) -> String {
        let headers = self.signed_headers(method, target, body, Sign::default());
        raw_exchange(
            self.addr,
            method,
            &format!("/v1/api{target}"),
            &headers,
            body,
        )
    }

    /// The headers of a request to `target` signed as `sign` says.
    fn signed_headers(
        &self,
        method: &str,
        target: &str,
        body: &str,
        sign: Sign,
    ) -> Vec<(&'static str, String)> {
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
        headers
    }

    /// [`Client::send_with`], signed correctly.
    pub fn send(&self, method: &str, target: &str, body: &str) -> Answer {
        self.send_with(method, target, body, Sign::default())
    }

    /// A correctly signed GET of `target`.
    pub fn get(&self, target: &str) -> Answer {
        self.send("GET", target, "")
    }

    /// Opens the brokerage session; with `prime`, also calls
    /// `/iserver/accounts`. Panics unless each call answers 200.
    pub fn open_session(&self, prime: bool) {
        let init = self.send("POST", "/iserver/auth/ssodh/init", INIT_BODY);
        assert_eq!(init.status, 200, "{}", init.body);
        if prime {
            let accounts = self.get("/iserver/accounts");
            assert_eq!(accounts.status, 200, "{}", accounts.body);
        }
    }
}

/// The test vectors' signature and encryption keys, in that order.
pub fn vector_keys() -> (RsaPrivateKey, RsaPrivateKey) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/oauth_vectors.json");
    let json: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let v = &json["vectors"][0];
    let key = |name: &str| RsaPrivateKey::from_pkcs1_pem(v[name].as_str().unwrap()).unwrap();
    (key("private_signature_pem"), key("private_encryption_pem"))
}

/// A keys folder like `skim keys-gen` makes, minus the private files, under
/// the target's temporary folder; `name` must be unique among the tests.
pub fn keys_dir(name: &str, signature: &RsaPrivateKey, encryption: &RsaPrivateKey) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("skim-sim-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    let public = |key: &RsaPrivateKey| {
        key.to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap()
    };
    std::fs::write(dir.join("public_signature.pem"), public(signature)).unwrap();
    std::fs::write(dir.join("public_encryption.pem"), public(encryption)).unwrap();
    let dhparam = include_str!("../data/ffdhe2048-dhparam.txt");
    std::fs::write(dir.join("dhparam.pem"), dhparam).unwrap();
    dir
}

/// Starts a simulator playing the example day from a keys folder, lets the
/// test adjust the config first, and returns it with a client holding the
/// matching credentials but no live session token yet.
pub fn start_with(name: &str, tweak: impl FnOnce(&mut Config)) -> (Simulator, Client, Setup) {
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

/// Starts a simulator with the default config, for tests that need no
/// signed client.
pub fn start_sim(name: &str) -> Simulator {
    start_with(name, |_| {}).0
}

/// Starts a simulator with the default config and a client that has done
/// the handshake.
pub fn start(name: &str) -> (Simulator, Client) {
    let (sim, mut client, _) = start_with(name, |_| {});
    client.handshake();
    (sim, client)
}

/// `HH:MM:SS` Sydney time on the example day (AEDT, UTC+11) as UTC.
pub fn sydney(hms: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(&format!("2026-03-02T{hms}+11:00"))
        .unwrap()
        .to_utc()
}
