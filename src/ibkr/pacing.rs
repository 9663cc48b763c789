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
use std::time::{Duration, Instant};

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error;
use crate::fsutil;

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

/// Spaces requests within one process.
#[derive(Debug, Default)]
pub struct Pacer {
    recent: VecDeque<Instant>,
    last_by_endpoint: HashMap<&'static str, Instant>,
}

impl Pacer {
    /// Sleeps until a request to `path` keeps within the global and the
    /// endpoint's limit, then records it.
    pub fn wait(&mut self, path: &str) {
        let endpoint = PER_ENDPOINT
            .iter()
            .find(|(prefix, _)| path.starts_with(prefix));
        if let Some((prefix, spacing)) = endpoint
            && let Some(last) = self.last_by_endpoint.get(prefix)
        {
            let due = *last + *spacing;
            let now = Instant::now();
            if due > now {
                log::debug!("pacing {path}: waiting {} ms", (due - now).as_millis());
                thread::sleep(due - now);
            }
        }
        let window = Duration::from_secs(1);
        while self.recent.len() >= GLOBAL_PER_SECOND {
            let oldest = self.recent[0];
            let age = oldest.elapsed();
            if age >= window {
                self.recent.pop_front();
            } else {
                thread::sleep(window - age);
            }
        }
        let now = Instant::now();
        self.recent.push_back(now);
        if let Some((prefix, _)) = endpoint {
            self.last_by_endpoint.insert(prefix, now);
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
        match self.read().until {
            Some(until) if until > now => Err(paused_error(until)),
            _ => Ok(()),
        }
    }

    /// Records a 429 seen at `now` and returns the error to report. A 429
    /// within the penalty-box length of the end of an earlier pause is taken
    /// as the penalty box itself.
    pub fn record(&self, now: DateTime<Utc>) -> anyhow::Error {
        let recent = self.read().until.is_some_and(|until| {
            now < until + chrono::Duration::from_std(PENALTY_BOX).expect("fits")
        });
        let pause = if recent { PENALTY_BOX } else { FIRST_PAUSE };
        let until = now + chrono::Duration::from_std(pause).expect("fits");
        let state = PauseState { until: Some(until) };
        let bytes = serde_json::to_vec(&state).expect("serialisable");
        if let Err(err) = fsutil::write_private_file(&self.path, &bytes) {
            log::warn!("could not record the rate-limit pause: {err:#}");
        }
        log::warn!("IBKR answered 429; pausing all requests until {until}");
        paused_error(until)
    }
}

fn paused_error(until: DateTime<Utc>) -> anyhow::Error {
    error::failure(format!(
        "IBKR rate limit (HTTP 429): skim sends nothing to IBKR until {}",
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
        let err = pause.record(t0);
        assert!(err.to_string().contains("2026-03-02T00:01:00Z"), "{err}");
        assert!(pause.check(t0 + chrono::Duration::seconds(59)).is_err());
        let t1 = t0 + chrono::Duration::seconds(61);
        pause.check(t1).unwrap();
        let err = pause.record(t1);
        assert!(err.to_string().contains("2026-03-02T00:16:01Z"), "{err}");
        let later = t1 + chrono::Duration::hours(2);
        pause.check(later).unwrap();
        assert!(
            pause.record(later).to_string().contains("02:02:01Z"),
            "a fresh first pause"
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
