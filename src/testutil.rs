//! Helpers shared by the unit tests.

use std::process::Command;

/// True when `openssl` runs; tests that check skim's files with it skip
/// (saying so) on a machine without it.
pub fn openssl_present() -> bool {
    let found = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("skipping: openssl not found on PATH");
    }
    found
}
