//! The `skim` binary, run as users run it: in a temporary working folder,
//! with a clean environment, against the loopback simulator.

mod auth_check;
mod bad_input;
mod crash;
mod faults;
mod keys_gen;
mod notify;
mod ops;
mod scan;
mod secrets;
mod trade;
mod util;
