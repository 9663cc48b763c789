//! skim's core: everything but the command line. Nothing here imports clap;
//! the binary's `cmd/` modules turn arguments into calls on these modules.

pub mod dh;
pub mod error;
pub mod keys;
pub mod secret;
