//! Reconciliation: what the broker says (live orders, executions,
//! positions) against what the journal says, before any command acts.
//!
//! Facts from the broker are recorded (fills, entry prices, stops that
//! triggered, orders that expired); what cannot be explained is returned as
//! a problem, and a command with problems sends no orders (exit 4).

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::Result;
use chrono::{DateTime, NaiveDate, Utc};

use super::journal::{self, Order, OrderState, Position, PositionState, Purpose};
use super::notice::Event;
use super::{Broker, is_skim_coid};
use crate::ibkr::orders::{self, BrokerPosition, Execution, LiveOrder, Side};
use crate::outbox;
use crate::store::{Store, timestamp};

/// What the broker said, read once per command.
#[derive(Clone, Debug, Default)]
pub struct BrokerView {
    pub live: Vec<LiveOrder>,
    pub executions: Vec<Execution>,
    pub positions: Vec<BrokerPosition>,
}

impl BrokerView {
    /// Reads positions, live orders and the last week's executions.
    pub fn read(broker: &Broker) -> Result<BrokerView> {
        // IBKR wants /portfolio/accounts before any other /portfolio call.
        crate::ibkr::portfolio::portfolio_accounts(&broker.client)?;
        let positions = orders::positions(&broker.client, &broker.account)?;
        let live = orders::live_orders(&broker.client)?;
        let executions = orders::executions(&broker.client, 7)?;
        Ok(BrokerView {
            live,
            executions,
            positions,
        })
    }

    /// The live order with this id.
    pub fn live_order(&self, order_id: &str) -> Option<&LiveOrder> {
        self.live.iter().find(|l| l.order_id == order_id)
    }
}

/// The outcome: what happened since the last look, and what does not add up.
#[derive(Clone, Debug, Default)]
pub struct Reconciliation {
    pub events: Vec<Event>,
    pub problems: Vec<String>,
    /// Positions the broker holds that skim did not open.
    pub external: Vec<BrokerPosition>,
}

impl Reconciliation {
    pub fn agrees(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Finds a just-sent group at the broker by its `cOID` (the first order),
/// and its children through the parent. Returns whether the parent was found.
pub fn adopt(group: &mut [Order], live: &[LiveOrder]) -> bool {
    let Some((parent, children)) = group.split_first_mut() else {
        return false;
    };
    let Some(found) = live
        .iter()
        .find(|l| l.order_ref.as_deref() == Some(parent.coid.as_str()))
    else {
        return false;
    };
    apply_status(parent, found);
    let mut claimed: HashSet<String> = HashSet::from([found.order_id.clone()]);
    for child in children {
        if let Some(l) = find_child(child, found, live, &claimed) {
            claimed.insert(l.order_id.clone());
            apply_status(child, l);
        }
    }
    true
}

/// A bracket child at the broker: same contract and side, no `cOID` of its
/// own, tied to the parent where IBKR says so, and not already claimed.
fn find_child<'a>(
    child: &Order,
    parent: &LiveOrder,
    live: &'a [LiveOrder],
    claimed: &HashSet<String>,
) -> Option<&'a LiveOrder> {
    let parent_coid = child.parent_coid.as_deref();
    let candidates = live.iter().filter(|l| {
        l.conid == child.conid
            && l.side == Some(child.side)
            && l.order_ref.as_deref().is_none_or(|r| !is_skim_coid(r))
            && !claimed.contains(&l.order_id)
    });
    let mut loose = None;
    for l in candidates {
        match l.parent.as_deref() {
            Some(p) if Some(p) == parent_coid || p == parent.order_id => return Some(l),
            Some(_) => {}
            None => loose = loose.or(Some(l)),
        }
    }
    loose
}

fn apply_status(order: &mut Order, live: &LiveOrder) {
    order.order_id = Some(live.order_id.clone());
    order.state = if live.is_filled() {
        OrderState::Filled
    } else if live.is_cancelled() {
        OrderState::Cancelled
    } else {
        OrderState::Working
    };
}

/// Reconciles the journal with `view` in one transaction, queueing
/// notifications for what happened.
pub fn reconcile(
    store: &Store,
    view: &BrokerView,
    today: NaiveDate,
    now: DateTime<Utc>,
    notify: bool,
) -> Result<Reconciliation> {
    store.transaction(|tx| {
        let mut result = Reconciliation::default();
        let mut orders = journal::all_orders(tx)?;
        let mut positions: BTreeMap<i64, Position> = journal::all_positions(tx)?
            .into_iter()
            .map(|p| (p.id, p))
            .collect();
        let mut claimed: HashSet<String> =
            orders.iter().filter_map(|o| o.order_id.clone()).collect();

        find_unsettled(&mut orders, view, &mut claimed);
        refresh_states(&mut orders, &positions, view, today);
        apply_executions(tx, &mut orders, &mut positions, view, now, &mut result)?;
        settle_entries(&orders, &mut positions, today, now);
        compare_positions(&positions, view, &mut result);
        let known: HashSet<&str> = orders.iter().map(|o| o.coid.as_str()).collect();
        for l in &view.live {
            if let Some(r) = l.order_ref.as_deref()
                && is_skim_coid(r)
                && !known.contains(r)
                && l.is_working()
            {
                result.problems.push(format!(
                    "the broker has a working order {r} ({}) that is not in skim's journal",
                    l.ticker
                ));
            }
        }

        for order in &orders {
            journal::save_order(tx, order, now)?;
        }
        for position in positions.values() {
            journal::save_position(tx, position, now)?;
        }
        if notify {
            for event in &result.events {
                outbox::enqueue_in(tx, &event.message(now), now)?;
            }
        }
        Ok(result)
    })
}

/// Orders whose request may or may not have reached IBKR are looked up by
/// `cOID`: adopted when found, `lost` when the broker has never heard of
/// them (so they may be sent again).
fn find_unsettled(orders: &mut [Order], view: &BrokerView, claimed: &mut HashSet<String>) {
    let coids: Vec<String> = orders
        .iter()
        .filter(|o| o.order_id.is_none() && o.parent_coid.is_none())
        .filter(|o| matches!(o.state, OrderState::Intent | OrderState::Unknown))
        .map(|o| o.coid.clone())
        .collect();
    for coid in coids {
        let parent_live = view
            .live
            .iter()
            .find(|l| l.order_ref.as_deref() == Some(coid.as_str()));
        let executed = view
            .executions
            .iter()
            .any(|e| e.order_ref.as_deref() == Some(coid.as_str()));
        let parent_idx = orders
            .iter()
            .position(|o| o.coid == coid)
            .expect("listed above");
        match parent_live {
            Some(found) => {
                apply_status(&mut orders[parent_idx], found);
                claimed.insert(found.order_id.clone());
            }
            None if executed => orders[parent_idx].state = OrderState::Filled,
            None => {
                orders[parent_idx].state = OrderState::Lost;
                orders[parent_idx].note = Some("not found at the broker by its cOID".into());
            }
        }
        let parent_state = orders[parent_idx].state;
        for child in orders.iter_mut() {
            if child.parent_coid.as_deref() != Some(coid.as_str()) || child.order_id.is_some() {
                continue;
            }
            match parent_live.and_then(|p| find_child(child, p, &view.live, claimed)) {
                Some(l) => {
                    claimed.insert(l.order_id.clone());
                    apply_status(child, l);
                }
                // Without its parent, or when it cannot be told apart from
                // other orders, the child counts as lost; the protective-stop
                // check places a stop of its own if shares are held.
                None => {
                    child.state = OrderState::Lost;
                    if parent_state != OrderState::Lost {
                        child.note = Some("bracket child not identified at the broker".into());
                    }
                }
            }
        }
    }
}

/// Updates working orders from the live list. An order the list no longer
/// shows has ended: a day order after its day, or anything cancelled
/// (fills, if any, arrive through the executions).
fn refresh_states(
    orders: &mut [Order],
    positions: &BTreeMap<i64, Position>,
    view: &BrokerView,
    today: NaiveDate,
) {
    for order in orders.iter_mut() {
        let Some(id) = order.order_id.clone() else {
            continue;
        };
        if !matches!(order.state, OrderState::Working | OrderState::Unknown) {
            continue;
        }
        match view.live_order(&id) {
            Some(l) => apply_status(order, l),
            None => {
                let entry_date = positions.get(&order.position_id).map(|p| p.entry_date);
                let stale_day_order = order.tif == crate::ibkr::orders::Tif::Day
                    && entry_date.is_some_and(|d| d < today);
                if stale_day_order || order.tif == crate::ibkr::orders::Tif::Gtc {
                    order.state = OrderState::Cancelled;
                    order.note = Some("no longer in the broker's live orders".into());
                }
            }
        }
    }
}

fn apply_executions(
    tx: &rusqlite::Transaction<'_>,
    orders: &mut [Order],
    positions: &mut BTreeMap<i64, Position>,
    view: &BrokerView,
    now: DateTime<Utc>,
    result: &mut Reconciliation,
) -> Result<()> {
    let mut executions: Vec<&Execution> = view.executions.iter().collect();
    // Oldest first, so an entry is applied before the stop that closed it.
    executions.sort_by(|a, b| a.trade_time.cmp(&b.trade_time));
    let by_coid: HashMap<String, usize> = orders
        .iter()
        .enumerate()
        .map(|(i, o)| (o.coid.clone(), i))
        .collect();
    for exec in executions {
        if journal::has_fill(tx, &exec.execution_id)? {
            continue;
        }
        let index = match exec.order_ref.as_deref() {
            Some(r) if is_skim_coid(r) => match by_coid.get(r) {
                Some(&i) => Some(i),
                None => {
                    result.problems.push(format!(
                        "the broker executed {r}, which is not in skim's journal"
                    ));
                    continue;
                }
            },
            Some(_) => None,
            // No cOID: a bracket child or a replacement placed without one:
            // the stop of the position skim holds in that contract.
            None if exec.side == Side::Sell => stop_for(orders, positions, exec.conid),
            None => None,
        };
        let Some(i) = index else {
            continue; // not skim's: an external trade
        };
        let quantity = exec.size.round() as u64;
        journal::insert_fill(
            tx,
            &exec.execution_id,
            &orders[i].coid,
            exec.side,
            quantity,
            exec.price,
            &exec.trade_time,
            now,
        )?;
        let order = &mut orders[i];
        let before = order.filled as f64 * order.avg_price.unwrap_or(0.0);
        order.filled += quantity;
        order.avg_price = Some((before + quantity as f64 * exec.price) / order.filled as f64);
        if order.filled >= order.quantity {
            order.state = OrderState::Filled;
        }
        let Some(position) = positions.get_mut(&order.position_id) else {
            continue;
        };
        apply_fill(position, order.purpose, exec, quantity, now, result);
    }
    Ok(())
}

/// The stop order (working, or the last one) of the active position in `conid`.
fn stop_for(orders: &[Order], positions: &BTreeMap<i64, Position>, conid: i64) -> Option<usize> {
    let position = positions.values().find(|p| {
        p.conid == conid
            && matches!(
                p.state,
                PositionState::Open | PositionState::Half | PositionState::Entering
            )
    })?;
    let stops: Vec<usize> = orders
        .iter()
        .enumerate()
        .filter(|(_, o)| o.position_id == position.id && o.purpose == Purpose::Stop)
        .filter(|(_, o)| o.order_id.is_some() || o.state == OrderState::Lost)
        .map(|(i, _)| i)
        .collect();
    stops
        .iter()
        .copied()
        .find(|&i| orders[i].state == OrderState::Working)
        .or_else(|| stops.last().copied())
}

fn apply_fill(
    position: &mut Position,
    purpose: Purpose,
    exec: &Execution,
    quantity: u64,
    now: DateTime<Utc>,
    result: &mut Reconciliation,
) {
    match exec.side {
        Side::Buy => {
            let cost = position.entry_price.unwrap_or(0.0) * position.bought as f64;
            position.bought += quantity;
            position.quantity += quantity;
            position.entry_price =
                Some((cost + exec.price * quantity as f64) / position.bought as f64);
            if position.state == PositionState::Entering {
                position.state = PositionState::Open;
                position.filled_at = Some(timestamp(now));
            }
            result.events.push(Event::EntryFilled {
                ticker: position.ticker.clone(),
                quantity,
                price: exec.price,
                stop: position.stop_price,
            });
        }
        Side::Sell => {
            if quantity > position.quantity {
                result.problems.push(format!(
                    "{}: the broker sold {quantity} shares but skim held {}",
                    position.ticker, position.quantity
                ));
            }
            let sold = quantity.min(position.quantity);
            let entry = position.entry_price.unwrap_or(exec.price);
            let pnl = (exec.price - entry) * sold as f64;
            position.quantity -= sold;
            position.realized_pnl += pnl;
            let remaining = position.quantity;
            if remaining == 0 {
                position.state = PositionState::Closed;
                position.closed_at = Some(timestamp(now));
                position.exit_reason = Some(
                    match purpose {
                        Purpose::Stop => "stop",
                        Purpose::Exit => "trailing exit",
                        Purpose::Flatten => "flattened",
                        Purpose::Half => "half exit",
                        Purpose::Entry => "entry",
                    }
                    .to_owned(),
                );
            }
            let ticker = position.ticker.clone();
            result.events.push(match purpose {
                Purpose::Stop => Event::StopHit {
                    ticker,
                    quantity: sold,
                    price: exec.price,
                    pnl: position.realized_pnl,
                },
                Purpose::Half => Event::HalfExit {
                    ticker,
                    quantity: sold,
                    price: exec.price,
                    remaining,
                    new_stop: position.stop_price,
                },
                Purpose::Exit | Purpose::Entry => Event::TrailExit {
                    ticker,
                    quantity: sold,
                    price: exec.price,
                    sma: position.exit_sma.unwrap_or(0.0),
                    pnl: position.realized_pnl,
                },
                Purpose::Flatten => Event::Flattened {
                    ticker,
                    quantity: sold,
                    price: exec.price,
                    pnl: position.realized_pnl,
                },
            });
        }
    }
}

/// An entry that ended without a fill leaves a cancelled position.
fn settle_entries(
    orders: &[Order],
    positions: &mut BTreeMap<i64, Position>,
    today: NaiveDate,
    now: DateTime<Utc>,
) {
    for position in positions.values_mut() {
        if position.state != PositionState::Entering || position.bought > 0 {
            continue;
        }
        let entry = orders
            .iter()
            .find(|o| o.position_id == position.id && o.purpose == Purpose::Entry);
        // A lost entry may be sent again the same day; after that it is over.
        let lost_for_good = |o: &Order| o.state == OrderState::Lost && position.entry_date < today;
        if let Some(entry) = entry
            && (matches!(
                entry.state,
                OrderState::Cancelled | OrderState::Rejected | OrderState::Refused
            ) || lost_for_good(entry))
        {
            position.state = PositionState::Cancelled;
            position.closed_at = Some(timestamp(now));
            position.exit_reason = Some(format!("entry {}", entry.state.as_str()));
        }
    }
}

fn compare_positions(
    positions: &BTreeMap<i64, Position>,
    view: &BrokerView,
    result: &mut Reconciliation,
) {
    let mut expected: BTreeMap<i64, (String, u64)> = BTreeMap::new();
    for p in positions.values().filter(|p| p.state.is_active()) {
        let entry = expected.entry(p.conid).or_insert((p.ticker.clone(), 0));
        entry.1 += p.quantity;
    }
    let mut held: BTreeMap<i64, f64> = BTreeMap::new();
    for b in &view.positions {
        *held.entry(b.conid).or_default() += b.quantity;
    }
    for (conid, (ticker, quantity)) in &expected {
        let broker = held.get(conid).copied().unwrap_or(0.0);
        if (broker - *quantity as f64).abs() > 1e-6 {
            result.problems.push(format!(
                "{ticker}: skim's records hold {quantity} shares, the broker {broker}"
            ));
        }
    }
    for b in &view.positions {
        if b.quantity.abs() > 1e-9 && !expected.contains_key(&b.conid) {
            result.external.push(b.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ibkr::orders::{OrderType, Tif};
    use crate::trade::coid;
    use crate::trade::journal::NewPosition;
    use chrono::TimeZone;

    const CONID: i64 = 4036812;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 23, 30, 0).unwrap()
    }

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, 2).unwrap()
    }

    /// A store holding one position with its journaled bracket.
    fn journaled() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("skim.db")).unwrap();
        store
            .transaction(|tx| {
                let id = journal::insert_position(
                    tx,
                    &NewPosition {
                        entry_date: today(),
                        ticker: "BHP".into(),
                        conid: CONID,
                        planned_qty: 100,
                        planned_entry: 45.21,
                        or_high: 45.20,
                        or_low: 44.50,
                        stop_price: 44.40,
                    },
                    now(),
                )?;
                let entry = coid(today(), "BHP", "entry");
                for (key, purpose, parent, side, price, tif) in [
                    (
                        entry.clone(),
                        Purpose::Entry,
                        None,
                        Side::Buy,
                        45.21,
                        Tif::Day,
                    ),
                    (
                        coid(today(), "BHP", "stop"),
                        Purpose::Stop,
                        Some(entry.clone()),
                        Side::Sell,
                        44.40,
                        Tif::Gtc,
                    ),
                ] {
                    journal::insert_order(
                        tx,
                        &Order {
                            coid: key,
                            position_id: id,
                            purpose,
                            parent_coid: parent,
                            conid: CONID,
                            ticker: "BHP".into(),
                            side,
                            order_type: OrderType::Stop,
                            tif,
                            quantity: 100,
                            price: Some(price),
                            aux_price: None,
                            order_id: None,
                            state: OrderState::Intent,
                            filled: 0,
                            avg_price: None,
                            note: None,
                        },
                        now(),
                    )?;
                }
                Ok(())
            })
            .unwrap();
        (dir, store)
    }

    fn live(id: &str, side: Side, status: &str, order_ref: Option<&str>) -> LiveOrder {
        LiveOrder {
            order_id: id.into(),
            conid: CONID,
            ticker: "BHP".into(),
            side: Some(side),
            order_type: Some(OrderType::Stop),
            status: status.into(),
            filled: 0.0,
            remaining: 100.0,
            total: 100.0,
            avg_price: None,
            order_ref: order_ref.map(str::to_owned),
            parent: None,
            price: None,
            aux_price: None,
        }
    }

    fn exec(
        id: &str,
        side: Side,
        size: f64,
        price: f64,
        order_ref: Option<&str>,
        time: &str,
    ) -> Execution {
        Execution {
            execution_id: id.into(),
            conid: CONID,
            side,
            size,
            price,
            order_ref: order_ref.map(str::to_owned),
            trade_time: time.into(),
        }
    }

    fn held(quantity: f64) -> BrokerPosition {
        BrokerPosition {
            conid: CONID,
            description: "BHP".into(),
            quantity,
            avg_cost: Some(45.25),
            market_price: Some(45.5),
        }
    }

    fn entry_ref() -> String {
        coid(today(), "BHP", "entry")
    }

    #[test]
    fn an_unclear_bracket_is_adopted_by_its_coid() {
        let (_dir, store) = journaled();
        let view = BrokerView {
            live: vec![
                live("11", Side::Buy, "PreSubmitted", Some(&entry_ref())),
                live("12", Side::Sell, "PreSubmitted", None),
            ],
            ..BrokerView::default()
        };
        let rec = reconcile(&store, &view, today(), now(), false).unwrap();
        assert!(rec.agrees(), "{:?}", rec.problems);
        let orders = journal::all_orders(store.connection()).unwrap();
        assert_eq!(orders[0].order_id.as_deref(), Some("11"));
        assert_eq!(orders[1].order_id.as_deref(), Some("12"));
        assert!(orders.iter().all(|o| o.state == OrderState::Working));
    }

    #[test]
    fn an_order_the_broker_never_saw_is_lost_and_its_position_stays_entering() {
        let (_dir, store) = journaled();
        reconcile(&store, &BrokerView::default(), today(), now(), false).unwrap();
        let orders = journal::all_orders(store.connection()).unwrap();
        assert!(orders.iter().all(|o| o.state == OrderState::Lost));
        let positions = journal::active_positions(store.connection()).unwrap();
        assert_eq!(positions[0].state, PositionState::Entering);
    }

    #[test]
    fn fills_are_recorded_once_and_a_stop_closes_the_position() {
        let (_dir, store) = journaled();
        let mut view = BrokerView {
            live: vec![
                live("11", Side::Buy, "Filled", Some(&entry_ref())),
                live("12", Side::Sell, "Submitted", None),
            ],
            executions: vec![exec(
                "e1",
                Side::Buy,
                100.0,
                45.25,
                Some(&entry_ref()),
                "20260301-23:20:00",
            )],
            positions: vec![held(100.0)],
        };
        let rec = reconcile(&store, &view, today(), now(), false).unwrap();
        assert!(rec.agrees(), "{:?}", rec.problems);
        assert!(matches!(
            rec.events[..],
            [Event::EntryFilled { quantity: 100, .. }]
        ));
        let p = &journal::active_positions(store.connection()).unwrap()[0];
        assert_eq!(
            (p.state, p.quantity, p.entry_price),
            (PositionState::Open, 100, Some(45.25))
        );

        // The same list again changes nothing.
        let again = reconcile(&store, &view, today(), now(), false).unwrap();
        assert!(again.events.is_empty() && again.agrees());

        // The stop (a bracket child: no order_ref) fills.
        view.live[1].status = "Filled".into();
        view.executions.push(exec(
            "e2",
            Side::Sell,
            100.0,
            44.40,
            None,
            "20260302-01:00:00",
        ));
        view.positions.clear();
        let rec = reconcile(&store, &view, today(), now(), false).unwrap();
        assert!(rec.agrees(), "{:?}", rec.problems);
        match &rec.events[..] {
            [Event::StopHit { quantity, pnl, .. }] => {
                assert_eq!(*quantity, 100);
                assert!((pnl - (-85.0)).abs() < 1e-6, "{pnl}");
            }
            other => panic!("expected a stop hit, got {other:?}"),
        }
        let all = journal::all_positions(store.connection()).unwrap();
        assert_eq!(all[0].state, PositionState::Closed);
        assert_eq!(all[0].exit_reason.as_deref(), Some("stop"));
    }

    #[test]
    fn disagreements_are_problems_and_strangers_are_external() {
        let (_dir, store) = journaled();
        let view = BrokerView {
            live: vec![
                live("11", Side::Buy, "Filled", Some(&entry_ref())),
                live("12", Side::Sell, "Submitted", None),
                live(
                    "99",
                    Side::Buy,
                    "Submitted",
                    Some("skim-20260302-XYZ-entry"),
                ),
            ],
            executions: vec![exec(
                "e1",
                Side::Buy,
                100.0,
                45.25,
                Some(&entry_ref()),
                "20260301-23:20:00",
            )],
            positions: vec![
                held(60.0),
                BrokerPosition {
                    conid: 8644,
                    description: "CBA".into(),
                    quantity: 10.0,
                    avg_cost: Some(150.0),
                    market_price: None,
                },
            ],
        };
        let rec = reconcile(&store, &view, today(), now(), false).unwrap();
        assert_eq!(rec.problems.len(), 2, "{:?}", rec.problems);
        assert!(rec.problems[0].contains("BHP: skim's records hold 100 shares, the broker 60"));
        assert!(rec.problems[1].contains("skim-20260302-XYZ-entry"));
        assert_eq!(rec.external.len(), 1);
        assert_eq!(rec.external[0].conid, 8644);
    }

    #[test]
    fn an_unfilled_day_entry_from_an_earlier_day_is_cancelled() {
        let (_dir, store) = journaled();
        let placed = BrokerView {
            live: vec![
                live("11", Side::Buy, "Submitted", Some(&entry_ref())),
                live("12", Side::Sell, "PreSubmitted", None),
            ],
            ..BrokerView::default()
        };
        reconcile(&store, &placed, today(), now(), false).unwrap();
        let tomorrow = today().succ_opt().unwrap();
        reconcile(&store, &BrokerView::default(), tomorrow, now(), false).unwrap();
        let all = journal::all_positions(store.connection()).unwrap();
        assert_eq!(all[0].state, PositionState::Cancelled);
    }
}
