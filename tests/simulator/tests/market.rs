//! The simulator's market-data endpoints over loopback, signed by the
//! test's own client: scanner, contract search and rules, snapshots and
//! history, computed from the example day at the simulated clock.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{start, sydney};

const BHP: u64 = 4_036_812;
const ZIP: u64 = 302_710_044;
const D14: u64 = 412_093_551;

fn symbols(answer: &Value) -> Vec<String> {
    answer["contracts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["symbol"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn scanner_params_once_per_15_minutes_and_the_penalty_box() {
    let (sim, client) = start("params");
    client.open_session(false);
    sim.set_penalty_period(Duration::from_millis(300));
    let params = client.get("/iserver/scanner/params");
    assert_eq!(params.status, 200, "{}", params.body);
    let body = params.json();
    let has = |list: &str, key: &str, value: &str| {
        body[list]
            .as_array()
            .unwrap()
            .iter()
            .any(|item| item[key] == value)
    };
    assert!(has("instrument_list", "type", "STOCK.HK"));
    assert!(has("scan_type_list", "code", "HIGH_OPEN_GAP"));
    assert!(has("filter_list", "code", "priceAbove"));
    assert!(has("filter_list", "code", "volumeAbove"));
    let asx = &body["location_tree"][1]["locations"][0]["type"];
    assert_eq!(asx, "STK.HK.ASX");

    assert_eq!(client.get("/iserver/scanner/params").status, 429);
    assert_eq!(
        client.send("POST", "/tickle", "").status,
        429,
        "the second call started the penalty box"
    );
    std::thread::sleep(Duration::from_millis(350));
    assert_eq!(client.send("POST", "/tickle", "").status, 200);
    assert_eq!(
        client.get("/iserver/scanner/params").status,
        429,
        "still within 15 minutes of the first call"
    );
}

#[test]
fn scanner_runs_list_gap_ups_in_order_and_refuse_bad_requests() {
    let (sim, client) = start("scanner");
    client.open_session(false);
    let run = |body: &str| {
        // IBKR allows one run per second.
        std::thread::sleep(Duration::from_millis(1050));
        client.send("POST", "/iserver/scanner/run", body)
    };
    let gap =
        r#"{"instrument":"STOCK.HK","type":"HIGH_OPEN_GAP","location":"STK.HK.ASX","filter":[]}"#;

    sim.set_now(sydney("09:30:00"));
    let before = run(gap);
    assert_eq!(before.status, 200, "{}", before.body);
    assert!(
        symbols(&before.json()).is_empty(),
        "no gaps before the open"
    );

    sim.set_now(sydney("10:15:00"));
    let after = run(gap).json();
    assert_eq!(symbols(&after), ["14D", "LTR", "WTC", "BHP", "CBA", "PLS"]);
    let first = &after["contracts"][0];
    assert_eq!(first["scan_data"], "+12.00%");
    assert_eq!(first["con_id"], D14);
    assert_eq!(first["listing_exchange"], "ASX");
    assert_eq!(after["contracts"][3]["scan_data"], "+3.56%");
    assert!(after["scan_data_column_name"].is_string());

    let filtered = run(
        r#"{"instrument":"STOCK.HK","type":"HIGH_OPEN_GAP","location":"STK.HK.ASX",
        "filter":[{"code":"priceAbove","value":40}]}"#,
    );
    assert_eq!(symbols(&filtered.json()), ["WTC", "BHP", "CBA"]);

    for bad in [
        r#"{"instrument":"STOCK.XX","type":"HIGH_OPEN_GAP","location":"STK.HK.ASX"}"#,
        r#"{"instrument":"STOCK.HK","type":"NO_SUCH_SCAN","location":"STK.HK.ASX"}"#,
        r#"{"instrument":"STOCK.HK","type":"HIGH_OPEN_GAP","location":"STK.US.MAJOR"}"#,
        r#"{"instrument":"STOCK.HK","type":"HIGH_OPEN_GAP","location":"STK.HK.ASX",
            "filter":[{"code":"price","value":1}]}"#,
    ] {
        let answer = run(bad);
        assert_eq!(answer.status, 400, "{bad} -> {}", answer.body);
    }

    sim.set_penalty_period(Duration::from_millis(200));
    assert_eq!(client.send("POST", "/iserver/scanner/run", gap).status, 429);
}

#[test]
fn secdef_search_lists_every_listing_of_a_symbol() {
    let (_sim, client) = start("secdef");
    client.open_session(false);
    let found = client.get("/iserver/secdef/search?symbol=BHP").json();
    let entries = found.as_array().unwrap();
    assert_eq!(entries.len(), 2);
    let exchanges: Vec<&str> = entries
        .iter()
        .map(|e| e["description"].as_str().unwrap())
        .collect();
    assert_eq!(exchanges, ["ASX", "NYSE"]);
    assert_eq!(entries[0]["conid"], BHP.to_string());
    assert_ne!(entries[1]["conid"], entries[0]["conid"]);
    assert_eq!(entries[0]["companyHeader"], "BHP GROUP LTD - ASX");
    assert_eq!(entries[1]["sections"][0]["secType"], "STK");

    let unknown = client.get("/iserver/secdef/search?symbol=NOPE");
    assert_eq!(
        (unknown.status, unknown.json()),
        (200, serde_json::json!([]))
    );
    assert_eq!(client.get("/iserver/secdef/search").status, 400);
}

#[test]
fn snapshots_need_priming_then_a_preflight_then_give_the_subscribed_fields() {
    let (sim, client) = start("snapshot");
    client.open_session(false);
    let fields = "31,55,70,71,84,86,87,7295,7741,7762,83,6509";
    let target = format!("/iserver/marketdata/snapshot?conids={BHP},{ZIP}&fields={fields}");
    let unprimed = client.get(&target);
    assert_eq!(unprimed.status, 400);
    assert!(unprimed.body.contains("Please query /accounts first"));
    assert_eq!(client.get("/iserver/accounts").status, 200);

    sim.set_now(sydney("09:50:00"));
    let preflight = client.get(&target).json();
    assert_eq!(
        preflight[0].as_object().unwrap().keys().collect::<Vec<_>>(),
        ["conid", "conidEx"]
    );
    let before = client.get(&target).json();
    assert_eq!(
        before[0]["31"], "C45.00",
        "prior close before the first trade"
    );
    assert_eq!(before[0]["7741"], "45.00");
    assert!(before[0].get("7295").is_none(), "no open before the open");
    assert!(before[0].get("87").is_none());

    sim.set_now(sydney("10:05:00"));
    let open = client.get(&target).json();
    let bhp = &open[0];
    assert_eq!(bhp["conid"], BHP);
    assert_eq!(bhp["55"], "BHP");
    assert_eq!(bhp["7295"], "46.60");
    assert!(!bhp["31"].as_str().unwrap().starts_with('C'));
    assert_eq!(bhp["6509"], "RpB");
    let volume = bhp["87"].as_str().unwrap();
    assert!(volume.ends_with('K') || volume.ends_with('M'), "{volume}");
    assert!(bhp["7762"].as_str().unwrap().parse::<u64>().unwrap() > 0);
    let high: f64 = bhp["70"].as_str().unwrap().parse().unwrap();
    let low: f64 = bhp["71"].as_str().unwrap().parse().unwrap();
    assert!(high >= low);
    assert!(bhp["_updated"].as_i64().unwrap() == sydney("10:05:00").timestamp_millis());
    assert_eq!(open[1]["31"], "C1.50", "ZIP has not traded by 10:05");
    sim.set_now(sydney("10:20:00"));
    assert!(
        !client.get(&target).json()[1]["31"]
            .as_str()
            .unwrap()
            .starts_with('C')
    );

    let unsubscribed = client.get(&format!(
        "/iserver/marketdata/snapshot?conids={BHP}&fields=7051"
    ));
    assert!(
        unsubscribed.json()[0].get("7051").is_none(),
        "only fields named in the first call are streamed"
    );
    let many: Vec<String> = (0..101).map(|i| (BHP + i).to_string()).collect();
    let too_many = client.get(&format!(
        "/iserver/marketdata/snapshot?conids={}",
        many.join(",")
    ));
    assert_eq!(too_many.status, 400);
}

#[test]
fn snapshots_over_ten_a_second_trip_the_penalty_box() {
    let (sim, client) = start("snapshot-pace");
    client.open_session(true);
    sim.set_penalty_period(Duration::from_millis(300));
    let target = format!("/iserver/marketdata/snapshot?conids={BHP}&fields=31");
    let statuses: Vec<u16> = (0..11).map(|_| client.get(&target).status).collect();
    assert_eq!(statuses[..10], [200; 10]);
    assert_eq!(statuses[10], 429);
}

#[test]
fn history_gives_bars_up_to_the_simulated_now() {
    let (sim, client) = start("history");
    client.open_session(true);
    let minute = format!("/iserver/marketdata/history?conid={BHP}&bar=1min&period=1d");

    sim.set_now(sydney("09:45:00"));
    let empty = client.get(&minute);
    assert_eq!(empty.status, 400);
    assert!(empty.body.contains("No data."), "{}", empty.body);

    sim.set_now(sydney("10:10:30"));
    let bars = client.get(&minute).json();
    let data = bars["data"].as_array().unwrap();
    assert_eq!(data.len(), 10, "10:00 to 10:09; 10:10 is still open");
    assert_eq!(data[0]["t"], sydney("10:00:00").timestamp_millis());
    assert_eq!(data[9]["t"], sydney("10:09:00").timestamp_millis());
    assert_eq!(data[0]["o"], 46.6);
    assert_eq!(bars["points"], 10);
    assert_eq!(bars["symbol"], "BHP");
    assert_eq!(bars["barLength"], 60);
    assert_eq!(bars["startTime"], "20260301-23:00:00");

    let daily = client
        .get(&format!(
            "/iserver/marketdata/history?conid={BHP}&bar=1d&period=1m"
        ))
        .json();
    let days = daily["data"].as_array().unwrap();
    assert_eq!(
        days.len(),
        15,
        "15 earlier days from 30 days back; today's bar waits for the close"
    );
    assert_eq!(
        days[14]["c"], 45.0,
        "the last earlier close is the prior close"
    );
    sim.set_now(sydney("16:12:00"));
    let daily = client
        .get(&format!(
            "/iserver/marketdata/history?conid={BHP}&bar=1d&period=1m"
        ))
        .json();
    let days = daily["data"].as_array().unwrap();
    assert_eq!(
        days.len(),
        16,
        "today's bar, complete after the closing auction"
    );
    let all = client.get(&minute).json();
    let minutes = all["data"].as_array().unwrap();
    assert_eq!(days[15]["c"], minutes[minutes.len() - 1]["c"]);
    assert_eq!(days[15]["o"], data[0]["o"]);

    for bad in [
        format!("/iserver/marketdata/history?conid={BHP}&bar=1min&period=1w"),
        format!("/iserver/marketdata/history?conid={BHP}&bar=7min&period=1d"),
        format!("/iserver/marketdata/history?conid={BHP}&bar=1min&period=2q"),
        "/iserver/marketdata/history?conid=1&bar=1min&period=1d".to_string(),
        "/iserver/marketdata/history?bar=1min&period=1d".to_string(),
    ] {
        assert_eq!(client.get(&bad).status, 400, "{bad}");
    }
}

#[test]
fn contract_rules_carry_the_scenario_increments() {
    let (sim, client) = start("rules");
    client.open_session(true);
    sim.set_now(sydney("10:30:00"));
    let info = client
        .get(&format!(
            "/iserver/contract/{D14}/info-and-rules?isBuy=true"
        ))
        .json();
    assert_eq!(info["exchange"], "ASX");
    assert_eq!(info["currency"], "AUD");
    let rules = &info["rules"];
    assert_eq!(rules["incrementRules"][0]["increment"], 0.001);
    assert_eq!(rules["incrementRules"][2]["lowerEdge"], 2.0);
    assert_eq!(rules["increment"], 0.001);

    let posted = client
        .send(
            "POST",
            "/iserver/contract/rules",
            &format!(r#"{{"conid":{BHP},"isBuy":true}}"#),
        )
        .json();
    assert_eq!(posted["increment"], 0.01);
    let unknown = client.send(
        "POST",
        "/iserver/contract/rules",
        r#"{"conid":1,"isBuy":true}"#,
    );
    assert_eq!(unknown.status, 400);
    assert_eq!(
        client
            .get("/iserver/contract/1/info-and-rules?isBuy=true")
            .status,
        400
    );
}
