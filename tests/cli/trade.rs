//! `skim trade` and `skim positions` against the simulator's example week
//! (Monday 2 March to Friday 13 March 2026): 14D, LTR and BHP are the
//! candidates; 14D and LTR break their range highs at 10:17 and fill, BHP
//! never does before the 11:00 cutoff; LTR is stopped out on Tuesday at
//! 11:30; 14D sells half on Thursday 5 March and the rest after its close
//! below the 10-day SMA on Wednesday 11 March.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Australia::Sydney;
use serde_json::Value;
use skim_sim::broker::{OrderStatus, Side};
use skim_sim::scenario::Scenario;

use crate::util::{Run, SimEnv};

const BHP: u64 = 4036812;

pub(crate) fn sydney(date: (i32, u32, u32), hour: u32, minute: u32) -> DateTime<Utc> {
    let day = NaiveDate::from_ymd_opt(date.0, date.1, date.2).unwrap();
    Sydney
        .from_local_datetime(&day.and_hms_opt(hour, minute, 0).unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

pub(crate) const MON: (i32, u32, u32) = (2026, 3, 2);
pub(crate) const TUE: (i32, u32, u32) = (2026, 3, 3);
pub(crate) const THU: (i32, u32, u32) = (2026, 3, 5);
pub(crate) const NEXT_THU: (i32, u32, u32) = (2026, 3, 12);

/// The simulator playing the example week, skim pointed at it.
pub(crate) struct Week {
    pub(crate) s: SimEnv,
}

impl Week {
    pub(crate) fn start() -> Week {
        Week::start_with(|_| {})
    }

    pub(crate) fn start_with(tune: impl FnOnce(&mut skim_sim::Config)) -> Week {
        Week::on(SimEnv::start_with(tune))
    }

    /// The week on `s`, whichever way its keys were made.
    pub(crate) fn on(mut s: SimEnv) -> Week {
        s.sim.set_scenario(Scenario::example_week());
        for (key, value) in s.sim.service_env_pairs() {
            s.env.set(key, &value);
        }
        let mut week = Week { s };
        week.at(MON, 10, 5);
        week
    }

    /// Moves the market (and skim's clock) to `hh:mm` Sydney on `date`.
    pub(crate) fn at(&mut self, date: (i32, u32, u32), hour: u32, minute: u32) {
        let now = sydney(date, hour, minute);
        self.s.sim.set_now(now);
        self.s.env.set("SKIM_NOW", &now.to_rfc3339());
    }

    pub(crate) fn skim(&self, args: &[&str]) -> Run {
        let run = self.s.skim(args);
        self.s.assert_no_secrets(&run);
        run
    }

    pub(crate) fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        self.skim(&all).expect_code(0).json()
    }

    /// Scan at 10:05 and enter at 10:12 on Monday.
    pub(crate) fn entered(&mut self) -> Value {
        self.at(MON, 10, 5);
        self.json(&["scan"]);
        self.at(MON, 10, 12);
        self.json(&["trade", "enter"])
    }

    pub(crate) fn order_posts(&self) -> usize {
        self.s
            .sim
            .requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/orders"))
            .count()
    }

    fn titles(&self) -> Vec<String> {
        self.s
            .sim
            .discord_messages()
            .iter()
            .flat_map(|m| {
                m.payload["embeds"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|e| e["title"].as_str().map(str::to_owned))
            })
            .collect()
    }

    pub(crate) fn held(&self, symbol: &str) -> i64 {
        self.s
            .sim
            .positions()
            .iter()
            .find(|p| p.symbol == symbol)
            .map_or(0, |p| p.quantity)
    }
}

fn position<'a>(doc: &'a Value, ticker: &str) -> &'a Value {
    doc["positions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["ticker"] == ticker)
        .unwrap_or_else(|| panic!("{ticker} not in {doc}"))
}

#[test]
fn a_week_of_entries_stops_half_exits_and_the_trailing_exit() {
    let mut w = Week::start();
    let entered = w.entered();
    assert_eq!(entered["status"], "ok");
    let orders = entered["orders"].as_array().unwrap();
    assert_eq!(orders.len(), 6, "three brackets: {entered}");
    let entry_14d = orders
        .iter()
        .find(|o| o["ticker"] == "14D" && o["side"] == "BUY")
        .unwrap();
    assert_eq!(entry_14d["type"], "STP");
    assert_eq!(entry_14d["stop_price"], 0.06);
    assert_eq!(entry_14d["quantity"], 83333);
    assert_eq!(entry_14d["coid"], "skim-20260302-14D-entry");
    assert_eq!(entry_14d["state"], "working");
    let stop_14d = orders
        .iter()
        .find(|o| o["ticker"] == "14D" && o["side"] == "SELL")
        .unwrap();
    assert_eq!(stop_14d["stop_price"], 0.054);
    assert!(stop_14d["coid"].is_null(), "a bracket child has no cOID");
    let bhp = orders
        .iter()
        .find(|o| o["ticker"] == "BHP" && o["side"] == "BUY")
        .unwrap();
    assert_eq!(bhp["stop_price"], 46.93);
    assert_eq!(bhp["quantity"], 106);
    // At the broker: three parents with their cOIDs, three children tied to them.
    let book = w.s.sim.orders();
    assert_eq!(book.len(), 6);
    assert_eq!(w.s.sim.count_orders_with_coid("skim-20260302-LTR-entry"), 1);
    assert!(
        book.iter()
            .filter(|o| o.coid.is_none())
            .all(|o| o.parent_id.is_some())
    );

    // 10:20: 14D and LTR filled at 10:17.
    w.at(MON, 10, 20);
    let managed = w.json(&["trade", "manage"]);
    assert_eq!(managed["status"], "ok", "{managed}");
    let fills = managed["fills"].as_array().unwrap();
    assert_eq!(fills.len(), 2, "{managed}");
    let fill = fills.iter().find(|f| f["ticker"] == "14D").unwrap();
    assert_eq!(fill["event"], "entry filled");
    assert_eq!(fill["quantity"], 83333);
    assert_eq!(fill["price"], 0.06);
    assert_eq!(w.held("14D"), 83333);
    assert_eq!(w.held("LTR"), 4566);
    let doc = w.json(&["positions"]);
    let p = position(&doc, "14D");
    assert_eq!(p["entry_price"], 0.06);
    assert_eq!(p["state"], "open");
    assert_eq!(p["stop"], 0.054);
    assert_eq!(position(&doc, "BHP")["state"], "working");

    // 11:00: BHP's entry is cancelled at the cutoff.
    w.at(MON, 11, 0);
    let managed = w.json(&["trade", "manage"]);
    assert!(
        managed["actions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["ticker"] == "BHP" && a["action"] == "cancel entry"),
        "{managed}"
    );
    let bhp_entry =
        w.s.sim
            .orders()
            .into_iter()
            .find(|o| o.coid.as_deref() == Some("skim-20260302-BHP-entry"))
            .unwrap();
    assert_eq!(bhp_entry.status, OrderStatus::Cancelled);

    // Tuesday 11:35: LTR's stop filled at 1.055 in the 11:30 bar.
    w.at(TUE, 11, 35);
    let managed = w.json(&["trade", "manage"]);
    assert_eq!(managed["fills"][0]["event"], "stop hit", "{managed}");
    assert_eq!(managed["fills"][0]["realized_pnl"], -182.64);
    assert_eq!(w.held("LTR"), 0);
    let doc = w.json(&["positions", "--all"]);
    let closed: Vec<&Value> = doc["closed"].as_array().unwrap().iter().collect();
    let ltr = closed.iter().find(|c| c["ticker"] == "LTR").unwrap();
    assert_eq!(ltr["exit_reason"], "stop");
    assert_eq!(ltr["realized_pnl"], -182.64);
    let bhp = closed.iter().find(|c| c["ticker"] == "BHP").unwrap();
    assert_eq!(bhp["state"], "cancelled");

    // Thursday, the third trading day: half of 14D sold, the stop on the
    // rest moved to the entry price.
    w.at(THU, 10, 15);
    let managed = w.json(&["trade", "manage"]);
    assert!(
        managed["actions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["ticker"] == "14D" && a["action"] == "half exit"),
        "{managed}"
    );
    assert_eq!(w.held("14D"), 83333 - 41666);
    let stop = w
        .s
        .sim
        .orders()
        .into_iter()
        .find(|o| o.symbol == "14D" && o.side == Side::Sell && o.status == OrderStatus::Submitted)
        .expect("a working stop on the rest");
    assert_eq!(stop.quantity, 41667);
    assert_eq!(stop.price, Some(0.06));
    // A re-run the same day sells nothing more.
    w.at(THU, 10, 25);
    w.json(&["trade", "manage"]);
    assert_eq!(w.held("14D"), 41667);
    let doc = w.json(&["positions"]);
    assert_eq!(position(&doc, "14D")["state"], "half exited");
    assert_eq!(position(&doc, "14D")["days_held"], 3);

    // Next Thursday: Wednesday closed below the 10-day SMA; the rest goes.
    w.at(NEXT_THU, 10, 15);
    let managed = w.json(&["trade", "manage"]);
    assert!(
        managed["actions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["ticker"] == "14D" && a["action"] == "trailing exit"),
        "{managed}"
    );
    assert_eq!(w.held("14D"), 0);
    assert!(
        !w.s.sim
            .orders()
            .iter()
            .any(|o| o.symbol == "14D" && o.status == OrderStatus::Submitted),
        "no stop left working on a flat position"
    );
    w.at(NEXT_THU, 10, 20);
    let doc = w.json(&["positions", "--all"]);
    assert!(doc["positions"].as_array().unwrap().is_empty(), "{doc}");
    let d14 = doc["closed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["ticker"] == "14D")
        .unwrap()
        .clone();
    assert_eq!(d14["exit_reason"], "trailing exit");
    assert!(d14["realized_pnl"].as_f64().unwrap() > 0.0);

    let titles = w.titles();
    for title in [
        "ASX Market Scan Complete",
        "Entry Orders Placed",
        "Entry Filled",
        "Stop Hit",
        "Half Exit (Day 3)",
        "Trailing Exit (10-day SMA)",
    ] {
        assert!(
            titles.iter().any(|t| t == title),
            "no {title:?} in {titles:?}"
        );
    }
}

#[test]
fn entering_twice_places_nothing_new() {
    let mut w = Week::start();
    let first = w.entered();
    let posts = w.order_posts();
    w.at(MON, 10, 13);
    let second = w.json(&["trade", "enter"]);
    assert_eq!(w.order_posts(), posts, "a second run sent orders");
    assert_eq!(w.s.sim.orders().len(), 6);
    let ids = |doc: &Value| -> Vec<Value> {
        doc["orders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["order_id"].clone())
            .collect()
    };
    assert_eq!(ids(&first), ids(&second));
}

#[test]
fn an_answer_lost_after_the_order_was_accepted_is_found_by_coid() {
    let mut w = Week::start();
    // The simulator keeps the dropped connection open: a short timeout
    // stands for the connection dying.
    w.s.env.set("SKIM_HTTP_TIMEOUT", "3");
    w.at(MON, 10, 5);
    w.json(&["scan"]);
    w.at(MON, 10, 12);
    w.s.sim.faults(|f| f.drop_after_order = 1);
    let run = w.skim(&["trade", "enter", "--json"]);
    run.expect_code(0);
    let doc = run.json();
    let first = &doc["orders"][0];
    assert_eq!(first["state"], "working", "{doc}");
    assert!(first["order_id"].is_string());
    // Re-run: the orders are found, nothing is sent twice.
    w.at(MON, 10, 13);
    w.json(&["trade", "enter"]);
    for ticker in ["14D", "LTR", "BHP"] {
        let coid = format!("skim-20260302-{ticker}-entry");
        assert_eq!(w.s.sim.count_orders_with_coid(&coid), 1, "{coid}");
    }
}

#[test]
fn a_server_error_after_the_order_was_accepted_is_not_sent_again() {
    let mut w = Week::start();
    w.at(MON, 10, 5);
    w.json(&["scan"]);
    w.at(MON, 10, 12);
    w.s.sim.faults(|f| f.error_after_order = Some((503, 1)));
    w.json(&["trade", "enter"]);
    w.at(MON, 10, 14);
    w.json(&["trade", "enter"]);
    w.at(MON, 10, 20);
    w.json(&["trade", "manage"]);
    for ticker in ["14D", "LTR", "BHP"] {
        let coid = format!("skim-20260302-{ticker}-entry");
        assert_eq!(w.s.sim.count_orders_with_coid(&coid), 1, "{coid}");
    }
    assert_eq!(w.s.sim.orders().len(), 6);
}

#[test]
fn reviewed_questions_are_confirmed_and_others_refuse_the_order() {
    let mut w = Week::start();
    w.at(MON, 10, 5);
    w.json(&["scan"]);
    w.at(MON, 10, 12);
    w.s.sim.set_order_questions(&["o163", "o10152"]);
    let doc = w.json(&["trade", "enter", "--max-positions", "1"]);
    assert_eq!(doc["orders"][0]["state"], "working", "{doc}");

    let mut w = Week::start();
    w.at(MON, 10, 5);
    w.json(&["scan"]);
    w.at(MON, 10, 12);
    w.s.sim.set_order_questions(&["o163", "o999"]);
    let doc = w.json(&["trade", "enter"]);
    let states: Vec<&str> = doc["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["state"].as_str().unwrap())
        .collect();
    assert!(states.iter().all(|s| *s == "refused"), "{doc}");
    assert!(
        w.s.sim.orders().is_empty(),
        "a declined question placed an order"
    );
    assert!(w.titles().iter().any(|t| t == "Trading Refused"));
}

#[test]
fn broker_and_records_disagreeing_blocks_trading() {
    let mut w = Week::start();
    w.entered();
    w.at(MON, 10, 20);
    w.json(&["trade", "manage"]);
    // Someone sells 14D outside skim.
    w.s.sim
        .set_position(
            skim_sim::scenario::Scenario::example_week()
                .by_symbol("14D")
                .unwrap()
                .conid,
            1000,
            0.06,
        )
        .unwrap();
    let posts = w.order_posts();
    w.at(MON, 11, 0);
    let run = w.skim(&["trade", "manage", "--json"]);
    run.expect_code(4);
    assert!(
        run.stderr
            .contains("14D: skim's records hold 83333 shares, the broker 1000"),
        "{run:?}"
    );
    assert_eq!(run.json()["status"], "refused");
    assert_eq!(w.order_posts(), posts);
    assert!(w.titles().iter().any(|t| t == "Trading Refused"));
    // BHP's entry was not cancelled either: nothing was sent.
    let bhp =
        w.s.sim
            .orders()
            .into_iter()
            .find(|o| o.conid == BHP && o.coid.is_some())
            .unwrap();
    assert_eq!(bhp.status, OrderStatus::Submitted);
}

#[test]
fn halt_blocks_entries_until_resume_and_flatten_sells_everything() {
    let mut w = Week::start();
    w.at(MON, 10, 5);
    w.json(&["scan"]);
    w.skim(&["trade", "halt", "--reason", "testing"])
        .expect_code(0);
    w.at(MON, 10, 12);
    let run = w.skim(&["trade", "enter", "--json"]);
    run.expect_code(4);
    assert_eq!(run.json()["status"], "halted");
    assert!(run.stderr.contains("halted"), "{run:?}");
    assert!(w.s.sim.orders().is_empty());
    let doc = w.json(&["positions"]);
    assert_eq!(doc["halted"]["reason"], "testing");

    w.skim(&["trade", "resume"]).expect_code(0);
    w.json(&["trade", "enter"]);
    assert_eq!(w.s.sim.orders().len(), 6);
    w.at(MON, 10, 20);
    w.json(&["trade", "manage"]);
    assert!(w.held("14D") > 0);

    w.at(MON, 10, 30);
    let doc = w.json(&["trade", "halt", "--flatten"]);
    assert_eq!(doc["halted"], true);
    assert_eq!(w.held("14D"), 0);
    assert_eq!(w.held("LTR"), 0);
    assert!(
        !w.s.sim
            .orders()
            .iter()
            .any(|o| matches!(o.status, OrderStatus::Submitted | OrderStatus::PreSubmitted)),
        "orders left working after a flatten"
    );
    // Flatten again: nothing more is sold.
    w.at(MON, 10, 35);
    w.json(&["trade", "halt", "--flatten"]);
    let sells =
        w.s.sim
            .executions()
            .iter()
            .filter(|e| e.side == Side::Sell)
            .count();
    assert_eq!(sells, 2);
}

#[test]
fn a_second_trading_process_is_refused_while_the_first_holds_the_lock() {
    let w = Week::start();
    std::fs::create_dir_all(w.s.env.path("data")).unwrap();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(w.s.env.path("data/skim.lock"))
        .unwrap();
    file.lock().unwrap();
    let run = w.skim(&["trade", "manage"]);
    run.expect_code(4);
    assert!(
        run.stderr
            .contains("another skim trading command is running"),
        "{run:?}"
    );
    drop(file);
    w.skim(&["trade", "manage"]).expect_code(0);
}

#[test]
fn a_dry_run_sends_and_stores_nothing() {
    let mut w = Week::start();
    w.at(MON, 10, 5);
    w.json(&["scan"]);
    w.at(MON, 10, 12);
    let doc = w.json(&["trade", "enter", "--dry-run"]);
    assert_eq!(doc["orders"].as_array().unwrap().len(), 6, "{doc}");
    assert!(w.s.sim.orders().is_empty());
    let doc = w.json(&["trade", "enter"]);
    assert!(
        doc["orders"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["state"] == "working")
    );
}

#[test]
fn on_a_closed_day_trade_commands_skip() {
    let mut w = Week::start();
    w.at((2026, 3, 7), 10, 15); // a Saturday
    let doc = w.json(&["trade", "manage"]);
    assert_eq!(doc["status"], "skipped");
    let doc = w.json(&["trade", "enter"]);
    assert_eq!(doc["status"], "skipped");
    assert!(
        w.s.sim
            .requests()
            .iter()
            .all(|r| !r.path.contains("/iserver/account"))
    );
}

/// IBKR requests one command made: those logged after the first `from`.
fn ibkr_requests_since(w: &Week, from: usize) -> usize {
    w.s.sim.requests()[from..]
        .iter()
        .filter(|r| r.path.starts_with("/v1/api/"))
        .count()
}

/// The request bounds the README states for five candidates and five
/// positions (the default maximum): `trade enter` makes 10 requests of its
/// own (session check, accounts, portfolio, positions, live orders twice,
/// executions, summary, snapshot), plus per candidate its rules, its
/// 1-minute bars and one bracket POST; `trade manage` makes 7 (session,
/// reconciliation) plus the daily bars of each position and one request per
/// order it sends or modifies.
#[test]
fn five_candidates_and_five_positions_keep_to_the_request_bounds() {
    let mut w = Week::start_with(|_| {});
    w.s.sim.set_scenario(Scenario::busy_week());
    w.at(MON, 10, 5);
    w.json(&["auth-check"]);
    w.json(&["scan"]);

    w.at(MON, 10, 12);
    let from = w.s.sim.requests().len();
    let entered = w.json(&["trade", "enter"]);
    assert_eq!(entered["orders"].as_array().unwrap().len(), 10, "{entered}");
    assert!(ibkr_requests_since(&w, from) <= 10 + 3 * 5);

    w.at(MON, 10, 13);
    let from = w.s.sim.requests().len();
    w.json(&["trade", "enter"]);
    assert!(
        ibkr_requests_since(&w, from) <= 10,
        "a re-run asks per candidate"
    );

    w.at(MON, 10, 20);
    let from = w.s.sim.requests().len();
    let managed = w.json(&["trade", "manage"]);
    assert_eq!(managed["fills"].as_array().unwrap().len(), 5, "{managed}");
    assert!(ibkr_requests_since(&w, from) <= 7 + 5);

    w.at(THU, 10, 15);
    let from = w.s.sim.requests().len();
    let managed = w.json(&["trade", "manage"]);
    let halves = managed["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "half exit")
        .count();
    assert_eq!(halves, 5, "{managed}");
    // Per position: its daily bars, the half-exit sell, the stop modified.
    assert!(ibkr_requests_since(&w, from) <= 7 + 3 * 5);
}

/// Entries whose total would pass the account's available funds are
/// skipped with the reason; the first ones that fit still go in.
#[test]
fn entries_beyond_the_available_funds_are_skipped() {
    // Available funds are net liquidation less a quarter of the gross
    // position value: A$8000 of cash covers one A$5000 entry, not two.
    let mut w = Week::start_with(|c| c.opening_cash = 8000.0);
    w.at(MON, 10, 5);
    w.json(&["scan"]);
    w.at(MON, 10, 12);
    let doc = w.json(&["trade", "enter"]);
    let placed: Vec<&str> = doc["orders"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["side"] == "BUY")
        .map(|o| o["ticker"].as_str().unwrap())
        .collect();
    assert_eq!(placed, ["14D"], "{doc}");
    let skipped = doc["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 2, "{doc}");
    for s in skipped {
        let reason = s["reason"].as_str().unwrap();
        assert!(
            reason.contains("exceeds the available funds A$8000.00")
                || reason.contains("exceeds the available funds A$3000."),
            "{reason}"
        );
    }
    assert_eq!(w.s.sim.orders().len(), 2, "one bracket at the broker");
    let shown = w.json(&["positions"]);
    assert_eq!(shown["account"]["available_funds"], 8000.0, "{shown}");
}

/// A later run counts the entries still waiting for their trigger against
/// the funds: IBKR's figure does not set money aside for them.
#[test]
fn working_entries_of_an_earlier_run_count_against_the_funds() {
    let mut w = Week::start_with(|c| c.opening_cash = 8000.0);
    w.at(MON, 10, 5);
    w.json(&["scan"]);
    w.at(MON, 10, 12);
    let first = w.json(&["trade", "enter", "--max-positions", "1"]);
    assert_eq!(first["orders"].as_array().unwrap().len(), 2, "{first}");
    w.at(MON, 10, 13);
    let second = w.json(&["trade", "enter"]);
    let ltr = second["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["ticker"] == "LTR")
        .unwrap_or_else(|| panic!("LTR was not skipped: {second}"));
    assert!(
        ltr["reason"]
            .as_str()
            .unwrap()
            .contains("exceeds the available funds A$3000.0"),
        "{second}"
    );
    assert_eq!(w.s.sim.orders().len(), 2, "still one bracket at the broker");
}

/// A trailing exit IBKR does not take leaves the shares held: their stop,
/// cancelled to make way for the exit, is put back at once, and the exit is
/// not sent again that day.
#[test]
fn a_turned_down_trailing_exit_puts_the_stop_back() {
    let mut w = Week::start();
    w.entered();
    w.at(MON, 10, 20);
    w.json(&["trade", "manage"]);
    w.at(THU, 10, 15);
    w.json(&["trade", "manage"]);
    w.at(THU, 10, 20);
    w.json(&["trade", "manage"]);
    assert_eq!(w.held("14D"), 41667);

    // Only market orders are asked this question, and it is not reviewed.
    w.s.sim.set_market_order_questions(&["o999"]);
    w.at(NEXT_THU, 10, 15);
    let managed = w.json(&["trade", "manage"]);
    let exit = managed["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["ticker"] == "14D" && a["action"] == "trailing exit")
        .unwrap_or_else(|| panic!("no trailing exit: {managed}"));
    let outcome = exit["outcome"].as_str().unwrap();
    assert!(outcome.starts_with("refused"), "{outcome}");
    assert!(outcome.ends_with("stop put back: done"), "{outcome}");
    assert_eq!(w.held("14D"), 41667);
    let working_stops = |w: &Week| {
        w.s.sim
            .orders()
            .into_iter()
            .filter(|o| {
                o.symbol == "14D" && o.side == Side::Sell && o.status == OrderStatus::Submitted
            })
            .collect::<Vec<_>>()
    };
    let stops = working_stops(&w);
    assert_eq!(stops.len(), 1, "{stops:?}");
    assert_eq!(stops[0].quantity, 41667);
    assert_eq!(stops[0].price, Some(0.06));

    let posts = w.order_posts();
    w.at(NEXT_THU, 10, 20);
    let again = w.json(&["trade", "manage"]);
    assert_eq!(w.order_posts(), posts, "sent again: {again}");
    assert_eq!(working_stops(&w).len(), 1);
}
