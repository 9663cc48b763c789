//! What trading tells the trader: events found by reconciliation or caused
//! by a command, turned into the guide-style Discord messages.

use chrono::{DateTime, Utc};

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

impl Event {
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
