//! From settings to a ready client: load the keys, decrypt the secret, set
//! the client's options.

use std::path::PathBuf;

use anyhow::Result;
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
