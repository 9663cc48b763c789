//! `skim scan` against the simulator's example day (Monday 2 March 2026):
//! 14D, LTR and BHP gap up with price-sensitive news; WTC gaps up with no
//! announcement yet, CBA with only a routine one, PLS by too little.

use serde_json::Value;

use crate::trade::sydney;
use crate::util::{Run, SimEnv};

/// A simulator at `hh:mm` on the example day, with skim's clock set to the
/// same instant and the ASX page and Discord pointed at the simulator.
fn day_at(hour: u32, minute: u32) -> SimEnv {
    let mut s = SimEnv::start();
    let now = sydney((2026, 3, 2), hour, minute);
    s.sim.set_now(now);
    s.env.set("SKIM_NOW", &now.to_rfc3339());
    for (key, value) in s.sim.service_env_pairs() {
        s.env.set(key, &value);
    }
    s
}

fn tickers(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|c| c["ticker"].as_str().unwrap().to_owned())
        .collect()
}

fn reason<'a>(doc: &'a Value, ticker: &str) -> &'a str {
    doc["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["ticker"] == ticker)
        .unwrap_or_else(|| panic!("{ticker} not rejected: {doc}"))["reason"]
        .as_str()
        .unwrap()
}

fn scan(s: &SimEnv, args: &[&str]) -> Run {
    let mut all = vec!["scan", "--json"];
    all.extend_from_slice(args);
    s.skim(&all)
}

#[test]
fn finds_the_gap_ups_with_price_sensitive_news() {
    let s = day_at(10, 15);
    let run = scan(&s, &[]);
    run.expect_code(0);
    let doc = run.json();
    assert_eq!(doc["date"], "2026-03-02");
    assert_eq!(doc["status"], "ok");
    assert_eq!(
        tickers(&doc["candidates"]),
        ["14D", "LTR", "BHP"],
        "largest gap first: {doc}"
    );
    let bhp = &doc["candidates"][2];
    assert_eq!(bhp["conid"], 4036812, "the ASX listing, not the NYSE one");
    assert_eq!(bhp["prior_close"], 45.0);
    assert_eq!(bhp["headline"], "Iron Ore Production Update & Guidance");
    assert_eq!(bhp["announced_at"], "2026-03-02T07:45:00+11:00");
    assert!(bhp["pdf_url"].as_str().unwrap().contains("03061102"));
    assert!(
        (bhp["gap_pct"].as_f64().unwrap() - 3.56).abs() < 0.01,
        "{bhp}"
    );
    assert!(bhp["volume"].as_u64().unwrap() > 0);
    assert_eq!(reason(&doc, "WTC"), "no announcement today");
    assert_eq!(reason(&doc, "CBA"), "no price-sensitive announcement today");
    assert!(reason(&doc, "PLS").starts_with("gap 1.6"), "{doc}");

    let sent = s.sim.discord_messages();
    assert_eq!(sent.len(), 1);
    let embed = &sent[0].payload["embeds"][0];
    assert_eq!(embed["title"], "ASX Market Scan Complete");
    assert_eq!(embed["description"], "3 new candidates found");
    assert_eq!(embed["color"], 0x00ff00);
    s.assert_no_secrets(&run);
}

#[test]
fn a_scan_costs_at_most_six_requests_once_the_session_is_up() {
    let s = day_at(10, 15);
    s.skim(&["auth-check"]).expect_code(0);
    let before = s.sim.requests().len();
    scan(&s, &[]).expect_code(0);
    let scan_requests: Vec<String> = s.sim.requests()[before..]
        .iter()
        .filter(|r| !r.path.contains("/iserver/auth/") && !r.path.ends_with("/iserver/accounts"))
        .filter(|r| r.path.contains("/v1/api/"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(scan_requests.len() <= 6, "{scan_requests:#?}");
}

#[test]
fn a_rerun_updates_and_never_duplicates_or_renotifies() {
    let s = day_at(10, 15);
    scan(&s, &[]).expect_code(0);
    s.sim.set_now(sydney((2026, 3, 2), 10, 40));
    let mut env = s.env;
    env.set("SKIM_NOW", &sydney((2026, 3, 2), 10, 40).to_rfc3339());
    let again = env.skim(&["scan", "--json"]);
    again.expect_code(0);
    assert_eq!(tickers(&again.json()["candidates"]), ["14D", "LTR", "BHP"]);
    assert_eq!(
        s.sim.discord_messages().len(),
        1,
        "nothing new, no second message"
    );
    let db = rusqlite::Connection::open(env.path("data/skim.db")).unwrap();
    let rows: i64 = db
        .query_row("SELECT count(*) FROM candidates", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 3);
    let runs: i64 = db
        .query_row("SELECT runs FROM scans", [], |r| r.get(0))
        .unwrap();
    assert_eq!(runs, 2);
}

#[test]
fn dry_run_stores_and_sends_nothing() {
    let s = day_at(10, 15);
    let run = scan(&s, &["--dry-run"]);
    run.expect_code(0);
    assert_eq!(tickers(&run.json()["candidates"]).len(), 3);
    assert!(!s.env.path("data/skim.db").exists());
    assert!(s.sim.discord_messages().is_empty());
}

#[test]
fn no_candidates_sends_the_yellow_message() {
    let s = day_at(10, 15);
    let run = scan(&s, &["--min-gap", "50"]);
    run.expect_code(0);
    assert!(run.json()["candidates"].as_array().unwrap().is_empty());
    let sent = s.sim.discord_messages();
    assert_eq!(
        sent[0].payload["embeds"][0]["description"],
        "No new candidates found"
    );
    assert_eq!(sent[0].payload["embeds"][0]["color"], 0xffff00);
}

#[test]
fn a_holiday_is_skipped_without_a_request() {
    let mut s = day_at(10, 15);
    s.env
        .set("SKIM_NOW", &sydney((2026, 4, 3), 10, 15).to_rfc3339());
    let run = s.skim(&["scan", "--json"]);
    run.expect_code(0);
    let doc = run.json();
    assert_eq!(doc["status"], "skipped");
    assert!(
        doc["reason"].as_str().unwrap().contains("Good Friday"),
        "{doc}"
    );
    assert!(s.sim.requests().is_empty());
    let human = s.skim(&["scan"]);
    human.expect_code(0);
    assert!(
        human
            .stdout
            .contains("skipped: ASX closed today (Good Friday)"),
        "{human:?}"
    );
}

#[test]
fn before_the_open_is_skipped() {
    let s = day_at(9, 30);
    let run = scan(&s, &[]);
    run.expect_code(0);
    assert_eq!(run.json()["status"], "skipped");
}

#[test]
fn a_failed_announcements_page_fails_the_scan_and_says_so_in_red() {
    let s = day_at(10, 15);
    s.sim.faults(|f| f.asx.server_error_next = 1);
    let run = scan(&s, &[]);
    run.expect_code(1);
    assert!(run.stderr.contains("ASX announcements"), "{run:?}");
    assert!(
        run.stdout.is_empty(),
        "no result document for a failed scan"
    );
    let sent = s.sim.discord_messages();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].payload["embeds"][0]["title"],
        "ASX Market Scan Error"
    );
    assert_eq!(sent[0].payload["embeds"][0]["color"], 0xff0000);
    assert_eq!(
        s.sim.count("POST", "/iserver/scanner/run"),
        0,
        "IBKR is not asked"
    );
}

#[test]
fn a_changed_layout_is_an_error_not_an_empty_day() {
    let s = day_at(10, 15);
    s.sim.faults(|f| f.asx.changed_layout = true);
    let run = scan(&s, &[]);
    run.expect_code(1);
    assert!(run.stderr.contains("skim: error:"), "{run:?}");
}

#[test]
fn a_stock_without_a_trade_today_is_rejected() {
    // At 10:00:30 the first minute bar has not closed: nothing has traded.
    let mut s = day_at(10, 0);
    let now = sydney((2026, 3, 2), 10, 0) + chrono::Duration::seconds(30);
    s.sim.set_now(now);
    s.env.set("SKIM_NOW", &now.to_rfc3339());
    let run = scan(&s, &[]);
    run.expect_code(0);
    let doc = run.json();
    assert!(doc["candidates"].as_array().unwrap().is_empty(), "{doc}");
    assert!(doc["rejected"].as_array().unwrap().iter().all(|r| {
        let why = r["reason"].as_str().unwrap();
        why == "not traded yet today" || why.starts_with("no open")
    }));
}

#[test]
fn discord_429_is_waited_out_and_404_keeps_the_message_queued() {
    let s = day_at(10, 15);
    s.sim.faults(|f| f.discord.rate_limited_next = 1);
    scan(&s, &[]).expect_code(0);
    assert_eq!(s.sim.discord_messages().len(), 1, "sent after the 429");

    let s = day_at(10, 15);
    s.sim.faults(|f| f.discord.unknown_webhook = true);
    let run = scan(&s, &[]);
    run.expect_code(0);
    assert!(run.stderr.contains("stay queued"), "{run:?}");
    let token = s
        .sim
        .discord_webhook_url()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    assert!(!run.stderr.contains(&token) && !run.stdout.contains(&token));
    let pending = s.skim(&["notify", "--flush", "--json"]);
    assert_eq!(pending.json()["delivery"]["queued"], 1);
}
