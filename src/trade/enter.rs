//! `trade enter`: a bracket for each of today's candidates: a buy stop one
//! step above the opening-range high, a protective sell stop at the low of
//! the day, sized to a position value, each journaled before it is sent.

use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::params;
use serde::Serialize;

use super::journal::{self, NewPosition, Order, OrderState, PositionState, Purpose};
use super::notice::Event;
use super::reconcile::{self, BrokerView};
use super::rules::{self, MIN_PARCEL, Sizing};
use super::{Broker, Sent, coid, halt_state};
use crate::calendar::EXCHANGE_TZ;
use crate::config::Config;
use crate::discord::EntryOrder;
use crate::ibkr::fields::{self, LastKind, Quote};
use crate::ibkr::history;
use crate::ibkr::market;
use crate::ibkr::orders::{OrderType, Side, Tif};
use crate::ibkr::portfolio;
use crate::outbox;
use crate::progress::Steps;
use crate::store::Store;
use crate::ticks::TickTable;

/// `trade enter`'s knobs.
#[derive(Clone, Debug)]
pub struct EnterOptions {
    pub or_minutes: u32,
    pub position_value: f64,
    pub max_positions: u32,
    pub max_risk_pct: f64,
    pub max_chase_pct: f64,
    pub limit_cap_pct: Option<f64>,
    pub dry_run: bool,
}

/// What `trade enter` did, as `--json` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct EnterReport {
    pub date: NaiveDate,
    /// `ok`, `skipped` (closed day), `halted`, or `refused` (records disagree).
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub orders: Vec<OrderLine>,
    pub skipped: Vec<Skip>,
}

/// One order, as reported.
#[derive(Clone, Debug, Serialize)]
pub struct OrderLine {
    pub ticker: String,
    pub conid: i64,
    pub side: String,
    #[serde(rename = "type")]
    pub order_type: String,
    pub quantity: u64,
    pub stop_price: Option<f64>,
    pub limit_price: Option<f64>,
    /// The client order id sent to IBKR; `null` for a bracket child, which
    /// IBKR ties to its parent's.
    pub coid: Option<String>,
    /// skim's journal key for the order (equal to `coid` except for children).
    pub key: String,
    pub order_id: Option<String>,
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl OrderLine {
    pub fn of(order: &Order) -> OrderLine {
        OrderLine {
            ticker: order.ticker.clone(),
            conid: order.conid,
            side: order.side.as_str().to_owned(),
            order_type: order.order_type.as_str().to_owned(),
            quantity: order.quantity,
            stop_price: order.stop_price(),
            limit_price: order.limit_price(),
            coid: order.parent_coid.is_none().then(|| order.coid.clone()),
            key: order.coid.clone(),
            order_id: order.order_id.clone(),
            state: order.state.as_str().to_owned(),
            note: order.note.clone(),
        }
    }
}

/// A candidate not entered, and why.
#[derive(Clone, Debug, Serialize)]
pub struct Skip {
    pub ticker: String,
    pub reason: String,
}

impl EnterReport {
    fn new(date: NaiveDate, status: &str, reason: Option<String>) -> EnterReport {
        EnterReport {
            date,
            status: status.to_owned(),
            reason,
            orders: Vec::new(),
            skipped: Vec::new(),
        }
    }
}

struct Candidate {
    ticker: String,
    conid: i64,
}

fn candidates(store: &Store, date: NaiveDate) -> Result<Vec<Candidate>> {
    let conn = store.connection();
    let mut stmt = conn.prepare(
        "SELECT ticker, conid FROM candidates WHERE date = ?1 ORDER BY gap_pct DESC, ticker",
    )?;
    let rows = stmt.query_map(params![date.to_string()], |row| {
        Ok(Candidate {
            ticker: row.get(0)?,
            conid: row.get(1)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Runs `trade enter` at `now`. Returns the report; a `halted` or `refused`
/// status is for the caller to turn into exit 4 after printing it.
pub fn enter(
    config: &Config,
    store: &Store,
    now: DateTime<Utc>,
    opts: &EnterOptions,
) -> Result<EnterReport> {
    let today = now.with_timezone(&EXCHANGE_TZ).date_naive();
    if let Some(reason) = crate::scan::closed_reason(now) {
        return Ok(EnterReport::new(today, "skipped", Some(reason)));
    }
    if let Some(halt) = halt_state(store)? {
        let reason = match &halt.reason {
            Some(why) => format!(
                "trading is halted since {} ({why})",
                halt.since.to_rfc3339()
            ),
            None => format!("trading is halted since {}", halt.since.to_rfc3339()),
        };
        if !opts.dry_run {
            outbox::enqueue(
                store,
                &Event::Refused(format!("trade enter: {reason}")).message(now),
                now,
            )?;
        }
        return Ok(EnterReport::new(today, "halted", Some(reason)));
    }
    let broker = Broker::connect(config)?;
    if !opts.dry_run {
        let view = BrokerView::read(&broker)?;
        let rec = reconcile::reconcile(store, &view, today, now, true)?;
        if !rec.agrees() {
            let reason = format!(
                "skim's records and the broker's disagree: {}",
                rec.problems.join("; ")
            );
            outbox::enqueue(store, &Event::Refused(reason.clone()).message(now), now)?;
            return Ok(EnterReport::new(today, "refused", Some(reason)));
        }
    }

    let mut report = EnterReport::new(today, "ok", None);
    let candidates = candidates(store, today)?;
    if candidates.is_empty() {
        report.reason = Some("no candidates today; run `skim scan` first".into());
        return Ok(report);
    }
    let active = journal::active_positions(store.connection())?;
    let mut open_count = active.len() as u32;
    let quotes = quotes(&broker, &candidates)?;
    // IBKR's available funds do not set aside money for entries still
    // waiting for their trigger; earlier runs' working entries are taken
    // off here so that a later run cannot commit the same money twice.
    let committed: f64 = active
        .iter()
        .filter(|p| p.state == PositionState::Entering)
        .map(|p| p.planned_qty.saturating_sub(p.bought) as f64 * p.planned_entry)
        .sum();
    let mut funds = available_funds(&broker).map(|f| f - committed);
    let mut placed = Vec::new();
    let mut refusals = Vec::new();

    // One history request per candidate, each paced: on a terminal, say
    // which one skim is waiting for.
    let mut steps = Steps::new("trade enter: candidate", candidates.len());
    for candidate in &candidates {
        let ticker = &candidate.ticker;
        steps.start(ticker);
        let skip = |report: &mut EnterReport, reason: String| {
            report.skipped.push(Skip {
                ticker: ticker.clone(),
                reason,
            })
        };
        // Already started today: report it; re-send only what the broker
        // was shown never to have received.
        if let Some(id) = journal::position_for(store.connection(), today, ticker)? {
            let mut group = journal::orders_of(store.connection(), id)?;
            let retry = group
                .first()
                .is_some_and(|o| o.purpose == Purpose::Entry && o.state == OrderState::Lost);
            if retry && !opts.dry_run {
                log::info!("{ticker}: the entry never reached IBKR; sending it again");
                store.transaction(|tx| {
                    for order in group.iter_mut() {
                        order.state = OrderState::Intent;
                        order.note = None;
                        journal::save_order(tx, order, now)?;
                    }
                    Ok(())
                })?;
                let sent = super::send(store, &broker, &mut group, now)?;
                note_outcome(&sent, &group, &mut placed, &mut refusals);
            }
            report.orders.extend(group.iter().map(OrderLine::of));
            continue;
        }
        if active.iter().any(|p| p.conid == candidate.conid) {
            skip(&mut report, "already held".into());
            continue;
        }
        if open_count >= opts.max_positions {
            skip(
                &mut report,
                format!("already at the maximum of {} positions", opts.max_positions),
            );
            continue;
        }
        let quote = quotes.iter().find(|q| q.conid == candidate.conid);
        if quote
            .and_then(|q| q.last)
            .is_some_and(|last| last.kind == LastKind::Halted)
        {
            skip(&mut report, "trading in the stock is halted".into());
            continue;
        }
        let bars = history::minute_bars(&broker.client, candidate.conid)?;
        let Some(range) = rules::opening_range(&bars, today, opts.or_minutes, now) else {
            let reason = match bars
                .iter()
                .find(|b| b.at.with_timezone(&EXCHANGE_TZ).date_naive() == today)
            {
                Some(first) => format!(
                    "the opening range is not complete until {}",
                    (first.at + chrono::Duration::minutes(i64::from(opts.or_minutes)))
                        .with_timezone(&EXCHANGE_TZ)
                        .format("%H:%M")
                ),
                None => "no trades yet today".to_owned(),
            };
            skip(&mut report, reason);
            continue;
        };
        let ticks = match market::increment_rules(&broker.client, candidate.conid)? {
            Some(rules) => TickTable::from_rules(&rules)
                .with_context(|| format!("{ticker}: IBKR's price steps are unusable"))?,
            None => TickTable::asx(),
        };
        let prices = rules::entry_prices(&range, &ticks, opts.limit_cap_pct)?;
        let last = quote
            .and_then(|q| q.last)
            .filter(|l| l.is_trade())
            .map_or(range.last_close, |l| l.price);
        let chase = (last / range.high - 1.0) * 100.0;
        if chase > opts.max_chase_pct + 1e-9 {
            skip(
                &mut report,
                format!(
                    "already {chase:.1}% above the range high {} (limit {}%)",
                    range.high, opts.max_chase_pct
                ),
            );
            continue;
        }
        let (quantity, value) =
            match rules::size_position(&prices, opts.position_value, opts.max_risk_pct) {
                Sizing::Buy { quantity, value } => (quantity, value),
                Sizing::TooRisky { risk_pct: risk } => {
                    skip(
                        &mut report,
                        format!(
                            "risk {risk:.1}% from entry {} to stop {} is above {}%",
                            prices.entry, prices.stop, opts.max_risk_pct
                        ),
                    );
                    continue;
                }
                Sizing::UnderMinimum { value } => {
                    skip(
                        &mut report,
                        format!(
                            "position value A${value:.2} is under the A${MIN_PARCEL:.0} \
                             minimum parcel"
                        ),
                    );
                    continue;
                }
            };
        match &mut funds {
            Ok(left) if value > *left => {
                skip(
                    &mut report,
                    format!("A${value:.2} exceeds the available funds A${left:.2}"),
                );
                continue;
            }
            Ok(left) => *left -= value,
            Err(why) => {
                skip(
                    &mut report,
                    format!("the available funds are unknown: {why}"),
                );
                continue;
            }
        }

        let (order_type, price, aux_price) = match prices.limit {
            Some(limit) => (OrderType::StopLimit, Some(limit), Some(prices.entry)),
            None => (OrderType::Stop, Some(prices.entry), None),
        };
        let entry_coid = coid(today, ticker, "entry");
        let mut group = vec![
            Order {
                coid: entry_coid.clone(),
                position_id: 0,
                purpose: Purpose::Entry,
                parent_coid: None,
                conid: candidate.conid,
                ticker: ticker.clone(),
                side: Side::Buy,
                order_type,
                tif: Tif::Day,
                quantity,
                price,
                aux_price,
                order_id: None,
                state: OrderState::Intent,
                filled: 0,
                avg_price: None,
                note: None,
            },
            Order {
                coid: coid(today, ticker, "stop"),
                position_id: 0,
                purpose: Purpose::Stop,
                parent_coid: Some(entry_coid),
                conid: candidate.conid,
                ticker: ticker.clone(),
                side: Side::Sell,
                order_type: OrderType::Stop,
                tif: Tif::Gtc,
                quantity,
                price: Some(prices.stop),
                aux_price: None,
                order_id: None,
                state: OrderState::Intent,
                filled: 0,
                avg_price: None,
                note: None,
            },
        ];
        open_count += 1;
        if opts.dry_run {
            for order in &mut group {
                order.note = Some("dry run: not sent".into());
            }
            report.orders.extend(group.iter().map(OrderLine::of));
            continue;
        }
        // The journal first: if skim dies after this, the next run finds
        // the intent and asks the broker before sending anything.
        store.transaction(|tx| {
            let id = journal::insert_position(
                tx,
                &NewPosition {
                    entry_date: today,
                    ticker: ticker.clone(),
                    conid: candidate.conid,
                    planned_qty: quantity,
                    planned_entry: prices.entry,
                    or_high: range.high,
                    or_low: range.low,
                    stop_price: prices.stop,
                },
                now,
            )?;
            for order in group.iter_mut() {
                order.position_id = id;
                journal::insert_order(tx, order, now)?;
            }
            Ok(())
        })?;
        let sent = super::send(store, &broker, &mut group, now)?;
        note_outcome(&sent, &group, &mut placed, &mut refusals);
        report.orders.extend(group.iter().map(OrderLine::of));
    }

    if !opts.dry_run {
        store.transaction(|tx| {
            if !placed.is_empty() {
                outbox::enqueue_in(tx, &Event::EntriesPlaced(placed.clone()).message(now), now)?;
            }
            for refusal in &refusals {
                outbox::enqueue_in(tx, &Event::Refused(refusal.clone()).message(now), now)?;
            }
            // An entry whose position never opened is closed as cancelled
            // on the next reconciliation; nothing to do here.
            Ok(())
        })?;
    }
    Ok(report)
}

fn note_outcome(
    sent: &Sent,
    group: &[Order],
    placed: &mut Vec<EntryOrder>,
    refusals: &mut Vec<String>,
) {
    let entry = &group[0];
    let stop = group.get(1).and_then(Order::stop_price).unwrap_or(0.0);
    match sent {
        Sent::Placed | Sent::Found => placed.push(EntryOrder {
            ticker: entry.ticker.clone(),
            quantity: entry.quantity,
            entry_stop: entry.stop_price().unwrap_or(0.0),
            stop_loss: stop,
        }),
        Sent::Refused(note) => refusals.push(format!("{}: {note}", entry.ticker)),
        Sent::Rejected(note) => {
            refusals.push(format!("{}: IBKR rejected the entry: {note}", entry.ticker))
        }
        Sent::Unclear(note) => refusals.push(format!(
            "{}: no clear answer placing the entry ({note}); the next run looks it up by cOID",
            entry.ticker
        )),
    }
}

/// One snapshot of every candidate (IBKR wants one before orders anyway).
fn quotes(broker: &Broker, candidates: &[Candidate]) -> Result<Vec<Quote>> {
    let conids: Vec<i64> = candidates.iter().map(|c| c.conid).collect();
    market::snapshot(
        &broker.client,
        &conids,
        &[fields::LAST, fields::AVAILABILITY],
    )
    .context("failed to read the candidates' quotes")
}

/// Available funds from the account summary, or why they are unknown.
/// Unknown funds place no entry: skim promises never to commit more than
/// the account has, and cannot keep that promise blind.
fn available_funds(broker: &Broker) -> Result<f64, String> {
    match portfolio::account_summary(&broker.client, &broker.account) {
        Ok(summary) => summary
            .available_funds
            .ok_or_else(|| "the account summary has no available funds".to_owned()),
        Err(err) => {
            log::warn!("could not read the account summary: {err:#}");
            Err(format!("the account summary could not be read ({err:#})"))
        }
    }
}
