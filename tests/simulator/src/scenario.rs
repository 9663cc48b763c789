//! A trading day, or a run of them, for the simulator to play: instruments
//! with their prior close, other listings, 1-minute bars in Sydney time for
//! the first day and optionally for later days, earlier daily bars, scanner
//! rank and price steps, and the first day's ASX announcements.
//!
//! The scenario is data only; the endpoints in `market`, `asx` and the
//! clock decide what of it is visible at the simulated "now". The market
//! moves in whole minutes: a bar stamped `10:03` becomes public when its
//! minute ends, at 10:04:00 Sydney time. A day's daily bar is complete at
//! [`DAY_END`], after the closing auction.

use std::collections::HashSet;
use std::path::Path;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// The exchange's time zone; every scenario time is local to it.
pub const SYDNEY: Tz = chrono_tz::Australia::Sydney;

/// The first minute of continuous trading, after the opening auction.
const FIRST_BAR: NaiveTime = hhmm_const(10, 0);
/// The last 1-minute bar a day can have: the closing auction's.
const LAST_BAR: NaiveTime = hhmm_const(16, 11);
/// When a trading day is over: its closing auction has ended, its daily bar
/// is final and DAY orders have expired.
pub const DAY_END: NaiveTime = hhmm_const(16, 12);

const fn hhmm_const(hour: u32, minute: u32) -> NaiveTime {
    match NaiveTime::from_hms_opt(hour, minute, 0) {
        Some(time) => time,
        None => panic!("invalid constant time"),
    }
}

/// One simulated trading day.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// The trading date, in Sydney.
    pub date: NaiveDate,
    /// Every instrument the simulated IBKR knows.
    pub instruments: Vec<Instrument>,
    /// The day's ASX announcements, in any order.
    #[serde(default)]
    pub announcements: Vec<Announcement>,
}

/// A stock listed on the ASX, perhaps also elsewhere.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Instrument {
    /// ASX code, 1 to 6 upper-case letters and digits.
    pub symbol: String,
    /// IBKR's contract id of the ASX listing.
    pub conid: u64,
    /// Company name as IBKR spells it (upper case).
    pub company_name: String,
    /// The previous trading day's close, A$.
    pub prior_close: f64,
    /// Listings of the same symbol on other exchanges, which a client must
    /// not pick.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_listings: Vec<Listing>,
    /// Position in the `HIGH_OPEN_GAP` scanner (1 = first); absent when the
    /// scanner does not list it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scanner_rank: Option<u32>,
    /// IBKR's price steps; the ASX's own steps when absent.
    #[serde(default = "asx_increment_rules")]
    pub increment_rules: Vec<IncrementRule>,
    /// Today's 1-minute bars, regular hours, oldest first.
    #[serde(default)]
    pub bars: Vec<Bar>,
    /// Earlier days' bars, oldest first; the last close is `prior_close`.
    #[serde(default)]
    pub daily_bars: Vec<DailyBar>,
    /// 1-minute bars of trading days after `date`, oldest day first. A day
    /// missing here is one on which the stock did not trade.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub later_days: Vec<DayBars>,
}

/// The 1-minute bars of one later trading day.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DayBars {
    /// The Sydney trading date.
    pub date: NaiveDate,
    /// That day's bars, regular hours, oldest first.
    pub bars: Vec<Bar>,
}

/// Another exchange's listing of a symbol.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listing {
    /// Exchange code as IBKR's `description` gives it, e.g. `NYSE`.
    pub exchange: String,
    /// That listing's contract id.
    pub conid: u64,
    /// Its company name.
    pub company_name: String,
}

/// A price step that applies from `lower_edge` up to the next rule's edge.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncrementRule {
    /// The lowest price the step applies to, A$.
    pub lower_edge: f64,
    /// The step, A$.
    pub increment: f64,
}

/// The ASX cash-market steps: 0.1c below 10c, 0.5c below $2, then 1c.
pub fn asx_increment_rules() -> Vec<IncrementRule> {
    vec![
        IncrementRule {
            lower_edge: 0.0,
            increment: 0.001,
        },
        IncrementRule {
            lower_edge: 0.1,
            increment: 0.005,
        },
        IncrementRule {
            lower_edge: 2.0,
            increment: 0.01,
        },
    ]
}

/// One minute of trading, stamped with its first minute in Sydney time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bar {
    /// Sydney time the minute starts, `HH:MM`.
    #[serde(with = "hhmm")]
    pub time: NaiveTime,
    /// Open, high, low and close, A$.
    pub o: f64,
    pub h: f64,
    pub l: f64,
    pub c: f64,
    /// Shares traded.
    pub v: u64,
}

/// One earlier trading day.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DailyBar {
    /// The Sydney trading date.
    pub date: NaiveDate,
    /// Open, high, low and close, A$.
    pub o: f64,
    pub h: f64,
    pub l: f64,
    pub c: f64,
    /// Shares traded.
    pub v: u64,
}

/// One company announcement on the ASX's "today" page.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Announcement {
    /// The issuer's ASX code.
    pub code: String,
    /// Sydney release time, `HH:MM`.
    #[serde(with = "hhmm")]
    pub time: NaiveTime,
    /// Whether the ASX marks it price sensitive.
    pub price_sensitive: bool,
    /// The headline as plain text (the page escapes it).
    pub headline: String,
    /// Number of PDF pages, at least 1.
    pub pages: u32,
    /// The ASX document id, 8 digits, zero-padded.
    pub ids_id: String,
    /// File size as the page shows it, e.g. `1.3MB`.
    #[serde(default = "default_file_size")]
    pub file_size: String,
}

fn default_file_size() -> String {
    "150.0KB".to_string()
}

/// `HH:MM` times in scenario files.
mod hhmm {
    use chrono::NaiveTime;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(time: &NaiveTime, out: S) -> Result<S::Ok, S::Error> {
        out.serialize_str(&time.format("%H:%M").to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(input: D) -> Result<NaiveTime, D::Error> {
        let text = String::deserialize(input)?;
        NaiveTime::parse_from_str(&text, "%H:%M").map_err(|_| {
            serde::de::Error::custom(format!("time {text:?} is not a 24-hour HH:MM time"))
        })
    }
}

/// What an instrument has done by some moment of the day.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Quote {
    /// Today's first trade; `None` before it.
    pub open: Option<f64>,
    /// The last trade, or the prior close before the first trade.
    pub last: f64,
    /// Today's high and low so far; `None` before the first trade.
    pub high: Option<f64>,
    pub low: Option<f64>,
    /// Shares traded today.
    pub volume: u64,
}

impl Quote {
    /// Whether the stock has traded today.
    pub fn has_traded(&self) -> bool {
        self.open.is_some()
    }
}

impl Scenario {
    /// Reads and checks a scenario file.
    pub fn from_path(path: &Path) -> Result<Scenario> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read scenario {}", path.display()))?;
        Scenario::from_json(&text).with_context(|| format!("invalid scenario {}", path.display()))
    }

    /// Parses and checks a scenario from JSON text.
    pub fn from_json(text: &str) -> Result<Scenario> {
        let scenario: Scenario =
            serde_json::from_str(text).context("scenario is not valid scenario JSON")?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// Checks everything serde cannot: codes, ordering, prices, ids.
    pub fn validate(&self) -> Result<()> {
        if matches!(self.date.weekday(), Weekday::Sat | Weekday::Sun) {
            bail!("date {} is a weekend, not a trading day", self.date);
        }
        let mut symbols = HashSet::new();
        let mut conids = HashSet::new();
        let mut ranks = HashSet::new();
        for inst in &self.instruments {
            let name = &inst.symbol;
            check_code(name).with_context(|| format!("instrument {name:?}"))?;
            if !symbols.insert(name.as_str()) {
                bail!("instrument {name} is listed twice");
            }
            let all_conids =
                std::iter::once(inst.conid).chain(inst.other_listings.iter().map(|l| l.conid));
            for conid in all_conids {
                if !conids.insert(conid) {
                    bail!("conid {conid} of {name} is used twice");
                }
            }
            if let Some(rank) = inst.scanner_rank
                && !ranks.insert(rank)
            {
                bail!("scanner rank {rank} of {name} is used twice");
            }
            inst.validate(self.date)
                .with_context(|| format!("instrument {name}"))?;
        }
        let mut ids = HashSet::new();
        for ann in &self.announcements {
            let code = &ann.code;
            check_code(code).with_context(|| format!("announcement {:?}", ann.ids_id))?;
            if ann.ids_id.len() != 8 || !ann.ids_id.bytes().all(|b| b.is_ascii_digit()) {
                bail!("announcement idsId {:?} is not 8 digits", ann.ids_id);
            }
            if !ids.insert(ann.ids_id.as_str()) {
                bail!("announcement idsId {} is used twice", ann.ids_id);
            }
            if ann.headline.trim().is_empty() {
                bail!("announcement {} has an empty headline", ann.ids_id);
            }
            if ann.pages == 0 {
                bail!("announcement {} has no pages", ann.ids_id);
            }
        }
        Ok(())
    }

    /// The instrument whose ASX listing has `conid`.
    pub fn by_conid(&self, conid: u64) -> Option<&Instrument> {
        self.instruments.iter().find(|i| i.conid == conid)
    }

    /// The instrument with this ASX code, compared case-insensitively.
    pub fn by_symbol(&self, symbol: &str) -> Option<&Instrument> {
        self.instruments
            .iter()
            .find(|i| i.symbol.eq_ignore_ascii_case(symbol))
    }

    /// Sydney wall-clock time of `now`.
    pub fn local(now: DateTime<Utc>) -> NaiveDateTime {
        now.with_timezone(&SYDNEY).naive_local()
    }

    /// The UTC instant of a Sydney time on the scenario's date.
    pub fn instant(&self, time: NaiveTime) -> DateTime<Utc> {
        local_instant(self.date.and_time(time))
    }

    /// The announcements released by `now`, newest first (ties: higher
    /// idsId first, as the ASX numbers them in release order). They belong
    /// to the scenario's first date: the "today" page of any other date is
    /// empty.
    pub fn released(&self, now: DateTime<Utc>) -> Vec<&Announcement> {
        if Scenario::local(now).date() != self.date {
            return Vec::new();
        }
        let mut out: Vec<&Announcement> = self
            .announcements
            .iter()
            .filter(|a| self.instant(a.time) <= now)
            .collect();
        out.sort_by(|a, b| (b.time, &b.ids_id).cmp(&(a.time, &a.ids_id)));
        out
    }
}

impl Scenario {
    /// Every date with 1-minute bars, in order: the scenario's date, then
    /// each later day any instrument trades on.
    pub fn trading_days(&self) -> Vec<NaiveDate> {
        let mut days: Vec<NaiveDate> = self
            .instruments
            .iter()
            .flat_map(|i| i.later_days.iter().map(|d| d.date))
            .collect();
        days.push(self.date);
        days.sort();
        days.dedup();
        days
    }

    /// The trading day whose prices show at Sydney time `local`: the last
    /// trading day on or before its date, or the first day before it.
    pub fn session_day(&self, local: NaiveDateTime) -> NaiveDate {
        self.trading_days()
            .into_iter()
            .rfind(|d| *d <= local.date())
            .unwrap_or(self.date)
    }

    /// `inst`'s 1-minute bars on `date`; empty on a day it did not trade.
    pub fn bars_on<'a>(&self, inst: &'a Instrument, date: NaiveDate) -> &'a [Bar] {
        if date == self.date {
            return &inst.bars;
        }
        inst.later_days
            .iter()
            .find(|d| d.date == date)
            .map_or(&[], |d| &d.bars)
    }

    /// `inst`'s bars of its session day that are public at `local`, with
    /// that day.
    pub fn bars_public<'a>(
        &self,
        inst: &'a Instrument,
        local: NaiveDateTime,
    ) -> (NaiveDate, &'a [Bar]) {
        let day = self.session_day(local);
        let bars = self.bars_on(inst, day);
        if local.date() > day {
            return (day, bars);
        }
        let done = bars
            .iter()
            .take_while(|b| b.time + chrono::Duration::minutes(1) <= local.time())
            .count();
        (day, &bars[..done])
    }

    /// The close before `date`: the last bar of the latest earlier trading
    /// day `inst` traded on, or its `prior_close` for the first day.
    pub fn prior_close_on(&self, inst: &Instrument, date: NaiveDate) -> f64 {
        self.trading_days()
            .into_iter()
            .filter(|d| *d < date)
            .rev()
            .find_map(|d| self.bars_on(inst, d).last().map(|b| b.c))
            .unwrap_or(inst.prior_close)
    }

    /// What `inst` has done today by Sydney time `local`, against the close
    /// of the trading day before.
    pub fn quote_at(&self, inst: &Instrument, local: NaiveDateTime) -> (Quote, f64) {
        let (day, bars) = self.bars_public(inst, local);
        let prior = self.prior_close_on(inst, day);
        let mut quote = inst.quote(bars);
        if bars.is_empty() {
            quote.last = prior;
        }
        (quote, prior)
    }

    /// `inst`'s daily bars of the days complete at `local` (past
    /// [`DAY_END`]), oldest first: its `daily_bars`, then one bar per
    /// scenario day it traded on.
    pub fn daily_history(&self, inst: &Instrument, local: NaiveDateTime) -> Vec<DailyBar> {
        let mut out = inst.daily_bars.clone();
        for day in self.trading_days() {
            let bars = self.bars_on(inst, day);
            if day.and_time(DAY_END) > local {
                break;
            }
            let (Some(first), Some(last)) = (bars.first(), bars.last()) else {
                continue;
            };
            out.push(DailyBar {
                date: day,
                o: first.o,
                h: bars.iter().map(|b| b.h).fold(f64::MIN, f64::max),
                l: bars.iter().map(|b| b.l).fold(f64::MAX, f64::min),
                c: last.c,
                v: bars.iter().map(|b| b.v).sum(),
            });
        }
        out
    }

    /// The UTC instant of a Sydney time on `date`.
    pub fn instant_on(date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
        local_instant(date.and_time(time))
    }
}

/// The UTC instant of a Sydney wall-clock time. In the autumn overlap the
/// earlier instant is taken; a time skipped in spring moves an hour on.
pub fn local_instant(local: NaiveDateTime) -> DateTime<Utc> {
    match SYDNEY.from_local_datetime(&local) {
        chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => t.to_utc(),
        chrono::LocalResult::None => local_instant(local + chrono::Duration::hours(1)),
    }
}

fn check_code(code: &str) -> Result<()> {
    let ok = (1..=6).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if !ok {
        bail!("code {code:?} is not 1 to 6 upper-case letters and digits");
    }
    Ok(())
}

/// Checks one day's 1-minute bars: regular hours, rising times, sane prices.
fn check_bars(bars: &[Bar]) -> Result<()> {
    let mut previous: Option<NaiveTime> = None;
    for bar in bars {
        let at = bar.time.format("%H:%M");
        if bar.time < FIRST_BAR || bar.time > LAST_BAR {
            bail!("bar {at} is outside regular hours 10:00-16:11");
        }
        if previous.is_some_and(|p| bar.time <= p) {
            bail!("bar {at} is not after the bar before it");
        }
        previous = Some(bar.time);
        check_ohlc(bar.o, bar.h, bar.l, bar.c).with_context(|| format!("bar {at}"))?;
    }
    Ok(())
}

fn check_ohlc(o: f64, h: f64, l: f64, c: f64) -> Result<()> {
    let prices = [o, h, l, c];
    if prices.iter().any(|p| !p.is_finite() || *p <= 0.0) {
        bail!("prices must be positive, got o={o} h={h} l={l} c={c}");
    }
    if h < o.max(c) || l > o.min(c) || l > h {
        bail!("high and low must bound open and close, got o={o} h={h} l={l} c={c}");
    }
    Ok(())
}

impl Instrument {
    fn validate(&self, date: NaiveDate) -> Result<()> {
        if !self.prior_close.is_finite() || self.prior_close <= 0.0 {
            bail!("prior_close must be positive, got {}", self.prior_close);
        }
        let rules = &self.increment_rules;
        if rules.first().is_none_or(|r| r.lower_edge != 0.0) {
            bail!("increment_rules must start at lower_edge 0");
        }
        if rules.windows(2).any(|w| w[1].lower_edge <= w[0].lower_edge)
            || rules
                .iter()
                .any(|r| !r.increment.is_finite() || r.increment <= 0.0)
        {
            bail!("increment_rules must have rising edges and positive increments");
        }
        check_bars(&self.bars)?;
        let mut previous = date;
        for day in &self.later_days {
            if day.date <= previous || matches!(day.date.weekday(), Weekday::Sat | Weekday::Sun) {
                bail!("later day {} is not a weekday after {previous}", day.date);
            }
            previous = day.date;
            check_bars(&day.bars).with_context(|| format!("later day {}", day.date))?;
        }
        let mut previous: Option<NaiveDate> = None;
        for bar in &self.daily_bars {
            if bar.date >= date || previous.is_some_and(|p| bar.date <= p) {
                bail!(
                    "daily bar {} is out of order or not before {date}",
                    bar.date
                );
            }
            previous = Some(bar.date);
            check_ohlc(bar.o, bar.h, bar.l, bar.c)
                .with_context(|| format!("daily bar {}", bar.date))?;
        }
        if let Some(last) = self.daily_bars.last()
            && (last.c - self.prior_close).abs() > 1e-9
        {
            bail!(
                "the last daily close {} differs from prior_close {}",
                last.c,
                self.prior_close
            );
        }
        Ok(())
    }

    /// The bars whose minute has ended by `now` (Sydney `local`) on `date`.
    pub fn bars_until(&self, date: NaiveDate, local: NaiveDateTime) -> &[Bar] {
        if local.date() < date {
            return &[];
        }
        if local.date() > date {
            return &self.bars;
        }
        let done = self
            .bars
            .iter()
            .take_while(|b| b.time + chrono::Duration::minutes(1) <= local.time())
            .count();
        &self.bars[..done]
    }

    /// Open, last, high, low and volume from `bars` (a prefix of the day).
    pub fn quote(&self, bars: &[Bar]) -> Quote {
        let Some(first) = bars.first() else {
            return Quote {
                open: None,
                last: self.prior_close,
                high: None,
                low: None,
                volume: 0,
            };
        };
        Quote {
            open: Some(first.o),
            last: bars.last().map_or(first.c, |b| b.c),
            high: bars.iter().map(|b| b.h).reduce(f64::max),
            low: bars.iter().map(|b| b.l).reduce(f64::min),
            volume: bars.iter().map(|b| b.v).sum(),
        }
    }

    /// The opening gap in percent, `(open - prior close) / prior close
    /// x 100`, once the stock has opened.
    pub fn gap_pct(&self, quote: &Quote) -> Option<f64> {
        quote
            .open
            .map(|open| (open - self.prior_close) / self.prior_close * 100.0)
    }

    /// The price step that applies at `price`.
    pub fn increment_at(&self, price: f64) -> f64 {
        self.increment_rules
            .iter()
            .rev()
            .find(|r| price >= r.lower_edge - 1e-12)
            .map_or(0.01, |r| r.increment)
    }
}

/// Rounds `price` to a whole number of `step`s, then to 1/1000 so that
/// binary noise never shows in the decimal strings.
fn on_step(price: f64, step: f64) -> f64 {
    ((price / step).round() * step * 1000.0).round() / 1000.0
}

/// How one example instrument behaves through the day.
struct Shape {
    symbol: &'static str,
    conid: u64,
    name: &'static str,
    prior_close: f64,
    /// The opening price as a multiple of the prior close.
    open_ratio: f64,
    /// Drift from open to the close, as a fraction of the open.
    drift: f64,
    /// The minute of the first trade after 10:00.
    first_minute: u32,
    rank: Option<u32>,
    base_volume: u64,
}

impl Scenario {
    /// The built-in example day, Monday 2 March 2026: three gap-ups with
    /// price-sensitive news (14D, LTR, and BHP, which also lists on the
    /// NYSE), a gap-up without news (WTC), a gap-up with only routine news
    /// (CBA), a small gap (PLS), and ZIP, which does not trade until 10:12
    /// and so shows a `C`-prefixed last until then. Prices are invented.
    pub fn example() -> Scenario {
        let shapes = [
            Shape {
                symbol: "14D",
                conid: 412_093_551,
                name: "1414 DEGREES LTD",
                prior_close: 0.05,
                open_ratio: 1.12,
                drift: 0.09,
                first_minute: 0,
                rank: Some(1),
                base_volume: 400_000,
            },
            Shape {
                symbol: "LTR",
                conid: 273_112_409,
                name: "LIONTOWN RESOURCES LTD",
                prior_close: 1.0,
                open_ratio: 1.07,
                drift: 0.05,
                first_minute: 0,
                rank: Some(2),
                base_volume: 250_000,
            },
            Shape {
                symbol: "WTC",
                conid: 194_882_037,
                name: "WISETECH GLOBAL LTD",
                prior_close: 70.0,
                open_ratio: 1.042,
                drift: -0.01,
                first_minute: 0,
                rank: Some(3),
                base_volume: 6_000,
            },
            Shape {
                symbol: "BHP",
                conid: 4_036_812,
                name: "BHP GROUP LTD",
                prior_close: 45.0,
                open_ratio: 1.0356,
                drift: 0.03,
                first_minute: 0,
                rank: Some(4),
                base_volume: 60_000,
            },
            Shape {
                symbol: "CBA",
                conid: 4_036_818,
                name: "COMMONWEALTH BANK OF AUSTRAL",
                prior_close: 160.0,
                open_ratio: 1.035,
                drift: -0.04,
                first_minute: 0,
                rank: Some(5),
                base_volume: 9_000,
            },
            Shape {
                symbol: "PLS",
                conid: 219_337_604,
                name: "PILBARA MINERALS LTD",
                prior_close: 2.5,
                open_ratio: 1.016,
                drift: 0.0,
                first_minute: 0,
                rank: Some(6),
                base_volume: 120_000,
            },
            Shape {
                symbol: "ZIP",
                conid: 302_710_044,
                name: "ZIP CO LTD",
                prior_close: 1.5,
                open_ratio: 1.0,
                drift: 0.01,
                first_minute: 12,
                rank: None,
                base_volume: 80_000,
            },
        ];
        let date = NaiveDate::from_ymd_opt(2026, 3, 2).expect("a real date");
        let instruments = shapes.iter().map(|s| example_instrument(s, date)).collect();
        let ann =
            |code: &str, time: (u32, u32), sensitive: bool, headline: &str, pages, id: &str| {
                Announcement {
                    code: code.to_string(),
                    time: hhmm_const(time.0, time.1),
                    price_sensitive: sensitive,
                    headline: headline.to_string(),
                    pages,
                    ids_id: id.to_string(),
                    file_size: format!("{:.1}KB", 40.0 + f64::from(pages) * 37.5),
                }
            };
        let announcements = vec![
            ann(
                "BHP",
                (7, 45),
                true,
                "Iron Ore Production Update & Guidance",
                6,
                "03061102",
            ),
            ann(
                "LTR",
                (8, 12),
                true,
                "Half Year Financial Report",
                28,
                "03061140",
            ),
            ann(
                "14D",
                (8, 31),
                true,
                "Binding Offtake Agreement & Capital Raising",
                12,
                "03061177",
            ),
            ann(
                "CBA",
                (8, 50),
                false,
                "Change of Director's Interest Notice",
                1,
                "03061203",
            ),
            ann(
                "PLS",
                (9, 5),
                true,
                "Quarterly Activities Report",
                19,
                "03061231",
            ),
            ann(
                "WTC",
                (12, 30),
                false,
                "Appendix 3Y <Director> \"Interest\"",
                2,
                "03061590",
            ),
        ];
        Scenario {
            date,
            instruments,
            announcements,
        }
    }
}

impl Scenario {
    /// The built-in example week: the example day (Monday 2 March 2026)
    /// and every trading day through Friday 13 March, with prices shaped so
    /// that a client using a 10-minute opening range (bars 10:00 to 10:09),
    /// entries placed at 10:12 as buy stops one price step above the range
    /// high, and a protective sell stop at the low of the day sees:
    ///
    /// - **14D**: range high 0.059, low 0.054; its buy stop at 0.060 fills in
    ///   the 10:17 bar at 0.060. It never trades at or below 0.054 after the
    ///   fill, nor at or below 0.060 from Thursday 5 March (the 3rd trading
    ///   day after entry, when half is sold) on. Its first daily close below
    ///   the 10-day SMA of daily closes is Wednesday 11 March (0.066 against
    ///   about 0.070 counting that day, 0.068 not counting it), so the rest
    ///   is sold on Thursday 12 March.
    /// - **LTR**: range high 1.09, low 1.055; its buy stop at 1.095 fills in
    ///   the 10:17 bar at 1.095. On Tuesday 3 March it trades down through
    ///   1.055 in the 11:30 bar (open 1.07), so a sell stop at 1.055 fills at
    ///   1.055.
    /// - **BHP**: range high 46.92, low 46.33; nothing trades above 46.91
    ///   from 10:10 to 10:59, so a buy stop at 46.93 is still unfilled at the
    ///   11:00 cutoff; left working, it fills in the 11:04 bar at 46.93.
    ///
    /// Monday's bars are the example day's except after the opening range:
    /// 14D and LTR are held one step above their range low from 10:12 on,
    /// and BHP one step under its range high from 10:10 to 10:59. The other
    /// instruments drift gently on later days; announcements are Monday's
    /// only. Prices are invented.
    pub fn example_week() -> Scenario {
        let mut week = Scenario::example();
        let ten_twelve = hhmm_const(10, 12);
        for inst in &mut week.instruments {
            let (high, low) = opening_range(&inst.bars, 10);
            let step = inst.increment_at(low);
            let cap = on_step(high - inst.increment_at(high), inst.increment_at(high));
            match inst.symbol.as_str() {
                "14D" | "LTR" => floor_bars(&mut inst.bars, ten_twelve, on_step(low + step, step)),
                "BHP" => cap_bars(&mut inst.bars, hhmm_const(10, 10), hhmm_const(10, 59), cap),
                _ => {}
            }
        }
        let days: Vec<NaiveDate> = [3, 4, 5, 6, 9, 10, 11, 12, 13]
            .iter()
            .map(|d| NaiveDate::from_ymd_opt(2026, 3, *d).expect("a real date"))
            .collect();
        for inst in &mut week.instruments {
            let mut close = inst.bars.last().map_or(inst.prior_close, |b| b.c);
            let base_volume = inst.bars.first().map_or(10_000, |b| b.v / 3);
            for (k, date) in days.iter().enumerate() {
                let waypoints = week_path(&inst.symbol, k, close);
                let bars = path_bars(&waypoints, &inst.increment_rules, base_volume);
                close = bars.last().map_or(close, |b| b.c);
                inst.later_days.push(DayBars { date: *date, bars });
            }
        }
        week
    }

    /// The example week with five candidates that all fill, for measuring
    /// `trade enter` and `trade manage` at the default maximum of five
    /// positions: 14D and four copies of it (14E to 14H, same bars, days
    /// and announcement), while LTR and BHP lose their announcements.
    pub fn busy_week() -> Scenario {
        let mut week = Scenario::example_week();
        week.announcements
            .retain(|a| a.code != "LTR" && a.code != "BHP");
        let template = week
            .instruments
            .iter()
            .find(|i| i.symbol == "14D")
            .expect("the example has 14D")
            .clone();
        let news = week
            .announcements
            .iter()
            .find(|a| a.code == "14D")
            .expect("14D has an announcement")
            .clone();
        let top_rank = week.instruments.iter().filter_map(|i| i.scanner_rank).max();
        for (k, symbol) in ["14E", "14F", "14G", "14H"].into_iter().enumerate() {
            let k = k as u64 + 1;
            let mut copy = template.clone();
            copy.symbol = symbol.to_owned();
            copy.conid = template.conid + 1_000_000 * k;
            copy.company_name = format!("{} COPY {k}", template.company_name);
            copy.other_listings.clear();
            copy.scanner_rank = top_rank.map(|r| r + k as u32);
            week.instruments.push(copy);
            let mut ann = news.clone();
            ann.code = symbol.to_owned();
            ann.ids_id = format!("{:08}", 9_000_000 + k);
            week.announcements.push(ann);
        }
        week
    }
}

/// The high and low of the first `minutes` bars.
pub fn opening_range(bars: &[Bar], minutes: usize) -> (f64, f64) {
    let range = &bars[..minutes.min(bars.len())];
    let high = range.iter().map(|b| b.h).fold(f64::MIN, f64::max);
    let low = range.iter().map(|b| b.l).fold(f64::MAX, f64::min);
    (high, low)
}

/// Raises every price of the bars from `from` on to at least `floor`.
fn floor_bars(bars: &mut [Bar], from: NaiveTime, floor: f64) {
    for bar in bars.iter_mut().filter(|b| b.time >= from) {
        bar.o = bar.o.max(floor);
        bar.h = bar.h.max(floor);
        bar.l = bar.l.max(floor);
        bar.c = bar.c.max(floor);
    }
}

/// Lowers every price of the bars from `from` to `to` to at most `cap`.
fn cap_bars(bars: &mut [Bar], from: NaiveTime, to: NaiveTime, cap: f64) {
    for bar in bars.iter_mut().filter(|b| b.time >= from && b.time <= to) {
        bar.o = bar.o.min(cap);
        bar.h = bar.h.min(cap);
        bar.l = bar.l.min(cap);
        bar.c = bar.c.min(cap);
    }
}

/// Where `symbol` goes on the `k`-th later day of the example week, from
/// the previous close: `(minute after 10:00, price)` points to draw
/// straight lines through.
fn week_path(symbol: &str, k: usize, close: f64) -> Vec<(u32, f64)> {
    // 14D rallies for a week, then drops under its 10-day SMA on day 6
    // (Wednesday 11 March) while staying above its entry price.
    const DAYS_14D: [[f64; 3]; 9] = [
        [0.062, 0.065, 0.068],
        [0.068, 0.072, 0.075],
        [0.075, 0.079, 0.080],
        [0.080, 0.084, 0.083],
        [0.083, 0.086, 0.084],
        [0.084, 0.083, 0.082],
        [0.081, 0.072, 0.066],
        [0.066, 0.068, 0.067],
        [0.067, 0.066, 0.066],
    ];
    match (symbol, k) {
        ("14D", _) => {
            let [open, middle, end] = DAYS_14D[k];
            vec![(0, open), (180, middle), (370, end)]
        }
        // LTR slides from the open and breaks down at 11:30 on Tuesday.
        ("LTR", 0) => vec![(0, 1.12), (89, 1.07), (90, 1.05), (370, 1.03)],
        _ => {
            let drift = ((k as f64) * 1.7).sin() * 0.008;
            vec![
                (0, close),
                (185, close * (1.0 + drift / 2.0)),
                (370, close * (1.0 + drift)),
            ]
        }
    }
}

/// A day of 1-minute bars, 10:00 to 16:10, along straight lines through
/// `waypoints`, on the price steps of `rules`.
fn path_bars(waypoints: &[(u32, f64)], rules: &[IncrementRule], base_volume: u64) -> Vec<Bar> {
    let step_at = |p: f64| {
        rules
            .iter()
            .rev()
            .find(|r| p >= r.lower_edge - 1e-12)
            .map_or(0.01, |r| r.increment)
    };
    let target = |minute: u32| {
        let next = waypoints
            .iter()
            .position(|w| w.0 >= minute)
            .unwrap_or(waypoints.len() - 1);
        if next == 0 {
            return waypoints[0].1;
        }
        let (m0, p0) = waypoints[next - 1];
        let (m1, p1) = waypoints[next];
        if m1 <= minute {
            return p1;
        }
        p0 + (p1 - p0) * f64::from(minute - m0) / f64::from(m1 - m0)
    };
    let mut bars = Vec::new();
    let mut previous_close = on_step(waypoints[0].1, step_at(waypoints[0].1));
    for minute in 0..=370u32 {
        let wanted = target(minute);
        let step = step_at(wanted);
        let o = previous_close;
        let c = on_step(wanted, step);
        let weight = match minute {
            0..=4 => 6,
            366.. => 8,
            _ => 1 + minute % 4,
        };
        bars.push(Bar {
            time: FIRST_BAR + chrono::Duration::minutes(i64::from(minute)),
            o,
            h: on_step(o.max(c) + step * f64::from(1 + minute % 3), step),
            l: on_step(o.min(c) - step * f64::from(1 + minute % 2), step),
            c,
            v: base_volume * u64::from(weight) / 2,
        });
        previous_close = c;
    }
    bars
}

/// Builds one example instrument: a deterministic wiggle around a straight
/// drift, so the opening range forms in the first minutes and later bars
/// break out of it (or fall through it) as `drift` says.
fn example_instrument(shape: &Shape, date: NaiveDate) -> Instrument {
    let rules = asx_increment_rules();
    let step_at = |p: f64| {
        rules
            .iter()
            .rev()
            .find(|r| p >= r.lower_edge)
            .map_or(0.01, |r| r.increment)
    };
    let open = on_step(
        shape.prior_close * shape.open_ratio,
        step_at(shape.prior_close),
    );
    let minutes = 16 * 60 + 11 - 10 * 60;
    let mut bars = Vec::new();
    let mut previous_close = open;
    for minute in shape.first_minute..minutes {
        let progress = f64::from(minute) / f64::from(minutes - 1);
        let wiggle = (f64::from(minute) * 0.9).sin() * 0.006;
        let target = open * (1.0 + shape.drift * progress + wiggle);
        let step = step_at(target);
        let o = if minute == shape.first_minute {
            open
        } else {
            previous_close
        };
        let c = on_step(target, step);
        let h = on_step(o.max(c) + step * f64::from(1 + minute % 3), step);
        let l = on_step(o.min(c) - step * f64::from(1 + minute % 2), step);
        // Volume is heaviest at the open and in the closing auction.
        let weight = match minute {
            0..=4 => 6,
            370.. => 8,
            _ => 1 + minute % 4,
        };
        bars.push(Bar {
            time: FIRST_BAR + chrono::Duration::minutes(i64::from(minute)),
            o,
            h,
            l,
            c,
            v: shape.base_volume * u64::from(weight) / 2,
        });
        previous_close = c;
    }

    let mut daily_bars = Vec::new();
    let mut day = date;
    while daily_bars.len() < 15 {
        day = day.pred_opt().expect("dates before 2026 exist");
        if matches!(day.weekday(), Weekday::Sat | Weekday::Sun) {
            continue;
        }
        let back = daily_bars.len() as f64;
        let close = if back == 0.0 {
            shape.prior_close
        } else {
            let swing = (back * 1.3).sin() * 0.02 - back * 0.003;
            on_step(
                shape.prior_close * (1.0 + swing),
                step_at(shape.prior_close),
            )
        };
        let step = step_at(close);
        let o = on_step(close * (1.0 - 0.005 * (back * 0.7).cos()), step);
        daily_bars.push(DailyBar {
            date: day,
            o,
            h: on_step(o.max(close) + 3.0 * step, step),
            l: on_step(o.min(close) - 2.0 * step, step),
            c: close,
            v: shape.base_volume * 300 + (back as u64) * 1_000,
        });
    }
    daily_bars.reverse();

    let other_listings = if shape.symbol == "BHP" {
        vec![Listing {
            exchange: "NYSE".to_string(),
            conid: 4_036_820,
            company_name: "BHP GROUP LTD-SPON ADR".to_string(),
        }]
    } else {
        Vec::new()
    };
    Instrument {
        symbol: shape.symbol.to_string(),
        conid: shape.conid,
        company_name: shape.name.to_string(),
        prior_close: shape.prior_close,
        other_listings,
        scanner_rank: shape.rank,
        increment_rules: rules.clone(),
        bars,
        daily_bars,
        later_days: Vec::new(),
    }
}

/// Writes `scenario` as JSON with one bar per line, so the file stays
/// readable and diffs stay small.
pub fn to_pretty_json(scenario: &Scenario) -> String {
    let value = serde_json::to_value(scenario).expect("a scenario always serialises");
    let mut out = String::new();
    write_value(&value, 0, &mut out);
    out.push('\n');
    out
}

fn write_value(value: &serde_json::Value, indent: usize, out: &mut String) {
    use serde_json::Value;
    let flat = |v: &Value| !matches!(v, Value::Array(_) | Value::Object(_));
    let pad = "  ".repeat(indent + 1);
    match value {
        Value::Object(map) if map.values().all(flat) => out.push_str(&value.to_string()),
        Value::Object(map) => {
            out.push_str("{\n");
            for (i, (key, item)) in map.iter().enumerate() {
                out.push_str(&format!("{pad}{}: ", Value::String(key.clone())));
                write_value(item, indent + 1, out);
                out.push_str(if i + 1 < map.len() { ",\n" } else { "\n" });
            }
            out.push_str(&format!("{}}}", "  ".repeat(indent)));
        }
        Value::Array(items) if !items.is_empty() => {
            out.push_str("[\n");
            for (i, item) in items.iter().enumerate() {
                out.push_str(&pad);
                write_value(item, indent + 1, out);
                out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
            }
            out.push_str(&format!("{}]", "  ".repeat(indent)));
        }
        _ => out.push_str(&value.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(h: u32, m: u32, s: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 3, 2)
            .unwrap()
            .and_hms_opt(h, m, s)
            .unwrap()
    }

    #[test]
    fn example_is_valid_and_gaps_as_described() {
        let day = Scenario::example();
        day.validate().unwrap();
        let gap = |sym: &str| {
            let inst = day.by_symbol(sym).unwrap();
            inst.gap_pct(&inst.quote(&inst.bars)).unwrap()
        };
        for sym in ["14D", "LTR", "BHP", "WTC", "CBA"] {
            assert!(gap(sym) > 3.0, "{sym} gaps {}", gap(sym));
        }
        assert!(gap("PLS") < 3.0);
        let zip = day.by_symbol("ZIP").unwrap();
        assert!(
            zip.quote(zip.bars_until(day.date, at(10, 12, 30)))
                .open
                .is_none()
        );
        assert!(
            zip.quote(zip.bars_until(day.date, at(10, 13, 0)))
                .has_traded()
        );
    }

    #[test]
    fn a_bar_is_public_when_its_minute_ends() {
        let day = Scenario::example();
        let bhp = day.by_symbol("BHP").unwrap();
        assert!(bhp.bars_until(day.date, at(9, 59, 0)).is_empty());
        assert!(bhp.bars_until(day.date, at(10, 0, 59)).is_empty());
        assert_eq!(bhp.bars_until(day.date, at(10, 1, 0)).len(), 1);
        assert_eq!(bhp.bars_until(day.date, at(10, 10, 30)).len(), 10);
        let before = bhp.quote(&[]);
        assert_eq!((before.last, before.open), (45.0, None));
    }

    #[test]
    fn march_is_daylight_time_in_sydney() {
        let day = Scenario::example();
        let open = day.instant(FIRST_BAR);
        assert_eq!(open.to_rfc3339(), "2026-03-01T23:00:00+00:00");
        assert_eq!(Scenario::local(open), at(10, 0, 0));
    }

    #[test]
    fn released_is_newest_first_and_up_to_now() {
        let day = Scenario::example();
        let now = day.instant(hhmm_const(8, 31));
        let codes: Vec<&str> = day.released(now).iter().map(|a| a.code.as_str()).collect();
        assert_eq!(codes, ["14D", "LTR", "BHP"]);
        assert!(day.released(day.instant(hhmm_const(7, 44))).is_empty());
    }

    #[test]
    fn bad_scenarios_are_refused_with_the_reason() {
        let mut json: serde_json::Value = serde_json::to_value(Scenario::example()).unwrap();
        json["instruments"][0]["bars"][0]["h"] = serde_json::json!(0.001);
        let err = format!("{:#}", Scenario::from_json(&json.to_string()).unwrap_err());
        assert!(err.contains("14D") && err.contains("bar 10:00"), "{err}");

        let mut json: serde_json::Value = serde_json::to_value(Scenario::example()).unwrap();
        json["instruments"][1]["conid"] = json["instruments"][0]["conid"].clone();
        let err = format!("{:#}", Scenario::from_json(&json.to_string()).unwrap_err());
        assert!(err.contains("used twice"), "{err}");

        let mut json: serde_json::Value = serde_json::to_value(Scenario::example()).unwrap();
        json["announcements"][0]["time"] = serde_json::json!("7.45");
        let err = format!("{:#}", Scenario::from_json(&json.to_string()).unwrap_err());
        assert!(err.contains("HH:MM"), "{err}");

        let mut json: serde_json::Value = serde_json::to_value(Scenario::example()).unwrap();
        json["date"] = serde_json::json!("2026-03-01");
        let err = format!("{:#}", Scenario::from_json(&json.to_string()).unwrap_err());
        assert!(err.contains("weekend"), "{err}");
    }

    #[test]
    fn increments_follow_the_asx_steps() {
        let day = Scenario::example();
        let inst = day.by_symbol("14D").unwrap();
        assert_eq!(inst.increment_at(0.05), 0.001);
        assert_eq!(inst.increment_at(0.1), 0.005);
        assert_eq!(inst.increment_at(1.99), 0.005);
        assert_eq!(inst.increment_at(2.0), 0.01);
    }

    /// Walks a day list from `(day, bar)` on: every later bar in order.
    fn bars_from<'a>(
        week: &'a Scenario,
        inst: &'a Instrument,
        from: (NaiveDate, NaiveTime),
    ) -> Vec<(NaiveDate, &'a Bar)> {
        week.trading_days()
            .into_iter()
            .flat_map(|d| week.bars_on(inst, d).iter().map(move |b| (d, b)))
            .filter(|(d, b)| (*d, b.time) >= from)
            .collect()
    }

    /// The first bar from 10:12 Monday on whose high reaches one step over
    /// the range high, with the buy stop's fill price there.
    fn entry(week: &Scenario, inst: &Instrument) -> (NaiveTime, f64, f64, f64) {
        let (high, low) = opening_range(&inst.bars, 10);
        let stop = on_step(high + inst.increment_at(high), inst.increment_at(high));
        let bar = inst
            .bars
            .iter()
            .find(|b| b.time >= hhmm_const(10, 12) && b.h >= stop)
            .unwrap();
        let _ = week;
        (bar.time, bar.o.max(stop), high, low)
    }

    #[test]
    fn busy_week_has_five_copies_of_14d_with_news_and_no_other_news() {
        let busy = Scenario::busy_week();
        busy.validate().unwrap();
        let with_news: HashSet<&str> = busy
            .announcements
            .iter()
            .filter(|a| a.price_sensitive)
            .map(|a| a.code.as_str())
            .collect();
        for code in ["14D", "14E", "14F", "14G", "14H"] {
            assert!(with_news.contains(code), "{code} has no news");
        }
        // PLS keeps its news; its gap stays below a scan's threshold.
        assert!(!with_news.contains("LTR") && !with_news.contains("BHP"));
        let d14 = busy.instruments.iter().find(|i| i.symbol == "14D").unwrap();
        for symbol in ["14E", "14F", "14G", "14H"] {
            let copy = busy
                .instruments
                .iter()
                .find(|i| i.symbol == symbol)
                .unwrap();
            assert_eq!(copy.bars, d14.bars);
            assert_eq!(copy.later_days, d14.later_days);
            assert_ne!(copy.conid, d14.conid);
        }
    }

    #[test]
    fn example_week_has_the_documented_entries_exits_and_cross() {
        let week = Scenario::example_week();
        week.validate().unwrap();
        let from_json = Scenario::from_json(&serde_json::to_string(&week).unwrap()).unwrap();
        assert_eq!(from_json, week);
        let date = |d| NaiveDate::from_ymd_opt(2026, 3, d).unwrap();
        let days = week.trading_days();
        assert_eq!(days.first(), Some(&date(2)));
        assert_eq!(days.last(), Some(&date(13)));
        assert_eq!(days.len(), 10);
        let monday = Scenario::example();
        for sym in ["WTC", "CBA", "PLS", "ZIP"] {
            assert_eq!(
                week.by_symbol(sym).unwrap().bars,
                monday.by_symbol(sym).unwrap().bars
            );
        }

        // 14D: fills at 10:17, holds above its stop, then above its entry
        // from the half exit on, and closes under its SMA on the 11th.
        let d14 = week.by_symbol("14D").unwrap();
        let (at, fill, high, low) = entry(&week, d14);
        assert_eq!(
            (at, fill, high, low),
            (hhmm_const(10, 17), 0.06, 0.059, 0.054)
        );
        let sell_day = date(12);
        let after: Vec<_> = bars_from(&week, d14, (date(2), hhmm_const(10, 18)));
        assert!(
            after
                .iter()
                .filter(|(d, _)| *d <= sell_day)
                .all(|(_, b)| b.l > low)
        );
        let half_day = days[days.iter().position(|d| *d == date(2)).unwrap() + 3];
        assert_eq!(half_day, date(5));
        assert!(!week.bars_on(d14, half_day).is_empty());
        assert!(
            after
                .iter()
                .filter(|(d, _)| *d >= half_day && *d <= sell_day)
                .all(|(_, b)| b.l > fill)
        );
        let end_of = |d: NaiveDate| d.and_time(DAY_END);
        let closes: Vec<(NaiveDate, f64)> = week
            .daily_history(d14, end_of(date(13)))
            .iter()
            .map(|b| (b.date, b.c))
            .collect();
        assert!(closes.iter().filter(|(d, _)| *d < date(2)).count() >= 10);
        let mean = |xs: &[(NaiveDate, f64)]| xs.iter().map(|x| x.1).sum::<f64>() / xs.len() as f64;
        let crosses: Vec<NaiveDate> = (10..closes.len())
            .filter(|&i| closes[i].0 > date(2))
            .filter(|&i| {
                let with_today = mean(&closes[i - 9..=i]);
                let before = mean(&closes[i - 10..i]);
                closes[i].1 < with_today || closes[i].1 < before
            })
            .map(|i| closes[i].0)
            .collect();
        assert_eq!(crosses.first(), Some(&date(11)), "{closes:?}");
        let i = closes.iter().position(|c| c.0 == date(11)).unwrap();
        assert!(closes[i].1 < mean(&closes[i - 9..=i]) && closes[i].1 < mean(&closes[i - 10..i]));
        assert_eq!(
            days[days.iter().position(|d| *d == date(11)).unwrap() + 1],
            sell_day
        );

        // LTR: fills at 10:17, then its stop at the range low fills on
        // Tuesday in the 11:30 bar at the stop price.
        let ltr = week.by_symbol("LTR").unwrap();
        let (at, fill, high, low) = entry(&week, ltr);
        assert_eq!(
            (at, fill, high, low),
            (hhmm_const(10, 17), 1.095, 1.09, 1.055)
        );
        let (day, bar) = bars_from(&week, ltr, (date(2), hhmm_const(10, 18)))
            .into_iter()
            .find(|(_, b)| b.l <= low)
            .unwrap();
        assert_eq!((day, bar.time), (date(3), hhmm_const(11, 30)));
        assert_eq!(bar.o.min(low), 1.055);

        // BHP: nothing over the range high from 10:10 to 10:59.
        let bhp = week.by_symbol("BHP").unwrap();
        let (high, low) = opening_range(&bhp.bars, 10);
        assert_eq!((high, low), (46.92, 46.33));
        assert!(
            bhp.bars
                .iter()
                .filter(|b| b.time >= hhmm_const(10, 10) && b.time < hhmm_const(11, 0))
                .all(|b| b.h < high)
        );
        let late = bhp.bars.iter().find(|b| b.h >= 46.93).unwrap();
        assert_eq!((late.time, late.o.max(46.93)), (hhmm_const(11, 4), 46.93));
    }

    #[test]
    fn the_clock_picks_the_day_and_its_prior_close() {
        let week = Scenario::example_week();
        let d14 = week.by_symbol("14D").unwrap();
        let tuesday = NaiveDate::from_ymd_opt(2026, 3, 3).unwrap();
        let saturday = NaiveDate::from_ymd_opt(2026, 3, 7).unwrap();
        let monday_close = d14.bars.last().unwrap().c;
        let (quote, prior) = week.quote_at(d14, tuesday.and_hms_opt(9, 30, 0).unwrap());
        assert_eq!(
            (quote.open, quote.last, prior),
            (None, monday_close, monday_close)
        );
        let (quote, _) = week.quote_at(d14, tuesday.and_hms_opt(10, 5, 0).unwrap());
        assert_eq!(quote.open, Some(0.062));
        assert_eq!(
            week.session_day(saturday.and_hms_opt(12, 0, 0).unwrap()),
            saturday.pred_opt().unwrap()
        );
        let before_close = week.daily_history(d14, tuesday.and_hms_opt(16, 11, 0).unwrap());
        let after_close = week.daily_history(d14, tuesday.and_time(DAY_END));
        assert_eq!(before_close.len() + 1, after_close.len());
        assert_eq!(after_close.last().unwrap().date, tuesday);
        assert!(
            week.released(Scenario::instant_on(tuesday, hhmm_const(9, 0)))
                .is_empty()
        );
    }

    /// The checked-in example file is the built-in example; set
    /// `SKIM_SIM_WRITE_EXAMPLE=1` to rewrite it after changing `example()`.
    #[test]
    fn example_file_matches_the_built_in_day() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/example-day.json");
        let text = to_pretty_json(&Scenario::example());
        if std::env::var_os("SKIM_SIM_WRITE_EXAMPLE").is_some() {
            std::fs::write(&path, &text).unwrap();
        }
        let on_disk = Scenario::from_path(&path).unwrap();
        assert_eq!(on_disk, Scenario::example());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    }
}
