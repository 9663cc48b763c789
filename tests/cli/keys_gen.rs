//! `skim keys-gen` through the binary.

use std::fs;

use crate::util::{TestEnv, mode};

const FILES: [&str; 5] = [
    "private_signature.pem",
    "public_signature.pem",
    "private_encryption.pem",
    "public_encryption.pem",
    "dhparam.pem",
];

#[test]
fn writes_the_set_with_private_modes_and_prints_the_prime() {
    let env = TestEnv::new();
    let run = env.skim(&["keys-gen", "--dh-group", "ffdhe2048"]);
    run.expect_code(0);
    let keys = env.path("oauth_keys");
    assert_eq!(mode(&keys), 0o700);
    for file in FILES {
        assert!(keys.join(file).exists(), "{file} written");
    }
    assert_eq!(mode(&keys.join("private_signature.pem")), 0o600);
    assert_eq!(mode(&keys.join("private_encryption.pem")), 0o600);
    assert!(
        run.stdout
            .contains("OAUTH_DH_PRIME=ffffffffffffffffadf85458a2bb4a9a"),
        "{run:?}"
    );
    assert!(
        run.stdout.contains("public_signature.pem"),
        "next steps name the uploads"
    );
    assert!(
        !run.stdout.contains("PRIVATE KEY"),
        "no key material on stdout"
    );
}

#[test]
fn refuses_to_overwrite_without_force() {
    let env = TestEnv::new();
    let keys = env.keys_gen();
    let before = fs::read(keys.join("private_signature.pem")).unwrap();
    let run = env.skim(&["keys-gen", "--dh-group", "ffdhe2048"]);
    run.expect_code(2);
    assert!(run.stderr.contains("private_signature.pem"), "{run:?}");
    assert_eq!(
        fs::read(keys.join("private_signature.pem")).unwrap(),
        before
    );
    env.skim(&["keys-gen", "--dh-group", "ffdhe2048", "--force"])
        .expect_code(0);
    assert_ne!(
        fs::read(keys.join("private_signature.pem")).unwrap(),
        before
    );
}

#[test]
fn json_reports_files_and_prime() {
    let env = TestEnv::new();
    let run = env.skim(&[
        "keys-gen",
        "--dh-group",
        "ffdhe2048",
        "--dir",
        "k",
        "--json",
    ]);
    run.expect_code(0);
    let doc = run.json();
    assert_eq!(doc["dh_bits"], 2048);
    assert_eq!(doc["files"].as_array().unwrap().len(), 5);
    assert!(
        doc["oauth_dh_prime"]
            .as_str()
            .unwrap()
            .starts_with("ffffffffffffffffadf8")
    );
    assert!(env.path("k/dhparam.pem").exists());
}

#[test]
fn a_fresh_small_prime_is_generated_and_readable_back() {
    let env = TestEnv::new();
    let run = env.skim(&["keys-gen", "--dh-bits", "256", "--json"]);
    run.expect_code(0);
    let made = run.json()["oauth_dh_prime"].as_str().unwrap().to_owned();
    assert_eq!(run.json()["dh_bits"], 256);
    let back = env.skim(&["keys-gen", "--prime-from", "oauth_keys/dhparam.pem"]);
    back.expect_code(0);
    assert_eq!(back.stdout.trim(), format!("OAUTH_DH_PRIME={made}"));
}

#[test]
fn prime_from_an_openssl_file() {
    let env = TestEnv::new();
    let pem = env.path("dh.pem");
    let made = std::process::Command::new("openssl")
        .args(["dhparam", "-out"])
        .arg(&pem)
        .arg("512")
        .output();
    let Ok(made) = made else {
        eprintln!("openssl is not installed; skipping");
        return;
    };
    assert!(made.status.success());
    let run = env.skim(&["keys-gen", "--prime-from", "dh.pem"]);
    run.expect_code(0);
    let text = std::process::Command::new("openssl")
        .args(["dhparam", "-noout", "-text", "-in"])
        .arg(&pem)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    let hex: String = text
        .split("P:")
        .nth(1)
        .or_else(|| text.split("prime:").nth(1))
        .unwrap()
        .split("G:")
        .next()
        .unwrap()
        .split("generator")
        .next()
        .unwrap()
        .chars()
        .filter(char::is_ascii_hexdigit)
        .collect();
    let expected = hex.trim_start_matches('0');
    assert_eq!(run.stdout.trim(), format!("OAUTH_DH_PRIME={expected}"));
}
