//! IBKR's Client Portal Web API over first-party OAuth 1.0a.

pub mod sign;
