//! `skim trade`: place the opening-range breakout entries, manage exits,
//! and the kill switch.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde_json::json;
use skim_asx::store::Store;
use skim_asx::trade::enter::{EnterOptions, EnterReport};
use skim_asx::trade::manage::{self, ManageOptions, ManageReport};
use skim_asx::trade::{self, TradeLock};
use skim_asx::{Ctx, error, outbox, output};

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
    #[arg(long, value_name = "PCT", default_value_t = 15.0)]
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

pub fn run(ctx: &Ctx, args: TradeArgs) -> Result<()> {
    match args.action {
        TradeAction::Enter(args) => enter(ctx, args),
        TradeAction::Manage(args) => manage_cmd(ctx, args),
        TradeAction::Halt(args) => halt(ctx, args),
        TradeAction::Resume => resume(ctx),
    }
}

fn check_positive(name: &str, value: f64) -> Result<()> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(error::usage(format!("{name} must be a positive number, got {value}")).into())
    }
}

fn enter(ctx: &Ctx, args: EnterArgs) -> Result<()> {
    check_positive("--position-value", args.position_value)?;
    check_positive("--max-risk", args.max_risk)?;
    if !(args.max_chase.is_finite() && args.max_chase >= 0.0) {
        return Err(error::usage("--max-chase must be zero or more").into());
    }
    if let Some(cap) = args.limit_cap {
        check_positive("--limit-cap", cap)?;
    }
    if args.or_minutes == 0 {
        return Err(error::usage("--or-minutes must be at least 1").into());
    }
    let opts = EnterOptions {
        or_minutes: args.or_minutes,
        position_value: args.position_value,
        max_positions: args.max_positions,
        max_risk_pct: args.max_risk,
        max_chase_pct: args.max_chase,
        limit_cap_pct: args.limit_cap,
        dry_run: args.dry_run,
    };
    let _lock = TradeLock::acquire(&ctx.config)?;
    let store = Store::open(&ctx.config.db_path)?;
    let now = ctx.now();
    let result = trade::enter::enter(&ctx.config, &store, now, &opts);
    let report = finish(ctx, &store, result, args.dry_run)?;
    if ctx.json {
        output::print_json(&report)?;
    } else {
        print_enter(&report)?;
    }
    refuse_unless_ok(&report.status, report.reason.as_deref())
}

fn manage_cmd(ctx: &Ctx, args: ManageArgs) -> Result<()> {
    let opts = ManageOptions {
        cutoff: manage::parse_cutoff(&args.cutoff)?,
        dry_run: args.dry_run,
    };
    let _lock = TradeLock::acquire(&ctx.config)?;
    let store = Store::open(&ctx.config.db_path)?;
    let result = manage::manage(&ctx.config, &store, ctx.now(), &opts);
    let report = finish(ctx, &store, result, args.dry_run)?;
    print_manage(ctx, &report)?;
    refuse_unless_ok(&report.status, report.reason.as_deref())
}

fn halt(ctx: &Ctx, args: HaltArgs) -> Result<()> {
    // The kill switch itself is one database write and needs no lock: it
    // must work while another command holds it (one waiting out IBKR's
    // penalty box, say). Every later `trade enter` reads it. The flatten
    // sends orders, so it waits its turn like any trading command.
    let store = Store::open(&ctx.config.db_path)?;
    let now = ctx.now();
    let halt = trade::set_halt(&store, args.reason.clone(), now)?;
    let text = match &halt.reason {
        Some(why) => format!("trading halted: {why}"),
        None => "trading halted".to_owned(),
    };
    outbox::enqueue(
        &store,
        &trade::notice::Event::Refused(text.clone()).message(now),
        now,
    )?;
    let flattened = if args.flatten {
        let _lock = TradeLock::acquire(&ctx.config)
            .context("trading is halted, but the flatten did not run")?;
        let result = manage::flatten(&ctx.config, &store, now);
        Some(finish(ctx, &store, result, false)?)
    } else {
        outbox::deliver_quietly(&store, ctx.config.discord_webhook_url.as_ref(), now);
        None
    };
    if ctx.json {
        output::print_json(&json!({
            "halted": true,
            "since": halt.since.to_rfc3339(),
            "reason": halt.reason,
            "flatten": flattened,
        }))?;
    } else {
        output::print_text(&format!(
            "{text} (since {}); `skim trade resume` lifts it\n",
            halt.since.to_rfc3339()
        ))?;
        if let Some(report) = &flattened {
            print_manage(ctx, report)?;
        }
    }
    match flattened {
        Some(report) => refuse_unless_ok(&report.status, report.reason.as_deref()),
        None => Ok(()),
    }
}

fn resume(ctx: &Ctx) -> Result<()> {
    let store = Store::open(&ctx.config.db_path)?;
    let was = trade::clear_halt(&store)?;
    if ctx.json {
        output::print_json(&json!({ "halted": false, "was_halted": was }))
    } else if was {
        output::print_text("trading resumed\n")
    } else {
        output::print_text("trading was not halted\n")
    }
}

/// Delivers notifications whatever happened, queues a red one for a
/// failure, and passes the outcome on.
fn finish<T>(ctx: &Ctx, store: &Store, result: Result<T>, dry_run: bool) -> Result<T> {
    let now = ctx.now();
    if dry_run {
        return result;
    }
    if let Err(err) = &result {
        let text = format!("{err:#}");
        let message = trade::notice::Event::Error(text).message(now);
        if let Err(queue_err) = outbox::enqueue(store, &message, now) {
            log::warn!("could not queue the error notification: {queue_err:#}");
        }
    }
    outbox::deliver_quietly(store, ctx.config.discord_webhook_url.as_ref(), now);
    result
}

fn refuse_unless_ok(status: &str, reason: Option<&str>) -> Result<()> {
    match status {
        "halted" | "refused" => Err(error::refused(reason.unwrap_or(status).to_owned())
            .hint(if status == "halted" {
                "`skim trade resume` lifts the halt"
            } else {
                "compare `skim positions` with the broker's records; fix the difference, then run again"
            })
            .into()),
        "incomplete" => Err(error::failure(format!(
            "not everything could be done: {}",
            reason.unwrap_or("see the actions")
        ))
        .into()),
        _ => Ok(()),
    }
}

fn price(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), skim_asx::discord::format_price)
}

fn print_enter(report: &EnterReport) -> Result<()> {
    let mut text = format!("{}: {}", report.date, report.status);
    if let Some(reason) = &report.reason {
        text.push_str(&format!(": {reason}"));
    }
    text.push('\n');
    if !report.orders.is_empty() {
        let mut table = output::table([
            "ticker", "side", "type", "qty", "stop", "limit", "coid", "order id", "state",
        ]);
        for o in &report.orders {
            table.add_row(vec![
                o.ticker.clone(),
                o.side.clone(),
                o.order_type.clone(),
                o.quantity.to_string(),
                price(o.stop_price),
                price(o.limit_price),
                o.coid.clone().unwrap_or_else(|| format!("({})", o.key)),
                o.order_id.clone().unwrap_or_else(|| "-".into()),
                o.state.clone(),
            ]);
        }
        text.push_str(&format!("{table}\n"));
    }
    if !report.skipped.is_empty() {
        let mut table = output::table(["skipped", "reason"]);
        for s in &report.skipped {
            table.add_row(vec![s.ticker.clone(), s.reason.clone()]);
        }
        text.push_str(&format!("{table}\n"));
    }
    output::print_text(&text)
}

fn print_manage(ctx: &Ctx, report: &ManageReport) -> Result<()> {
    if ctx.json {
        return output::print_json(report);
    }
    let mut text = format!("{}: {}", report.date, report.status);
    if let Some(reason) = &report.reason {
        text.push_str(&format!(": {reason}"));
    }
    text.push('\n');
    if !report.fills.is_empty() {
        let mut table = output::table(["ticker", "filled", "qty", "price", "realized P&L"]);
        for f in &report.fills {
            table.add_row(vec![
                f.ticker.clone(),
                f.event.to_owned(),
                f.quantity.to_string(),
                format!("${}", f.price),
                f.realized_pnl
                    .map_or_else(|| "-".into(), |p| format!("{p:.2}")),
            ]);
        }
        text.push_str(&format!("{table}\n"));
    }
    if report.actions.is_empty() && report.status == "ok" {
        text.push_str("nothing to do\n");
    } else if !report.actions.is_empty() {
        let mut table = output::table(["ticker", "action", "detail", "coid", "outcome"]);
        for a in &report.actions {
            table.add_row(vec![
                a.ticker.clone(),
                a.action.clone(),
                a.detail.clone(),
                a.coid.clone().unwrap_or_else(|| "-".into()),
                a.outcome.clone(),
            ]);
        }
        text.push_str(&format!("{table}\n"));
    }
    output::print_text(&text)
}
