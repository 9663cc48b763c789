//! `/iserver/marketdata/history`: the 1-minute bars the opening range is
//! read from and the daily closes the trailing exit averages.
//!
//! Bars come back in `data[]` with plain decimal prices and `t` in epoch
//! milliseconds (UTC); the scaled `high`/`low` summary strings are ignored.

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::client::Client;
use super::fields::parse_price;

/// One bar.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bar {
    /// The bar's start.
    pub at: DateTime<Utc>,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
}

/// The call, as error messages name it.
const HISTORY: &str = "GET /iserver/marketdata/history";

/// Today's 1-minute bars in regular trading hours, oldest first.
pub fn minute_bars(client: &Client, conid: i64) -> Result<Vec<Bar>> {
    fetch(client, conid, "1min", "1d")
        .with_context(|| format!("failed to read 1-minute bars for conid {conid} ({HISTORY})"))
}

/// Daily bars over the last `days` calendar days, oldest first.
pub fn daily_bars(client: &Client, conid: i64, days: u32) -> Result<Vec<Bar>> {
    fetch(client, conid, "1d", &format!("{days}d"))
        .with_context(|| format!("failed to read daily bars for conid {conid} ({HISTORY})"))
}

fn fetch(client: &Client, conid: i64, bar: &str, period: &str) -> Result<Vec<Bar>> {
    let query = [
        ("conid", conid.to_string()),
        ("bar", bar.to_owned()),
        ("period", period.to_owned()),
        ("outsideRth", "false".to_owned()),
    ];
    match client.get("/iserver/marketdata/history", &query) {
        Ok(answer) => parse_bars(&answer),
        // IBKR reports an empty window as an error saying "No data."
        Err(err) if format!("{err:#}").contains("No data") => Ok(Vec::new()),
        Err(err) => Err(err),
    }
}

/// Parses a history answer's `data[]`, sorted oldest first.
pub fn parse_bars(answer: &Value) -> Result<Vec<Bar>> {
    if let Some(error) = answer.get("error").and_then(Value::as_str) {
        if error.contains("No data") {
            return Ok(Vec::new());
        }
        bail!("IBKR refused the history request: {error}");
    }
    let Some(data) = answer.get("data").and_then(Value::as_array) else {
        bail!("history answer has no data list");
    };
    let mut bars = data
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let price = |key: &str| -> Result<f64> {
                parse_price(row.get(key).unwrap_or(&Value::Null))?
                    .with_context(|| format!("bar {i} lacks {key}"))
            };
            let millis = row
                .get("t")
                .and_then(Value::as_i64)
                .with_context(|| format!("bar {i} lacks its time t"))?;
            let at = DateTime::from_timestamp_millis(millis)
                .with_context(|| format!("bar {i} has an impossible time {millis}"))?;
            Ok(Bar {
                at,
                open: price("o")?,
                high: price("h")?,
                low: price("l")?,
                close: price("c")?,
                volume: parse_price(row.get("v").unwrap_or(&Value::Null))?.unwrap_or(0.0),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    bars.sort_by_key(|b| b.at);
    Ok(bars)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bars_are_plain_decimals_with_millisecond_times() {
        let answer = json!({"priceFactor": 1000, "high": "2550/10.00/3",
            "data": [{"o": 2.5, "h": 2.55, "l": 2.49, "c": 2.53, "v": 1000, "t": 1772406060000_i64},
                     {"o": 2.4, "h": 2.45, "l": 2.39, "c": 2.43, "v": 900, "t": 1772406000000_i64}]});
        let bars = parse_bars(&answer).unwrap();
        assert_eq!(bars.len(), 2);
        assert!(bars[0].at < bars[1].at);
        assert_eq!(bars[1].high, 2.55);
        assert_eq!(bars[0].at.timestamp_millis(), 1772406000000);
    }

    #[test]
    fn no_data_is_empty_and_other_errors_are_errors() {
        assert!(
            parse_bars(&json!({"error": "No data."}))
                .unwrap()
                .is_empty()
        );
        assert!(parse_bars(&json!({"error": "bad bar"})).is_err());
        assert!(parse_bars(&json!({"data": [{"o": 1}]})).is_err());
    }
}
