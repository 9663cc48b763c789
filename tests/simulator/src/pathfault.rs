//! Faults aimed at one endpoint of any service the simulator plays: IBKR's
//! paths under `/v1/api`, the ASX page, the Discord webhook.
//!
//! A [`PathFault`] names a method and a path prefix, how many matching
//! requests it spoils, and how ([`FaultKind`]). It fires either before the
//! request reaches its service (the service never hears of it) or after
//! (the service does the work, e.g. the broker holds the order, and only
//! the answer is spoiled). The first fault in [`crate::Faults::path_faults`]
//! that matches and has firings left wins; a spent fault stays in the list
//! with a count of zero, so tests can check it fired.
//!
//! The other fault switches of [`crate::Faults`] act on whole services;
//! these exist so a test matrix can spoil one call of a command at a time.

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::http::{self, API_PREFIX, Incoming, Reply};
use crate::{Shared, State, lock};

/// How a spoiled request is answered.
#[derive(Clone, Debug, PartialEq)]
pub enum FaultKind {
    /// This HTTP status with the service's usual error body. For IBKR a
    /// 401 or 410 also forgets the live session token, as IBKR's own do.
    Status(u16),
    /// 429, and for IBKR the penalty box for this long afterwards, during
    /// which every IBKR request gets 429 too. Discord's and the ASX's 429
    /// carry `Retry-After` with this period instead.
    RateLimited(Duration),
    /// Holds the request this long, then closes the connection without an
    /// answer: set it longer than the client's timeout.
    Timeout(Duration),
    /// Closes the connection at once without an answer.
    Reset,
    /// A 200 whose JSON body is cut off halfway.
    MalformedJson,
    /// A 200 with valid JSON of the wrong shape: an object where IBKR
    /// would send a list, or an object without the fields it would carry.
    UnexpectedShape,
}

impl FaultKind {
    /// A short name for test output, e.g. `status 503`, `timeout`.
    pub fn label(&self) -> String {
        match self {
            FaultKind::Status(code) => format!("status {code}"),
            FaultKind::RateLimited(_) => "429 penalty".to_string(),
            FaultKind::Timeout(_) => "timeout".to_string(),
            FaultKind::Reset => "reset".to_string(),
            FaultKind::MalformedJson => "malformed json".to_string(),
            FaultKind::UnexpectedShape => "unexpected shape".to_string(),
        }
    }
}

/// When a fault fires relative to the service's own handling.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Moment {
    /// Instead of the service: nothing happens behind the fault.
    #[default]
    Before,
    /// After the service handled the request (an order is placed, a
    /// message posted); only the client's answer is spoiled.
    After,
}

/// A fault aimed at one endpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct PathFault {
    /// Upper-case HTTP method to match.
    pub method: String,
    /// Matches paths that start with it, e.g. `/v1/api/iserver/account/`
    /// or the webhook's `/api/webhooks/`.
    pub path_prefix: String,
    /// Matching requests still to spoil; zero means spent.
    pub count: u32,
    pub kind: FaultKind,
    pub moment: Moment,
}

impl PathFault {
    /// Spoils the next `count` requests of `method` to a path below
    /// `path_prefix`, before the service sees them.
    pub fn new(method: &str, path_prefix: &str, count: u32, kind: FaultKind) -> PathFault {
        PathFault {
            method: method.to_ascii_uppercase(),
            path_prefix: path_prefix.to_string(),
            count,
            kind,
            moment: Moment::Before,
        }
    }

    /// The same fault, fired after the service handled the request.
    pub fn after(mut self) -> PathFault {
        self.moment = Moment::After;
        self
    }

    fn matches(&self, req: &Incoming) -> bool {
        self.count > 0 && self.method == req.method && req.path.starts_with(&self.path_prefix)
    }
}

/// Applies the first live fault that matches `req`: `Some(request)` hands
/// the request back for normal handling, `None` means it was answered (or
/// dropped) here and logged.
pub(crate) fn intercept(
    request: tiny_http::Request,
    req: &Incoming,
    shared: &Shared,
) -> Option<tiny_http::Request> {
    let mut state = lock(shared);
    let Some(fault) = state.faults.path_faults.iter_mut().find(|f| f.matches(req)) else {
        return Some(request);
    };
    fault.count -= 1;
    let (kind, moment) = (fault.kind.clone(), fault.moment);

    let (real, verified) = match moment {
        Moment::Before => (None, false),
        Moment::After => {
            let handled = http::dispatch(&mut state, req);
            // A handler's own hang-up is moot: this fault decides the answer.
            state.hang_up = false;
            (Some(handled.reply), handled.signature_verified)
        }
    };
    let reply = spoil(&mut state, req, &kind, real.as_ref());
    // The log keeps what the client was told, or 0 when it was told nothing.
    let logged = reply.clone().unwrap_or_else(|| Reply::empty(0));
    http::record_reply(&mut state, req, &logged, verified);
    drop(state);

    match (kind, reply) {
        (FaultKind::Timeout(hold), _) => {
            // Hold without the lock, so the simulator keeps serving.
            std::thread::sleep(hold);
            hang_up(request);
        }
        (_, Some(reply)) => http::respond(request, reply),
        (_, None) => hang_up(request),
    }
    None
}

/// The answer a fault gives, `None` for none at all. `real` is the
/// service's own answer when the fault fires after it.
fn spoil(
    state: &mut State,
    req: &Incoming,
    kind: &FaultKind,
    real: Option<&Reply>,
) -> Option<Reply> {
    let is_ibkr = req.path.starts_with(API_PREFIX);
    let is_page = req.path == crate::asx::PAGE_PATH;
    match kind {
        FaultKind::Status(status) => {
            if is_ibkr && matches!(status, 401 | 410) {
                state.session.forget_token();
            }
            Some(if is_page {
                Reply::html(*status, "<html><body>Error</body></html>\n")
            } else {
                Reply::error(*status, status_text(*status))
            })
        }
        FaultKind::RateLimited(period) => Some(rate_limited(state, req, *period)),
        FaultKind::Timeout(_) | FaultKind::Reset => None,
        FaultKind::MalformedJson => {
            let body = real
                .filter(|r| r.content_type == "application/json" && r.body.len() > 2)
                .map_or_else(
                    || r#"{"orders":[{"conid":8314,"ticker":"BH"#.to_string(),
                    |r| r.body[..r.body.len() / 2].to_string(),
                );
            Some(Reply {
                status: 200,
                content_type: "application/json",
                body,
                headers: Vec::new(),
            })
        }
        FaultKind::UnexpectedShape => Some(Reply::json(
            200,
            &json!({ "unexpected": "shape", "items": 0 }),
        )),
    }
}

fn rate_limited(state: &mut State, req: &Incoming, period: Duration) -> Reply {
    let seconds = period.as_secs_f64();
    let retry_after = (seconds.ceil() as u64).max(1).to_string();
    if req.path.starts_with(API_PREFIX) {
        state.penalty_until = Some(Instant::now() + period);
        return Reply::error(429, "Too Many Requests");
    }
    if req.path == crate::asx::PAGE_PATH {
        return Reply::html(429, "<html><body>Too Many Requests</body></html>\n")
            .with_header("Retry-After", &retry_after);
    }
    Reply::json(
        429,
        &json!({
            "message": "You are being rate limited.",
            "retry_after": seconds,
            "global": false,
        }),
    )
    .with_header("Retry-After", &retry_after)
}

fn status_text(status: u16) -> &'static str {
    match status {
        401 => "not authenticated",
        410 => "gone",
        500 => "internal server error",
        502 => "bad gateway",
        503 => "service unavailable",
        _ => "error",
    }
}

/// Ends the exchange without an answer. tiny_http owns the socket and keeps
/// it for the next request of the connection, so nothing here can close it;
/// instead a few bytes that cannot start an HTTP response are written, and
/// the client drops the connection at once, as after a reset.
fn hang_up(request: tiny_http::Request) {
    let mut writer = request.into_writer();
    let _ = writer.write_all(b"\0\r\n");
    let _ = writer.flush();
}
