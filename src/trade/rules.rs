//! The strategy's arithmetic, pure so that it can be tested exhaustively:
//! the opening range, the entry and stop prices on the exchange's price
//! steps, position sizing, the trading-day count and the 10-day SMA exit.

use anyhow::Result;
use chrono::{DateTime, NaiveDate, Utc};

use crate::calendar::{EXCHANGE_TZ, trading_days_between};
use crate::ibkr::history::Bar;
use crate::ticks::TickTable;

/// The ASX refuses a first purchase worth less than this (A$).
pub const MIN_PARCEL: f64 = 500.0;

/// How many daily closes the trailing exit averages.
pub const SMA_DAYS: usize = 10;

/// The high and low of the first minutes of continuous trading, and the
/// low of the day so far.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OpeningRange {
    pub high: f64,
    pub low: f64,
    /// The first bar's start: the first continuous trade.
    pub first_bar: DateTime<Utc>,
    /// When the range is complete: `first_bar` plus the window.
    pub complete_at: DateTime<Utc>,
    /// The lowest low of every bar of the day so far.
    pub day_low: f64,
    /// The latest bar's close.
    pub last_close: f64,
}

/// Reads the opening range from `date`'s 1-minute bars: the bars starting in
/// `[first, first + minutes)`, where `first` is the day's first bar. `None`
/// when the day has no bars yet or the window is not over at `now`.
pub fn opening_range(
    bars: &[Bar],
    date: NaiveDate,
    minutes: u32,
    now: DateTime<Utc>,
) -> Option<OpeningRange> {
    let today: Vec<&Bar> = bars
        .iter()
        .filter(|b| b.at.with_timezone(&EXCHANGE_TZ).date_naive() == date)
        .collect();
    let first_bar = today.first()?.at;
    let complete_at = first_bar + chrono::Duration::minutes(i64::from(minutes));
    if now < complete_at {
        return None;
    }
    let window: Vec<&&Bar> = today.iter().filter(|b| b.at < complete_at).collect();
    let high = window.iter().map(|b| b.high).fold(f64::MIN, f64::max);
    let low = window.iter().map(|b| b.low).fold(f64::MAX, f64::min);
    let day_low = today.iter().map(|b| b.low).fold(f64::MAX, f64::min);
    Some(OpeningRange {
        high,
        low,
        first_bar,
        complete_at,
        day_low,
        last_close: today.last()?.close,
    })
}

/// The bracket's prices: a buy stop one price step above the range high,
/// a sell stop at the low of the day rounded down onto a step, and with a
/// cap, a limit that far above the entry rounded up.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EntryPrices {
    pub entry: f64,
    pub stop: f64,
    pub limit: Option<f64>,
}

/// Computes [`EntryPrices`] on `ticks`' steps.
pub fn entry_prices(
    range: &OpeningRange,
    ticks: &TickTable,
    limit_cap_pct: Option<f64>,
) -> Result<EntryPrices> {
    let entry = ticks.step_up(ticks.round_up(range.high)?)?;
    let stop = ticks.round_down(range.day_low)?;
    let limit = match limit_cap_pct {
        Some(pct) => Some(ticks.round_up(entry * (1.0 + pct / 100.0))?),
        None => None,
    };
    Ok(EntryPrices { entry, stop, limit })
}

/// Whole shares worth at most `value` at `price`.
pub fn shares_for(value: f64, price: f64) -> u64 {
    if price.is_nan() || value.is_nan() || price <= 0.0 || value <= 0.0 {
        return 0;
    }
    // A hair of tolerance so that 5000 / 2.5 is 2000, not 1999.
    (value / price + 1e-9).floor() as u64
}

/// (entry - stop) / entry, in percent.
pub fn risk_pct(prices: &EntryPrices) -> f64 {
    (prices.entry - prices.stop) / prices.entry * 100.0
}

/// What [`size_position`] decides for one candidate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sizing {
    /// Buy this many shares, worth `value` at the entry price.
    Buy { quantity: u64, value: f64 },
    /// The stop is further below the entry than the risk cap allows.
    TooRisky { risk_pct: f64 },
    /// Whole shares within the position value come to less than
    /// [`MIN_PARCEL`], which the ASX would refuse as a first purchase.
    UnderMinimum { value: f64 },
}

/// Sizes a position: whole shares worth at most `position_value` at the
/// entry, refused when the risk to the stop is above `max_risk_pct` or the
/// parcel would be under [`MIN_PARCEL`].
pub fn size_position(prices: &EntryPrices, position_value: f64, max_risk_pct: f64) -> Sizing {
    let risk = risk_pct(prices);
    // A hair of tolerance: 10% computed in binary is 10.000000000000002.
    if risk.is_nan() || risk > max_risk_pct + 1e-9 {
        return Sizing::TooRisky { risk_pct: risk };
    }
    let quantity = shares_for(position_value, prices.entry);
    let value = quantity as f64 * prices.entry;
    if value < MIN_PARCEL {
        return Sizing::UnderMinimum { value };
    }
    Sizing::Buy { quantity, value }
}

/// Trading days from the entry day to `today`: the entry day is day 0, so
/// "the third trading day after entry" is 3.
pub fn days_held(entry: NaiveDate, today: NaiveDate) -> i64 {
    trading_days_between(entry, today)
}

/// The trailing exit's verdict from daily bars: the last completed close
/// and the mean of the last [`SMA_DAYS`] completed closes (that close
/// included). Bars of `today` are left out unless `session_over`, because
/// a bar of a day still trading is not a close. `None` with fewer closes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SmaCheck {
    pub close_date: NaiveDate,
    pub close: f64,
    pub sma: f64,
}

impl SmaCheck {
    /// The rule: sell the rest when the close is below the average.
    pub fn says_exit(&self) -> bool {
        self.close < self.sma
    }
}

/// See [`SmaCheck`].
pub fn sma_check(daily: &[Bar], today: NaiveDate, session_over: bool) -> Option<SmaCheck> {
    let completed: Vec<(NaiveDate, f64)> = daily
        .iter()
        .map(|b| (b.at.with_timezone(&EXCHANGE_TZ).date_naive(), b.close))
        .filter(|(date, _)| *date < today || (session_over && *date == today))
        .collect();
    if completed.len() < SMA_DAYS {
        return None;
    }
    let window = &completed[completed.len() - SMA_DAYS..];
    let sma = window.iter().map(|(_, c)| c).sum::<f64>() / SMA_DAYS as f64;
    let (close_date, close) = *window.last()?;
    Some(SmaCheck {
        close_date,
        close,
        sma,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        EXCHANGE_TZ
            .with_ymd_and_hms(2026, 3, 2, h, m, 0)
            .unwrap()
            .to_utc()
    }

    fn bar(h: u32, m: u32, high: f64, low: f64) -> Bar {
        Bar {
            at: at(h, m),
            open: low,
            high,
            low,
            close: high,
            volume: 100.0,
        }
    }

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, 2).unwrap()
    }

    #[test]
    fn the_range_covers_the_first_minutes_only() {
        let mut bars: Vec<Bar> = (0..10)
            .map(|m| bar(10, m, 2.50 + m as f64 / 100.0, 2.40))
            .collect();
        bars.push(bar(10, 10, 3.00, 2.30));
        let range = opening_range(&bars, day(), 10, at(10, 12)).unwrap();
        assert_eq!(range.high, 2.59);
        assert_eq!(range.low, 2.40);
        assert_eq!(range.day_low, 2.30);
        assert_eq!(range.complete_at, at(10, 10));
        assert!(opening_range(&bars, day(), 10, at(10, 9)).is_none());
        assert!(opening_range(&[], day(), 10, at(10, 12)).is_none());
    }

    #[test]
    fn the_range_starts_at_the_first_trade_not_the_bell() {
        let bars: Vec<Bar> = (3..20)
            .map(|m| bar(10, m, 1.0 + m as f64 / 1000.0, 0.9))
            .collect();
        let range = opening_range(&bars, day(), 5, at(10, 30)).unwrap();
        assert_eq!(range.first_bar, at(10, 3));
        assert_eq!(range.high, 1.007);
    }

    #[test]
    fn prices_sit_on_the_steps() {
        let ticks = TickTable::asx();
        let range = OpeningRange {
            high: 1.995,
            low: 1.80,
            first_bar: at(10, 0),
            complete_at: at(10, 10),
            day_low: 1.7825,
            last_close: 1.99,
        };
        let prices = entry_prices(&range, &ticks, Some(1.0)).unwrap();
        assert_eq!(prices.entry, 2.0);
        assert_eq!(prices.stop, 1.78);
        assert_eq!(prices.limit, Some(2.02));
        assert!((risk_pct(&prices) - 11.0).abs() < 1e-9);
    }

    #[test]
    fn sizing_takes_whole_shares() {
        assert_eq!(shares_for(5000.0, 2.5), 2000);
        assert_eq!(shares_for(5000.0, 3.0), 1666);
        assert_eq!(shares_for(5000.0, 6000.0), 0);
        assert_eq!(shares_for(5000.0, 0.0), 0);
        assert_eq!(shares_for(5000.0, f64::NAN), 0);
    }

    #[test]
    fn sizing_refuses_risk_and_small_parcels() {
        let prices = |entry: f64, stop: f64| EntryPrices {
            entry,
            stop,
            limit: None,
        };
        assert_eq!(
            size_position(&prices(2.0, 1.8), 5000.0, 10.0),
            Sizing::Buy {
                quantity: 2500,
                value: 5000.0
            }
        );
        assert!(matches!(
            size_position(&prices(2.0, 1.78), 5000.0, 10.0),
            Sizing::TooRisky { .. }
        ));
        // 1 share at A$600 fits A$1000; 1 share at A$450 is under A$500.
        assert!(matches!(
            size_position(&prices(600.0, 590.0), 1000.0, 10.0),
            Sizing::Buy { quantity: 1, .. }
        ));
        assert_eq!(
            size_position(&prices(450.0, 440.0), 800.0, 10.0),
            Sizing::UnderMinimum { value: 450.0 }
        );
    }

    /// Properties of [`size_position`] over prices on the ASX grid and the
    /// range of settings `skim trade enter` accepts.
    mod sizing_props {
        use super::*;
        use proptest::prelude::*;

        /// An entry price on the ASX steps: cents from 0.1 cent to A$500.
        fn entry_prices() -> impl Strategy<Value = EntryPrices> {
            (1u32..=500_000, 0.0f64..1.0).prop_map(|(tenth_cents, drop)| {
                let ticks = TickTable::asx();
                let entry = ticks.round_up(f64::from(tenth_cents) / 1000.0).unwrap();
                let stop = ticks.round_down((entry * (1.0 - drop)).max(0.001)).unwrap();
                EntryPrices {
                    entry,
                    stop,
                    limit: None,
                }
            })
        }

        proptest! {
            #[test]
            fn a_buy_is_whole_shares_within_the_value_and_above_the_minimum(
                prices in entry_prices(),
                position_value in 1.0f64..200_000.0,
                max_risk in 0.5f64..50.0,
            ) {
                match size_position(&prices, position_value, max_risk) {
                    Sizing::Buy { quantity, value } => {
                        prop_assert!(quantity >= 1);
                        prop_assert_eq!(value, quantity as f64 * prices.entry);
                        // The 1e-9 share tolerance in shares_for is worth at
                        // most a millionth of a cent at these prices.
                        prop_assert!(value <= position_value + 1e-6, "{} > {}", value,
                            position_value);
                        prop_assert!(value >= MIN_PARCEL);
                        prop_assert!(risk_pct(&prices) <= max_risk + 1e-9);
                        // One more share would not have fitted.
                        prop_assert!((quantity + 1) as f64 * prices.entry > position_value);
                    }
                    Sizing::TooRisky { risk_pct: risk } => {
                        prop_assert!(risk > max_risk);
                    }
                    Sizing::UnderMinimum { value } => {
                        prop_assert!(value < MIN_PARCEL);
                        prop_assert!(risk_pct(&prices) <= max_risk + 1e-9);
                    }
                }
            }

            #[test]
            fn a_position_value_under_the_minimum_never_buys(
                prices in entry_prices(),
                position_value in 0.0f64..MIN_PARCEL,
            ) {
                let sizing = size_position(&prices, position_value, 100.0);
                prop_assert!(!matches!(sizing, Sizing::Buy { .. }), "{:?}", sizing);
            }

            #[test]
            fn more_money_never_buys_fewer_shares(
                prices in entry_prices(),
                small in 500.0f64..100_000.0,
                extra in 0.0f64..100_000.0,
            ) {
                prop_assert!(
                    shares_for(small, prices.entry) <= shares_for(small + extra, prices.entry)
                );
            }
        }
    }

    #[test]
    fn day_three_counts_trading_days() {
        // Entry Thursday 2 April 2026; Good Friday and Easter Monday are holidays.
        let entry = NaiveDate::from_ymd_opt(2026, 4, 2).unwrap();
        assert_eq!(
            days_held(entry, NaiveDate::from_ymd_opt(2026, 4, 8).unwrap()),
            2
        );
        assert_eq!(
            days_held(entry, NaiveDate::from_ymd_opt(2026, 4, 9).unwrap()),
            3
        );
    }

    #[test]
    fn the_sma_uses_completed_closes_only() {
        let daily: Vec<Bar> = (1..=11)
            .map(|d| Bar {
                at: EXCHANGE_TZ
                    .with_ymd_and_hms(2026, 3, d, 0, 0, 0)
                    .unwrap()
                    .to_utc(),
                open: 1.0,
                high: 1.0,
                low: 1.0,
                close: if d == 10 { 0.5 } else { 1.0 },
                volume: 1.0,
            })
            .collect();
        let today = NaiveDate::from_ymd_opt(2026, 3, 11).unwrap();
        let check = sma_check(&daily, today, false).unwrap();
        assert_eq!(
            check.close_date,
            NaiveDate::from_ymd_opt(2026, 3, 10).unwrap()
        );
        assert!((check.sma - 0.95).abs() < 1e-9);
        assert!(check.says_exit());
        let after = sma_check(&daily, today, true).unwrap();
        assert_eq!(after.close, 1.0);
        assert!(!after.says_exit());
        assert!(sma_check(&daily[..5], today, false).is_none());
    }
}
