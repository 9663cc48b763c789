//! The `skim` binary, run as users run it: in a temporary working folder,
//! with a clean environment, against the loopback simulator.

mod auth_check;
mod faults;
mod keys_gen;
mod notify;
mod ops;
mod scan;
mod trade;
mod util;
