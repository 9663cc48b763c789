//! Bad input of every kind, through the binary: each malformed setting,
//! broken or misplaced key files, wrong credentials, unusable databases.
//! Every case must end in one `skim: error:` line that names the culprit
//! and says what was expected, the contract's exit status, no panic, and
//! no echo of a secret it was given.
//!
//! The cases are tables: a new setting or file check is one more row.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use skim_sim::{Setup, Simulator};

use crate::util::{Run, TestEnv, copy_keys};

/// The 2048-bit MODP prime of RFC 3526 (group 14) as hex: a valid
/// `OAUTH_DH_PRIME` that is not the one the keys were made with.
const OTHER_PRIME: &str = concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A0879",
    "8E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B",
    "0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA4836",
    "1C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804",
    "F1746C08CA18217C32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6",
    "955817183995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF"
);

/// A secret-looking value the cases hand to skim; it must never come back.
const PLANTED: &str = "PLANTEDsecretVALUE0123456789";

/// What a case must end with.
struct Expect {
    code: i32,
    /// Each must appear in the `skim: error:` line or the `hint:` after it.
    says: &'static [&'static str],
    /// A known gap: skim still echoes the planted secret here, for this
    /// reason. The case holds skim to it, so a fix shows up as a failure
    /// telling to drop the gap.
    leaks: Option<&'static str>,
}

const fn expect(code: i32, says: &'static [&'static str]) -> Expect {
    Expect {
        code,
        says,
        leaks: None,
    }
}

/// Checks `run` against `expected`; returns a description of each miss.
fn judge(name: &str, run: &Run, expected: &Expect) -> Vec<String> {
    let mut misses = Vec::new();
    if run.code != expected.code {
        misses.push(format!(
            "exit {} where {} was expected",
            run.code, expected.code
        ));
    }
    if run.stderr.contains("panicked") {
        misses.push("a panic".to_owned());
    }
    let errors: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("skim: error:"))
        .collect();
    if errors.len() != 1 {
        misses.push(format!("{} error lines, not 1", errors.len()));
    }
    let said: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("skim: error:") || l.starts_with("hint:"))
        .collect();
    for words in expected.says {
        if !said.iter().any(|l| l.contains(words)) {
            misses.push(format!("the error does not say {words:?}"));
        }
    }
    let leaked = run.stdout.contains(PLANTED) || run.stderr.contains(PLANTED);
    match expected.leaks {
        None if leaked => misses.push("a planted secret came back".to_owned()),
        Some(gap) if !leaked => misses.push(format!(
            "the known leak ({gap}) is fixed: drop it from this case"
        )),
        _ => {}
    }
    misses
        .into_iter()
        .map(|miss| format!("{name}: {miss}\n    stderr: {}", run.stderr.trim()))
        .collect()
}

/// Fails listing every miss, after reporting how many cases ran.
fn report(table: &str, cases: usize, misses: Vec<String>) {
    eprintln!(
        "bad input ({table}): {cases} cases, {} missed",
        misses.len()
    );
    assert!(misses.is_empty(), "{}", misses.join("\n"));
}

#[test]
fn every_malformed_setting_is_a_usage_error_naming_it() {
    let token = format!("https://discord.com/api/webhooks/123/{PLANTED}");
    let plain_http = format!("http://discord.com/api/webhooks/123/{PLANTED}");
    let not_numeric = format!("https://discord.com/api/webhooks/abc/{PLANTED}");
    let quoted_secret = format!("\"{PLANTED}\"");
    let even_prime = format!("{}E", &OTHER_PRIME[..OTHER_PRIME.len() - 1]);
    let cases: Vec<(&str, String, Expect)> = vec![
        (
            "OAUTH_CONSUMER_KEY",
            " ABCDEFGHI".into(),
            expect(2, &["OAUTH_CONSUMER_KEY", "whitespace"]),
        ),
        (
            "OAUTH_CONSUMER_KEY",
            "ABC'DEF".into(),
            expect(2, &["OAUTH_CONSUMER_KEY", "expected"]),
        ),
        (
            "OAUTH_ACCESS_TOKEN",
            "0123 4567".into(),
            expect(2, &["OAUTH_ACCESS_TOKEN", "expected"]),
        ),
        (
            "OAUTH_ACCESS_TOKEN",
            "jeton-é".into(),
            expect(2, &["OAUTH_ACCESS_TOKEN", "ASCII"]),
        ),
        (
            "OAUTH_ACCESS_TOKEN_SECRET",
            format!("{PLANTED}!"),
            expect(2, &["OAUTH_ACCESS_TOKEN_SECRET", "base64"]),
        ),
        (
            "OAUTH_ACCESS_TOKEN_SECRET",
            quoted_secret,
            expect(2, &["OAUTH_ACCESS_TOKEN_SECRET", "expected"]),
        ),
        (
            "OAUTH_ACCESS_TOKEN_SECRET",
            "abc".into(),
            expect(2, &["OAUTH_ACCESS_TOKEN_SECRET", "base64"]),
        ),
        (
            "OAUTH_DH_PRIME",
            "not-hex".into(),
            expect(2, &["OAUTH_DH_PRIME", "hexadecimal"]),
        ),
        (
            "OAUTH_DH_PRIME",
            "0x17".into(),
            expect(2, &["OAUTH_DH_PRIME", "hexadecimal"]),
        ),
        (
            "OAUTH_DH_PRIME",
            "FFFFFFFB".into(),
            expect(2, &["OAUTH_DH_PRIME", "2048 bits"]),
        ),
        (
            "OAUTH_DH_PRIME",
            even_prime,
            expect(2, &["OAUTH_DH_PRIME", "odd prime"]),
        ),
        (
            "OAUTH_REALM",
            "limited poa".into(),
            expect(2, &["OAUTH_REALM", "whitespace"]),
        ),
        (
            "IBKR_BASE_URL",
            "api.ibkr.com/v1/api".into(),
            expect(2, &["IBKR_BASE_URL", "expected https://"]),
        ),
        (
            "IBKR_BASE_URL",
            "http://api.ibkr.com/v1/api".into(),
            expect(2, &["IBKR_BASE_URL", "expected https://"]),
        ),
        (
            "IBKR_BASE_URL",
            "ftp://api.ibkr.com/v1/api".into(),
            expect(2, &["IBKR_BASE_URL", "https://"]),
        ),
        (
            "ASX_ANNOUNCEMENTS_URL",
            "todayAnns.do".into(),
            expect(2, &["ASX_ANNOUNCEMENTS_URL", "https://"]),
        ),
        (
            "ASX_ANNOUNCEMENTS_URL",
            "http://www.asx.com.au/a".into(),
            expect(2, &["ASX_ANNOUNCEMENTS_URL", "https://"]),
        ),
        (
            "DISCORD_WEBHOOK_URL",
            "https://example.com/hooks/1".into(),
            expect(
                2,
                &[
                    "DISCORD_WEBHOOK_URL",
                    "expected https://discord.com/api/webhooks/",
                ],
            ),
        ),
        (
            "DISCORD_WEBHOOK_URL",
            token.replace("discord.com", "example.com"),
            expect(2, &["DISCORD_WEBHOOK_URL", "webhook URL"]),
        ),
        (
            "DISCORD_WEBHOOK_URL",
            plain_http,
            expect(2, &["DISCORD_WEBHOOK_URL", "webhook URL"]),
        ),
        (
            "DISCORD_WEBHOOK_URL",
            not_numeric,
            expect(2, &["DISCORD_WEBHOOK_URL", "webhook URL"]),
        ),
        (
            "SKIM_NOW",
            "yesterday".into(),
            expect(2, &["SKIM_NOW", "RFC 3339"]),
        ),
        (
            "SKIM_NOW",
            "2026-03-02 10:15".into(),
            expect(2, &["SKIM_NOW", "RFC 3339"]),
        ),
        (
            "SKIM_ALLOW_LIVE",
            "maybe".into(),
            expect(2, &["SKIM_ALLOW_LIVE", "expected true or false"]),
        ),
        (
            "IBKR_SIGN_QUERY",
            "2".into(),
            expect(2, &["IBKR_SIGN_QUERY", "expected true or false"]),
        ),
        (
            "SKIM_HTTP_TIMEOUT",
            "0".into(),
            expect(2, &["SKIM_HTTP_TIMEOUT", "expected seconds"]),
        ),
        (
            "SKIM_HTTP_TIMEOUT",
            "ten".into(),
            expect(2, &["SKIM_HTTP_TIMEOUT", "expected seconds"]),
        ),
        (
            "SKIM_HTTP_TIMEOUT",
            "601".into(),
            expect(2, &["SKIM_HTTP_TIMEOUT", "expected seconds"]),
        ),
        (
            "SKIM_HTTP_TIMEOUT",
            "NaN".into(),
            expect(2, &["SKIM_HTTP_TIMEOUT", "expected seconds"]),
        ),
    ];
    let total = cases.len();
    let mut misses = Vec::new();
    for (name, value, expected) in &cases {
        let mut env = TestEnv::new();
        env.set(name, value);
        // Every command validates the settings before it does anything.
        for command in [&["auth-check"][..], &["notify", "--flush"]] {
            let run = env.skim(command);
            let label = format!("{name}={value:?} ({})", command.join(" "));
            misses.extend(judge(&label, &run, expected));
        }
    }
    report("settings", total * 2, misses);
}

#[test]
fn env_files_and_missing_settings_are_usage_errors() {
    let mut misses = Vec::new();
    let mut cases = 0;
    let mut check = |name: &str, env: &TestEnv, args: &[&str], expected: Expect| {
        cases += 1;
        misses.extend(judge(name, &env.skim(args), &expected));
    };

    let env = TestEnv::new();
    env.write_env_file(&[format!("OAUTH_ACCESS_TOKEN_SECRET={PLANTED}==")]);
    fs::set_permissions(env.path(".env"), fs::Permissions::from_mode(0o644)).unwrap();
    check(
        ".env mode 0644",
        &env,
        &["auth-check"],
        expect(2, &[".env", "0600"]),
    );

    let env = TestEnv::new();
    env.write_env_file(&[format!("OAUTH_ACCESS_TOKEN_SECRET='{PLANTED}")]);
    let leaks = Expect {
        leaks: Some("dotenvy's parse error quotes the whole line, value included"),
        ..expect(2, &[".env", "malformed"])
    };
    check(".env unclosed quote", &env, &["auth-check"], leaks);

    let env = TestEnv::new();
    check(
        "--env-file missing",
        &env,
        &["auth-check", "--env-file", "nowhere.env"],
        expect(2, &["nowhere.env", "does not exist"]),
    );

    let env = TestEnv::new();
    check(
        "no credentials",
        &env,
        &["auth-check"],
        expect(2, &["OAUTH_CONSUMER_KEY is not set"]),
    );
    report("env files", cases, misses);
}

/// A working folder with its own copy of the shared keys, a simulator that
/// knows them, and the environment pointing skim at it.
struct Keyed {
    env: TestEnv,
    _sim: Simulator,
}

impl Keyed {
    fn start() -> Keyed {
        let mut env = TestEnv::new();
        let keys = env.path("oauth_keys");
        copy_keys(&keys);
        let setup = Setup::from_keys_dir(&keys).expect("simulator setup");
        let sim = Simulator::start(setup.config.clone()).expect("simulator starts");
        for (key, value) in setup.env_pairs(&sim.base_url()) {
            env.set(key, &value);
        }
        env.set("SKIM_DB", "data/skim.db");
        Keyed { env, _sim: sim }
    }

    fn key(&self, name: &str) -> std::path::PathBuf {
        self.env.path("oauth_keys").join(name)
    }

    fn write_key(&self, name: &str, text: &str) {
        let path = self.key(name);
        fs::write(&path, text).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    }
}

#[test]
fn broken_misplaced_or_mismatched_keys_name_the_cause() {
    type Spoil = fn(&mut Keyed);
    let cases: Vec<(&str, Spoil, Expect)> = vec![
        (
            "keys folder missing",
            |k| fs::remove_dir_all(k.env.path("oauth_keys")).unwrap(),
            expect(2, &["private_signature.pem", "does not exist", "keys-gen"]),
        ),
        (
            "encryption key missing",
            |k| fs::remove_file(k.key("private_encryption.pem")).unwrap(),
            expect(2, &["private_encryption.pem", "does not exist"]),
        ),
        (
            "signature key not PEM",
            |k| {
                k.write_key(
                    "private_signature.pem",
                    "ssh-rsa AAAAB3NzaC1yc2E user@host\n",
                )
            },
            expect(
                2,
                &[
                    "private_signature.pem",
                    "not a usable RSA private key",
                    "expected PEM",
                ],
            ),
        ),
        (
            "encryption key is the public key",
            |k| {
                let public = fs::read_to_string(k.key("public_encryption.pem")).unwrap();
                k.write_key("private_encryption.pem", &public);
            },
            expect(
                2,
                &["private_encryption.pem", "not a usable RSA private key"],
            ),
        ),
        (
            "signature key truncated",
            |k| {
                let pem = fs::read_to_string(k.key("private_signature.pem")).unwrap();
                k.write_key("private_signature.pem", &pem[..pem.len() / 2]);
            },
            expect(
                2,
                &["private_signature.pem", "not a usable RSA private key"],
            ),
        ),
        (
            "signature key mode 0644",
            |k| {
                let path = k.key("private_signature.pem");
                fs::set_permissions(path, fs::Permissions::from_mode(0o644)).unwrap();
            },
            expect(2, &["private_signature.pem", "0644", "0600"]),
        ),
        (
            "encryption key mode 0640",
            |k| {
                let path = k.key("private_encryption.pem");
                fs::set_permissions(path, fs::Permissions::from_mode(0o640)).unwrap();
            },
            expect(2, &["private_encryption.pem", "0640", "0600"]),
        ),
        (
            "signature key given as encryption key",
            |k| {
                let pem = fs::read_to_string(k.key("private_signature.pem")).unwrap();
                k.write_key("private_encryption.pem", &pem);
            },
            expect(
                3,
                &[
                    "OAUTH_ACCESS_TOKEN_SECRET does not decrypt",
                    "private_encryption.pem",
                ],
            ),
        ),
        (
            "the two keys swapped",
            |k| {
                let signature = fs::read_to_string(k.key("private_signature.pem")).unwrap();
                let encryption = fs::read_to_string(k.key("private_encryption.pem")).unwrap();
                k.write_key("private_signature.pem", &encryption);
                k.write_key("private_encryption.pem", &signature);
            },
            expect(
                3,
                &[
                    "OAUTH_ACCESS_TOKEN_SECRET does not decrypt",
                    "private_encryption.pem",
                ],
            ),
        ),
        (
            "encryption key given as signature key",
            |k| {
                let pem = fs::read_to_string(k.key("private_encryption.pem")).unwrap();
                k.write_key("private_signature.pem", &pem);
            },
            expect(3, &["IBKR rejected the live session token request"]),
        ),
        (
            "secret encrypted to another key",
            |k| {
                // 256 bytes of base64: the size of a real one, not decryptable.
                k.env.set("OAUTH_ACCESS_TOKEN_SECRET", &"QUJD".repeat(86));
            },
            expect(
                3,
                &[
                    "OAUTH_ACCESS_TOKEN_SECRET does not decrypt",
                    "private_encryption.pem",
                ],
            ),
        ),
        (
            "a DH prime that is not the uploaded one",
            |k| k.env.set("OAUTH_DH_PRIME", OTHER_PRIME),
            expect(3, &["live session token did not validate"]),
        ),
    ];
    let total = cases.len();
    let mut misses = Vec::new();
    for (name, spoil, expected) in cases {
        let mut keyed = Keyed::start();
        spoil(&mut keyed);
        misses.extend(judge(name, &keyed.env.skim(&["auth-check"]), &expected));
    }
    report("keys", total, misses);
}

/// Makes `path` refuse writes, even to root (whom permission bits do not
/// stop) by setting the immutable attribute; undone on drop. `None` when
/// this machine cannot make it so.
struct Frozen(std::path::PathBuf);

impl Frozen {
    fn new(path: &Path) -> Option<Frozen> {
        let mode = if path.is_dir() { 0o555 } else { 0o444 };
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
        let frozen = Frozen(path.to_path_buf());
        if frozen.refuses_writes() {
            return Some(frozen);
        }
        let chattr = std::process::Command::new("chattr")
            .arg("+i")
            .arg(path)
            .status();
        (chattr.is_ok_and(|s| s.success()) && frozen.refuses_writes()).then_some(frozen)
    }

    fn refuses_writes(&self) -> bool {
        if self.0.is_dir() {
            let probe = self.0.join(".probe");
            let refused = fs::write(&probe, b"").is_err();
            let _ = fs::remove_file(probe);
            refused
        } else {
            fs::OpenOptions::new().append(true).open(&self.0).is_err()
        }
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .arg(&self.0)
            .status();
        let _ = fs::set_permissions(&self.0, fs::Permissions::from_mode(0o700));
    }
}

/// How a database case left its file.
enum Prepared {
    Ready,
    /// Made read-only, or `None` when the machine cannot.
    Frozen(Option<Frozen>),
}

#[test]
fn unusable_databases_are_refused_with_their_path() {
    let mut misses = Vec::new();
    let mut cases = 0;
    let mut skipped = Vec::new();
    // A working folder whose database, data/skim.db, `make` prepares.
    let mut case = |name: &str, make: &dyn Fn(&Path) -> Prepared, expected: Expect| {
        let env = TestEnv::new();
        fs::create_dir(env.path("data")).unwrap();
        let db = env.path("data/skim.db");
        let guard = match make(&db) {
            Prepared::Ready => None,
            Prepared::Frozen(Some(frozen)) => Some(frozen),
            Prepared::Frozen(None) => {
                skipped.push(name.to_owned());
                return;
            }
        };
        cases += 1;
        let run = env.skim(&["notify", "--flush", "--db", "data/skim.db"]);
        misses.extend(judge(name, &run, &expected));
        drop(guard);
    };
    case(
        "random bytes",
        &|db| {
            fs::write(db, [0x5a_u8; 8192]).unwrap();
            Prepared::Ready
        },
        expect(2, &["data/skim.db", "corrupt or not a SQLite database"]),
    );
    case(
        "a text file",
        &|db| {
            fs::write(db, "OAUTH_CONSUMER_KEY=ABCDEFGHI\n").unwrap();
            Prepared::Ready
        },
        expect(2, &["data/skim.db", "not a SQLite database"]),
    );
    case(
        "a newer schema",
        &|db| {
            let conn = rusqlite::Connection::open(db).unwrap();
            conn.pragma_update(None, "user_version", 999).unwrap();
            Prepared::Ready
        },
        expect(2, &["data/skim.db", "schema version 999", "newer"]),
    );
    case(
        "a folder in its place",
        &|db| {
            fs::create_dir(db).unwrap();
            Prepared::Ready
        },
        expect(1, &["data/skim.db"]),
    );
    case(
        "a read-only file",
        &|db| {
            let conn = rusqlite::Connection::open(db).unwrap();
            conn.execute_batch("CREATE TABLE t (x)").unwrap();
            drop(conn);
            Prepared::Frozen(Frozen::new(db))
        },
        expect(1, &["data/skim.db", "cannot be written"]),
    );
    case(
        "a read-only folder",
        &|db| Prepared::Frozen(Frozen::new(db.parent().unwrap())),
        expect(1, &["data/skim.db", "cannot be written"]),
    );
    for name in &skipped {
        eprintln!("skipped {name}: this machine cannot make it read-only");
    }
    report("databases", cases, misses);
}

#[test]
fn a_webhook_url_that_is_not_discord_is_refused_before_sending() {
    let mut env = TestEnv::new();
    // A loopback listener that would accept the post if skim tried.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    env.set(
        "DISCORD_WEBHOOK_URL",
        &format!("http://127.0.0.1:{port}/hooks/{PLANTED}"),
    );
    let run = env.skim(&["notify", "hello"]);
    let misses = judge(
        "webhook URL without /api/webhooks/",
        &run,
        &expect(2, &["DISCORD_WEBHOOK_URL", "webhook URL"]),
    );
    listener.set_nonblocking(true).unwrap();
    assert!(listener.accept().is_err(), "skim connected to the bad URL");
    report("webhook", 1, misses);
}
