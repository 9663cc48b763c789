//! `skim trade`: place the opening-range breakout entries, manage exits,
//! and the kill switch.

use anyhow::Result;
use clap::{Args, Subcommand};
use skim_asx::Ctx;

#[derive(Debug, Args)]
pub struct TradeArgs {
    #[command(subcommand)]
    pub action: TradeAction,
}

#[derive(Debug, Subcommand)]
pub enum TradeAction {
    /// Place bracket orders on the break of today's opening-range highs
    Enter(EnterArgs),
    /// Reconcile with the broker, then cancel stale entries and run the exits
    Manage(ManageArgs),
    /// Block new entries until `skim trade resume`; optionally close everything
    Halt(HaltArgs),
    /// Lift the kill switch so entries may be placed again
    Resume,
}

#[derive(Debug, Args)]
pub struct EnterArgs {
    /// Length of the opening range after the first trade, in minutes
    #[arg(long, value_name = "MIN", default_value_t = 10)]
    pub or_minutes: u32,

    /// Target value of each new position, AUD
    #[arg(long, value_name = "AUD", default_value_t = 5000.0)]
    pub position_value: f64,

    /// Most positions open or entering at once
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub max_positions: u32,

    /// Skip when (entry - stop) / entry is above this, in percent
    #[arg(long, value_name = "PCT", default_value_t = 10.0)]
    pub max_risk: f64,

    /// Skip when the last price is already this far above the range high, in percent
    #[arg(long, value_name = "PCT", default_value_t = 2.0)]
    pub max_chase: f64,

    /// Send stop-limit entries capped this far above the stop, in percent (default: stop-market)
    #[arg(long, value_name = "PCT")]
    pub limit_cap: Option<f64>,

    /// Show what would be placed, but send and store nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct ManageArgs {
    /// Cancel entries still unfilled at this Sydney time
    #[arg(long, value_name = "HH:MM", default_value = "11:00")]
    pub cutoff: String,

    /// Show what would be done, but send and store nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct HaltArgs {
    /// Also cancel working orders and sell every position skim holds
    #[arg(long)]
    pub flatten: bool,

    /// Why; shown by `skim positions` and in the notification
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
}

pub fn run(_ctx: &Ctx, _args: TradeArgs) -> Result<()> {
    Err(skim_asx::error::failure("skim trade is being built").into())
}
