//! IBKR's live orders, executions and positions answers on arbitrary JSON:
//! each parses to rows or an error, never a panic, and what it returns is
//! usable by reconciliation: ids present, conids positive, numbers finite.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use skim_asx::ibkr::orders;

fuzz_target!(|data: &[u8]| {
    let Ok(answer) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    if let Ok(live) = orders::parse_live_orders(&answer) {
        for order in live {
            assert!(!order.order_id.is_empty(), "an order without an id");
            assert!(order.conid > 0, "conid {} accepted", order.conid);
            let numbers = [order.filled, order.remaining, order.total];
            let prices = [order.avg_price, order.price, order.aux_price];
            for n in numbers.into_iter().chain(prices.into_iter().flatten()) {
                assert!(n.is_finite(), "a non-finite number in {order:?}");
            }
        }
    }
    if let Ok(executions) = orders::parse_executions(&answer) {
        for fill in executions {
            assert!(!fill.execution_id.is_empty(), "a fill without an id");
            assert!(fill.conid > 0, "conid {} accepted", fill.conid);
            assert!(fill.size.is_finite() && fill.price.is_finite(), "{fill:?}");
        }
    }
    if let Ok(positions) = orders::parse_positions(&answer) {
        for position in positions {
            assert!(position.conid > 0, "conid {} accepted", position.conid);
            assert!(position.quantity.is_finite(), "{position:?}");
        }
    }
});
