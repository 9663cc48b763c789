//! The command line, as clap types only; `cmd/` turns them into calls on
//! the core.
//!
//! Habits: help lines are sentence case without a final period; every
//! value has an uppercase `value_name`; flags shared by every command live
//! in [`GlobalArgs`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::cmd;

/// Trade an ASX opening-gap strategy through Interactive Brokers, unattended
#[derive(Debug, Parser)]
#[command(name = "skim", version, max_term_width = 100)]
#[command(after_help = "Settings come from the environment and .env; see the README.")]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Flags every subcommand takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Print exactly one JSON document on stdout
    #[arg(long, global = true)]
    pub json: bool,

    /// Log more on stderr (-v info, -vv debug); RUST_LOG also works
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Read settings from PATH instead of ./.env (real environment variables still win)
    #[arg(long, value_name = "PATH", global = true)]
    pub env_file: Option<PathBuf>,

    /// SQLite database file [env: SKIM_DB] [default: ./data/skim.db]
    #[arg(long, value_name = "PATH", global = true)]
    pub db: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make the key files IBKR's self-service OAuth portal asks for
    KeysGen(cmd::keys_gen::KeysGenArgs),
    /// Prove, step by step, that skim can sign in to IBKR, and say why not
    AuthCheck(cmd::auth_check::AuthCheckArgs),
    /// Find today's gap-up stocks with a price-sensitive ASX announcement
    Scan(cmd::scan::ScanArgs),
    /// Place entries, manage exits, and the kill switch
    Trade(cmd::trade::TradeArgs),
    /// Positions, working orders and P&L, reconciled with the broker
    Positions(cmd::positions::PositionsArgs),
    /// Send a Discord message through the outbox, or deliver what is queued
    Notify(cmd::notify::NotifyArgs),
    /// Write the man pages or shell completions (for packagers; see scripts/install)
    #[command(hide = true)]
    Generate(cmd::generate::GenerateArgs),
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_work_after_the_subcommand() {
        let cli = Cli::try_parse_from(["skim", "auth-check", "--json", "-vv"]).unwrap();
        assert!(cli.global.json);
        assert_eq!(cli.global.verbose, 2);
    }

    /// The skim command lines the checked-in schedules run, each with
    /// where it was found.
    struct Scheduled {
        place: String,
        argv: Vec<String>,
    }

    fn scripts_dir() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts")
    }

    /// Splits `command` (shell text) into the argv of its one skim call.
    /// Schedules keep to plain words, `cd DIR &&` and nothing fancier, so
    /// that this split is what the shell would do.
    fn skim_argv(place: &str, command: &str) -> Vec<String> {
        assert!(
            !command.contains(['\'', '"', '`', '$', '|', '>', '<', '\\']),
            "{place}: keep schedule lines to plain words: {command}"
        );
        let calls: Vec<Vec<&str>> = command
            .split("&&")
            .flat_map(|part| part.split(';'))
            .map(|part| part.split_whitespace().collect::<Vec<_>>())
            .filter(|words| {
                words
                    .first()
                    .is_some_and(|w| *w == "skim" || w.ends_with("/skim"))
            })
            .collect();
        assert_eq!(
            calls.len(),
            1,
            "{place}: expected one skim call in {command}"
        );
        let mut argv = vec!["skim".to_owned()];
        argv.extend(calls[0][1..].iter().map(|w| (*w).to_owned()));
        argv
    }

    fn crontab_commands() -> Vec<Scheduled> {
        let path = scripts_dir().join("crontab");
        let text = std::fs::read_to_string(&path).unwrap();
        let mut zone = None;
        let mut found = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let place = format!("{}:{}", path.display(), n + 1);
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let first = line.split_whitespace().next().unwrap();
            if let Some((name, value)) = first.split_once('=') {
                if name == "CRON_TZ" {
                    zone = Some(value.to_owned());
                }
                continue;
            }
            assert_eq!(
                zone.as_deref(),
                Some("Australia/Sydney"),
                "{place}: a job before CRON_TZ=Australia/Sydney"
            );
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert!(fields.len() > 5, "{place}: not a cron job line");
            assert_eq!(fields[4], "1-5", "{place}: jobs run Monday to Friday");
            found.push(Scheduled {
                argv: skim_argv(&place, &fields[5..].join(" ")),
                place,
            });
        }
        found
    }

    fn systemd_commands() -> Vec<Scheduled> {
        let dir = scripts_dir().join("systemd");
        let mut found = Vec::new();
        let mut timers = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let values = |key: &str| -> Vec<String> {
                text.lines()
                    .filter_map(|line| line.trim().strip_prefix(key))
                    .map(|value| value.trim().to_owned())
                    .collect()
            };
            match path.extension().and_then(|e| e.to_str()) {
                Some("service") => {
                    let starts = values("ExecStart=");
                    assert_eq!(starts.len(), 1, "{}: one ExecStart=", path.display());
                    let place = path.display().to_string();
                    let command = starts[0].trim_start_matches(['-', '@', '+', '!', ':']);
                    found.push(Scheduled {
                        argv: skim_argv(&place, command),
                        place,
                    });
                }
                Some("timer") => {
                    timers += 1;
                    let calendars = values("OnCalendar=");
                    assert!(!calendars.is_empty(), "{}: no OnCalendar=", path.display());
                    for calendar in calendars {
                        assert!(
                            calendar.starts_with("Mon..Fri ")
                                && calendar.ends_with(" Australia/Sydney"),
                            "{}: {calendar} is not weekdays on Sydney time",
                            path.display()
                        );
                    }
                    let unit = values("Unit=");
                    assert_eq!(unit.len(), 1, "{}: one Unit=", path.display());
                    assert!(
                        dir.join(&unit[0]).exists(),
                        "{}: {} does not exist",
                        path.display(),
                        unit[0]
                    );
                }
                _ => panic!(
                    "{}: only .service and .timer files belong here",
                    path.display()
                ),
            }
        }
        assert_eq!(timers, found.len(), "one timer per service");
        found
    }

    /// A schedule naming a command or flag that does not exist would fail
    /// every morning, unseen; so would one that runs a dry run.
    #[test]
    fn every_scheduled_command_line_parses_and_is_a_real_run() {
        let all: Vec<Scheduled> = crontab_commands()
            .into_iter()
            .chain(systemd_commands())
            .collect();
        assert!(
            all.len() >= 8,
            "found too few schedule lines: {}",
            all.len()
        );
        for job in &all {
            let cli = Cli::try_parse_from(&job.argv).unwrap_or_else(|err| {
                panic!("{}: {:?} does not parse:\n{err}", job.place, job.argv)
            });
            let name = cmd::logged_name(&cli.command);
            assert!(
                name.is_some_and(cmd::is_scheduled),
                "{}: {:?} would not be logged as a scheduled run",
                job.place,
                job.argv
            );
        }
    }

    #[test]
    fn cron_and_systemd_schedule_the_same_commands() {
        let commands = |jobs: Vec<Scheduled>| {
            let mut lines: Vec<String> = jobs.into_iter().map(|job| job.argv.join(" ")).collect();
            lines.sort();
            lines.dedup();
            lines
        };
        let cron = commands(crontab_commands());
        assert_eq!(
            cron,
            [
                "skim positions --notify",
                "skim scan",
                "skim trade enter",
                "skim trade manage"
            ]
        );
        assert_eq!(commands(systemd_commands()), cron);
    }

    #[test]
    fn the_schedule_check_rejects_what_it_cannot_read() {
        let weird = std::panic::catch_unwind(|| skim_argv("x", "skim scan > /tmp/out"));
        assert!(weird.is_err());
        let two = std::panic::catch_unwind(|| skim_argv("x", "skim scan && skim trade enter"));
        assert!(two.is_err());
        assert_eq!(
            skim_argv("x", "cd /var/lib/skim && /usr/local/bin/skim trade manage"),
            ["skim", "trade", "manage"]
        );
        assert!(Cli::try_parse_from(["skim", "trade", "exit"]).is_err());
    }
}
