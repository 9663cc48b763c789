//! One module per subcommand: its clap arguments and a `run` that turns them
//! into calls on the core.

pub mod auth_check;
pub mod keys_gen;
pub mod notify;
pub mod positions;
pub mod scan;
pub mod trade;

use anyhow::Result;
use skim_asx::Ctx;
use skim_asx::config::Overrides;

use crate::cli::{Cli, Command};

/// Runs the subcommand the user chose.
pub fn run(cli: Cli) -> Result<()> {
    let global = cli.global;
    let overrides = Overrides {
        db: global.db.clone(),
        keys_dir: None,
    };
    let load =
        |overrides: &Overrides| Ctx::load(global.env_file.as_deref(), overrides, global.json);
    match cli.command {
        Command::KeysGen(args) => {
            let overrides = Overrides {
                keys_dir: args.dir.clone(),
                ..overrides
            };
            keys_gen::run(&load(&overrides)?, args)
        }
        Command::AuthCheck(args) => auth_check::run(&load(&overrides)?, args),
        Command::Notify(args) => notify::run(&load(&overrides)?, args),
        Command::Scan(args) => scan::run(&load(&overrides)?, args),
        Command::Trade(args) => trade::run(&load(&overrides)?, args),
        Command::Positions(args) => positions::run(&load(&overrides)?, args),
    }
}
