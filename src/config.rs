//! Settings: the process environment, then a `.env` file, then flags.
//!
//! [`Env`] gathers raw values (real environment variables win over the
//! file); [`Config::from_env`] validates every value that is present, once,
//! up front, so a malformed setting is a usage error (exit 2) naming the
//! variable before any work starts. Settings that only some commands need
//! (the IBKR credentials) are checked for presence by [`Config::oauth`].

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, FixedOffset};
use num_bigint::BigUint;
use reqwest::Url;

use crate::error;
use crate::fsutil;
use crate::secret::Secret;

/// Every setting skim reads from the environment or `.env`, by name.
pub const SETTINGS: &[&str] = &[
    "OAUTH_CONSUMER_KEY",
    "OAUTH_ACCESS_TOKEN",
    "OAUTH_ACCESS_TOKEN_SECRET",
    "OAUTH_DH_PRIME",
    "OAUTH_REALM",
    "OAUTH_KEYS_DIR",
    "IBKR_BASE_URL",
    "ASX_ANNOUNCEMENTS_URL",
    "DISCORD_WEBHOOK_URL",
    "SKIM_DB",
    "SKIM_NOW",
    "SKIM_ALLOW_LIVE",
    "IBKR_SIGN_QUERY",
    "SKIM_HTTP_TIMEOUT",
    "SKIM_KEY_ROTATION_DAYS",
];

/// Raw settings by name, from the process environment and a `.env` file.
#[derive(Debug, Default)]
pub struct Env {
    vars: BTreeMap<String, String>,
    /// The `.env` file that was read, if any.
    pub file: Option<PathBuf>,
}

impl Env {
    /// Reads the process environment, then `env_file` (or `./.env` when it
    /// exists). A named file must exist. The file holds credentials, so it is
    /// refused unless mode 0600, like the key files.
    pub fn load(env_file: Option<&Path>) -> Result<Env> {
        let default = Path::new(".env");
        let file = match env_file {
            Some(path) => {
                if !path.exists() {
                    return Err(error::usage(format!(
                        "the env file {} does not exist",
                        path.display()
                    ))
                    .into());
                }
                Some(path.to_path_buf())
            }
            None => default.exists().then(|| default.to_path_buf()),
        };
        let mut vars: BTreeMap<String, String> = BTreeMap::new();
        if let Some(path) = &file {
            fsutil::require_private_mode(path, "env file")?;
            let entries = dotenvy::from_path_iter(path)
                .with_context(|| format!("failed to read env file {}", path.display()))?;
            for entry in entries {
                let (key, value) = entry.map_err(|err| {
                    error::usage(format!("env file {} is malformed: {err}", path.display()))
                })?;
                vars.insert(key, value);
            }
            log::debug!("read settings from {}", path.display());
        }
        // Real environment variables win over the file.
        for (key, value) in std::env::vars_os() {
            let Some(key) = key.to_str() else { continue };
            match value.to_str() {
                Some(value) => {
                    vars.insert(key.to_owned(), value.to_owned());
                }
                // Skipping it would silently fall back to the file or the
                // default; the value may be a credential, so it is not shown.
                None if SETTINGS.contains(&key) => {
                    return Err(error::usage(format!(
                        "{key} is not valid UTF-8; expected plain text"
                    ))
                    .into());
                }
                None => {}
            }
        }
        Ok(Env { vars, file })
    }

    /// An environment made of exactly these pairs (tests, embedding).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Env {
        let vars = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        Env { vars, file: None }
    }

    /// The value of `key`; an empty value counts as unset.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// Settings given as flags, which win over the environment.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub db: Option<PathBuf>,
    pub keys_dir: Option<PathBuf>,
}

/// The resolved, validated settings of one run.
#[derive(Debug)]
pub struct Config {
    pub consumer_key: Option<String>,
    pub access_token: Option<String>,
    pub access_token_secret: Option<Secret>,
    pub dh_prime: Option<BigUint>,
    pub realm: String,
    pub keys_dir: PathBuf,
    pub ibkr_base_url: Url,
    pub asx_announcements_url: Url,
    /// The whole webhook URL is a secret: its last segment is the token.
    pub discord_webhook_url: Option<Secret>,
    pub db_path: PathBuf,
    /// `SKIM_NOW`: the instant the market clock pretends it is.
    pub now: Option<DateTime<FixedOffset>>,
    pub allow_live: bool,
    /// `IBKR_SIGN_QUERY`: put query parameters into the OAuth base string.
    pub sign_query: bool,
    pub http_timeout: Duration,
    /// `SKIM_KEY_ROTATION_DAYS`: key files older than this many days are
    /// due for rotation, and `auth-check` warns about them.
    pub key_rotation_days: u32,
}

/// The IBKR credentials, all present.
#[derive(Debug)]
pub struct OAuthConfig<'a> {
    pub consumer_key: &'a str,
    pub access_token: &'a str,
    pub access_token_secret: &'a Secret,
    pub dh_prime: &'a BigUint,
    pub realm: &'a str,
    pub keys_dir: &'a Path,
}

pub const DEFAULT_IBKR_BASE_URL: &str = "https://api.ibkr.com/v1/api";
pub const DEFAULT_ASX_ANNOUNCEMENTS_URL: &str =
    "https://www.asx.com.au/asx/v2/statistics/todayAnns.do";
/// IBKR's portal takes 2048-bit DH parameters; anything smaller is a
/// mistake (or a toy prime from a test).
pub const MIN_DH_PRIME_BITS: u64 = 2048;
/// How long key files may be used before `auth-check` asks for new ones;
/// the integration guide's rotation period.
pub const DEFAULT_KEY_ROTATION_DAYS: u32 = 180;

impl Config {
    /// Validates every setting present in `env`, applying `overrides`.
    pub fn from_env(env: &Env, overrides: &Overrides) -> Result<Config> {
        let credential = |key: &str| env.get(key).map(|v| check_credential(key, v)).transpose();
        let access_token_secret = env
            .get("OAUTH_ACCESS_TOKEN_SECRET")
            .map(|v| check_base64("OAUTH_ACCESS_TOKEN_SECRET", v).map(|()| Secret::new(v)))
            .transpose()?;
        let discord_webhook_url = env
            .get("DISCORD_WEBHOOK_URL")
            .map(|v| crate::discord::WebhookUrl::parse(v).map(|_| Secret::new(v)))
            .transpose()
            // The URL may be malformed in a way that echoes the token; name
            // the variable only.
            .map_err(|_| {
                error::usage(
                    "DISCORD_WEBHOOK_URL is not a webhook URL; expected \
                     https://discord.com/api/webhooks/ID/TOKEN",
                )
            })?;
        Ok(Config {
            consumer_key: credential("OAUTH_CONSUMER_KEY")?,
            access_token: credential("OAUTH_ACCESS_TOKEN")?,
            access_token_secret,
            dh_prime: env.get("OAUTH_DH_PRIME").map(parse_dh_prime).transpose()?,
            realm: credential("OAUTH_REALM")?.unwrap_or_else(|| "limited_poa".to_owned()),
            keys_dir: overrides
                .keys_dir
                .clone()
                .or_else(|| env.get("OAUTH_KEYS_DIR").map(PathBuf::from))
                .unwrap_or_else(|| PathBuf::from("./oauth_keys")),
            ibkr_base_url: https_url(
                "IBKR_BASE_URL",
                env.get("IBKR_BASE_URL").unwrap_or(DEFAULT_IBKR_BASE_URL),
            )?,
            asx_announcements_url: https_url(
                "ASX_ANNOUNCEMENTS_URL",
                env.get("ASX_ANNOUNCEMENTS_URL")
                    .unwrap_or(DEFAULT_ASX_ANNOUNCEMENTS_URL),
            )?,
            discord_webhook_url,
            db_path: overrides
                .db
                .clone()
                .or_else(|| env.get("SKIM_DB").map(PathBuf::from))
                .unwrap_or_else(|| PathBuf::from("./data/skim.db")),
            now: env.get("SKIM_NOW").map(parse_now).transpose()?,
            allow_live: env
                .get("SKIM_ALLOW_LIVE")
                .map(|v| parse_bool("SKIM_ALLOW_LIVE", v))
                .transpose()?
                .unwrap_or(false),
            sign_query: env
                .get("IBKR_SIGN_QUERY")
                .map(|v| parse_bool("IBKR_SIGN_QUERY", v))
                .transpose()?
                .unwrap_or(false),
            http_timeout: env
                .get("SKIM_HTTP_TIMEOUT")
                .map(parse_timeout)
                .transpose()?
                .unwrap_or(Duration::from_secs(30)),
            key_rotation_days: env
                .get("SKIM_KEY_ROTATION_DAYS")
                .map(parse_rotation_days)
                .transpose()?
                .unwrap_or(DEFAULT_KEY_ROTATION_DAYS),
        })
    }

    /// The IBKR credentials, or a usage error naming the first one missing.
    pub fn oauth(&self) -> Result<OAuthConfig<'_>> {
        fn need<'a, T: ?Sized>(value: Option<&'a T>, name: &str) -> Result<&'a T> {
            value.ok_or_else(|| {
                error::usage(format!("{name} is not set"))
                    .hint(format!(
                        "set {name} in the environment or in .env; `skim keys-gen` prints \
                         what to copy from IBKR's self-service portal"
                    ))
                    .into()
            })
        }
        Ok(OAuthConfig {
            consumer_key: need(self.consumer_key.as_deref(), "OAUTH_CONSUMER_KEY")?,
            access_token: need(self.access_token.as_deref(), "OAUTH_ACCESS_TOKEN")?,
            access_token_secret: need(
                self.access_token_secret.as_ref(),
                "OAUTH_ACCESS_TOKEN_SECRET",
            )?,
            dh_prime: need(self.dh_prime.as_ref(), "OAUTH_DH_PRIME")?,
            realm: &self.realm,
            keys_dir: &self.keys_dir,
        })
    }

    /// The folder beside the database, where skim keeps its other state
    /// (the session token cache, the rate-limit pause).
    pub fn state_dir(&self) -> PathBuf {
        match self.db_path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }
}

/// Credentials are copied by hand from IBKR's portal; a stray space or
/// quote is the classic slip, and IBKR answers it with an opaque 401.
fn check_credential(name: &str, value: &str) -> Result<String> {
    if let Some(bad) = value
        .chars()
        .find(|c| c.is_whitespace() || "\"'`".contains(*c))
    {
        let what = if bad.is_whitespace() {
            "whitespace".to_owned()
        } else {
            format!("{bad}")
        };
        return Err(error::usage(format!(
            "{name} contains {what}; expected the value exactly as IBKR's portal shows it"
        ))
        .hint(format!("remove the stray characters around {name} in .env"))
        .into());
    }
    if !value.chars().all(|c| c.is_ascii_graphic()) {
        return Err(error::usage(format!("{name} must be printable ASCII")).into());
    }
    Ok(value.to_owned())
}

fn check_base64(name: &str, value: &str) -> Result<()> {
    check_credential(name, value)?;
    let ok = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+/=".contains(c))
        && value.len().is_multiple_of(4);
    if !ok {
        return Err(error::usage(format!(
            "{name} is not base64; expected the access token secret exactly as IBKR's portal \
             shows it"
        ))
        .into());
    }
    Ok(())
}

/// Parses `OAUTH_DH_PRIME`: hex digits as `openssl dhparam -text` prints
/// them once colons and spaces are dropped (or as `skim keys-gen` prints).
pub fn parse_dh_prime(value: &str) -> Result<BigUint> {
    let digits = value.trim();
    let not_hex = || {
        error::usage(
            "OAUTH_DH_PRIME is not a hexadecimal number; expected the prime as `skim keys-gen` \
             prints it",
        )
        .hint("print it from your dhparam.pem with `skim keys-gen --prime-from oauth_keys/dhparam.pem`")
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(not_hex().into());
    }
    let prime = BigUint::parse_bytes(digits.as_bytes(), 16).ok_or_else(not_hex)?;
    if prime.bits() < MIN_DH_PRIME_BITS || !prime.bit(0) {
        return Err(error::usage(format!(
            "OAUTH_DH_PRIME has {} bits; expected an odd prime of at least {MIN_DH_PRIME_BITS} \
             bits",
            prime.bits()
        ))
        .into());
    }
    Ok(prime)
}

/// Parses a URL setting that must be `https://`, or `http://` to a loopback
/// host (the simulator and tests).
pub fn https_url(name: &str, value: &str) -> Result<Url> {
    let url = Url::parse(value).map_err(|err| {
        error::usage(format!(
            "{name} is not a URL ({err}); expected https://HOST/PATH"
        ))
    })?;
    let loopback = match url.host() {
        Some(url::Host::Domain(host)) => host.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" if url.host().is_some() => Ok(url),
        "http" if loopback => Ok(url),
        "http" => Err(error::usage(format!(
            "{name} uses plain http:// to a host that is not loopback; expected https://"
        ))
        .into()),
        _ => Err(error::usage(format!("{name} must be an https:// URL")).into()),
    }
}

fn parse_bool(name: &str, value: &str) -> Result<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(error::usage(format!("{name} is {value:?}; expected true or false")).into()),
    }
}

fn parse_now(value: &str) -> Result<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(value).map_err(|_| {
        error::usage(format!(
            "SKIM_NOW is {value:?}; expected an RFC 3339 instant such as \
             2026-03-02T10:15:00+11:00"
        ))
        .into()
    })
}

fn parse_timeout(value: &str) -> Result<Duration> {
    value
        .parse::<f64>()
        .ok()
        .filter(|secs| secs.is_finite() && *secs > 0.0 && *secs <= 600.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| {
            error::usage(format!(
                "SKIM_HTTP_TIMEOUT is {value:?}; expected seconds between 0 and 600"
            ))
            .into()
        })
}

fn parse_rotation_days(value: &str) -> Result<u32> {
    value
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|days| *days > 0)
        .ok_or_else(|| {
            error::usage(format!(
                "SKIM_KEY_ROTATION_DAYS is {value:?}; expected a whole number of days above 0"
            ))
            .into()
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ExitKind, exit_kind};

    const PRIME: &str = "ffffffffffffffffadf85458a2bb4a9aafdc5620273d3cf1d8b9c583ce2d3695a9e13641146433fbcc939dce249b3ef97d2fe363630c75d8f681b202aec4617ad3df1ed5d5fd65612433f51f5f066ed0856365553ded1af3b557135e7f57c935984f0c70e0e68b77e2a689daf3efe8721df158a136ade73530acca4f483a797abc0ab182b324fb61d108a94bb2c8e3fbb96adab760d7f4681d4f42a3de394df4ae56ede76372bb190b07a7c8ee0a6d709e02fce1cdf7e2ecc03404cd28342f619172fe9ce98583ff8e4f1232eef28183c3fe3b1b4c6fad733bb5fcbc2ec22005c58ef1837d1683b2c6f34a26c1b2effa886b423861285c97ffffffffffffffff";

    fn config(pairs: &[(&str, &str)]) -> Result<Config> {
        Config::from_env(
            &Env::from_pairs(pairs.iter().copied()),
            &Overrides::default(),
        )
    }

    fn usage_error(pairs: &[(&str, &str)], names: &str) {
        let err = config(pairs).unwrap_err();
        assert_eq!(exit_kind(&err), ExitKind::Usage, "{err:#}");
        assert!(
            format!("{err:#}").contains(names),
            "{err:#} should name {names}"
        );
    }

    #[test]
    fn defaults_follow_the_contract() {
        let cfg = config(&[]).unwrap();
        assert_eq!(cfg.realm, "limited_poa");
        assert_eq!(cfg.keys_dir, PathBuf::from("./oauth_keys"));
        assert_eq!(cfg.ibkr_base_url.as_str(), "https://api.ibkr.com/v1/api");
        assert_eq!(cfg.db_path, PathBuf::from("./data/skim.db"));
        assert_eq!(cfg.state_dir(), PathBuf::from("./data"));
        assert!(!cfg.allow_live && !cfg.sign_query && cfg.now.is_none());
        assert!(cfg.discord_webhook_url.is_none());
        assert_eq!(cfg.key_rotation_days, 180);
        let err = cfg.oauth().unwrap_err();
        assert!(err.to_string().contains("OAUTH_CONSUMER_KEY is not set"));
    }

    #[test]
    fn every_malformed_setting_names_itself() {
        usage_error(
            &[("OAUTH_CONSUMER_KEY", " ABCDEFGHI")],
            "OAUTH_CONSUMER_KEY contains whitespace",
        );
        usage_error(
            &[("OAUTH_ACCESS_TOKEN", "\"abc\"")],
            "OAUTH_ACCESS_TOKEN contains \"",
        );
        usage_error(
            &[("OAUTH_ACCESS_TOKEN_SECRET", "abc$")],
            "OAUTH_ACCESS_TOKEN_SECRET",
        );
        usage_error(
            &[("OAUTH_DH_PRIME", "xyz")],
            "OAUTH_DH_PRIME is not a hexadecimal",
        );
        usage_error(
            &[("OAUTH_DH_PRIME", "fffffffb")],
            "OAUTH_DH_PRIME has 32 bits",
        );
        usage_error(
            &[("IBKR_BASE_URL", "not a url")],
            "IBKR_BASE_URL is not a URL",
        );
        usage_error(
            &[("IBKR_BASE_URL", "http://api.ibkr.com/v1/api")],
            "IBKR_BASE_URL uses plain",
        );
        usage_error(
            &[("ASX_ANNOUNCEMENTS_URL", "ftp://x/y")],
            "ASX_ANNOUNCEMENTS_URL",
        );
        usage_error(
            &[("DISCORD_WEBHOOK_URL", "http://example.com/x")],
            "DISCORD_WEBHOOK_URL",
        );
        usage_error(&[("SKIM_NOW", "yesterday")], "SKIM_NOW");
        usage_error(&[("SKIM_ALLOW_LIVE", "maybe")], "SKIM_ALLOW_LIVE");
        usage_error(&[("IBKR_SIGN_QUERY", "2")], "IBKR_SIGN_QUERY");
        usage_error(&[("SKIM_HTTP_TIMEOUT", "-1")], "SKIM_HTTP_TIMEOUT");
        for days in ["0", "-5", "90.5", "six months", "99999999999"] {
            usage_error(
                &[("SKIM_KEY_ROTATION_DAYS", days)],
                "SKIM_KEY_ROTATION_DAYS",
            );
        }
    }

    /// `SETTINGS` is what the non-UTF-8 check and the bad-input tests go
    /// by, so it must name every variable `from_env` reads.
    #[test]
    fn settings_lists_every_variable_read() {
        let source = include_str!("config.rs");
        let body = source
            .split("pub fn from_env")
            .nth(1)
            .and_then(|rest| rest.split("pub fn oauth").next())
            .unwrap();
        let mut read: Vec<&str> = body
            .split('"')
            .skip(1)
            .step_by(2)
            .filter(|word| {
                word.len() > 3 && word.chars().all(|c| c.is_ascii_uppercase() || c == '_')
            })
            .collect();
        read.sort_unstable();
        read.dedup();
        let mut listed = SETTINGS.to_vec();
        listed.sort_unstable();
        assert_eq!(read, listed);
    }

    #[test]
    fn loopback_http_is_allowed_for_tests() {
        for url in [
            "http://127.0.0.1:9/v1/api",
            "http://localhost:9/x",
            "http://[::1]:9/x",
        ] {
            let cfg = config(&[("IBKR_BASE_URL", url)]).unwrap();
            assert_eq!(cfg.ibkr_base_url.scheme(), "http");
        }
    }

    #[test]
    fn the_secret_webhook_never_echoes_in_errors() {
        let err = config(&[(
            "DISCORD_WEBHOOK_URL",
            "http://example.com/api/webhooks/1/T0KEN",
        )])
        .unwrap_err();
        assert!(!format!("{err:#}").contains("T0KEN"));
    }

    #[test]
    fn full_credentials_resolve() {
        let cfg = config(&[
            ("OAUTH_CONSUMER_KEY", "ABCDEFGHI"),
            ("OAUTH_ACCESS_TOKEN", "0123456789abcdef0123"),
            ("OAUTH_ACCESS_TOKEN_SECRET", "AQIDBA=="),
            ("OAUTH_DH_PRIME", PRIME),
            ("SKIM_NOW", "2026-03-02T10:15:00+11:00"),
            ("SKIM_ALLOW_LIVE", "TRUE"),
            ("SKIM_KEY_ROTATION_DAYS", "90"),
        ])
        .unwrap();
        assert_eq!(cfg.key_rotation_days, 90);
        let oauth = cfg.oauth().unwrap();
        assert_eq!(oauth.consumer_key, "ABCDEFGHI");
        assert_eq!(oauth.dh_prime.bits(), 2048);
        assert!(cfg.allow_live);
        assert!(
            !format!("{cfg:?}").contains("AQIDBA=="),
            "Debug must not print the secret"
        );
    }

    #[test]
    fn flags_win_over_the_environment() {
        let env = Env::from_pairs([("SKIM_DB", "/tmp/a.db")]);
        let overrides = Overrides {
            db: Some("/tmp/b.db".into()),
            keys_dir: Some("/k".into()),
        };
        let cfg = Config::from_env(&env, &overrides).unwrap();
        assert_eq!(cfg.db_path, PathBuf::from("/tmp/b.db"));
        assert_eq!(cfg.keys_dir, PathBuf::from("/k"));
    }
}
