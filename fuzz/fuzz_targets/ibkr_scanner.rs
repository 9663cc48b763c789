//! IBKR scanner answers on arbitrary JSON: a list of hits or an error,
//! never a panic; every hit names a symbol and a positive conid.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use skim_asx::ibkr::market;

fuzz_target!(|data: &[u8]| {
    let Ok(answer) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let Ok(hits) = market::parse_scan_results(&answer) else {
        return;
    };
    for hit in hits {
        assert!(
            !hit.symbol.trim().is_empty(),
            "a hit without a symbol: {hit:?}"
        );
        assert!(hit.conid > 0, "a hit with conid {}", hit.conid);
    }
});
