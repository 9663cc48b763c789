//! IBKR snapshot rows on arbitrary JSON: each row reads as a quote or an
//! error, and a quote only ever holds a positive conid and finite numbers.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use skim_asx::ibkr::fields::Quote;

fuzz_target!(|data: &[u8]| {
    let Ok(answer) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let rows = match &answer {
        Value::Array(rows) => rows.iter().collect::<Vec<_>>(),
        row => vec![row],
    };
    for row in rows.iter().filter_map(|row| row.as_object()) {
        let Ok(quote) = Quote::from_row(row) else {
            continue;
        };
        assert!(quote.conid > 0, "conid {} accepted", quote.conid);
        let prices = [
            quote.bid,
            quote.ask,
            quote.high,
            quote.low,
            quote.open,
            quote.prior_close,
            quote.change_pct,
            quote.last.map(|last| last.price),
        ];
        for price in prices.into_iter().flatten() {
            assert!(price.is_finite(), "a non-finite price in {quote:?}");
        }
    }
});
