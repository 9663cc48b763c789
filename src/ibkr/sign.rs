//! OAuth 1.0a for IBKR's Web API: base strings, signatures, the
//! `Authorization` header, and the Diffie-Hellman maths of the live session
//! token.
//!
//! Everything here is a pure function of its inputs: callers pass the clock
//! reading and the nonce, so the functions reproduce the vectors in
//! `tests/data/oauth_vectors.json` byte for byte. The step numbers in the
//! comments follow IBKR's "How to implement OAuth" guide, as summarised in
//! section 2 of `shared/reference/ibkr-web-api.md`.

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use num_bigint::BigUint;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use rsa::pkcs1v15::SigningKey;
use rsa::signature::{SignatureEncoding, Signer};
use rsa::{Pkcs1v15Encrypt, RsaPrivateKey};
use sha1::Sha1;
use sha2::Sha256;

/// RFC 3986 percent-encoding: everything but `A-Z a-z 0-9 - . _ ~`.
/// `NON_ALPHANUMERIC` alone would also encode `- . _ ~` and break every
/// signature (`HMAC-SHA256` must stay literal).
const RFC3986: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes `text` as OAuth 1.0a requires.
pub fn percent_encode(text: &str) -> String {
    utf8_percent_encode(text, RFC3986).to_string()
}

/// The signature method of a request: RSA for the live session token
/// request, HMAC with the token for everything after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    RsaSha256,
    HmacSha256,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::RsaSha256 => "RSA-SHA256",
            Method::HmacSha256 => "HMAC-SHA256",
        }
    }
}

/// The OAuth parameters of one request, before signing.
#[derive(Clone, Debug)]
pub struct OAuthParams<'a> {
    pub consumer_key: &'a str,
    pub access_token: &'a str,
    pub nonce: &'a str,
    /// Unix seconds, as a decimal string.
    pub timestamp: &'a str,
    pub method: Method,
    /// The Diffie-Hellman challenge `A` in lowercase hex, for the live session
    /// token request only.
    pub dh_challenge: Option<&'a str>,
}

impl OAuthParams<'_> {
    /// The `key=value` pairs that enter the base string and the header,
    /// sorted by key.
    fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = vec![
            ("oauth_consumer_key", self.consumer_key.to_owned()),
            ("oauth_nonce", self.nonce.to_owned()),
            ("oauth_signature_method", self.method.name().to_owned()),
            ("oauth_timestamp", self.timestamp.to_owned()),
            ("oauth_token", self.access_token.to_owned()),
        ];
        if let Some(challenge) = self.dh_challenge {
            pairs.push(("diffie_hellman_challenge", challenge.to_owned()));
        }
        pairs.sort();
        pairs
    }
}

/// The signature base string: `[prepend]METHOD&pct(url)&pct(k=v&...)`.
///
/// `url` is scheme, host and path exactly as requested, without the query.
/// `query` pairs are merged into the parameter list only when the caller
/// asks for it (see `Config::sign_query`); IBKR's largest install base
/// leaves them out. The prepend (hex of the decrypted access token secret)
/// is glued on with no separator, and only for the token request (step 6).
pub fn base_string(
    http_method: &str,
    url: &str,
    params: &OAuthParams<'_>,
    query: &[(String, String)],
    prepend: Option<&str>,
) -> String {
    debug_assert!(!url.contains('?'), "the signed URL carries no query");
    let mut pairs: Vec<(String, String)> = params
        .pairs()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    pairs.extend(query.iter().cloned());
    pairs.sort();
    let joined = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    format!(
        "{}{}&{}&{}",
        prepend.unwrap_or(""),
        http_method.to_ascii_uppercase(),
        percent_encode(url),
        percent_encode(&joined)
    )
}

/// Base64 of HMAC-SHA256 over the base string, keyed with the live session
/// token's raw bytes.
pub fn hmac_sha256_signature(lst: &[u8], base_string: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(lst).expect("HMAC takes a key of any length");
    mac.update(base_string.as_bytes());
    BASE64.encode(mac.finalize().into_bytes())
}

/// Base64 of RSASSA-PKCS1-v1_5 with SHA-256 over the base string (step 7).
pub fn rsa_sha256_signature(key: &RsaPrivateKey, base_string: &str) -> String {
    let signer = SigningKey::<Sha256>::new(key.clone());
    BASE64.encode(signer.sign(base_string.as_bytes()).to_bytes())
}

/// The `Authorization` header value: realm first, then every parameter and
/// the percent-encoded signature, sorted by key, each value quoted (step 8).
pub fn authorization_header(realm: &str, params: &OAuthParams<'_>, signature: &str) -> String {
    let mut pairs = params.pairs();
    pairs.push(("oauth_signature", percent_encode(signature)));
    pairs.sort();
    let mut header = format!("OAuth realm=\"{realm}\"");
    for (key, value) in pairs {
        header.push_str(&format!(", {key}=\"{value}\""));
    }
    header
}

/// Recovers the prepend: base64-decode the access token secret and decrypt it
/// with the private encryption key, RSA PKCS#1 v1.5 (step 1). Returns the raw
/// bytes; their lowercase hex is the prepend of the token request.
pub fn decrypt_access_token_secret(key: &RsaPrivateKey, secret_b64: &str) -> Result<Vec<u8>> {
    let ciphertext = BASE64
        .decode(secret_b64.trim())
        .context("OAUTH_ACCESS_TOKEN_SECRET is not valid base64")?;
    key.decrypt(Pkcs1v15Encrypt, &ciphertext).map_err(|_| {
        anyhow::anyhow!(
            "OAUTH_ACCESS_TOKEN_SECRET does not decrypt with private_encryption.pem \
             (wrong key, or the secret was copied incompletely)"
        )
    })
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses hex digits into bytes (an odd count gets a leading zero nibble).
pub fn unhex(text: &str) -> Result<Vec<u8>> {
    let text = text.trim();
    let padded = if text.len() % 2 == 1 {
        format!("0{text}")
    } else {
        text.to_owned()
    };
    (0..padded.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&padded[i..i + 2], 16)
                .with_context(|| format!("{text:?} is not hexadecimal"))
        })
        .collect()
}

/// The challenge `A = 2^a mod p` as lowercase hex without padding (step 3).
pub fn dh_challenge(a: &BigUint, prime: &BigUint) -> String {
    BigUint::from(2u32).modpow(a, prime).to_str_radix(16)
}

/// `K` as Java's `BigInteger.toByteArray` writes it: minimal big-endian
/// bytes, plus a leading zero byte when the top bit is set, because IBKR's
/// server is Java and keys its HMAC with the two's-complement form (step 11).
/// Forgetting the byte breaks the token in half of all handshakes.
pub fn k_bytes(k: &BigUint) -> Vec<u8> {
    let mut bytes = k.to_bytes_be();
    if k.bits().is_multiple_of(8) {
        bytes.insert(0, 0);
    }
    bytes
}

/// Computes the live session token from the server's `B` (hex), our secret
/// exponent `a` and the prepend bytes: `base64(HMAC-SHA1(K, prepend))` with
/// `K = B^a mod p` (steps 10-12). Returns the 20 raw token bytes.
pub fn live_session_token(
    dh_response_hex: &str,
    a: &BigUint,
    prime: &BigUint,
    prepend: &[u8],
) -> Result<Vec<u8>> {
    let b = BigUint::parse_bytes(dh_response_hex.trim().as_bytes(), 16)
        .context("diffie_hellman_response is not hexadecimal")?;
    let one = BigUint::from(1u32);
    if b <= one || b >= prime - &one {
        bail!("diffie_hellman_response is out of range for the DH prime");
    }
    let k = b.modpow(a, prime);
    let mut mac = Hmac::<Sha1>::new_from_slice(&k_bytes(&k)).expect("HMAC takes any key");
    mac.update(prepend);
    Ok(mac.finalize().into_bytes().to_vec())
}

/// True when `signature_hex` is HMAC-SHA1 of the consumer key keyed with the
/// token: IBKR's proof that both sides derived the same token (step 13).
/// Compared in constant time.
pub fn validate_live_session_token(lst: &[u8], consumer_key: &str, signature_hex: &str) -> bool {
    let mut mac = Hmac::<Sha1>::new_from_slice(lst).expect("HMAC takes any key");
    mac.update(consumer_key.as_bytes());
    let expected = hex(&mac.finalize().into_bytes());
    let given = signature_hex.trim().to_ascii_lowercase();
    expected.len() == given.len()
        && expected
            .bytes()
            .zip(given.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs1::DecodeRsaPrivateKey;
    use serde_json::Value;

    fn vectors() -> Vec<Value> {
        let text = include_str!("../../tests/data/oauth_vectors.json");
        let doc: Value = serde_json::from_str(text).unwrap();
        doc["vectors"].as_array().unwrap().clone()
    }

    fn s<'a>(v: &'a Value, key: &str) -> &'a str {
        v[key]
            .as_str()
            .unwrap_or_else(|| panic!("vector field {key}"))
    }

    #[test]
    fn reproduces_the_token_request_of_every_vector() {
        for v in vectors() {
            let signing = RsaPrivateKey::from_pkcs1_pem(s(&v, "private_signature_pem")).unwrap();
            let encryption =
                RsaPrivateKey::from_pkcs1_pem(s(&v, "private_encryption_pem")).unwrap();
            let prepend =
                decrypt_access_token_secret(&encryption, s(&v, "access_token_secret")).unwrap();
            assert_eq!(hex(&prepend), s(&v, "prepend_hex"));

            let prime = BigUint::parse_bytes(s(&v, "dh_prime_hex").as_bytes(), 16).unwrap();
            let a = BigUint::parse_bytes(s(&v, "dh_random_hex").as_bytes(), 16).unwrap();
            let challenge = dh_challenge(&a, &prime);
            assert_eq!(challenge, s(&v, "dh_challenge_hex"));

            let req = &v["lst_request"];
            let params = OAuthParams {
                consumer_key: s(&v, "consumer_key"),
                access_token: s(&v, "access_token"),
                nonce: s(req, "nonce"),
                timestamp: s(req, "timestamp"),
                method: Method::RsaSha256,
                dh_challenge: Some(&challenge),
            };
            let base = base_string("POST", s(req, "url"), &params, &[], Some(&hex(&prepend)));
            assert_eq!(base, s(req, "base_string"));
            let signature = rsa_sha256_signature(&signing, &base);
            assert_eq!(signature, s(req, "signature_base64"));
            let header = authorization_header(s(&v, "realm"), &params, &signature);
            assert_eq!(header, s(req, "authorization"));

            let lst = live_session_token(s(&v, "dh_response_hex"), &a, &prime, &prepend).unwrap();
            assert_eq!(BASE64.encode(&lst), s(&v, "live_session_token"));
            let sig = s(&v, "live_session_token_signature");
            assert!(validate_live_session_token(
                &lst,
                s(&v, "consumer_key"),
                sig
            ));
        }
    }

    #[test]
    fn reproduces_every_signed_request() {
        for v in vectors() {
            let lst = BASE64.decode(s(&v, "live_session_token")).unwrap();
            for req in v["requests"].as_array().unwrap() {
                let params = OAuthParams {
                    consumer_key: s(&v, "consumer_key"),
                    access_token: s(&v, "access_token"),
                    nonce: s(req, "nonce"),
                    timestamp: s(req, "timestamp"),
                    method: Method::HmacSha256,
                    dh_challenge: None,
                };
                // The vectors leave query parameters out of the base string.
                let base = base_string(s(req, "method"), s(req, "url"), &params, &[], None);
                assert_eq!(base, s(req, "base_string"));
                let signature = hmac_sha256_signature(&lst, &base);
                assert_eq!(signature, s(req, "signature_base64"));
                let header = authorization_header(s(&v, "realm"), &params, &signature);
                assert_eq!(header, s(req, "authorization"));
            }
        }
    }

    #[test]
    fn the_vectors_cover_both_k_encodings() {
        let flags: Vec<bool> = vectors()
            .iter()
            .map(|v| {
                v["shared_secret_needs_leading_zero_byte"]
                    .as_bool()
                    .unwrap()
            })
            .collect();
        assert!(flags.contains(&true) && flags.contains(&false));
    }

    /// The toy-prime table of reference section 11.2 (p = 2^32 - 5, a =
    /// 0x1d2c3b4a), which pins both branches of the K encoding.
    #[test]
    fn toy_prime_table_of_the_reference() {
        let prime = BigUint::parse_bytes(b"fffffffb", 16).unwrap();
        let a = BigUint::parse_bytes(b"1d2c3b4a", 16).unwrap();
        assert_eq!(dh_challenge(&a, &prime), "f8cb89cc");
        let prepend =
            unhex("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff").unwrap();
        let rows = [
            (
                "e79b969a",
                "050d888d",
                "+1rmrI3OgCXHKKTfsoZ2Rlo+WZw=",
                "39749fd9b14a8b72862b0f43066f31024253814b",
            ),
            (
                "9e6e5a77",
                "00f0e60489",
                "SfJRuugLlHEoTkbRMFkmIlqRRls=",
                "0c3e1b65ed4c8f15375da2641aab0ce4c681d54b",
            ),
        ];
        for (b, k, lst_b64, sig) in rows {
            let b_int = BigUint::parse_bytes(b.as_bytes(), 16).unwrap();
            assert_eq!(hex(&k_bytes(&b_int.modpow(&a, &prime))), k);
            let lst = live_session_token(b, &a, &prime, &prepend).unwrap();
            assert_eq!(BASE64.encode(&lst), lst_b64);
            assert!(validate_live_session_token(&lst, "ABCDEFGHI", sig));
        }
        // Without the zero byte the second row's token must fail validation.
        let wrong = BASE64.decode("ySuwiRWzcFnSpaM2cGnYbzf5Mkc=").unwrap();
        assert!(!validate_live_session_token(
            &wrong,
            "ABCDEFGHI",
            "0c3e1b65ed4c8f15375da2641aab0ce4c681d54b"
        ));
    }

    #[test]
    fn k_bytes_follows_java_to_byte_array() {
        assert_eq!(k_bytes(&BigUint::from(0xffu32)), vec![0x00, 0xff]);
        assert_eq!(k_bytes(&BigUint::from(0x7fu32)), vec![0x7f]);
        assert_eq!(k_bytes(&BigUint::from(0x100u32)), vec![0x01, 0x00]);
    }

    #[test]
    fn query_pairs_enter_the_base_string_only_when_given() {
        let params = OAuthParams {
            consumer_key: "ABCDEFGHI",
            access_token: "0123456789abcdef0123",
            nonce: "n0nceN0nceN0nce1",
            timestamp: "1700000000",
            method: Method::HmacSha256,
            dh_challenge: None,
        };
        let url = "https://api.ibkr.com/v1/api/iserver/marketdata/snapshot";
        let lst = BASE64.decode("AQIDBAUGBwgJCgsMDQ4PEBESExQ=").unwrap();
        let without = base_string("GET", url, &params, &[], None);
        assert_eq!(
            hmac_sha256_signature(&lst, &without),
            "cuo5GRVJNMBGHVK5kvc8p5rPFhpW94a/tYiNyRlhV8I="
        );
        let query = [
            ("conids".into(), "265598".into()),
            ("fields".into(), "31,84".into()),
        ];
        let with = base_string("GET", url, &params, &query, None);
        assert!(with.contains("&conids%3D265598%26fields%3D31%2C84%26oauth_consumer_key"));
    }

    #[test]
    fn percent_encoding_keeps_the_unreserved_set() {
        assert_eq!(
            percent_encode("HMAC-SHA256 a.b_c~d/+="),
            "HMAC-SHA256%20a.b_c~d%2F%2B%3D"
        );
    }

    #[test]
    fn garbage_secret_is_a_clear_error() {
        let v = &vectors()[0];
        let key = RsaPrivateKey::from_pkcs1_pem(s(v, "private_encryption_pem")).unwrap();
        let err = decrypt_access_token_secret(&key, "not base64!").unwrap_err();
        assert!(format!("{err:#}").contains("OAUTH_ACCESS_TOKEN_SECRET"));
        let other = BASE64.encode([7u8; 256]);
        assert!(decrypt_access_token_secret(&key, &other).is_err());
    }

    mod properties {
        use super::*;
        use num_bigint::BigUint;
        use percent_encoding::percent_decode_str;
        use proptest::prelude::*;

        /// Characters RFC 3986 leaves unreserved; OAuth keeps them literal.
        fn is_unreserved(c: char) -> bool {
            c.is_ascii_alphanumeric() || "-._~".contains(c)
        }

        /// Positive integers from one byte to a 2048-bit prime's size,
        /// weighted towards top bytes at or above 0x80, where the rule bites.
        fn big_values() -> impl Strategy<Value = BigUint> {
            proptest::collection::vec(any::<u8>(), 1..=257)
                .prop_map(|bytes| BigUint::from_bytes_be(&bytes))
                .prop_filter("K is never zero", |k| k.bits() > 0)
        }

        proptest! {
            #[test]
            fn percent_encoding_round_trips(text in any::<String>()) {
                let encoded = percent_encode(&text);
                let decoded = percent_decode_str(&encoded).decode_utf8().unwrap();
                prop_assert_eq!(decoded.as_ref(), text.as_str());
            }

            #[test]
            fn percent_encoding_leaves_only_unreserved_and_upper_hex_escapes(
                text in any::<String>(),
            ) {
                let encoded = percent_encode(&text);
                let bytes = encoded.as_bytes();
                let mut i = 0;
                while i < bytes.len() {
                    if bytes[i] == b'%' {
                        let escape = &encoded[i + 1..i + 3];
                        prop_assert!(
                            escape.chars().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()),
                            "escape %{} in {}", escape, encoded
                        );
                        let byte = u8::from_str_radix(escape, 16).unwrap();
                        prop_assert!(!is_unreserved(char::from(byte)), "%{} needless", escape);
                        i += 3;
                    } else {
                        prop_assert!(is_unreserved(char::from(bytes[i])), "{}", encoded);
                        i += 1;
                    }
                }
            }

            #[test]
            fn percent_encoding_works_character_by_character(text in any::<String>()) {
                let piecewise: String = text
                    .chars()
                    .map(|c| percent_encode(c.encode_utf8(&mut [0; 4])))
                    .collect();
                prop_assert_eq!(percent_encode(&text), piecewise);
            }

            #[test]
            fn k_bytes_are_javas_minimal_twos_complement(k in big_values()) {
                let bytes = k_bytes(&k);
                // Positive in two's complement, and the same number.
                prop_assert!(bytes[0] < 0x80);
                prop_assert_eq!(BigUint::from_bytes_be(&bytes), k.clone());
                // Minimal: a leading zero only where the next byte needs it.
                prop_assert!(bytes.len() == 1 || bytes[0] != 0 || bytes[1] >= 0x80);
                prop_assert_eq!(bytes.len() as u64, k.bits() / 8 + 1);
            }
        }
    }
}
