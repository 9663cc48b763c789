//! IBKR's Client Portal Web API over first-party OAuth 1.0a: signing
//! ([`sign`]), pacing ([`pacing`]), the session-aware client ([`client`]),
//! building one from settings ([`connect`]) and the account's balances
//! ([`portfolio`]).

pub mod client;
pub mod connect;
pub mod fields;
pub mod history;
pub mod market;
pub mod orders;
pub mod pacing;
pub mod portfolio;
pub mod sign;

pub use client::{Account, Client, ClientOptions, Credentials, TokenSource};
