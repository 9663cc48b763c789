//! A small signed client for the market tests, written from the reference
//! (sections 2 and 3) without the simulator's own OAuth code, plus plain
//! HTTP for the ASX page, the Discord webhook and the control endpoints.
//! Each test binary uses a different part of it.
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
use skim_sim::{Setup, Simulator};

/// An HTTP answer, read to the end.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|_| panic!("not JSON ({}): {}", self.status, self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one HTTP/1.1 request and reads the answer until the server closes.
pub fn exchange(
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

/// RFC 3986 encoding, as OAuth wants it.
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

fn now_secs() -> String {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string()
}

/// The client side of IBKR's OAuth with one live session token.
pub struct Client {
    pub addr: SocketAddr,
    consumer_key: String,
    access_token: String,
    signature_key: RsaPrivateKey,
    secret: Vec<u8>,
    prime: BigUint,
    token: Vec<u8>,
}

impl Client {
    fn url(&self, path: &str) -> String {
        format!("http://{}/v1/api{path}", self.addr)
    }

    /// The signed `Authorization` header for `method` on `path`, with
    /// `extra` parameters (the DH challenge) and the key `sign` makes.
    fn authorization(
        &self,
        method: &str,
        path: &str,
        extra: &[(&str, String)],
        signature_method: &str,
        prepend: &str,
        sign: impl Fn(&str) -> Vec<u8>,
    ) -> String {
        let nonce = hex(&rand::thread_rng().r#gen::<[u8; 8]>());
        let mut params: Vec<(String, String)> = vec![
            ("oauth_consumer_key".into(), self.consumer_key.clone()),
            ("oauth_nonce".into(), nonce),
            ("oauth_signature_method".into(), signature_method.into()),
            ("oauth_timestamp".into(), now_secs()),
            ("oauth_token".into(), self.access_token.clone()),
        ];
        params.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
        params.sort();
        let joined: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let base = format!(
            "{prepend}{method}&{}&{}",
            enc(&self.url(path)),
            enc(&joined.join("&"))
        );
        params.push(("oauth_signature".into(), BASE64.encode(sign(&base))));
        let items: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", enc(v)))
            .collect();
        format!("OAuth realm=\"limited_poa\", {}", items.join(", "))
    }

    /// Runs the live session token handshake and keeps the token.
    fn handshake(&mut self) {
        let a = rand::thread_rng().gen_biguint(256);
        let challenge = BigUint::from(2u8).modpow(&a, &self.prime).to_str_radix(16);
        let key = SigningKey::<Sha256>::new(self.signature_key.clone());
        let header = self.authorization(
            "POST",
            "/oauth/live_session_token",
            &[("diffie_hellman_challenge", challenge)],
            "RSA-SHA256",
            &hex(&self.secret),
            |base| key.sign(base.as_bytes()).to_vec(),
        );
        let headers = [
            ("Authorization", header),
            ("User-Agent", "market-test".to_string()),
            ("Content-Length", "0".to_string()),
        ];
        let answer = exchange(
            self.addr,
            "POST",
            "/v1/api/oauth/live_session_token",
            &headers,
            "",
        );
        assert_eq!(answer.status, 200, "{}", answer.body);
        let body = answer.json();
        let b = BigUint::parse_bytes(
            body["diffie_hellman_response"].as_str().unwrap().as_bytes(),
            16,
        )
        .unwrap();
        let mut k = b.modpow(&a, &self.prime).to_bytes_be();
        if k[0] & 0x80 != 0 {
            k.insert(0, 0);
        }
        let mut mac = Hmac::<Sha1>::new_from_slice(&k).unwrap();
        mac.update(&self.secret);
        self.token = mac.finalize().into_bytes().to_vec();
    }

    /// Sends an HMAC-signed request; `target` is an API path with any query.
    pub fn send(&self, method: &str, target: &str, body: &str) -> Answer {
        let path = target.split_once('?').map_or(target, |(p, _)| p);
        let header = self.authorization(method, path, &[], "HMAC-SHA256", "", |base| {
            let mut mac = Hmac::<Sha256>::new_from_slice(&self.token).unwrap();
            mac.update(base.as_bytes());
            mac.finalize().into_bytes().to_vec()
        });
        let mut headers = vec![
            ("Authorization", header),
            ("User-Agent", "market-test".to_string()),
        ];
        if method == "POST" {
            headers.push(("Content-Length", body.len().to_string()));
            headers.push(("Content-Type", "application/json".to_string()));
        }
        exchange(
            self.addr,
            method,
            &format!("/v1/api{target}"),
            &headers,
            body,
        )
    }

    pub fn get(&self, target: &str) -> Answer {
        self.send("GET", target, "")
    }

    /// Opens the brokerage session; `prime` also calls `/iserver/accounts`.
    pub fn open_session(&self, prime: bool) {
        let init = self.send("POST", "/iserver/auth/ssodh/init", r#"{"publish":true}"#);
        assert_eq!(init.status, 200, "{}", init.body);
        if prime {
            assert_eq!(self.get("/iserver/accounts").status, 200);
        }
    }
}

/// A keys folder with public keys only, as the simulator reads it.
fn keys_dir(name: &str) -> (PathBuf, RsaPrivateKey, RsaPrivateKey) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/oauth_vectors.json");
    let json: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let v = &json["vectors"][0];
    let key = |name: &str| RsaPrivateKey::from_pkcs1_pem(v[name].as_str().unwrap()).unwrap();
    let (signature, encryption) = (key("private_signature_pem"), key("private_encryption_pem"));
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("skim-sim-market-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    let public = |key: &RsaPrivateKey| {
        key.to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap()
    };
    std::fs::write(dir.join("public_signature.pem"), public(&signature)).unwrap();
    std::fs::write(dir.join("public_encryption.pem"), public(&encryption)).unwrap();
    let dhparam = include_str!("../data/ffdhe2048-dhparam.txt");
    std::fs::write(dir.join("dhparam.pem"), dhparam).unwrap();
    (dir, signature, encryption)
}

/// Starts a simulator playing the example day.
pub fn start_sim(name: &str) -> (Simulator, Setup, RsaPrivateKey, RsaPrivateKey) {
    let (dir, signature, encryption) = keys_dir(name);
    let setup = Setup::from_keys_dir(&dir).unwrap();
    let sim = Simulator::start(setup.config.clone()).unwrap();
    (sim, setup, signature, encryption)
}

/// Starts a simulator and a client that has done the handshake.
pub fn start(name: &str) -> (Simulator, Client) {
    let (sim, setup, signature_key, encryption) = start_sim(name);
    let env: std::collections::HashMap<_, _> =
        setup.env_pairs(&sim.base_url()).into_iter().collect();
    let ciphertext = BASE64.decode(&env["OAUTH_ACCESS_TOKEN_SECRET"]).unwrap();
    let mut client = Client {
        addr: sim.addr(),
        consumer_key: env["OAUTH_CONSUMER_KEY"].clone(),
        access_token: env["OAUTH_ACCESS_TOKEN"].clone(),
        signature_key,
        secret: encryption.decrypt(Pkcs1v15Encrypt, &ciphertext).unwrap(),
        prime: BigUint::parse_bytes(env["OAUTH_DH_PRIME"].as_bytes(), 16).unwrap(),
        token: Vec::new(),
    };
    client.handshake();
    (sim, client)
}

/// `HH:MM:SS` Sydney time on the example day (AEDT, UTC+11) as UTC.
pub fn sydney(hms: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(&format!("2026-03-02T{hms}+11:00"))
        .unwrap()
        .to_utc()
}
