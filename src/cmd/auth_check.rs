//! `skim auth-check`: each step of signing in, timed, with the cause and
//! fix of the first one that fails, and a warning when the key files are
//! due for rotation (a warning only: the exit status stays that of the
//! sign-in).

use std::time::Instant;

use anyhow::Result;
use chrono::{DateTime, Utc};
use clap::Args;
use serde::Serialize;
use skim_asx::ibkr::connect::{self, KeyAge};
use skim_asx::ibkr::{Client, TokenSource};
use skim_asx::{Ctx, error, output};

#[derive(Debug, Args)]
pub struct AuthCheckArgs {
    /// Make a new live session token instead of reusing the cached one
    #[arg(long)]
    pub fresh: bool,
}

#[derive(Serialize)]
struct Report {
    ok: bool,
    account: Option<String>,
    paper: Option<bool>,
    lst_cached: Option<bool>,
    lst_expires_at: Option<DateTime<Utc>>,
    steps: Vec<Step>,
    /// `SKIM_KEY_ROTATION_DAYS`, so scripts can tell how `keys` was judged.
    key_rotation_days: u32,
    /// Empty when the key files did not load.
    keys: Vec<KeyFile>,
    /// Problems that do not stop skim from signing in, such as keys due for
    /// rotation; each is also logged as a warning on stderr.
    warnings: Vec<String>,
}

#[derive(Serialize)]
struct KeyFile {
    path: String,
    modified_at: DateTime<Utc>,
    age_days: i64,
    rotation_due: bool,
}

impl From<&KeyAge> for KeyFile {
    fn from(age: &KeyAge) -> KeyFile {
        KeyFile {
            path: age.path.display().to_string(),
            modified_at: age.modified_at,
            age_days: age.age_days,
            rotation_due: age.is_due,
        }
    }
}

#[derive(Serialize)]
struct Step {
    name: &'static str,
    ok: bool,
    ms: u64,
    detail: String,
    hint: Option<String>,
}

pub fn run(ctx: &Ctx, args: AuthCheckArgs) -> Result<()> {
    let mut report = Report {
        ok: false,
        account: None,
        paper: None,
        lst_cached: None,
        lst_expires_at: None,
        steps: Vec::new(),
        key_rotation_days: ctx.config.key_rotation_days,
        keys: Vec::new(),
        warnings: Vec::new(),
    };
    let outcome = check(ctx, &args, &mut report);
    report.ok = outcome.is_ok();
    if ctx.json {
        output::print_json(&report)?;
    } else {
        let mut table = output::table(["step", "result", "ms", "detail"]);
        for step in &report.steps {
            let result = if step.ok { "ok" } else { "FAILED" };
            table.add_row(vec![
                step.name.to_owned(),
                result.into(),
                step.ms.to_string(),
                step.detail.clone(),
            ]);
        }
        output::print_text(&table.to_string())?;
        if report.ok {
            output::print_text("skim can sign in to IBKR and use the account.")?;
        }
    }
    outcome
}

/// Runs the steps in order, recording each, and stops at the first failure.
fn check(ctx: &Ctx, args: &AuthCheckArgs, report: &mut Report) -> Result<()> {
    let oauth = step(report, "configuration", || {
        let oauth = ctx.config.oauth()?;
        let detail = format!(
            "consumer key {}, realm {}, IBKR at {}",
            oauth.consumer_key, oauth.realm, ctx.config.ibkr_base_url
        );
        Ok((oauth, detail))
    })?;
    let rotation_days = ctx.config.key_rotation_days;
    let (keys, ages) = step(report, "key files", || {
        let keys = connect::load_keys(&oauth)?;
        let ages = connect::key_ages(&keys, ctx.now(), rotation_days)?;
        let detail = format!(
            "{} and {} load, mode 0600; {}",
            keys.signature_path.display(),
            keys.encryption_path.display(),
            describe_ages(&ages, rotation_days)
        );
        Ok(((keys, ages), detail))
    })?;
    for age in &ages {
        if let Some(warning) = age.warning(rotation_days) {
            log::warn!("{warning}");
            report.warnings.push(warning);
        }
    }
    report.keys = ages.iter().map(KeyFile::from).collect();
    let creds = step(report, "access token secret", || {
        let creds = connect::credentials(&oauth, keys)?;
        let detail = format!(
            "decrypts with private_encryption.pem ({} bytes)",
            creds.secret_len()
        );
        Ok((creds, detail))
    })?;
    let client = Client::new(creds, connect::options(&ctx.config))?;
    step(report, "live session token", || {
        let source = client.ensure_token(args.fresh)?;
        let (expires_at, _) = client.token_status().expect("a token was just ensured");
        let how = match source {
            TokenSource::Cached => "reused the cached token",
            TokenSource::Fresh => "handshake done and validated",
        };
        Ok((
            (),
            format!("{how}; valid until {}", expires_at.to_rfc3339()),
        ))
    })?;
    if let Some((expires_at, source)) = client.token_status() {
        report.lst_cached = Some(source == TokenSource::Cached);
        report.lst_expires_at = Some(expires_at);
    }
    let account = step(report, "brokerage session", || {
        let account = client.open_account()?;
        Ok((
            account,
            "authenticated and connected; /iserver/accounts primed".to_owned(),
        ))
    })?;
    report.account = Some(account.id.clone());
    report.paper = Some(account.paper);
    step(report, "account", || {
        let kind = if account.paper { "paper" } else { "live" };
        let detail = format!("{} ({kind})", account.id);
        client.check_account(&account)?;
        Ok(((), detail))
    })
}

/// The key files' ages for the step's detail, e.g. "12 days old" or
/// "200 and 12 days old; due for rotation (older than 180 days)".
fn describe_ages(ages: &[KeyAge], rotation_days: u32) -> String {
    let days: Vec<i64> = ages.iter().map(|age| age.age_days).collect();
    let mut text = match days.as_slice() {
        [a, b] if a != b => format!("{a} and {b} days old"),
        [a, ..] => format!("{a} days old"),
        [] => "age unknown".to_owned(),
    };
    if ages.iter().any(|age| age.is_due) {
        text.push_str(&format!(
            "; due for rotation (older than {rotation_days} days)"
        ));
    }
    text
}

/// Times `run` and records it as a step named `name`.
fn step<T>(
    report: &mut Report,
    name: &'static str,
    run: impl FnOnce() -> Result<(T, String)>,
) -> Result<T> {
    let started = Instant::now();
    let result = run();
    let ms = started.elapsed().as_millis() as u64;
    match result {
        Ok((value, detail)) => {
            report.steps.push(Step {
                name,
                ok: true,
                ms,
                detail,
                hint: None,
            });
            Ok(value)
        }
        Err(err) => {
            let hint = error::hint(&err).map(str::to_owned);
            report.steps.push(Step {
                name,
                ok: false,
                ms,
                detail: format!("{err:#}"),
                hint,
            });
            Err(err)
        }
    }
}
