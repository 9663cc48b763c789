//! `skim positions`: where things stand, skim's records reconciled with the
//! broker's.

use anyhow::Result;
use clap::Args;
use skim_asx::Ctx;

#[derive(Debug, Args)]
pub struct PositionsArgs {
    /// Also list closed trades with their realized P&L
    #[arg(long)]
    pub all: bool,

    /// Post the summary to Discord
    #[arg(long)]
    pub notify: bool,
}

pub fn run(_ctx: &Ctx, _args: PositionsArgs) -> Result<()> {
    Err(skim_asx::error::failure("skim positions is being built").into())
}
