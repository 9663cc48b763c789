//! Client-side pacing, and the pause after a 429.
//!
//! IBKR puts an IP that exceeds its limits into a "penalty box" for 10-15
//! minutes, and repeat offenders may be blocked for good (reference section
//! 6). So skim keeps under the limits itself, and after a 429 it stops all
//! traffic instead of retrying: the pause is written beside the database so
//! the next scheduled run honours it too.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error;
use crate::fsutil;
use crate::progress::StatusLine;

/// Requests per second across all endpoints. The older documentation says
/// 10 for OAuth, the newer 50; the lower one is safe under either.
const GLOBAL_PER_SECOND: usize = 10;

/// Minimum spacing per endpoint, from IBKR's pacing table. Endpoints
/// limited to one call per 15 minutes are cached on disk by their callers
/// instead of waited for.
const PER_ENDPOINT: &[(&str, Duration)] = &[
    ("/iserver/marketdata/snapshot", Duration::from_millis(100)),
    ("/iserver/scanner/run", Duration::from_secs(1)),
    ("/iserver/account/orders", Duration::from_secs(5)),
    ("/iserver/account/trades", Duration::from_secs(5)),
    ("/iserver/account/pnl/partitioned", Duration::from_secs(5)),
    ("/portfolio/accounts", Duration::from_secs(5)),
    ("/portfolio/subaccounts", Duration::from_secs(5)),
    ("/tickle", Duration::from_secs(1)),
    ("/fyi/", Duration::from_secs(1)),
];

/// The first 429 pauses this long; one soon after an earlier pause means
/// the penalty box, so the pause grows to its full length.
const FIRST_PAUSE: Duration = Duration::from_secs(60);
const PENALTY_BOX: Duration = Duration::from_secs(15 * 60);

/// Waits this long or longer show a countdown on a terminal; shorter ones
/// pass before anyone would wonder.
const SHOW_WAITS_FROM: Duration = Duration::from_secs(1);

/// Endpoints spaced a second or more apart are remembered on disk, so
/// back-to-back runs (a scan right after another) keep the spacing too.
const PERSIST_FROM: Duration = Duration::from_secs(1);

/// Spaces requests: the global rate within this process, and each
/// endpoint's spacing across processes when given a state file.
#[derive(Debug, Default)]
pub struct Pacer {
    recent: VecDeque<Instant>,
    last_by_endpoint: HashMap<String, SystemTime>,
    state: Option<PathBuf>,
}

impl Pacer {
    /// A pacer that remembers slow endpoints' last calls in `state`.
    pub fn new(state: Option<PathBuf>) -> Pacer {
        Pacer {
            state,
            ..Pacer::default()
        }
    }

    /// Sleeps until a request to `path` keeps within the global and the
    /// endpoint's limit, then records it.
    pub fn wait(&mut self, path: &str) {
        let endpoint = PER_ENDPOINT
            .iter()
            .find(|(prefix, _)| path.starts_with(prefix));
        if let Some((prefix, spacing)) = endpoint {
            if *spacing >= PERSIST_FROM {
                self.load();
            }
            if let Some(last) = self.last_by_endpoint.get(*prefix) {
                // IBKR measures the spacing on arrival, and a request can
                // arrive later than it left; a 5% margin keeps a slow first
                // request from making the next look early.
                let due = *last + *spacing + *spacing / 20;
                if let Ok(wait) = due.duration_since(SystemTime::now()) {
                    log::debug!("pacing {path}: waiting {} ms", wait.as_millis());
                    if wait >= SHOW_WAITS_FROM {
                        let label = format!("waiting for IBKR's pacing of {prefix}");
                        StatusLine::stderr().countdown(&label, wait);
                    } else {
                        thread::sleep(wait);
                    }
                }
            }
        }
        let window = Duration::from_secs(1);
        while self.recent.len() >= GLOBAL_PER_SECOND {
            let age = self.recent[0].elapsed();
            if age >= window {
                self.recent.pop_front();
            } else {
                thread::sleep(window - age);
            }
        }
        self.recent.push_back(Instant::now());
        if let Some((prefix, spacing)) = endpoint {
            self.last_by_endpoint
                .insert((*prefix).to_owned(), SystemTime::now());
            if *spacing >= PERSIST_FROM {
                self.save();
            }
        }
    }

    /// Merges the state file's times into memory, keeping the later one.
    fn load(&mut self) {
        let Some(path) = &self.state else { return };
        let Ok(bytes) = std::fs::read(path) else {
            return;
        };
        let Ok(saved) = serde_json::from_slice::<HashMap<String, u64>>(&bytes) else {
            return;
        };
        for (endpoint, ms) in saved {
            let at = UNIX_EPOCH + Duration::from_millis(ms);
            let known = self.last_by_endpoint.entry(endpoint).or_insert(at);
            *known = (*known).max(at);
        }
    }

    fn save(&self) {
        let Some(path) = &self.state else { return };
        let saved: HashMap<&String, u64> = self
            .last_by_endpoint
            .iter()
            .filter_map(|(k, at)| Some((k, at.duration_since(UNIX_EPOCH).ok()?.as_millis() as u64)))
            .collect();
        let bytes = serde_json::to_vec(&saved).expect("serialisable");
        // Losing this costs at most one early request, which the pause
        // after a 429 then covers.
        if let Err(err) = fsutil::write_private_file(path, &bytes) {
            log::warn!("could not record request pacing: {err:#}");
        }
    }
}

/// The pause after a 429, persisted at `path`.
#[derive(Clone, Debug)]
pub struct RateLimitPause {
    path: PathBuf,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct PauseState {
    until: Option<DateTime<Utc>>,
    /// The call IBKR answered 429, so that later runs can say what
    /// tripped the pause; absent in files from older versions.
    #[serde(default)]
    cause: Option<String>,
}

impl RateLimitPause {
    pub fn new(path: PathBuf) -> Self {
        RateLimitPause { path }
    }

    fn read(&self) -> PauseState {
        std::fs::read(&self.path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    /// Fails when a pause is in force at `now`, without contacting IBKR.
    pub fn check(&self, now: DateTime<Utc>) -> Result<()> {
        match self.read() {
            PauseState {
                until: Some(until),
                cause,
            } if until > now => Err(paused_error(until, cause.as_deref())),
            _ => Ok(()),
        }
    }

    /// Records a 429 seen at `now` and returns the error to report. A 429
    /// within the penalty-box length of the end of an earlier pause is taken
    /// as the penalty box itself. `cause` names the call, e.g.
    /// `GET /iserver/accounts`.
    pub fn record(&self, now: DateTime<Utc>, cause: &str) -> anyhow::Error {
        let recent = self.read().until.is_some_and(|until| {
            now < until + chrono::Duration::from_std(PENALTY_BOX).expect("fits")
        });
        let pause = if recent { PENALTY_BOX } else { FIRST_PAUSE };
        let until = now + chrono::Duration::from_std(pause).expect("fits");
        let state = PauseState {
            until: Some(until),
            cause: Some(cause.to_owned()),
        };
        let bytes = serde_json::to_vec(&state).expect("serialisable");
        if let Err(err) = fsutil::write_private_file(&self.path, &bytes) {
            log::warn!("could not record the rate-limit pause: {err:#}");
        }
        log::warn!(
            "IBKR answered 429 to {cause}; pausing all requests until {}",
            until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        paused_error(until, Some(cause))
    }
}

fn paused_error(until: DateTime<Utc>, cause: Option<&str>) -> anyhow::Error {
    let to = cause.map(|c| format!(" to {c}")).unwrap_or_default();
    error::failure(format!(
        "IBKR rate limit (HTTP 429{to}): skim sends nothing to IBKR until {}",
        until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    ))
    .hint(
        "retrying inside IBKR's penalty box extends it, so skim waits it out; later runs \
         resume by themselves",
    )
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn pause_grows_on_a_repeat_and_expires() {
        let dir = tempfile::tempdir().unwrap();
        let pause = RateLimitPause::new(dir.path().join("pause.json"));
        let t0 = Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap();
        pause.check(t0).unwrap();
        let err = pause.record(t0, "GET /iserver/accounts");
        assert!(err.to_string().contains("2026-03-02T00:01:00Z"), "{err}");
        assert!(pause.check(t0 + chrono::Duration::seconds(59)).is_err());
        let t1 = t0 + chrono::Duration::seconds(61);
        pause.check(t1).unwrap();
        let err = pause.record(t1, "GET /iserver/accounts");
        assert!(err.to_string().contains("2026-03-02T00:16:01Z"), "{err}");
        let later = t1 + chrono::Duration::hours(2);
        pause.check(later).unwrap();
        assert!(
            pause
                .record(later, "GET /iserver/accounts")
                .to_string()
                .contains("02:02:01Z"),
            "a fresh first pause"
        );
    }

    #[test]
    fn slow_endpoints_keep_their_spacing_across_processes() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("pacing.json");
        Pacer::new(Some(state.clone())).wait("/iserver/scanner/run");
        let start = Instant::now();
        // A second pacer stands for the next run of skim.
        Pacer::new(Some(state)).wait("/iserver/scanner/run");
        assert!(
            start.elapsed() >= Duration::from_millis(900),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn endpoint_spacing_is_kept() {
        let mut pacer = Pacer::default();
        let start = Instant::now();
        pacer.wait("/iserver/marketdata/snapshot");
        pacer.wait("/iserver/marketdata/snapshot");
        assert!(start.elapsed() >= Duration::from_millis(100));
    }
}
