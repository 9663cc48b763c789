//! Where things stand: skim's positions with the broker's last prices,
//! working orders, closed trades, the account summary and external
//! positions, as `skim positions` shows them.

use anyhow::Result;
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde::Serialize;

use super::journal::{self, PositionState};
use super::reconcile::{self, BrokerView};
use super::{Broker, rules};
use crate::calendar::EXCHANGE_TZ;
use crate::config::Config;
use crate::discord::MissedRun;
use crate::ibkr::fields;
use crate::ibkr::market;
use crate::ibkr::portfolio::{self, AccountSummary};
use crate::store::{RunRecord, Store};

/// One position as shown.
#[derive(Clone, Debug, Serialize)]
pub struct PositionView {
    pub ticker: String,
    pub conid: i64,
    pub quantity: f64,
    pub entry_price: Option<f64>,
    pub entry_date: Option<NaiveDate>,
    pub last: Option<f64>,
    pub stop: Option<f64>,
    pub unrealized_pnl: Option<f64>,
    pub unrealized_pnl_pct: Option<f64>,
    pub days_held: Option<i64>,
    /// working, open, half exited, or external.
    pub state: String,
    pub working_orders: usize,
}

/// A working order as shown.
#[derive(Clone, Debug, Serialize)]
pub struct OrderView {
    pub ticker: String,
    pub coid: String,
    pub purpose: String,
    pub side: String,
    #[serde(rename = "type")]
    pub order_type: String,
    pub quantity: u64,
    pub stop_price: Option<f64>,
    pub limit_price: Option<f64>,
    pub order_id: Option<String>,
    pub state: String,
}

/// A finished trade.
#[derive(Clone, Debug, Serialize)]
pub struct ClosedView {
    pub ticker: String,
    pub entry_date: NaiveDate,
    pub entry_price: Option<f64>,
    pub quantity: u64,
    pub closed_at: Option<String>,
    pub exit_reason: Option<String>,
    pub realized_pnl: f64,
    pub state: String,
}

/// Sums over the open positions (and realized P&L over closed ones).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Totals {
    pub positions: usize,
    pub market_value: f64,
    pub unrealized_pnl: f64,
    pub realized_pnl: f64,
}

/// Everything `skim positions` shows.
#[derive(Clone, Debug, Serialize)]
pub struct PositionsReport {
    pub as_of: DateTime<Utc>,
    pub positions: Vec<PositionView>,
    pub orders: Vec<OrderView>,
    pub closed: Vec<ClosedView>,
    pub totals: Totals,
    pub account: Option<AccountSummary>,
    /// Where skim's records and the broker's disagree.
    pub problems: Vec<String>,
    pub halted: Option<super::Halt>,
    /// The last run of each command, from the run log.
    pub runs: Vec<RunRecord>,
}

/// The scheduled commands the after-close summary checks, with the Sydney
/// time by which each should have run on a trading day.
pub const SCHEDULED: &[(&str, u32, u32)] = &[
    ("scan", 10, 2),
    ("trade enter", 10, 12),
    ("trade manage", 10, 15),
];

/// Scheduled commands that did not run today (by now) or whose last run
/// today failed. Empty on days the ASX is closed.
pub fn missed_runs(store: &Store, now: DateTime<Utc>) -> Result<Vec<MissedRun>> {
    let local = now.with_timezone(&EXCHANGE_TZ);
    let today = local.date_naive();
    if crate::calendar::session(today).is_none() {
        return Ok(Vec::new());
    }
    let midnight = today
        .and_hms_opt(0, 0, 0)
        .and_then(|t| t.and_local_timezone(EXCHANGE_TZ).earliest())
        .map(|t| t.to_utc())
        .unwrap_or(now);
    let runs = store.runs_between(midnight, now + chrono::Duration::seconds(1))?;
    let mut missed = Vec::new();
    for (command, hour, minute) in SCHEDULED {
        let due = NaiveTime::from_hms_opt(*hour, *minute, 0).unwrap_or(NaiveTime::MIN);
        if local.time() < due {
            continue;
        }
        let last = runs.iter().rev().find(|r| r.command == *command);
        let problem = match last {
            None => Some(format!(
                "did not run today (due at {})",
                due.format("%H:%M")
            )),
            Some(run) if run.finished_at.is_some() && !run.is_success() => Some(format!(
                "failed at {}: {}",
                run.started_at.with_timezone(&EXCHANGE_TZ).format("%H:%M"),
                run.message.as_deref().unwrap_or("no message")
            )),
            Some(run) if run.finished_at.is_none() && run.id != current_run(&runs) => {
                Some(format!(
                    "started at {} and never finished",
                    run.started_at.with_timezone(&EXCHANGE_TZ).format("%H:%M")
                ))
            }
            Some(_) => None,
        };
        if let Some(problem) = problem {
            missed.push(MissedRun {
                command: format!("skim {command}"),
                problem,
            });
        }
    }
    Ok(missed)
}

/// The newest run in the log: the command asking, which is still running.
fn current_run(runs: &[RunRecord]) -> i64 {
    runs.iter().map(|r| r.id).max().unwrap_or(-1)
}

/// Reconciles (recording fills, placing nothing) and builds the report.
pub fn positions(
    config: &Config,
    store: &Store,
    now: DateTime<Utc>,
    all: bool,
) -> Result<PositionsReport> {
    let today = now.with_timezone(&EXCHANGE_TZ).date_naive();
    let broker = Broker::connect(config)?;
    let view = BrokerView::read(&broker)?;
    let rec = reconcile::reconcile(store, &view, today, now, true)?;
    let account = match portfolio::account_summary(&broker.client, &broker.account) {
        Ok(summary) => Some(summary),
        Err(err) => {
            log::warn!("could not read the account summary: {err:#}");
            None
        }
    };
    let active = journal::active_positions(store.connection())?;
    let mut conids: Vec<i64> = active.iter().map(|p| p.conid).collect();
    conids.extend(rec.external.iter().map(|p| p.conid));
    conids.sort_unstable();
    conids.dedup();
    let quotes = if conids.is_empty() {
        Vec::new()
    } else {
        market::snapshot(
            &broker.client,
            &conids,
            &[fields::LAST, fields::AVAILABILITY],
        )?
    };
    let last_of = |conid: i64, fallback: Option<f64>| {
        quotes
            .iter()
            .find(|q| q.conid == conid)
            .and_then(|q| q.last)
            .map(|l| l.price)
            .or(fallback)
    };

    let mut report = PositionsReport {
        as_of: now,
        positions: Vec::new(),
        orders: Vec::new(),
        closed: Vec::new(),
        totals: Totals::default(),
        account,
        problems: rec.problems.clone(),
        halted: super::halt_state(store)?,
        runs: store.last_runs()?,
    };
    for p in &active {
        let orders = journal::orders_of(store.connection(), p.id)?;
        let working: Vec<_> = orders.iter().filter(|o| o.state.is_open()).collect();
        let stop = working
            .iter()
            .find(|o| o.purpose == journal::Purpose::Stop)
            .and_then(|o| o.stop_price())
            .or(Some(p.stop_price));
        let broker_price = view
            .positions
            .iter()
            .find(|b| b.conid == p.conid)
            .and_then(|b| b.market_price);
        let last = last_of(p.conid, broker_price);
        let (pnl, pct) = match (last, p.entry_price, p.quantity) {
            (Some(last), Some(entry), q) if q > 0 => {
                let pnl = (last - entry) * q as f64;
                (
                    Some(round2(pnl)),
                    Some(round2((last / entry - 1.0) * 100.0)),
                )
            }
            _ => (None, None),
        };
        if let Some(last) = last {
            report.totals.market_value += last * p.quantity as f64;
        }
        report.totals.unrealized_pnl += pnl.unwrap_or(0.0);
        report.totals.realized_pnl += p.realized_pnl;
        report.positions.push(PositionView {
            ticker: p.ticker.clone(),
            conid: p.conid,
            quantity: p.quantity as f64,
            entry_price: p.entry_price,
            entry_date: Some(p.entry_date),
            last,
            stop,
            unrealized_pnl: pnl,
            unrealized_pnl_pct: pct,
            days_held: (p.state != PositionState::Entering)
                .then(|| rules::days_held(p.entry_date, today)),
            state: p.state.label().to_owned(),
            working_orders: working.len(),
        });
        for o in working {
            report.orders.push(OrderView {
                ticker: o.ticker.clone(),
                coid: o.coid.clone(),
                purpose: o.purpose.as_str().to_owned(),
                side: o.side.as_str().to_owned(),
                order_type: o.order_type.as_str().to_owned(),
                quantity: o.quantity,
                stop_price: o.stop_price(),
                limit_price: o.limit_price(),
                order_id: o.order_id.clone(),
                state: o.state.as_str().to_owned(),
            });
        }
    }
    for b in &rec.external {
        let last = last_of(b.conid, b.market_price);
        report.positions.push(PositionView {
            ticker: b.description.clone(),
            conid: b.conid,
            quantity: b.quantity,
            entry_price: b.avg_cost,
            entry_date: None,
            last,
            stop: None,
            unrealized_pnl: match (last, b.avg_cost) {
                (Some(l), Some(c)) => Some(round2((l - c) * b.quantity)),
                _ => None,
            },
            unrealized_pnl_pct: match (last, b.avg_cost) {
                (Some(l), Some(c)) if c > 0.0 => Some(round2((l / c - 1.0) * 100.0)),
                _ => None,
            },
            days_held: None,
            state: "external".into(),
            working_orders: 0,
        });
    }
    report.totals.positions = active.iter().filter(|p| p.quantity > 0).count();
    let finished: Vec<_> = journal::all_positions(store.connection())?
        .into_iter()
        .filter(|p| !p.state.is_active())
        .collect();
    for p in &finished {
        if p.state == PositionState::Closed {
            report.totals.realized_pnl += p.realized_pnl;
        }
        if all {
            report.closed.push(ClosedView {
                ticker: p.ticker.clone(),
                entry_date: p.entry_date,
                entry_price: p.entry_price,
                quantity: p.bought,
                closed_at: p.closed_at.clone(),
                exit_reason: p.exit_reason.clone(),
                realized_pnl: round2(p.realized_pnl),
                state: p.state.label().to_owned(),
            });
        }
    }
    report.totals.market_value = round2(report.totals.market_value);
    report.totals.unrealized_pnl = round2(report.totals.unrealized_pnl);
    report.totals.realized_pnl = round2(report.totals.realized_pnl);
    Ok(report)
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}
