//! Exit statuses and the errors that choose them.
//!
//! Everything in skim returns `anyhow::Result`. Most failures are plain
//! errors and exit 1. An error that must exit with another status from the
//! contract (2 usage or configuration, 3 credentials rejected, 4 refused for
//! safety), or that knows its fix, is a [`Coded`] somewhere in the anyhow
//! chain; `main` finds it with [`exit_kind`] and [`hint`].

use std::fmt;

/// The exit statuses of the product contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitKind {
    /// The command failed: network, broker error, I/O.
    Failure = 1,
    /// Invalid usage or configuration.
    Usage = 2,
    /// IBKR rejected the credentials or the live session token did not validate.
    Auth = 3,
    /// Refused for safety: halted, live account without permission, records disagree.
    Refused = 4,
}

impl ExitKind {
    /// The process exit code.
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// An error that carries its exit status and, where the fix is known, a hint.
#[derive(Debug)]
pub struct Coded {
    kind: ExitKind,
    message: String,
    hint: Option<String>,
}

impl Coded {
    /// Adds the one-line fix printed after the error as `hint: ...`.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The exit status this error chooses.
    pub fn kind(&self) -> ExitKind {
        self.kind
    }
}

impl fmt::Display for Coded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Coded {}

/// A failure (exit 1) that knows its fix; add it with [`Coded::hint`].
pub fn failure(message: impl Into<String>) -> Coded {
    coded(ExitKind::Failure, message)
}

/// Invalid usage or configuration (exit 2).
pub fn usage(message: impl Into<String>) -> Coded {
    coded(ExitKind::Usage, message)
}

/// Credentials rejected or the live session token did not validate (exit 3).
pub fn auth(message: impl Into<String>) -> Coded {
    coded(ExitKind::Auth, message)
}

/// Refused for safety (exit 4).
pub fn refused(message: impl Into<String>) -> Coded {
    coded(ExitKind::Refused, message)
}

fn coded(kind: ExitKind, message: impl Into<String>) -> Coded {
    Coded { kind, message: message.into(), hint: None }
}

/// The exit status for `err`: that of the outermost [`Coded`] in its chain,
/// or [`ExitKind::Failure`] when there is none.
pub fn exit_kind(err: &anyhow::Error) -> ExitKind {
    err.chain()
        .find_map(|cause| cause.downcast_ref::<Coded>())
        .map_or(ExitKind::Failure, Coded::kind)
}

/// The first hint found along the chain of `err`.
pub fn hint(err: &anyhow::Error) -> Option<&str> {
    err.chain()
        .filter_map(|cause| cause.downcast_ref::<Coded>())
        .find_map(|coded| coded.hint.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn plain_errors_exit_one_without_hint() {
        let err = anyhow::anyhow!("disk full");
        assert_eq!(exit_kind(&err), ExitKind::Failure);
        assert_eq!(hint(&err), None);
    }

    #[test]
    fn coded_errors_keep_kind_and_hint_under_context() {
        let err: anyhow::Result<()> =
            Err(usage("OAUTH_DH_PRIME is not hex").hint("copy it from keys-gen").into());
        let err = err.context("failed to load configuration").unwrap_err();
        assert_eq!(exit_kind(&err), ExitKind::Usage);
        assert_eq!(hint(&err), Some("copy it from keys-gen"));
        assert_eq!(format!("{err:#}"), "failed to load configuration: OAUTH_DH_PRIME is not hex");
    }
}
