//! IBKR's Client Portal Web API over first-party OAuth 1.0a: signing
//! ([`sign`]), pacing ([`pacing`]) and the session-aware client
//! ([`client`]).

pub mod client;
pub mod pacing;
pub mod sign;

pub use client::{Account, Client, ClientOptions, Credentials, TokenSource};
