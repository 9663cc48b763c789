//! skim's state: one SQLite file, its schema and its transactions.
//!
//! The store owns opening the database (creating its folder), the schema
//! (an append-only list of migrations tracked by `PRAGMA user_version`), the
//! `runs` log every command writes, and a small `settings` table. What the
//! rows mean belongs to the modules that write them: the outbox, the scan,
//! the trade commands. Every change goes through [`Store::transaction`], so a
//! failure half-way leaves nothing behind.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, Transaction};
use rusqlite::{TransactionBehavior, params};
use serde::Serialize;

use crate::error;

/// The schema, one SQL batch per version: entry `i` moves the database from
/// `user_version` `i` to `i + 1`.
///
/// Entries are never edited or removed once released, because databases in
/// the field have already run them; a schema change is a new entry appended
/// at the end (a one-line change to this list). All pending entries run in one
/// transaction, so a failing migration leaves the database as it was.
pub const MIGRATIONS: &[&str] = &[
    // 1: the command log, key/value settings (the trading halt flag lives
    // here) and the notification outbox.
    "CREATE TABLE runs (
         id INTEGER PRIMARY KEY,
         command TEXT NOT NULL,
         started_at TEXT NOT NULL,
         finished_at TEXT,
         outcome TEXT,
         exit_code INTEGER,
         message TEXT
     );
     CREATE TABLE settings (
         key TEXT PRIMARY KEY,
         value TEXT NOT NULL,
         updated_at TEXT NOT NULL
     );
     CREATE TABLE outbox (
         id INTEGER PRIMARY KEY,
         created_at TEXT NOT NULL,
         message TEXT NOT NULL,
         status TEXT NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'sent')),
         parts_sent INTEGER NOT NULL DEFAULT 0,
         discord_message_ids TEXT NOT NULL DEFAULT '[]',
         attempts INTEGER NOT NULL DEFAULT 0,
         last_attempt_at TEXT,
         last_error TEXT,
         sent_at TEXT
     );
     CREATE INDEX outbox_by_status ON outbox (status, id);",
    // 2: the scan's candidates, one row per trading date and ticker, and one
    // row per scanned date (so a re-run knows it is one).
    "CREATE TABLE candidates (
         date TEXT NOT NULL,
         ticker TEXT NOT NULL,
         conid INTEGER NOT NULL,
         gap_pct REAL NOT NULL,
         prior_close REAL NOT NULL,
         open REAL NOT NULL,
         last REAL NOT NULL,
         volume INTEGER NOT NULL,
         headline TEXT NOT NULL,
         announced_at TEXT NOT NULL,
         pdf_url TEXT NOT NULL,
         first_seen_at TEXT NOT NULL,
         updated_at TEXT NOT NULL,
         PRIMARY KEY (date, ticker)
     );
     CREATE TABLE scans (
         date TEXT PRIMARY KEY,
         first_at TEXT NOT NULL,
         last_at TEXT NOT NULL,
         runs INTEGER NOT NULL
     );",
    // 3: trading. A position per (entry date, ticker); every order skim
    // means to send is journaled here, keyed by its deterministic client
    // order id, before it is sent; every execution skim has accounted for
    // is kept once, so replaying the broker's list changes nothing.
    "CREATE TABLE positions (
         id INTEGER PRIMARY KEY,
         entry_date TEXT NOT NULL,
         ticker TEXT NOT NULL,
         conid INTEGER NOT NULL,
         state TEXT NOT NULL
             CHECK (state IN ('entering', 'open', 'half', 'closed', 'cancelled')),
         planned_qty INTEGER NOT NULL,
         planned_entry REAL NOT NULL,
         or_high REAL NOT NULL,
         or_low REAL NOT NULL,
         stop_price REAL NOT NULL,
         quantity INTEGER NOT NULL DEFAULT 0,
         bought INTEGER NOT NULL DEFAULT 0,
         entry_price REAL,
         realized_pnl REAL NOT NULL DEFAULT 0,
         half_date TEXT,
         exit_sma REAL,
         exit_reason TEXT,
         filled_at TEXT,
         closed_at TEXT,
         created_at TEXT NOT NULL,
         updated_at TEXT NOT NULL,
         UNIQUE (entry_date, ticker)
     );
     CREATE TABLE orders (
         coid TEXT PRIMARY KEY,
         position_id INTEGER NOT NULL REFERENCES positions (id),
         purpose TEXT NOT NULL
             CHECK (purpose IN ('entry', 'stop', 'half', 'exit', 'flatten')),
         parent_coid TEXT REFERENCES orders (coid),
         conid INTEGER NOT NULL,
         side TEXT NOT NULL CHECK (side IN ('BUY', 'SELL')),
         order_type TEXT NOT NULL,
         tif TEXT NOT NULL,
         quantity INTEGER NOT NULL CHECK (quantity > 0),
         price REAL,
         aux_price REAL,
         order_id TEXT UNIQUE,
         state TEXT NOT NULL CHECK (state IN ('intent', 'unknown', 'working', 'filled',
             'cancelled', 'rejected', 'refused', 'lost')),
         filled INTEGER NOT NULL DEFAULT 0,
         avg_price REAL,
         note TEXT,
         created_at TEXT NOT NULL,
         updated_at TEXT NOT NULL
     );
     CREATE INDEX orders_by_position ON orders (position_id);
     CREATE TABLE fills (
         execution_id TEXT PRIMARY KEY,
         coid TEXT NOT NULL REFERENCES orders (coid),
         side TEXT NOT NULL,
         quantity INTEGER NOT NULL,
         price REAL NOT NULL,
         trade_time TEXT NOT NULL,
         recorded_at TEXT NOT NULL
     );",
];

/// How long a statement waits for another skim process's write lock before
/// failing with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// An open skim database. Not shared between threads; each process opens its
/// own, and SQLite's locking (WAL mode, a busy timeout) arbitrates.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

/// The row id of a command's entry in the `runs` table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunId(pub i64);

/// One command's entry in the run log, as [`Store::last_runs`] and
/// [`Store::runs_between`] return it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RunRecord {
    /// The row id, increasing in the order runs were recorded.
    pub id: i64,
    /// The command as typed after `skim`, without flags: `scan`,
    /// `trade enter`, `positions`.
    pub command: String,
    /// When it started, on the market clock (`SKIM_NOW` when set).
    pub started_at: DateTime<Utc>,
    /// When it ended; `None` while it runs, or when it died without
    /// recording its end (killed, power cut).
    pub finished_at: Option<DateTime<Utc>>,
    /// How it ended: `ok`, or the exit status's kind (`failed`, `usage`,
    /// `auth`, `refused`); `None` when it did not record its end.
    pub outcome: Option<String>,
    /// The process exit status, when recorded.
    pub exit_code: Option<u8>,
    /// The one-line error of a failed run, or a short summary.
    pub message: Option<String>,
}

impl RunRecord {
    /// Whether the run recorded its end with exit status 0.
    pub fn is_success(&self) -> bool {
        self.exit_code == Some(0)
    }
}

/// The columns [`RunRecord`] is read from, in its field order.
const RUN_COLUMNS: &str = "id, command, started_at, finished_at, outcome, exit_code, message";

impl Store {
    /// Opens (creating if needed) the database at `path` and brings its
    /// schema up to date.
    ///
    /// The parent folder is created when missing. Errors name the file: a
    /// database whose schema is newer than this binary or a file that is not
    /// a SQLite database are usage errors (exit 2) with a hint; a file or
    /// folder that cannot be written is a failure (exit 1) with a hint.
    pub fn open(path: &Path) -> anyhow::Result<Store> {
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|err| {
                error::failure(format!(
                    "failed to create database folder {} for {}: {err}",
                    dir.display(),
                    path.display()
                ))
                .hint("set SKIM_DB to a file in a folder skim can write")
            })?;
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn =
            Connection::open_with_flags(path, flags).map_err(|err| explain(path, err, "open"))?;
        let store = Store {
            conn,
            path: path.to_path_buf(),
        };
        store
            .configure()
            .map_err(|err| explain(path, err, "open"))?;
        store.migrate()?;
        Ok(store)
    }

    /// The file this store was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection, for reads. Writes go through [`Store::transaction`].
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The schema version recorded in the file (`PRAGMA user_version`).
    pub fn schema_version(&self) -> anyhow::Result<u32> {
        let version: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(|err| explain(&self.path, err, "read"))?;
        Ok(u32::try_from(version).unwrap_or(u32::MAX))
    }

    /// Runs `change` inside one write transaction and commits it when
    /// `change` returns `Ok`; on `Err` (or a panic) everything it did is rolled
    /// back and the error returned. The transaction takes the write lock at
    /// the start (`BEGIN IMMEDIATE`), so two processes never deadlock
    /// upgrading read locks. Transactions do not nest: calling this from
    /// inside `change` fails.
    pub fn transaction<T>(
        &self,
        change: impl FnOnce(&Transaction<'_>) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let tx = Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)
            .map_err(|err| explain(&self.path, err, "write"))?;
        let value = change(&tx)?;
        tx.commit()
            .map_err(|err| explain(&self.path, err, "write"))?;
        Ok(value)
    }

    /// Records that `command` started at `started_at`; pair with
    /// [`Store::finish_run`].
    pub fn start_run(&self, command: &str, started_at: DateTime<Utc>) -> anyhow::Result<RunId> {
        self.transaction(|tx| {
            tx.execute(
                "INSERT INTO runs (command, started_at) VALUES (?1, ?2)",
                params![command, timestamp(started_at)],
            )?;
            Ok(RunId(tx.last_insert_rowid()))
        })
        .with_context(|| format!("failed to record the start of {command}"))
    }

    /// Records how run `id` ended. `outcome` is a short word (`ok`,
    /// `skipped`, `failed`, `refused`), `exit_code` the process status and
    /// `message` a one-line summary or the error text; callers must pass text
    /// that holds no secret. Finishing an unknown run is an error.
    pub fn finish_run(
        &self,
        id: RunId,
        finished_at: DateTime<Utc>,
        outcome: &str,
        exit_code: u8,
        message: Option<&str>,
    ) -> anyhow::Result<()> {
        self.transaction(|tx| {
            let changed = tx.execute(
                "UPDATE runs SET finished_at = ?2, outcome = ?3, exit_code = ?4, message = ?5
                 WHERE id = ?1",
                params![id.0, timestamp(finished_at), outcome, exit_code, message],
            )?;
            anyhow::ensure!(changed == 1, "no run with id {}", id.0);
            Ok(())
        })
        .with_context(|| format!("failed to record the end of run {}", id.0))
    }

    /// The latest run of each command that has run at least once, ordered by
    /// command name. "Latest" is by start time on the market clock, then by
    /// the order recorded, so a replay with `SKIM_NOW` in the past does not
    /// hide today's runs.
    pub fn last_runs(&self) -> anyhow::Result<Vec<RunRecord>> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM (
                 SELECT *, row_number() OVER (
                     PARTITION BY command ORDER BY started_at DESC, id DESC
                 ) AS latest
                 FROM runs
             ) WHERE latest = 1 ORDER BY command"
        );
        self.query_runs(&sql, [])
            .with_context(|| format!("failed to read the run log from {}", self.path.display()))
    }

    /// Every run that started at or after `from` and before `to`, oldest
    /// first. An empty or inverted interval gives an empty list.
    pub fn runs_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> anyhow::Result<Vec<RunRecord>> {
        // Stored times share one fixed-width UTC format, so comparing the
        // text compares the instants.
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE started_at >= ?1 AND started_at < ?2
             ORDER BY started_at, id"
        );
        self.query_runs(&sql, params![timestamp(from), timestamp(to)])
            .with_context(|| format!("failed to read the run log from {}", self.path.display()))
    }

    fn query_runs(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> anyhow::Result<Vec<RunRecord>> {
        let mut stmt = self.conn.prepare(sql)?;
        let rows = stmt
            .query_map(params, |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, Option<String>>(3)?,
                    row.get::<_, Option<String>>(4)?,
                    row.get::<_, Option<i64>>(5)?,
                    row.get::<_, Option<String>>(6)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut runs = Vec::with_capacity(rows.len());
        for (id, command, started, finished, outcome, code, message) in rows {
            let bad = |column: &str| format!("run {id} in the run log has a bad {column}");
            runs.push(RunRecord {
                id,
                command,
                started_at: parse_timestamp(&started).with_context(|| bad("started_at"))?,
                finished_at: finished
                    .as_deref()
                    .map(parse_timestamp)
                    .transpose()
                    .with_context(|| bad("finished_at"))?,
                outcome,
                exit_code: code
                    .map(u8::try_from)
                    .transpose()
                    .with_context(|| bad("exit_code"))?,
                message,
            });
        }
        Ok(runs)
    }

    /// The value stored under `key` in `settings`, if any.
    pub fn setting(&self, key: &str) -> anyhow::Result<Option<String>> {
        self.conn
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |row| {
                row.get(0)
            })
            .optional()
            .with_context(|| format!("failed to read setting {key} from {}", self.path.display()))
    }

    /// Stores `value` under `key`, replacing any previous value.
    pub fn set_setting(&self, key: &str, value: &str, now: DateTime<Utc>) -> anyhow::Result<()> {
        self.transaction(|tx| {
            tx.execute(
                "INSERT INTO settings (key, value, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (key) DO UPDATE SET value = ?2, updated_at = ?3",
                params![key, value, timestamp(now)],
            )?;
            Ok(())
        })
        .with_context(|| format!("failed to store setting {key}"))
    }

    /// Removes `key` from `settings`; removing a missing key is not an error.
    pub fn delete_setting(&self, key: &str) -> anyhow::Result<()> {
        self.transaction(|tx| {
            tx.execute("DELETE FROM settings WHERE key = ?1", [key])?;
            Ok(())
        })
        .with_context(|| format!("failed to delete setting {key}"))
    }

    fn configure(&self) -> rusqlite::Result<()> {
        self.conn.busy_timeout(BUSY_TIMEOUT)?;
        // SQLite silently opens a write-protected file read-only; every later
        // write would then fail with a vaguer message, so refuse up front.
        if self.conn.is_readonly(rusqlite::MAIN_DB)? {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_READONLY),
                None,
            ));
        }
        // journal_mode answers with the mode now in force; a file that is not
        // a database fails here, on its first read.
        let mode: String = self
            .conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            log::warn!(
                "database {} stays in {mode} journal mode",
                self.path.display()
            );
        }
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        self.conn.pragma_update(None, "foreign_keys", "ON")?;
        Ok(())
    }

    fn migrate(&self) -> anyhow::Result<()> {
        let known = MIGRATIONS.len();
        self.transaction(|tx| {
            let version: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
            let version = usize::try_from(version).unwrap_or(usize::MAX);
            if version > known {
                return Err(error::usage(format!(
                    "database {} has schema version {version}, newer than this skim \
                     understands ({known})",
                    self.path.display()
                ))
                .hint("upgrade skim, or set SKIM_DB to another database file")
                .into());
            }
            for (index, sql) in MIGRATIONS.iter().enumerate().skip(version) {
                tx.execute_batch(sql).with_context(|| {
                    format!(
                        "failed to apply schema migration {} to {}",
                        index + 1,
                        self.path.display()
                    )
                })?;
            }
            if version < known {
                tx.pragma_update(None, "user_version", known as i64)?;
                log::debug!(
                    "migrated database {} from schema {version} to {known}",
                    self.path.display()
                );
            }
            Ok(())
        })
    }
}

/// Formats an instant the way every table stores it: RFC 3339, UTC, `Z`.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Reads an instant stored by [`timestamp`] (any RFC 3339 form is taken).
pub fn parse_timestamp(text: &str) -> anyhow::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&Utc))
        .with_context(|| format!("{text:?} is not an RFC 3339 time"))
}

/// Turns a SQLite error on `path` into one that says what is wrong with the
/// file and how to fix it.
fn explain(path: &Path, err: rusqlite::Error, action: &str) -> anyhow::Error {
    let file = path.display();
    // The exit status travels in a `Coded` at the root of the chain, so the
    // SQLite text joins its message rather than hanging below it.
    match err.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => error::usage(format!(
            "database {file} is corrupt or not a SQLite database: {err}"
        ))
        .hint("move the file aside (skim then starts a new one) or fix SKIM_DB")
        .into(),
        Some(
            ErrorCode::ReadOnly
            | ErrorCode::CannotOpen
            | ErrorCode::PermissionDenied
            | ErrorCode::SystemIoFailure,
        ) => error::failure(format!("database {file} cannot be written: {err}"))
            .hint("check the permissions of the file and its folder, or set SKIM_DB")
            .into(),
        _ => anyhow::Error::new(err).context(format!("failed to {action} database {file}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ExitKind, exit_kind, hint};
    use std::os::unix::fs::PermissionsExt;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-03T09:30:00+11:00")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn table_names(store: &Store) -> Vec<String> {
        let mut stmt = store
            .connection()
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap();
        stmt.query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn creates_folder_and_applies_migrations_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data").join("skim.db");
        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as u32);
        assert_eq!(
            table_names(&store),
            [
                "candidates",
                "fills",
                "orders",
                "outbox",
                "positions",
                "runs",
                "scans",
                "settings"
            ]
        );
        let mode: String = store
            .connection()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let keys: i64 = store
            .connection()
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        assert_eq!(keys, 1);
        store.set_setting("halted", "true", now()).unwrap();
        drop(store);

        // Reopening must not re-run migration 1 (its CREATE TABLE would fail)
        // nor lose data.
        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as u32);
        assert_eq!(store.setting("halted").unwrap().as_deref(), Some("true"));
    }

    #[test]
    fn refuses_a_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("skim.db");
        drop(Store::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", MIGRATIONS.len() as i64 + 1)
            .unwrap();
        drop(conn);

        let err = Store::open(&path).err().unwrap();
        assert_eq!(exit_kind(&err), ExitKind::Usage);
        let text = format!("{err:#}");
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains("newer than this skim"), "{text}");
        assert!(hint(&err).unwrap().contains("upgrade skim"));
    }

    #[test]
    fn refuses_a_garbage_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("skim.db");
        std::fs::write(&path, "this is a text file, not a database\n".repeat(200)).unwrap();

        let err = Store::open(&path).err().unwrap();
        assert_eq!(exit_kind(&err), ExitKind::Usage);
        let text = format!("{err:#}");
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains("corrupt or not a SQLite database"), "{text}");
        assert!(hint(&err).is_some());
    }

    #[test]
    fn refuses_a_path_whose_folder_is_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("data");
        std::fs::write(&blocker, "").unwrap();
        let err = Store::open(&blocker.join("skim.db")).err().unwrap();
        assert_eq!(exit_kind(&err), ExitKind::Failure);
        assert!(format!("{err:#}").contains(&blocker.display().to_string()));
        assert!(hint(&err).unwrap().contains("SKIM_DB"));
    }

    /// Makes `path` unwritable. Permission bits do not stop root, so when they
    /// are not enough the immutable attribute is set too; returns whether the
    /// OS now refuses writes, and undoes it on drop.
    struct Unwritable(PathBuf, bool);

    impl Unwritable {
        fn new(path: &Path) -> Unwritable {
            let mode = if path.is_dir() { 0o555 } else { 0o444 };
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
            let mut guard = Unwritable(path.to_path_buf(), false);
            if guard.is_writable() {
                let status = std::process::Command::new("chattr")
                    .arg("+i")
                    .arg(path)
                    .status();
                guard.1 = status.is_ok_and(|s| s.success());
            }
            guard
        }

        fn is_writable(&self) -> bool {
            if self.0.is_dir() {
                let probe = self.0.join("probe");
                let ok = std::fs::write(&probe, "").is_ok();
                let _ = std::fs::remove_file(probe);
                ok
            } else {
                std::fs::OpenOptions::new()
                    .append(true)
                    .open(&self.0)
                    .is_ok()
            }
        }
    }

    impl Drop for Unwritable {
        fn drop(&mut self) {
            if self.1 {
                let _ = std::process::Command::new("chattr")
                    .arg("-i")
                    .arg(&self.0)
                    .status();
            }
            let _ = std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(0o755));
        }
    }

    fn assert_unwritable_error(err: anyhow::Error, path: &Path) {
        assert_eq!(exit_kind(&err), ExitKind::Failure, "{err:#}");
        let text = format!("{err:#}");
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains("cannot be written"), "{text}");
        assert!(hint(&err).unwrap().contains("permissions"));
    }

    #[test]
    fn refuses_a_read_only_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("skim.db");
        drop(Store::open(&path).unwrap());
        let guard = Unwritable::new(&path);
        if guard.is_writable() {
            eprintln!(
                "skipped: this user can write {} despite its mode",
                path.display()
            );
            return;
        }
        assert_unwritable_error(Store::open(&path).err().unwrap(), &path);
    }

    #[test]
    fn refuses_a_read_only_folder() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("data");
        std::fs::create_dir(&folder).unwrap();
        let path = folder.join("skim.db");
        let guard = Unwritable::new(&folder);
        if guard.is_writable() {
            eprintln!(
                "skipped: this user can write {} despite its mode",
                folder.display()
            );
            return;
        }
        assert_unwritable_error(Store::open(&path).err().unwrap(), &path);
    }

    #[test]
    fn transaction_rolls_back_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("skim.db")).unwrap();
        let result: anyhow::Result<()> = store.transaction(|tx| {
            tx.execute(
                "INSERT INTO settings (key, value, updated_at) VALUES ('halted', 'true', 'x')",
                [],
            )?;
            anyhow::bail!("broker said no")
        });
        assert_eq!(result.unwrap_err().to_string(), "broker said no");
        assert_eq!(store.setting("halted").unwrap(), None);

        // The connection is usable again: the failed transaction did not leak.
        store.set_setting("halted", "false", now()).unwrap();
        assert_eq!(store.setting("halted").unwrap().as_deref(), Some("false"));
        store.delete_setting("halted").unwrap();
        assert_eq!(store.setting("halted").unwrap(), None);
    }

    #[test]
    fn runs_record_start_and_end() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("skim.db")).unwrap();
        let id = store.start_run("scan", now()).unwrap();
        let later = now() + chrono::Duration::seconds(3);
        store
            .finish_run(id, later, "skipped", 0, Some("ASX closed today"))
            .unwrap();
        let row: (String, String, String, String, u8, String) = store
            .connection()
            .query_row(
                "SELECT command, started_at, finished_at, outcome, exit_code, message
                 FROM runs WHERE id = ?1",
                [id.0],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                },
            )
            .unwrap();
        assert_eq!(
            row,
            (
                "scan".to_string(),
                "2026-12-02T22:30:00.000Z".to_string(),
                "2026-12-02T22:30:03.000Z".to_string(),
                "skipped".to_string(),
                0,
                "ASX closed today".to_string()
            )
        );
        assert!(
            store
                .finish_run(RunId(id.0 + 100), later, "ok", 0, None)
                .is_err()
        );
    }

    #[test]
    fn last_runs_keep_the_latest_start_of_each_command() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("skim.db")).unwrap();
        let at = |minutes: i64| now() + chrono::Duration::minutes(minutes);
        let scan = store.start_run("scan", at(0)).unwrap();
        store.finish_run(scan, at(1), "ok", 0, None).unwrap();
        let manage = store.start_run("trade manage", at(5)).unwrap();
        store
            .finish_run(
                manage,
                at(6),
                "auth",
                3,
                Some("IBKR rejected the consumer key"),
            )
            .unwrap();
        let later_scan = store.start_run("scan", at(10)).unwrap();
        // Recorded after, but started before: a replay with SKIM_NOW.
        let replay = store.start_run("scan", at(-60)).unwrap();
        store.finish_run(replay, at(-59), "ok", 0, None).unwrap();

        let last = store.last_runs().unwrap();
        let summary: Vec<(&str, i64, Option<u8>)> = last
            .iter()
            .map(|r| (r.command.as_str(), r.id, r.exit_code))
            .collect();
        assert_eq!(
            summary,
            [
                ("scan", later_scan.0, None),
                ("trade manage", manage.0, Some(3))
            ]
        );
        assert_eq!(last[0].finished_at, None, "still running or died");
        assert!(!last[0].is_success());
        assert_eq!(last[1].started_at, at(5));
        assert_eq!(last[1].finished_at, Some(at(6)));
        assert_eq!(last[1].outcome.as_deref(), Some("auth"));
        assert_eq!(
            last[1].message.as_deref(),
            Some("IBKR rejected the consumer key")
        );
    }

    #[test]
    fn runs_between_is_half_open_and_ordered_by_start() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("skim.db")).unwrap();
        assert!(store.last_runs().unwrap().is_empty());
        let at = |minutes: i64| now() + chrono::Duration::minutes(minutes);
        for (command, minute) in [("positions", 30), ("scan", 0), ("trade enter", 10)] {
            let id = store.start_run(command, at(minute)).unwrap();
            store.finish_run(id, at(minute + 1), "ok", 0, None).unwrap();
        }
        let commands = |from, to| -> Vec<String> {
            store
                .runs_between(at(from), at(to))
                .unwrap()
                .into_iter()
                .map(|r| r.command)
                .collect()
        };
        assert_eq!(commands(0, 31), ["scan", "trade enter", "positions"]);
        assert_eq!(commands(0, 30), ["scan", "trade enter"]);
        assert_eq!(commands(1, 10), Vec::<String>::new());
        assert_eq!(commands(31, 0), Vec::<String>::new());
    }

    #[test]
    fn a_corrupt_run_row_is_an_error_naming_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("skim.db")).unwrap();
        store
            .connection()
            .execute(
                "INSERT INTO runs (command, started_at) VALUES ('scan', 'yesterday')",
                [],
            )
            .unwrap();
        let err = store.last_runs().unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("run 1 in the run log has a bad started_at"),
            "{text}"
        );
        assert!(text.contains("\"yesterday\""), "{text}");
    }
}
