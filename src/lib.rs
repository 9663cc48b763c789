//! skim's core: everything but the command line. Nothing here imports clap;
//! the binary's `cmd/` modules turn arguments into calls on these modules.

pub mod asx;
pub mod calendar;
pub mod config;
pub mod crashpoint;
pub mod ctx;
pub mod dh;
pub mod discord;
pub mod error;
pub mod fsutil;
pub mod ibkr;
pub mod keys;
pub mod outbox;
pub mod output;
pub mod progress;
pub mod scan;
pub mod secret;
pub mod store;
pub mod ticks;
pub mod trade;

#[cfg(test)]
mod testutil;

pub use ctx::Ctx;
