//! Key material for IBKR's self-service OAuth portal, and loading it back.
//!
//! [`write_key_set`] makes the five files the portal and skim need (two RSA
//! 2048 key pairs and `dhparam.pem`) and writes them all or none.
//! [`load_private_key`] reads a private key for signing or decryption and
//! refuses files others could read, like ssh does; [`fsutil::require_private_mode`]
//! is that rule on its own, for the other files that hold secrets. Argument
//! parsing and printing belong to `skim keys-gen`.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::Rng;
use rsa::RsaPrivateKey;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::der::zeroize::Zeroizing;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};

use crate::dh::{self, DhParams};
use crate::error;
use crate::fsutil;

/// Private half of the pair that signs the live session token request.
pub const PRIVATE_SIGNATURE: &str = "private_signature.pem";
/// Public half of the signature pair, uploaded to the portal.
pub const PUBLIC_SIGNATURE: &str = "public_signature.pem";
/// Private half of the pair that decrypts the access token secret.
pub const PRIVATE_ENCRYPTION: &str = "private_encryption.pem";
/// Public half of the encryption pair, uploaded to the portal.
pub const PUBLIC_ENCRYPTION: &str = "public_encryption.pem";
/// The DH parameters, uploaded to the portal.
pub const DH_PARAMS: &str = "dhparam.pem";

/// Every file of a key set, in the order [`write_key_set`] writes them.
pub const KEY_SET_FILES: [&str; 5] = [
    PRIVATE_SIGNATURE,
    PUBLIC_SIGNATURE,
    PRIVATE_ENCRYPTION,
    PUBLIC_ENCRYPTION,
    DH_PARAMS,
];

/// RSA modulus size IBKR's portal takes.
pub const RSA_BITS: usize = 2048;

/// Where the DH prime of a new key set comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DhSource {
    /// A fresh safe prime of `bits` bits, searched with `threads` workers
    /// (see [`dh::generate_safe_prime`]).
    Generate { bits: u64, threads: usize },
    /// RFC 7919's ffdhe2048 group, at once.
    Ffdhe2048,
}

impl DhSource {
    /// A fresh 2048-bit prime searched on every core.
    pub fn generate_default() -> DhSource {
        DhSource::Generate {
            bits: dh::DEFAULT_BITS,
            threads: dh::default_threads(),
        }
    }
}

/// What [`write_key_set`] makes and where.
#[derive(Clone, Debug)]
pub struct KeySetOptions {
    /// Folder for the five files; created if missing.
    pub dir: PathBuf,
    /// Replace existing files instead of refusing.
    pub force: bool,
    /// Where the DH prime comes from.
    pub dh: DhSource,
}

/// Progress of [`write_key_set`], for a status line on a terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Both RSA key pairs are being generated (reported once).
    RsaKeys,
    /// The DH search has put this many sieved candidates to the test so far.
    DhCandidates(u64),
    /// Everything is computed; the files are being written.
    Writing,
}

/// What [`write_key_set`] wrote. Holds no secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySetReport {
    /// The folder that holds the set.
    pub dir: PathBuf,
    /// Full paths of the files written, in [`KEY_SET_FILES`] order.
    pub files: Vec<PathBuf>,
    /// The `OAUTH_DH_PRIME` value for `.env`.
    pub dh_prime_hex: String,
    /// Size of the DH prime in bits.
    pub dh_bits: u64,
    /// Candidates the DH search tested; 0 for a fixed group.
    pub dh_candidates: u64,
    /// Time spent generating both RSA key pairs.
    pub rsa_time: Duration,
    /// Time spent finding the DH prime.
    pub dh_time: Duration,
    /// Time for the whole call, writing included.
    pub total_time: Duration,
}

/// Generates one RSA key of [`RSA_BITS`] bits from the operating system's
/// CSPRNG.
pub fn generate_rsa_key() -> anyhow::Result<RsaPrivateKey> {
    RsaPrivateKey::new(&mut rand::rngs::OsRng, RSA_BITS).context("failed to generate an RSA key")
}

/// Makes a key set in `options.dir`: [`PRIVATE_SIGNATURE`],
/// [`PUBLIC_SIGNATURE`], [`PRIVATE_ENCRYPTION`], [`PUBLIC_ENCRYPTION`]
/// (private keys PKCS#8, public keys SubjectPublicKeyInfo as `openssl rsa
/// -pubout` writes them) and [`DH_PARAMS`] (PKCS#3, generator 2).
///
/// Guarantees:
/// - Bad DH settings fail (usage error) before anything is generated.
/// - If any of the five files exists and `force` is false, nothing is
///   generated or written and the usage error names the files.
/// - Everything is computed before the folder is touched. The folder is
///   created 0700 if missing, and loses group and other bits if it has any.
/// - Private files are created 0600 (never chmod'ed later), public ones 0644
///   less the umask. Each is written to a temporary file in the folder,
///   synced, then renamed into place. On any failure the temporary files and
///   the files already renamed are removed (with `force`, the files they
///   replaced are gone too, so a failed run never leaves a mixed set).
///
/// `progress` is called from this and worker threads.
pub fn write_key_set(
    options: &KeySetOptions,
    progress: &(dyn Fn(Progress) + Sync),
) -> anyhow::Result<KeySetReport> {
    let started = Instant::now();
    let dir = &options.dir;
    if let DhSource::Generate { bits, threads } = options.dh {
        dh::validate_search(bits, threads)?;
    }
    if !options.force {
        refuse_existing(dir)?;
    }

    progress(Progress::RsaKeys);
    let rsa_started = Instant::now();
    let (signature, encryption) = std::thread::scope(|scope| {
        let signature = scope.spawn(generate_rsa_key);
        let encryption = generate_rsa_key();
        let signature = signature
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (signature, encryption)
    });
    let (signature, encryption) = (signature?, encryption?);
    let rsa_time = rsa_started.elapsed();

    let dh_started = Instant::now();
    let (params, dh_candidates) = match options.dh {
        DhSource::Ffdhe2048 => (DhParams::ffdhe2048(), 0),
        DhSource::Generate { bits, threads } => {
            let tried = std::sync::atomic::AtomicU64::new(0);
            let prime = dh::generate_safe_prime(bits, threads, &|count| {
                tried.fetch_max(count, std::sync::atomic::Ordering::Relaxed);
                progress(Progress::DhCandidates(count));
            })
            .context("failed to generate the DH prime")?;
            (DhParams::with_generator_two(prime)?, tried.into_inner())
        }
    };
    let dh_time = dh_started.elapsed();

    // Zeroizing strings wipe the private PEMs when they go out of scope.
    let private_signature = signature
        .to_pkcs8_pem(LineEnding::LF)
        .context("failed to encode the private signature key")?;
    let private_encryption = encryption
        .to_pkcs8_pem(LineEnding::LF)
        .context("failed to encode the private encryption key")?;
    let public_signature = signature
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .context("failed to encode the public signature key")?;
    let public_encryption = encryption
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .context("failed to encode the public encryption key")?;
    let dh_pem = params.to_pem();
    let contents: [(&str, &[u8], bool); 5] = [
        (PRIVATE_SIGNATURE, private_signature.as_bytes(), true),
        (PUBLIC_SIGNATURE, public_signature.as_bytes(), false),
        (PRIVATE_ENCRYPTION, private_encryption.as_bytes(), true),
        (PUBLIC_ENCRYPTION, public_encryption.as_bytes(), false),
        (DH_PARAMS, dh_pem.as_bytes(), false),
    ];

    progress(Progress::Writing);
    let created_dir = prepare_dir(dir)?;
    // Another process may have written files while we computed.
    if !options.force
        && let Err(err) = refuse_existing(dir)
    {
        remove_dir_if_created(dir, created_dir);
        return Err(err);
    }
    let files = write_all_or_nothing(dir, &contents, created_dir)
        .with_context(|| format!("failed to write the key set into {}", dir.display()))?;

    Ok(KeySetReport {
        dir: dir.clone(),
        files,
        dh_prime_hex: params.oauth_prime_hex(),
        dh_bits: params.bits(),
        dh_candidates,
        rsa_time,
        dh_time,
        total_time: started.elapsed(),
    })
}

/// Fails with a usage error naming every file of the set already in `dir`.
fn refuse_existing(dir: &Path) -> anyhow::Result<()> {
    let existing: Vec<&str> = KEY_SET_FILES
        .into_iter()
        .filter(|name| fs::symlink_metadata(dir.join(name)).is_ok())
        .collect();
    if existing.is_empty() {
        return Ok(());
    }
    Err(error::usage(format!(
        "{} already holds {}; nothing was written",
        dir.display(),
        existing.join(", ")
    ))
    .hint("move the old files away, or run `skim keys-gen --force` to replace them")
    .into())
}

/// Creates `dir` 0700 or removes group and other bits from it. Returns
/// whether it was created, so a failed write can remove it again.
fn prepare_dir(dir: &Path) -> anyhow::Result<bool> {
    match fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => Err(error::usage(format!(
            "{} exists and is not a folder; expected a folder for the key files",
            dir.display()
        ))
        .into()),
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o7777;
            if mode & 0o077 != 0 {
                fs::set_permissions(dir, fs::Permissions::from_mode(mode & 0o700)).with_context(
                    || {
                        format!(
                            "failed to remove group and other access from {}",
                            dir.display()
                        )
                    },
                )?;
            }
            Ok(false)
        }
        Err(err) if err.kind() == ErrorKind::NotFound => {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("failed to create key folder {}", dir.display()))?;
            // The umask may have taken more than group and other bits away.
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .with_context(|| format!("failed to set mode 0700 on {}", dir.display()))?;
            Ok(true)
        }
        Err(err) => Err(err).with_context(|| format!("failed to inspect {}", dir.display())),
    }
}

fn remove_dir_if_created(dir: &Path, created: bool) {
    if created {
        // Only succeeds when empty, which is the point: never lose a file.
        let _ = fs::remove_dir(dir);
    }
}

/// Writes each `(name, bytes, private)` to a synced temporary file, then
/// renames them all into place; undoes everything on the first failure.
fn write_all_or_nothing(
    dir: &Path,
    contents: &[(&str, &[u8], bool)],
    created_dir: bool,
) -> anyhow::Result<Vec<PathBuf>> {
    let mut temporary = Vec::with_capacity(contents.len());
    let mut placed = Vec::with_capacity(contents.len());
    let result = (|| {
        for &(name, bytes, private) in contents {
            let path = write_temporary(dir, name, bytes, private)?;
            temporary.push((path, dir.join(name)));
        }
        for (from, to) in &temporary {
            fs::rename(from, to)
                .with_context(|| format!("failed to move {} into place", to.display()))?;
            placed.push(to.clone());
        }
        // Make the renames themselves durable.
        File::open(dir)
            .and_then(|handle| handle.sync_all())
            .with_context(|| format!("failed to sync folder {}", dir.display()))
    })();
    match result {
        Ok(()) => Ok(placed),
        Err(err) => {
            for (from, _) in &temporary {
                let _ = fs::remove_file(from);
            }
            for path in &placed {
                let _ = fs::remove_file(path);
            }
            remove_dir_if_created(dir, created_dir);
            Err(err)
        }
    }
}

/// Creates a new hidden file beside `name` with its final mode, writes
/// `bytes` and syncs it. Returns its path.
fn write_temporary(dir: &Path, name: &str, bytes: &[u8], private: bool) -> anyhow::Result<PathBuf> {
    let suffix: u64 = rand::thread_rng().r#gen();
    let path = dir.join(format!(".{name}.{}.{suffix:016x}.tmp", std::process::id()));
    let mode = if private { 0o600 } else { 0o644 };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&path)
        .with_context(|| format!("failed to create {}", path.display()))?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    if let Err(err) = written {
        let _ = fs::remove_file(&path);
        return Err(err).with_context(|| format!("failed to write {}", path.display()));
    }
    Ok(path)
}

/// Loads an RSA private key from a PEM file, PKCS#1 (`BEGIN RSA PRIVATE
/// KEY`) or PKCS#8 (`BEGIN PRIVATE KEY`).
///
/// The file is opened, then its mode checked on the open handle (see
/// [`fsutil::require_private_mode`]) before a byte is read. A missing file, a loose
/// mode and a file that is not an unencrypted RSA private key are usage
/// errors naming the file; the message says what was found instead. No
/// error text quotes the file's contents.
pub fn load_private_key(path: &Path) -> anyhow::Result<RsaPrivateKey> {
    let what = "private key file";
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == ErrorKind::NotFound => {
            return Err(error::usage(format!("{what} {} does not exist", path.display()))
                .hint("run `skim keys-gen` to make the key files, or point OAUTH_KEYS_DIR at them")
                .into());
        }
        // OAUTH_KEYS_DIR names a file: a configuration slip, not an I/O
        // failure.
        Err(err) if err.kind() == ErrorKind::NotADirectory => {
            let dir = path.parent().unwrap_or(path);
            return Err(error::usage(format!(
                "{what} {} cannot exist: {} is not a folder",
                path.display(),
                dir.display()
            ))
            .hint("point OAUTH_KEYS_DIR at the folder that holds the key files")
            .into());
        }
        Err(err) => {
            return Err(err).with_context(|| format!("failed to open {what} {}", path.display()));
        }
    };
    let meta = file
        .metadata()
        .with_context(|| format!("failed to inspect {}", path.display()))?;
    fsutil::check_private_mode(&meta, path, what)?;

    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .with_context(|| format!("failed to read private key from {}", path.display()))?;
    // Wiped when dropped, so the key's text does not linger in freed memory.
    let bytes = Zeroizing::new(bytes);
    let parsed = std::str::from_utf8(&bytes)
        .map_err(|_| "the file is not text".to_string())
        .and_then(parse_private_key);
    parsed.map_err(|reason| {
        error::usage(format!(
            "{} is not a usable RSA private key: {reason}; expected PEM \
             `BEGIN PRIVATE KEY` (PKCS#8) or `BEGIN RSA PRIVATE KEY` (PKCS#1)",
            path.display()
        ))
        .into()
    })
}

/// Parses the first PEM block of `text`; the error says what was found.
fn parse_private_key(text: &str) -> Result<RsaPrivateKey, String> {
    let Some((label, block)) = first_pem_block(text) else {
        return Err("no PEM block found".to_string());
    };
    let key = match label {
        "PRIVATE KEY" => RsaPrivateKey::from_pkcs8_pem(block)
            .map_err(|err| format!("its PKCS#8 key is not an RSA key or is damaged ({err})"))?,
        "RSA PRIVATE KEY" if block.contains("ENCRYPTED") => {
            return Err(
                "it is encrypted with a passphrase; skim needs it unencrypted \
                        (openssl rsa -in FILE -out FILE)"
                    .to_string(),
            );
        }
        "RSA PRIVATE KEY" => RsaPrivateKey::from_pkcs1_pem(block)
            .map_err(|err| format!("its PKCS#1 key is damaged ({err})"))?,
        "ENCRYPTED PRIVATE KEY" => {
            return Err(
                "it is encrypted with a passphrase; skim needs it unencrypted \
                        (openssl pkey -in FILE -out FILE)"
                    .to_string(),
            );
        }
        "PUBLIC KEY" | "RSA PUBLIC KEY" => {
            return Err("it is a public key, the half uploaded to IBKR".to_string());
        }
        "DH PARAMETERS" => return Err("it holds DH parameters".to_string()),
        other => return Err(format!("it holds a `{other}` PEM block")),
    };
    key.validate()
        .map_err(|err| format!("the key fails its consistency check ({err})"))?;
    Ok(key)
}

/// The label and full text (boundaries included) of the first PEM block.
fn first_pem_block(text: &str) -> Option<(&str, &str)> {
    let start = text.find("-----BEGIN ")?;
    let label_start = start + "-----BEGIN ".len();
    let label_len = text[label_start..].find("-----")?;
    let label = &text[label_start..label_start + label_len];
    let end_line = format!("-----END {label}-----");
    let end = text[start..]
        .find(&end_line)
        .map_or(text.len(), |at| start + at + end_line.len());
    Some((label, &text[start..end]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::openssl_present;
    use rsa::RsaPublicKey;
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::DecodePublicKey;
    use std::process::Command;
    use std::sync::Mutex;

    fn ffdhe_options(dir: &Path, force: bool) -> KeySetOptions {
        KeySetOptions {
            dir: dir.to_path_buf(),
            force,
            dh: DhSource::Ffdhe2048,
        }
    }

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    fn set_mode(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    fn sorted_set_names() -> Vec<String> {
        let mut names: Vec<String> = KEY_SET_FILES.iter().map(|name| name.to_string()).collect();
        names.sort();
        names
    }

    fn assert_usage(err: &anyhow::Error) {
        assert_eq!(error::exit_kind(err), error::ExitKind::Usage, "{err:#}");
    }

    fn openssl_accepts(args: &[&str], path: &Path) {
        let output = Command::new("openssl")
            .args(args)
            .arg(path)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "openssl {args:?} {} failed: {}",
            path.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    #[test]
    fn writes_five_files_with_private_modes_into_a_new_0700_folder() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("oauth_keys");
        let seen = Mutex::new(Vec::new());
        let report = write_key_set(&ffdhe_options(&dir, false), &|event| {
            seen.lock().unwrap().push(event);
        })
        .unwrap();

        assert_eq!(mode_of(&dir), 0o700);
        assert_eq!(
            names_in(&dir),
            sorted_set_names(),
            "stray files left behind"
        );
        let expected: Vec<PathBuf> = KEY_SET_FILES.iter().map(|name| dir.join(name)).collect();
        assert_eq!(report.files, expected);
        assert_eq!(report.dir, dir);
        assert_eq!(report.dh_prime_hex, dh::FFDHE2048_PRIME_HEX.to_lowercase());
        assert_eq!(report.dh_bits, 2048);
        assert_eq!(report.dh_candidates, 0);
        assert!(report.total_time >= report.rsa_time + report.dh_time);
        assert_eq!(
            *seen.lock().unwrap(),
            [Progress::RsaKeys, Progress::Writing]
        );

        assert_eq!(mode_of(&dir.join(PRIVATE_SIGNATURE)), 0o600);
        assert_eq!(mode_of(&dir.join(PRIVATE_ENCRYPTION)), 0o600);
        for name in [PUBLIC_SIGNATURE, PUBLIC_ENCRYPTION, DH_PARAMS] {
            assert_eq!(
                mode_of(&dir.join(name)) & 0o077 & !0o044,
                0,
                "{name} is writable by others"
            );
        }

        // Each public file is the public half of its private file.
        for (private, public) in [
            (PRIVATE_SIGNATURE, PUBLIC_SIGNATURE),
            (PRIVATE_ENCRYPTION, PUBLIC_ENCRYPTION),
        ] {
            let text = fs::read_to_string(dir.join(private)).unwrap();
            assert!(
                text.starts_with("-----BEGIN PRIVATE KEY-----\n"),
                "{private} is not PKCS#8"
            );
            let key = load_private_key(&dir.join(private)).unwrap();
            let public_text = fs::read_to_string(dir.join(public)).unwrap();
            assert!(public_text.starts_with("-----BEGIN PUBLIC KEY-----\n"));
            let public_key = RsaPublicKey::from_public_key_pem(&public_text).unwrap();
            assert_eq!(public_key, key.to_public_key());
            assert_eq!(rsa::traits::PublicKeyParts::size(&public_key), RSA_BITS / 8);
        }
        let signature = load_private_key(&dir.join(PRIVATE_SIGNATURE)).unwrap();
        let encryption = load_private_key(&dir.join(PRIVATE_ENCRYPTION)).unwrap();
        assert_ne!(signature, encryption, "the two pairs must differ");
        let params = dh::read_params(&dir.join(DH_PARAMS)).unwrap();
        assert_eq!(params, DhParams::ffdhe2048());
    }

    #[test]
    fn a_loose_existing_folder_is_tightened() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("keys");
        fs::create_dir(&dir).unwrap();
        set_mode(&dir, 0o755);
        write_key_set(&ffdhe_options(&dir, false), &|_| {}).unwrap();
        assert_eq!(mode_of(&dir), 0o700);
    }

    #[test]
    fn existing_files_are_kept_and_nothing_is_written_without_force() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("keys");
        fs::create_dir(&dir).unwrap();
        set_mode(&dir, 0o755);
        fs::write(dir.join(PUBLIC_SIGNATURE), "old").unwrap();
        fs::write(dir.join(DH_PARAMS), "old dh").unwrap();

        let err = write_key_set(&ffdhe_options(&dir, false), &|_| {}).unwrap_err();
        assert_usage(&err);
        let message = err.to_string();
        assert!(
            message.contains(PUBLIC_SIGNATURE) && message.contains(DH_PARAMS),
            "{message}"
        );
        assert!(!message.contains(PRIVATE_SIGNATURE), "{message}");
        assert!(error::hint(&err).unwrap().contains("--force"));

        assert_eq!(names_in(&dir), [DH_PARAMS, PUBLIC_SIGNATURE]);
        assert_eq!(
            fs::read_to_string(dir.join(PUBLIC_SIGNATURE)).unwrap(),
            "old"
        );
        assert_eq!(
            mode_of(&dir),
            0o755,
            "a refused run must not touch the folder"
        );
    }

    #[test]
    fn force_replaces_an_existing_set() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("keys");
        write_key_set(&ffdhe_options(&dir, false), &|_| {}).unwrap();
        let first = fs::read_to_string(dir.join(PRIVATE_SIGNATURE)).unwrap();
        set_mode(&dir.join(PRIVATE_SIGNATURE), 0o644);

        write_key_set(&ffdhe_options(&dir, true), &|_| {}).unwrap();
        let second = fs::read_to_string(dir.join(PRIVATE_SIGNATURE)).unwrap();
        assert_ne!(first, second);
        assert_eq!(mode_of(&dir.join(PRIVATE_SIGNATURE)), 0o600);
        assert_eq!(names_in(&dir), sorted_set_names());
    }

    #[test]
    fn a_failed_write_leaves_no_files_behind() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("keys");
        fs::create_dir(&dir).unwrap();
        // A non-empty folder where dhparam.pem goes makes the last rename fail
        // after the four key files are already in place.
        fs::create_dir(dir.join(DH_PARAMS)).unwrap();
        fs::write(dir.join(DH_PARAMS).join("keep"), "x").unwrap();

        let err = write_key_set(&ffdhe_options(&dir, true), &|_| {}).unwrap_err();
        assert!(
            format!("{err:#}").contains("failed to write the key set"),
            "{err:#}"
        );
        assert_eq!(
            names_in(&dir),
            [DH_PARAMS],
            "files left behind after a failure"
        );
        assert!(dir.join(DH_PARAMS).join("keep").exists());
    }

    #[test]
    fn a_generated_prime_goes_into_dhparam_and_the_report() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("keys");
        let highest = std::sync::atomic::AtomicU64::new(0);
        let options = KeySetOptions {
            dir: dir.clone(),
            force: false,
            dh: DhSource::Generate {
                bits: 256,
                threads: 2,
            },
        };
        let report = write_key_set(&options, &|event| {
            if let Progress::DhCandidates(count) = event {
                highest.fetch_max(count, std::sync::atomic::Ordering::Relaxed);
            }
        })
        .unwrap();
        let params = dh::read_params(&dir.join(DH_PARAMS)).unwrap();
        assert_eq!(params.bits(), 256);
        assert_eq!(report.dh_bits, 256);
        assert_eq!(report.dh_prime_hex, params.oauth_prime_hex());
        assert!(dh::is_safe_prime(params.prime()));
        assert!(report.dh_candidates >= 1);
        assert_eq!(report.dh_candidates, highest.into_inner());
    }

    #[test]
    fn openssl_reads_every_file() {
        if !openssl_present() {
            return;
        }
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("keys");
        write_key_set(&ffdhe_options(&dir, false), &|_| {}).unwrap();
        for private in [PRIVATE_SIGNATURE, PRIVATE_ENCRYPTION] {
            openssl_accepts(&["rsa", "-check", "-noout", "-in"], &dir.join(private));
        }
        for public in [PUBLIC_SIGNATURE, PUBLIC_ENCRYPTION] {
            openssl_accepts(&["pkey", "-pubin", "-noout", "-in"], &dir.join(public));
        }
        openssl_accepts(
            &["dhparam", "-check", "-noout", "-in"],
            &dir.join(DH_PARAMS),
        );
    }

    #[test]
    fn pkcs1_and_pkcs8_keys_both_load() {
        let dir = tempfile::tempdir().unwrap();
        let key = generate_rsa_key().unwrap();
        let pkcs1 = dir.path().join("pkcs1.pem");
        let pkcs8 = dir.path().join("pkcs8.pem");
        fs::write(&pkcs1, key.to_pkcs1_pem(LineEnding::LF).unwrap().as_bytes()).unwrap();
        fs::write(&pkcs8, key.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes()).unwrap();
        for path in [&pkcs1, &pkcs8] {
            set_mode(path, 0o600);
            assert_eq!(load_private_key(path).unwrap(), key, "{}", path.display());
        }
        assert!(
            fs::read_to_string(&pkcs1)
                .unwrap()
                .starts_with("-----BEGIN RSA PRIVATE KEY")
        );
    }

    #[test]
    fn a_key_open_to_others_is_refused_with_the_chmod_hint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("private_signature.pem");
        let pem = generate_rsa_key()
            .unwrap()
            .to_pkcs8_pem(LineEnding::LF)
            .unwrap();
        fs::write(&path, pem.as_bytes()).unwrap();
        for mode in [0o644, 0o640, 0o604, 0o610] {
            set_mode(&path, mode);
            let err = load_private_key(&path).unwrap_err();
            assert_usage(&err);
            let text = format!("{err:#}");
            assert!(text.contains(&path.display().to_string()), "{text}");
            assert!(text.contains(&format!("{mode:04o}")), "{text}");
            assert_eq!(
                error::hint(&err),
                Some(format!("chmod 600 {}", path.display()).as_str())
            );
            assert!(!text.contains("MII"), "key material in the error: {text}");
        }
        set_mode(&path, 0o400);
        assert!(
            load_private_key(&path).is_ok(),
            "owner-only read must be accepted"
        );
    }

    #[test]
    fn files_that_are_not_rsa_private_keys_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let key = generate_rsa_key().unwrap();
        let public_pem = key
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        let cases = [
            ("public.pem", public_pem.into_bytes(), "public key"),
            (
                "dh.pem",
                DhParams::ffdhe2048().to_pem().into_bytes(),
                "DH parameters",
            ),
            ("garbage.pem", b"not a key at all".to_vec(), "no PEM block"),
            ("binary.pem", vec![0xff, 0x00, 0xfe], "not text"),
            (
                "damaged.pem",
                b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".to_vec(),
                "PKCS#8",
            ),
            (
                "encrypted.pem",
                [
                    "-----BEGIN ENCRYPTED PRIVATE KEY-----",
                    "AA==",
                    "-----END ENCRYPTED PRIVATE KEY-----",
                ]
                .join("\n")
                .into_bytes(),
                "passphrase",
            ),
        ];
        for (name, bytes, expected) in cases {
            let path = dir.path().join(name);
            fs::write(&path, bytes).unwrap();
            set_mode(&path, 0o600);
            let err = load_private_key(&path).unwrap_err();
            assert_usage(&err);
            let text = format!("{err:#}");
            assert!(
                text.contains(name) && text.contains(expected),
                "{name}: {text}"
            );
            assert!(
                text.contains("BEGIN PRIVATE KEY"),
                "{name}: says what was expected: {text}"
            );
        }
    }

    #[test]
    fn a_missing_key_points_at_keys_gen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(PRIVATE_ENCRYPTION);
        let err = load_private_key(&path).unwrap_err();
        assert_usage(&err);
        assert!(err.to_string().contains(PRIVATE_ENCRYPTION), "{err:#}");
        assert!(error::hint(&err).unwrap().contains("skim keys-gen"));
    }

    #[test]
    fn a_keys_dir_that_is_a_file_is_a_usage_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not_a_folder");
        std::fs::write(&file, "").unwrap();
        let err = load_private_key(&file.join(PRIVATE_SIGNATURE)).unwrap_err();
        assert_usage(&err);
        assert!(err.to_string().contains("is not a folder"), "{err:#}");
        assert!(error::hint(&err).unwrap().contains("OAUTH_KEYS_DIR"));
    }

    #[test]
    fn require_private_mode_checks_any_secret_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        fs::write(&path, "OAUTH_CONSUMER_KEY=ABCDEFGHI\n").unwrap();
        set_mode(&path, 0o600);
        fsutil::require_private_mode(&path, "env file").unwrap();
        set_mode(&path, 0o660);
        let err = fsutil::require_private_mode(&path, "env file").unwrap_err();
        assert_usage(&err);
        assert!(err.to_string().starts_with("env file "), "{err:#}");
        assert_eq!(
            error::hint(&err),
            Some(format!("chmod 600 {}", path.display()).as_str())
        );
        let err = fsutil::require_private_mode(&dir.path().join("absent"), "env file").unwrap_err();
        assert_usage(&err);
        assert!(err.to_string().contains("does not exist"), "{err:#}");
    }

    #[test]
    fn bad_dh_settings_fail_before_any_work() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("keys");
        let options = KeySetOptions {
            dir: dir.clone(),
            force: false,
            dh: DhSource::Generate {
                bits: 16,
                threads: 1,
            },
        };
        let calls = Mutex::new(0);
        let err = write_key_set(&options, &|_| *calls.lock().unwrap() += 1).unwrap_err();
        assert_usage(&err);
        assert!(err.to_string().contains("16 bits"), "{err:#}");
        assert_eq!(*calls.lock().unwrap(), 0, "work started before validation");
        assert!(!dir.exists());

        let default = DhSource::generate_default();
        assert_eq!(
            default,
            DhSource::Generate {
                bits: 2048,
                threads: dh::default_threads()
            }
        );
    }

    #[test]
    fn a_file_where_the_folder_should_be_is_a_usage_error() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("keys");
        fs::write(&dir, "").unwrap();
        let err = write_key_set(&ffdhe_options(&dir, false), &|_| {}).unwrap_err();
        assert_usage(&err);
        assert!(err.to_string().contains("not a folder"), "{err:#}");
    }
}
