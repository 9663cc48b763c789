//! OAuth 1.0a from the server's side: parsing the `Authorization` header,
//! rebuilding base strings, checking RSA and HMAC signatures, and the
//! Diffie-Hellman arithmetic that turns a challenge into a live session token.
//!
//! Everything here is a pure function of its inputs, so the fixed vectors in
//! `tests/data/oauth_vectors.json` can pin it. Session state and replies live
//! in `session`. Reference: ibkr-web-api.md sections 2, 3 and 11.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use num_bigint::BigUint;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use rsa::RsaPublicKey;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::signature::Verifier;
use sha1::Sha1;
use sha2::Sha256;

/// RFC 3986 unreserved characters stay literal; everything else is encoded.
/// `NON_ALPHANUMERIC` alone would also encode `- . _ ~` and break every
/// signature (reference pitfall 10.1).
const ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes `text` the way OAuth base strings require.
pub fn pct(text: &str) -> String {
    utf8_percent_encode(text, ENCODE).to_string()
}

/// Decodes `%XX` escapes; fails when the result is not UTF-8.
pub fn pct_decode(text: &str) -> Result<String> {
    let decoded = percent_decode_str(text)
        .decode_utf8()
        .context("percent-decoded text")?;
    Ok(decoded.into_owned())
}

/// A parsed `Authorization: OAuth ...` header. Values are percent-decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthHeader {
    /// The realm, if the header named one.
    pub realm: Option<String>,
    /// Every other `key="value"` item, by key.
    pub params: BTreeMap<String, String>,
}

/// Parses an `Authorization` header value.
///
/// The value must start with `OAuth `; items are separated by commas and
/// optional spaces, each `key="value"`. Only `realm` may be bare, because
/// IBKR's own sample sends it that way. Duplicate keys are refused.
pub fn parse_authorization(value: &str) -> Result<AuthHeader> {
    let Some(rest) = value.strip_prefix("OAuth ") else {
        bail!("authorization header does not start with \"OAuth \"");
    };
    let mut realm = None;
    let mut params = BTreeMap::new();
    for item in rest
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
    {
        let Some((key, raw)) = item.split_once('=') else {
            bail!("authorization item {item:?} is not key=\"value\"");
        };
        let key = key.trim();
        let quoted = raw.len() >= 2 && raw.starts_with('"') && raw.ends_with('"');
        let inner = if quoted {
            &raw[1..raw.len() - 1]
        } else if key == "realm" {
            raw
        } else {
            bail!("authorization item {key} must have a double-quoted value");
        };
        let decoded = pct_decode(inner).with_context(|| format!("authorization item {key}"))?;
        if key == "realm" {
            if realm.replace(decoded).is_some() {
                bail!("authorization header repeats realm");
            }
        } else if params.insert(key.to_string(), decoded).is_some() {
            bail!("authorization header repeats {key}");
        }
    }
    Ok(AuthHeader { realm, params })
}

/// Builds an OAuth base string: `prepend` + `METHOD&` + pct(url) + `&` +
/// pct(parameter string). The parameter string is the `key=value` pairs
/// sorted by key then value and joined with `&`, values inserted as they
/// are (reference section 2, step 5). `url` must carry no query.
pub fn base_string(prepend: &str, method: &str, url: &str, params: &[(String, String)]) -> String {
    debug_assert!(!url.contains('?'), "the signed URL never carries the query");
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let joined = sorted
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    format!("{prepend}{method}&{}&{}", pct(url), pct(&joined))
}

/// Whether `signature_b64` (standard base64, already percent-decoded) is a
/// valid RSASSA-PKCS1-v1_5 SHA-256 signature of `base` under `key`.
pub fn verify_rsa_sha256(key: &RsaPublicKey, base: &str, signature_b64: &str) -> bool {
    let Ok(raw) = BASE64.decode(signature_b64) else {
        return false;
    };
    let Ok(signature) = Signature::try_from(raw.as_slice()) else {
        return false;
    };
    VerifyingKey::<Sha256>::new(key.clone())
        .verify(base.as_bytes(), &signature)
        .is_ok()
}

/// Whether `signature_b64` is the HMAC-SHA256 of `base` keyed with `key`.
/// The comparison is constant-time.
pub fn verify_hmac_sha256(key: &[u8], base: &str, signature_b64: &str) -> bool {
    let Ok(raw) = BASE64.decode(signature_b64) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(base.as_bytes());
    mac.verify_slice(&raw).is_ok()
}

/// The bytes of `k` as Java's `BigInteger.toByteArray` gives them: minimal
/// big-endian, plus a leading 0x00 when the top bit of the first byte is
/// set, since Java's form is two's complement. IBKR derives the token from
/// these bytes, so forgetting the zero breaks half of all handshakes.
pub fn java_bytes(k: &BigUint) -> Vec<u8> {
    let mut bytes = k.to_bytes_be();
    // A whole number of bytes means the top bit of the first one is set.
    if k.bits() & 7 == 0 {
        bytes.insert(0, 0);
    }
    bytes
}

/// The live session token for shared secret `k` and access-token secret
/// `secret`: base64(HMAC-SHA1(key = java_bytes(k), message = secret)).
pub fn live_session_token(k: &BigUint, secret: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha1>::new_from_slice(&java_bytes(k)).expect("HMAC accepts any key length");
    mac.update(secret);
    BASE64.encode(mac.finalize().into_bytes())
}

/// The token signature the client validates: lowercase hex of
/// HMAC-SHA1(key = raw token bytes, message = consumer key).
pub fn token_signature(token_key: &[u8], consumer_key: &str) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(token_key).expect("HMAC accepts any key length");
    mac.update(consumer_key.as_bytes());
    hex(&mac.finalize().into_bytes())
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Splits a raw query string into percent-decoded pairs, in order. A `+`
/// is taken literally: IBKR clients encode spaces as `%20`.
pub fn query_pairs(query: &str) -> Result<Vec<(String, String)>> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((pct_decode(key)?, pct_decode(value)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::RsaPrivateKey;
    use rsa::pkcs1::DecodeRsaPrivateKey;
    use serde_json::Value;

    fn vectors() -> Vec<Value> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/oauth_vectors.json");
        let text = std::fs::read_to_string(path).expect("vectors file is in the repository");
        let json: Value = serde_json::from_str(&text).expect("vectors file is JSON");
        json["vectors"].as_array().expect("vectors array").clone()
    }

    fn text(v: &Value, key: &str) -> String {
        v[key]
            .as_str()
            .unwrap_or_else(|| panic!("vector field {key}"))
            .to_string()
    }

    fn big(hex_text: &str) -> BigUint {
        BigUint::parse_bytes(hex_text.as_bytes(), 16).expect("hex number")
    }

    /// Parses a vector's header and rebuilds its base string from the parts.
    fn rebuild(v: &Value, request: &Value, prepend: &str) -> (AuthHeader, String) {
        let header = parse_authorization(&text(request, "authorization")).unwrap();
        assert_eq!(header.realm.as_deref(), Some(text(v, "realm").as_str()));
        let params: Vec<(String, String)> = header
            .params
            .iter()
            .filter(|(k, _)| *k != "oauth_signature")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let base = base_string(
            prepend,
            &text(request, "method"),
            &text(request, "url"),
            &params,
        );
        (header, base)
    }

    #[test]
    fn handshake_vectors_verify_with_the_public_key() {
        for v in vectors() {
            let private =
                RsaPrivateKey::from_pkcs1_pem(&text(&v, "private_signature_pem")).unwrap();
            let public = private.to_public_key();
            let request = &v["lst_request"];
            let (header, base) = rebuild(&v, request, &text(&v, "prepend_hex"));
            assert_eq!(base, text(request, "base_string"));
            let signature = &header.params["oauth_signature"];
            assert_eq!(signature, &text(request, "signature_base64"));
            assert!(verify_rsa_sha256(&public, &base, signature));
            assert!(!verify_rsa_sha256(
                &public,
                &base.replacen("POST", "GET", 1),
                signature
            ));
        }
    }

    #[test]
    fn request_vectors_verify_with_the_live_session_token() {
        for v in vectors() {
            let key = BASE64.decode(text(&v, "live_session_token")).unwrap();
            for request in v["requests"].as_array().unwrap() {
                let (header, base) = rebuild(&v, request, "");
                assert_eq!(base, text(request, "base_string"));
                let signature = &header.params["oauth_signature"];
                assert!(verify_hmac_sha256(&key, &base, signature));
                let mut wrong_key = key.clone();
                wrong_key[0] ^= 1;
                assert!(!verify_hmac_sha256(&wrong_key, &base, signature));
            }
        }
    }

    #[test]
    fn token_derivation_matches_the_vectors() {
        for v in vectors() {
            let p = big(&text(&v, "dh_prime_hex"));
            let a = big(&text(&v, "dh_random_hex"));
            let b_public = big(&text(&v, "dh_response_hex"));
            let k = b_public.modpow(&a, &p);
            let needs_zero = v["shared_secret_needs_leading_zero_byte"]
                .as_bool()
                .unwrap();
            assert_eq!(
                java_bytes(&k)[0] == 0,
                needs_zero,
                "vector {}",
                text(&v, "name")
            );
            let secret = (0..text(&v, "prepend_hex").len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&text(&v, "prepend_hex")[i..i + 2], 16).unwrap())
                .collect::<Vec<u8>>();
            let token = live_session_token(&k, &secret);
            assert_eq!(token, text(&v, "live_session_token"));
            let key = BASE64.decode(&token).unwrap();
            let signature = token_signature(&key, &text(&v, "consumer_key"));
            assert_eq!(signature, text(&v, "live_session_token_signature"));
        }
    }

    #[test]
    fn reference_request_vector() {
        // Reference 11.2: LST bytes 0x01..=0x14, GET /iserver/accounts.
        let key: Vec<u8> = (1..=20).collect();
        let params = [
            ("oauth_token", "0123456789abcdef0123"),
            ("oauth_consumer_key", "ABCDEFGHI"),
            ("oauth_timestamp", "1700000000"),
            ("oauth_nonce", "n0nceN0nceN0nce1"),
            ("oauth_signature_method", "HMAC-SHA256"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let url = "https://api.ibkr.com/v1/api/iserver/accounts";
        let base = base_string("", "GET", url, &params);
        assert_eq!(
            base,
            "GET&https%3A%2F%2Fapi.ibkr.com%2Fv1%2Fapi%2Fiserver%2Faccounts&oauth_consumer_key\
             %3DABCDEFGHI%26oauth_nonce%3Dn0nceN0nceN0nce1%26oauth_signature_method%3DHMAC-SHA256\
             %26oauth_timestamp%3D1700000000%26oauth_token%3D0123456789abcdef0123"
        );
        let header = concat!(
            "OAuth realm=\"limited_poa\", ",
            "oauth_signature=\"0jwN%2FtBHfyJXE0fX7An%2BDlHRa1OtvtbfbEGCIPP9ot0%3D\""
        );
        let signature = &parse_authorization(header).unwrap().params["oauth_signature"];
        assert!(verify_hmac_sha256(&key, &base, signature));
        let snapshot = "https://api.ibkr.com/v1/api/iserver/marketdata/snapshot";
        let base = base_string("", "GET", snapshot, &params);
        assert!(verify_hmac_sha256(
            &key,
            &base,
            "cuo5GRVJNMBGHVK5kvc8p5rPFhpW94a/tYiNyRlhV8I="
        ));
        assert!(!verify_hmac_sha256(&key, &base, "not base64!"));
    }

    #[test]
    fn java_bytes_adds_a_zero_only_when_the_top_bit_is_set() {
        assert_eq!(java_bytes(&BigUint::from(0xffu32)), vec![0x00, 0xff]);
        assert_eq!(java_bytes(&BigUint::from(0x7fu32)), vec![0x7f]);
        assert_eq!(
            java_bytes(&BigUint::from(0x050d888du32)),
            vec![0x05, 0x0d, 0x88, 0x8d]
        );
        assert_eq!(
            java_bytes(&BigUint::from(0xf0e60489u32)),
            vec![0, 0xf0, 0xe6, 0x04, 0x89]
        );
    }

    #[test]
    fn toy_prime_table_from_the_reference() {
        // Reference 11.2: p = 2^32 - 5, b = 0x1002 gives a 32-bit K that
        // needs the sign byte; without it the token differs.
        let secret: Vec<u8> = (0..32)
            .map(|i| {
                [
                    0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc,
                    0xdd, 0xee, 0xff,
                ][i % 16]
            })
            .collect();
        let k = BigUint::from(0xf0e60489u32);
        assert_eq!(
            live_session_token(&k, &secret),
            "SfJRuugLlHEoTkbRMFkmIlqRRls="
        );
        let mut mac = Hmac::<Sha1>::new_from_slice(&k.to_bytes_be()).unwrap();
        mac.update(&secret);
        assert_eq!(
            BASE64.encode(mac.finalize().into_bytes()),
            "ySuwiRWzcFnSpaM2cGnYbzf5Mkc="
        );
        let p = BigUint::from(0xfffffffbu32);
        let a = BigUint::from(0x1d2c3b4au32);
        assert_eq!(
            BigUint::from(2u8).modpow(&a, &p),
            BigUint::from(0xf8cb89ccu32)
        );
        assert_eq!(
            BigUint::from(0xf8cb89ccu32).modpow(&BigUint::from(0x1002u32), &p),
            k
        );
    }

    #[test]
    fn authorization_parsing_accepts_bare_realm_and_refuses_junk() {
        let header =
            parse_authorization("OAuth realm=limited_poa,oauth_nonce=\"a%2Bb\", oauth_token=\"t\"")
                .unwrap();
        assert_eq!(header.realm.as_deref(), Some("limited_poa"));
        assert_eq!(header.params["oauth_nonce"], "a+b");
        assert_eq!(header.params["oauth_token"], "t");
        assert!(parse_authorization("Bearer x").is_err());
        assert!(parse_authorization("OAuth oauth_nonce=bare").is_err());
        assert!(parse_authorization("OAuth oauth_nonce=\"a\", oauth_nonce=\"b\"").is_err());
        assert!(parse_authorization("OAuth junk").is_err());
    }

    #[test]
    fn query_included_base_string_matches_the_reference() {
        let mut params = query_pairs("conids=265598&fields=31,84").unwrap();
        params.extend(
            [
                ("oauth_consumer_key", "ABCDEFGHI"),
                ("oauth_nonce", "n0nceN0nceN0nce1"),
                ("oauth_signature_method", "HMAC-SHA256"),
                ("oauth_timestamp", "1700000000"),
                ("oauth_token", "0123456789abcdef0123"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let url = "https://api.ibkr.com/v1/api/iserver/marketdata/snapshot";
        let base = base_string("", "GET", url, &params);
        assert!(base.contains("&conids%3D265598%26fields%3D31%2C84%26oauth_consumer_key%3D"));
        assert!(base.starts_with("GET&https%3A%2F%2Fapi.ibkr.com%2Fv1%2Fapi%2Fiserver%2F"));
    }
}
