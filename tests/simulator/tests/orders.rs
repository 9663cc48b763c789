//! The simulator's broker side over signed HTTP: brackets filled across the
//! example week, question chains, duplicate `cOID`s, strict order checks,
//! DAY expiry, cancel and modify, live orders with their pre-flight and
//! pacing, positions with IBKR's cache, the summary, and the after-order
//! faults.

mod support;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use skim_sim::{OrderStatus, Scenario, Simulator};
use support::{Client, start_with};

const D14: u64 = 412_093_551;
const LTR: u64 = 273_112_409;
const BHP: u64 = 4_036_812;
const ORDERS: &str = "/iserver/account/DU1234567/orders";

/// Sydney time (AEDT, UTC+11) on a day of March 2026.
fn at(day: u32, hms: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(&format!("2026-03-{day:02}T{hms}+11:00"))
        .unwrap()
        .to_utc()
}

/// A simulator playing the example week, its clock at `now`, with the
/// slow endpoints paced at `pacing` and a signed, primed client.
fn week(name: &str, now: DateTime<Utc>, pacing: Duration) -> (Simulator, Client) {
    let (sim, mut client, _) = start_with(name, |c| c.slow_endpoint_interval = pacing);
    client.handshake();
    client.open_session(true);
    sim.set_scenario(Scenario::example_week());
    sim.set_now(now);
    sim.set_penalty_period(Duration::from_millis(200));
    (sim, client)
}

fn place(client: &Client, orders: Value) -> Value {
    let answer = client.send("POST", ORDERS, &json!({ "orders": orders }).to_string());
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.json()
}

fn stop(conid: u64, side: &str, price: f64, quantity: u64) -> Value {
    json!({
        "acctId": "DU1234567", "conid": conid, "secType": format!("{conid}:STK"),
        "orderType": "STP", "side": side, "price": price, "quantity": quantity, "tif": "DAY",
    })
}

/// A bracket: a DAY buy stop with `coid` and a GTC sell stop child.
fn bracket(conid: u64, coid: &str, entry: f64, protect: f64, quantity: u64) -> Value {
    let mut parent = stop(conid, "BUY", entry, quantity);
    parent["cOID"] = json!(coid);
    let mut child = stop(conid, "SELL", protect, quantity);
    child["tif"] = json!("GTC");
    child["parentId"] = json!(coid);
    json!([parent, child])
}

/// The status of the order a place-order answer element names.
fn status_of(sim: &Simulator, placed: &Value) -> OrderStatus {
    let id: u64 = placed["order_id"].as_str().unwrap().parse().unwrap();
    sim.orders()
        .iter()
        .find(|o| o.order_id == id)
        .unwrap()
        .status
}

fn error_text(answer: &Value) -> String {
    answer["error"].as_str().unwrap_or_default().to_string()
}

#[test]
fn brackets_fill_and_stop_out_across_the_week() {
    let (sim, client) = week("orders-week", at(2, "10:12:00"), Duration::from_millis(10));
    let d14 = place(&client, bracket(D14, "0302-14D", 0.060, 0.054, 10_000));
    let ltr = place(&client, bracket(LTR, "0302-LTR", 1.095, 1.055, 1_000));
    let bhp = place(&client, bracket(BHP, "0302-BHP", 46.93, 46.33, 100));
    for answer in [&d14, &ltr, &bhp] {
        assert_eq!(answer[0]["order_status"], "Submitted");
        assert_eq!(answer[1]["order_status"], "PreSubmitted");
        assert_eq!(answer[0]["encrypt_message"], "1");
    }

    sim.set_now(at(2, "10:17:30"));
    assert_eq!(
        status_of(&sim, &d14[0]),
        OrderStatus::Submitted,
        "10:17 is not over"
    );
    sim.set_now(at(2, "11:00:00"));
    assert_eq!(status_of(&sim, &d14[0]), OrderStatus::Filled);
    assert_eq!(status_of(&sim, &d14[1]), OrderStatus::Submitted);
    assert_eq!(status_of(&sim, &ltr[0]), OrderStatus::Filled);
    assert_eq!(
        status_of(&sim, &bhp[0]),
        OrderStatus::Submitted,
        "BHP waits below its high"
    );
    let bhp_id = bhp[0]["order_id"].as_str().unwrap();
    let cancel = client.send(
        "DELETE",
        &format!("/iserver/account/DU1234567/order/{bhp_id}"),
        "",
    );
    assert_eq!(cancel.json()["msg"], "Request was submitted");
    assert_eq!(
        status_of(&sim, &bhp[1]),
        OrderStatus::Cancelled,
        "children go with the parent"
    );

    let fills = sim.executions();
    let price = |coid: &str| {
        fills
            .iter()
            .find(|e| e.coid.as_deref() == Some(coid))
            .unwrap()
            .price
    };
    assert_eq!(price("0302-14D"), 0.060);
    assert_eq!(price("0302-LTR"), 1.095);
    assert!(fills.iter().all(|e| e.time == at(2, "10:17:00")));

    // LTR breaks down on Tuesday at 11:30; 14D holds.
    sim.set_now(at(3, "11:30:59"));
    assert_eq!(status_of(&sim, &ltr[1]), OrderStatus::Submitted);
    sim.set_now(at(3, "11:31:00"));
    assert_eq!(status_of(&sim, &ltr[1]), OrderStatus::Filled);
    sim.set_now(at(5, "16:30:00"));
    assert_eq!(
        status_of(&sim, &d14[1]),
        OrderStatus::Submitted,
        "GTC stays"
    );
    let positions = sim.positions();
    let ltr_position = positions.iter().find(|p| p.conid == LTR).unwrap();
    assert_eq!(ltr_position.quantity, 0);
    assert!((ltr_position.realized_pnl - 1_000.0 * (1.055 - 1.095)).abs() < 1e-6);
    let d14_position = positions.iter().find(|p| p.conid == D14).unwrap();
    assert_eq!(
        (d14_position.quantity, d14_position.avg_cost),
        (10_000, 0.060)
    );
    let expected_cash = 100_000.0 - 600.0 - 1_095.0 + 1_055.0;
    assert!((sim.cash() - expected_cash).abs() < 1e-6, "{}", sim.cash());

    let trades = client.get("/iserver/account/trades?days=7").json();
    let trades = trades.as_array().unwrap();
    assert_eq!(trades.len(), 3);
    let entry = trades
        .iter()
        .find(|t| t["order_ref"] == "0302-14D")
        .unwrap();
    assert_eq!(entry["side"], "B");
    assert_eq!(entry["price"], "0.06");
    assert_eq!(entry["trade_time"], "20260301-23:17:00");
    let stop_out: Vec<&Value> = trades
        .iter()
        .filter(|t| t.get("order_ref").is_none())
        .collect();
    assert_eq!(stop_out.len(), 1, "a child has no cOID");
    assert_eq!(
        (stop_out[0]["side"].as_str(), stop_out[0]["price"].as_str()),
        (Some("S"), Some("1.055"))
    );
    std::thread::sleep(Duration::from_millis(20));
    let today = client.get("/iserver/account/trades");
    assert_eq!(
        today.json().as_array().unwrap().len(),
        0,
        "nothing traded on the 5th"
    );
    std::thread::sleep(Duration::from_millis(20));
    let too_many = client.get("/iserver/account/trades?days=8");
    assert_eq!(too_many.status, 400);
}

#[test]
fn market_and_limit_orders_fill_at_once_in_continuous_trading_and_queue_before() {
    let (sim, client) = week(
        "orders-market",
        at(3, "09:30:00"),
        Duration::from_millis(10),
    );
    let mut buy = stop(LTR, "BUY", 1.0, 100);
    buy["orderType"] = json!("MKT");
    buy.as_object_mut().unwrap().remove("price");
    let queued = place(&client, json!([buy.clone()]));
    assert_eq!(queued[0]["order_status"], "Submitted");
    sim.set_now(at(3, "10:01:00"));
    let first = sim.executions();
    assert_eq!(
        (first.len(), first[0].price),
        (1, 1.12),
        "the day's opening price"
    );

    let now = place(&client, json!([buy]));
    assert_eq!(now[0]["order_status"], "Filled");
    let last = sim.executions()[1].price;
    let quote = client.get(&format!(
        "/iserver/marketdata/snapshot?conids={LTR}&fields=31"
    ));
    assert_eq!(quote.status, 200);
    let mut limit = stop(LTR, "SELL", 1.2, 50);
    limit["orderType"] = json!("LMT");
    assert_eq!(
        place(&client, json!([limit]))[0]["order_status"],
        "Submitted"
    );
    assert!(last < 1.2);
}

#[test]
fn question_chains_confirm_discard_and_go_stale() {
    let (sim, client) = week(
        "orders-questions",
        at(2, "10:12:00"),
        Duration::from_millis(10),
    );
    sim.set_order_questions(&["o163", "o10152"]);
    let order = |coid: &str| {
        let mut o = stop(BHP, "BUY", 46.93, 10);
        o["cOID"] = json!(coid);
        json!([o])
    };
    let first = place(&client, order("q1"));
    assert_eq!(first[0]["messageIds"], json!(["o163"]));
    assert_eq!(first[0]["isSuppressed"], false);
    assert!(
        first[0]["message"][0]
            .as_str()
            .unwrap()
            .contains("price percentage")
    );
    let reply = |id: &Value, confirmed: bool| {
        let path = format!("/iserver/reply/{}", id.as_str().unwrap());
        client.send(
            "POST",
            &path,
            &json!({ "confirmed": confirmed }).to_string(),
        )
    };
    assert_eq!(
        sim.count_orders_with_coid("q1"),
        0,
        "not placed while asking"
    );
    let second = reply(&first[0]["id"], true).json();
    assert_eq!(second[0]["messageIds"], json!(["o10152"]));
    assert_ne!(second[0]["id"], first[0]["id"]);
    let done = reply(&second[0]["id"], true).json();
    assert_eq!(done[0]["order_status"], "Submitted");
    assert!(done[0]["order_id"].as_str().unwrap().parse::<u64>().is_ok());
    assert_eq!(sim.count_orders_with_coid("q1"), 1);

    let discarded = place(&client, order("q2"));
    let answer = reply(&discarded[0]["id"], false).json();
    assert!(error_text(&answer).contains("discarded"), "{answer}");
    assert_eq!(sim.count_orders_with_coid("q2"), 0);

    let late = place(&client, order("q3"));
    assert_eq!(client.send("POST", "/tickle", "").status, 200);
    let answer = reply(&late[0]["id"], true);
    assert_eq!(answer.status, 503, "{}", answer.body);
    assert_eq!(sim.count_orders_with_coid("q3"), 0);

    let suppress = json!({ "messageIds": ["o163", "o10152"] }).to_string();
    let answer = client.send("POST", "/iserver/questions/suppress", &suppress);
    assert_eq!(answer.json()["status"], "submitted");
    let placed = place(&client, order("q4"));
    assert_eq!(placed[0]["order_status"], "Submitted");
    assert_eq!(sim.count_orders_with_coid("q4"), 1);
}

#[test]
fn a_coid_is_taken_for_24_hours() {
    let (sim, client) = week("orders-coid", at(2, "10:12:00"), Duration::from_millis(10));
    let mut order = stop(BHP, "BUY", 46.93, 10);
    order["cOID"] = json!("dup-1");
    place(&client, json!([order.clone()]));
    let again = place(&client, json!([order.clone()]));
    assert!(
        error_text(&again).contains("Local order ID=dup-1"),
        "{again}"
    );
    assert_eq!(sim.count_orders_with_coid("dup-1"), 1);
    sim.set_now(at(3, "10:11:59"));
    let next_day = place(&client, json!([order.clone()]));
    assert!(error_text(&next_day).contains("Local order ID=dup-1"));
    sim.set_now(at(3, "10:12:00"));
    let later = place(&client, json!([order]));
    // BHP trades near 48 on Tuesday, so the buy stop at 46.93 fills at once.
    assert_eq!(later[0]["order_status"], "Filled", "{later}");
    assert_eq!(sim.count_orders_with_coid("dup-1"), 2);
}

#[test]
fn bad_orders_are_refused_with_the_reason() {
    let (sim, client) = week(
        "orders-checks",
        at(2, "10:12:00"),
        Duration::from_millis(10),
    );
    let with = |change: &dyn Fn(&mut Value)| {
        let mut order = stop(D14, "BUY", 0.060, 100);
        change(&mut order);
        json!([order])
    };
    let cases: Vec<(Value, &str)> = vec![
        (with(&|o| o["price"] = json!(0.0605)), "price step"),
        (with(&|o| o["quantity"] = json!(10.5)), "whole positive"),
        (with(&|o| o["quantity"] = json!(0)), "whole positive"),
        (with(&|o| o["conid"] = json!(1)), "conid 1"),
        (with(&|o| o["orderType"] = json!("STP LMT")), "orderType"),
        (with(&|o| o["auxPrice"] = json!(0.06)), "STP needs price"),
        (with(&|o| o["tif"] = json!("IOC")), "tif"),
        (with(&|o| o["acctId"] = json!("DU999")), "acctId"),
        (
            with(&|o| o["parentId"] = json!("nobody")),
            "names no earlier order",
        ),
        (
            with(&|o| o["conidex"] = json!(format!("{D14}@ASX"))),
            "not both",
        ),
        (
            {
                let mut pair = bracket(D14, "p", 0.060, 0.054, 100);
                pair[1]["cOID"] = json!("child");
                pair
            },
            "must not carry a cOID",
        ),
    ];
    for (orders, expected) in cases {
        let answer = place(&client, orders.clone());
        assert!(
            error_text(&answer).contains(expected),
            "{orders} gave {answer}"
        );
    }
    let wrong_account = client.send("POST", "/iserver/account/DU999/orders", r#"{"orders":[]}"#);
    assert!(wrong_account.body.contains("error"));
    let mut bhp = stop(BHP, "BUY", 46.925, 1);
    let answer = place(&client, json!([bhp.clone()]));
    assert!(error_text(&answer).contains("0.01"), "{answer}");
    bhp["price"] = json!(46.93);
    bhp.as_object_mut().unwrap().remove("conid");
    bhp["conidex"] = json!(format!("{BHP}@ASX"));
    assert_eq!(place(&client, json!([bhp]))[0]["order_status"], "Submitted");
    assert_eq!(sim.orders().len(), 1);
}

#[test]
fn day_orders_expire_at_the_close_and_gtc_orders_stay() {
    let (sim, client) = week("orders-day", at(2, "10:12:00"), Duration::from_millis(10));
    let day = place(&client, json!([stop(BHP, "BUY", 60.0, 10)]));
    let mut gtc = stop(BHP, "BUY", 30.0, 10);
    gtc["orderType"] = json!("LMT");
    gtc["tif"] = json!("GTC");
    let gtc = place(&client, json!([gtc]));
    sim.set_now(at(2, "16:11:59"));
    assert_eq!(status_of(&sim, &day[0]), OrderStatus::Submitted);
    sim.set_now(at(2, "16:12:00"));
    assert_eq!(status_of(&sim, &day[0]), OrderStatus::Cancelled);
    sim.set_now(at(9, "12:00:00"));
    assert_eq!(status_of(&sim, &gtc[0]), OrderStatus::Submitted);
}

#[test]
fn live_orders_need_a_preflight_and_are_paced() {
    let (sim, client) = week("orders-live", at(2, "10:12:00"), Duration::from_millis(400));
    place(&client, bracket(D14, "live-14D", 0.060, 0.054, 100));
    let first = client.get("/iserver/account/orders").json();
    assert_eq!(first, json!({ "orders": [], "snapshot": false }));
    let eager = client.get("/iserver/account/orders");
    assert_eq!(eager.status, 429, "one call per interval");
    std::thread::sleep(Duration::from_millis(450));
    let listed = client.get("/iserver/account/orders").json();
    assert_eq!(listed["snapshot"], true);
    let orders = listed["orders"].as_array().unwrap();
    assert_eq!(orders.len(), 2);
    let parent = orders
        .iter()
        .find(|o| o["order_ref"] == "live-14D")
        .unwrap();
    assert_eq!(parent["status"], "Submitted");
    assert_eq!(parent["orderType"], "Stop");
    assert_eq!(parent["side"], "BUY");
    assert_eq!(parent["price"], "0.06");
    assert_eq!(parent["totalSize"], 100.0);
    assert_eq!(parent["remainingQuantity"], 100.0);
    let child = orders
        .iter()
        .find(|o| o.get("order_ref").is_none())
        .unwrap();
    assert_eq!(child["status"], "PreSubmitted");

    sim.set_now(at(2, "10:20:00"));
    std::thread::sleep(Duration::from_millis(450));
    let filled = client.get("/iserver/account/orders?filters=filled").json();
    let rows = filled["orders"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (
            rows[0]["avgPrice"].as_str(),
            rows[0]["filledQuantity"].as_f64()
        ),
        (Some("0.06"), Some(100.0))
    );
    let id = rows[0]["orderId"].as_u64().unwrap();
    let status = client
        .get(&format!("/iserver/account/order/status/{id}"))
        .json();
    assert_eq!(status["order_status"], "Filled");
    assert_eq!(status["side"], "B");
    assert_eq!(client.get("/iserver/account/order/status/42").status, 503);

    sim.lose_priming();
    std::thread::sleep(Duration::from_millis(450));
    let unprimed = client.get("/iserver/account/orders");
    assert!(
        unprimed.body.contains("Please query /accounts first"),
        "{}",
        unprimed.body
    );
}

#[test]
fn cancel_and_modify_change_only_live_orders() {
    let (sim, client) = week("orders-edit", at(2, "10:12:00"), Duration::from_millis(10));
    let mut limit = stop(BHP, "BUY", 40.0, 10);
    limit["orderType"] = json!("LMT");
    limit["cOID"] = json!("edit-1");
    let placed = place(&client, json!([limit.clone()]));
    let id = placed[0]["order_id"].as_str().unwrap().to_string();
    let path = format!("/iserver/account/DU1234567/order/{id}");

    limit["price"] = json!(41.5);
    limit["quantity"] = json!(20);
    let modified = client.send("POST", &path, &limit.to_string()).json();
    assert_eq!(modified[0]["order_id"], id.as_str());
    let order = sim
        .orders()
        .into_iter()
        .find(|o| o.coid.as_deref() == Some("edit-1"))
        .unwrap();
    assert_eq!((order.price, order.quantity), (Some(41.5), 20));
    limit["price"] = json!(41.555);
    let off_tick = client.send("POST", &path, &limit.to_string()).json();
    assert!(error_text(&off_tick).contains("price step"), "{off_tick}");
    limit["side"] = json!("SELL");
    limit["price"] = json!(41.5);
    let other_side = client.send("POST", &path, &limit.to_string()).json();
    assert!(error_text(&other_side).contains("repeat"), "{other_side}");

    let cancelled = client.send("DELETE", &path, "").json();
    assert_eq!(cancelled["msg"], "Request was submitted");
    assert_eq!(status_of(&sim, &placed[0]), OrderStatus::Cancelled);
    let again = client.send("DELETE", &path, "").json();
    assert!(error_text(&again).contains("Cancelled"), "{again}");
    let missing = client
        .send("DELETE", "/iserver/account/DU1234567/order/7", "")
        .json();
    assert!(error_text(&missing).contains("doesn't exist"), "{missing}");
    limit["side"] = json!("BUY");
    let too_late = client.send("POST", &path, &limit.to_string()).json();
    assert!(
        error_text(&too_late).contains("cannot be modified"),
        "{too_late}"
    );
}

#[test]
fn positions_are_cached_until_invalidated_and_the_summary_adds_up() {
    let (sim, client) = week(
        "orders-positions",
        at(2, "10:30:00"),
        Duration::from_millis(10),
    );
    let positions = "/portfolio/DU1234567/positions/0";
    assert_eq!(
        client.get(positions).status,
        400,
        "needs /portfolio/accounts first"
    );
    assert_eq!(client.get("/portfolio/accounts").status, 200);
    assert_eq!(client.get(positions).json(), json!([]));

    let mut buy = stop(LTR, "BUY", 1.0, 1_000);
    buy["orderType"] = json!("MKT");
    buy.as_object_mut().unwrap().remove("price");
    assert_eq!(place(&client, json!([buy]))[0]["order_status"], "Filled");
    sim.set_position(BHP, 50, 45.0).unwrap();
    assert_eq!(
        client.get(positions).json(),
        json!([]),
        "stale until invalidated"
    );
    let invalidate = client.send("POST", "/portfolio/DU1234567/positions/invalidate", "");
    assert_eq!(invalidate.status, 200);
    let rows = client.get(positions).json();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let ltr = rows.iter().find(|r| r["conid"] == LTR).unwrap();
    assert_eq!(ltr["position"], 1_000.0);
    assert_eq!(ltr["contractDesc"], "LTR");
    let fill = sim.executions()[0].price;
    assert_eq!(ltr["avgCost"], fill);
    assert_eq!(
        client.get("/portfolio/DU1234567/positions/1").json(),
        json!([])
    );

    let summary = client.get("/portfolio/DU1234567/summary").json();
    let amount = |key: &str| summary[key]["amount"].as_f64().unwrap();
    let cash = 100_000.0 - 1_000.0 * fill;
    assert!((amount("totalcashvalue") - cash).abs() < 0.01);
    let bhp_last = rows.iter().find(|r| r["conid"] == BHP).unwrap()["mktPrice"]
        .as_f64()
        .unwrap();
    let net = cash + 1_000.0 * ltr["mktPrice"].as_f64().unwrap() + 50.0 * bhp_last;
    assert!((amount("netliquidation") - net).abs() < 0.01);
    assert!(amount("availablefunds") < amount("netliquidation"));
    assert_eq!(summary["netliquidation"]["currency"], "AUD");
    assert_eq!(summary["accountcode"]["value"], "DU1234567");
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(
        client.get("/portfolio/accounts").status,
        200,
        "20 ms apart is paced enough"
    );
    assert_eq!(client.get("/portfolio/DU999/summary").status, 400);
}

#[test]
fn a_sell_beyond_the_holding_shows_as_a_short() {
    let (sim, client) = week("orders-short", at(2, "10:30:00"), Duration::from_millis(10));
    let mut sell = stop(LTR, "SELL", 1.0, 300);
    sell["orderType"] = json!("MKT");
    sell.as_object_mut().unwrap().remove("price");
    assert_eq!(place(&client, json!([sell]))[0]["order_status"], "Filled");
    assert_eq!(client.get("/portfolio/accounts").status, 200);
    let rows = client.get("/portfolio/DU1234567/positions/0").json();
    assert_eq!(rows[0]["position"], -300.0);
    assert_eq!(sim.positions()[0].quantity, -300);
}

#[test]
fn orders_survive_a_dropped_connection_and_a_5xx() {
    let (sim, client) = week(
        "orders-faults",
        at(2, "10:12:00"),
        Duration::from_millis(10),
    );
    sim.faults(|f| f.drop_after_order = 1);
    let mut order = stop(BHP, "BUY", 46.93, 10);
    order["cOID"] = json!("lost-1");
    let raw = client.send_raw("POST", ORDERS, &json!({ "orders": [order] }).to_string());
    assert_eq!(raw, "", "closed without an answer");
    assert_eq!(sim.count_orders_with_coid("lost-1"), 1, "but placed");

    sim.faults(|f| f.error_after_order = Some((503, 1)));
    let mut order = stop(BHP, "BUY", 46.93, 10);
    order["cOID"] = json!("lost-2");
    let answer = client.send(
        "POST",
        ORDERS,
        &json!({ "orders": [order.clone()] }).to_string(),
    );
    assert_eq!(answer.status, 503);
    assert_eq!(sim.count_orders_with_coid("lost-2"), 1);

    let id = sim.orders()[1].order_id;
    sim.faults(|f| f.drop_after_order = 1);
    order["quantity"] = json!(20);
    let path = format!("/iserver/account/DU1234567/order/{id}");
    assert_eq!(client.send_raw("POST", &path, &order.to_string()), "");
    assert_eq!(sim.orders()[1].quantity, 20, "modified all the same");
    let fine = client.send("POST", &path, &order.to_string());
    assert_eq!(fine.status, 200, "the faults are used up");
}

#[test]
fn the_state_dump_shows_orders_executions_and_positions() {
    let (sim, client) = week("orders-dump", at(2, "10:12:00"), Duration::from_millis(10));
    place(&client, bracket(LTR, "dump-LTR", 1.095, 1.055, 100));
    let clock = json!({ "now": "2026-03-02T10:30:00+11:00" }).to_string();
    let moved = support::post_json(sim.addr(), "/sim/clock", "demo", &clock);
    assert_eq!(moved.status, 200);
    let state = support::get(sim.addr(), "/sim/state").json();
    assert_eq!(state["orders"].as_array().unwrap().len(), 2);
    assert_eq!(state["orders"][0]["status"], "Filled");
    assert_eq!(state["executions"][0]["price"], 1.095);
    assert_eq!(state["positions"][0]["quantity"], 100);
}
