//! Market data for `skim scan`: snapshots, the market scanner and ASX
//! contract lookup, over the signed [`Client`].
//!
//! Each part is a thin HTTP call around pure logic that is tested here
//! without a server: [`SnapshotRound`] decides which conids still need a
//! poll, [`ScannerParams`] answers "which filter code means price above",
//! [`pick_asx_listing`] chooses a contract from a search answer. Field
//! parsing lives in [`super::fields`].
//!
//! Request budget (reference section 6): a scan of 50 scanner results costs
//! one scanner run, one snapshot pre-flight and usually one more snapshot
//! poll: 3 requests. The worst case is 6: a daily refresh of the scanner
//! parameters (IBKR allows one fetch per 15 minutes, so they are cached on
//! disk), the run, the pre-flight and the default 3 polls. The scanner's
//! answer already carries the conid, so no contract search is needed.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::client::{Client, excerpt};
use super::fields::{self, Feed, Quote};
use crate::error;
use crate::fsutil;

/// IBKR serves at most this many conids per snapshot call.
pub const MAX_CONIDS_PER_CALL: usize = 100;

/// IBKR serves at most this many fields per snapshot call.
pub const MAX_FIELDS_PER_CALL: usize = 50;

const SNAPSHOT_PATH: &str = "/iserver/marketdata/snapshot";
const SCANNER_PARAMS_PATH: &str = "/iserver/scanner/params";
const SCANNER_RUN_PATH: &str = "/iserver/scanner/run";
const SECDEF_SEARCH_PATH: &str = "/iserver/secdef/search";

/// How [`snapshot_with`] polls.
#[derive(Clone, Debug)]
pub struct SnapshotOptions {
    /// Pause before each poll after the pre-flight. IBKR refreshes
    /// snapshots about every 500 ms, so polling faster gains nothing.
    pub pause: Duration,
    /// Polls after the pre-flight, at most; each asks only for the conids
    /// still missing a required field. The default, 3, keeps a scan of up
    /// to 100 conids within 6 requests (see the module doc).
    pub max_polls: u32,
}

impl Default for SnapshotOptions {
    fn default() -> Self {
        SnapshotOptions {
            pause: Duration::from_millis(500),
            max_polls: 3,
        }
    }
}

/// Snapshots `conids` with [`SnapshotOptions::default`]; see
/// [`snapshot_with`].
pub fn snapshot(client: &Client, conids: &[i64], fields: &[&str]) -> Result<Vec<Quote>> {
    snapshot_with(client, conids, fields, &SnapshotOptions::default())
}

/// Returns one [`Quote`] per distinct conid, in the order given.
///
/// Every call names all of `fields`, so the pre-flight (the first call for
/// a conid, which only starts IBKR's stream) already subscribes them. Then
/// the conids lacking any of `fields` are polled again after
/// `opts.pause`, in batches of at most [`MAX_CONIDS_PER_CALL`], up to
/// `opts.max_polls` times. Whatever is still missing then is `None` in the
/// quote and named in a warning. Conids whose feed (field 6509, which is
/// always requested) says "not subscribed" or "API acknowledgement not
/// signed" are not polled further; when that is true of every conid the
/// call fails with a hint, because nothing the caller could do with the
/// quotes would be right.
pub fn snapshot_with(
    client: &Client,
    conids: &[i64],
    fields: &[&str],
    opts: &SnapshotOptions,
) -> Result<Vec<Quote>> {
    let mut round = SnapshotRound::new(conids, fields)?;
    let query_fields = round.query_fields();
    poll_snapshots(
        &mut round,
        opts,
        |batch| {
            let conids = batch
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(",");
            client
                .get(
                    SNAPSHOT_PATH,
                    &[("conids", conids), ("fields", query_fields.clone())],
                )
                .context("failed to read market data snapshots")
        },
        thread::sleep,
    )?;
    round.finish()
}

/// The polling loop of [`snapshot_with`], with the HTTP call and the sleep
/// passed in so the batching and the bound are testable. Returns the number
/// of calls made.
pub fn poll_snapshots(
    round: &mut SnapshotRound,
    opts: &SnapshotOptions,
    mut fetch: impl FnMut(&[i64]) -> Result<Value>,
    mut sleep: impl FnMut(Duration),
) -> Result<u32> {
    let mut calls = 0;
    for poll in 0..=opts.max_polls {
        let pending = round.pending();
        if pending.is_empty() {
            break;
        }
        if poll > 0 {
            log::debug!(
                "{} conids still lack snapshot fields; polling again",
                pending.len()
            );
            sleep(opts.pause);
        }
        for batch in pending.chunks(MAX_CONIDS_PER_CALL) {
            let answer = fetch(batch)?;
            calls += 1;
            round.merge(&answer)?;
        }
    }
    Ok(calls)
}

/// The state of one snapshot request: the rows received so far per conid,
/// later answers overriding earlier values field by field.
#[derive(Debug)]
pub struct SnapshotRound {
    conids: Vec<i64>,
    fields: Vec<String>,
    rows: HashMap<i64, Map<String, Value>>,
}

impl SnapshotRound {
    /// Starts a round for the distinct `conids` and `fields` (6509 is
    /// added, as it says why data may never come). Fails on an empty field
    /// list, a field that is not a numeric code, more than
    /// [`MAX_FIELDS_PER_CALL`] fields, or a conid that is not positive.
    pub fn new(conids: &[i64], fields: &[&str]) -> Result<SnapshotRound> {
        if fields.is_empty() {
            bail!("a snapshot needs at least one field code");
        }
        let mut wanted: Vec<String> = Vec::new();
        for code in fields.iter().chain(&[fields::AVAILABILITY]) {
            if code.is_empty() || !code.bytes().all(|b| b.is_ascii_digit()) {
                bail!(
                    "snapshot field \"{}\" is not a field code (digits, such as 31)",
                    excerpt(code)
                );
            }
            if !wanted.iter().any(|w| w == code) {
                wanted.push((*code).to_owned());
            }
        }
        if wanted.len() > MAX_FIELDS_PER_CALL {
            bail!(
                "a snapshot asks for {} fields; IBKR serves at most {MAX_FIELDS_PER_CALL}",
                wanted.len()
            );
        }
        let mut distinct = Vec::with_capacity(conids.len());
        for &conid in conids {
            if conid <= 0 {
                bail!("{conid} is not a contract id (a positive whole number)");
            }
            if !distinct.contains(&conid) {
                distinct.push(conid);
            }
        }
        Ok(SnapshotRound {
            conids: distinct,
            fields: wanted,
            rows: HashMap::new(),
        })
    }

    /// The `fields` query value: the codes joined by commas.
    pub fn query_fields(&self) -> String {
        self.fields.join(",")
    }

    /// Conids that lack a required field and whose feed may still deliver
    /// it, in request order.
    pub fn pending(&self) -> Vec<i64> {
        let required = self.required();
        self.conids
            .iter()
            .copied()
            .filter(|conid| match self.rows.get(conid) {
                None => true,
                Some(row) => !is_dead(row) && !fields::has_fields(row, &required),
            })
            .collect()
    }

    /// Folds one snapshot answer (an array of rows) into the round. Rows
    /// for conids not asked for are ignored.
    pub fn merge(&mut self, answer: &Value) -> Result<()> {
        let rows = answer.as_array().ok_or_else(|| {
            anyhow!(
                "IBKR's answer to GET {SNAPSHOT_PATH} is not a list of rows: {}",
                excerpt(&answer.to_string())
            )
        })?;
        for row in rows {
            let Some(row) = row.as_object() else {
                bail!(
                    "a snapshot row is not an object: {}",
                    excerpt(&row.to_string())
                );
            };
            let conid = fields::row_conid(row)?;
            if !self.conids.contains(&conid) {
                log::debug!("ignoring a snapshot row for conid {conid}, which was not asked for");
                continue;
            }
            let kept = self.rows.entry(conid).or_default();
            for (key, value) in row {
                kept.insert(key.clone(), value.clone());
            }
        }
        Ok(())
    }

    /// Reads the quotes, warning about the conids that still miss fields,
    /// and failing when no conid has a market data feed at all.
    pub fn finish(self) -> Result<Vec<Quote>> {
        let required = self.required();
        let mut quotes = Vec::with_capacity(self.conids.len());
        let mut incomplete = Vec::new();
        let mut dead: Vec<(i64, Feed)> = Vec::new();
        let mut delayed = Vec::new();
        for &conid in &self.conids {
            let row = self.rows.get(&conid).cloned().unwrap_or_else(|| {
                let mut bare = Map::new();
                bare.insert("conid".into(), json!(conid));
                bare
            });
            let quote = Quote::from_row(&row)?;
            match quote.feed() {
                Some(feed) if feed.is_unavailable() => {
                    dead.push((conid, feed));
                    quotes.push(quote);
                    continue;
                }
                Some(Feed::Delayed | Feed::FrozenDelayed) => delayed.push(conid.to_string()),
                _ => {}
            }
            let missing: Vec<&str> = required
                .iter()
                .copied()
                .filter(|code| !fields::has_fields(&row, &[code]))
                .collect();
            if !missing.is_empty() {
                incomplete.push(format!("{conid} (no {})", missing.join(",")));
            }
            quotes.push(quote);
        }
        if !dead.is_empty() && dead.len() == quotes.len() {
            return Err(no_feed_error(&dead));
        }
        if !dead.is_empty() {
            let list: Vec<String> = dead.iter().map(|(c, f)| format!("{c} ({f:?})")).collect();
            log::warn!("no market data feed for conids {}", list.join(", "));
        }
        if !delayed.is_empty() {
            log::warn!(
                "market data is delayed, not real time, for conids {}",
                delayed.join(",")
            );
        }
        if !incomplete.is_empty() {
            log::warn!(
                "snapshot fields still missing after polling: {}",
                incomplete.join("; ")
            );
        }
        Ok(quotes)
    }

    /// Fields every conid must have before polling stops: all asked for
    /// except 6509, which only explains absences.
    fn required(&self) -> Vec<&str> {
        self.fields
            .iter()
            .map(String::as_str)
            .filter(|code| *code != fields::AVAILABILITY)
            .collect()
    }
}

/// Whether the row's 6509 says no data will ever come.
fn is_dead(row: &Map<String, Value>) -> bool {
    row.get(fields::AVAILABILITY)
        .and_then(Value::as_str)
        .is_some_and(|code| Feed::from_code(code).is_unavailable())
}

fn no_feed_error(dead: &[(i64, Feed)]) -> anyhow::Error {
    let conids: Vec<String> = dead.iter().map(|(c, _)| c.to_string()).collect();
    let unsigned = dead.iter().any(|(_, f)| *f == Feed::NotAcknowledged);
    let (what, hint) = if unsigned {
        (
            "the market data API acknowledgement has not been signed",
            "sign the market data API acknowledgement in IBKR's Client Portal settings, \
             then run skim again",
        )
    } else {
        (
            "the account has no market data subscription for them",
            "subscribe to ASX market data in IBKR's Client Portal; a paper account also needs \
             the live user's subscriptions shared with it",
        )
    };
    error::failure(format!(
        "IBKR sends no market data for conids {}: {what}",
        conids.join(",")
    ))
    .hint(hint)
    .into()
}

// ---------------------------------------------------------------------------
// Scanner

/// Cached scanner parameters are reused for this long: IBKR allows one
/// fetch per 15 minutes and the lists rarely change.
pub const PARAMS_MAX_AGE: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// `GET /iserver/scanner/params`, reduced to what skim checks.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct ScannerParams {
    pub scan_type_list: Vec<ScanType>,
    pub instrument_list: Vec<ScanInstrument>,
    pub filter_list: Vec<ScanFilter>,
    pub location_tree: Vec<ScanLocation>,
}

/// A scan type such as `HIGH_OPEN_GAP`, and the instruments it applies to.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct ScanType {
    pub display_name: String,
    pub code: String,
    pub instruments: Vec<String>,
}

/// An instrument group such as `STOCK.HK`, and the filter codes it takes.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct ScanInstrument {
    pub display_name: String,
    #[serde(rename = "type")]
    pub code: String,
    pub filters: Vec<String>,
}

/// A scanner filter: `code` is what a run sends.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct ScanFilter {
    pub group: String,
    pub display_name: String,
    pub code: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// A node of the location tree; `code` (IBKR's `type`) is e.g. `STK.HK.ASX`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct ScanLocation {
    pub display_name: String,
    #[serde(rename = "type")]
    pub code: String,
    pub locations: Vec<ScanLocation>,
}

/// What a filter means, for finding its code in [`ScannerParams`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterKind {
    /// Last price above a value.
    PriceAbove,
    /// Shares traded today above a value.
    VolumeAbove,
}

impl FilterKind {
    /// The filter's code and display name, lower case with everything but
    /// letters removed, as IBKR's documentation and TWS spell them. Narrow on
    /// purpose: "avg volume above" or "usd volume above" mean other things.
    fn spellings(self) -> &'static [&'static str] {
        match self {
            FilterKind::PriceAbove => &["priceabove"],
            FilterKind::VolumeAbove => &["volumeabove"],
        }
    }

    fn describe(self) -> &'static str {
        match self {
            FilterKind::PriceAbove => "price above",
            FilterKind::VolumeAbove => "volume above",
        }
    }
}

impl ScannerParams {
    /// Reads the parameters from IBKR's JSON; missing lists are empty.
    pub fn from_json(value: &Value) -> Result<ScannerParams> {
        ScannerParams::deserialize(value).context("IBKR's scanner parameters are not as expected")
    }

    /// Whether `code` is a scan type, and applies to `instrument` when the
    /// scan type lists instruments.
    pub fn has_scan_type(&self, code: &str, instrument: &str) -> bool {
        self.scan_type_list.iter().any(|scan| {
            scan.code == code
                && (scan.instruments.is_empty() || scan.instruments.iter().any(|i| i == instrument))
        })
    }

    /// The instrument group with this code.
    pub fn instrument(&self, code: &str) -> Option<&ScanInstrument> {
        self.instrument_list.iter().find(|i| i.code == code)
    }

    /// Whether `code` appears anywhere in the location tree.
    pub fn has_location(&self, code: &str) -> bool {
        fn walk(nodes: &[ScanLocation], code: &str) -> bool {
            nodes
                .iter()
                .any(|node| node.code == code || walk(&node.locations, code))
        }
        walk(&self.location_tree, code)
    }

    /// Finds the filter meaning `kind` among those `instrument` accepts (all
    /// filters when the instrument lists none), by its code or its display
    /// name. Fails naming what was sought when none matches.
    pub fn find_filter(&self, kind: FilterKind, instrument: &str) -> Result<&ScanFilter> {
        let accepted = self
            .instrument(instrument)
            .map(|i| i.filters.as_slice())
            .unwrap_or_default();
        let usable = |f: &&ScanFilter| accepted.is_empty() || accepted.contains(&f.code);
        let matches = |text: &str| kind.spellings().contains(&letters(text).as_str());
        self.filter_list
            .iter()
            .filter(usable)
            .find(|f| matches(&f.code))
            .or_else(|| {
                self.filter_list
                    .iter()
                    .filter(usable)
                    .find(|f| matches(&f.display_name))
            })
            .ok_or_else(|| {
                anyhow!(
                    "IBKR's scanner parameters have no \"{}\" filter for {instrument}",
                    kind.describe()
                )
            })
    }
}

/// `text` in lower case with everything but ASCII letters removed.
fn letters(text: &str) -> String {
    text.chars()
        .filter(char::is_ascii_alphabetic)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// The cache file beside the database: when the answer was fetched, and
/// the answer itself, kept whole so fields skim ignores today survive.
#[derive(Debug, Serialize, Deserialize)]
struct ParamsCache {
    fetched_at: DateTime<Utc>,
    params: Value,
}

/// Whether a cache fetched at `fetched_at` may be used at `now`. A time
/// more than [`PARAMS_MAX_AGE`] in the future also counts as stale, so a
/// clock that was once wrong cannot pin an old cache for ever; a smaller
/// skew is tolerated because `SKIM_NOW` replays run in the past.
pub fn is_params_cache_fresh(fetched_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    let age = now.signed_duration_since(fetched_at);
    age < PARAMS_MAX_AGE && -age < PARAMS_MAX_AGE
}

/// The scanner parameters, from the cache at `cache_path` while it is
/// fresh at `now` (see [`is_params_cache_fresh`]), else from IBKR, then
/// cached. When IBKR cannot answer and a stale cache exists, the stale one
/// is used with a warning: the lists rarely change, and a retry could hit
/// the 15-minute limit.
pub fn scanner_params(
    client: &Client,
    cache_path: &Path,
    now: DateTime<Utc>,
) -> Result<ScannerParams> {
    let cached = read_params_cache(cache_path);
    if let Some(cache) = &cached
        && is_params_cache_fresh(cache.fetched_at, now)
    {
        log::debug!(
            "using scanner parameters cached at {} in {}",
            cache.fetched_at,
            cache_path.display()
        );
        return ScannerParams::from_json(&cache.params);
    }
    let fetched = client
        .get(SCANNER_PARAMS_PATH, &[])
        .context("failed to read IBKR's scanner parameters");
    let raw = match (fetched, cached) {
        (Ok(raw), _) => raw,
        (Err(err), Some(stale)) => {
            log::warn!("{err:#}; using the copy cached at {}", stale.fetched_at);
            return ScannerParams::from_json(&stale.params);
        }
        (Err(err), None) => return Err(err),
    };
    let params = checked_params(&raw)?;
    write_params_cache(cache_path, now, raw);
    Ok(params)
}

/// Reads freshly fetched parameters, refusing an answer without scan types:
/// an error object or an empty answer would parse as empty lists and, once
/// cached, break every scan for a day.
fn checked_params(raw: &Value) -> Result<ScannerParams> {
    let params = ScannerParams::from_json(raw)?;
    if params.scan_type_list.is_empty() {
        bail!(
            "IBKR's answer to GET {SCANNER_PARAMS_PATH} lists no scan types: {}",
            excerpt(&raw.to_string())
        );
    }
    Ok(params)
}

fn read_params_cache(path: &Path) -> Option<ParamsCache> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return None,
        Err(err) => {
            log::warn!(
                "could not read scanner parameters cache {}: {err}",
                path.display()
            );
            return None;
        }
    };
    match serde_json::from_slice(&bytes) {
        Ok(cache) => Some(cache),
        Err(err) => {
            log::warn!(
                "ignoring unreadable scanner parameters cache {}: {err}",
                path.display()
            );
            None
        }
    }
}

fn write_params_cache(path: &Path, now: DateTime<Utc>, params: Value) {
    let cache = ParamsCache {
        fetched_at: now,
        params,
    };
    let bytes = serde_json::to_vec(&cache).expect("JSON values serialise");
    // A cache that cannot be written costs a fetch next run, nothing more.
    if let Err(err) = fsutil::write_private_file(path, &bytes) {
        log::warn!("could not cache the scanner parameters: {err:#}");
    }
}

/// Instrument group of ASX stocks in IBKR's scanner.
pub const ASX_INSTRUMENT: &str = "STOCK.HK";
/// Scan type: gapped up against the prior close.
pub const GAP_UP_SCAN: &str = "HIGH_OPEN_GAP";
/// Scanner location of the ASX.
pub const ASX_LOCATION: &str = "STK.HK.ASX";

/// A scanner run, checked against [`ScannerParams`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScanRequest {
    pub instrument: String,
    #[serde(rename = "type")]
    pub scan_type: String,
    pub location: String,
    #[serde(rename = "filter")]
    pub filters: Vec<ScanFilterValue>,
}

/// One filter of a run: `{"code": "priceAbove", "value": 0.5}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScanFilterValue {
    pub code: String,
    /// A JSON number; whole values are sent without a fraction, as the
    /// documentation's example (`"value": 5`) does.
    pub value: Value,
}

impl ScanRequest {
    /// The ASX gap-up scan with the given filters, their codes looked up
    /// in `params`. Fails clearly when the params lack the instrument, scan
    /// type, location or a filter.
    pub fn asx_gap_up(
        params: &ScannerParams,
        filters: &[(FilterKind, f64)],
    ) -> Result<ScanRequest> {
        let mut request = ScanRequest {
            instrument: ASX_INSTRUMENT.to_owned(),
            scan_type: GAP_UP_SCAN.to_owned(),
            location: ASX_LOCATION.to_owned(),
            filters: Vec::new(),
        };
        request.check(params)?;
        for &(kind, value) in filters {
            if !value.is_finite() {
                bail!("the \"{}\" scanner filter needs a number", kind.describe());
            }
            let filter = params.find_filter(kind, &request.instrument)?;
            // Whole numbers up to 2^53 convert to integers exactly.
            let value = if value.fract() == 0.0 && value.abs() < 9.0e15 {
                json!(value as i64)
            } else {
                json!(value)
            };
            request.filters.push(ScanFilterValue {
                code: filter.code.clone(),
                value,
            });
        }
        Ok(request)
    }

    /// Fails unless the instrument, the scan type (for that instrument)
    /// and the location all appear in `params`.
    pub fn check(&self, params: &ScannerParams) -> Result<()> {
        let hint = "IBKR's scanner parameters changed or are incomplete; delete the cached \
                    scanner parameters file to fetch them again (at most once per 15 minutes)";
        if params.instrument(&self.instrument).is_none() {
            return Err(error::failure(format!(
                "IBKR's scanner has no instrument {}",
                self.instrument
            ))
            .hint(hint)
            .into());
        }
        if !params.has_scan_type(&self.scan_type, &self.instrument) {
            return Err(error::failure(format!(
                "IBKR's scanner has no scan type {} for {}",
                self.scan_type, self.instrument
            ))
            .hint(hint)
            .into());
        }
        if !params.has_location(&self.location) {
            return Err(error::failure(format!(
                "IBKR's scanner has no location {}",
                self.location
            ))
            .hint(hint)
            .into());
        }
        Ok(())
    }
}

/// One row of a scanner answer.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScanHit {
    pub symbol: String,
    pub conid: i64,
    pub company_name: String,
    /// e.g. `ASX`; empty when IBKR left it out.
    pub listing_exchange: String,
    /// IBKR's display text for the scan's measure, e.g. `+5.25%`. For
    /// showing only: the scan computes gaps from snapshots.
    pub scan_data: String,
}

impl ScanHit {
    /// The conid, when the scanner says it is the ASX listing; otherwise a
    /// contract search must find the ASX one.
    pub fn asx_conid(&self) -> Option<i64> {
        self.listing_exchange
            .eq_ignore_ascii_case("ASX")
            .then_some(self.conid)
    }
}

/// `POST /iserver/scanner/run` with `request`. Not retried: a failed run
/// surfaces, and the 1-per-second pacing is the client's.
pub fn run_scanner(client: &Client, request: &ScanRequest) -> Result<Vec<ScanHit>> {
    let body = serde_json::to_value(request).expect("scan requests serialise");
    let answer = client
        .post(SCANNER_RUN_PATH, &body)
        .with_context(|| format!("failed to run IBKR's {} scanner", request.scan_type))?;
    parse_scan_results(&answer)
}

/// Reads a scanner answer (`{"contracts": [...]}`). An answer with no
/// contracts is an empty list, which is normal before the open.
pub fn parse_scan_results(answer: &Value) -> Result<Vec<ScanHit>> {
    if let Some(message) = answer.get("error") {
        bail!(
            "IBKR's scanner answered with an error: {}",
            excerpt(&text_of(message))
        );
    }
    let contracts = match answer.get("contracts") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(other) => bail!(
            "IBKR's scanner answer has contracts that are not a list: {}",
            excerpt(&other.to_string())
        ),
    };
    contracts
        .iter()
        .enumerate()
        .map(|(i, row)| {
            parse_scan_hit(row).with_context(|| format!("failed to read scanner row {i}"))
        })
        .collect()
}

fn parse_scan_hit(row: &Value) -> Result<ScanHit> {
    let symbol = row
        .get("symbol")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| anyhow!("it has no symbol: {}", excerpt(&row.to_string())))?;
    let conid = match row.get("con_id") {
        Some(value) => fields::parse_conid(value)?,
        // `conidex` is "conid" or "conid@EXCHANGE".
        None => {
            let conidex = row
                .get("conidex")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let digits = conidex.split('@').next().unwrap_or_default();
            fields::parse_conid(&Value::String(digits.to_owned()))
                .with_context(|| format!("scanner row for {} has no con_id", excerpt(symbol)))?
        }
    };
    let text = |key: &str| {
        row.get(key)
            .map(text_of)
            .map(|s| excerpt(&s))
            .unwrap_or_default()
    };
    Ok(ScanHit {
        symbol: excerpt(symbol),
        conid,
        company_name: text("company_name"),
        listing_exchange: text("listing_exchange"),
        scan_data: text("scan_data"),
    })
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------------------
// Contracts

/// Where looked-up ASX conids are kept between runs, so a symbol is
/// searched once. [`JsonContractCache`] is a file; a database table can
/// implement the same trait.
pub trait ContractCache {
    /// The conid stored for `symbol` (upper case), if any.
    fn get(&self, symbol: &str) -> Option<i64>;
    /// Stores the conid for `symbol` (upper case).
    fn put(&mut self, symbol: &str, conid: i64) -> Result<()>;
}

/// A [`ContractCache`] in a JSON file mapping symbols to conids, read
/// when opened and rewritten whole (atomically) on every new entry.
#[derive(Debug)]
pub struct JsonContractCache {
    path: PathBuf,
    entries: BTreeMap<String, i64>,
}

impl JsonContractCache {
    /// Opens the cache at `path`; a missing file is an empty cache, an
    /// unreadable one an error naming the path.
    pub fn open(path: &Path) -> Result<JsonContractCache> {
        let entries = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "failed to read contract cache {}: expected a JSON object of symbol: conid",
                    path.display()
                )
            })?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(err) => {
                return Err(err)
                    .with_context(|| format!("failed to read contract cache {}", path.display()));
            }
        };
        Ok(JsonContractCache {
            path: path.to_owned(),
            entries,
        })
    }
}

impl ContractCache for JsonContractCache {
    fn get(&self, symbol: &str) -> Option<i64> {
        self.entries.get(symbol).copied()
    }

    fn put(&mut self, symbol: &str, conid: i64) -> Result<()> {
        self.entries.insert(symbol.to_owned(), conid);
        let bytes = serde_json::to_vec_pretty(&self.entries).expect("maps serialise");
        fsutil::write_private_file(&self.path, &bytes)
            .with_context(|| format!("failed to write contract cache {}", self.path.display()))
    }
}

/// Checks an ASX code as typed or as sent by IBKR and returns it in upper
/// case: 1 to 12 ASCII letters and digits.
pub fn normalize_symbol(symbol: &str) -> Result<String> {
    let trimmed = symbol.trim();
    if trimmed.is_empty()
        || trimmed.len() > 12
        || !trimmed.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(error::usage(format!(
            "\"{}\" is not an ASX code (1 to 12 letters and digits, such as BHP)",
            excerpt(symbol)
        ))
        .into());
    }
    Ok(trimmed.to_ascii_uppercase())
}

/// The conid of `symbol`'s ASX listing: from `cache`, else from
/// `GET /iserver/secdef/search?symbol=...` through [`pick_asx_listing`],
/// then stored in `cache`. Never returns another exchange's listing.
pub fn asx_conid(client: &Client, symbol: &str, cache: &mut dyn ContractCache) -> Result<i64> {
    let symbol = normalize_symbol(symbol)?;
    if let Some(conid) = cache.get(&symbol) {
        return Ok(conid);
    }
    let answer = client
        .get(SECDEF_SEARCH_PATH, &[("symbol", symbol.clone())])
        .with_context(|| format!("failed to search IBKR's contracts for {symbol}"))?;
    let conid = pick_asx_listing(&symbol, &answer)?;
    cache.put(&symbol, conid)?;
    Ok(conid)
}

/// The conid for a scanner row: its own when the scanner says it is listed
/// on the ASX (and remembered in `cache`), else [`asx_conid`]'s.
pub fn resolve_scan_hit(
    client: &Client,
    hit: &ScanHit,
    cache: &mut dyn ContractCache,
) -> Result<i64> {
    match hit.asx_conid() {
        Some(conid) => {
            let symbol = normalize_symbol(&hit.symbol)?;
            if cache.get(&symbol) != Some(conid) {
                cache.put(&symbol, conid)?;
            }
            Ok(conid)
        }
        None => asx_conid(client, &hit.symbol, cache),
    }
}

/// Picks the ASX stock listing of `symbol` from a contract search answer:
/// the entry whose `description` (the primary exchange) is `ASX`, with a
/// `STK` section and, when the entry names its symbol, the same symbol.
/// Any other exchange's listing, even the only one, is refused with an
/// error saying where the symbol does trade.
pub fn pick_asx_listing(symbol: &str, answer: &Value) -> Result<i64> {
    if let Some(message) = answer.get("error") {
        return Err(no_asx_listing(
            symbol,
            &format!("IBKR says: {}", excerpt(&text_of(message))),
        ));
    }
    let entries = match answer {
        Value::Array(list) => list.as_slice(),
        Value::Null => &[],
        other => bail!(
            "IBKR's contract search answer for {symbol} is not a list: {}",
            excerpt(&other.to_string())
        ),
    };
    let mut elsewhere = Vec::new();
    let mut found: Vec<i64> = Vec::new();
    for entry in entries {
        let exchange = entry
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let same_symbol = entry
            .get("symbol")
            .and_then(Value::as_str)
            .is_none_or(|s| s.trim().eq_ignore_ascii_case(symbol));
        let is_stock = entry
            .get("sections")
            .and_then(Value::as_array)
            .is_some_and(|sections| {
                sections
                    .iter()
                    .any(|s| s.get("secType").and_then(Value::as_str) == Some("STK"))
            });
        if exchange.trim() == "ASX" && is_stock && same_symbol {
            let conid = entry
                .get("conid")
                .ok_or_else(|| anyhow!("the ASX listing of {symbol} has no conid"))
                .and_then(fields::parse_conid)
                .with_context(|| format!("failed to read the ASX listing of {symbol}"))?;
            if !found.contains(&conid) {
                found.push(conid);
            }
        } else if !exchange.is_empty() {
            elsewhere.push(excerpt(exchange));
        }
    }
    match found.as_slice() {
        [conid] => Ok(*conid),
        [first, ..] => {
            log::warn!(
                "IBKR lists {} ASX stock contracts for {symbol}; using {first}",
                found.len()
            );
            Ok(*first)
        }
        [] if elsewhere.is_empty() => Err(no_asx_listing(symbol, "IBKR found no contract")),
        [] => Err(no_asx_listing(
            symbol,
            &format!("IBKR lists it only on {}", elsewhere.join(", ")),
        )),
    }
}

fn no_asx_listing(symbol: &str, why: &str) -> anyhow::Error {
    error::failure(format!("{symbol} has no ASX stock listing at IBKR ({why})"))
        .hint("skim trades ASX listings only; check the ASX code")
        .into()
}

/// The contract's price steps from `GET /iserver/contract/{conid}/info-and-rules`,
/// or `None` when IBKR does not give them (the caller falls back to the
/// ASX's published steps).
pub fn increment_rules(
    client: &Client,
    conid: i64,
) -> Result<Option<Vec<crate::ticks::IncrementRule>>> {
    let answer = client.get(
        &format!("/iserver/contract/{conid}/info-and-rules"),
        &[("isBuy", "true".to_owned())],
    )?;
    let rules = answer
        .get("rules")
        .unwrap_or(&answer)
        .get("incrementRules")
        .and_then(Value::as_array);
    let Some(rules) = rules else {
        return Ok(None);
    };
    let parsed = rules
        .iter()
        .map(|rule| {
            let edge = super::fields::parse_price(rule.get("lowerEdge").unwrap_or(&Value::Null))?;
            let step = super::fields::parse_price(rule.get("increment").unwrap_or(&Value::Null))?;
            match (edge, step) {
                (Some(lower_edge), Some(increment)) => Ok(crate::ticks::IncrementRule {
                    lower_edge,
                    increment,
                }),
                _ => anyhow::bail!("conid {conid}: an increment rule lacks lowerEdge or increment"),
            }
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((!parsed.is_empty()).then_some(parsed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::cell::RefCell;

    fn answer_for(batch: &[i64], fields_by_conid: impl Fn(i64) -> Value) -> Value {
        Value::Array(batch.iter().map(|&c| fields_by_conid(c)).collect())
    }

    fn full_row(conid: i64) -> Value {
        json!({
            "conid": conid, "conidEx": conid.to_string(), "_updated": 1731370000000i64,
            "6509": "RpB", "31": "C44.10", "7295": "45.00", "7741": "44.10",
            "87": "3.1M", "7762": "3100456"
        })
    }

    const SCAN_FIELDS: &[&str] = &[
        fields::LAST,
        fields::OPEN,
        fields::PRIOR_CLOSE,
        fields::VOLUME,
        fields::VOLUME_PRECISE,
    ];

    #[test]
    fn two_hundred_fifty_conids_take_three_pre_flight_calls() {
        let conids: Vec<i64> = (1..=250).collect();
        let mut round = SnapshotRound::new(&conids, SCAN_FIELDS).unwrap();
        let sizes = RefCell::new(Vec::new());
        let calls = poll_snapshots(
            &mut round,
            &SnapshotOptions::default(),
            |batch| {
                sizes.borrow_mut().push(batch.len());
                Ok(answer_for(batch, full_row))
            },
            |_| panic!("everything arrived in the first answers"),
        )
        .unwrap();
        assert_eq!(calls, 3);
        assert_eq!(*sizes.borrow(), vec![100, 100, 50]);
        assert_eq!(round.finish().unwrap().len(), 250);
    }

    #[test]
    fn fifty_conids_cost_a_pre_flight_and_one_poll() {
        let conids: Vec<i64> = (1000..1050).collect();
        let mut round = SnapshotRound::new(&conids, SCAN_FIELDS).unwrap();
        let mut seen = 0;
        let mut slept = Vec::new();
        let calls = poll_snapshots(
            &mut round,
            &SnapshotOptions::default(),
            |batch| {
                seen += 1;
                // The pre-flight answers only {conid, conidEx}.
                Ok(if seen == 1 {
                    answer_for(batch, |c| json!({"conid": c, "conidEx": c.to_string()}))
                } else {
                    answer_for(batch, full_row)
                })
            },
            |pause| slept.push(pause),
        )
        .unwrap();
        assert_eq!(calls, 2);
        assert_eq!(slept, vec![Duration::from_millis(500)]);
        let quotes = round.finish().unwrap();
        assert_eq!(quotes.len(), 50);
        assert_eq!(quotes[0].conid, 1000);
        assert_eq!(quotes[0].open, Some(45.0));
        assert!(!quotes[0].last.unwrap().is_trade());
    }

    #[test]
    fn polling_stops_at_the_bound_and_leaves_missing_fields_empty() {
        let conids = [11, 22];
        let mut round = SnapshotRound::new(&conids, SCAN_FIELDS).unwrap();
        let asked = RefCell::new(Vec::new());
        let opts = SnapshotOptions {
            pause: Duration::from_millis(1),
            max_polls: 4,
        };
        let calls = poll_snapshots(
            &mut round,
            &opts,
            |batch| {
                asked.borrow_mut().push(batch.to_vec());
                // 22 never gets an open: it has not traded today.
                Ok(answer_for(batch, |c| {
                    let mut row = full_row(c);
                    if c == 22 {
                        row.as_object_mut().unwrap().remove("7295");
                    }
                    row
                }))
            },
            |_| {},
        )
        .unwrap();
        assert_eq!(calls, 5, "one pre-flight and four polls");
        assert_eq!(asked.borrow()[0], vec![11, 22]);
        assert!(asked.borrow()[1..].iter().all(|b| b == &vec![22]));
        let quotes = round.finish().unwrap();
        assert_eq!(quotes[1].open, None);
        assert_eq!(quotes[1].prior_close, Some(44.10));
    }

    #[test]
    fn later_answers_add_to_earlier_ones() {
        let mut round = SnapshotRound::new(&[5], &[fields::OPEN, fields::LAST]).unwrap();
        round.merge(&json!([{"conid": 5, "31": "1.00"}])).unwrap();
        assert_eq!(round.pending(), vec![5]);
        round
            .merge(&json!([{"conid": 5, "7295": "0.95"}, {"conid": 9, "31": "2"}]))
            .unwrap();
        assert!(round.pending().is_empty());
        let quote = &round.finish().unwrap()[0];
        assert_eq!((quote.last.unwrap().price, quote.open), (1.0, Some(0.95)));
    }

    #[test]
    fn rounds_reject_bad_input_and_deduplicate() {
        assert!(SnapshotRound::new(&[1], &[]).is_err());
        assert!(SnapshotRound::new(&[0], &["31"]).is_err());
        let err = SnapshotRound::new(&[1], &["31", "last"]).unwrap_err();
        assert!(err.to_string().contains("\"last\""), "{err}");
        let many: Vec<String> = (0..51).map(|i| (100 + i).to_string()).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(SnapshotRound::new(&[1], &many).is_err());
        let round = SnapshotRound::new(&[3, 3, 4], &["31", "6509", "31"]).unwrap();
        assert_eq!(round.pending(), vec![3, 4]);
        assert_eq!(round.query_fields(), "31,6509");
        let mut round = SnapshotRound::new(&[3], &["31"]).unwrap();
        assert!(round.merge(&json!({"error": "x"})).is_err());
    }

    #[test]
    fn no_feed_anywhere_is_an_error_with_a_hint() {
        let mut round = SnapshotRound::new(&[7, 8], SCAN_FIELDS).unwrap();
        round
            .merge(&json!([{"conid": 7, "6509": "NpB"}, {"conid": 8, "6509": "NpB"}]))
            .unwrap();
        assert!(round.pending().is_empty(), "dead feeds are not polled");
        let err = round.finish().unwrap_err();
        assert!(err.to_string().contains("7,8"), "{err}");
        assert!(error::hint(&err).unwrap().contains("subscribe"));

        let mut round = SnapshotRound::new(&[7], SCAN_FIELDS).unwrap();
        round.merge(&json!([{"conid": 7, "6509": "O"}])).unwrap();
        let err = round.finish().unwrap_err();
        assert!(err.to_string().contains("acknowledgement"), "{err}");

        let mut round = SnapshotRound::new(&[7, 8], SCAN_FIELDS).unwrap();
        round
            .merge(&json!([{"conid": 7, "6509": "NpB"}, full_row(8)]))
            .unwrap();
        let quotes = round.finish().unwrap();
        assert_eq!(quotes[0].feed(), Some(Feed::NotSubscribed));
        assert_eq!(quotes[1].open, Some(45.0));
    }

    fn params() -> ScannerParams {
        ScannerParams::from_json(&json!({
            "scan_type_list": [
                {"display_name": "Top % Gainers", "code": "TOP_PERC_GAIN",
                 "instruments": ["STK", "STOCK.HK"]},
                {"display_name": "High Open Gap", "code": "HIGH_OPEN_GAP",
                 "instruments": ["STOCK.HK"]}
            ],
            "instrument_list": [
                {"display_name": "Asia Stocks", "type": "STOCK.HK",
                 "filters": ["avgVolumeAbove", "volumeAbove", "priceAbove", "usdPriceAbove"]},
                {"display_name": "US Stocks", "type": "STK", "filters": []}
            ],
            "filter_list": [
                {"group": "afterHours", "display_name": "Avg Volume Above",
                 "code": "avgVolumeAbove", "type": "non-range"},
                {"group": "usdPrice", "display_name": "Price (USD) Above",
                 "code": "usdPriceAbove", "type": "non-range"},
                {"group": "price", "display_name": "Price Above",
                 "code": "priceAbove", "type": "non-range"},
                {"group": "volume", "display_name": "Volume Above",
                 "code": "volumeAbove", "type": "non-range"}
            ],
            "location_tree": [
                {"display_name": "Asia", "type": "STK.HK", "locations": [
                    {"display_name": "Australia", "type": "STK.HK.ASX", "locations": []}
                ]}
            ]
        }))
        .unwrap()
    }

    #[test]
    fn filters_are_found_by_meaning_not_by_a_hard_coded_code() {
        let p = params();
        assert_eq!(
            p.find_filter(FilterKind::PriceAbove, "STOCK.HK")
                .unwrap()
                .code,
            "priceAbove"
        );
        assert_eq!(
            p.find_filter(FilterKind::VolumeAbove, "STOCK.HK")
                .unwrap()
                .code,
            "volumeAbove"
        );

        // Renamed code, same display name: found by the name.
        let mut renamed = params();
        renamed.filter_list[3].code = "volAbv".into();
        renamed.instrument_list[0].filters.push("volAbv".into());
        let found = renamed
            .find_filter(FilterKind::VolumeAbove, "STOCK.HK")
            .unwrap();
        assert_eq!(found.code, "volAbv");

        // Only "avg volume above" left: not taken for volume above.
        let mut narrow = params();
        narrow.filter_list.remove(3);
        let err = narrow
            .find_filter(FilterKind::VolumeAbove, "STOCK.HK")
            .unwrap_err();
        assert!(err.to_string().contains("volume above"), "{err}");

        // A filter the instrument does not accept is not offered.
        let mut foreign = params();
        foreign.instrument_list[0]
            .filters
            .retain(|f| f != "priceAbove");
        assert!(
            foreign
                .find_filter(FilterKind::PriceAbove, "STOCK.HK")
                .is_err()
        );
    }

    #[test]
    fn the_gap_scan_request_is_checked_against_the_params() {
        let p = params();
        let request = ScanRequest::asx_gap_up(
            &p,
            &[
                (FilterKind::PriceAbove, 0.5),
                (FilterKind::VolumeAbove, 1e5),
            ],
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            json!({"instrument": "STOCK.HK", "type": "HIGH_OPEN_GAP", "location": "STK.HK.ASX",
                   "filter": [{"code": "priceAbove", "value": 0.5},
                              {"code": "volumeAbove", "value": 100000}]})
        );

        let mut no_scan = params();
        no_scan.scan_type_list.retain(|s| s.code != "HIGH_OPEN_GAP");
        let err = ScanRequest::asx_gap_up(&no_scan, &[]).unwrap_err();
        assert!(err.to_string().contains("HIGH_OPEN_GAP"), "{err}");
        assert!(error::hint(&err).is_some());

        let mut no_asx = params();
        no_asx.location_tree[0].locations.clear();
        let err = ScanRequest::asx_gap_up(&no_asx, &[]).unwrap_err();
        assert!(err.to_string().contains("STK.HK.ASX"), "{err}");

        let mut no_instrument = params();
        no_instrument.instrument_list.remove(0);
        assert!(ScanRequest::asx_gap_up(&no_instrument, &[]).is_err());
        assert!(ScanRequest::asx_gap_up(&p, &[(FilterKind::PriceAbove, f64::NAN)]).is_err());
    }

    #[test]
    fn params_cache_is_fresh_for_a_day_either_way() {
        let t0 = Utc.with_ymd_and_hms(2026, 3, 2, 22, 0, 0).unwrap();
        assert!(is_params_cache_fresh(t0, t0));
        assert!(is_params_cache_fresh(t0, t0 + chrono::TimeDelta::hours(23)));
        assert!(!is_params_cache_fresh(
            t0,
            t0 + chrono::TimeDelta::hours(24)
        ));
        assert!(is_params_cache_fresh(t0, t0 - chrono::TimeDelta::hours(3)));
        assert!(!is_params_cache_fresh(t0, t0 - chrono::TimeDelta::days(2)));
    }

    #[test]
    fn empty_or_error_params_are_refused_before_caching() {
        let err = checked_params(&json!({"error": "too many requests"})).unwrap_err();
        assert!(err.to_string().contains("too many requests"), "{err}");
        assert!(checked_params(&json!({})).is_err());
        assert!(checked_params(&json!({"scan_type_list": 5})).is_err());
        let p = checked_params(&json!({"scan_type_list": [{"code": "HIGH_OPEN_GAP"}]})).unwrap();
        assert_eq!(p.scan_type_list[0].code, "HIGH_OPEN_GAP");
    }

    #[test]
    fn params_cache_round_trips_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scanner_params.json");
        assert!(read_params_cache(&path).is_none());
        let t0 = Utc.with_ymd_and_hms(2026, 3, 2, 22, 0, 0).unwrap();
        write_params_cache(
            &path,
            t0,
            json!({"scan_type_list": [{"code": "HIGH_OPEN_GAP"}]}),
        );
        let cache = read_params_cache(&path).unwrap();
        assert_eq!(cache.fetched_at, t0);
        let p = ScannerParams::from_json(&cache.params).unwrap();
        assert!(
            p.has_scan_type("HIGH_OPEN_GAP", "STOCK.HK"),
            "no instruments listed: any"
        );
        std::fs::write(&path, "{not json").unwrap();
        assert!(read_params_cache(&path).is_none());
    }

    #[test]
    fn scanner_answers_become_hits() {
        let answer = json!({
            "contracts": [
                {"server_id": "0", "column_name": "Gap", "symbol": "BHP", "conidex": "4036812",
                 "con_id": 4036812, "available_chart_periods": "#R|1",
                 "company_name": "BHP GROUP LTD",
                 "scan_data": "+5.25%", "contract_description_1": "BHP", "listing_exchange": "ASX",
                 "sec_type": "STK"},
                {"server_id": "1", "symbol": "XYZ", "conidex": "555@ASX",
                 "company_name": "XYZ LTD", "scan_data": "+3.1%", "listing_exchange": "NYSE"}
            ],
            "scan_data_column_name": "Gap"
        });
        let hits = parse_scan_results(&answer).unwrap();
        assert_eq!(hits.len(), 2);
        assert_eq!(hits[0].symbol, "BHP");
        assert_eq!(hits[0].conid, 4036812);
        assert_eq!(hits[0].asx_conid(), Some(4036812));
        assert_eq!(hits[0].scan_data, "+5.25%");
        assert_eq!(hits[1].conid, 555);
        assert_eq!(
            hits[1].asx_conid(),
            None,
            "not listed on the ASX: search instead"
        );
        assert!(
            parse_scan_results(&json!({"contracts": []}))
                .unwrap()
                .is_empty()
        );
        assert!(parse_scan_results(&json!({})).unwrap().is_empty());
        assert!(parse_scan_results(&json!({"error": "bad filter"})).is_err());
        let err = parse_scan_results(&json!({"contracts": [{"con_id": 1}]})).unwrap_err();
        assert!(format!("{err:#}").contains("no symbol"), "{err:#}");
    }

    fn bhp_search() -> Value {
        json!([
            {"conid": "4036812", "companyHeader": "BHP GROUP LTD-SPON ADR - NYSE",
             "companyName": "BHP GROUP LTD-SPON ADR", "symbol": "BHP", "description": "NYSE",
             "restricted": null, "fop": null, "opt": null, "war": null,
             "sections": [{"secType": "STK"}, {"secType": "OPT", "months": "DEC26",
                           "exchange": "SMART;AMEX;CBOE"}]},
            {"conid": "272042", "companyHeader": "BHP GROUP LTD - NASDAQ",
             "companyName": "BHP GROUP LTD", "symbol": "BHP", "description": "NASDAQ",
             "sections": [{"secType": "STK"}]},
            {"conid": "4036818", "companyHeader": "BHP GROUP LTD - ASX",
             "companyName": "BHP GROUP LTD", "symbol": "BHP", "description": "ASX",
             "sections": [{"secType": "STK"}, {"secType": "WAR", "exchange": "ASX"}]},
            {"conid": "123", "companyHeader": "BHP BILLITON - VALUE",
             "companyName": "BHP BILLITON", "symbol": "BHP", "description": "VALUE",
             "sections": [{"secType": "STK"}]}
        ])
    }

    #[test]
    fn only_the_asx_listing_is_picked() {
        assert_eq!(pick_asx_listing("BHP", &bhp_search()).unwrap(), 4036818);
        let mut reordered = bhp_search();
        reordered.as_array_mut().unwrap().reverse();
        assert_eq!(pick_asx_listing("BHP", &reordered).unwrap(), 4036818);
    }

    #[test]
    fn a_symbol_listed_only_elsewhere_is_an_error_naming_where() {
        let mut us_only = bhp_search();
        us_only.as_array_mut().unwrap().remove(2);
        let err = pick_asx_listing("BHP", &us_only).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("no ASX stock listing"), "{text}");
        assert!(text.contains("NYSE") && text.contains("NASDAQ"), "{text}");

        let not_stock = json!([{"conid": "9", "symbol": "BHP", "description": "ASX",
                                "sections": [{"secType": "WAR"}]}]);
        assert!(pick_asx_listing("BHP", &not_stock).is_err());
        let other_symbol = json!([{"conid": "9", "symbol": "BHPX", "description": "ASX",
                                   "sections": [{"secType": "STK"}]}]);
        assert!(pick_asx_listing("BHP", &other_symbol).is_err());
        assert!(pick_asx_listing("ZZZ", &json!([])).is_err());
        let err = pick_asx_listing("ZZZ", &json!({"error": "No symbols found"})).unwrap_err();
        assert!(err.to_string().contains("No symbols found"), "{err}");
    }

    #[test]
    fn symbols_are_checked_and_upper_cased() {
        assert_eq!(normalize_symbol(" bhp ").unwrap(), "BHP");
        assert_eq!(normalize_symbol("14D").unwrap(), "14D");
        for bad in ["", "BHP.AX", "B HP", "ABCDEFGHIJKLM", "BHP\u{1b}"] {
            let err = normalize_symbol(bad).unwrap_err();
            assert_eq!(error::exit_kind(&err), error::ExitKind::Usage, "{bad:?}");
        }
    }

    #[test]
    fn the_json_contract_cache_keeps_entries_across_opens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("contracts.json");
        let mut cache = JsonContractCache::open(&path).unwrap();
        assert_eq!(cache.get("BHP"), None);
        cache.put("BHP", 4036818).unwrap();
        let reopened = JsonContractCache::open(&path).unwrap();
        assert_eq!(reopened.get("BHP"), Some(4036818));
        std::fs::write(&path, "[1,2]").unwrap();
        let err = JsonContractCache::open(&path).unwrap_err();
        assert!(err.to_string().contains("contracts.json"), "{err}");
    }
}
