//! The portfolio side of the Web API: which accounts the session may read,
//! and an account's balances (net liquidation, available funds, buying
//! power) for `skim positions` and for sizing entries.
//!
//! The HTTP calls are thin; the parsing is pure and public so it is tested
//! on answer bodies here. IBKR documents the summary's shape (an object of
//! lower-case keys, each `{amount, currency, isNull, value, ...}`) but not
//! which keys a cash account carries, so [`parse_summary`] accepts every
//! spelling seen in the wild and reports a missing figure as `None` rather
//! than guessing a number. It does not decide what a missing figure means
//! for trading; callers do.
//!
//! See: reference section 5.4, and section 4 for why `/portfolio/accounts`
//! comes first.

use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;
use serde_json::{Map, Value};

use super::client::{Client, excerpt};

const ACCOUNTS_PATH: &str = "/portfolio/accounts";

/// Keys tried for each figure, in order; the first that holds a number
/// wins. The `-s` forms are the securities segment, which is the whole of
/// an account that trades only shares.
const NET_LIQUIDATION_KEYS: &[&str] = &["netliquidation", "netliquidation-s"];
const AVAILABLE_FUNDS_KEYS: &[&str] = &["availablefunds", "availablefunds-s"];
const BUYING_POWER_KEYS: &[&str] = &["buyingpower"];

/// An account's headline balances. Each figure is `None` when IBKR left
/// it out or marked it null; none is ever defaulted to 0.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct AccountSummary {
    /// Net liquidation value, in `currency`.
    pub net_liquidation: Option<f64>,
    /// Funds available for new positions, in `currency`.
    pub available_funds: Option<f64>,
    /// Buying power, in `currency`.
    pub buying_power: Option<f64>,
    /// The currency of the figures (the account's base currency, `AUD` for
    /// an Australian account), from the first figure that names one.
    pub currency: Option<String>,
}

/// `GET /portfolio/accounts`: the ids of the accounts this session may
/// read, in IBKR's order (possibly none).
///
/// IBKR requires this call before any other `/portfolio` endpoint in a
/// session and allows it once per 5 s (the client paces it), so callers
/// make it once per run, before [`account_summary`].
pub fn portfolio_accounts(client: &Client) -> Result<Vec<String>> {
    let answer = client
        .get(ACCOUNTS_PATH, &[])
        .context("failed to list IBKR's portfolio accounts")?;
    parse_portfolio_accounts(&answer)
}

/// Reads a `/portfolio/accounts` answer: an array of account objects, each
/// identified by `accountId` (or `id`). Anything else is an error quoting
/// the start of the answer.
pub fn parse_portfolio_accounts(answer: &Value) -> Result<Vec<String>> {
    let Value::Array(accounts) = answer else {
        bail!(
            "IBKR's answer to GET {ACCOUNTS_PATH} is not a list: {}",
            excerpt(&answer.to_string())
        );
    };
    accounts
        .iter()
        .map(|account| {
            ["accountId", "id"]
                .iter()
                .find_map(|key| account.get(*key)?.as_str())
                .map(str::trim)
                .filter(|id| !id.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| {
                    anyhow!(
                        "IBKR's portfolio accounts answer has an entry without accountId: {}",
                        excerpt(&account.to_string())
                    )
                })
        })
        .collect()
}

/// `GET /portfolio/{account_id}/summary`, parsed by [`parse_summary`].
///
/// Callers must have called [`portfolio_accounts`] earlier in the session.
/// An `account_id` that is not letters and digits is refused before any
/// request, since it becomes part of the path.
pub fn account_summary(client: &Client, account_id: &str) -> Result<AccountSummary> {
    let path = summary_path(account_id)?;
    client
        .get(&path, &[])
        .and_then(|answer| parse_summary(&answer))
        .with_context(|| format!("failed to read the account summary of {account_id} ({path})"))
}

/// The summary path for `account_id`, refusing ids that could change the
/// path's meaning.
fn summary_path(account_id: &str) -> Result<String> {
    if account_id.is_empty() || !account_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        bail!(
            "account id {:?} is not an IBKR account id; expected letters and digits such as \
             DU1234567",
            excerpt(account_id)
        );
    }
    Ok(format!("/portfolio/{account_id}/summary"))
}

/// Reads a `/portfolio/{acct}/summary` answer.
///
/// Each figure is taken from the first of its keys present with a number:
/// net liquidation from `netliquidation` then `netliquidation-s`, available
/// funds from `availablefunds` then `availablefunds-s`, buying power from
/// `buyingpower`. An entry is `{amount, currency, isNull, value, ...}`:
/// `isNull: true` or a null `amount` means no figure; `amount` may be a
/// number or a string (thousands commas allowed); a bare number or numeric
/// string in place of the object is accepted too. Fails when the answer is
/// not an object, carries IBKR's `error`, or a figure is present but not a
/// finite number (the error names the key).
pub fn parse_summary(answer: &Value) -> Result<AccountSummary> {
    let Value::Object(entries) = answer else {
        bail!(
            "IBKR's account summary is not an object: {}",
            excerpt(&answer.to_string())
        );
    };
    if let Some(error) = entries.get("error").filter(|e| !e.is_null()) {
        bail!(
            "IBKR's account summary answered with an error: {}",
            excerpt(&text_of(error))
        );
    }

    let mut currency = None;
    let mut figure = |keys: &[&str]| -> Result<Option<f64>> {
        for key in keys {
            let Some(entry) = entries.get(*key) else {
                continue;
            };
            if let Some(amount) = amount_of(key, entry)? {
                if currency.is_none() {
                    currency = currency_of(entry);
                }
                return Ok(Some(amount));
            }
        }
        Ok(None)
    };
    let net_liquidation = figure(NET_LIQUIDATION_KEYS)?;
    let available_funds = figure(AVAILABLE_FUNDS_KEYS)?;
    let buying_power = figure(BUYING_POWER_KEYS)?;
    Ok(AccountSummary {
        net_liquidation,
        available_funds,
        buying_power,
        currency,
    })
}

/// The amount of one summary entry: `None` when IBKR marks it null.
fn amount_of(key: &str, entry: &Value) -> Result<Option<f64>> {
    let raw = match entry {
        Value::Object(fields) => {
            if fields.get("isNull").and_then(Value::as_bool) == Some(true) {
                return Ok(None);
            }
            match fields.get("amount") {
                Some(amount) if !amount.is_null() => amount,
                // `value` is IBKR's display form of the same figure; it
                // stands in only when `amount` is absent.
                _ => match fields.get("value") {
                    Some(value) if !value.is_null() => value,
                    _ => return Ok(None),
                },
            }
        }
        Value::Null => return Ok(None),
        other => other,
    };
    number(raw)
        .map(Some)
        .ok_or_else(|| {
            let shown = match raw {
                Value::String(text) => format!("\"{}\"", excerpt(text)),
                other => excerpt(&other.to_string()),
            };
            anyhow!("{key} has amount {shown}; expected a number")
        })
        .context("IBKR's account summary is malformed")
}

/// A finite number from a JSON number or a string such as `"12,345.67"`.
fn number(value: &Value) -> Option<f64> {
    let parsed = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(text) => text.trim().replace(',', "").parse::<f64>().ok(),
        _ => None,
    };
    parsed.filter(|n| n.is_finite())
}

fn currency_of(entry: &Value) -> Option<String> {
    let fields: &Map<String, Value> = entry.as_object()?;
    let code = fields.get("currency")?.as_str()?.trim();
    (!code.is_empty()).then(|| excerpt(code))
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(amount: Value, currency: &str) -> Value {
        json!({
            "amount": amount, "currency": currency, "isNull": false,
            "timestamp": 1764800000000i64, "value": null, "severity": 0
        })
    }

    #[test]
    fn reads_the_plain_keys_with_numbers_and_strings() {
        let answer = json!({
            "accountcode": {"amount": 0.0, "currency": null, "isNull": false,
                            "value": "DU1234567", "severity": 0},
            "netliquidation": entry(json!(100250.5), "AUD"),
            "availablefunds": entry(json!("98,000.25"), "AUD"),
            "buyingpower": entry(json!(" 392001 "), "AUD"),
            "netliquidation-s": entry(json!(1.0), "USD"),
        });
        assert_eq!(
            parse_summary(&answer).unwrap(),
            AccountSummary {
                net_liquidation: Some(100250.5),
                available_funds: Some(98000.25),
                buying_power: Some(392001.0),
                currency: Some("AUD".to_owned()),
            }
        );
    }

    #[test]
    fn falls_back_to_the_securities_segment() {
        let answer = json!({
            "netliquidation-s": entry(json!(5000), "AUD"),
            "availablefunds": {"amount": null, "currency": "AUD", "isNull": true, "value": null},
            "availablefunds-s": entry(json!("4500.5"), "AUD"),
        });
        let summary = parse_summary(&answer).unwrap();
        assert_eq!(summary.net_liquidation, Some(5000.0));
        assert_eq!(summary.available_funds, Some(4500.5));
        assert_eq!(summary.buying_power, None);
        assert_eq!(summary.currency.as_deref(), Some("AUD"));
    }

    #[test]
    fn null_entries_are_none_never_zero() {
        let answer = json!({
            "netliquidation": {"amount": 12.0, "currency": "AUD", "isNull": true},
            "availablefunds": {"amount": null, "currency": "AUD", "isNull": false},
            "buyingpower": null,
        });
        assert_eq!(parse_summary(&answer).unwrap(), AccountSummary::default());
        assert_eq!(
            parse_summary(&json!({})).unwrap(),
            AccountSummary::default()
        );
    }

    #[test]
    fn value_stands_in_for_a_missing_amount_and_bare_numbers_count() {
        let answer = json!({
            "netliquidation": {"currency": "AUD", "isNull": false, "value": "7,250.00"},
            "availablefunds": 3000,
            "buyingpower": "12000.5",
        });
        let summary = parse_summary(&answer).unwrap();
        assert_eq!(summary.net_liquidation, Some(7250.0));
        assert_eq!(summary.available_funds, Some(3000.0));
        assert_eq!(summary.buying_power, Some(12000.5));
        assert_eq!(summary.currency.as_deref(), Some("AUD"));
    }

    #[test]
    fn the_currency_comes_from_the_first_figure_that_names_one() {
        let answer = json!({
            "netliquidation": {"amount": 10.0, "isNull": false},
            "availablefunds": entry(json!(5.0), " AUD "),
        });
        assert_eq!(
            parse_summary(&answer).unwrap().currency.as_deref(),
            Some("AUD")
        );
    }

    #[test]
    fn malformed_answers_are_errors_naming_what_is_wrong() {
        for (answer, expected) in [
            (json!([1, 2]), "is not an object"),
            (json!("oops"), "is not an object"),
            (
                json!({"error": "Please query /accounts first"}),
                "/accounts first",
            ),
            (
                json!({"netliquidation": entry(json!("n/a"), "AUD")}),
                "netliquidation has amount \"n/a\"",
            ),
            (
                json!({"buyingpower": entry(json!(true), "AUD")}),
                "buyingpower has amount true",
            ),
            (
                json!({"availablefunds-s": entry(json!({"x": 1}), "AUD")}),
                "availablefunds-s has amount",
            ),
        ] {
            let err = parse_summary(&answer).unwrap_err();
            let text = format!("{err:#}");
            assert!(text.contains(expected), "{answer}: {text}");
        }
    }

    #[test]
    fn only_plain_account_ids_make_a_path() {
        assert_eq!(
            summary_path("DU1234567").unwrap(),
            "/portfolio/DU1234567/summary"
        );
        for bad in ["", "DU1/../x", "DU 1", "DU1?x=1"] {
            let err = summary_path(bad).unwrap_err();
            assert!(
                err.to_string().contains("is not an IBKR account id"),
                "{err}"
            );
        }
    }

    #[test]
    fn lists_portfolio_accounts_by_account_id() {
        let answer = json!([
            {"id": "DU1234567", "accountId": "DU1234567", "currency": "AUD", "type": "DEMO"},
            {"id": "DU7654321", "currency": "AUD"},
        ]);
        assert_eq!(
            parse_portfolio_accounts(&answer).unwrap(),
            ["DU1234567", "DU7654321"]
        );
        assert!(parse_portfolio_accounts(&json!([])).unwrap().is_empty());

        let err = parse_portfolio_accounts(&json!({"accounts": []})).unwrap_err();
        assert!(err.to_string().contains("is not a list"), "{err}");
        let err = parse_portfolio_accounts(&json!([{"currency": "AUD"}])).unwrap_err();
        assert!(err.to_string().contains("without accountId"), "{err}");
    }
}
