//! IBKR's market-data endpoints, answered from the [`Scenario`] at the
//! simulated "now": scanner parameters and runs, contract search, contract
//! rules, snapshots (with the pre-flight call and the priming rule) and
//! historical bars (reference sections 5.6-5.9 and 6).
//!
//! Pacing is IBKR's: a call over a per-endpoint limit is answered 429 and
//! starts the penalty box, during which every request gets 429. Limits are
//! counted on the real clock; prices come from the simulated one, which
//! stands still until it is set again.
//!
//! Prices follow the clock across a multi-day scenario: quotes, snapshots
//! and 1-minute history show the clock's trading day (the last one on or
//! before its date), against the close of the trading day before; daily
//! history ends with the last day complete at the clock's instant.
//!
//! Not modelled: trading halts (no `H` prefix on field 31), and the history
//! endpoint's limit of 5 concurrent requests, which the server's 4 workers
//! cannot exceed, so it never answers 429 for it.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDateTime, NaiveTime, Utc};
use serde_json::{Map, Value, json};

use crate::http::{Incoming, Reply};
use crate::scenario::{self, Instrument, Quote, Scenario};
use crate::{State, oauth, session};

/// How long the penalty box lasts by default: the WEBAPI page's 10 minutes
/// (the older CPAPI page says 15).
pub const DEFAULT_PENALTY: Duration = Duration::from_secs(600);

/// `/iserver/scanner/params`: one call per 15 minutes.
const SCANNER_PARAMS_EVERY: Duration = Duration::from_secs(15 * 60);

/// The scan types the simulator can run.
const SCAN_TYPES: [&str; 2] = ["HIGH_OPEN_GAP", "LOW_OPEN_GAP"];

/// Scanner filters the simulator applies, by code.
const FILTERS: [(&str, &str); 3] = [
    ("priceAbove", "Price Above"),
    ("priceBelow", "Price Below"),
    ("volumeAbove", "Volume Above"),
];

/// Snapshot field codes the simulator knows how to fill.
const SNAPSHOT_FIELDS: [&str; 22] = [
    "31", "55", "70", "71", "82", "83", "84", "85", "86", "87", "88", "6004", "6008", "6070",
    "6509", "7051", "7221", "7295", "7296", "7741", "7762", "7768",
];

/// The market's state: the day being played, the clock, and what clients
/// have subscribed to or used up.
pub(crate) struct Market {
    pub scenario: Scenario,
    pub now: DateTime<Utc>,
    /// Fields subscribed per conid by its first snapshot call.
    subscriptions: HashMap<u64, Vec<String>>,
    scanner_params_at: Option<Instant>,
    /// Recent accepted calls per paced endpoint, oldest first.
    recent: HashMap<&'static str, VecDeque<Instant>>,
    pub penalty: Duration,
}

impl Market {
    /// A market playing `scenario`, its clock at 07:00 Sydney on the day.
    pub fn new(scenario: Scenario) -> Market {
        let now = opening_clock(&scenario);
        Market {
            scenario,
            now,
            subscriptions: HashMap::new(),
            scanner_params_at: None,
            recent: HashMap::new(),
            penalty: DEFAULT_PENALTY,
        }
    }

    /// Plays another day: clock back to 07:00 on it, subscriptions gone.
    pub fn set_scenario(&mut self, scenario: Scenario) {
        self.now = opening_clock(&scenario);
        self.scenario = scenario;
        self.subscriptions.clear();
    }

    fn local(&self) -> NaiveDateTime {
        Scenario::local(self.now)
    }

    /// `inst`'s quote now and the close of the trading day before.
    pub fn quote_and_prior(&self, inst: &Instrument) -> (Quote, f64) {
        self.scenario.quote_at(inst, self.local())
    }

    /// `inst`'s quote now.
    pub fn quote(&self, inst: &Instrument) -> Quote {
        self.quote_and_prior(inst).0
    }
}

fn opening_clock(scenario: &Scenario) -> DateTime<Utc> {
    scenario.instant(NaiveTime::from_hms_opt(7, 0, 0).expect("a valid time"))
}

/// Serves the market-data endpoints; `None` when the request is not one.
pub(crate) fn route(
    state: &mut State,
    req: &Incoming,
    api_path: &str,
    now: Instant,
) -> Option<Reply> {
    let reply = match (req.method.as_str(), api_path) {
        ("GET", "/iserver/scanner/params") => scanner_params(state, now),
        ("POST", "/iserver/scanner/run") => scanner_run(state, req, now),
        ("GET", "/iserver/secdef/search") => secdef_search(state, req),
        ("GET", "/iserver/marketdata/snapshot") => snapshot(state, req, now),
        ("GET", "/iserver/marketdata/history") => history(state, req),
        ("POST", "/iserver/contract/rules") => contract_rules(state, req),
        ("GET", path) => {
            let conid = path
                .strip_prefix("/iserver/contract/")?
                .strip_suffix("/info-and-rules")?;
            info_and_rules(state, req, conid)
        }
        _ => return None,
    };
    Some(reply)
}

/// Counts a call to a paced endpoint; over the limit, answers 429 and
/// starts the penalty box, as IBKR does.
pub(crate) fn pace(
    state: &mut State,
    key: &'static str,
    limit: usize,
    per: Duration,
    now: Instant,
) -> Option<Reply> {
    let recent = state.market.recent.entry(key).or_default();
    while recent
        .front()
        .is_some_and(|t| now.duration_since(*t) >= per)
    {
        recent.pop_front();
    }
    if recent.len() >= limit {
        state.penalty_until = Some(now + state.market.penalty);
        return Some(Reply::error(429, "Too Many Requests"));
    }
    recent.push_back(now);
    None
}

/// The query as a map; a malformed query is the client's error.
fn query(req: &Incoming) -> Result<HashMap<String, String>, Reply> {
    oauth::query_pairs(&req.query)
        .map(|pairs| pairs.into_iter().collect())
        .map_err(|_| Reply::error(400, "malformed query string"))
}

fn bad(message: &str) -> Reply {
    Reply::error(400, message)
}

/// A price as IBKR's strings show it: at least 2 decimals, at most 3.
pub fn price_text(price: f64) -> String {
    let text = format!("{price:.3}");
    match text.strip_suffix('0') {
        Some(short) => short.to_string(),
        None => text,
    }
}

/// Volume with IBKR's `K`/`M` suffixes, e.g. `3.1M`, `350K`, `912`.
pub fn volume_text(volume: u64) -> String {
    let (value, suffix) = match volume {
        0..1_000 => return volume.to_string(),
        1_000..1_000_000 => (volume as f64 / 1e3, "K"),
        _ => (volume as f64 / 1e6, "M"),
    };
    let text = format!("{value:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}{suffix}")
}

fn scanner_params(state: &mut State, now: Instant) -> Reply {
    let market = &mut state.market;
    if let Some(at) = market.scanner_params_at
        && now.duration_since(at) < SCANNER_PARAMS_EVERY
    {
        state.penalty_until = Some(now + market.penalty);
        return Reply::error(429, "Too Many Requests");
    }
    market.scanner_params_at = Some(now);
    let filters: Vec<&str> = FILTERS.iter().map(|(code, _)| *code).collect();
    Reply::json(
        200,
        &json!({
            "scan_type_list": SCAN_TYPES.iter().map(|code| json!({
                "display_name": code.replace('_', " ").to_lowercase(),
                "code": code,
                "instruments": ["STK", "STOCK.HK"],
            })).collect::<Vec<_>>(),
            "instrument_list": [
                { "display_name": "US Stocks", "type": "STK", "filters": filters },
                { "display_name": "Asia-Pacific Stocks", "type": "STOCK.HK", "filters": filters },
            ],
            "filter_list": FILTERS.iter().map(|(code, name)| json!({
                "group": "Price and volume",
                "display_name": name,
                "code": code,
                "type": "non-range",
            })).collect::<Vec<_>>(),
            "location_tree": [
                {
                    "display_name": "US Stocks",
                    "type": "STK",
                    "locations": [
                        {
                            "display_name": "Listed/NASDAQ",
                            "type": "STK.US.MAJOR",
                            "locations": [],
                        },
                    ],
                },
                {
                    "display_name": "Asia-Pacific Stocks",
                    "type": "STOCK.HK",
                    "locations": [
                        { "display_name": "Australia", "type": "STK.HK.ASX", "locations": [] },
                    ],
                },
            ],
        }),
    )
}

/// The location a scanner instrument may run in.
fn location_of(instrument: &str) -> Option<&'static str> {
    match instrument {
        "STK" => Some("STK.US.MAJOR"),
        "STOCK.HK" => Some("STK.HK.ASX"),
        _ => None,
    }
}

fn scanner_run(state: &mut State, req: &Incoming, now: Instant) -> Reply {
    if let Some(reply) = pace(state, "scanner/run", 1, Duration::from_secs(1), now) {
        return reply;
    }
    let Some(body) = req.json_body() else {
        return bad("body must be JSON {instrument, type, location, filter}");
    };
    let text = |key: &str| body.get(key).and_then(Value::as_str).unwrap_or("");
    let (instrument, scan, location) = (text("instrument"), text("type"), text("location"));
    let Some(allowed_location) = location_of(instrument) else {
        return bad(&format!("invalid instrument {instrument:?}"));
    };
    if !SCAN_TYPES.contains(&scan) {
        return bad(&format!("invalid scan type {scan:?}"));
    }
    if location != allowed_location {
        return bad(&format!(
            "invalid location {location:?} for instrument {instrument}"
        ));
    }
    let mut filters = Vec::new();
    let empty = Vec::new();
    let given = match body.get("filter") {
        None => &empty,
        Some(Value::Array(items)) => items,
        Some(_) => return bad("filter must be an array of {code, value}"),
    };
    for item in given {
        let code = item.get("code").and_then(Value::as_str).unwrap_or("");
        let value = match item.get("value") {
            Some(Value::Number(n)) => n.as_f64(),
            Some(Value::String(s)) => s.parse().ok(),
            _ => None,
        };
        match (FILTERS.iter().any(|(c, _)| *c == code), value) {
            (true, Some(value)) => filters.push((code.to_string(), value)),
            (false, _) => return bad(&format!("invalid filter code {code:?}")),
            (true, None) => return bad(&format!("filter {code} needs a numeric value")),
        }
    }

    let market = &state.market;
    let mut hits: Vec<(&Instrument, f64, Option<u32>)> = Vec::new();
    if instrument == "STOCK.HK" {
        for inst in &market.scenario.instruments {
            let (quote, prior) = market.quote_and_prior(inst);
            let Some(gap) = quote.open.map(|open| (open - prior) / prior * 100.0) else {
                continue;
            };
            let keep = filters.iter().all(|(code, value)| match code.as_str() {
                "priceAbove" => quote.last > *value,
                "priceBelow" => quote.last < *value,
                _ => quote.volume as f64 > *value,
            });
            let wanted = match scan {
                "HIGH_OPEN_GAP" => inst.scanner_rank.is_some() && gap > 0.0,
                _ => gap < 0.0,
            };
            if keep && wanted {
                hits.push((inst, gap, inst.scanner_rank));
            }
        }
    }
    if scan == "HIGH_OPEN_GAP" {
        hits.sort_by_key(|(_, _, rank)| *rank);
    } else {
        hits.sort_by(|a, b| a.1.total_cmp(&b.1));
    }
    let contracts: Vec<Value> = hits
        .iter()
        .take(50)
        .enumerate()
        .map(|(i, (inst, gap, _))| {
            let mut row = json!({
                "server_id": format!("scan_{i}"),
                "symbol": inst.symbol,
                "conidex": inst.conid.to_string(),
                "con_id": inst.conid,
                "available_chart_periods": "#R|1",
                "company_name": inst.company_name,
                "scan_data": format!("{gap:+.2}%"),
                "contract_description_1": inst.symbol,
                "listing_exchange": "ASX",
                "sec_type": "STK",
            });
            if i == 0 {
                row["column_name"] = json!("Gap");
            }
            row
        })
        .collect();
    Reply::json(
        200,
        &json!({ "contracts": contracts, "scan_data_column_name": "Gap" }),
    )
}

fn secdef_search(state: &State, req: &Incoming) -> Reply {
    let params = match query(req) {
        Ok(params) => params,
        Err(reply) => return reply,
    };
    let Some(symbol) = params.get("symbol").filter(|s| !s.trim().is_empty()) else {
        return bad("symbol is required");
    };
    let Some(inst) = state.market.scenario.by_symbol(symbol.trim()) else {
        return Reply::json(200, &json!([]));
    };
    let entry = |conid: u64, name: &str, exchange: &str| {
        json!({
            "conid": conid.to_string(),
            "companyHeader": format!("{name} - {exchange}"),
            "companyName": name,
            "symbol": inst.symbol,
            "description": exchange,
            "restricted": null,
            "fop": null,
            "opt": null,
            "war": null,
            "sections": [{ "secType": "STK", "exchange": format!("{exchange};") }],
        })
    };
    let mut entries = vec![entry(inst.conid, &inst.company_name, "ASX")];
    for other in &inst.other_listings {
        entries.push(entry(other.conid, &other.company_name, &other.exchange));
    }
    Reply::json(200, &Value::Array(entries))
}

/// Parses a comma list of at most `max` items, each accepted by `check`.
fn comma_list(
    text: &str,
    what: &str,
    max: usize,
    check: impl Fn(&str) -> bool,
) -> Result<Vec<String>, Reply> {
    let items: Vec<String> = text.split(',').map(|s| s.trim().to_string()).collect();
    if items.iter().any(|s| !check(s)) {
        return Err(bad(&format!(
            "{what} must be a comma-separated list of numbers"
        )));
    }
    if items.len() > max {
        return Err(bad(&format!(
            "at most {max} {what} per request, got {}",
            items.len()
        )));
    }
    Ok(items)
}

fn is_number(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

fn snapshot(state: &mut State, req: &Incoming, now: Instant) -> Reply {
    if let Err(reply) = session::require_accounts_primed(state) {
        return reply;
    }
    if let Some(reply) = pace(
        state,
        "marketdata/snapshot",
        10,
        Duration::from_secs(1),
        now,
    ) {
        return reply;
    }
    let params = match query(req) {
        Ok(params) => params,
        Err(reply) => return reply,
    };
    let Some(conids) = params.get("conids") else {
        return bad("conids is required");
    };
    let conids = match comma_list(conids, "conids", 100, is_number) {
        Ok(list) => list,
        Err(reply) => return reply,
    };
    let fields = match params
        .get("fields")
        .map(|f| comma_list(f, "fields", 50, is_number))
    {
        Some(Ok(list)) => Some(list),
        Some(Err(reply)) => return reply,
        None => None,
    };

    let market = &mut state.market;
    let updated = market.now.timestamp_millis();
    let mut out = Vec::new();
    for text in &conids {
        let conid: u64 = match text.parse() {
            Ok(conid) => conid,
            Err(_) => return bad(&format!("conid {text} is out of range")),
        };
        let known = market
            .scenario
            .instruments
            .iter()
            .any(|i| i.conid == conid || i.other_listings.iter().any(|l| l.conid == conid));
        if !known {
            return bad(&format!("conid {conid} is not a known contract"));
        }
        let Some(subscribed) = market.subscriptions.get(&conid) else {
            // The pre-flight call: it opens the stream for exactly these
            // fields and carries no data yet.
            market
                .subscriptions
                .insert(conid, fields.clone().unwrap_or_default());
            out.push(json!({ "conid": conid, "conidEx": text }));
            continue;
        };
        let mut row = Map::new();
        row.insert("conid".into(), json!(conid));
        row.insert("conidEx".into(), json!(text));
        row.insert("_updated".into(), json!(updated));
        row.insert("server_id".into(), json!("q0"));
        row.insert("6119".into(), json!("q0"));
        for code in subscribed {
            if fields.as_ref().is_some_and(|wanted| !wanted.contains(code)) {
                continue;
            }
            if let Some(value) = field_value(market, conid, code) {
                row.insert(code.clone(), json!(value));
            }
        }
        out.push(Value::Object(row));
    }
    Reply::json(200, &Value::Array(out))
}

/// One snapshot field of `conid` now; `None` when IBKR would leave it out
/// (not traded yet, or a field the simulator does not model).
fn field_value(market: &Market, conid: u64, code: &str) -> Option<String> {
    if !SNAPSHOT_FIELDS.contains(&code) {
        return None;
    }
    let scenario = &market.scenario;
    let Some(inst) = scenario.by_conid(conid) else {
        // Another exchange's listing: the account has no data for it.
        let (inst, listing) = scenario.instruments.iter().find_map(|i| {
            i.other_listings
                .iter()
                .find(|l| l.conid == conid)
                .map(|l| (i, l))
        })?;
        return match code {
            "55" => Some(inst.symbol.clone()),
            "6509" => Some("NpB".to_string()),
            "7051" => Some(listing.company_name.clone()),
            "6004" | "7221" => Some(listing.exchange.clone()),
            "6008" => Some(conid.to_string()),
            "6070" => Some("STK".to_string()),
            _ => None,
        };
    };
    let (quote, prior_close) = market.quote_and_prior(inst);
    let tick = inst.increment_at(quote.last);
    let change = quote.last - prior_close;
    let value = match code {
        // Before the first trade IBKR shows the prior close, marked `C`.
        "31" if quote.has_traded() => price_text(quote.last),
        "31" => format!("C{}", price_text(quote.last)),
        "55" => inst.symbol.clone(),
        "70" => price_text(quote.high?),
        "71" => price_text(quote.low?),
        "82" if change < 0.0 => format!("-{}", price_text(-change)),
        "82" => price_text(change),
        "83" => format!("{:.2}", change / prior_close * 100.0),
        "84" => price_text(quote.last - tick),
        "86" => price_text(quote.last + tick),
        "85" | "88" => "1,300".to_string(),
        "87" if quote.has_traded() => volume_text(quote.volume),
        "7762" if quote.has_traded() => quote.volume.to_string(),
        "6004" | "7221" => "ASX".to_string(),
        "6008" => conid.to_string(),
        "6070" => "STK".to_string(),
        "6509" => "RpB".to_string(),
        "7051" => inst.company_name.clone(),
        "7295" => price_text(quote.open?),
        "7741" => price_text(prior_close),
        "7768" => "1".to_string(),
        _ => return None,
    };
    Some(value)
}

/// A history `period` or `bar` length, e.g. `5min`, `2h`, `1d`, `1w`.
fn parse_span(text: &str) -> Option<(u32, &'static str)> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (count, unit) = text.split_at(split);
    let count: u32 = count.parse().ok()?;
    let (unit, max) = match unit {
        "min" => ("min", 30),
        "h" => ("h", 8),
        "d" => ("d", 1000),
        "w" => ("w", 792),
        "m" => ("m", 182),
        "y" => ("y", 15),
        _ => return None,
    };
    (1..=max).contains(&count).then_some((count, unit))
}

fn span_duration(count: u32, unit: &str) -> chrono::Duration {
    let count = i64::from(count);
    match unit {
        "min" => chrono::Duration::minutes(count),
        "h" => chrono::Duration::hours(count),
        "d" => chrono::Duration::days(count),
        "w" => chrono::Duration::weeks(count),
        "m" => chrono::Duration::days(30 * count),
        _ => chrono::Duration::days(365 * count),
    }
}

const BAR_SIZES: [&str; 15] = [
    "1min", "2min", "3min", "5min", "10min", "15min", "30min", "1h", "2h", "3h", "4h", "8h", "1d",
    "1w", "1m",
];

fn history(state: &State, req: &Incoming) -> Reply {
    let params = match query(req) {
        Ok(params) => params,
        Err(reply) => return reply,
    };
    let market = &state.market;
    let Some(conid) = params.get("conid").and_then(|c| c.parse::<u64>().ok()) else {
        return bad("conid is required and must be a number");
    };
    let Some(inst) = market.scenario.by_conid(conid) else {
        return bad(&format!("conid {conid} is not a known ASX contract"));
    };
    let bar = params.get("bar").map(String::as_str).unwrap_or("");
    if !BAR_SIZES.contains(&bar) {
        return bad(&format!("bar {bar:?} is not a valid bar size"));
    }
    if bar != "1min" && bar != "1d" {
        return bad(&format!(
            "bar {bar} is valid at IBKR but the simulator serves only 1min and 1d"
        ));
    }
    let period_text = params.get("period").map_or("1w", String::as_str);
    let Some((count, unit)) = parse_span(period_text) else {
        return bad(&format!("period {period_text:?} is not a valid period"));
    };
    let period = span_duration(count, unit);
    // IBKR's step-size table: 1-minute bars only for periods up to a day,
    // daily bars only for periods longer than one.
    let day = chrono::Duration::days(1);
    if (bar == "1min" && period > day) || (bar == "1d" && period <= day) {
        return bad(&format!(
            "bar {bar} cannot be used with period {period_text}"
        ));
    }
    match params.get("outsideRth").map(String::as_str) {
        None | Some("true" | "false") => {}
        Some(other) => return bad(&format!("outsideRth must be true or false, got {other:?}")),
    }
    let end = match params.get("startTime") {
        None => market.now,
        Some(text) => match NaiveDateTime::parse_from_str(text, "%Y%m%d-%H:%M:%S") {
            Ok(t) => t.and_utc().min(market.now),
            Err(_) => return bad(&format!("startTime {text:?} is not YYYYMMDD-HH:mm:ss")),
        },
    };
    let start = end - period;

    let scenario = &market.scenario;
    let end_local = Scenario::local(end);
    let mut points: Vec<(DateTime<Utc>, [f64; 4], u64)> = Vec::new();
    if bar == "1min" {
        let (day, bars) = scenario.bars_public(inst, end_local);
        for b in bars {
            let at = Scenario::instant_on(day, b.time);
            if at >= start {
                points.push((at, [b.o, b.h, b.l, b.c], b.v));
            }
        }
    } else {
        let midnight = NaiveTime::MIN;
        for b in scenario.daily_history(inst, end_local) {
            let at = scenario::local_instant(b.date.and_time(midnight));
            if at >= start && at <= end {
                points.push((at, [b.o, b.h, b.l, b.c], b.v));
            }
        }
    }
    if points.is_empty() {
        return bad("No data.");
    }
    let skip = points.len().saturating_sub(1000);
    let points = &points[skip..];

    let first = points[0].0;
    let minutes_from_start = |at: DateTime<Utc>| (at - first).num_minutes();
    let (hi_at, hi) = points
        .iter()
        .map(|p| (p.0, p.1[1]))
        .fold(
            (first, f64::MIN),
            |best, p| if p.1 > best.1 { p } else { best },
        );
    let (lo_at, lo) = points
        .iter()
        .map(|p| (p.0, p.1[2]))
        .fold(
            (first, f64::MAX),
            |best, p| if p.1 < best.1 { p } else { best },
        );
    let total: u64 = points.iter().map(|p| p.2).sum();
    let summary = |price: f64, at| {
        format!(
            "{}/{:.2}/{}",
            (price * 1000.0).round() as i64,
            total as f64 / 100.0,
            minutes_from_start(at)
        )
    };
    let data: Vec<Value> = points
        .iter()
        .map(|(at, [o, h, l, c], v)| {
            json!({ "o": o, "c": c, "h": h, "l": l, "v": v, "t": at.timestamp_millis() })
        })
        .collect();
    Reply::json(
        200,
        &json!({
            "serverId": "20477",
            "symbol": inst.symbol,
            "text": inst.company_name,
            "priceFactor": 1000,
            "startTime": first.format("%Y%m%d-%H:%M:%S").to_string(),
            "high": summary(hi, hi_at),
            "low": summary(lo, lo_at),
            "timePeriod": period_text,
            "barLength": if bar == "1min" { 60 } else { 86_400 },
            "mdAvailability": "S",
            "mktDataDelay": 0,
            "outsideRth": false,
            "volumeFactor": 1,
            "priceDisplayRule": 1,
            "priceDisplayValue": "3",
            "negativeCapable": false,
            "messageVersion": 2,
            "data": data,
            "points": data.len(),
            "travelTime": 12,
        }),
    )
}

/// The `rules` object of contract rules and info-and-rules.
fn rules(market: &Market, inst: &Instrument) -> Value {
    let price = market.quote(inst).last;
    let increment = inst.increment_at(price);
    json!({
        "algoEligible": false,
        "overnightEligible": false,
        "costReport": false,
        "canTradeAcctIds": [],
        "error": null,
        "orderTypes": ["limit", "market", "stop", "stop_limit", "trailing_stop"],
        "orderTypesOutside": [],
        "tifTypes": ["DAY/o,a", "GTC/o,a"],
        "tifDefaults": { "TIF": "DAY", "SIZE": "100.00" },
        "defaultSize": 100,
        "sizeIncrement": 1,
        "cashQtyIncr": 500,
        "limitPrice": price,
        "stopprice": price,
        "preview": true,
        "negativeCapable": false,
        "incrementType": 1,
        "incrementRules": inst.increment_rules.iter().map(|r| json!({
            "lowerEdge": r.lower_edge,
            "increment": r.increment,
        })).collect::<Vec<_>>(),
        "increment": increment,
        "incrementDigits": if increment < 0.01 { 3 } else { 2 },
        "priceMagnifier": 1,
    })
}

fn find_asx(state: &State, conid: &str) -> Result<Instrument, Reply> {
    let parsed: Option<u64> = conid.parse().ok();
    parsed
        .and_then(|c| state.market.scenario.by_conid(c))
        .cloned()
        .ok_or_else(|| bad(&format!("conid {conid:?} is not a known ASX contract")))
}

fn is_buy_flag(value: Option<&str>) -> Result<(), Reply> {
    match value {
        None | Some("true" | "false") => Ok(()),
        Some(other) => Err(bad(&format!("isBuy must be true or false, got {other:?}"))),
    }
}

fn info_and_rules(state: &State, req: &Incoming, conid: &str) -> Reply {
    let params = match query(req) {
        Ok(params) => params,
        Err(reply) => return reply,
    };
    if let Err(reply) = is_buy_flag(params.get("isBuy").map(String::as_str)) {
        return reply;
    }
    let inst = match find_asx(state, conid) {
        Ok(inst) => inst,
        Err(reply) => return reply,
    };
    Reply::json(
        200,
        &json!({
            "cfi_code": "",
            "symbol": inst.symbol,
            "cusip": null,
            "expiry_full": null,
            "con_id": inst.conid,
            "maturity_date": null,
            "industry": "",
            "instrument_type": "STK",
            "trading_class": inst.symbol,
            "valid_exchanges": "SMART,ASX,CHIXAU",
            "allow_sell_long": false,
            "is_zero_commission_security": false,
            "local_symbol": inst.symbol,
            "contract_clarification_type": null,
            "classifier": null,
            "currency": "AUD",
            "text": null,
            "underlying_con_id": 0,
            "r_t_h": true,
            "multiplier": null,
            "underlying_issuer": null,
            "contract_month": null,
            "company_name": inst.company_name,
            "smart_available": true,
            "exchange": "ASX",
            "category": "",
            "rules": rules(&state.market, &inst),
        }),
    )
}

fn contract_rules(state: &State, req: &Incoming) -> Reply {
    let Some(body) = req.json_body() else {
        return bad("body must be JSON {conid, isBuy, ...}");
    };
    let conid = match body.get("conid") {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        _ => return bad("conid is required"),
    };
    match body.get("isBuy") {
        None | Some(Value::Bool(_)) => {}
        Some(_) => return bad("isBuy must be a boolean"),
    }
    match find_asx(state, &conid) {
        Ok(inst) => Reply::json(200, &rules(&state.market, &inst)),
        Err(reply) => reply,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_and_volumes_read_like_ibkr() {
        assert_eq!(price_text(45.0), "45.00");
        assert_eq!(price_text(1.07), "1.07");
        assert_eq!(price_text(0.056), "0.056");
        assert_eq!(volume_text(912), "912");
        assert_eq!(volume_text(350_000), "350K");
        assert_eq!(volume_text(3_100_456), "3.1M");
        assert_eq!(volume_text(163_773), "163.77K");
    }

    #[test]
    fn periods_follow_ibkr_ranges() {
        assert_eq!(parse_span("1d"), Some((1, "d")));
        assert_eq!(parse_span("30min"), Some((30, "min")));
        assert_eq!(parse_span("31min"), None);
        assert_eq!(parse_span("0d"), None);
        assert_eq!(parse_span("d"), None);
        assert_eq!(parse_span("2x"), None);
    }
}
