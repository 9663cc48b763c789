//! Trading: the opening-range breakout entries (`enter`), the exits
//! (`manage`), the kill switch (`halt`) and the view of where things stand
//! (`view`), over a journal that makes every order idempotent.
//!
//! The safety rules of the contract live here:
//! - every order is journaled under a deterministic client order id before
//!   it is sent ([`send`]), and never blindly re-sent: after an unclear
//!   outcome the broker is asked for the `cOID` first;
//! - every command reconciles the journal with the broker's live orders,
//!   executions and positions before it acts ([`reconcile`]), and refuses
//!   to trade while they disagree;
//! - one trading process at a time ([`TradeLock`]).

pub mod enter;
pub mod journal;
pub mod manage;
pub mod notice;
pub mod reconcile;
pub mod rules;
pub mod view;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::crashpoint;
use crate::error;
use crate::ibkr::orders::{self, Placement};
use crate::ibkr::{Client, connect};
use crate::store::Store;
use journal::{Order, OrderState};

/// Questions IBKR may ask about an order that the team has reviewed and
/// accepts for skim's orders; any other question declines the order.
///
/// - `o163`: the price is more than a set percentage from the market, which a
///   stop above the range high can be on a quiet stock;
/// - `o10151`: market-order risk, asked for the exits' market orders;
/// - `o10152`, `o10331`: stop-order risk, asked for every stop;
/// - `o383`, `o451`: the order's size or value is above the account's
///   precautionary limit, which skim's own sizing already bounds.
pub const REVIEWED_QUESTIONS: &[&str] = &["o163", "o10151", "o10152", "o10331", "o383", "o451"];

/// The client order id for `purpose` of `ticker` on `date`:
/// `skim-20260302-BHP-entry`. Unique for a day, which covers IBKR's 24-hour
/// uniqueness window, and the same on every run, which makes re-runs find
/// their own orders.
pub fn coid(date: NaiveDate, ticker: &str, purpose: &str) -> String {
    format!("skim-{}-{ticker}-{purpose}", date.format("%Y%m%d"))
}

/// Whether an `order_ref` looks like one of skim's client order ids.
pub fn is_skim_coid(text: &str) -> bool {
    text.starts_with("skim-")
}

/// The lock that keeps two trading commands apart: `skim.lock` beside the
/// database, held (by the operating system, so a killed process releases
/// it) until dropped.
pub struct TradeLock {
    _file: File,
    path: PathBuf,
}

impl TradeLock {
    /// Takes the lock or says who holds it (exit 4).
    pub fn acquire(config: &Config) -> Result<TradeLock> {
        let dir = config.state_dir();
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("failed to create the data folder {}", dir.display()))?;
        let path = dir.join("skim.lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("failed to open the lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                let holder = holder.trim();
                let who = if holder.is_empty() {
                    String::new()
                } else {
                    format!(" (process {holder})")
                };
                return Err(error::refused(format!(
                    "another skim trading command is running{who}; it holds {}",
                    path.display()
                ))
                .hint("wait for it to finish; the lock is released when it exits")
                .into());
            }
            Err(std::fs::TryLockError::Error(err)) => {
                return Err(err).with_context(|| format!("failed to lock {}", path.display()));
            }
        }
        file.set_len(0)?;
        write!(file, "{}", std::process::id())?;
        crate::crashpoint::pause("lock-held");
        Ok(TradeLock { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The kill switch as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Halt {
    pub since: DateTime<Utc>,
    pub reason: Option<String>,
}

/// The halt in force, if any.
pub fn halt_state(store: &Store) -> Result<Option<Halt>> {
    match store.setting(journal::HALT_KEY)? {
        None => Ok(None),
        Some(text) => serde_json::from_str(&text)
            .map(Some)
            .context("the stored halt flag is not valid JSON"),
    }
}

/// Switches the kill switch on (keeping the first `since` if already on).
pub fn set_halt(store: &Store, reason: Option<String>, now: DateTime<Utc>) -> Result<Halt> {
    let halt = match halt_state(store)? {
        Some(existing) => Halt {
            reason: reason.or(existing.reason),
            ..existing
        },
        None => Halt { since: now, reason },
    };
    store.set_setting(journal::HALT_KEY, &serde_json::to_string(&halt)?, now)?;
    Ok(halt)
}

/// Switches the kill switch off; returns whether it was on.
pub fn clear_halt(store: &Store) -> Result<bool> {
    let was = halt_state(store)?.is_some();
    store.delete_setting(journal::HALT_KEY)?;
    Ok(was)
}

/// A connected broker session for one command.
pub struct Broker {
    pub client: Client,
    pub account: String,
}

impl Broker {
    /// Connects (live accounts refused unless allowed) and selects the account.
    pub fn connect(config: &Config) -> Result<Broker> {
        let client = connect::client(config)?;
        let account = client.connect()?;
        Ok(Broker {
            account: account.id.clone(),
            client,
        })
    }
}

/// How sending a journaled order group ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Sent {
    /// IBKR acknowledged every order.
    Placed,
    /// IBKR refused them (an error in a 200, or a 4xx).
    Rejected(String),
    /// skim declined a question IBKR asked.
    Refused(String),
    /// No clear answer, and the order was found at the broker by its `cOID`.
    Found,
    /// No clear answer, and the order was not (yet) visible at the broker:
    /// left `unknown`, to be looked up again before anything is re-sent.
    Unclear(String),
}

/// Sends `group` (one order, or a bracket parent followed by its children),
/// which the caller has already journaled in state `intent` and committed.
/// Records the outcome in the journal.
pub fn send(
    store: &Store,
    broker: &Broker,
    group: &mut [Order],
    now: DateTime<Utc>,
) -> Result<Sent> {
    crashpoint::pause("order-journaled");
    let tickets: Vec<_> = group.iter().map(Order::ticket).collect();
    let outcome = orders::place(
        &broker.client,
        &broker.account,
        &tickets,
        REVIEWED_QUESTIONS,
    );
    crashpoint::pause("order-answered");
    let sent = match outcome {
        Ok(Placement::Placed(acks)) => {
            for (order, ack) in group.iter_mut().zip(acks) {
                order.order_id = Some(ack.order_id);
                order.state = OrderState::Working;
            }
            Sent::Placed
        }
        Ok(Placement::Rejected(text)) => {
            mark(group, OrderState::Rejected, &text);
            Sent::Rejected(text)
        }
        Ok(Placement::Refused { message_ids, text }) => {
            let note = format!(
                "declined unreviewed question {}: {text}",
                message_ids.join(", ")
            );
            mark(group, OrderState::Refused, &note);
            Sent::Refused(note)
        }
        Err(err) if orders::is_unclear(&err) => {
            let note = format!("{err:#}");
            log::warn!(
                "no clear answer placing {}: {note}; looking it up",
                group[0].coid
            );
            mark(group, OrderState::Unknown, &note);
            store.transaction(|tx| {
                group
                    .iter()
                    .try_for_each(|o| journal::save_order(tx, o, now))
            })?;
            let live = orders::live_orders(&broker.client)
                .context("failed to look the order up after an unclear answer")?;
            if reconcile::adopt(group, &live) {
                Sent::Found
            } else {
                Sent::Unclear(note)
            }
        }
        // Not refused by IBKR (a 429, a failed renewal, a local error):
        // the group stays journaled as it was, so the next run looks the
        // cOID up and, not finding it, sends the order then.
        Err(err) if !orders::is_refusal(&err) => {
            return Err(err.context(format!(
                "failed to send order {}; the next run looks it up by cOID",
                group[0].coid
            )));
        }
        Err(err) => {
            let note = format!("{err:#}");
            mark(group, OrderState::Rejected, &note);
            store.transaction(|tx| {
                group
                    .iter()
                    .try_for_each(|o| journal::save_order(tx, o, now))
            })?;
            return Err(err.context(format!("IBKR did not take order {}", group[0].coid)));
        }
    };
    store.transaction(|tx| {
        group
            .iter()
            .try_for_each(|o| journal::save_order(tx, o, now))?;
        crashpoint::pause("order-commit");
        Ok(())
    })?;
    Ok(sent)
}

fn mark(group: &mut [Order], state: OrderState, note: &str) {
    for order in group {
        order.state = state;
        order.note = Some(note.to_owned());
    }
}
