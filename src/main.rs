//! The `skim` binary: parse the command line, run one subcommand, map the
//! outcome to the contract's exit status.

mod cli;
mod cmd;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use skim_asx::{error, output};

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_logger(cli.global.verbose);
    match cmd::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if output::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(stderr, "skim: error: {err:#}");
            if let Some(hint) = error::hint(&err) {
                let _ = writeln!(stderr, "hint: {hint}");
            }
            ExitCode::from(error::exit_kind(&err).code())
        }
    }
}

/// Warnings by default, `-v` info, `-vv` debug for skim's own modules;
/// `RUST_LOG` overrides both.
/// Lines read `skim: warning: ...` so cron mail greps well.
fn init_logger(verbose: u8) {
    // -v and -vv raise skim's own logs; dependencies (the HTML parser logs
    // every token at debug) stay at warnings unless RUST_LOG asks.
    let level = match verbose {
        0 => "warn",
        1 => "warn,skim=info,skim_asx=info",
        _ => "warn,skim=debug,skim_asx=debug",
    };
    env_logger::Builder::new()
        .parse_filters(&std::env::var("RUST_LOG").unwrap_or_else(|_| level.to_owned()))
        .format(|buf, record| {
            let level = match record.level() {
                log::Level::Warn => "warning".to_owned(),
                other => other.as_str().to_ascii_lowercase(),
            };
            writeln!(buf, "skim: {level}: {}", record.args())
        })
        .init();
}
