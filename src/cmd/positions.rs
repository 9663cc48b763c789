//! `skim positions`: where things stand, skim's records reconciled with the
//! broker's.

use anyhow::Result;
use clap::Args;
use skim_asx::discord::{self, PositionLine, PositionsSummary, format_price};
use skim_asx::store::Store;
use skim_asx::trade::TradeLock;
use skim_asx::trade::view::{self, PositionsReport};
use skim_asx::{Ctx, outbox, output};

#[derive(Debug, Args)]
pub struct PositionsArgs {
    /// Also list closed trades with their realized P&L
    #[arg(long)]
    pub all: bool,

    /// Post the summary to Discord
    #[arg(long)]
    pub notify: bool,
}

pub fn run(ctx: &Ctx, args: PositionsArgs) -> Result<()> {
    // Reconciling records fills, so it waits its turn like a trade command.
    let _lock = TradeLock::acquire(&ctx.config)?;
    let store = Store::open(&ctx.config.db_path)?;
    let now = ctx.now();
    let report = view::positions(&ctx.config, &store, now, args.all)?;
    if args.notify {
        let summary = PositionsSummary {
            positions: report
                .positions
                .iter()
                .filter(|p| p.state != "external" && p.quantity > 0.0)
                .map(|p| PositionLine {
                    ticker: p.ticker.clone(),
                    quantity: p.quantity as u64,
                    entry_price: p.entry_price.unwrap_or(0.0),
                    last_price: p.last.unwrap_or(0.0),
                    unrealized_pnl: p.unrealized_pnl.unwrap_or(0.0),
                })
                .collect(),
            realized_pnl: report.totals.realized_pnl,
            missed_runs: view::missed_runs(&store, now)?,
        };
        outbox::enqueue(&store, &discord::daily_summary(&summary, now), now)?;
    }
    outbox::deliver_quietly(&store, ctx.config.discord_webhook_url.as_ref(), now);
    if ctx.json {
        output::print_json(&report)
    } else {
        print_human(&report)
    }
}

fn opt_price(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), format_price)
}

fn money(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"))
}

fn print_human(report: &PositionsReport) -> Result<()> {
    let mut text = String::new();
    if let Some(halt) = &report.halted {
        text.push_str(&format!("HALTED since {}", halt.since.to_rfc3339()));
        if let Some(why) = &halt.reason {
            text.push_str(&format!(": {why}"));
        }
        text.push('\n');
    }
    for problem in &report.problems {
        text.push_str(&format!("DISAGREES WITH THE BROKER: {problem}\n"));
    }
    if report.positions.is_empty() {
        text.push_str("no open positions\n");
    } else {
        let mut table = output::table([
            "ticker",
            "qty",
            "entry",
            "entry date",
            "last",
            "stop",
            "P&L $",
            "P&L %",
            "days",
            "state",
            "orders",
        ]);
        for p in &report.positions {
            table.add_row(vec![
                p.ticker.clone(),
                p.quantity.to_string(),
                opt_price(p.entry_price),
                p.entry_date.map_or_else(|| "-".into(), |d| d.to_string()),
                opt_price(p.last),
                opt_price(p.stop),
                money(p.unrealized_pnl),
                money(p.unrealized_pnl_pct),
                p.days_held.map_or_else(|| "-".into(), |d| d.to_string()),
                p.state.clone(),
                p.working_orders.to_string(),
            ]);
        }
        text.push_str(&format!("{table}\n"));
    }
    if !report.orders.is_empty() {
        let mut table = output::table([
            "working order",
            "purpose",
            "side",
            "type",
            "qty",
            "stop",
            "limit",
            "state",
        ]);
        for o in &report.orders {
            table.add_row(vec![
                format!("{} {}", o.ticker, o.coid),
                o.purpose.clone(),
                o.side.clone(),
                o.order_type.clone(),
                o.quantity.to_string(),
                opt_price(o.stop_price),
                opt_price(o.limit_price),
                o.state.clone(),
            ]);
        }
        text.push_str(&format!("{table}\n"));
    }
    if !report.closed.is_empty() {
        let mut table = output::table([
            "closed",
            "entry date",
            "entry",
            "qty",
            "closed at",
            "exit",
            "realized $",
        ]);
        for c in &report.closed {
            table.add_row(vec![
                c.ticker.clone(),
                c.entry_date.to_string(),
                opt_price(c.entry_price),
                c.quantity.to_string(),
                c.closed_at
                    .as_deref()
                    .map_or_else(|| "-".into(), sydney_time),
                c.exit_reason.clone().unwrap_or_else(|| c.state.clone()),
                format!("{:.2}", c.realized_pnl),
            ]);
        }
        text.push_str(&format!("{table}\n"));
    }
    if !report.runs.is_empty() {
        let mut table = output::table(["command", "last run", "outcome", "message"]);
        for run in &report.runs {
            table.add_row(vec![
                run.command.clone(),
                run.started_at
                    .with_timezone(&skim_asx::calendar::EXCHANGE_TZ)
                    .format("%Y-%m-%d %H:%M")
                    .to_string(),
                run.outcome.clone().unwrap_or_else(|| "running".into()),
                run.message.clone().unwrap_or_default(),
            ]);
        }
        text.push_str(&format!("{table}\n"));
    }
    let t = &report.totals;
    text.push_str(&format!(
        "totals: {} position(s), market value A${:.2}, unrealized A${:.2}, realized A${:.2}\n",
        t.positions, t.market_value, t.unrealized_pnl, t.realized_pnl
    ));
    if let Some(account) = &report.account {
        text.push_str(&format!(
            "account: net liquidation {}, available funds {}, buying power {}{}\n",
            money(account.net_liquidation),
            money(account.available_funds),
            money(account.buying_power),
            account
                .currency
                .as_deref()
                .map(|c| format!(" ({c})"))
                .unwrap_or_default()
        ));
    }
    output::print_text(&text)
}

/// An RFC 3339 instant from the database as Sydney wall time for a table,
/// `2026-03-12 16:20`; anything unparseable is shown as stored.
fn sydney_time(stored: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(stored).map_or_else(
        |_| stored.to_owned(),
        |t| {
            t.with_timezone(&skim_asx::calendar::EXCHANGE_TZ)
                .format("%Y-%m-%d %H:%M")
                .to_string()
        },
    )
}
