//! skim's core: everything but the command line. Nothing here imports clap;
//! the binary's `cmd/` modules turn arguments into calls on these modules.

pub mod discord;
pub mod error;
pub mod outbox;
pub mod secret;
pub mod store;
