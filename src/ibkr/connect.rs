//! From settings to a ready client: load the keys, decrypt the secret, set
//! the client's options. Also the key files' age, which `auth-check`
//! reports so keys get rotated on schedule.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result};
use chrono::{DateTime, TimeDelta, Utc};
use rsa::RsaPrivateKey;

use super::{Client, ClientOptions, Credentials};
use crate::config::{Config, OAuthConfig};
use crate::keys;

/// The two private keys, loaded from the keys folder (each refused unless
/// mode 0600).
pub struct KeyPair {
    pub signature: RsaPrivateKey,
    pub encryption: RsaPrivateKey,
    pub signature_path: PathBuf,
    pub encryption_path: PathBuf,
}

/// Loads `private_signature.pem` and `private_encryption.pem`.
pub fn load_keys(oauth: &OAuthConfig<'_>) -> Result<KeyPair> {
    let signature_path = oauth.keys_dir.join("private_signature.pem");
    let encryption_path = oauth.keys_dir.join("private_encryption.pem");
    Ok(KeyPair {
        signature: keys::load_private_key(&signature_path)?,
        encryption: keys::load_private_key(&encryption_path)?,
        signature_path,
        encryption_path,
    })
}

/// How old one key file is, judged by its modification time (the last time
/// `keys-gen` or the user wrote it).
#[derive(Clone, Debug, PartialEq)]
pub struct KeyAge {
    pub path: PathBuf,
    pub modified_at: DateTime<Utc>,
    /// Whole days between the modification time and now; 0 when the file
    /// claims to be from the future (a pinned or wrong clock).
    pub age_days: i64,
    /// True when the file is older than the rotation period.
    pub is_due: bool,
}

impl KeyAge {
    /// Judges a file modified at `modified_at` against a rotation period
    /// of `rotation_days` as seen at `now`. Due means strictly older than
    /// the period: a key exactly 180 days old is not yet due.
    pub fn new(
        path: &Path,
        modified_at: DateTime<Utc>,
        now: DateTime<Utc>,
        rotation_days: u32,
    ) -> KeyAge {
        let age = (now - modified_at).max(TimeDelta::zero());
        KeyAge {
            path: path.to_path_buf(),
            modified_at,
            age_days: age.num_days(),
            is_due: age.num_seconds() > i64::from(rotation_days) * 86_400,
        }
    }

    /// The warning `auth-check` gives for a key that is due, naming the
    /// file, its age and the period; `None` while the key is within it.
    pub fn warning(&self, rotation_days: u32) -> Option<String> {
        self.is_due.then(|| {
            format!(
                "{} is {} days old, past the {rotation_days}-day rotation period; make a \
                 new set with `skim keys-gen --dir NEW_DIR`, register it in IBKR's \
                 self-service portal, then point OAUTH_KEYS_DIR at it",
                self.path.display(),
                self.age_days
            )
        })
    }
}

/// The age of both key files of `keys` at `now`, signature key first.
/// Fails, naming the file, only if its modification time cannot be read.
pub fn key_ages(keys: &KeyPair, now: DateTime<Utc>, rotation_days: u32) -> Result<Vec<KeyAge>> {
    [&keys.signature_path, &keys.encryption_path]
        .into_iter()
        .map(|path| {
            let modified = modified_at(path)?;
            Ok(KeyAge::new(path, modified, now, rotation_days))
        })
        .collect()
}

fn modified_at(path: &Path) -> Result<DateTime<Utc>> {
    let modified: SystemTime = std::fs::metadata(path)
        .and_then(|meta| meta.modified())
        .with_context(|| format!("failed to read the modification time of {}", path.display()))?;
    Ok(DateTime::<Utc>::from(modified))
}

/// Decrypts the access token secret with the encryption key.
pub fn credentials(oauth: &OAuthConfig<'_>, keys: KeyPair) -> Result<Credentials> {
    Credentials::new(
        oauth.consumer_key,
        oauth.access_token,
        oauth.access_token_secret,
        oauth.realm,
        oauth.dh_prime.clone(),
        keys.signature,
        &keys.encryption,
    )
}

/// The client options the settings ask for; state lives beside the database.
pub fn options(config: &Config) -> ClientOptions {
    ClientOptions {
        timeout: config.http_timeout,
        sign_query: config.sign_query,
        state_dir: Some(config.state_dir()),
        allow_live: config.allow_live,
        ..ClientOptions::new(config.ibkr_base_url.clone())
    }
}

/// Everything at once: a client with credentials, not yet connected.
pub fn client(config: &Config) -> Result<Client> {
    let oauth = config.oauth()?;
    let keys = load_keys(&oauth)?;
    Client::new(credentials(&oauth, keys)?, options(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn a_key_is_due_only_once_strictly_past_the_period() {
        let now = at("2026-12-03T09:00:00+11:00");
        let path = Path::new("oauth_keys/private_signature.pem");
        let exactly = KeyAge::new(path, now - TimeDelta::days(180), now, 180);
        assert_eq!((exactly.age_days, exactly.is_due), (180, false));
        assert_eq!(exactly.warning(180), None);

        let past = KeyAge::new(
            path,
            now - TimeDelta::days(180) - TimeDelta::seconds(1),
            now,
            180,
        );
        assert_eq!((past.age_days, past.is_due), (180, true));
        let warning = past.warning(180).unwrap();
        assert!(warning.starts_with("oauth_keys/private_signature.pem is 180 days old"));
        assert!(warning.contains("180-day rotation period"), "{warning}");

        let young = KeyAge::new(path, now - TimeDelta::days(29), now, 30);
        assert!(!young.is_due);
        let old = KeyAge::new(path, now - TimeDelta::days(31), now, 30);
        assert_eq!((old.age_days, old.is_due), (31, true));
    }

    #[test]
    fn a_file_from_the_future_counts_as_new() {
        let now = at("2026-01-01T00:00:00Z");
        let age = KeyAge::new(Path::new("k.pem"), now + TimeDelta::days(400), now, 1);
        assert_eq!((age.age_days, age.is_due), (0, false));
    }

    #[test]
    fn a_huge_period_never_overflows() {
        let now = at("2026-01-01T00:00:00Z");
        let ancient = at("1970-01-01T00:00:00Z");
        let age = KeyAge::new(Path::new("k.pem"), ancient, now, u32::MAX);
        assert!(!age.is_due);
        assert!(age.age_days > 20_000);
    }
}
