//! The broker's books: orders, executions, positions and cash, and the fill
//! engine that works orders against the scenario's price path as the clock
//! moves.
//!
//! Fills are deterministic and whole: an order fills its full quantity at
//! one price or not at all. When the clock moves from `t0` to `t1`, every
//! 1-minute bar whose minute ends in `(t0, t1]` is played in time order,
//! and an order is worked by the bars whose minute ends after it became
//! working. Within a bar, the rules are:
//!
//! - MKT fills at the bar's open;
//! - LMT: a buy fills when the low reaches the limit, at the better of the
//!   limit and the open; a sell when the high does;
//! - STP: a buy triggers when the high reaches the stop and fills at the
//!   higher of the stop and the open; a sell when the low does, at the
//!   lower of the two;
//! - STOP_LIMIT triggers as STP, then fills at the trigger price only if
//!   that is within the limit; otherwise it rests as a limit order.
//!
//! Orders placed or modified during continuous trading are also worked at
//! once against the last price, so a marketable order fills on the spot.
//! Bracket children wait (PreSubmitted) until their parent fills and are
//! worked from the next bar on, since a bar does not say in which order
//! its prices came. DAY orders expire at [`scenario::DAY_END`] of the
//! trading day; GTC orders stay. No commissions are charged.
//!
//! Not modelled: partial fills, queue position, the closing auction as a
//! separate match, and orders in instruments without a price path.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use chrono::{DateTime, Duration, NaiveTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::scenario::{self, Scenario};

/// Prices closer than this are equal; every price sits on a step of at
/// least A$0.001, so this only absorbs binary noise.
const EPSILON: f64 = 1e-9;

/// Buy or sell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Side {
    /// `BUY`
    #[serde(rename = "BUY")]
    Buy,
    /// `SELL`
    #[serde(rename = "SELL")]
    Sell,
}

impl Side {
    /// IBKR's request spelling, `BUY` or `SELL`.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "BUY",
            Side::Sell => "SELL",
        }
    }

    /// One letter, as trades and order status show it: `B` or `S`.
    pub fn letter(self) -> &'static str {
        match self {
            Side::Buy => "B",
            Side::Sell => "S",
        }
    }
}

/// The order types the simulator works.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum OrderType {
    /// `MKT`
    #[serde(rename = "MKT")]
    Market,
    /// `LMT`: `price` is the limit.
    #[serde(rename = "LMT")]
    Limit,
    /// `STP`: `price` is the stop.
    #[serde(rename = "STP")]
    Stop,
    /// `STOP_LIMIT`: `aux_price` is the stop, `price` the limit.
    #[serde(rename = "STOP_LIMIT")]
    StopLimit,
}

impl OrderType {
    /// Parses the request value; `None` for types the simulator lacks.
    pub fn parse(text: &str) -> Option<OrderType> {
        match text {
            "MKT" => Some(OrderType::Market),
            "LMT" => Some(OrderType::Limit),
            "STP" => Some(OrderType::Stop),
            "STOP_LIMIT" => Some(OrderType::StopLimit),
            _ => None,
        }
    }

    /// The request spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderType::Market => "MKT",
            OrderType::Limit => "LMT",
            OrderType::Stop => "STP",
            OrderType::StopLimit => "STOP_LIMIT",
        }
    }

    /// The live-orders `orderType` spelling, e.g. `Stop Limit`.
    pub fn title(self) -> &'static str {
        match self {
            OrderType::Market => "Market",
            OrderType::Limit => "Limit",
            OrderType::Stop => "Stop",
            OrderType::StopLimit => "Stop Limit",
        }
    }
}

/// Time in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Tif {
    /// Expires at the end of the trading day.
    #[serde(rename = "DAY")]
    Day,
    /// Good till cancelled.
    #[serde(rename = "GTC")]
    Gtc,
}

impl Tif {
    /// The request spelling, `DAY` or `GTC`.
    pub fn as_str(self) -> &'static str {
        match self {
            Tif::Day => "DAY",
            Tif::Gtc => "GTC",
        }
    }
}

/// Where an order stands, with IBKR's status strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum OrderStatus {
    /// A bracket child waiting for its parent to fill.
    PreSubmitted,
    /// Working at the exchange.
    Submitted,
    /// Filled in full.
    Filled,
    /// Cancelled by the client, by its parent's cancellation, by an OCA
    /// sibling's fill, or expired at the day's end.
    Cancelled,
}

impl OrderStatus {
    /// IBKR's spelling, e.g. `PreSubmitted`.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::PreSubmitted => "PreSubmitted",
            OrderStatus::Submitted => "Submitted",
            OrderStatus::Filled => "Filled",
            OrderStatus::Cancelled => "Cancelled",
        }
    }

    /// Whether the order can still fill, now or after its parent.
    pub fn is_live(self) -> bool {
        matches!(self, OrderStatus::PreSubmitted | OrderStatus::Submitted)
    }
}

/// One order at the broker.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Order {
    /// IBKR's order id.
    pub order_id: u64,
    /// The account it was placed in.
    pub account: String,
    /// The client order id (`cOID`); bracket children have none.
    pub coid: Option<String>,
    /// The parent's order id, for a bracket child.
    pub parent_id: Option<u64>,
    /// The ASX contract.
    pub conid: u64,
    /// Its ASX code.
    pub symbol: String,
    /// Buy or sell.
    pub side: Side,
    /// MKT, LMT, STP or STOP_LIMIT.
    pub order_type: OrderType,
    /// The request's `price`: the limit of LMT and STOP_LIMIT, the stop of
    /// STP.
    pub price: Option<f64>,
    /// The request's `auxPrice`: the stop of STOP_LIMIT.
    pub aux_price: Option<f64>,
    /// Whole shares.
    pub quantity: u64,
    /// DAY or GTC.
    pub tif: Tif,
    /// `isSingleGroup`: a fill cancels the live siblings that share the
    /// flag and the parent (one-cancels-all).
    pub oca: bool,
    /// Where it stands.
    pub status: OrderStatus,
    /// Shares filled: 0 or `quantity`.
    pub filled: u64,
    /// The fill price once filled.
    pub avg_price: Option<f64>,
    /// Whether a STOP_LIMIT's stop has been reached.
    pub triggered: bool,
    /// The simulated time the order was accepted.
    pub placed_at: DateTime<Utc>,
    /// The simulated time it became working: placement, or its parent's
    /// fill for a bracket child.
    pub working_since: Option<DateTime<Utc>>,
    /// The simulated time of its last change (placement, modification,
    /// fill, cancellation).
    pub updated_at: DateTime<Utc>,
}

impl Order {
    /// The stop price of STP and STOP_LIMIT orders.
    pub fn stop_price(&self) -> Option<f64> {
        match self.order_type {
            OrderType::Stop => self.price,
            OrderType::StopLimit => self.aux_price,
            _ => None,
        }
    }

    /// The limit price of LMT and STOP_LIMIT orders.
    pub fn limit_price(&self) -> Option<f64> {
        match self.order_type {
            OrderType::Limit | OrderType::StopLimit => self.price,
            _ => None,
        }
    }

    /// Shares still to fill.
    pub fn remaining(&self) -> u64 {
        self.quantity - self.filled
    }
}

/// One fill.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Execution {
    /// IBKR-style execution id, unique in the simulator.
    pub execution_id: String,
    /// The order that filled.
    pub order_id: u64,
    /// That order's `cOID`, if it had one.
    pub coid: Option<String>,
    /// The account.
    pub account: String,
    /// The ASX contract.
    pub conid: u64,
    /// Its ASX code.
    pub symbol: String,
    /// Buy or sell.
    pub side: Side,
    /// Shares.
    pub quantity: u64,
    /// A$ per share.
    pub price: f64,
    /// When it traded (simulated time).
    pub time: DateTime<Utc>,
}

/// The holding in one contract.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Position {
    /// The ASX contract.
    pub conid: u64,
    /// Its ASX code.
    pub symbol: String,
    /// Shares held; negative for a short.
    pub quantity: i64,
    /// Average cost per share of the open quantity; 0 when flat.
    pub avg_cost: f64,
    /// Realized profit and loss from closing trades, A$.
    pub realized_pnl: f64,
}

/// A question chain in progress: what is placed or changed once every
/// question is confirmed.
#[derive(Clone, Debug)]
pub(crate) struct Pending {
    /// The id the client must reply to now.
    pub reply_id: String,
    /// Message ids still to ask after the current one.
    pub questions: Vec<String>,
    /// What confirmation does.
    pub action: PendingAction,
}

/// The order request a question chain holds back.
#[derive(Clone, Debug)]
pub(crate) enum PendingAction {
    /// New orders, parents before their children.
    Place(Vec<Order>),
    /// A modification: the order's new state.
    Modify(Order),
}

/// Everything the broker holds for the account.
pub(crate) struct Book {
    pub orders: Vec<Order>,
    pub executions: Vec<Execution>,
    pub positions: BTreeMap<u64, Position>,
    pub cash: f64,
    /// The question chain awaiting a reply, if any.
    pub pending: Option<Pending>,
    /// Reply ids that can no longer be answered (HTTP 503).
    pub stale_replies: HashSet<String>,
    /// The `/portfolio/{acct}/positions` answer as last computed, served
    /// until invalidated.
    pub positions_cache: Option<Vec<Value>>,
    next_order_id: u64,
    next_execution: u64,
}

/// What a bar (or a single trade, with all four prices equal) offers.
#[derive(Clone, Copy, Debug)]
struct Print {
    o: f64,
    h: f64,
    l: f64,
}

impl Book {
    /// Empty books with `cash` A$.
    pub fn new(cash: f64) -> Book {
        Book {
            orders: Vec::new(),
            executions: Vec::new(),
            positions: BTreeMap::new(),
            cash,
            pending: None,
            stale_replies: HashSet::new(),
            positions_cache: None,
            next_order_id: 1_000_000_001,
            next_execution: 1,
        }
    }

    /// A fresh order id.
    pub fn next_order_id(&mut self) -> u64 {
        let id = self.next_order_id;
        self.next_order_id += 1;
        id
    }

    /// The order with this id.
    pub fn order_mut(&mut self, order_id: u64) -> Option<&mut Order> {
        self.orders.iter_mut().find(|o| o.order_id == order_id)
    }

    /// Cancels a live order and its live children at `now`; `false` when
    /// the order is not live.
    pub fn cancel(&mut self, order_id: u64, now: DateTime<Utc>) -> bool {
        let Some(order) = self.order_mut(order_id) else {
            return false;
        };
        if !order.status.is_live() {
            return false;
        }
        order.status = OrderStatus::Cancelled;
        order.updated_at = now;
        let children: Vec<u64> = self
            .orders
            .iter()
            .filter(|o| o.parent_id == Some(order_id) && o.status.is_live())
            .map(|o| o.order_id)
            .collect();
        for child in children {
            self.cancel(child, now);
        }
        true
    }

    /// Expires the DAY orders placed before `end`, the end of a trading
    /// day.
    fn expire_day(&mut self, end: DateTime<Utc>) {
        for order in &mut self.orders {
            if order.tif == Tif::Day && order.status.is_live() && order.placed_at < end {
                order.status = OrderStatus::Cancelled;
                order.updated_at = end;
            }
        }
    }

    /// Works the orders chosen by `eligible` (read before any of them
    /// fills, so a child activated here waits for the next print) against
    /// one print of `conid`. Trades are stamped `traded_at`; children
    /// become working at `done_at`.
    fn work(
        &mut self,
        conid: u64,
        print: Print,
        traded_at: DateTime<Utc>,
        done_at: DateTime<Utc>,
        eligible: impl Fn(&Order) -> bool,
    ) {
        let chosen: Vec<usize> = (0..self.orders.len())
            .filter(|&i| {
                let o = &self.orders[i];
                o.conid == conid && o.status == OrderStatus::Submitted && eligible(o)
            })
            .collect();
        for i in chosen {
            if self.orders[i].status != OrderStatus::Submitted {
                continue; // cancelled by an OCA sibling just now
            }
            if let Some(price) = fill_price(&mut self.orders[i], print) {
                self.fill(i, price, traded_at, done_at);
            }
        }
    }

    /// Fills order `i` in full at `price`: records the execution, moves
    /// the position and cash, releases the children and applies OCA.
    fn fill(&mut self, i: usize, price: f64, traded_at: DateTime<Utc>, done_at: DateTime<Utc>) {
        let quantity = self.orders[i].remaining();
        let order = &mut self.orders[i];
        order.filled += quantity;
        order.avg_price = Some(price);
        order.status = OrderStatus::Filled;
        order.updated_at = traded_at;
        let order = order.clone();

        let n = self.next_execution;
        self.next_execution += 1;
        self.executions.push(Execution {
            execution_id: format!("0000{:04x}.{:08x}.01.01", order.conid % 0xffff, n),
            order_id: order.order_id,
            coid: order.coid.clone(),
            account: order.account.clone(),
            conid: order.conid,
            symbol: order.symbol.clone(),
            side: order.side,
            quantity,
            price,
            time: traded_at,
        });
        let signed = match order.side {
            Side::Buy => quantity as i64,
            Side::Sell => -(quantity as i64),
        };
        self.cash -= signed as f64 * price;
        self.book_position(order.conid, &order.symbol, signed, price);

        for child in &mut self.orders {
            if child.parent_id == Some(order.order_id) && child.status == OrderStatus::PreSubmitted
            {
                child.status = OrderStatus::Submitted;
                child.working_since = Some(done_at);
                child.updated_at = traded_at;
            }
        }
        if order.oca && order.parent_id.is_some() {
            let siblings: Vec<u64> = self
                .orders
                .iter()
                .filter(|o| {
                    o.parent_id == order.parent_id
                        && o.oca
                        && o.order_id != order.order_id
                        && o.status.is_live()
                })
                .map(|o| o.order_id)
                .collect();
            for sibling in siblings {
                self.cancel(sibling, traded_at);
            }
        }
    }

    /// Adds `signed` shares at `price` to the position in `conid`,
    /// realizing P&L on the part that closes it. A sell beyond the holding
    /// opens a short, as a margin account allows.
    fn book_position(&mut self, conid: u64, symbol: &str, signed: i64, price: f64) {
        let position = self.positions.entry(conid).or_insert_with(|| Position {
            conid,
            symbol: symbol.to_string(),
            quantity: 0,
            avg_cost: 0.0,
            realized_pnl: 0.0,
        });
        let held = position.quantity;
        if held == 0 || held.signum() == signed.signum() {
            let total = held.abs() + signed.abs();
            position.avg_cost = (position.avg_cost * held.abs() as f64
                + price * signed.abs() as f64)
                / total as f64;
            position.quantity += signed;
            return;
        }
        let closing = held.abs().min(signed.abs());
        position.realized_pnl +=
            closing as f64 * (price - position.avg_cost) * held.signum() as f64;
        position.quantity += signed;
        if position.quantity == 0 {
            position.avg_cost = 0.0;
        } else if position.quantity.signum() != held.signum() {
            position.avg_cost = price;
        }
    }

    /// Sets a position directly, as one opened outside the client; cash is
    /// left alone, as for shares transferred in.
    pub fn set_position(&mut self, conid: u64, symbol: &str, quantity: i64, avg_cost: f64) {
        let position = self.positions.entry(conid).or_insert_with(|| Position {
            conid,
            symbol: symbol.to_string(),
            quantity: 0,
            avg_cost: 0.0,
            realized_pnl: 0.0,
        });
        position.quantity = quantity;
        position.avg_cost = if quantity == 0 { 0.0 } else { avg_cost };
    }
}

/// The price `order` fills at against `print`, if it fills; records a
/// STOP_LIMIT's trigger on the way.
fn fill_price(order: &mut Order, print: Print) -> Option<f64> {
    let Print { o, h, l } = print;
    let reaches_up = |level: f64| h >= level - EPSILON;
    let reaches_down = |level: f64| l <= level + EPSILON;
    match (order.order_type, order.side) {
        (OrderType::Market, _) => Some(o),
        (OrderType::Limit, Side::Buy) => {
            let limit = order.price?;
            reaches_down(limit).then(|| limit.min(o))
        }
        (OrderType::Limit, Side::Sell) => {
            let limit = order.price?;
            reaches_up(limit).then(|| limit.max(o))
        }
        (OrderType::Stop, Side::Buy) => {
            let stop = order.price?;
            reaches_up(stop).then(|| stop.max(o))
        }
        (OrderType::Stop, Side::Sell) => {
            let stop = order.price?;
            reaches_down(stop).then(|| stop.min(o))
        }
        (OrderType::StopLimit, side) => {
            let (stop, limit) = (order.aux_price?, order.price?);
            if order.triggered {
                return match side {
                    Side::Buy => reaches_down(limit).then(|| limit.min(o)),
                    Side::Sell => reaches_up(limit).then(|| limit.max(o)),
                };
            }
            let trigger = match side {
                Side::Buy => reaches_up(stop).then(|| stop.max(o)),
                Side::Sell => reaches_down(stop).then(|| stop.min(o)),
            }?;
            order.triggered = true;
            let within = match side {
                Side::Buy => trigger <= limit + EPSILON,
                Side::Sell => trigger >= limit - EPSILON,
            };
            within.then_some(trigger)
        }
    }
}

/// The last price of `conid` when it is in continuous trading at `now`
/// (its trading day, 10:00 to the day's end, traded today); `None` outside.
pub(crate) fn continuous_last(scenario: &Scenario, conid: u64, now: DateTime<Utc>) -> Option<f64> {
    let inst = scenario.by_conid(conid)?;
    let local = Scenario::local(now);
    let (day, bars) = scenario.bars_public(inst, local);
    let open = NaiveTime::from_hms_opt(10, 0, 0)?;
    let trading = day == local.date() && local.time() >= open && local.time() < scenario::DAY_END;
    trading.then(|| bars.last().map(|b| b.c)).flatten()
}

/// Works the orders `ids` at once against the last price when their
/// contract is in continuous trading at `now`.
pub(crate) fn work_now(scenario: &Scenario, book: &mut Book, ids: &[u64], now: DateTime<Utc>) {
    let conids: BTreeSet<u64> = book
        .orders
        .iter()
        .filter(|o| ids.contains(&o.order_id))
        .map(|o| o.conid)
        .collect();
    for conid in conids {
        if let Some(last) = continuous_last(scenario, conid, now) {
            let print = Print {
                o: last,
                h: last,
                l: last,
            };
            book.work(conid, print, now, now, |o| ids.contains(&o.order_id));
        }
    }
}

/// Plays the market from `from` to `to`: every bar whose minute ends in
/// `(from, to]` works the orders that were working before it ended, and
/// each trading day's end in that span expires DAY orders. Moving the
/// clock backwards works nothing.
pub(crate) fn advance(
    scenario: &Scenario,
    book: &mut Book,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) {
    if to <= from {
        return;
    }
    let minute = Duration::minutes(1);
    for day in scenario.trading_days() {
        let day_end = Scenario::instant_on(day, scenario::DAY_END);
        if day_end <= from {
            continue;
        }
        let conids: BTreeSet<u64> = book
            .orders
            .iter()
            .filter(|o| o.status.is_live())
            .map(|o| o.conid)
            .collect();
        let mut minutes: BTreeMap<NaiveTime, Vec<(u64, Print)>> = BTreeMap::new();
        for conid in conids {
            let Some(inst) = scenario.by_conid(conid) else {
                continue;
            };
            for bar in scenario.bars_on(inst, day) {
                let print = Print {
                    o: bar.o,
                    h: bar.h,
                    l: bar.l,
                };
                minutes.entry(bar.time).or_default().push((conid, print));
            }
        }
        for (time, prints) in minutes {
            let started = Scenario::instant_on(day, time);
            let ended = started + minute;
            if ended <= from {
                continue;
            }
            if ended > to {
                return;
            }
            for (conid, print) in prints {
                book.work(conid, print, started, ended, |o| {
                    o.working_since.is_some_and(|since| since < ended)
                });
            }
        }
        if day_end > to {
            return;
        }
        book.expire_day(day_end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(side: Side, order_type: OrderType, price: Option<f64>, aux: Option<f64>) -> Order {
        let at = DateTime::parse_from_rfc3339("2026-03-02T10:12:00+11:00")
            .unwrap()
            .to_utc();
        Order {
            order_id: 1,
            account: "DU1".into(),
            coid: None,
            parent_id: None,
            conid: 1,
            symbol: "X".into(),
            side,
            order_type,
            price,
            aux_price: aux,
            quantity: 10,
            tif: Tif::Day,
            oca: false,
            status: OrderStatus::Submitted,
            filled: 0,
            avg_price: None,
            triggered: false,
            placed_at: at,
            working_since: Some(at),
            updated_at: at,
        }
    }

    fn bar(o: f64, h: f64, l: f64) -> Print {
        Print { o, h, l }
    }

    #[test]
    fn stops_fill_at_the_stop_or_a_worse_open() {
        let mut buy = order(Side::Buy, OrderType::Stop, Some(1.10), None);
        assert_eq!(fill_price(&mut buy, bar(1.05, 1.09, 1.0)), None);
        assert_eq!(fill_price(&mut buy, bar(1.05, 1.10, 1.0)), Some(1.10));
        assert_eq!(fill_price(&mut buy, bar(1.15, 1.20, 1.12)), Some(1.15));
        let mut sell = order(Side::Sell, OrderType::Stop, Some(1.00), None);
        assert_eq!(fill_price(&mut sell, bar(1.05, 1.09, 1.01)), None);
        assert_eq!(fill_price(&mut sell, bar(1.05, 1.09, 1.00)), Some(1.00));
        assert_eq!(fill_price(&mut sell, bar(0.95, 0.97, 0.90)), Some(0.95));
    }

    #[test]
    fn limits_fill_at_the_limit_or_a_better_open() {
        let mut buy = order(Side::Buy, OrderType::Limit, Some(1.00), None);
        assert_eq!(fill_price(&mut buy, bar(1.05, 1.09, 1.01)), None);
        assert_eq!(fill_price(&mut buy, bar(1.05, 1.09, 0.99)), Some(1.00));
        assert_eq!(fill_price(&mut buy, bar(0.98, 0.99, 0.97)), Some(0.98));
        let mut sell = order(Side::Sell, OrderType::Limit, Some(1.10), None);
        assert_eq!(fill_price(&mut sell, bar(1.12, 1.15, 1.11)), Some(1.12));
        let mut market = order(Side::Sell, OrderType::Market, None, None);
        assert_eq!(fill_price(&mut market, bar(1.12, 1.15, 1.11)), Some(1.12));
    }

    #[test]
    fn a_stop_limit_beyond_its_limit_rests_until_the_limit_trades() {
        let mut buy = order(Side::Buy, OrderType::StopLimit, Some(1.12), Some(1.10));
        assert_eq!(fill_price(&mut buy, bar(1.15, 1.20, 1.14)), None);
        assert!(buy.triggered);
        assert_eq!(fill_price(&mut buy, bar(1.14, 1.16, 1.12)), Some(1.12));
        let mut inside = order(Side::Buy, OrderType::StopLimit, Some(1.12), Some(1.10));
        assert_eq!(fill_price(&mut inside, bar(1.05, 1.11, 1.04)), Some(1.10));
    }

    #[test]
    fn positions_average_in_realize_out_and_may_go_short() {
        let mut book = Book::new(1000.0);
        book.book_position(1, "X", 100, 1.0);
        book.book_position(1, "X", 100, 2.0);
        assert_eq!(book.positions[&1].avg_cost, 1.5);
        book.book_position(1, "X", -50, 2.5);
        assert_eq!(book.positions[&1].quantity, 150);
        assert!((book.positions[&1].realized_pnl - 50.0).abs() < 1e-9);
        book.book_position(1, "X", -200, 1.0);
        let short = &book.positions[&1];
        assert_eq!((short.quantity, short.avg_cost), (-50, 1.0));
        assert!((short.realized_pnl - (50.0 - 75.0)).abs() < 1e-9);
    }
}
