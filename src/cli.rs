//! The command line, as clap types only; `cmd/` turns them into calls on
//! the core.
//!
//! Habits: help lines are sentence case without a final period; every
//! value has an uppercase `value_name`; flags shared by every command live
//! in [`GlobalArgs`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::cmd;

/// Trade an ASX opening-gap strategy through Interactive Brokers, unattended
#[derive(Debug, Parser)]
#[command(name = "skim", version, max_term_width = 100)]
#[command(after_help = "Settings come from the environment and .env; see the README.")]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Flags every subcommand takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Print exactly one JSON document on stdout
    #[arg(long, global = true)]
    pub json: bool,

    /// Log more on stderr (-v info, -vv debug); RUST_LOG also works
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Read settings from PATH instead of ./.env (real environment variables still win)
    #[arg(long, value_name = "PATH", global = true)]
    pub env_file: Option<PathBuf>,

    /// SQLite database file [env: SKIM_DB] [default: ./data/skim.db]
    #[arg(long, value_name = "PATH", global = true)]
    pub db: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make the key files IBKR's self-service OAuth portal asks for
    KeysGen(cmd::keys_gen::KeysGenArgs),
    /// Prove, step by step, that skim can sign in to IBKR, and say why not
    AuthCheck(cmd::auth_check::AuthCheckArgs),
    /// Find today's gap-up stocks with a price-sensitive ASX announcement
    Scan(cmd::scan::ScanArgs),
    /// Place entries, manage exits, and the kill switch
    Trade(cmd::trade::TradeArgs),
    /// Positions, working orders and P&L, reconciled with the broker
    Positions(cmd::positions::PositionsArgs),
    /// Send a Discord message through the outbox, or deliver what is queued
    Notify(cmd::notify::NotifyArgs),
    /// Write the man pages or shell completions (for packagers; see scripts/install)
    #[command(hide = true)]
    Generate(cmd::generate::GenerateArgs),
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_work_after_the_subcommand() {
        let cli = Cli::try_parse_from(["skim", "auth-check", "--json", "-vv"]).unwrap();
        assert!(cli.global.json);
        assert_eq!(cli.global.verbose, 2);
    }
}
