//! The simulator's own control endpoints, outside IBKR's prefix and
//! unsigned, for demo scripts: `POST /sim/clock {"now": RFC 3339}` moves
//! the market clock (working open orders against the bars it passes),
//! `GET /sim/clock` reads it, and `GET /sim/state` dumps what the
//! simulator received and holds (request counts, Discord messages, orders,
//! executions, positions and cash).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::State;
use crate::discord::redact_path;
use crate::http::{Incoming, Reply};
use crate::scenario::Scenario;

/// Where the control endpoints live.
pub const PREFIX: &str = "/sim/";

/// Parses an RFC 3339 instant such as `2026-03-02T10:15:00+11:00`.
pub fn parse_now(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.to_utc())
        .map_err(|_| format!("now {text:?} is not an RFC 3339 time like 2026-03-02T10:15:00+11:00"))
}

fn clock(state: &State) -> Value {
    let now = state.market.now;
    json!({
        "now": now.to_rfc3339(),
        "sydney": Scenario::local(now).format("%Y-%m-%d %H:%M:%S").to_string(),
        "date": state.market.scenario.date.to_string(),
    })
}

/// Serves a `/sim/...` request.
pub(crate) fn serve(state: &mut State, req: &Incoming) -> Reply {
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/sim/clock") => Reply::json(200, &clock(state)),
        ("POST", "/sim/clock") => {
            let given = req
                .json_body()
                .and_then(|b| b.get("now").and_then(Value::as_str).map(str::to_string));
            let Some(text) = given else {
                return Reply::error(400, "body must be {\"now\": \"RFC 3339 time\"}");
            };
            match parse_now(&text) {
                Ok(now) => {
                    state.move_clock(now);
                    Reply::json(200, &clock(state))
                }
                Err(message) => Reply::error(400, &message),
            }
        }
        ("GET", "/sim/state") => Reply::json(200, &dump(state)),
        _ => Reply::error(
            404,
            &format!("no control endpoint {} {}", req.method, req.path),
        ),
    }
}

fn dump(state: &State) -> Value {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for record in &state.log {
        let key = format!("{} {}", record.method, redact_path(&record.path));
        *counts.entry(key).or_default() += 1;
    }
    let messages: Vec<Value> = state
        .discord
        .messages
        .iter()
        .map(|m| json!({ "id": m.id, "payload": m.payload }))
        .collect();
    json!({
        "clock": clock(state),
        "requests": counts,
        "handshakes": state.handshakes,
        "discord_messages": messages,
        "orders": state.book.orders,
        "executions": state.book.executions,
        "positions": state.book.positions.values().collect::<Vec<_>>(),
        "cash": state.book.cash,
    })
}
