//! IBKR's order and portfolio endpoints (reference sections 5.2-5.4, 5.10,
//! 6 and 7), answered from the [`broker`] books: placing single orders and
//! brackets with question chains, modifying, cancelling, live orders,
//! order status, executions, positions with IBKR's server-side cache, and
//! the account summary.
//!
//! Validation is strict where the reference is: rejections come back as
//! HTTP 200 `{"error": ...}`, as IBKR sends them; a malformed body is a
//! 400. Choices where the reference is silent, all unconfirmed against
//! IBKR:
//!
//! - a reused `cOID` (within 24 h of simulated time) is answered HTTP 200
//!   `{"error": "Order couldn't be submitted: Local order ID=<cOID> is
//!   already registered."}`;
//! - a reply to a question that is no longer pending, or was never asked,
//!   is answered 503; `{"confirmed": false}` answers 200 `{"error": "Order
//!   was not confirmed and has been discarded"}`;
//! - live orders carry `price` (the limit of LMT and STOP_LIMIT, the stop
//!   of STP) and `auxPrice` (the stop of STOP_LIMIT) as strings, and no
//!   `parentId`, which the reference's field list lacks;
//! - the place-order answer's `order_id` is a string, live orders'
//!   `orderId` a number;
//! - `GET /portfolio/{acct}/...` before `GET /portfolio/accounts` is a 400
//!   `{"error": "Please query /portfolio/accounts first"}`;
//! - positions list non-zero holdings only; the summary's
//!   `availablefunds` is net liquidation less 25 % of the gross position
//!   value and `buyingpower` four times that.
//!
//! Live orders need a pre-flight: the first call in a brokerage session,
//! and any call with `force=true`, answers `{"orders": [], "snapshot":
//! false}`; later calls list the orders with `snapshot: true`.

use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use serde_json::{Map, Value, json};

use crate::broker::{self, Book, Order, OrderStatus, OrderType, Pending, PendingAction, Side, Tif};
use crate::http::{Incoming, Reply};
use crate::market::{pace, price_text};
use crate::scenario::Scenario;
use crate::{State, oauth, session};

/// How long a `cOID` stays taken.
const COID_LIFETIME: Duration = Duration::hours(24);

/// Most positions one page of `/portfolio/{acct}/positions/{page}` holds.
const POSITIONS_PER_PAGE: usize = 100;

/// Most message ids one suppress call may carry.
const MAX_SUPPRESS: usize = 51;

/// Serves the order and portfolio endpoints; `None` when the request is
/// not one of them.
pub(crate) fn route(
    state: &mut State,
    req: &Incoming,
    api_path: &str,
    now: Instant,
) -> Option<Reply> {
    let parts: Vec<&str> = api_path.trim_start_matches('/').split('/').collect();
    let reply = match (req.method.as_str(), parts.as_slice()) {
        ("POST", ["iserver", "account", acct, "orders"]) => place(state, req, acct),
        ("POST", ["iserver", "reply", id]) => reply(state, req, id),
        ("POST", ["iserver", "questions", "suppress"]) => suppress(state, req),
        ("POST", ["iserver", "questions", "suppress", "reset"]) => {
            state.session.suppressed.clear();
            Reply::json(200, &json!({ "status": "submitted" }))
        }
        ("GET", ["iserver", "account", "orders"]) => live_orders(state, req, now),
        ("GET", ["iserver", "account", "order", "status", id]) => order_status(state, id),
        ("GET", ["iserver", "account", "trades"]) => trades(state, req, now),
        ("DELETE", ["iserver", "account", acct, "order", id]) => cancel(state, acct, id),
        ("POST", ["iserver", "account", acct, "order", id]) => modify(state, req, acct, id),
        ("GET", ["portfolio", acct, "positions", page]) => positions(state, acct, page),
        ("POST", ["portfolio", acct, "positions", "invalidate"]) => invalidate(state, acct),
        ("GET", ["portfolio", acct, "summary"]) => summary(state, acct),
        _ => return None,
    };
    Some(reply)
}

/// Called for every signed request before it is routed: any request but
/// the reply to the pending question makes that question stale, as IBKR
/// invalidates an order whose questions are not answered at once.
pub(crate) fn note_request(state: &mut State, req: &Incoming, api_path: &str) {
    let Some(pending) = &state.book.pending else {
        return;
    };
    let is_reply = req.method == "POST"
        && api_path.strip_prefix("/iserver/reply/") == Some(pending.reply_id.as_str());
    if !is_reply && let Some(stale) = state.book.pending.take() {
        state.book.stale_replies.insert(stale.reply_id);
    }
}

/// An order rejection as IBKR sends it: HTTP 200 with an error.
fn reject(message: &str) -> Reply {
    Reply::json(200, &json!({ "error": message }))
}

fn bad(message: &str) -> Reply {
    Reply::error(400, message)
}

/// A reply id shaped like IBKR's UUIDs.
fn new_reply_id() -> String {
    let bytes: [u8; 16] = rand::thread_rng().r#gen();
    let hex = oauth::hex(&bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// The text IBKR shows with a question message id (abridged).
fn question_text(id: &str) -> String {
    let text = match id {
        "o163" => "The following order exceeds the price percentage limit",
        "o354" => "You are submitting an order without market data",
        "o382" => "The following value exceeds the tick size limit",
        "o383" => "The following order size exceeds the Size Limit",
        "o403" => "This order will most likely trigger and fill immediately",
        "o451" => "The following order value exceeds the Total Value Limit",
        "o10151" => "Market orders may be executed at a price far from the current price",
        "o10152" | "o10331" => {
            "A stop order becomes a market order when triggered and may fill far from the stop"
        }
        "o10153" => "Confirm Mandatory Cap Price",
        "o10336" => "This security has limited liquidity",
        _ => "Are you sure you want to submit this order?",
    };
    text.to_string()
}

/// A number that must be a whole positive quantity.
fn whole_quantity(value: Option<&Value>) -> Result<u64, String> {
    let number = value
        .and_then(Value::as_f64)
        .ok_or("quantity must be a number")?;
    if number <= 0.0 || number.fract() != 0.0 || number > 1e12 {
        return Err(format!(
            "quantity must be a whole positive number of shares, got {number}"
        ));
    }
    Ok(number as u64)
}

/// A price field: absent, or a positive number on the instrument's steps.
fn price_field(
    body: &Map<String, Value>,
    key: &str,
    scenario: &Scenario,
    conid: u64,
) -> Result<Option<f64>, String> {
    let Some(value) = body.get(key) else {
        return Ok(None);
    };
    let price = value
        .as_f64()
        .filter(|p| p.is_finite() && *p > 0.0)
        .ok_or_else(|| format!("{key} must be a positive number, got {value}"))?;
    let inst = scenario.by_conid(conid).ok_or("unknown contract")?;
    let step = inst.increment_at(price);
    let steps = price / step;
    if (steps - steps.round()).abs() > 1e-6 {
        return Err(format!(
            "{key} {price} is not a multiple of the price step {step} for {}",
            inst.symbol
        ));
    }
    Ok(Some(price))
}

/// The order's contract: `conid`, or `conidex` as `conid` or
/// `conid@EXCH`, not both.
fn order_conid(body: &Map<String, Value>) -> Result<u64, String> {
    match (body.get("conid"), body.get("conidex")) {
        (Some(_), Some(_)) => Err("send conid or conidex, not both".to_string()),
        (Some(value), None) => value
            .as_u64()
            .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
            .ok_or_else(|| format!("conid must be a contract id, got {value}")),
        (None, Some(value)) => value
            .as_str()
            .and_then(|s| s.split('@').next())
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("conidex must be \"conid\" or \"conid@EXCH\", got {value}")),
        (None, None) => Err("conid is required".to_string()),
    }
}

/// One order request's fields, checked; `cOID` and `parentId` are left to
/// the caller.
fn parse_order(state: &State, body: &Map<String, Value>, account: &str) -> Result<Order, String> {
    if let Some(acct) = body.get("acctId")
        && acct.as_str() != Some(account)
    {
        return Err(format!(
            "acctId {acct} does not match the account {account} in the path"
        ));
    }
    let conid = order_conid(body)?;
    let scenario = &state.market.scenario;
    let Some(inst) = scenario.by_conid(conid) else {
        return Err(format!(
            "conid {conid} is not a contract the simulator trades"
        ));
    };
    if let Some(sec_type) = body.get("secType")
        && sec_type.as_str() != Some(format!("{conid}:STK").as_str())
    {
        return Err(format!("secType must be \"{conid}:STK\", got {sec_type}"));
    }
    let text = |key: &str| body.get(key).and_then(Value::as_str).unwrap_or("");
    let order_type = OrderType::parse(text("orderType")).ok_or_else(|| {
        format!(
            "orderType {:?} is not one of MKT, LMT, STP, STOP_LIMIT",
            body.get("orderType")
        )
    })?;
    let side = match text("side") {
        "BUY" => Side::Buy,
        "SELL" => Side::Sell,
        _ => {
            return Err(format!(
                "side must be BUY or SELL, got {:?}",
                body.get("side")
            ));
        }
    };
    let tif = match body.get("tif").map(|t| t.as_str().unwrap_or("")) {
        None | Some("DAY") => Tif::Day,
        Some("GTC") => Tif::Gtc,
        Some(other) => return Err(format!("tif {other:?} is not one of DAY, GTC")),
    };
    let quantity = whole_quantity(body.get("quantity"))?;
    let price = price_field(body, "price", scenario, conid)?;
    let aux_price = price_field(body, "auxPrice", scenario, conid)?;
    match (order_type, price, aux_price) {
        (OrderType::Market, _, _) => {}
        (OrderType::Limit, Some(_), None) | (OrderType::Stop, Some(_), None) => {}
        (OrderType::StopLimit, Some(_), Some(_)) => {}
        (OrderType::Limit, _, _) => return Err("LMT needs price (the limit) only".into()),
        (OrderType::Stop, _, _) => {
            return Err("STP needs price (the stop price) and no auxPrice".into());
        }
        (OrderType::StopLimit, _, _) => {
            return Err("STOP_LIMIT needs auxPrice (the stop) and price (the limit)".into());
        }
    }
    let now = state.market.now;
    Ok(Order {
        order_id: 0,
        account: account.to_string(),
        coid: None,
        parent_id: None,
        conid,
        symbol: inst.symbol.clone(),
        side,
        order_type,
        price: if order_type == OrderType::Market {
            None
        } else {
            price
        },
        aux_price,
        quantity,
        tif,
        oca: body
            .get("isSingleGroup")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        status: OrderStatus::Submitted,
        filled: 0,
        avg_price: None,
        triggered: false,
        placed_at: now,
        working_since: Some(now),
        updated_at: now,
    })
}

/// Whether `coid` was used by an order placed in the last 24 hours.
fn coid_taken(book: &Book, coid: &str, now: DateTime<Utc>) -> bool {
    book.orders
        .iter()
        .any(|o| o.coid.as_deref() == Some(coid) && now - o.placed_at < COID_LIFETIME)
}

fn duplicate(coid: &str) -> Reply {
    reject(&format!(
        "Order couldn't be submitted: Local order ID={coid} is already registered."
    ))
}

/// `POST /iserver/account/{acct}/orders`.
fn place(state: &mut State, req: &Incoming, acct: &str) -> Reply {
    if acct != state.config.account_id {
        return reject(&format!("account {acct} is not available to this user"));
    }
    let Some(body) = req.json_body() else {
        return bad("body must be JSON {\"orders\": [...]}");
    };
    let Some(items) = body
        .get("orders")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
    else {
        return bad("body must be JSON {\"orders\": [...]} with at least one order");
    };
    let now = state.market.now;
    let mut orders = Vec::new();
    let mut parents: Vec<(String, usize)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Some(fields) = item.as_object() else {
            return bad(&format!("order {i} is not a JSON object"));
        };
        let mut order = match parse_order(state, fields, acct) {
            Ok(order) => order,
            Err(message) => return reject(&format!("order {i}: {message}")),
        };
        let coid = fields
            .get("cOID")
            .map(|v| v.as_str().unwrap_or_default().to_string());
        let parent = fields
            .get("parentId")
            .map(|v| v.as_str().unwrap_or_default().to_string());
        match (coid, parent) {
            (Some(_), Some(_)) => {
                return reject(&format!(
                    "order {i}: a child order (parentId) must not carry a cOID"
                ));
            }
            (Some(coid), None) => {
                if coid.trim().is_empty() {
                    return reject(&format!("order {i}: cOID must not be empty"));
                }
                if coid_taken(&state.book, &coid, now) || parents.iter().any(|p| p.0 == coid) {
                    return duplicate(&coid);
                }
                parents.push((coid.clone(), orders.len()));
                order.coid = Some(coid);
            }
            (None, Some(parent)) => {
                let Some((_, index)) = parents.iter().find(|p| p.0 == parent) else {
                    return reject(&format!(
                        "order {i}: parentId {parent:?} names no earlier order in this request"
                    ));
                };
                order.parent_id = Some(*index as u64);
                order.status = OrderStatus::PreSubmitted;
                order.working_since = None;
            }
            (None, None) => {}
        }
        orders.push(order);
    }
    ask_or_do(state, PendingAction::Place(orders))
}

/// Asks the first configured, unsuppressed question about `action`, or
/// carries it out when there is none.
fn ask_or_do(state: &mut State, action: PendingAction) -> Reply {
    let market = match &action {
        PendingAction::Place(orders) => orders.iter().any(|o| o.order_type == OrderType::Market),
        PendingAction::Modify(order) => order.order_type == OrderType::Market,
    };
    let market_questions = state
        .config
        .market_order_questions
        .iter()
        .filter(|_| market);
    let questions: Vec<String> = state
        .config
        .order_questions
        .iter()
        .chain(market_questions)
        .filter(|id| !state.session.suppressed.contains(*id))
        .cloned()
        .collect();
    ask_next(state, questions, action)
}

fn ask_next(state: &mut State, mut questions: Vec<String>, action: PendingAction) -> Reply {
    if questions.is_empty() {
        return carry_out(state, action);
    }
    let asking = questions.remove(0);
    let reply_id = new_reply_id();
    let answer = json!([{
        "id": reply_id,
        "message": [question_text(&asking)],
        "isSuppressed": false,
        "messageIds": [asking],
    }]);
    state.book.pending = Some(Pending {
        reply_id,
        questions,
        action,
    });
    Reply::json(200, &answer)
}

/// Places or modifies for real, then applies the after-order faults.
fn carry_out(state: &mut State, action: PendingAction) -> Reply {
    let now = state.market.now;
    let ids: Vec<u64> = match action {
        PendingAction::Place(mut orders) => {
            let ids: Vec<u64> = orders.iter().map(|_| state.book.next_order_id()).collect();
            for (order, id) in orders.iter_mut().zip(&ids) {
                // Until now a child's parent_id held its parent's index.
                order.order_id = *id;
                order.parent_id = order.parent_id.map(|index| ids[index as usize]);
                order.placed_at = now;
                order.updated_at = now;
                if order.parent_id.is_none() {
                    order.working_since = Some(now);
                }
            }
            state.book.orders.extend(orders);
            ids
        }
        PendingAction::Modify(changed) => {
            let id = changed.order_id;
            if let Some(order) = state.book.order_mut(id) {
                *order = changed;
                order.updated_at = now;
            }
            vec![id]
        }
    };
    broker::work_now(&state.market.scenario, &mut state.book, &ids, now);

    if state.faults.drop_after_order > 0 {
        state.faults.drop_after_order -= 1;
        state.hang_up = true;
    }
    if let Some((status, left)) = state.faults.error_after_order {
        state.faults.error_after_order = (left > 1).then_some((status, left - 1));
        if left > 0 {
            return Reply::error(status, "internal server error");
        }
    }
    let answer: Vec<Value> = ids
        .iter()
        .filter_map(|id| state.book.orders.iter().find(|o| o.order_id == *id))
        .map(|o| {
            json!({
                "order_id": o.order_id.to_string(),
                "order_status": o.status.as_str(),
                "encrypt_message": "1",
            })
        })
        .collect();
    Reply::json(200, &Value::Array(answer))
}

/// `POST /iserver/reply/{id}` `{"confirmed": bool}`.
fn reply(state: &mut State, req: &Incoming, id: &str) -> Reply {
    let confirmed = req
        .json_body()
        .and_then(|b| b.get("confirmed").and_then(Value::as_bool));
    let Some(confirmed) = confirmed else {
        return bad("body must be {\"confirmed\": true} or {\"confirmed\": false}");
    };
    let is_pending = state
        .book
        .pending
        .as_ref()
        .is_some_and(|p| p.reply_id == id);
    if !is_pending {
        let known = state.book.stale_replies.contains(id);
        let why = if known {
            "the order was invalidated by another request before this reply"
        } else {
            "no question is pending with this id"
        };
        return Reply::error(503, why);
    }
    let pending = state.book.pending.take().expect("checked above");
    if !confirmed {
        return reject("Order was not confirmed and has been discarded");
    }
    // A question chain can outlive a coid check: look again before acting.
    if let PendingAction::Place(orders) = &pending.action {
        let now = state.market.now;
        if let Some(coid) = orders
            .iter()
            .filter_map(|o| o.coid.as_deref())
            .find(|c| coid_taken(&state.book, c, now))
        {
            return duplicate(coid);
        }
    }
    ask_next(state, pending.questions, pending.action)
}

/// `POST /iserver/questions/suppress` `{"messageIds": [...]}`.
fn suppress(state: &mut State, req: &Incoming) -> Reply {
    let ids: Option<Vec<String>> = req.json_body().and_then(|b| {
        b.get("messageIds")?
            .as_array()?
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect()
    });
    match ids {
        Some(ids) if ids.len() > MAX_SUPPRESS => bad(&format!(
            "at most {MAX_SUPPRESS} messageIds per call, got {}",
            ids.len()
        )),
        Some(ids) => {
            state.session.suppressed.extend(ids);
            Reply::json(200, &json!({ "status": "submitted" }))
        }
        None => bad("body must be {\"messageIds\": [\"o163\", ...]}"),
    }
}

/// An order's id from the path.
fn path_order_id(id: &str) -> Option<u64> {
    id.parse().ok()
}

/// `POST /iserver/account/{acct}/order/{id}`: one object repeating the
/// order's fields; quantity, prices and tif may change.
fn modify(state: &mut State, req: &Incoming, acct: &str, id: &str) -> Reply {
    if let Err(reply) = session::require_accounts_primed(state) {
        return reply;
    }
    if acct != state.config.account_id {
        return reject(&format!("account {acct} is not available to this user"));
    }
    let Some(Value::Object(body)) = req.json_body() else {
        return bad("body must be one JSON object repeating the order's fields");
    };
    let Some(current) = path_order_id(id)
        .and_then(|id| state.book.orders.iter().find(|o| o.order_id == id))
        .cloned()
    else {
        return reject(&format!("OrderID {id} doesn't exist"));
    };
    if !current.status.is_live() {
        return reject(&format!(
            "OrderID {id} cannot be modified: it is {}",
            current.status.as_str()
        ));
    }
    let wanted = match parse_order(state, &body, acct) {
        Ok(order) => order,
        Err(message) => return reject(&message),
    };
    if (wanted.conid, wanted.side, wanted.order_type)
        != (current.conid, current.side, current.order_type)
    {
        return reject("a modification must repeat the order's conid, side and orderType");
    }
    let mut changed = current;
    changed.quantity = wanted.quantity;
    changed.price = wanted.price;
    changed.aux_price = wanted.aux_price;
    changed.tif = wanted.tif;
    ask_or_do(state, PendingAction::Modify(changed))
}

/// `DELETE /iserver/account/{acct}/order/{id}`; `-1` cancels every live
/// order.
fn cancel(state: &mut State, acct: &str, id: &str) -> Reply {
    if let Err(reply) = session::require_accounts_primed(state) {
        return reply;
    }
    if acct != state.config.account_id {
        return reject(&format!("account {acct} is not available to this user"));
    }
    let now = state.market.now;
    let book = &mut state.book;
    if id == "-1" {
        let live: Vec<u64> = book
            .orders
            .iter()
            .filter(|o| o.status.is_live())
            .map(|o| o.order_id)
            .collect();
        for order_id in live {
            book.cancel(order_id, now);
        }
        return Reply::json(
            200,
            &json!({
                "msg": "Request was submitted",
                "order_id": -1,
                "conid": -1,
                "account": acct,
            }),
        );
    }
    let Some(order_id) = path_order_id(id).filter(|i| book.orders.iter().any(|o| o.order_id == *i))
    else {
        return reject(&format!("OrderID {id} doesn't exist"));
    };
    if !book.cancel(order_id, now) {
        let status = book
            .orders
            .iter()
            .find(|o| o.order_id == order_id)
            .map_or("", |o| o.status.as_str());
        return reject(&format!("OrderID {id} cannot be cancelled: it is {status}"));
    }
    Reply::json(
        200,
        &json!({
            "msg": "Request was submitted",
            "order_id": order_id,
            "conid": -1,
            "account": acct,
        }),
    )
}

/// UTC `YYMMDDHHmmss`, as live orders and order status stamp times.
fn short_stamp(at: DateTime<Utc>) -> String {
    at.format("%y%m%d%H%M%S").to_string()
}

/// One order as `GET /iserver/account/orders` lists it.
fn live_order_json(order: &Order, state: &State) -> Value {
    let inst = state.market.scenario.by_conid(order.conid);
    let company = inst.map_or("", |i| i.company_name.as_str());
    let size_and_fills = if order.filled == order.quantity {
        order.quantity.to_string()
    } else {
        format!("{}/{}", order.filled, order.quantity)
    };
    let verb = match (order.side, order.status) {
        (Side::Buy, OrderStatus::Filled) => "Bought",
        (Side::Sell, OrderStatus::Filled) => "Sold",
        (Side::Buy, _) => "Buy",
        (Side::Sell, _) => "Sell",
    };
    let shown_price = order.price.map(price_text).unwrap_or_default();
    let mut row = json!({
        "acct": order.account,
        "conidex": order.conid.to_string(),
        "conid": order.conid,
        "account": order.account,
        "orderId": order.order_id,
        "cashCcy": "AUD",
        "sizeAndFills": size_and_fills,
        "orderDesc": format!(
            "{verb} {} {} {shown_price}, {}",
            order.quantity,
            order.order_type.title(),
            order.tif.as_str()
        ),
        "description1": order.symbol,
        "ticker": order.symbol,
        "secType": "STK",
        "listingExchange": "ASX",
        "remainingQuantity": order.remaining() as f64,
        "filledQuantity": order.filled as f64,
        "totalSize": order.quantity as f64,
        "companyName": company,
        "status": order.status.as_str(),
        "order_ccp_status": order.status.as_str(),
        "origOrderType": order.order_type.title().to_uppercase(),
        "supportsTaxOpt": "1",
        "lastExecutionTime": short_stamp(order.updated_at),
        "lastExecutionTime_r": order.updated_at.timestamp_millis(),
        "orderType": order.order_type.title(),
        "timeInForce": order.tif.as_str(),
        "side": order.side.as_str(),
        "price": shown_price,
    });
    if let Some(map) = row.as_object_mut() {
        if let Some(coid) = &order.coid {
            map.insert("order_ref".into(), json!(coid));
        }
        if let Some(avg) = order.avg_price {
            map.insert("avgPrice".into(), json!(price_text(avg)));
        }
        if let Some(aux) = order.aux_price {
            map.insert("auxPrice".into(), json!(price_text(aux)));
        }
    }
    row
}

/// Live-orders `filters` values and the statuses they keep.
fn status_filter(name: &str) -> Option<Option<OrderStatus>> {
    match name {
        "pre_submitted" => Some(Some(OrderStatus::PreSubmitted)),
        "submitted" => Some(Some(OrderStatus::Submitted)),
        "filled" => Some(Some(OrderStatus::Filled)),
        "cancelled" => Some(Some(OrderStatus::Cancelled)),
        // Statuses the simulator never reaches, and the sort-only value.
        "inactive" | "pending_submit" | "pending_cancel" | "warn_state" | "sort_by_time" => {
            Some(None)
        }
        _ => None,
    }
}

/// `GET /iserver/account/orders[?filters=..][&force=true]`: live orders and
/// those that filled or were cancelled on the clock's day.
fn live_orders(state: &mut State, req: &Incoming, now: Instant) -> Reply {
    if let Err(reply) = session::require_accounts_primed(state) {
        return reply;
    }
    let every = state.config.slow_endpoint_interval;
    if let Some(reply) = pace(state, "account/orders", 1, every, now) {
        return reply;
    }
    let Ok(params) = oauth::query_pairs(&req.query) else {
        return bad("malformed query string");
    };
    let param = |key: &str| {
        params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let force = match param("force") {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => return bad(&format!("force must be true or false, got {other:?}")),
    };
    let mut wanted = Vec::new();
    let mut filtering = false;
    for name in param("filters")
        .unwrap_or("")
        .split(',')
        .filter(|s| !s.is_empty())
    {
        match status_filter(name) {
            Some(status) => {
                filtering |= name != "sort_by_time";
                wanted.extend(status);
            }
            None => return bad(&format!("unknown filter {name:?}")),
        }
    }
    if force || !state.session.orders_ready {
        state.session.orders_ready = true;
        return Reply::json(200, &json!({ "orders": [], "snapshot": false }));
    }
    let today = Scenario::local(state.market.now).date();
    let rows: Vec<Value> = state
        .book
        .orders
        .iter()
        .rev()
        .filter(|o| o.status.is_live() || Scenario::local(o.updated_at).date() == today)
        .filter(|o| !filtering || wanted.contains(&o.status))
        .take(1000)
        .map(|o| live_order_json(o, state))
        .collect();
    Reply::json(200, &json!({ "orders": rows, "snapshot": true }))
}

/// `GET /iserver/account/order/status/{id}`; 503 for an unknown order.
fn order_status(state: &State, id: &str) -> Reply {
    let Some(order) =
        path_order_id(id).and_then(|id| state.book.orders.iter().find(|o| o.order_id == id))
    else {
        return Reply::error(503, &format!("order {id} is not known to this session"));
    };
    let mut body = json!({
        "order_id": order.order_id,
        "conid": order.conid,
        "symbol": order.symbol,
        "side": order.side.letter(),
        "order_status": order.status.as_str(),
        "order_ccp_status": order.status.as_str(),
        "size": format!("{:.1}", order.remaining() as f64),
        "total_size": format!("{:.1}", order.quantity as f64),
        "cum_fill": format!("{:.1}", order.filled as f64),
        "average_price": order.avg_price.map(price_text).unwrap_or_default(),
        "order_type": order.order_type.as_str(),
        "tif": order.tif.as_str(),
        "order_not_editable": !order.status.is_live(),
        "cannot_cancel_order": !order.status.is_live(),
        "order_time": short_stamp(order.placed_at),
        "listing_exchange": "ASX",
        "account": order.account,
    });
    if let Some(map) = body.as_object_mut() {
        if let Some(price) = order.limit_price() {
            map.insert("limit_price".into(), json!(price_text(price)));
        }
        if let Some(stop) = order.stop_price() {
            map.insert("stop_price".into(), json!(price_text(stop)));
        }
    }
    Reply::json(200, &body)
}

/// `GET /iserver/account/trades[?days=N]`: fills of today, or of the last
/// N calendar days (N at most 7), by the clock's Sydney date.
fn trades(state: &mut State, req: &Incoming, now: Instant) -> Reply {
    let every = state.config.slow_endpoint_interval;
    if let Some(reply) = pace(state, "account/trades", 1, every, now) {
        return reply;
    }
    let Ok(params) = oauth::query_pairs(&req.query) else {
        return bad("malformed query string");
    };
    let days = match params
        .iter()
        .find(|(k, _)| k == "days")
        .map(|(_, v)| v.as_str())
    {
        None => 1,
        Some(text) => match text.parse::<i64>() {
            Ok(n @ 1..=7) => n,
            _ => {
                return bad(&format!(
                    "days must be a whole number from 1 to 7, got {text:?}"
                ));
            }
        },
    };
    let today = Scenario::local(state.market.now).date();
    let first = today - Duration::days(days - 1);
    let rows: Vec<Value> = state
        .book
        .executions
        .iter()
        .filter(|e| {
            let date = Scenario::local(e.time).date();
            date >= first && date <= today && e.time <= state.market.now
        })
        .map(|e| {
            let inst = state.market.scenario.by_conid(e.conid);
            let verb = if e.side == Side::Buy {
                "Bought"
            } else {
                "Sold"
            };
            let description = format!("{verb} {} @ {} on ASX", e.quantity, price_text(e.price));
            let mut row = json!({
                "execution_id": e.execution_id,
                "symbol": e.symbol,
                "side": e.side.letter(),
                "order_description": description,
                "trade_time": e.time.format("%Y%m%d-%H:%M:%S").to_string(),
                "trade_time_r": e.time.timestamp_millis(),
                "size": e.quantity as f64,
                "price": price_text(e.price),
                "submitter": "skimsim1",
                "exchange": "ASX",
                "commission": "0.00",
                "net_amount": e.quantity as f64 * e.price,
                "account": e.account,
                "accountCode": e.account,
                "company_name": inst.map_or("", |i| i.company_name.as_str()),
                "contract_description_1": e.symbol,
                "sec_type": "STK",
                "listing_exchange": "ASX",
                "conid": e.conid,
                "conidEx": e.conid.to_string(),
                "clearing_id": "IB",
                "clearing_name": "IB",
                "liquidation_trade": "0",
                "is_event_trading": "0",
            });
            if let (Some(map), Some(coid)) = (row.as_object_mut(), &e.coid) {
                map.insert("order_ref".into(), json!(coid));
            }
            row
        })
        .collect();
    Reply::json(200, &Value::Array(rows))
}

/// Checks the account in a `/portfolio/{acct}/...` path and the priming.
fn portfolio_gate(state: &State, acct: &str) -> Result<(), Reply> {
    if !state.session.portfolio_primed {
        return Err(bad("Please query /portfolio/accounts first"));
    }
    if acct != state.config.account_id {
        return Err(bad(&format!(
            "account {acct} is not available to this user"
        )));
    }
    Ok(())
}

/// The positions as IBKR's server-side cache would compute them now.
fn position_rows(state: &State) -> Vec<Value> {
    let scenario = &state.market.scenario;
    let local = Scenario::local(state.market.now);
    state
        .book
        .positions
        .values()
        .filter(|p| p.quantity != 0)
        .map(|p| {
            let inst = scenario.by_conid(p.conid);
            let last = inst.map_or(p.avg_cost, |i| scenario.quote_at(i, local).0.last);
            let value = p.quantity as f64 * last;
            json!({
                "acctId": state.config.account_id,
                "conid": p.conid,
                "contractDesc": p.symbol,
                "position": p.quantity as f64,
                "mktPrice": last,
                "mktValue": value,
                "currency": "AUD",
                "avgCost": p.avg_cost,
                "avgPrice": p.avg_cost,
                "realizedPnl": p.realized_pnl,
                "unrealizedPnl": value - p.quantity as f64 * p.avg_cost,
                "exchs": null,
                "expiry": null,
                "putOrCall": null,
                "multiplier": null,
                "strike": 0.0,
                "exerciseStyle": null,
                "conExchMap": [],
                "assetClass": "STK",
                "undConid": 0,
                "model": "",
            })
        })
        .collect()
}

/// `GET /portfolio/{acct}/positions/{page}`, from the cache.
fn positions(state: &mut State, acct: &str, page: &str) -> Reply {
    if let Err(reply) = portfolio_gate(state, acct) {
        return reply;
    }
    let Ok(page) = page.parse::<usize>() else {
        return bad(&format!("page must be a whole number from 0, got {page:?}"));
    };
    if state.book.positions_cache.is_none() {
        state.book.positions_cache = Some(position_rows(state));
    }
    let rows = state.book.positions_cache.as_deref().unwrap_or_default();
    let page_rows: Vec<Value> = rows
        .iter()
        .skip(page * POSITIONS_PER_PAGE)
        .take(POSITIONS_PER_PAGE)
        .cloned()
        .collect();
    Reply::json(200, &Value::Array(page_rows))
}

/// `POST /portfolio/{acct}/positions/invalidate`.
fn invalidate(state: &mut State, acct: &str) -> Reply {
    if let Err(reply) = portfolio_gate(state, acct) {
        return reply;
    }
    state.book.positions_cache = None;
    Reply::json(200, &json!({ "message": "success" }))
}

/// `GET /portfolio/{acct}/summary`.
fn summary(state: &State, acct: &str) -> Reply {
    if let Err(reply) = portfolio_gate(state, acct) {
        return reply;
    }
    let scenario = &state.market.scenario;
    let local = Scenario::local(state.market.now);
    let mut market_value = 0.0;
    let mut gross = 0.0;
    for p in state.book.positions.values() {
        let last = scenario
            .by_conid(p.conid)
            .map_or(p.avg_cost, |i| scenario.quote_at(i, local).0.last);
        market_value += p.quantity as f64 * last;
        gross += (p.quantity as f64 * last).abs();
    }
    let cash = state.book.cash;
    let net = cash + market_value;
    let available = net - 0.25 * gross;
    let stamp = state.market.now.timestamp_millis();
    let amount = |value: f64| {
        json!({
            "amount": (value * 100.0).round() / 100.0,
            "currency": "AUD",
            "isNull": false,
            "timestamp": stamp,
            "value": null,
            "severity": 0,
        })
    };
    Reply::json(
        200,
        &json!({
            "accountcode": {
                "amount": 0.0,
                "currency": null,
                "isNull": false,
                "timestamp": stamp,
                "value": acct,
                "severity": 0,
            },
            "netliquidation": amount(net),
            "totalcashvalue": amount(cash),
            "availablefunds": amount(available),
            "buyingpower": amount(4.0 * available),
            "excessliquidity": amount(available),
            "grosspositionvalue": amount(gross),
        }),
    )
}
