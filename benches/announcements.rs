//! Times parsing a full day's announcements page.
//!
//! A busy day lists about 750 rows in roughly 1.3 MB of HTML; the scan reads
//! the page just before the open, so parsing should take 20 ms or less. The
//! page is built from the rows of the hand-written fixture, each given its own
//! id and time, and padded with the indentation whitespace the live page
//! carries (about 1.7 KB per row), so the parser sees a realistic volume.
//!
//! Run with `cargo bench --bench announcements`.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use skim_asx::asx::{PageStatus, parse_page};

const FIXTURE: &str = include_str!("../tests/fixtures/asx/today_normal.html");
const URL: &str = "https://www.asx.com.au/asx/v2/statistics/todayAnns.do";
const ROWS: usize = 750;
const ROW_BYTES: usize = 1_730;
const RUNS: usize = 25;
const TARGET: Duration = Duration::from_millis(20);

fn main() {
    let page = build_page();
    let rows = parse_page(&page, URL).expect("the generated page parses");
    assert_eq!(rows.status, PageStatus::Published);
    assert_eq!(
        rows.announcements.len(),
        ROWS,
        "every generated row is read"
    );

    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            let parsed = parse_page(&page, URL).expect("the generated page parses");
            let elapsed = start.elapsed();
            assert_eq!(parsed.announcements.len(), ROWS);
            elapsed
        })
        .collect();
    times.sort();
    let median = times[RUNS / 2];

    println!(
        "parse_page: {ROWS} rows, {:.2} MB, {RUNS} runs",
        page.len() as f64 / 1e6
    );
    println!("{:<8} {:>10}", "", "ms");
    for (name, time) in [
        ("median", median),
        ("min", times[0]),
        ("max", times[RUNS - 1]),
    ] {
        println!("{name:<8} {:>10.2}", time.as_secs_f64() * 1e3);
    }
    let verdict = if median <= TARGET { "met" } else { "MISSED" };
    println!("target   {:>10.2}  {verdict}", TARGET.as_secs_f64() * 1e3);
}

/// The fixture with its table body replaced by `ROWS` rows cycled from its
/// own, newest first from 7:29 pm, one a minute or so.
fn build_page() -> String {
    let body_start = FIXTURE.find("<tbody>").expect("fixture has a tbody") + "<tbody>".len();
    let body_end = FIXTURE.find("</tbody>").expect("fixture has a tbody");
    let templates: Vec<&str> = FIXTURE[body_start..body_end]
        .split("<tr>")
        .filter(|row| row.contains("</tr>"))
        .collect();

    let mut page = String::with_capacity(ROWS * ROW_BYTES + FIXTURE.len());
    page.push_str(&FIXTURE[..body_start]);
    for n in 0..ROWS {
        let template = templates[n % templates.len()];
        let minutes = 19 * 60 + 29 - n * 12 * 60 / ROWS;
        let (hour, minute) = (minutes / 60, minutes % 60);
        let clock = format!(
            "{}:{minute:02} {}",
            (hour + 11) % 12 + 1,
            if hour < 12 { "am" } else { "pm" }
        );
        let mut row = String::from("<tr>");
        row.push_str(&with_time(&with_ids_id(template, 3_170_000 - n), &clock));
        let padding = ROW_BYTES.saturating_sub(row.len());
        let close = row.rfind("</tr>").expect("row ends");
        row.insert_str(close, &"\t".repeat(padding));
        page.push_str(&row);
    }
    page.push_str(&FIXTURE[body_end..]);
    page
}

fn with_ids_id(row: &str, id: usize) -> String {
    let at = row.find("idsId=").expect("row links an idsId") + "idsId=".len();
    let mut out = String::from(&row[..at]);
    write!(out, "{id:08}").expect("writing to a String");
    out.push_str(&row[at + 8..]);
    out
}

fn with_time(row: &str, clock: &str) -> String {
    let open = "<span class=\"dates-time\">";
    let at = row.find(open).expect("row has a time") + open.len();
    let end = at + row[at..].find("</span>").expect("time span closes");
    format!("{}{clock}{}", &row[..at], &row[end..])
}
