//! One module per subcommand: its clap arguments and a `run` that turns them
//! into calls on the core. This file picks the subcommand and keeps the run
//! log around it.
//!
//! Every command that changes or checks anything records its start and end
//! in the database's `runs` table, so `skim positions` and the after-close
//! summary can tell which scheduled command did not run or failed. Dry runs,
//! `keys-gen` and `generate` leave no trace. The log never fails a command:
//! when the database cannot be opened or written, the command runs anyway
//! and the log is skipped with a message on stderr.

pub mod auth_check;
pub mod generate;
pub mod keys_gen;
pub mod notify;
pub mod positions;
pub mod scan;
pub mod trade;

use std::time::Instant;

use anyhow::Result;
use chrono::{DateTime, Utc};
use skim_asx::config::Overrides;
use skim_asx::discord::{self, Embed, Message};
use skim_asx::error::{self, ExitKind};
use skim_asx::store::{RunId, Store};
use skim_asx::{Ctx, outbox, output};

use crate::cli::{Cli, Command};
use trade::TradeAction;

/// The title of the red notification a rejected login sends.
pub const LOGIN_FAILED_TITLE: &str = "IBKR Login Failed";

/// Run-log messages longer than this are cut; the log keeps one line, the
/// full text is in the command's stderr.
const MAX_MESSAGE_CHARS: usize = 500;

/// Runs the subcommand the user chose, recording it in the run log.
pub fn run(cli: Cli) -> Result<()> {
    let global = cli.global;
    let command = cli.command;
    // Generating pages must not depend on a .env or a database.
    if let Command::Generate(args) = command {
        return generate::run(args);
    }
    let mut overrides = Overrides {
        db: global.db.clone(),
        keys_dir: None,
    };
    if let Command::KeysGen(args) = &command {
        overrides.keys_dir = args.dir.clone();
    }
    let ctx = Ctx::load(global.env_file.as_deref(), &overrides, global.json)?;
    let name = logged_name(&command);
    let log = name.and_then(|name| RunLog::start(&ctx, name));
    let result = dispatch(&ctx, command);
    let store = log.map(|log| log.finish(&result));
    if let (Some(name), Err(err)) = (name, &result)
        && is_scheduled(name)
        && error::exit_kind(err) == ExitKind::Auth
    {
        report_login_failure(&ctx, store.flatten(), name, err);
    }
    result
}

fn dispatch(ctx: &Ctx, command: Command) -> Result<()> {
    match command {
        Command::KeysGen(args) => keys_gen::run(ctx, args),
        Command::AuthCheck(args) => auth_check::run(ctx, args),
        Command::Notify(args) => notify::run(ctx, args),
        Command::Scan(args) => scan::run(ctx, args),
        Command::Trade(args) => trade::run(ctx, args),
        Command::Positions(args) => positions::run(ctx, args),
        Command::Generate(args) => generate::run(args),
    }
}

/// The name the run log records for `command` (the words typed after
/// `skim`, without flags), or `None` for runs that must leave no trace.
pub fn logged_name(command: &Command) -> Option<&'static str> {
    match command {
        Command::KeysGen(_) | Command::Generate(_) => None,
        Command::AuthCheck(_) => Some("auth-check"),
        Command::Notify(_) => Some("notify"),
        Command::Scan(args) => (!args.dry_run).then_some("scan"),
        Command::Positions(_) => Some("positions"),
        Command::Trade(args) => match &args.action {
            TradeAction::Enter(args) => (!args.dry_run).then_some("trade enter"),
            TradeAction::Manage(args) => (!args.dry_run).then_some("trade manage"),
            TradeAction::Halt(_) => Some("trade halt"),
            TradeAction::Resume => Some("trade resume"),
        },
    }
}

/// Whether `name` (from [`logged_name`]) is one of the commands the
/// schedule runs unattended, whose failed login nobody would see otherwise.
pub fn is_scheduled(name: &str) -> bool {
    name == "scan" || name == "positions" || name.starts_with("trade ")
}

/// A started entry in the run log.
struct RunLog {
    store: Store,
    id: RunId,
    started_at: DateTime<Utc>,
    clock: Instant,
}

impl RunLog {
    /// Records the start of `name`, or returns `None` (with a message on
    /// stderr) when the database cannot take it.
    fn start(ctx: &Ctx, name: &str) -> Option<RunLog> {
        let store = match Store::open(&ctx.config.db_path) {
            Ok(store) => store,
            Err(err) => {
                // The command reports the database itself if it needs it.
                log::info!("this run is not logged: {err:#}");
                return None;
            }
        };
        // The market clock, so a replay with SKIM_NOW lands on its day.
        let started_at = ctx.now();
        match store.start_run(name, started_at) {
            Ok(id) => Some(RunLog {
                store,
                id,
                started_at,
                clock: Instant::now(),
            }),
            Err(err) => {
                log::warn!("this run is not logged: {err:#}");
                None
            }
        }
    }

    /// Records how the run ended and hands back the open store, if it is
    /// still usable, for the login-failure notice.
    fn finish(self, result: &Result<()>) -> Option<Store> {
        // SKIM_NOW freezes the market clock; the real elapsed time keeps
        // the recorded duration honest.
        let elapsed = chrono::Duration::from_std(self.clock.elapsed()).unwrap_or_default();
        let finished_at = self.started_at + elapsed;
        let (outcome, code, message) = match result {
            Ok(()) => ("ok", 0, None),
            Err(err) if output::is_broken_pipe(err) => ("ok", 0, None),
            Err(err) => {
                let kind = error::exit_kind(err);
                (outcome_word(kind), kind.code(), Some(one_line(err)))
            }
        };
        match self
            .store
            .finish_run(self.id, finished_at, outcome, code, message.as_deref())
        {
            Ok(()) => Some(self.store),
            Err(err) => {
                log::warn!("{err:#}");
                None
            }
        }
    }
}

fn outcome_word(kind: ExitKind) -> &'static str {
    match kind {
        ExitKind::Failure => "failed",
        ExitKind::Usage => "usage",
        ExitKind::Auth => "auth",
        ExitKind::Refused => "refused",
    }
}

/// The error as one line of at most [`MAX_MESSAGE_CHARS`], webhook tokens
/// redacted.
fn one_line(err: &anyhow::Error) -> String {
    let text = discord::redact(&format!("{err:#}"));
    let mut line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if let Some((cut, _)) = line.char_indices().nth(MAX_MESSAGE_CHARS) {
        line.truncate(cut);
        line.push_str("...");
    }
    line
}

/// Queues the red "IBKR Login Failed" notification and tries to deliver
/// it, so a rejected login during an unattended run is seen the same
/// morning. Problems here are warnings: the command's own error is what
/// the user must see.
fn report_login_failure(ctx: &Ctx, store: Option<Store>, name: &str, err: &anyhow::Error) {
    let store = match store.map_or_else(|| Store::open(&ctx.config.db_path), Ok) {
        Ok(store) => store,
        Err(open_err) => {
            log::warn!("could not queue the login failure notification: {open_err:#}");
            return;
        }
    };
    let now = ctx.now();
    let mut embed = Embed::new(LOGIN_FAILED_TITLE, discord::RED)
        .description(discord::redact(&format!("{err:#}")))
        .field("Command", format!("skim {name}"), true);
    if let Some(hint) = error::hint(err) {
        embed = embed.field("Fix", discord::redact(hint), false);
    }
    let message = Message::embed(embed.timestamp(now));
    if let Err(queue_err) = outbox::enqueue(&store, &message, now) {
        log::warn!("could not queue the login failure notification: {queue_err:#}");
        return;
    }
    match outbox::deliver_with(&store, ctx.config.discord_webhook_url.as_ref(), now) {
        Ok(report) if report.failed > 0 => log::warn!(
            "{} notification(s) not delivered ({}); they stay queued",
            report.failed,
            report.stopped.as_deref().unwrap_or("Discord refused them")
        ),
        Ok(_) => {}
        Err(deliver_err) => log::warn!("could not deliver notifications: {deliver_err:#}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn name_of(args: &[&str]) -> Option<&'static str> {
        logged_name(&Cli::try_parse_from(args).unwrap().command)
    }

    #[test]
    fn the_log_names_commands_as_typed_and_skips_dry_runs() {
        assert_eq!(name_of(&["skim", "scan"]), Some("scan"));
        assert_eq!(name_of(&["skim", "scan", "--dry-run"]), None);
        assert_eq!(name_of(&["skim", "trade", "enter"]), Some("trade enter"));
        assert_eq!(name_of(&["skim", "trade", "enter", "--dry-run"]), None);
        assert_eq!(name_of(&["skim", "trade", "manage"]), Some("trade manage"));
        assert_eq!(name_of(&["skim", "trade", "manage", "--dry-run"]), None);
        assert_eq!(name_of(&["skim", "trade", "halt"]), Some("trade halt"));
        assert_eq!(name_of(&["skim", "trade", "resume"]), Some("trade resume"));
        assert_eq!(
            name_of(&["skim", "positions", "--notify"]),
            Some("positions")
        );
        assert_eq!(name_of(&["skim", "auth-check"]), Some("auth-check"));
        assert_eq!(name_of(&["skim", "notify", "--flush"]), Some("notify"));
        assert_eq!(name_of(&["skim", "keys-gen"]), None);
        assert_eq!(name_of(&["skim", "generate", "man", "out"]), None);
    }

    #[test]
    fn only_unattended_commands_count_as_scheduled() {
        for name in [
            "scan",
            "trade enter",
            "trade manage",
            "trade halt",
            "positions",
        ] {
            assert!(is_scheduled(name), "{name}");
        }
        for name in ["auth-check", "notify"] {
            assert!(!is_scheduled(name), "{name}");
        }
    }

    #[test]
    fn run_log_messages_are_one_redacted_line() {
        let err = anyhow::anyhow!(
            "POST https://discord.com/api/webhooks/123/sekrit-token failed\nsecond line"
        )
        .context("failed to send");
        let line = one_line(&err);
        assert!(!line.contains("sekrit"), "{line}");
        assert!(!line.contains('\n'), "{line}");
        assert!(line.starts_with("failed to send: POST"), "{line}");
        let long = anyhow::anyhow!("{}", "x".repeat(2 * MAX_MESSAGE_CHARS));
        assert_eq!(one_line(&long).chars().count(), MAX_MESSAGE_CHARS + 3);
    }
}
