//! ASX price steps (tick sizes) and rounding prices onto them.
//!
//! A stop or limit price off the exchange's grid is rejected, so every price
//! skim sends goes through a [`TickTable`]: the ASX's published bands by
//! default, or the `incrementRules` IBKR returns for a contract. Arithmetic is
//! done in integer millionths of a dollar, so a rounded price is the exact
//! decimal (2.03, never 2.0300000000000002) and rounding never drifts.

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

/// Integer price units per dollar: prices are handled as millionths.
pub const UNITS_PER_DOLLAR: i64 = 1_000_000;

/// The largest price accepted, far above anything listed on the ASX; it keeps
/// unit arithmetic clear of overflow.
const MAX_PRICE_UNITS: i64 = 1_000_000_000 * UNITS_PER_DOLLAR;

/// One band of IBKR's `incrementRules`: from `lower_edge` up to the next
/// rule's edge, prices move in multiples of `increment`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IncrementRule {
    /// The lowest price the band covers, in dollars.
    pub lower_edge: f64,
    /// The price step inside the band, in dollars.
    pub increment: f64,
}

/// Price bands, each with its step, ordered by lower edge from zero.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TickTable {
    /// `(lower_edge, increment)` in units; the first edge is 0.
    bands: Vec<(i64, i64)>,
}

impl TickTable {
    /// The ASX cash-equity steps: below $0.10 in $0.001, below $2.00 in
    /// $0.005, from $2.00 in $0.01. The ASX wording leaves exactly 10c
    /// ambiguous; 10c sits on both grids, so only prices above it differ.
    pub fn asx() -> Self {
        TickTable {
            bands: vec![(0, 1_000), (100_000, 5_000), (2_000_000, 10_000)],
        }
    }

    /// A table from IBKR's `incrementRules`, in any order.
    ///
    /// Fails when the list is empty, when no rule starts at 0, when two rules
    /// share an edge, or when an edge or increment is negative, not finite,
    /// zero (increments) or finer than a millionth of a dollar.
    pub fn from_rules(rules: &[IncrementRule]) -> Result<Self> {
        if rules.is_empty() {
            bail!("increment rules are empty; expected at least one {{lowerEdge, increment}}");
        }
        let mut bands = Vec::with_capacity(rules.len());
        for rule in rules {
            let edge = exact_units(rule.lower_edge)
                .map_err(|why| anyhow::anyhow!("increment rule lowerEdge {why}"))?;
            let step = exact_units(rule.increment)
                .map_err(|why| anyhow::anyhow!("increment rule increment {why}"))?;
            if step == 0 {
                bail!(
                    "increment rule at lowerEdge {} has a zero increment",
                    rule.lower_edge
                );
            }
            bands.push((edge, step));
        }
        bands.sort_unstable();
        if bands[0].0 != 0 {
            bail!(
                "increment rules start at lowerEdge {}; expected a rule from 0",
                units_to_price(bands[0].0)
            );
        }
        if let Some(pair) = bands.windows(2).find(|pair| pair[0].0 == pair[1].0) {
            bail!(
                "increment rules repeat lowerEdge {}",
                units_to_price(pair[0].0)
            );
        }
        Ok(TickTable { bands })
    }

    /// The step that applies at `price`.
    pub fn step_at(&self, price: f64) -> Result<f64> {
        let units = price_to_units(price)?;
        Ok(units_to_price(self.band(units).1))
    }

    /// The smallest valid price at or above `price`: where a buy stop goes so
    /// it never triggers below the level it guards.
    pub fn round_up(&self, price: f64) -> Result<f64> {
        let units = price_to_units(price)?;
        Ok(units_to_price(self.round_up_units(units)))
    }

    /// The largest valid price at or below `price`: where a sell stop goes.
    /// Fails when that would be zero (a price below the smallest step).
    pub fn round_down(&self, price: f64) -> Result<f64> {
        let units = price_to_units(price)?;
        match self.round_down_units(units) {
            0 => bail!("price {price} rounds down to zero; the smallest step is larger"),
            rounded => Ok(units_to_price(rounded)),
        }
    }

    /// The next valid price strictly above `price`: one step up from a price
    /// on the grid, the next grid price from one off it. A buy breakout
    /// trigger goes here, just above the opening-range high.
    pub fn step_up(&self, price: f64) -> Result<f64> {
        let units = price_to_units(price)?;
        Ok(units_to_price(self.round_up_units(units + 1)))
    }

    /// The next valid price strictly below `price`. Fails when there is none.
    pub fn step_down(&self, price: f64) -> Result<f64> {
        let units = price_to_units(price)?;
        match self.round_down_units(units - 1) {
            0 => bail!("no valid price below {price}"),
            rounded => Ok(units_to_price(rounded)),
        }
    }

    /// Whether `price` lies on the grid.
    pub fn is_valid(&self, price: f64) -> Result<bool> {
        let units = price_to_units(price)?;
        Ok(units > 0 && units % self.band(units).1 == 0)
    }

    /// The band containing `units` (the last band whose edge is at or below).
    fn band(&self, units: i64) -> (i64, i64) {
        let index = self.bands.partition_point(|(edge, _)| *edge <= units);
        self.bands[index.saturating_sub(1)]
    }

    fn next_edge(&self, units: i64) -> Option<i64> {
        let index = self.bands.partition_point(|(edge, _)| *edge <= units);
        self.bands.get(index).map(|(edge, _)| *edge)
    }

    fn round_up_units(&self, units: i64) -> i64 {
        let (_, step) = self.band(units);
        let rounded = units.div_euclid(step) * step + if units % step == 0 { 0 } else { step };
        match self.next_edge(units) {
            // The next band has its own grid; its edge may not be on this one.
            Some(edge) if rounded >= edge => self.round_up_units(edge),
            _ => rounded,
        }
    }

    fn round_down_units(&self, units: i64) -> i64 {
        if units <= 0 {
            return 0;
        }
        let (edge, step) = self.band(units);
        let rounded = units.div_euclid(step) * step;
        if rounded >= edge || edge == 0 {
            rounded
        } else {
            // The band's edge is off its own grid; fall back into the band
            // below, whose grid covers everything under the edge.
            self.round_down_units(edge - 1)
        }
    }
}

impl Default for TickTable {
    fn default() -> Self {
        TickTable::asx()
    }
}

/// `price` in units, for a positive finite price up to a billion dollars.
/// Noise below a millionth (1.2300000001) is rounded away.
pub fn price_to_units(price: f64) -> Result<i64> {
    if !price.is_finite() || price <= 0.0 {
        bail!("price {price} is not a positive number");
    }
    let units = (price * UNITS_PER_DOLLAR as f64).round();
    if units > MAX_PRICE_UNITS as f64 {
        bail!(
            "price {price} is too large; expected at most {}",
            MAX_PRICE_UNITS / UNITS_PER_DOLLAR
        );
    }
    // In range and integral after the checks above, so the cast is exact.
    Ok(units as i64)
}

/// `units` as a dollar price: the binary float nearest the exact decimal.
pub fn units_to_price(units: i64) -> f64 {
    units as f64 / UNITS_PER_DOLLAR as f64
}

/// A rule's edge or increment in units, refusing values that do not sit on
/// the unit grid (a step finer than a millionth could not be honoured).
fn exact_units(value: f64) -> std::result::Result<i64, String> {
    if !value.is_finite() || value < 0.0 {
        return Err(format!("{value} is not a non-negative number"));
    }
    let scaled = value * UNITS_PER_DOLLAR as f64;
    if scaled > MAX_PRICE_UNITS as f64 {
        return Err(format!("{value} is too large"));
    }
    let units = scaled.round();
    if (scaled - units).abs() > 1e-6 * units.max(1.0) {
        return Err(format!("{value} is finer than a millionth of a dollar"));
    }
    Ok(units as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(lower_edge: f64, increment: f64) -> IncrementRule {
        IncrementRule {
            lower_edge,
            increment,
        }
    }

    #[test]
    fn asx_steps_at_band_edges() {
        let asx = TickTable::asx();
        assert_eq!(asx.step_at(0.001).unwrap(), 0.001);
        assert_eq!(asx.step_at(0.099).unwrap(), 0.001);
        assert_eq!(asx.step_at(0.1).unwrap(), 0.005);
        assert_eq!(asx.step_at(1.995).unwrap(), 0.005);
        assert_eq!(asx.step_at(1.999).unwrap(), 0.005);
        assert_eq!(asx.step_at(2.0).unwrap(), 0.01);
        assert_eq!(asx.step_at(150.0).unwrap(), 0.01);
    }

    #[test]
    fn rounds_up_and_down_exactly() {
        let asx = TickTable::asx();
        let cases = [
            // price, round up, round down
            (0.0512, 0.052, 0.051),
            (0.0995, 0.1, 0.099),
            (0.1001, 0.105, 0.1),
            (0.123, 0.125, 0.12),
            (1.2345, 1.235, 1.23),
            (1.9951, 2.0, 1.995),
            (1.999, 2.0, 1.995),
            (2.001, 2.01, 2.0),
            (2.03, 2.03, 2.03),
            (2.0300000000000002, 2.03, 2.03),
            (12.345, 12.35, 12.34),
            (0.1 + 0.2, 0.3, 0.3),
        ];
        for (price, up, down) in cases {
            assert_eq!(asx.round_up(price).unwrap(), up, "up from {price}");
            assert_eq!(asx.round_down(price).unwrap(), down, "down from {price}");
        }
        assert_eq!(asx.round_up(1.23).unwrap().to_string(), "1.23");
        assert_eq!(asx.round_up(1.2300000001).unwrap().to_string(), "1.23");
    }

    #[test]
    fn one_step_up_and_down_across_bands() {
        let asx = TickTable::asx();
        assert_eq!(asx.step_up(0.099).unwrap(), 0.1);
        assert_eq!(asx.step_up(0.1).unwrap(), 0.105);
        assert_eq!(asx.step_up(1.995).unwrap(), 2.0);
        assert_eq!(asx.step_up(2.0).unwrap(), 2.01);
        assert_eq!(asx.step_up(1.231).unwrap(), 1.235);
        assert_eq!(asx.step_down(2.0).unwrap(), 1.995);
        assert_eq!(asx.step_down(0.1).unwrap(), 0.099);
        assert_eq!(asx.step_down(2.01).unwrap(), 2.0);
        assert!(asx.step_down(0.001).is_err());
    }

    #[test]
    fn refuses_bad_prices() {
        let asx = TickTable::asx();
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e12] {
            let err = asx.round_up(bad).unwrap_err().to_string();
            assert!(err.contains("price"), "{err}");
        }
        let err = asx.round_down(0.0004).unwrap_err().to_string();
        assert!(err.contains("rounds down to zero"), "{err}");
        assert!(asx.is_valid(1.235).unwrap());
        assert!(!asx.is_valid(1.233).unwrap());
        assert!(!asx.is_valid(2.005).unwrap());
    }

    #[test]
    fn ibkr_rules_match_the_asx_table() {
        let json = r#"[{"lowerEdge":2.0,"increment":0.01},
                       {"lowerEdge":0.0,"increment":0.001},
                       {"lowerEdge":0.1,"increment":0.005}]"#;
        let rules: Vec<IncrementRule> = serde_json::from_str(json).unwrap();
        assert_eq!(TickTable::from_rules(&rules).unwrap(), TickTable::asx());
    }

    #[test]
    fn edges_off_the_grid_are_honoured() {
        // A band edge at 1.003 is not a multiple of its own 0.01 step.
        let table = TickTable::from_rules(&[rule(0.0, 0.005), rule(1.003, 0.01)]).unwrap();
        assert_eq!(table.round_up(1.001).unwrap(), 1.01);
        assert_eq!(table.round_down(1.004).unwrap(), 1.0);
        assert_eq!(table.round_down(1.013).unwrap(), 1.01);
        assert_eq!(table.step_up(1.0).unwrap(), 1.01);
    }

    #[test]
    fn refuses_bad_rules() {
        let cases: [(&[IncrementRule], &str); 5] = [
            (&[], "empty"),
            (&[rule(0.1, 0.005)], "expected a rule from 0"),
            (&[rule(0.0, 0.0)], "zero increment"),
            (&[rule(0.0, 0.001), rule(0.0, 0.005)], "repeat"),
            (&[rule(0.0, 0.0000001)], "finer than a millionth"),
        ];
        for (rules, expected) in cases {
            let err = TickTable::from_rules(rules).unwrap_err().to_string();
            assert!(err.contains(expected), "{err} should contain {expected}");
        }
        let err = TickTable::from_rules(&[rule(f64::NAN, 0.01)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("lowerEdge NaN"), "{err}");
    }

    mod properties {
        //! Rounding checked against a second, deliberately plain reading of
        //! the bands: walk them in order and take the first (or last) grid
        //! price each offers.

        use super::*;
        use proptest::prelude::*;

        /// The smallest price in units at or above `units` that sits on the
        /// grid of its own band.
        fn first_valid_from(bands: &[(i64, i64)], units: i64) -> i64 {
            for (i, &(edge, step)) in bands.iter().enumerate() {
                let end = bands.get(i + 1).map_or(i64::MAX, |next| next.0);
                if end <= units {
                    continue;
                }
                let low = units.max(edge);
                let candidate = (low + step - 1) / step * step;
                if candidate < end {
                    return candidate;
                }
            }
            unreachable!("the last band is unbounded")
        }

        /// The largest price in units at or below `units` on its band's
        /// grid, or 0 when there is none.
        fn last_valid_to(bands: &[(i64, i64)], units: i64) -> i64 {
            for (i, &(edge, step)) in bands.iter().enumerate().rev() {
                if edge > units {
                    continue;
                }
                let end = bands.get(i + 1).map_or(i64::MAX, |next| next.0);
                let candidate = units.min(end - 1) / step * step;
                if candidate >= edge && candidate > 0 {
                    return candidate;
                }
            }
            0
        }

        /// The ASX's table, or one of up to four bands with arbitrary edges
        /// (often off their own grid) and steps.
        fn tables() -> impl Strategy<Value = TickTable> {
            let custom = (
                1i64..=20_000,
                proptest::collection::vec((1i64..=5_000_000, 1i64..=20_000), 0..4),
            )
                .prop_map(|(first_step, rest)| {
                    let mut rules = vec![rule(0.0, units_to_price(first_step))];
                    for (edge, step) in rest {
                        if rules.iter().all(|r| r.lower_edge != units_to_price(edge)) {
                            rules.push(rule(units_to_price(edge), units_to_price(step)));
                        }
                    }
                    TickTable::from_rules(&rules).expect("generated rules are valid")
                });
            prop_oneof![Just(TickTable::asx()), custom]
        }

        /// Prices in units: mostly within the bands' edges, some far above.
        fn prices() -> impl Strategy<Value = i64> {
            prop_oneof![
                4 => 1i64..=6_000_000,
                1 => 1i64..=MAX_PRICE_UNITS - 1_000_000,
            ]
        }

        proptest! {
            #[test]
            fn round_up_is_the_least_grid_price_at_or_above(
                table in tables(),
                units in prices(),
            ) {
                let price = units_to_price(units);
                let up = price_to_units(table.round_up(price).unwrap()).unwrap();
                prop_assert!(up >= units);
                prop_assert!(table.is_valid(units_to_price(up)).unwrap());
                prop_assert_eq!(up, first_valid_from(&table.bands, units));
            }

            #[test]
            fn round_down_is_the_greatest_grid_price_at_or_below(
                table in tables(),
                units in prices(),
            ) {
                let price = units_to_price(units);
                match last_valid_to(&table.bands, units) {
                    0 => prop_assert!(table.round_down(price).is_err()),
                    expected => {
                        let down = price_to_units(table.round_down(price).unwrap()).unwrap();
                        prop_assert!(down <= units);
                        prop_assert!(table.is_valid(units_to_price(down)).unwrap());
                        prop_assert_eq!(down, expected);
                    }
                }
            }

            #[test]
            fn steps_move_strictly_to_the_neighbouring_grid_price(
                table in tables(),
                units in prices(),
            ) {
                let price = units_to_price(units);
                let up = price_to_units(table.step_up(price).unwrap()).unwrap();
                prop_assert!(up > units);
                prop_assert_eq!(up, first_valid_from(&table.bands, units + 1));
                match last_valid_to(&table.bands, units - 1) {
                    0 => prop_assert!(table.step_down(price).is_err()),
                    expected => {
                        let down = price_to_units(table.step_down(price).unwrap()).unwrap();
                        prop_assert!(down < units);
                        prop_assert_eq!(down, expected);
                    }
                }
            }

            #[test]
            fn grid_prices_stay_put_and_rounding_is_idempotent(
                table in tables(),
                units in prices(),
            ) {
                let up = table.round_up(units_to_price(units)).unwrap();
                prop_assert_eq!(table.round_up(up).unwrap(), up);
                prop_assert_eq!(table.round_down(up).unwrap(), up);
                prop_assert!(table.step_down(table.step_up(up).unwrap()).unwrap() == up);
            }

            #[test]
            fn noise_below_a_millionth_does_not_move_a_price(
                units in prices(),
                noise in -4e-8f64..4e-8,
            ) {
                let table = TickTable::asx();
                let exact = table.round_up(units_to_price(units)).unwrap();
                prop_assert_eq!(table.round_up(units_to_price(units) + noise).unwrap(), exact);
            }
        }
    }
}
