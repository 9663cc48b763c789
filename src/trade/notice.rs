//! What trading tells the trader: events found by reconciliation or caused
//! by a command, turned into the guide-style Discord messages.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::discord::{self, Embed, Message};

/// Title of the message a flattened position sends.
pub const FLATTENED_TITLE: &str = "Position Flattened";

/// Something a trader wants to hear about.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// Bracket orders went in.
    EntriesPlaced(Vec<discord::EntryOrder>),
    EntryFilled {
        ticker: String,
        quantity: u64,
        price: f64,
        stop: f64,
    },
    StopHit {
        ticker: String,
        quantity: u64,
        price: f64,
        pnl: f64,
    },
    HalfExit {
        ticker: String,
        quantity: u64,
        price: f64,
        remaining: u64,
        new_stop: f64,
    },
    TrailExit {
        ticker: String,
        quantity: u64,
        price: f64,
        sma: f64,
        pnl: f64,
    },
    Flattened {
        ticker: String,
        quantity: u64,
        price: f64,
        pnl: f64,
    },
    /// skim refused to trade: a halt, a disagreement, an unreviewed question.
    Refused(String),
    /// Something failed.
    Error(String),
}

/// A fill the broker reported and skim recorded, for command output.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Fill {
    pub ticker: String,
    /// `entry filled`, `stop hit`, `half exit`, `trailing exit`, `flattened`.
    pub event: &'static str,
    pub quantity: u64,
    pub price: f64,
    /// Realized P&L of the shares this fill closed, where it closed any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub realized_pnl: Option<f64>,
}

impl Event {
    /// The fill behind this event, if it is one.
    pub fn fill(&self) -> Option<Fill> {
        let fill = |ticker: &String, event, quantity: &u64, price: &f64, pnl: Option<f64>| Fill {
            ticker: ticker.clone(),
            event,
            quantity: *quantity,
            price: *price,
            // Cents, as the positions view reports money; the raw sum of
            // float products carries noise like -182.64000000000016.
            realized_pnl: pnl.map(|p| (p * 100.0).round() / 100.0),
        };
        match self {
            Event::EntryFilled {
                ticker,
                quantity,
                price,
                ..
            } => Some(fill(ticker, "entry filled", quantity, price, None)),
            Event::StopHit {
                ticker,
                quantity,
                price,
                pnl,
            } => Some(fill(ticker, "stop hit", quantity, price, Some(*pnl))),
            Event::HalfExit {
                ticker,
                quantity,
                price,
                ..
            } => Some(fill(ticker, "half exit", quantity, price, None)),
            Event::TrailExit {
                ticker,
                quantity,
                price,
                pnl,
                ..
            } => Some(fill(ticker, "trailing exit", quantity, price, Some(*pnl))),
            Event::Flattened {
                ticker,
                quantity,
                price,
                pnl,
            } => Some(fill(ticker, "flattened", quantity, price, Some(*pnl))),
            Event::EntriesPlaced(_) | Event::Refused(_) | Event::Error(_) => None,
        }
    }

    /// The Discord message for this event.
    pub fn message(&self, at: DateTime<Utc>) -> Message {
        match self {
            Event::EntriesPlaced(orders) => discord::entry_placed(orders, at),
            Event::EntryFilled {
                ticker,
                quantity,
                price,
                stop,
            } => discord::entry_filled(ticker, *quantity, *price, *stop, at),
            Event::StopHit {
                ticker,
                quantity,
                price,
                pnl,
            } => discord::stop_hit(ticker, *quantity, *price, *pnl, at),
            Event::HalfExit {
                ticker,
                quantity,
                price,
                remaining,
                new_stop,
            } => discord::half_exit(ticker, *quantity, *price, *remaining, *new_stop, at),
            Event::TrailExit {
                ticker,
                quantity,
                price,
                sma,
                pnl,
            } => discord::trail_exit(ticker, *quantity, *price, *sma, *pnl, at),
            Event::Flattened {
                ticker,
                quantity,
                price,
                pnl,
            } => {
                let colour = if *pnl < 0.0 {
                    discord::RED
                } else {
                    discord::GREEN
                };
                Message::embed(
                    Embed::new(FLATTENED_TITLE, colour)
                        .description(format!(
                            "{ticker}: all shares sold by `skim trade halt --flatten`"
                        ))
                        .field("Ticker", ticker, true)
                        .field("Quantity", quantity.to_string(), true)
                        .field("Price", format!("${}", discord::format_price(*price)), true)
                        .field("P&L", discord::format_pnl(*pnl), true)
                        .timestamp(at),
                )
            }
            Event::Refused(reason) => discord::trade_refused(reason, at),
            Event::Error(text) => discord::trade_error(text, at),
        }
    }
}
