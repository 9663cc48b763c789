//! The live session token handshake's local work, timed step by step with
//! the vectors' test keys: decrypt the secret, sign the request, the two
//! modular exponentiations, the HMACs. Target: 5 ms or less in all.
//!
//! Run: `cargo bench --bench handshake` (RUNS=N to change the run count).

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use num_bigint::{BigUint, RandBigInt};
use rsa::RsaPrivateKey;
use rsa::pkcs1::DecodeRsaPrivateKey;
use serde_json::Value;
use skim_asx::ibkr::sign::{self, Method, OAuthParams};

fn main() {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(50);
    let doc: Value =
        serde_json::from_str(include_str!("../tests/data/oauth_vectors.json")).unwrap();
    let v = &doc["vectors"][0];
    let text = |key: &str| v[key].as_str().unwrap().to_owned();
    let signing = RsaPrivateKey::from_pkcs1_pem(&text("private_signature_pem")).unwrap();
    let encryption = RsaPrivateKey::from_pkcs1_pem(&text("private_encryption_pem")).unwrap();
    let prime = BigUint::parse_bytes(text("dh_prime_hex").as_bytes(), 16).unwrap();
    let response = text("dh_response_hex");
    let consumer = text("consumer_key");
    let token = text("access_token");

    let names = [
        "decrypt secret",
        "DH challenge",
        "RSA sign",
        "derive LST",
        "validate",
        "HMAC",
    ];
    let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(runs); names.len() + 1];
    for _ in 0..runs {
        let start = Instant::now();
        let mut lap = start;
        let mut mark = |i: usize, samples: &mut Vec<Vec<Duration>>| {
            let now = Instant::now();
            samples[i].push(now - lap);
            lap = now;
        };
        let prepend =
            sign::decrypt_access_token_secret(&encryption, &text("access_token_secret")).unwrap();
        mark(0, &mut samples);
        let a = rand::rngs::OsRng.gen_biguint(256);
        let challenge = sign::dh_challenge(&a, &prime);
        mark(1, &mut samples);
        let params = OAuthParams {
            consumer_key: &consumer,
            access_token: &token,
            nonce: "a32b61cf3b51a860",
            timestamp: "1796300000",
            method: Method::RsaSha256,
            dh_challenge: Some(&challenge),
        };
        let url = "https://api.ibkr.com/v1/api/oauth/live_session_token";
        let base = sign::base_string("POST", url, &params, &[], Some(&sign::hex(&prepend)));
        std::hint::black_box(sign::rsa_sha256_signature(&signing, &base));
        mark(2, &mut samples);
        let lst = sign::live_session_token(&response, &a, &prime, &prepend).unwrap();
        mark(3, &mut samples);
        std::hint::black_box(sign::validate_live_session_token(&lst, &consumer, "00"));
        mark(4, &mut samples);
        let params = OAuthParams {
            method: Method::HmacSha256,
            dh_challenge: None,
            ..params
        };
        let url = "https://api.ibkr.com/v1/api/iserver/accounts";
        let base = sign::base_string("GET", url, &params, &[], None);
        std::hint::black_box(sign::hmac_sha256_signature(&lst, &base));
        mark(5, &mut samples);
        samples[names.len()].push(start.elapsed());
        std::hint::black_box(BASE64.encode(&lst));
    }

    println!("handshake local work, {runs} runs (vector keys, 2048-bit RSA and DH)");
    println!(
        "{:<16} {:>10} {:>10} {:>10}",
        "step", "median ms", "min ms", "max ms"
    );
    for (i, name) in names.iter().chain(["total"].iter()).enumerate() {
        let mut s = samples[i].clone();
        s.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{name:<16} {:>10.3} {:>10.3} {:>10.3}",
            ms(s[s.len() / 2]),
            ms(s[0]),
            ms(s[s.len() - 1])
        );
    }
}
