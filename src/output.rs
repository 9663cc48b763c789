//! stdout carries the product (tables, JSON); everything else goes to
//! stderr through `log`.

use std::io::Write;

use anyhow::{Context, Result};
use comfy_table::{ContentArrangement, Table, presets};
use serde::Serialize;

/// Prints `value` as one JSON document on stdout.
pub fn print_json<T: Serialize>(value: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value).context("failed to write JSON to stdout")?;
    writeln!(out).context("failed to write to stdout")
}

/// Prints text on stdout, adding a final newline when missing.
pub fn print_text(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .context("failed to write to stdout")?;
    if !text.ends_with('\n') {
        writeln!(out).context("failed to write to stdout")?;
    }
    out.flush().context("failed to write to stdout")
}

/// A table in skim's style with the given header.
pub fn table<I, S>(header: I) -> Table
where
    I: IntoIterator<Item = S>,
    S: Into<comfy_table::Cell>,
{
    let mut table = Table::new();
    table
        .load_preset(presets::UTF8_BORDERS_ONLY)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header);
    table
}

/// True when a broken pipe (e.g. `skim positions | head -1`) is in the
/// chain: not an error worth reporting.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        // serde_json wraps the writer's error in its own type.
        let kind = cause
            .downcast_ref::<std::io::Error>()
            .map(std::io::Error::kind)
            .or_else(|| cause.downcast_ref::<serde_json::Error>()?.io_error_kind());
        kind == Some(std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;
    use std::io::{self, Write};

    /// A writer whose reader has gone away.
    struct Closed;

    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_pipe_is_recognised_through_serde_json_and_context() {
        let err = serde_json::to_writer(Closed, &vec![1, 2, 3])
            .context("failed to write JSON to stdout")
            .unwrap_err();
        assert!(is_broken_pipe(&err), "{err:#}");
        let err = Closed
            .write_all(b"text")
            .context("failed to write")
            .unwrap_err();
        assert!(is_broken_pipe(&err));
        let other = anyhow::Error::new(io::Error::from(io::ErrorKind::PermissionDenied));
        assert!(!is_broken_pipe(&other));
    }
}
