//! `trade manage`: reconcile, then cancel entries past the cutoff, keep a
//! stop on every share held, sell half on the third trading day, and sell
//! the rest when the last daily close is below the 10-day SMA. Also the
//! flatten of `trade halt --flatten`, through the same order path.

use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde::Serialize;

use super::journal::{self, Order, OrderState, Position, PositionState, Purpose};
use super::notice::{Event, Fill};
use super::reconcile::{self, BrokerView};
use super::rules;
use super::{Broker, REVIEWED_QUESTIONS, Sent, coid};
use crate::calendar::{self, EXCHANGE_TZ};
use crate::config::Config;
use crate::crashpoint;
use crate::ibkr::history;
use crate::ibkr::orders::{self, OrderType, Placement, Side, Tif};
use crate::outbox;
use crate::progress::Steps;
use crate::store::Store;
use crate::ticks::TickTable;

/// `trade manage`'s knobs.
#[derive(Clone, Debug)]
pub struct ManageOptions {
    /// Entries still unfilled at this Sydney time are cancelled.
    pub cutoff: NaiveTime,
    pub dry_run: bool,
}

/// What `trade manage` (or a flatten) did.
#[derive(Clone, Debug, Serialize)]
pub struct ManageReport {
    pub date: NaiveDate,
    /// `ok`, `skipped` (closed day) or `refused` (records disagree).
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Fills recorded since the last look (entries, stops, exits).
    pub fills: Vec<Fill>,
    pub actions: Vec<Action>,
    /// Disagreements between skim's records and the broker's.
    pub problems: Vec<String>,
}

/// One thing done (or, in a dry run, that would be done).
#[derive(Clone, Debug, Serialize)]
pub struct Action {
    pub ticker: String,
    /// `cancel entry`, `place stop`, `modify stop`, `half exit`, `trailing exit`, `flatten`.
    pub action: String,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coid: Option<String>,
    /// `done`, `planned` (dry run), or what went wrong.
    pub outcome: String,
}

impl ManageReport {
    fn new(date: NaiveDate, status: &str, reason: Option<String>) -> ManageReport {
        ManageReport {
            date,
            status: status.to_owned(),
            reason,
            fills: Vec::new(),
            actions: Vec::new(),
            problems: Vec::new(),
        }
    }
}

/// Parses `HH:MM`.
pub fn parse_cutoff(text: &str) -> Result<NaiveTime> {
    NaiveTime::parse_from_str(text.trim(), "%H:%M").map_err(|_| {
        crate::error::usage(format!("--cutoff {text:?} is not a Sydney time like 11:00")).into()
    })
}

/// What the plan calls for, per position.
#[derive(Clone, Debug)]
enum Plan {
    CancelEntry {
        entry: Order,
    },
    PlaceStop {
        quantity: u64,
        price: f64,
    },
    ModifyStop {
        stop: Order,
        quantity: u64,
        price: f64,
    },
    HalfExit {
        stop: Order,
        half: u64,
        breakeven: f64,
    },
    TrailExit {
        stops: Vec<Order>,
        check: rules::SmaCheck,
    },
    ResendHalf {
        half: Order,
    },
}

/// Runs `trade manage` at `now`.
pub fn manage(
    config: &Config,
    store: &Store,
    now: DateTime<Utc>,
    opts: &ManageOptions,
) -> Result<ManageReport> {
    let local = now.with_timezone(&EXCHANGE_TZ);
    let today = local.date_naive();
    if let Some(reason) = crate::scan::closed_reason(now) {
        return Ok(ManageReport::new(today, "skipped", Some(reason)));
    }
    let broker = Broker::connect(config)?;
    let mut report = ManageReport::new(today, "ok", None);
    if !opts.dry_run && !reconciled(store, &broker, today, now, &mut report)? {
        return Ok(report);
    }
    let trading = continuous_session(now);
    let active = journal::active_positions(store.connection())?;
    let mut steps = Steps::new("trade manage: position", active.len());
    for position in active {
        steps.start(&position.ticker);
        let orders = journal::orders_of(store.connection(), position.id)?;
        let daily =
            if trading && matches!(position.state, PositionState::Open | PositionState::Half) {
                history::daily_bars(&broker.client, position.conid, 30)?
            } else {
                Vec::new()
            };
        let plans = plan(
            &position,
            &orders,
            &daily,
            local.time(),
            today,
            trading,
            opts.cutoff,
        )?;
        for step in plans {
            let action = if opts.dry_run {
                describe(&position, &step, "planned")
            } else {
                execute(store, &broker, &position, step, today, now)?
            };
            report.actions.push(action);
        }
    }
    Ok(report)
}

/// Reconciles and records problems; false when trading must stop.
fn reconciled(
    store: &Store,
    broker: &Broker,
    today: NaiveDate,
    now: DateTime<Utc>,
    report: &mut ManageReport,
) -> Result<bool> {
    let view = BrokerView::read(broker)?;
    let rec = reconcile::reconcile(store, &view, today, now, true)?;
    report.fills = rec.events.iter().filter_map(Event::fill).collect();
    if rec.agrees() {
        return Ok(true);
    }
    let reason = format!(
        "skim's records and the broker's disagree: {}",
        rec.problems.join("; ")
    );
    outbox::enqueue(store, &Event::Refused(reason.clone()).message(now), now)?;
    report.status = "refused".into();
    report.reason = Some(reason);
    report.problems = rec.problems;
    Ok(false)
}

/// Between the opening auction and the closing phase: market orders fill.
fn continuous_session(now: DateTime<Utc>) -> bool {
    let local = now.with_timezone(&EXCHANGE_TZ);
    calendar::session(local.date_naive())
        .is_some_and(|s| local >= s.continuous_start && local < s.continuous_end)
}

fn working(orders: &[Order], purpose: Purpose) -> Vec<Order> {
    orders
        .iter()
        .filter(|o| o.purpose == purpose && o.state.is_open())
        .cloned()
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn plan(
    position: &Position,
    orders: &[Order],
    daily: &[history::Bar],
    time: NaiveTime,
    today: NaiveDate,
    trading: bool,
    cutoff: NaiveTime,
) -> Result<Vec<Plan>> {
    let mut plans = Vec::new();
    let entries = working(orders, Purpose::Entry);
    let stops = working(orders, Purpose::Stop);
    let exits_pending = [Purpose::Half, Purpose::Exit, Purpose::Flatten]
        .iter()
        .any(|p| !working(orders, *p).is_empty());

    let entry_working = entries.iter().any(|o| o.order_id.is_some());
    if entry_working && (position.entry_date < today || time >= cutoff) {
        plans.extend(
            entries
                .into_iter()
                .filter(|o| o.order_id.is_some())
                .map(|entry| Plan::CancelEntry { entry }),
        );
    }
    let held = position.quantity;
    if held == 0 || exits_pending || entry_working {
        return Ok(plans);
    }
    // A half-exit sell journaled with the `half` state that the broker
    // never received goes again before anything else: the stop already
    // covers only the other half.
    let lost_half = orders
        .iter()
        .find(|o| o.purpose == Purpose::Half && o.state == OrderState::Lost && o.filled == 0);
    if trading
        && position.state == PositionState::Half
        && let Some(half) = lost_half
    {
        plans.push(Plan::ResendHalf { half: half.clone() });
        return Ok(plans);
    }
    // A trailing exit IBKR turned down today is not sent again today; the
    // stop logic below puts a stop back on the shares instead.
    let exit_turned_down = orders.iter().any(|o| {
        o.purpose == Purpose::Exit
            && o.coid == coid(today, &position.ticker, "exit")
            && matches!(o.state, OrderState::Rejected | OrderState::Refused)
    });
    if trading
        && !exit_turned_down
        && let Some(check) = rules::sma_check(daily, today, false)
        && check.close_date >= position.entry_date
        && check.says_exit()
    {
        plans.push(Plan::TrailExit { stops, check });
        return Ok(plans);
    }
    let live_stop = stops.iter().find(|o| o.order_id.is_some()).cloned();
    if trading
        && position.state == PositionState::Open
        && rules::days_held(position.entry_date, today) >= 3
        && let (Some(stop), Some(entry)) = (&live_stop, position.entry_price)
    {
        let breakeven = TickTable::asx().round_down(entry)?;
        plans.push(Plan::HalfExit {
            stop: stop.clone(),
            half: held / 2,
            breakeven,
        });
        return Ok(plans);
    }
    match live_stop {
        None if stops.is_empty() => plans.push(Plan::PlaceStop {
            quantity: held,
            price: position.stop_price,
        }),
        // A stop whose fate is unknown is looked up by the next
        // reconciliation before another is placed.
        None => {}
        Some(stop)
            if stop.quantity != held
                || stop
                    .stop_price()
                    .is_some_and(|p| (p - position.stop_price).abs() > 1e-9) =>
        {
            plans.push(Plan::ModifyStop {
                stop,
                quantity: held,
                price: position.stop_price,
            })
        }
        Some(_) => {}
    }
    Ok(plans)
}

fn describe(position: &Position, step: &Plan, outcome: &str) -> Action {
    let (action, detail, coid) = match step {
        Plan::CancelEntry { entry } => (
            "cancel entry",
            format!("entry of {} unfilled at the cutoff", entry.quantity),
            Some(entry.coid.clone()),
        ),
        Plan::PlaceStop { quantity, price } => (
            "place stop",
            format!("sell stop {quantity} @ {price}"),
            None,
        ),
        Plan::ModifyStop {
            quantity,
            price,
            stop,
        } => (
            "modify stop",
            format!("stop {} -> {quantity} @ {price}", stop.quantity),
            Some(stop.coid.clone()),
        ),
        Plan::HalfExit {
            half, breakeven, ..
        } => (
            "half exit",
            format!("sell {half} at market; stop on the rest to {breakeven}"),
            None,
        ),
        Plan::ResendHalf { half } => (
            "half exit",
            format!(
                "sell {} at market, again: it never reached IBKR",
                half.quantity
            ),
            Some(half.coid.clone()),
        ),
        Plan::TrailExit { check, .. } => (
            "trailing exit",
            format!(
                "close {} on {} below the 10-day SMA {:.4}; sell {} at market",
                check.close, check.close_date, check.sma, position.quantity
            ),
            None,
        ),
    };
    Action {
        ticker: position.ticker.clone(),
        action: action.to_owned(),
        detail,
        coid,
        outcome: outcome.to_owned(),
    }
}

fn execute(
    store: &Store,
    broker: &Broker,
    position: &Position,
    step: Plan,
    today: NaiveDate,
    now: DateTime<Utc>,
) -> Result<Action> {
    let mut action = describe(position, &step, "done");
    let ticker = &position.ticker;
    match step {
        Plan::CancelEntry { entry } => {
            let id = entry
                .order_id
                .as_deref()
                .context("entry without an order id")?;
            orders::cancel(&broker.client, &broker.account, id)
                .with_context(|| format!("{ticker}: failed to cancel the entry"))?;
            crashpoint::pause("cancel-answered");
        }
        Plan::PlaceStop { quantity, price } => {
            let order = new_stop(store, position, today, quantity, price)?;
            action.coid = Some(order.coid.clone());
            action.outcome = send_one(store, broker, order, now)?;
        }
        Plan::ModifyStop {
            stop,
            quantity,
            price,
        } => {
            action.outcome = modify_stop(store, broker, stop, quantity, price, now)?;
        }
        Plan::HalfExit {
            stop,
            half,
            breakeven,
        } => {
            let rest = position.quantity - half;
            // The stop shrinks first, so the shares being sold are never
            // also under a stop that could sell them a second time.
            let outcome = modify_stop(store, broker, stop, rest, breakeven, now)?;
            if outcome != "done" {
                action.outcome = format!("stop not moved ({outcome}); nothing sold");
                return Ok(action);
            }
            let mut updated = journal::position(store.connection(), position.id)?;
            updated.state = PositionState::Half;
            updated.half_date = Some(today);
            updated.stop_price = breakeven;
            let order = (half > 0).then(|| {
                new_order(
                    position,
                    &coid(today, ticker, "half"),
                    Purpose::Half,
                    OrderType::Market,
                    Tif::Day,
                    half,
                    None,
                )
            });
            // The sell is journaled with the new state in one transaction:
            // a position marked half exited without its sell on record would
            // never sell the half (the plan only starts a half exit from
            // `open`) and would put the stop back on every share.
            store.transaction(|tx| {
                journal::save_position(tx, &updated, now)?;
                if let Some(order) = &order {
                    journal::insert_order(tx, order, now)?;
                }
                Ok(())
            })?;
            crashpoint::pause("half-marked");
            if let Some(order) = order {
                action.coid = Some(order.coid.clone());
                let sent = super::send(store, broker, &mut [order], now)?;
                action.outcome = outcome_text(&sent);
            }
        }
        Plan::ResendHalf { half } => {
            action.outcome = send_one(store, broker, half, now)?;
        }
        Plan::TrailExit { stops, check } => {
            // The stop goes first: with both working, a fall through the
            // stop while the exit fills would sell the shares twice.
            for stop in &stops {
                if let Some(id) = &stop.order_id {
                    orders::cancel(&broker.client, &broker.account, id).with_context(|| {
                        format!("{ticker}: failed to cancel the stop before the exit")
                    })?;
                    crashpoint::pause("cancel-answered");
                }
            }
            let mut updated = journal::position(store.connection(), position.id)?;
            updated.exit_sma = Some(check.sma);
            store.transaction(|tx| journal::save_position(tx, &updated, now))?;
            crashpoint::pause("exit-marked");
            let order = new_order(
                position,
                &coid(today, ticker, "exit"),
                Purpose::Exit,
                OrderType::Market,
                Tif::Day,
                position.quantity,
                None,
            );
            action.coid = Some(order.coid.clone());
            action.outcome = send_one(store, broker, order, now)?;
            if action.outcome.starts_with("rejected") || action.outcome.starts_with("refused") {
                // The shares are still held and their stop is gone: put one
                // back at once rather than leave them bare until tomorrow.
                let stop = new_stop(
                    store,
                    position,
                    today,
                    position.quantity,
                    position.stop_price,
                )?;
                let placed = send_one(store, broker, stop, now)?;
                action.outcome = format!("{}; stop put back: {placed}", action.outcome);
            }
        }
    }
    Ok(action)
}

/// A new protective stop for `position`, under the next free `stopN`
/// client order id of the day.
fn new_stop(
    store: &Store,
    position: &Position,
    today: NaiveDate,
    quantity: u64,
    price: f64,
) -> Result<Order> {
    let n = journal::orders_of(store.connection(), position.id)?
        .iter()
        .filter(|o| o.purpose == Purpose::Stop)
        .count();
    Ok(new_order(
        position,
        &coid(today, &position.ticker, &format!("stop{}", n + 1)),
        Purpose::Stop,
        OrderType::Stop,
        Tif::Gtc,
        quantity,
        Some(price),
    ))
}

fn new_order(
    position: &Position,
    coid: &str,
    purpose: Purpose,
    order_type: OrderType,
    tif: Tif,
    quantity: u64,
    price: Option<f64>,
) -> Order {
    Order {
        coid: coid.to_owned(),
        position_id: position.id,
        purpose,
        parent_coid: None,
        conid: position.conid,
        ticker: position.ticker.clone(),
        side: Side::Sell,
        order_type,
        tif,
        quantity,
        price,
        aux_price: None,
        order_id: None,
        state: OrderState::Intent,
        filled: 0,
        avg_price: None,
        note: None,
    }
}

/// Journals and sends one order, unless its `cOID` is already journaled
/// (a re-run), and says how it went.
fn send_one(store: &Store, broker: &Broker, order: Order, now: DateTime<Utc>) -> Result<String> {
    let order = match journal::order(store.connection(), &order.coid)? {
        // Looked up by its cOID and not found: the request never reached
        // IBKR (skim died before sending it), so sending it now cannot
        // double it, and not sending it would leave the sell undone.
        Some(mut lost) if lost.state == OrderState::Lost && lost.filled == 0 => {
            log::info!(
                "{}: {} never reached IBKR; sending it again",
                lost.ticker,
                lost.coid
            );
            lost.state = OrderState::Intent;
            lost.note = None;
            store.transaction(|tx| journal::save_order(tx, &lost, now))?;
            lost
        }
        Some(existing) => return Ok(format!("already {}", existing.state.as_str())),
        None => {
            store.transaction(|tx| journal::insert_order(tx, &order, now))?;
            order
        }
    };
    let mut group = [order];
    let sent = super::send(store, broker, &mut group, now)?;
    Ok(outcome_text(&sent))
}

fn outcome_text(sent: &Sent) -> String {
    match sent {
        Sent::Placed | Sent::Found => "done".into(),
        Sent::Rejected(text) => format!("rejected: {text}"),
        Sent::Refused(text) => format!("refused: {text}"),
        Sent::Unclear(text) => format!("unclear, to be looked up: {text}"),
    }
}

fn modify_stop(
    store: &Store,
    broker: &Broker,
    mut stop: Order,
    quantity: u64,
    price: f64,
    now: DateTime<Utc>,
) -> Result<String> {
    let id = stop.order_id.clone().context("stop without an order id")?;
    let mut ticket = stop.ticket();
    ticket.quantity = quantity;
    ticket.price = Some(price);
    let answer = orders::modify(
        &broker.client,
        &broker.account,
        &id,
        &ticket,
        REVIEWED_QUESTIONS,
    );
    crashpoint::pause("stop-modify-answered");
    match answer {
        Ok(Placement::Placed(_)) => {
            stop.quantity = quantity;
            stop.price = Some(price);
            stop.note = None;
            store.transaction(|tx| {
                journal::save_order(tx, &stop, now)?;
                crashpoint::pause("stop-modify-commit");
                Ok(())
            })?;
            Ok("done".into())
        }
        Ok(Placement::Rejected(text)) => Ok(format!("rejected: {text}")),
        Ok(Placement::Refused { text, .. }) => Ok(format!("refused: {text}")),
        // A modification can be repeated safely; the next run compares the
        // stop with what it should be and tries again.
        Err(err) if orders::is_unclear(&err) => Ok(format!("unclear: {err:#}")),
        Err(err) => Err(err.context(format!("failed to modify the stop {}", stop.coid))),
    }
}

/// `trade halt --flatten`: cancels every working order of every active
/// position, then sells what is held at market.
pub fn flatten(config: &Config, store: &Store, now: DateTime<Utc>) -> Result<ManageReport> {
    let today = now.with_timezone(&EXCHANGE_TZ).date_naive();
    let broker = Broker::connect(config)?;
    let mut report = ManageReport::new(today, "ok", None);
    if !reconciled(store, &broker, today, now, &mut report)? {
        return Ok(report);
    }
    for position in journal::active_positions(store.connection())? {
        let orders = journal::orders_of(store.connection(), position.id)?;
        let open: Vec<&Order> = orders
            .iter()
            .filter(|o| o.state.is_open() && o.order_id.is_some())
            .collect();
        // Cancelling a bracket's parent cancels its children at IBKR; asking
        // again for a child would only be refused.
        let parents: Vec<&str> = open
            .iter()
            .filter(|o| o.parent_coid.is_none())
            .map(|o| o.coid.as_str())
            .collect();
        for order in open {
            if order
                .parent_coid
                .as_deref()
                .is_some_and(|p| parents.contains(&p))
            {
                continue;
            }
            let id = order.order_id.as_deref().unwrap_or_default();
            // A kill switch does as much as it can: one failure does not
            // stop the others; the command fails at the end.
            let outcome = match orders::cancel(&broker.client, &broker.account, id) {
                Ok(()) => "done".to_owned(),
                Err(err) => format!("failed: {err:#}"),
            };
            crashpoint::pause("cancel-answered");
            report.actions.push(Action {
                ticker: position.ticker.clone(),
                action: "cancel".into(),
                detail: format!("{} {}", order.purpose.as_str(), order.coid),
                coid: Some(order.coid.clone()),
                outcome,
            });
        }
        if position.quantity > 0 {
            let order = new_order(
                &position,
                &coid(today, &position.ticker, "flatten"),
                Purpose::Flatten,
                OrderType::Market,
                Tif::Day,
                position.quantity,
                None,
            );
            let coid = order.coid.clone();
            let outcome = send_one(store, &broker, order, now)?;
            report.actions.push(Action {
                ticker: position.ticker.clone(),
                action: "flatten".into(),
                detail: format!("sell {} at market", position.quantity),
                coid: Some(coid),
                outcome,
            });
        }
    }
    let failed: Vec<String> = report
        .actions
        .iter()
        .filter(|a| a.outcome.starts_with("failed"))
        .map(|a| format!("{} {}: {}", a.ticker, a.action, a.outcome))
        .collect();
    if !failed.is_empty() {
        report.status = "incomplete".into();
        report.reason = Some(failed.join("; "));
    }
    Ok(report)
}
