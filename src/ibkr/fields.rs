//! Reading IBKR's market data snapshot rows into [`Quote`]s.
//!
//! A snapshot row is a JSON object keyed by numeric field codes whose values
//! are display strings: `"31":"C44.10"`, `"87":"3.1M"`, `"88":"1,300"`,
//! `"83":"2.52%"` (reference section 5.7). This module owns the codes and
//! the rules for turning those strings into numbers; it never talks to IBKR.
//! A key that is absent means "not yet available" and becomes `None`, never
//! zero, because a zero open or prior close would fake a gap. A value that is
//! present but unreadable is an error: a scan must be right or say why not.

use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use super::client::excerpt;

/// Last price; a leading `C` marks the prior close, `H` a halted stock.
pub const LAST: &str = "31";
/// Today's high.
pub const HIGH: &str = "70";
/// Today's low.
pub const LOW: &str = "71";
/// Change since the prior close, in percent.
pub const CHANGE_PCT: &str = "83";
/// Best bid.
pub const BID: &str = "84";
/// Best ask.
pub const ASK: &str = "86";
/// Volume as displayed: `"3.1M"`, `"350K"`.
pub const VOLUME: &str = "87";
/// Symbol.
pub const SYMBOL: &str = "55";
/// Market data availability, e.g. `RpB` (see [`Feed`]).
pub const AVAILABILITY: &str = "6509";
/// Today's open.
pub const OPEN: &str = "7295";
/// Prior session's close.
pub const PRIOR_CLOSE: &str = "7741";
/// Volume as a plain number; preferred over [`VOLUME`] when both are there.
pub const VOLUME_PRECISE: &str = "7762";

/// Every field a [`Quote`] reads. Asking for all of them on the first call
/// costs nothing and spares a second pre-flight (IBKR subscribes only the
/// fields named in the first call for a conid).
pub const QUOTE_FIELDS: &[&str] = &[
    LAST,
    BID,
    ASK,
    HIGH,
    LOW,
    OPEN,
    PRIOR_CLOSE,
    VOLUME,
    VOLUME_PRECISE,
    CHANGE_PCT,
    SYMBOL,
    AVAILABILITY,
];

/// What field 31's prefix says about the last price.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LastKind {
    /// A trade today.
    Trade,
    /// `C` prefix: no trade yet today; the number is the previous close.
    PriorClose,
    /// `H` prefix: the stock is halted.
    Halted,
}

/// Field 31, split into its number and what its prefix said.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Last {
    pub price: f64,
    pub kind: LastKind,
}

impl Last {
    /// Whether the price comes from a trade today: only then is it today's
    /// market, and not yesterday's close or a frozen halt price.
    pub fn is_trade(&self) -> bool {
        self.kind == LastKind::Trade
    }
}

/// The data feed named by the first character of field 6509.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Feed {
    /// `R`: real time.
    RealTime,
    /// `D`: delayed.
    Delayed,
    /// `Z`: frozen.
    Frozen,
    /// `Y`: frozen and delayed.
    FrozenDelayed,
    /// `N`: the account has no market data subscription for this contract.
    NotSubscribed,
    /// `O`: the market data API acknowledgement has not been signed.
    NotAcknowledged,
    /// Any other first character.
    Unknown,
}

impl Feed {
    /// Reads the first character of a 6509 value.
    pub fn from_code(code: &str) -> Feed {
        match code.chars().next() {
            Some('R') => Feed::RealTime,
            Some('D') => Feed::Delayed,
            Some('Z') => Feed::Frozen,
            Some('Y') => Feed::FrozenDelayed,
            Some('N') => Feed::NotSubscribed,
            Some('O') => Feed::NotAcknowledged,
            _ => Feed::Unknown,
        }
    }

    /// Whether this feed will never deliver prices, however long one polls.
    pub fn is_unavailable(self) -> bool {
        matches!(self, Feed::NotSubscribed | Feed::NotAcknowledged)
    }
}

/// One conid's snapshot. Every market field is `None` until IBKR has sent
/// it; callers decide what a missing field means for them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Quote {
    pub conid: i64,
    pub symbol: Option<String>,
    pub last: Option<Last>,
    pub bid: Option<f64>,
    pub ask: Option<f64>,
    pub high: Option<f64>,
    pub low: Option<f64>,
    pub open: Option<f64>,
    pub prior_close: Option<f64>,
    /// Shares traded today: field 7762 when present, else 87 expanded.
    pub volume: Option<u64>,
    pub change_pct: Option<f64>,
    /// Field 6509 as sent, control characters escaped.
    pub availability: Option<String>,
    /// When IBKR last updated the row (`_updated`, epoch milliseconds).
    pub updated: Option<DateTime<Utc>>,
}

impl Quote {
    /// Reads one snapshot row. Fails when the row has no usable `conid` or
    /// when a present field does not hold what its code promises; the error
    /// names the conid, the field and the value.
    pub fn from_row(row: &Map<String, Value>) -> Result<Quote> {
        let conid = row_conid(row)?;
        let field = |code: &str, what: &str| -> Result<Option<f64>> {
            price_field(row, code)
                .with_context(|| format!("failed to read field {code} ({what}) of conid {conid}"))
        };
        let last = row
            .get(LAST)
            .map(parse_last)
            .transpose()
            .with_context(|| format!("failed to read field {LAST} (last) of conid {conid}"))?
            .flatten();
        let volume = match volume_field(row, VOLUME_PRECISE)
            .with_context(|| format!("failed to read field {VOLUME_PRECISE} of conid {conid}"))?
        {
            Some(volume) => Some(volume),
            None => volume_field(row, VOLUME)
                .with_context(|| format!("failed to read field {VOLUME} of conid {conid}"))?,
        };
        let updated = match row.get("_updated") {
            None | Some(Value::Null) => None,
            Some(value) => Some(parse_millis(value).with_context(|| {
                format!("failed to read the update time (_updated) of conid {conid}")
            })?),
        };
        Ok(Quote {
            conid,
            symbol: text_field(row, SYMBOL),
            last,
            bid: field(BID, "bid")?,
            ask: field(ASK, "ask")?,
            high: field(HIGH, "high")?,
            low: field(LOW, "low")?,
            open: field(OPEN, "open")?,
            prior_close: field(PRIOR_CLOSE, "prior close")?,
            volume,
            change_pct: field(CHANGE_PCT, "change %")?,
            availability: text_field(row, AVAILABILITY),
            updated,
        })
    }

    /// The feed named by field 6509, once IBKR has sent it.
    pub fn feed(&self) -> Option<Feed> {
        self.availability.as_deref().map(Feed::from_code)
    }
}

/// Whether `row` holds a value for every code in `required`. Field 87 and
/// 7762 stand in for each other: either one gives the volume.
pub fn has_fields(row: &Map<String, Value>, required: &[&str]) -> bool {
    let present = |code: &str| row.get(code).is_some_and(|v| !is_blank(v));
    required.iter().all(|code| match *code {
        VOLUME | VOLUME_PRECISE => present(VOLUME) || present(VOLUME_PRECISE),
        code => present(code),
    })
}

/// The `conid` of a snapshot row, which IBKR sends as a number and some
/// answers as a string.
pub fn row_conid(row: &Map<String, Value>) -> Result<i64> {
    let value = row
        .get("conid")
        .ok_or_else(|| anyhow!("a snapshot row has no conid"))?;
    parse_conid(value)
}

/// A contract id from a JSON number or a string of digits; anything else
/// is an error naming the value.
pub fn parse_conid(value: &Value) -> Result<i64> {
    let parsed = match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    match parsed {
        Some(conid) if conid > 0 => Ok(conid),
        _ => bail!(
            "{} is not a contract id (a positive whole number)",
            show(value)
        ),
    }
}

/// Reads field 31: an optional `C` or `H` prefix, then a price. A blank
/// value is `None`.
pub fn parse_last(value: &Value) -> Result<Option<Last>> {
    let Value::String(text) = value else {
        return Ok(parse_price(value)?.map(|price| Last {
            price,
            kind: LastKind::Trade,
        }));
    };
    let text = text.trim();
    let (kind, rest) = match text.as_bytes().first() {
        Some(b'C' | b'c') => (LastKind::PriorClose, &text[1..]),
        Some(b'H' | b'h') => (LastKind::Halted, &text[1..]),
        _ => (LastKind::Trade, text),
    };
    if rest.trim().is_empty() && kind != LastKind::Trade {
        bail!("{} has a prefix but no price", show(value));
    }
    let price = parse_price(&Value::String(rest.to_owned()))
        .with_context(|| format!("{} is not a last price", show(value)))?;
    Ok(price.map(|price| Last { price, kind }))
}

/// Reads a price or percentage: a JSON number, or a string with optional
/// thousands commas and an optional trailing `%`. A blank value is `None`;
/// anything else that is not a finite number is an error.
pub fn parse_price(value: &Value) -> Result<Option<f64>> {
    match value {
        Value::Null => Ok(None),
        Value::Number(n) => n
            .as_f64()
            .filter(|x| x.is_finite())
            .map(Some)
            .ok_or_else(|| anyhow!("{n} is not a finite number")),
        Value::String(text) => {
            let cleaned: String = text.trim().trim_end_matches('%').replace(',', "");
            let cleaned = cleaned.trim();
            if cleaned.is_empty() {
                return Ok(None);
            }
            finite(cleaned)
                .map(Some)
                .ok_or_else(|| anyhow!("{} is not a number", show(value)))
        }
        other => bail!("{} is not a number", show(other)),
    }
}

/// Reads a volume: digits with optional thousands commas and an optional
/// `K`, `M` or `B` suffix (`"3.1M"` is 3,100,000), or a JSON number.
/// Negative volumes are errors; a blank value is `None`.
pub fn parse_volume(value: &Value) -> Result<Option<u64>> {
    let amount = match value {
        Value::Null => return Ok(None),
        Value::Number(n) => n.as_f64().filter(|x| x.is_finite()),
        Value::String(text) => {
            let cleaned = text.trim().replace(',', "");
            if cleaned.is_empty() {
                return Ok(None);
            }
            let (digits, scale) = match cleaned.chars().last() {
                Some('K' | 'k') => (&cleaned[..cleaned.len() - 1], 1e3),
                Some('M' | 'm') => (&cleaned[..cleaned.len() - 1], 1e6),
                Some('B' | 'b') => (&cleaned[..cleaned.len() - 1], 1e9),
                _ => (&cleaned[..], 1.0),
            };
            finite(digits.trim()).map(|x| x * scale)
        }
        _ => None,
    };
    match amount {
        // Rounding, because "3.1M" times a million is 3099999.9999... in f64.
        Some(x) if x >= 0.0 && x < u64::MAX as f64 => Ok(Some(x.round() as u64)),
        _ => bail!("{} is not a volume", show(value)),
    }
}

fn parse_millis(value: &Value) -> Result<DateTime<Utc>> {
    let millis = match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    millis
        .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
        .ok_or_else(|| anyhow!("{} is not a time in epoch milliseconds", show(value)))
}

fn price_field(row: &Map<String, Value>, code: &str) -> Result<Option<f64>> {
    row.get(code).map_or(Ok(None), parse_price)
}

fn volume_field(row: &Map<String, Value>, code: &str) -> Result<Option<u64>> {
    row.get(code).map_or(Ok(None), parse_volume)
}

fn text_field(row: &Map<String, Value>, code: &str) -> Option<String> {
    match row.get(code)? {
        Value::String(s) if !s.trim().is_empty() => Some(excerpt(s)),
        _ => None,
    }
}

fn is_blank(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

/// Parses plain decimal notation only: Rust's float parser also takes
/// "inf" and "NaN", which are not prices.
fn finite(text: &str) -> Option<f64> {
    let plain = text
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'));
    if !plain {
        return None;
    }
    text.parse::<f64>().ok().filter(|x| x.is_finite())
}

/// A JSON value for an error message: short, quoted, escaped.
fn show(value: &Value) -> String {
    match value {
        Value::String(s) => format!("\"{}\"", excerpt(s)),
        other => excerpt(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(value: Value) -> Map<String, Value> {
        value.as_object().expect("test rows are objects").clone()
    }

    #[test]
    fn a_full_row_reads_every_field_by_its_code() {
        let quote = Quote::from_row(&row(json!({
            "conid": 6793599, "conidEx": "6793599", "_updated": 1731370000000i64,
            "server_id": "q0", "6119": "q0", "6509": "RpB",
            "31": "45.21", "84": "45.20", "86": "45.22", "70": "45.60", "71": "44.90",
            "7295": "45.00", "7741": "44.10", "83": "2.52", "87": "3.1M",
            "7762": "3100456", "55": "BHP"
        })))
        .unwrap();
        assert_eq!(quote.conid, 6793599);
        assert_eq!(quote.symbol.as_deref(), Some("BHP"));
        assert_eq!(
            quote.last,
            Some(Last {
                price: 45.21,
                kind: LastKind::Trade
            })
        );
        assert_eq!(quote.bid, Some(45.20));
        assert_eq!(quote.ask, Some(45.22));
        assert_eq!(quote.high, Some(45.60));
        assert_eq!(quote.low, Some(44.90));
        assert_eq!(quote.open, Some(45.00));
        assert_eq!(quote.prior_close, Some(44.10));
        assert_eq!(quote.change_pct, Some(2.52));
        assert_eq!(quote.volume, Some(3_100_456), "7762 wins over 87");
        assert_eq!(quote.feed(), Some(Feed::RealTime));
        assert_eq!(quote.updated.unwrap().timestamp_millis(), 1731370000000);
    }

    #[test]
    fn the_pre_flight_row_has_nothing_yet_and_nothing_is_zero() {
        let pre = row(json!({"conid": 6793599, "conidEx": "6793599"}));
        let quote = Quote::from_row(&pre).unwrap();
        assert_eq!(quote.conid, 6793599);
        assert_eq!(quote.last, None);
        assert_eq!(quote.open, None);
        assert_eq!(quote.prior_close, None);
        assert_eq!(quote.volume, None);
        assert_eq!(quote.availability, None);
        assert_eq!(quote.updated, None);
        assert!(!has_fields(&pre, &[LAST]));
        assert!(has_fields(&pre, &[]));
    }

    #[test]
    fn last_prefixes_mark_prior_close_and_halts() {
        let c = parse_last(&json!("C44.10")).unwrap().unwrap();
        assert_eq!(c.price, 44.10);
        assert_eq!(c.kind, LastKind::PriorClose);
        assert!(!c.is_trade());
        let h = parse_last(&json!("H12.5")).unwrap().unwrap();
        assert_eq!((h.price, h.kind), (12.5, LastKind::Halted));
        let t = parse_last(&json!(" 1,045.5 ")).unwrap().unwrap();
        assert_eq!((t.price, t.kind), (1045.5, LastKind::Trade));
        assert!(t.is_trade());
        let n = parse_last(&json!(0.125)).unwrap().unwrap();
        assert_eq!((n.price, n.kind), (0.125, LastKind::Trade));
        assert_eq!(parse_last(&json!("")).unwrap(), None);
        assert!(parse_last(&json!("C")).is_err());
        assert!(parse_last(&json!("X1.0")).is_err());
    }

    #[test]
    fn prices_take_commas_percent_signs_and_numbers() {
        assert_eq!(parse_price(&json!("1,300")).unwrap(), Some(1300.0));
        assert_eq!(parse_price(&json!("+5.25%")).unwrap(), Some(5.25));
        assert_eq!(parse_price(&json!("-1.5 %")).unwrap(), Some(-1.5));
        assert_eq!(parse_price(&json!(44.1)).unwrap(), Some(44.1));
        assert_eq!(parse_price(&json!("  ")).unwrap(), None);
        assert_eq!(parse_price(&Value::Null).unwrap(), None);
    }

    #[test]
    fn garbage_prices_are_errors_naming_the_value() {
        for bad in [
            json!("abc"),
            json!("inf"),
            json!("NaN"),
            json!(true),
            json!([1]),
        ] {
            let err = parse_price(&bad).unwrap_err();
            assert!(err.to_string().contains("is not a number"), "{err}");
        }
        let err = parse_price(&json!("4x\u{1b}")).unwrap_err();
        assert!(err.to_string().contains("\\u{1b}"), "escaped: {err}");
    }

    #[test]
    fn volumes_expand_suffixes_and_drop_commas() {
        let cases = [
            (json!("3.1M"), 3_100_000),
            (json!("350K"), 350_000),
            (json!("1.2B"), 1_200_000_000),
            (json!("0.5k"), 500),
            (json!("1,300"), 1_300),
            (json!("3100456"), 3_100_456),
            (json!(42), 42),
            (json!(" 12,345,678 "), 12_345_678),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_volume(&text).unwrap(), Some(expected), "{text}");
        }
        assert_eq!(parse_volume(&json!("")).unwrap(), None);
        for bad in [
            json!("-5"),
            json!("M"),
            json!("3.1X"),
            json!("1e400"),
            json!({}),
        ] {
            assert!(parse_volume(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn volume_falls_back_to_the_displayed_field() {
        let quote = Quote::from_row(&row(json!({"conid": "8644", "87": "3.1M"}))).unwrap();
        assert_eq!(quote.conid, 8644);
        assert_eq!(quote.volume, Some(3_100_000));
        let either = row(json!({"conid": 1, "87": "10K"}));
        assert!(has_fields(&either, &[VOLUME_PRECISE]));
        assert!(has_fields(&either, &[VOLUME]));
        assert!(!has_fields(&either, &[VOLUME, OPEN]));
    }

    #[test]
    fn a_bad_field_names_the_conid_and_the_code() {
        let err = Quote::from_row(&row(json!({"conid": 77, "7295": "n/a"}))).unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("7295") && text.contains("conid 77"), "{text}");
        assert!(text.contains("\"n/a\""), "{text}");
        let err = Quote::from_row(&row(json!({"87": "1K"}))).unwrap_err();
        assert!(err.to_string().contains("no conid"), "{err}");
        assert!(parse_conid(&json!("-3")).is_err());
        assert!(parse_conid(&json!(1.5)).is_err());
    }

    #[test]
    fn availability_names_the_feed() {
        assert_eq!(Feed::from_code("RpB"), Feed::RealTime);
        assert_eq!(Feed::from_code("DpB"), Feed::Delayed);
        assert_eq!(Feed::from_code("Z"), Feed::Frozen);
        assert_eq!(Feed::from_code("Yp"), Feed::FrozenDelayed);
        assert!(Feed::from_code("NpB").is_unavailable());
        assert!(Feed::from_code("O").is_unavailable());
        assert!(!Feed::from_code("D").is_unavailable());
        assert_eq!(Feed::from_code(""), Feed::Unknown);
    }

    #[test]
    fn blank_fields_do_not_count_as_arrived() {
        let blank = row(json!({"conid": 5, "31": "", "7295": null}));
        assert!(!has_fields(&blank, &[LAST]));
        assert!(!has_fields(&blank, &[OPEN]));
        let quote = Quote::from_row(&blank).unwrap();
        assert_eq!((quote.last, quote.open), (None, None));
    }
}
