//! IBKR's order and portfolio endpoints: placing orders and answering their
//! question chains, modifying and cancelling them, and reading back what the
//! broker holds (live orders, executions, positions).
//!
//! This module only speaks the protocol; which orders to send, and the
//! journal that makes sending them idempotent, live in `crate::trade`.
//!
//! Two rules from the reference shape it. An order POST is never retried:
//! a request that got no complete answer, or a 5xx, may still have placed
//! the order, so [`is_unclear`] tells the caller to look the `cOID` up
//! before sending anything again. And the reply to a broker question must
//! come before any other request, so [`place`] answers the whole chain
//! itself, from the list of message ids the caller has reviewed.

use std::collections::BTreeSet;

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value, json};

use super::client::{ApiError, Client, Unanswered};
use super::fields::{parse_conid, parse_price};

/// IBKR caps question chains at nothing; ibind stops after 20 rounds, and so
/// do we, refusing the order rather than looping.
const MAX_QUESTIONS: usize = 20;

/// The live-orders list needs a pre-flight call; this many calls in all.
const LIVE_ORDER_POLLS: usize = 3;

/// Buy or sell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    /// IBKR's spelling in order requests.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "BUY",
            Side::Sell => "SELL",
        }
    }

    /// Parses `BUY`/`SELL` and the executions' `B`/`S`.
    pub fn parse(text: &str) -> Option<Side> {
        match text.trim().to_ascii_uppercase().as_str() {
            "BUY" | "B" | "BOT" => Some(Side::Buy),
            "SELL" | "S" | "SLD" => Some(Side::Sell),
            _ => None,
        }
    }
}

/// The order types skim sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderType {
    Market,
    Limit,
    Stop,
    StopLimit,
}

impl OrderType {
    /// IBKR's documented spelling (`STOP_LIMIT`, not `STP LMT`).
    pub fn as_str(self) -> &'static str {
        match self {
            OrderType::Market => "MKT",
            OrderType::Limit => "LMT",
            OrderType::Stop => "STP",
            OrderType::StopLimit => "STOP_LIMIT",
        }
    }

    /// Parses the documented spelling and the live-orders list's variants.
    pub fn parse(text: &str) -> Option<OrderType> {
        let norm = text.trim().to_ascii_uppercase().replace([' ', '_'], "");
        match norm.as_str() {
            "MKT" | "MARKET" => Some(OrderType::Market),
            "LMT" | "LIMIT" => Some(OrderType::Limit),
            "STP" | "STOP" => Some(OrderType::Stop),
            "STOPLIMIT" | "STPLMT" => Some(OrderType::StopLimit),
            _ => None,
        }
    }
}

/// Time in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tif {
    Day,
    Gtc,
}

impl Tif {
    pub fn as_str(self) -> &'static str {
        match self {
            Tif::Day => "DAY",
            Tif::Gtc => "GTC",
        }
    }
}

/// One order as skim sends it. `coid` and `parent_coid` are exclusive: a
/// bracket child carries its parent's `cOID` as `parentId` and none of its
/// own, as IBKR expects.
#[derive(Clone, Debug, PartialEq)]
pub struct Ticket {
    pub coid: Option<String>,
    pub parent_coid: Option<String>,
    pub conid: i64,
    pub ticker: String,
    pub side: Side,
    pub order_type: OrderType,
    pub quantity: u64,
    /// Limit price for LMT and STOP_LIMIT; the stop price for STP.
    pub price: Option<f64>,
    /// The stop trigger of a STOP_LIMIT.
    pub aux_price: Option<f64>,
    pub tif: Tif,
}

impl Ticket {
    /// The order object IBKR's place and modify endpoints take.
    pub fn to_json(&self, account: &str) -> Value {
        let mut order = Map::new();
        order.insert("acctId".into(), json!(account));
        order.insert("conid".into(), json!(self.conid));
        order.insert("secType".into(), json!(format!("{}:STK", self.conid)));
        if let Some(coid) = &self.coid {
            order.insert("cOID".into(), json!(coid));
        }
        if let Some(parent) = &self.parent_coid {
            order.insert("parentId".into(), json!(parent));
        }
        order.insert("orderType".into(), json!(self.order_type.as_str()));
        order.insert("side".into(), json!(self.side.as_str()));
        order.insert("ticker".into(), json!(self.ticker));
        order.insert("quantity".into(), json!(self.quantity));
        if let Some(price) = self.price {
            order.insert("price".into(), json!(price));
        }
        if let Some(aux) = self.aux_price {
            order.insert("auxPrice".into(), json!(aux));
        }
        order.insert("tif".into(), json!(self.tif.as_str()));
        order.insert("outsideRTH".into(), json!(false));
        Value::Object(order)
    }
}

/// IBKR's acknowledgement of one order.
#[derive(Clone, Debug, PartialEq)]
pub struct Ack {
    pub order_id: String,
    pub status: String,
}

/// How a placement (or modification) ended, when it did end.
#[derive(Clone, Debug, PartialEq)]
pub enum Placement {
    /// Accepted: one acknowledgement per order, in request order.
    Placed(Vec<Ack>),
    /// IBKR refused the order (an HTTP 200 with an `error`).
    Rejected(String),
    /// IBKR asked a question nobody reviewed; skim declined it, so the
    /// order was discarded.
    Refused {
        message_ids: Vec<String>,
        text: String,
    },
}

/// Whether an error leaves an order request's outcome unknown: no complete
/// answer, or a server error after which the order may exist anyway.
pub fn is_unclear(err: &anyhow::Error) -> bool {
    // The client attaches `Unanswered` as context, which `downcast_ref`
    // finds and the plain cause chain does not.
    if err.downcast_ref::<Unanswered>().is_some()
        || err.downcast_ref::<Unreadable>().is_some()
        || err
            .downcast_ref::<ApiError>()
            .is_some_and(|api| api.status >= 500)
    {
        return true;
    }
    err.chain().any(|cause| {
        cause.downcast_ref::<Unanswered>().is_some()
            || cause.downcast_ref::<Unreadable>().is_some()
            || cause
                .downcast_ref::<ApiError>()
                .is_some_and(|api| api.status >= 500)
    })
}

/// Whether IBKR itself refused an order request: a 4xx answer. A 429 is
/// no refusal of the order (IBKR did not look at it), nor is a failure
/// before or around the request; those leave the order to be looked up.
pub fn is_refusal(err: &anyhow::Error) -> bool {
    let refused = |api: &ApiError| (400..500).contains(&api.status) && api.status != 429;
    err.downcast_ref::<ApiError>().is_some_and(refused)
        || err
            .chain()
            .any(|cause| cause.downcast_ref::<ApiError>().is_some_and(refused))
}

/// An answer to an order request that came back but could not be read
/// (not JSON, or not a shape IBKR documents). IBKR answered, so it may
/// well have placed the order: the outcome is as unclear as a lost answer.
#[derive(Debug)]
pub struct Unreadable {
    pub path: String,
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unreadable answer from IBKR to POST {}", self.path)
    }
}

impl std::error::Error for Unreadable {}

/// Marks `err` as [`Unreadable`] when IBKR's answer to `path` was not JSON.
fn mark_unreadable(err: anyhow::Error, path: &str) -> anyhow::Error {
    if err.chain().any(|cause| cause.is::<serde_json::Error>()) {
        err.context(Unreadable {
            path: path.to_owned(),
        })
    } else {
        err
    }
}

/// Places `tickets` (one order, or a parent and its children) and answers
/// any question chain: ids in `reviewed` are confirmed, anything else is
/// declined and reported as [`Placement::Refused`].
pub fn place(
    client: &Client,
    account: &str,
    tickets: &[Ticket],
    reviewed: &[&str],
) -> Result<Placement> {
    let orders: Vec<Value> = tickets.iter().map(|t| t.to_json(account)).collect();
    let path = format!("/iserver/account/{account}/orders");
    let answer = client
        .post(&path, &json!({ "orders": orders }))
        .map_err(|err| mark_unreadable(err, &path))?;
    settle(client, &path, answer, reviewed)
}

/// Modifies a working order: IBKR wants the whole order again with only the
/// changed values different. Questions are answered as in [`place`].
pub fn modify(
    client: &Client,
    account: &str,
    order_id: &str,
    ticket: &Ticket,
    reviewed: &[&str],
) -> Result<Placement> {
    let path = format!("/iserver/account/{account}/order/{order_id}");
    let mut body = ticket.to_json(account);
    if let Some(order) = body.as_object_mut() {
        // A modification names the order by its id; a cOID would be a new order.
        order.remove("cOID");
        order.remove("parentId");
    }
    let answer = client
        .post(&path, &body)
        .map_err(|err| mark_unreadable(err, &path))?;
    settle(client, &path, answer, reviewed)
}

/// Follows the answer to an order request to its end.
fn settle(client: &Client, path: &str, answer: Value, reviewed: &[&str]) -> Result<Placement> {
    let reviewed: BTreeSet<&str> = reviewed.iter().copied().collect();
    let (mut path, mut answer) = (path.to_owned(), answer);
    for _ in 0..MAX_QUESTIONS {
        let step =
            read_answer(&answer).map_err(|err| err.context(Unreadable { path: path.clone() }))?;
        match step {
            Step::Done(placement) => return Ok(placement),
            Step::Question {
                reply_id,
                message_ids,
                text,
            } => {
                let known = !message_ids.is_empty()
                    && message_ids.iter().all(|id| reviewed.contains(id.as_str()));
                path = format!("/iserver/reply/{reply_id}");
                if !known {
                    log::warn!(
                        "IBKR asked an unreviewed question ({}): {text}; declining the order",
                        message_ids.join(", ")
                    );
                    // Declining discards the order; its answer does not matter,
                    // but a failure to decline is worth knowing.
                    if let Err(err) = client.post(&path, &json!({ "confirmed": false })) {
                        log::warn!("declining IBKR's question failed: {err:#}");
                    }
                    return Ok(Placement::Refused { message_ids, text });
                }
                log::info!(
                    "confirming reviewed IBKR question {}",
                    message_ids.join(", ")
                );
                answer = client
                    .post(&path, &json!({ "confirmed": true }))
                    .map_err(|err| mark_unreadable(err, &path))?;
            }
        }
    }
    bail!("IBKR kept asking questions about the order after {MAX_QUESTIONS} answers")
}

enum Step {
    Done(Placement),
    Question {
        reply_id: String,
        message_ids: Vec<String>,
        text: String,
    },
}

/// Reads one answer of the place/reply/modify endpoints. Errors come back as
/// HTTP 200 with an `error`; success and questions as an array (or, in some
/// documents, a bare object).
fn read_answer(answer: &Value) -> Result<Step> {
    let items: Vec<&Value> = match answer {
        Value::Array(items) => items.iter().collect(),
        Value::Object(_) => vec![answer],
        other => bail!("unexpected answer to an order request: {}", short(other)),
    };
    if let Some(error) = answer.get("error").and_then(Value::as_str) {
        return Ok(Step::Done(Placement::Rejected(error.to_owned())));
    }
    let Some(first) = items.first() else {
        bail!("IBKR answered an order request with an empty list");
    };
    if let Some(error) = first.get("error").and_then(Value::as_str) {
        return Ok(Step::Done(Placement::Rejected(error.to_owned())));
    }
    if first.get("order_id").is_some() {
        let acks = items
            .iter()
            .map(|item| {
                let order_id = item
                    .get("order_id")
                    .and_then(id_text)
                    .context("an acknowledgement lacks its order_id")?;
                let status = item
                    .get("order_status")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                Ok(Ack { order_id, status })
            })
            .collect::<Result<Vec<_>>>()?;
        return Ok(Step::Done(Placement::Placed(acks)));
    }
    if let Some(reply_id) = first.get("id").and_then(id_text) {
        let message_ids = strings(first.get("messageIds"));
        let text = strings(first.get("message")).join(" ");
        return Ok(Step::Question {
            reply_id,
            message_ids,
            text,
        });
    }
    bail!("unexpected answer to an order request: {}", short(answer))
}

/// Cancels an order. IBKR's answer only means "received"; the live-orders
/// list confirms it later.
pub fn cancel(client: &Client, account: &str, order_id: &str) -> Result<()> {
    let path = format!("/iserver/account/{account}/order/{order_id}");
    let answer = client.delete(&path)?;
    if let Some(error) = answer.get("error").and_then(Value::as_str) {
        bail!("IBKR refused to cancel order {order_id}: {error}");
    }
    Ok(())
}

/// One order from IBKR's live-orders list.
#[derive(Clone, Debug, PartialEq)]
pub struct LiveOrder {
    pub order_id: String,
    pub conid: i64,
    pub ticker: String,
    pub side: Option<Side>,
    pub order_type: Option<OrderType>,
    /// IBKR's status word: `Submitted`, `PreSubmitted`, `Filled`, `Cancelled`...
    pub status: String,
    pub filled: f64,
    pub remaining: f64,
    pub total: f64,
    pub avg_price: Option<f64>,
    /// The `cOID` the order was sent with, when it had one.
    pub order_ref: Option<String>,
    /// The parent's cOID or order id, where IBKR says.
    pub parent: Option<String>,
    pub price: Option<f64>,
    pub aux_price: Option<f64>,
}

impl LiveOrder {
    /// Still able to fill: submitted, or waiting for a parent or a trigger.
    pub fn is_working(&self) -> bool {
        matches!(
            self.status.as_str(),
            "Submitted" | "PreSubmitted" | "PendingSubmit" | "Inactive" | "PendingCancel"
        )
    }

    pub fn is_cancelled(&self) -> bool {
        self.status == "Cancelled"
    }

    pub fn is_filled(&self) -> bool {
        self.status == "Filled"
    }
}

/// `GET /iserver/account/orders`, repeating the call while IBKR answers
/// `snapshot: false` (the documented pre-flight). The client's pacing
/// keeps the calls 5 s apart.
pub fn live_orders(client: &Client) -> Result<Vec<LiveOrder>> {
    for poll in 1..=LIVE_ORDER_POLLS {
        let answer = client.get("/iserver/account/orders", &[])?;
        let ready = answer
            .get("snapshot")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        if ready || poll == LIVE_ORDER_POLLS {
            if !ready {
                bail!("IBKR's live orders list was still not ready after {poll} calls");
            }
            return parse_live_orders(&answer)
                .context("IBKR's answer to GET /iserver/account/orders is unusable");
        }
        log::info!("live orders not ready yet (pre-flight); asking again");
    }
    unreachable!("the loop returns on its last poll")
}

/// Parses a live-orders answer.
pub fn parse_live_orders(answer: &Value) -> Result<Vec<LiveOrder>> {
    let Some(list) = answer.get("orders") else {
        // An account without orders may answer without the list, but never
        // without `snapshot`. Any other object is not an empty book:
        // reading it as one would put a second stop on every position.
        if answer.get("snapshot").is_some_and(Value::is_boolean) {
            return Ok(Vec::new());
        }
        bail!("unexpected live orders answer: {}", short(answer));
    };
    let Some(list) = list.as_array() else {
        bail!("live orders: `orders` is not a list");
    };
    list.iter()
        .map(|row| {
            let order_id = row
                .get("orderId")
                .and_then(id_text)
                .context("a live order lacks orderId")?;
            let conid = parse_conid(row.get("conid").unwrap_or(&Value::Null))
                .with_context(|| format!("live order {order_id}: bad conid"))?;
            let number = |key: &str| -> Result<Option<f64>> {
                parse_price(row.get(key).unwrap_or(&Value::Null))
                    .with_context(|| format!("live order {order_id}: bad {key}"))
            };
            let text = |key: &str| {
                row.get(key)
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
            };
            Ok(LiveOrder {
                conid,
                ticker: text("ticker").unwrap_or_default(),
                side: text("side").as_deref().and_then(Side::parse),
                order_type: text("orderType")
                    .or_else(|| text("origOrderType"))
                    .as_deref()
                    .and_then(OrderType::parse),
                status: text("status").unwrap_or_default(),
                filled: number("filledQuantity")?.unwrap_or(0.0),
                remaining: number("remainingQuantity")?.unwrap_or(0.0),
                total: number("totalSize")?.unwrap_or(0.0),
                avg_price: number("avgPrice")?,
                order_ref: text("order_ref"),
                parent: row.get("parentId").and_then(id_text),
                price: number("price")?,
                aux_price: number("auxPrice")?,
                order_id,
            })
        })
        .collect()
}

/// One execution from `/iserver/account/trades`.
#[derive(Clone, Debug, PartialEq)]
pub struct Execution {
    pub execution_id: String,
    pub conid: i64,
    pub side: Side,
    pub size: f64,
    pub price: f64,
    pub order_ref: Option<String>,
    /// UTC, as IBKR gives it (`YYYYMMDD-HH:mm:ss`).
    pub trade_time: String,
}

/// `GET /iserver/account/trades?days=N` (IBKR allows up to 7).
pub fn executions(client: &Client, days: u32) -> Result<Vec<Execution>> {
    let days = days.clamp(1, 7);
    let path = "/iserver/account/trades";
    let answer = client.get(path, &[("days", days.to_string())])?;
    parse_executions(&answer).with_context(|| format!("IBKR's answer to GET {path} is unusable"))
}

/// Parses an executions answer.
pub fn parse_executions(answer: &Value) -> Result<Vec<Execution>> {
    let Some(list) = answer.as_array() else {
        bail!("unexpected executions answer: {}", short(answer));
    };
    list.iter()
        .map(|row| {
            let execution_id = row
                .get("execution_id")
                .and_then(id_text)
                .context("an execution lacks execution_id")?;
            let field = |key: &str| row.get(key).unwrap_or(&Value::Null);
            let side = field("side")
                .as_str()
                .and_then(Side::parse)
                .with_context(|| format!("execution {execution_id}: bad side"))?;
            let number = |key: &str| -> Result<f64> {
                parse_price(field(key))?
                    .with_context(|| format!("execution {execution_id}: {key} missing"))
            };
            Ok(Execution {
                conid: parse_conid(field("conid"))
                    .with_context(|| format!("execution {execution_id}: bad conid"))?,
                side,
                size: number("size")?,
                price: number("price")?,
                order_ref: field("order_ref")
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
                trade_time: field("trade_time").as_str().unwrap_or("").to_owned(),
                execution_id,
            })
        })
        .collect()
}

/// One position the broker holds.
#[derive(Clone, Debug, PartialEq)]
pub struct BrokerPosition {
    pub conid: i64,
    pub description: String,
    pub quantity: f64,
    pub avg_cost: Option<f64>,
    pub market_price: Option<f64>,
}

/// Positions are served from a server-side cache; this many per page.
const POSITIONS_PAGE: usize = 100;

/// Every position in `account`: the cache is invalidated first (it is
/// stale otherwise), then pages are read until one is short.
pub fn positions(client: &Client, account: &str) -> Result<Vec<BrokerPosition>> {
    client.post(
        &format!("/portfolio/{account}/positions/invalidate"),
        &json!({}),
    )?;
    let mut all = Vec::new();
    for page in 0.. {
        let path = format!("/portfolio/{account}/positions/{page}");
        let answer = client.get(&path, &[])?;
        let rows = parse_positions(&answer)
            .with_context(|| format!("IBKR's answer to GET {path} is unusable"))?;
        let short_page = rows.len() < POSITIONS_PAGE;
        all.extend(rows);
        if short_page {
            break;
        }
    }
    Ok(all)
}

/// Parses one page of positions; rows with no position are dropped.
pub fn parse_positions(answer: &Value) -> Result<Vec<BrokerPosition>> {
    let Some(list) = answer.as_array() else {
        bail!("unexpected positions answer: {}", short(answer));
    };
    let mut out = Vec::new();
    for row in list {
        let field = |key: &str| row.get(key).unwrap_or(&Value::Null);
        let conid = parse_conid(field("conid")).context("a position has a bad conid")?;
        let quantity = parse_price(field("position"))
            .with_context(|| format!("position {conid}: bad position"))?
            .unwrap_or(0.0);
        out.push(BrokerPosition {
            conid,
            description: field("contractDesc").as_str().unwrap_or("").to_owned(),
            quantity,
            avg_cost: parse_price(field("avgCost")).unwrap_or(None),
            market_price: parse_price(field("mktPrice")).unwrap_or(None),
        });
    }
    Ok(out)
}

/// An id as IBKR sends it, a string or a whole number. Anything else
/// (null, "", an object) is no id: read as text it would become "null" or
/// "" and match nothing, or the wrong thing, in reconciliation.
fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        _ => None,
    }
}

fn strings(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

fn short(value: &Value) -> String {
    super::client::excerpt(&value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket() -> Ticket {
        Ticket {
            coid: Some("skim-20260302-BHP-entry".into()),
            parent_coid: None,
            conid: 4036812,
            ticker: "BHP".into(),
            side: Side::Buy,
            order_type: OrderType::Stop,
            quantity: 110,
            price: Some(45.21),
            aux_price: None,
            tif: Tif::Day,
        }
    }

    #[test]
    fn a_stop_order_puts_its_trigger_in_price() {
        let body = ticket().to_json("DU1234567");
        assert_eq!(body["orderType"], "STP");
        assert_eq!(body["price"], 45.21);
        assert!(body.get("auxPrice").is_none());
        assert_eq!(body["cOID"], "skim-20260302-BHP-entry");
        assert!(body.get("parentId").is_none());
        assert_eq!(body["acctId"], "DU1234567");
    }

    #[test]
    fn a_child_carries_parent_id_and_no_coid() {
        let child = Ticket {
            coid: None,
            parent_coid: Some("skim-20260302-BHP-entry".into()),
            side: Side::Sell,
            ..ticket()
        };
        let body = child.to_json("DU1");
        assert_eq!(body["parentId"], "skim-20260302-BHP-entry");
        assert!(body.get("cOID").is_none());
    }

    #[test]
    fn answers_are_read_as_ibkr_documents_them() {
        let placed = json!([{"order_id": "1", "order_status": "Submitted", "encrypt_message": "1"},
                            {"order_id": 2, "order_status": "PreSubmitted"}]);
        match read_answer(&placed).unwrap() {
            Step::Done(Placement::Placed(acks)) => {
                assert_eq!(acks.len(), 2);
                assert_eq!(acks[1].order_id, "2");
            }
            _ => panic!("expected placed"),
        }
        let bare = json!({"order_id": "7", "order_status": "Submitted"});
        assert!(matches!(
            read_answer(&bare).unwrap(),
            Step::Done(Placement::Placed(_))
        ));
        let rejected = json!({"error": "Order price is too far from market"});
        match read_answer(&rejected).unwrap() {
            Step::Done(Placement::Rejected(text)) => assert!(text.contains("too far")),
            _ => panic!("expected rejected"),
        }
        let question = json!([{"id": "a1b2", "message": ["Are you sure?"],
                               "isSuppressed": false, "messageIds": ["o163"]}]);
        match read_answer(&question).unwrap() {
            Step::Question {
                reply_id,
                message_ids,
                text,
            } => {
                assert_eq!(reply_id, "a1b2");
                assert_eq!(message_ids, vec!["o163"]);
                assert_eq!(text, "Are you sure?");
            }
            _ => panic!("expected a question"),
        }
        assert!(read_answer(&json!([])).is_err());
        assert!(read_answer(&json!("ok")).is_err());
    }

    #[test]
    fn live_orders_and_executions_parse() {
        let live = json!({"orders": [{"orderId": 11, "conid": "4036812", "ticker": "BHP",
            "side": "BUY", "orderType": "Stop", "status": "PreSubmitted",
            "filledQuantity": 0, "remainingQuantity": 110.0, "totalSize": "110",
            "order_ref": "skim-20260302-BHP-entry", "price": "45.21"}], "snapshot": true});
        let orders = parse_live_orders(&live).unwrap();
        assert_eq!(orders[0].order_id, "11");
        assert_eq!(orders[0].order_type, Some(OrderType::Stop));
        assert_eq!(orders[0].total, 110.0);
        assert!(orders[0].is_working());
        assert_eq!(
            parse_live_orders(&json!({"snapshot": true})).unwrap(),
            vec![]
        );
        // An object of another shape is no empty book.
        assert!(parse_live_orders(&json!({"unexpected": "shape"})).is_err());

        let execs = json!([{"execution_id": "0001f4e8.01", "conid": 4036812, "side": "B",
            "size": 110, "price": "45.25", "order_ref": "skim-20260302-BHP-entry",
            "trade_time": "20260301-23:15:00"}]);
        let execs = parse_executions(&execs).unwrap();
        assert_eq!(execs[0].side, Side::Buy);
        assert_eq!(execs[0].price, 45.25);
        assert!(parse_executions(&json!({"error": "x"})).is_err());
    }

    /// Found reading the fuzz target's invariants: a null or empty id was
    /// read as the text "null" or "" and reconciled like a real one.
    #[test]
    fn ids_that_are_null_empty_or_not_scalar_are_no_ids() {
        for bad in [json!(null), json!(""), json!("  "), json!({}), json!(1.5)] {
            let live = json!({"orders": [{"orderId": bad, "conid": 4036812}]});
            assert!(parse_live_orders(&live).is_err(), "orderId {bad} accepted");
            let execs = json!([{"execution_id": bad, "conid": 4036812, "side": "B",
                "size": 1, "price": 1}]);
            assert!(
                parse_executions(&execs).is_err(),
                "execution_id {bad} accepted"
            );
            let ack = json!([{"order_id": bad, "order_status": "Submitted"}]);
            assert!(read_answer(&ack).is_err(), "order_id {bad} accepted");
        }
        let live = json!({"orders": [{"orderId": 7, "conid": 1, "parentId": null}]});
        assert_eq!(parse_live_orders(&live).unwrap()[0].parent, None);
    }

    #[test]
    fn unclear_outcomes_are_told_apart_from_refusals() {
        let timed_out = anyhow::anyhow!("operation timed out").context(Unanswered {
            method: "POST".into(),
            path: "/iserver/account/DU1/orders".into(),
        });
        assert!(is_unclear(&timed_out.context("IBKR did not answer")));
        let dropped: anyhow::Error = Unanswered {
            method: "POST".into(),
            path: "/iserver/account/DU1/orders".into(),
        }
        .into();
        assert!(is_unclear(&dropped.context("placing the entry")));
        let server = ApiError {
            method: "POST".into(),
            path: "/x".into(),
            status: 503,
            body: String::new(),
        };
        assert!(is_unclear(&server.into()));
        let client_error = ApiError {
            method: "POST".into(),
            path: "/x".into(),
            status: 400,
            body: String::new(),
        };
        assert!(!is_unclear(&client_error.into()));
    }

    fn api_error(status: u16) -> anyhow::Error {
        ApiError {
            method: "POST".into(),
            path: "/iserver/account/DU1/orders".into(),
            status,
            body: String::new(),
        }
        .into()
    }

    #[test]
    fn an_unreadable_answer_is_unclear_and_no_refusal() {
        let garbled = serde_json::from_str::<Value>("{\"order_id\":").unwrap_err();
        let err = mark_unreadable(anyhow::Error::new(garbled).context("not JSON"), "/p");
        assert!(is_unclear(&err));
        assert!(!is_refusal(&err));
        assert!(format!("{err:#}").contains("POST /p"));
        // Errors that are not about the answer's text stay as they were.
        assert!(!is_unclear(&mark_unreadable(
            anyhow::anyhow!("paused"),
            "/p"
        )));
    }

    #[test]
    fn only_a_4xx_other_than_429_is_a_refusal() {
        assert!(is_refusal(&api_error(400).context("placing the entry")));
        assert!(!is_refusal(&api_error(429)));
        assert!(!is_refusal(&api_error(503)));
        assert!(!is_refusal(&anyhow::anyhow!("IBKR rate limit (HTTP 429)")));
    }
}
