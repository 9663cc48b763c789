//! The morning scan: ASX stocks that gapped up at the open and carry a
//! price-sensitive announcement today.
//!
//! Order of work: the calendar (a closed day costs no request), the ASX
//! announcements page (a failure there fails the scan: an empty set would
//! silently mean "no candidates"), then IBKR: the gap-up scanner for the
//! list, snapshots for the numbers. The gap is computed from the snapshot's
//! open and prior close, never from the scanner's display text. Results are
//! stored per trading date and ticker, so a re-run updates and never
//! duplicates, and only new candidates are announced.

use std::collections::HashSet;

use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use crate::asx::{self, Announcement, AnnouncementsPage};
use crate::calendar::{self, EXCHANGE_TZ};
use crate::config::Config;
use crate::discord::{self, ScanCandidate};
use crate::ibkr::fields::{QUOTE_FIELDS, Quote};
use crate::ibkr::market::{self, FilterKind, JsonContractCache, ScanRequest};
use crate::ibkr::{Client, connect};
use crate::outbox;
use crate::store::{Store, timestamp};

/// What the scan looks for.
#[derive(Clone, Debug)]
pub struct ScanOptions {
    /// Minimum gap, in percent, of today's open over the prior close.
    pub min_gap_pct: f64,
    /// Minimum last traded price, AUD.
    pub min_price: f64,
    /// Minimum shares traded today.
    pub min_volume: u64,
}

/// `ok`, or `skipped` on a day the ASX is closed or before the open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Skipped,
}

/// A stock that passed every test.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Candidate {
    pub ticker: String,
    pub conid: i64,
    pub gap_pct: f64,
    pub prior_close: f64,
    pub open: f64,
    pub last: f64,
    pub volume: u64,
    pub headline: String,
    pub announced_at: DateTime<Tz>,
    pub pdf_url: String,
}

/// A scanner result that did not qualify, and why.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Rejected {
    pub ticker: String,
    pub gap_pct: Option<f64>,
    pub reason: String,
}

/// The outcome of one scan.
#[derive(Clone, Debug, Serialize)]
pub struct ScanReport {
    pub date: NaiveDate,
    pub status: Status,
    pub reason: Option<String>,
    pub candidates: Vec<Candidate>,
    pub rejected: Vec<Rejected>,
}

impl ScanReport {
    fn skipped(date: NaiveDate, reason: String) -> ScanReport {
        ScanReport {
            date,
            status: Status::Skipped,
            reason: Some(reason),
            candidates: Vec::new(),
            rejected: Vec::new(),
        }
    }
}

/// Why the ASX is not open for a scan at `now`, if it is not.
pub fn closed_reason(now: DateTime<Utc>) -> Option<String> {
    let local = now.with_timezone(&EXCHANGE_TZ);
    let date = local.date_naive();
    if let Some(reason) = calendar::closed_reason(date) {
        return Some(format!("ASX closed today ({reason})"));
    }
    let session = calendar::session(date)?;
    (local < session.continuous_start).then(|| {
        format!(
            "before the open: continuous trading starts at {} Sydney time",
            session.continuous_start.format("%H:%M")
        )
    })
}

/// Runs the scan at market time `now`: announcements, scanner, snapshots,
/// and the test of each stock. Stores nothing.
pub fn scan(config: &Config, now: DateTime<Utc>, opts: &ScanOptions) -> Result<ScanReport> {
    let date = now.with_timezone(&EXCHANGE_TZ).date_naive();
    if let Some(reason) = closed_reason(now) {
        return Ok(ScanReport::skipped(date, reason));
    }
    let page = fetch_announcements(config)?;
    let client = connect::client(config)?;
    client.connect()?;
    let quotes = gap_up_quotes(&client, config, opts)?;
    let mut report = ScanReport {
        date,
        status: Status::Ok,
        reason: None,
        candidates: Vec::new(),
        rejected: Vec::new(),
    };
    for (ticker, quote) in quotes {
        let todays: Vec<&Announcement> = page
            .announcements
            .iter()
            .filter(|a| a.code == ticker && a.announced_at.date_naive() == date)
            .collect();
        match evaluate(&ticker, &quote, &todays, opts) {
            Ok(candidate) => report.candidates.push(candidate),
            Err(rejected) => report.rejected.push(rejected),
        }
    }
    report
        .candidates
        .sort_by(|a, b| b.gap_pct.total_cmp(&a.gap_pct));
    Ok(report)
}

/// The announcements page, which must parse: a layout change or an HTTP
/// failure is an error, never an empty list.
fn fetch_announcements(config: &Config) -> Result<AnnouncementsPage> {
    let http = reqwest::blocking::Client::builder()
        .timeout(config.http_timeout)
        .build()
        .context("failed to build the HTTP client")?;
    asx::fetch(&http, config.asx_announcements_url.as_str())
}

/// The ASX gap-up scanner's stocks with a snapshot of each.
fn gap_up_quotes(
    client: &Client,
    config: &Config,
    opts: &ScanOptions,
) -> Result<Vec<(String, Quote)>> {
    let state = config.state_dir();
    // IBKR allows one params call per 15 minutes; the real clock decides
    // the cache's age, whatever SKIM_NOW says.
    let params = market::scanner_params(client, &state.join("scanner_params.json"), Utc::now())?;
    let mut filters = Vec::new();
    for (kind, value) in [
        (FilterKind::PriceAbove, opts.min_price),
        (FilterKind::VolumeAbove, opts.min_volume as f64),
    ] {
        // A filter the scanner does not offer is applied to the snapshot
        // only; the scan stays right, IBKR just returns more rows.
        match params.find_filter(kind, market::ASX_INSTRUMENT) {
            Ok(_) if value > 0.0 => filters.push((kind, value)),
            Ok(_) => {}
            Err(err) => log::warn!("{err:#}; filtering on the snapshot only"),
        }
    }
    let request = ScanRequest::asx_gap_up(&params, &filters)?;
    let hits = market::run_scanner(client, &request)?;
    log::info!("the gap-up scanner returned {} stocks", hits.len());
    let mut cache = JsonContractCache::open(&state.join("contracts.json"))?;
    let mut tickers = Vec::new();
    for hit in &hits {
        match market::resolve_scan_hit(client, hit, &mut cache) {
            Ok(conid) => tickers.push((hit.symbol.clone(), conid)),
            Err(err) => log::warn!("skipping {}: {err:#}", hit.symbol),
        }
    }
    if tickers.is_empty() {
        return Ok(Vec::new());
    }
    let conids: Vec<i64> = tickers.iter().map(|(_, conid)| *conid).collect();
    let quotes = market::snapshot(client, &conids, QUOTE_FIELDS)?;
    Ok(tickers
        .into_iter()
        .filter_map(|(ticker, conid)| {
            quotes
                .iter()
                .find(|q| q.conid == conid)
                .map(|q| (ticker, q.clone()))
        })
        .collect())
}

/// Tests one stock: traded today, gap, price, volume, and a price-sensitive
/// announcement among `todays` (its announcements dated today).
pub fn evaluate(
    ticker: &str,
    quote: &Quote,
    todays: &[&Announcement],
    opts: &ScanOptions,
) -> std::result::Result<Candidate, Rejected> {
    let reject = |gap_pct: Option<f64>, reason: String| Rejected {
        ticker: ticker.to_owned(),
        gap_pct,
        reason,
    };
    let (Some(open), Some(prior_close)) = (quote.open, quote.prior_close) else {
        return Err(reject(
            None,
            "no open or prior close in the snapshot yet".into(),
        ));
    };
    if prior_close <= 0.0 {
        return Err(reject(
            None,
            format!("prior close {prior_close} is not a price"),
        ));
    }
    let gap_pct = round2((open - prior_close) / prior_close * 100.0);
    let last = match quote.last {
        Some(last) if last.is_trade() => last.price,
        _ => return Err(reject(Some(gap_pct), "not traded yet today".into())),
    };
    if gap_pct < opts.min_gap_pct {
        return Err(reject(
            Some(gap_pct),
            format!("gap {gap_pct}% is below {}%", opts.min_gap_pct),
        ));
    }
    if last < opts.min_price {
        return Err(reject(
            Some(gap_pct),
            format!("price {last} is below {}", opts.min_price),
        ));
    }
    let volume = quote.volume.unwrap_or(0);
    if volume < opts.min_volume {
        return Err(reject(
            Some(gap_pct),
            format!("volume {volume} is below {}", opts.min_volume),
        ));
    }
    // The page lists newest first; the earliest price-sensitive release is
    // the one that moved the open.
    let Some(news) = todays.iter().rev().find(|a| a.price_sensitive) else {
        let reason = if todays.is_empty() {
            "no announcement today"
        } else {
            "no price-sensitive announcement today"
        };
        return Err(reject(Some(gap_pct), reason.into()));
    };
    Ok(Candidate {
        ticker: ticker.to_owned(),
        conid: quote.conid,
        gap_pct,
        prior_close,
        open,
        last,
        volume,
        headline: news.headline.clone(),
        announced_at: news.announced_at,
        pdf_url: news.pdf_url.clone(),
    })
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// Stores the report's candidates (updating today's rows, never
/// duplicating) and, unless `notify` is false, queues the scan message in
/// the same transaction: on the first scan of the day always, on a re-run
/// only when it found new candidates. Returns the tickers that were new.
pub fn record(
    store: &Store,
    report: &ScanReport,
    now: DateTime<Utc>,
    notify: bool,
) -> Result<Vec<String>> {
    let date = report.date.to_string();
    let at = timestamp(now);
    store.transaction(|tx| {
        let first_scan = tx
            .query_row(
                "SELECT runs FROM scans WHERE date = ?1",
                params![date],
                |row| row.get::<_, i64>(0),
            )
            .optional()?
            .is_none();
        tx.execute(
            "INSERT INTO scans (date, first_at, last_at, runs) VALUES (?1, ?2, ?2, 1)
             ON CONFLICT (date) DO UPDATE SET last_at = excluded.last_at, runs = runs + 1",
            params![date, at],
        )?;
        let known: HashSet<String> = {
            let mut stmt = tx.prepare("SELECT ticker FROM candidates WHERE date = ?1")?;
            stmt.query_map(params![date], |row| row.get(0))?
                .collect::<Result<_, _>>()?
        };
        let mut new = Vec::new();
        for c in &report.candidates {
            tx.execute(
                "INSERT INTO candidates (date, ticker, conid, gap_pct, prior_close, open, last,
                     volume, headline, announced_at, pdf_url, first_seen_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12)
                 ON CONFLICT (date, ticker) DO UPDATE SET
                     conid = excluded.conid, gap_pct = excluded.gap_pct,
                     prior_close = excluded.prior_close, open = excluded.open,
                     last = excluded.last, volume = excluded.volume,
                     headline = excluded.headline, announced_at = excluded.announced_at,
                     pdf_url = excluded.pdf_url, updated_at = excluded.updated_at",
                params![
                    date,
                    c.ticker,
                    c.conid,
                    c.gap_pct,
                    c.prior_close,
                    c.open,
                    c.last,
                    c.volume as i64,
                    c.headline,
                    c.announced_at.to_rfc3339(),
                    c.pdf_url,
                    at
                ],
            )?;
            if !known.contains(&c.ticker) {
                new.push(c.ticker.clone());
            }
        }
        if notify && (first_scan || !new.is_empty()) {
            let fresh: Vec<ScanCandidate> = report
                .candidates
                .iter()
                .filter(|c| new.contains(&c.ticker))
                .map(|c| ScanCandidate {
                    ticker: c.ticker.clone(),
                    gap_pct: c.gap_pct,
                    price: c.last,
                    headline: Some(c.headline.clone()),
                })
                .collect();
            outbox::enqueue_in(tx, &discord::scan_complete(&fresh, now), now)?;
        }
        Ok(new)
    })
}

/// Queues the red scan error message.
pub fn record_failure(store: &Store, err: &anyhow::Error, now: DateTime<Utc>) -> Result<()> {
    outbox::enqueue(store, &discord::scan_error(&format!("{err:#}"), now), now).map(|_| ())
}
