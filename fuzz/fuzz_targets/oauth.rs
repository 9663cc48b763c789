//! OAuth 1.0a signing on arbitrary inputs: the base string must always
//! split into method, URL and parameters that decode back to what went in,
//! and the `Authorization` header must parse back into its parameters
//! whenever the inputs are ones skim's configuration lets through.

#![no_main]

use libfuzzer_sys::fuzz_target;
use percent_encoding::percent_decode_str;
use skim_asx::ibkr::sign::{self, Method, OAuthParams};

/// Consumer key, access token, realm, nonce, timestamp, challenge, URL,
/// signed query, prepend, signature, method and signature kind selectors.
type Input = (
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    Vec<(String, String)>,
    Option<String>,
    String,
    u8,
    bool,
);

const METHODS: [&str; 4] = ["GET", "POST", "DELETE", "PUT"];

/// What `config.rs` accepts for a credential (and what skim makes for
/// nonces and timestamps): printable ASCII without whitespace or quotes.
fn is_header_safe(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_graphic() && !"\"'`".contains(c))
}

fn decode(text: &str) -> String {
    percent_decode_str(text)
        .decode_utf8()
        .expect("percent-encoding of UTF-8 decodes to UTF-8")
        .into_owned()
}

fuzz_target!(|input: Input| {
    let (
        consumer_key,
        access_token,
        realm,
        nonce,
        timestamp,
        challenge,
        url,
        query,
        prepend,
        signature,
        pick,
        rsa,
    ) = input;
    // A caller precondition (debug-asserted): the signed URL has no query.
    if url.contains('?') {
        return;
    }
    let method = METHODS[usize::from(pick) % METHODS.len()];
    let params = OAuthParams {
        consumer_key: &consumer_key,
        access_token: &access_token,
        nonce: &nonce,
        timestamp: &timestamp,
        method: if rsa {
            Method::RsaSha256
        } else {
            Method::HmacSha256
        },
        dh_challenge: challenge.as_deref(),
    };

    let base = sign::base_string(method, &url, &params, &query, prepend.as_deref());
    let rest = base
        .strip_prefix(prepend.as_deref().unwrap_or(""))
        .expect("the prepend leads the base string");
    let parts: Vec<&str> = rest.split('&').collect();
    assert_eq!(parts.len(), 3, "method, URL, parameters: {base:?}");
    assert_eq!(parts[0], method);
    assert_eq!(decode(parts[1]), url);
    let joined = decode(parts[2]);
    assert!(joined.contains(&format!("oauth_consumer_key={consumer_key}")));
    for (key, value) in &query {
        assert!(
            joined.contains(&format!("{key}={value}")),
            "query pair lost"
        );
    }

    let header = sign::authorization_header(&realm, &params, &signature);
    let safe = [&consumer_key, &access_token, &realm, &nonce, &timestamp]
        .iter()
        .all(|text| is_header_safe(text))
        && challenge.as_deref().is_none_or(is_header_safe);
    if !safe {
        return;
    }
    let items = header
        .strip_prefix("OAuth ")
        .expect("the header names its scheme");
    let mut pairs = Vec::new();
    for item in items.split(", ") {
        let (key, quoted) = item.split_once('=').expect("key=\"value\"");
        let value = quoted
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .expect("quoted value");
        assert!(!value.contains('"'), "a quote inside a value: {header:?}");
        pairs.push((key, value));
    }
    assert_eq!(pairs[0], ("realm", realm.as_str()));
    let keys: Vec<&str> = pairs[1..].iter().map(|(key, _)| *key).collect();
    assert!(keys.is_sorted(), "parameters out of order: {header:?}");
    let signed = pairs
        .iter()
        .find(|(key, _)| *key == "oauth_signature")
        .expect("a signature");
    assert_eq!(decode(signed.1), signature);
    assert!(pairs.contains(&("oauth_token", access_token.as_str())));
});
