//! IBKR's Client Portal Web API over first-party OAuth 1.0a: signing
//! ([`sign`]), pacing ([`pacing`]), the session-aware client ([`client`])
//! and building one from settings ([`connect`]).

pub mod client;
pub mod connect;
pub mod fields;
pub mod history;
pub mod market;
pub mod orders;
pub mod pacing;
pub mod sign;

pub use client::{Account, Client, ClientOptions, Credentials, TokenSource};
