//! Test setup: turning a keys folder made by `skim keys-gen` (or openssl)
//! into a simulator [`Config`] plus the credentials IBKR's portal would
//! hand the user, i.e. the environment the client needs.
//!
//! Only public material is read: the simulator, like IBKR, never sees the
//! private keys.

use std::path::Path;

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use num_bigint::BigUint;
use rand::Rng;
use rsa::Pkcs1v15Encrypt;

use crate::{Config, parse_public_key};

/// A simulator config with fresh random credentials, and what the client
/// must be told about them.
pub struct Setup {
    /// The config to start the simulator with.
    pub config: Config,
    /// The access token secret as the portal shows it: S encrypted with the
    /// user's public encryption key (RSA PKCS#1 v1.5), base64.
    pub access_token_secret: String,
}

impl Setup {
    /// Reads `public_signature.pem`, `public_encryption.pem` and
    /// `dhparam.pem` from `dir`, and picks a random consumer key (9
    /// uppercase letters), access token (20 hex digits) and 32-byte secret.
    pub fn from_keys_dir(dir: &Path) -> Result<Setup> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path)
                .with_context(|| format!("failed to read {}", path.display()))
        };
        let signature_pem = read("public_signature.pem")?;
        parse_public_key(&signature_pem).with_context(|| {
            format!(
                "invalid key in {}",
                dir.join("public_signature.pem").display()
            )
        })?;
        let encryption_pem = read("public_encryption.pem")?;
        let prime = parse_dhparam_pem(&read("dhparam.pem")?)
            .with_context(|| format!("invalid {}", dir.join("dhparam.pem").display()))?;

        let mut rng = rand::thread_rng();
        let consumer_key: String = (0..9)
            .map(|_| char::from(rng.gen_range(b'A'..=b'Z')))
            .collect();
        let access_token = crate::oauth::hex(&rng.r#gen::<[u8; 10]>());
        let secret = rng.r#gen::<[u8; 32]>().to_vec();
        let access_token_secret = encrypt_secret(&encryption_pem, &secret).with_context(|| {
            format!(
                "invalid key in {}",
                dir.join("public_encryption.pem").display()
            )
        })?;
        let config = Config::new(&consumer_key, &access_token, &signature_pem, secret, prime);
        Ok(Setup {
            config,
            access_token_secret,
        })
    }

    /// The client's environment for a simulator at `base_url`:
    /// `OAUTH_CONSUMER_KEY`, `OAUTH_ACCESS_TOKEN`, `OAUTH_ACCESS_TOKEN_SECRET`,
    /// `OAUTH_DH_PRIME` (lowercase hex) and `IBKR_BASE_URL`.
    pub fn env_pairs(&self, base_url: &str) -> Vec<(&'static str, String)> {
        vec![
            ("OAUTH_CONSUMER_KEY", self.config.consumer_key.clone()),
            ("OAUTH_ACCESS_TOKEN", self.config.access_token.clone()),
            (
                "OAUTH_ACCESS_TOKEN_SECRET",
                self.access_token_secret.clone(),
            ),
            ("OAUTH_DH_PRIME", self.config.dh_prime.to_str_radix(16)),
            ("IBKR_BASE_URL", base_url.to_string()),
        ]
    }

    /// [`Setup::env_pairs`] as `.env` lines, each ending in a newline.
    pub fn env_lines(&self, base_url: &str) -> String {
        self.env_pairs(base_url)
            .iter()
            .map(|(k, v)| format!("{k}={v}\n"))
            .collect()
    }
}

/// Encrypts `secret` with an RSA public key PEM (SPKI or PKCS#1) using
/// PKCS#1 v1.5 padding and returns base64: the form of
/// `OAUTH_ACCESS_TOKEN_SECRET`. Randomised, so each call differs.
pub fn encrypt_secret(public_encryption_pem: &str, secret: &[u8]) -> Result<String> {
    let key = parse_public_key(public_encryption_pem)?;
    let ciphertext = key
        .encrypt(&mut rand::thread_rng(), Pkcs1v15Encrypt, secret)
        .context("failed to encrypt the access token secret")?;
    Ok(BASE64.encode(ciphertext))
}

/// Reads the prime from a PKCS#3 `BEGIN DH PARAMETERS` PEM: DER
/// `SEQUENCE { INTEGER p, INTEGER g [, INTEGER privateValueLength] }`.
/// The generator must be 2, the only one IBKR uses.
pub fn parse_dhparam_pem(pem: &str) -> Result<BigUint> {
    let body = pem
        .split("-----BEGIN DH PARAMETERS-----")
        .nth(1)
        .and_then(|rest| rest.split("-----END DH PARAMETERS-----").next())
        .context("expected a PEM block \"BEGIN DH PARAMETERS\"")?;
    let base64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = BASE64
        .decode(base64)
        .context("DH parameters PEM is not valid base64")?;

    let (sequence, rest) = read_tlv(&der, 0x30).context("expected a DER SEQUENCE")?;
    if !rest.is_empty() {
        bail!("unexpected bytes after the DH parameters");
    }
    let (prime, after_prime) = read_tlv(sequence, 0x02).context("expected INTEGER prime")?;
    let (generator, after_generator) =
        read_tlv(after_prime, 0x02).context("expected INTEGER generator")?;
    if !after_generator.is_empty() {
        let (_, trailing) =
            read_tlv(after_generator, 0x02).context("expected INTEGER privateValueLength")?;
        if !trailing.is_empty() {
            bail!("unexpected fields in the DH parameters");
        }
    }
    if prime.first().is_some_and(|b| b & 0x80 != 0)
        || generator.first().is_some_and(|b| b & 0x80 != 0)
    {
        bail!("DH parameters hold a negative number");
    }
    let generator = BigUint::from_bytes_be(generator);
    if generator != BigUint::from(2u8) {
        bail!("DH generator is {generator}, expected 2");
    }
    let prime = BigUint::from_bytes_be(prime);
    if prime.bits() < 64 {
        bail!("DH prime has only {} bits", prime.bits());
    }
    Ok(prime)
}

/// Splits one DER element with tag `tag` off the front of `input`,
/// returning its contents and what follows.
fn read_tlv(input: &[u8], tag: u8) -> Result<(&[u8], &[u8])> {
    let [found, first_len, rest @ ..] = input else {
        bail!("DER data ends early");
    };
    if *found != tag {
        bail!("DER tag is 0x{found:02x}, expected 0x{tag:02x}");
    }
    let (len, rest) = if first_len & 0x80 == 0 {
        (usize::from(*first_len), rest)
    } else {
        let count = usize::from(first_len & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            bail!("DER length is malformed");
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[count..])
    };
    if rest.len() < len {
        bail!("DER element is longer than the data");
    }
    Ok(rest.split_at(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DER-encodes a length, short or long form.
    fn der_len(len: usize) -> Vec<u8> {
        if len < 0x80 {
            vec![len as u8]
        } else {
            let bytes: Vec<u8> = len
                .to_be_bytes()
                .into_iter()
                .skip_while(|b| *b == 0)
                .collect();
            let mut out = vec![0x80 | bytes.len() as u8];
            out.extend(bytes);
            out
        }
    }

    fn der_int(value: &BigUint) -> Vec<u8> {
        let mut bytes = value.to_bytes_be();
        if bytes[0] & 0x80 != 0 {
            bytes.insert(0, 0);
        }
        let mut out = vec![0x02];
        out.extend(der_len(bytes.len()));
        out.extend(bytes);
        out
    }

    fn pem(prime: &BigUint, generator: u32) -> String {
        let mut inner = der_int(prime);
        inner.extend(der_int(&BigUint::from(generator)));
        let mut der = vec![0x30];
        der.extend(der_len(inner.len()));
        der.extend(inner);
        let text = BASE64.encode(der);
        let lines: Vec<&str> = text
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN DH PARAMETERS-----\n{}\n-----END DH PARAMETERS-----\n",
            lines.join("\n")
        )
    }

    #[test]
    fn dhparam_round_trips_a_2048_bit_prime() {
        // RFC 3526 group 14 starts and ends with 64 one bits, so its DER
        // integer needs the sign byte and a two-byte length.
        let prime = (BigUint::from(1u8) << 2048usize) - BigUint::from(1u8);
        assert_eq!(parse_dhparam_pem(&pem(&prime, 2)).unwrap(), prime);
    }

    #[test]
    fn dhparam_refuses_other_generators_and_garbage() {
        let prime = (BigUint::from(1u8) << 127usize) - BigUint::from(1u8);
        let error = parse_dhparam_pem(&pem(&prime, 5)).unwrap_err();
        assert!(format!("{error:#}").contains("expected 2"), "{error:#}");
        assert!(parse_dhparam_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n").is_err());
        let truncated = "-----BEGIN DH PARAMETERS-----\nMAUCAQI=\n-----END DH PARAMETERS-----";
        assert!(parse_dhparam_pem(truncated).is_err());
    }

    #[test]
    fn read_tlv_checks_lengths() {
        assert!(read_tlv(&[0x02, 0x05, 1, 2], 0x02).is_err());
        assert!(read_tlv(&[0x02, 0x81], 0x02).is_err());
        assert_eq!(
            read_tlv(&[0x02, 0x01, 7, 9], 0x02).unwrap(),
            (&[7u8][..], &[9u8][..])
        );
    }
}
