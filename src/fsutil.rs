//! Files that hold secrets: the mode rule skim shares with ssh, and writes
//! that are atomic and private from the first byte.

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result};

use crate::error;

/// Fails unless `path` exists and grants no permission to group or others
/// (`mode & 0o077 == 0`), the rule for every file that holds a secret: key
/// files, `.env`, the session token cache. `what` names the file's role in
/// messages ("private key file", "env file"). Both failures are usage
/// errors naming the file; a loose mode carries the hint `chmod 600 <path>`.
pub fn require_private_mode(path: &Path, what: &str) -> anyhow::Result<()> {
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == ErrorKind::NotFound => {
            return Err(error::usage(format!("{what} {} does not exist", path.display())).into());
        }
        Err(err) => {
            return Err(err)
                .with_context(|| format!("failed to inspect {what} {}", path.display()));
        }
    };
    check_private_mode(&meta, path, what)
}

pub fn check_private_mode(meta: &fs::Metadata, path: &Path, what: &str) -> anyhow::Result<()> {
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 == 0 {
        return Ok(());
    }
    Err(error::usage(format!(
        "{what} {} has mode {mode:04o}, open to group or others; it must be 0600",
        path.display()
    ))
    .hint(format!("chmod 600 {}", path.display()))
    .into())
}

/// Writes `contents` to `path` through a temporary file created with mode
/// 0600 in the same folder, synced and then renamed over `path`, so readers
/// see the old file or the new one and the secret is never world-readable.
pub fn write_private_file(path: &Path, contents: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("skim");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("failed to create {}", tmp.display()))?;
        file.write_all(contents)
            .with_context(|| format!("failed to write {}", tmp.display()))?;
        file.sync_all()
            .with_context(|| format!("failed to sync {}", tmp.display()))?;
        fs::rename(&tmp, path).with_context(|| format!("failed to replace {}", path.display()))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ExitKind, exit_kind};

    #[test]
    fn private_writes_are_0600_and_pass_the_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/token.json");
        write_private_file(&path, b"one").unwrap();
        write_private_file(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        require_private_mode(&path, "token cache").unwrap();
        assert_eq!(
            fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1,
            "no temp left"
        );
    }

    #[test]
    fn group_readable_files_are_refused_with_the_chmod() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        fs::write(&path, "A=1").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let err = require_private_mode(&path, ".env file").unwrap_err();
        assert_eq!(exit_kind(&err), ExitKind::Usage);
        assert!(err.to_string().contains("mode 0640"), "{err}");
        assert_eq!(
            crate::error::hint(&err),
            Some(&*format!("chmod 600 {}", path.display()))
        );
    }
}
