//! Faults aimed at one endpoint: "the next three `GET /iserver/accounts`
//! time out", "the webhook answers 503 until told otherwise".
//!
//! The switches in [`crate::Faults`] each model one misbehaviour of one
//! service; a [`PathFault`] instead pairs any [`FaultKind`] with any path the
//! simulator serves (IBKR's API, the ASX page, the Discord webhook), so a
//! test can walk every call a command makes through every kind of failure.
//! The simulator's own control endpoints (`/sim/...`) are never hit.
//!
//! How each kind treats the request matters for "nothing done twice":
//! status answers, rate limits, timeouts and resets are given *instead of*
//! the endpoint, which never sees the request (as when a proxy or the
//! network fails before the service). The two 200 kinds let the endpoint
//! act and then spoil its answer, as when a reply is cut off or garbled on
//! the way back: the client cannot tell what happened.

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::http::{self, API_PREFIX, Incoming, Reply};
use crate::{Shared, control, lock};

/// What a faulted request gets.
#[derive(Clone, Debug, PartialEq)]
pub enum FaultKind {
    /// This HTTP status with the service's usual error body, e.g. 401, 410,
    /// 500, 503.
    Status(u16),
    /// HTTP 429 Too Many Requests. On IBKR's paths it also opens IBKR's
    /// penalty box for this long, so every IBKR request in that time gets
    /// 429 too; elsewhere it asks the client to wait this long
    /// (`Retry-After` and Discord's `retry_after`).
    RateLimit(Duration),
    /// Holds the request this long before giving up on it with 504; choose
    /// more than the client's timeout, so the client gives up first.
    Timeout(Duration),
    /// Ends the exchange without an HTTP answer. tiny_http cannot close a
    /// socket that a request still holds, so the simulator writes one byte
    /// that is no HTTP status line and leaves: the client's HTTP stack
    /// fails at once with a broken connection, as after a reset.
    Reset,
    /// 200 with the endpoint's own answer cut in half, so it is no longer
    /// JSON (`{"` when the answer was too short to cut).
    MalformedJson,
    /// 200 with this JSON instead of the endpoint's answer: pick one of the
    /// wrong shape, e.g. `{}` where an array is expected.
    UnexpectedShape(Value),
}

/// One fault, aimed at the requests whose method and path match.
#[derive(Clone, Debug, PartialEq)]
pub struct PathFault {
    /// Upper-case method to match; `None` matches any.
    pub method: Option<String>,
    /// Matches every request path starting with this, e.g. `/v1/api/tickle`
    /// or `/api/` (Discord's webhooks; their paths carry the token).
    pub path_prefix: String,
    /// What matching requests get.
    pub kind: FaultKind,
    /// How many matching requests are hit; spent faults are dropped.
    /// [`u32::MAX`] hits every one.
    pub times: u32,
}

impl PathFault {
    /// A fault hitting every request for `path_prefix` (any method) until
    /// removed; narrow it with [`PathFault::method`] and [`PathFault::times`].
    pub fn new(path_prefix: &str, kind: FaultKind) -> PathFault {
        PathFault {
            method: None,
            path_prefix: path_prefix.to_string(),
            kind,
            times: u32::MAX,
        }
    }

    /// A fault on an IBKR endpoint, named by its API path (`/iserver/...`;
    /// the `/v1/api` prefix is implied).
    pub fn api(method: &str, api_path: &str, kind: FaultKind) -> PathFault {
        PathFault::new(&format!("{API_PREFIX}{api_path}"), kind).method(method)
    }

    /// The same fault, for `method` only.
    pub fn method(mut self, method: &str) -> PathFault {
        self.method = Some(method.to_ascii_uppercase());
        self
    }

    /// The same fault, for the next `times` matching requests only.
    pub fn times(mut self, times: u32) -> PathFault {
        self.times = times;
        self
    }

    /// Whether `req` is one this fault aims at (spent or not).
    pub fn matches(&self, req: &Incoming) -> bool {
        self.method.as_deref().is_none_or(|m| m == req.method)
            && req.path.starts_with(&self.path_prefix)
            && !req.path.starts_with(control::PREFIX)
    }
}

/// Answers `request` if a path fault aims at it and returns `None`;
/// otherwise hands the request back for the normal route. Every faulted
/// request is logged like any other, with the status it was given (0 for
/// a reset).
pub(crate) fn intercept(
    request: tiny_http::Request,
    req: &Incoming,
    shared: &Shared,
) -> Option<tiny_http::Request> {
    let Some(kind) = take(shared, req) else {
        return Some(request);
    };
    let reply = match kind {
        FaultKind::Status(status) => status_reply(req, status),
        FaultKind::RateLimit(period) => rate_limited(shared, req, period),
        FaultKind::Timeout(hold) => {
            // Logged on arrival: the client has long gone when the hold ends.
            let reply = Reply::error(504, "the simulator held this request past its timeout");
            http::record_reply(&mut lock(shared), req, &reply, false);
            std::thread::sleep(hold);
            http::respond(request, reply);
            return None;
        }
        FaultKind::Reset => {
            http::record_reply(&mut lock(shared), req, &Reply::empty(0), false);
            let mut writer = request.into_writer();
            // A NUL byte can start no status line; errors mean the client
            // left already, which is what a reset looks like anyway.
            let _ = writer.write_all(b"\0").and_then(|()| writer.flush());
            return None;
        }
        FaultKind::MalformedJson | FaultKind::UnexpectedShape(_) => {
            let mut state = lock(shared);
            let handled = http::dispatch(&mut state, req);
            let body = match kind {
                FaultKind::UnexpectedShape(value) => value.to_string(),
                _ => truncate(&handled.reply.body),
            };
            let reply = Reply {
                status: 200,
                content_type: "application/json",
                body,
                headers: Vec::new(),
            };
            http::record_reply(&mut state, req, &reply, handled.signature_verified);
            drop(state);
            http::respond(request, reply);
            return None;
        }
    };
    http::record_reply(&mut lock(shared), req, &reply, false);
    http::respond(request, reply);
    None
}

/// The kind of the first live fault aiming at `req`, counting it down.
fn take(shared: &Shared, req: &Incoming) -> Option<FaultKind> {
    let mut state = lock(shared);
    let faults = &mut state.faults.path_faults;
    let index = faults.iter().position(|f| f.times > 0 && f.matches(req))?;
    let fault = &mut faults[index];
    let kind = fault.kind.clone();
    if fault.times != u32::MAX {
        fault.times -= 1;
    }
    if fault.times == 0 {
        faults.remove(index);
    }
    Some(kind)
}

/// An error answer in the style of the service behind the path.
fn status_reply(req: &Incoming, status: u16) -> Reply {
    if req.api_path().is_some() {
        Reply::error(status, "simulated fault")
    } else if req.path.starts_with("/api/") {
        Reply::json(status, &json!({"message": "simulated fault", "code": 0}))
    } else {
        Reply::html(
            status,
            &format!("<html><body><h1>{status}</h1></body></html>\n"),
        )
    }
}

/// 429; on IBKR's paths the penalty box opens for `period`.
fn rate_limited(shared: &Shared, req: &Incoming, period: Duration) -> Reply {
    if req.api_path().is_some() {
        lock(shared).penalty_until = Some(Instant::now() + period);
        return Reply::error(429, "Too Many Requests");
    }
    let secs = period.as_secs_f64();
    Reply::json(
        429,
        &json!({"message": "You are being rate limited.", "retry_after": secs, "global": false}),
    )
    .with_header("Retry-After", &format!("{}", period.as_secs().max(1)))
}

/// The first half of `body`, cut on a character boundary; never valid JSON
/// for a JSON object or array.
fn truncate(body: &str) -> String {
    let mut cut = body.len() / 2;
    while !body.is_char_boundary(cut) {
        cut -= 1;
    }
    if cut < 2 {
        return "{\"".to_string();
    }
    body[..cut].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incoming(method: &str, path: &str) -> Incoming {
        Incoming {
            method: method.to_string(),
            path: path.to_string(),
            query: String::new(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    #[test]
    fn matching_follows_method_and_prefix_but_spares_control() {
        let fault = PathFault::api("GET", "/iserver/accounts", FaultKind::Reset);
        assert!(fault.matches(&incoming("GET", "/v1/api/iserver/accounts")));
        assert!(!fault.matches(&incoming("POST", "/v1/api/iserver/accounts")));
        assert!(!fault.matches(&incoming("GET", "/v1/api/iserver/account")));
        let any = PathFault::new("/", FaultKind::Status(500));
        assert!(any.matches(&incoming("DELETE", "/api/webhooks/1/t")));
        assert!(!any.matches(&incoming("GET", "/sim/clock")));
    }

    /// A simulator for the unsigned paths, keyed with the test vectors'
    /// signature key.
    fn simulator() -> crate::Simulator {
        use rsa::pkcs1::DecodeRsaPrivateKey;
        use rsa::pkcs8::{EncodePublicKey, LineEnding};
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/oauth_vectors.json");
        let vectors: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let pem = vectors["vectors"][0]["private_signature_pem"]
            .as_str()
            .unwrap();
        let public = rsa::RsaPrivateKey::from_pkcs1_pem(pem)
            .unwrap()
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        let prime = (num_bigint::BigUint::from(1u8) << 127usize) - 1u8;
        let config = crate::Config::new("ABCDEFGHI", "0123456789", &public, vec![7; 32], prime);
        crate::Simulator::start(config).unwrap()
    }

    /// `GET path` over a fresh connection, returning every byte the server
    /// wrote before closing.
    fn raw_get(sim: &crate::Simulator, path: &str) -> String {
        use std::io::Read;
        let mut stream = std::net::TcpStream::connect(sim.addr()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        let mut out = Vec::new();
        stream.read_to_end(&mut out).unwrap();
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn faults_answer_in_place_of_the_page_and_count_down() {
        let sim = simulator();
        let page = crate::asx::PAGE_PATH;
        sim.faults(|f| {
            f.path_faults = vec![
                PathFault::new(page, FaultKind::Status(503)).times(1),
                PathFault::new(page, FaultKind::Reset).times(1),
                PathFault::new(page, FaultKind::Timeout(Duration::from_millis(50))).times(1),
                PathFault::new(page, FaultKind::RateLimit(Duration::from_secs(2))).times(1),
            ]
        });
        assert!(raw_get(&sim, page).starts_with("HTTP/1.1 503"));
        assert_eq!(raw_get(&sim, page), "\0", "a reset writes no HTTP");
        assert!(raw_get(&sim, page).starts_with("HTTP/1.1 504"));
        let limited = raw_get(&sim, page);
        assert!(limited.starts_with("HTTP/1.1 429"), "{limited}");
        assert!(limited.contains("Retry-After: 2"), "{limited}");
        assert!(
            raw_get(&sim, page).starts_with("HTTP/1.1 200"),
            "faults are spent"
        );
        let statuses: Vec<u16> = sim.requests().iter().map(|r| r.status).collect();
        assert_eq!(statuses, [503, 0, 504, 429, 200]);
    }

    #[test]
    fn spoiled_answers_still_reach_the_endpoint() {
        let sim = simulator();
        let webhook = sim.discord_webhook_url();
        let path = webhook.split_once("127.0.0.1").unwrap().1;
        let path = &path[path.find('/').unwrap()..];
        sim.faults(|f| f.path_faults = vec![PathFault::new("/asx/", FaultKind::MalformedJson)]);
        let page = raw_get(&sim, crate::asx::PAGE_PATH);
        assert!(
            page.starts_with("HTTP/1.1 200") && !page.contains("</html>"),
            "{page}"
        );
        assert!(
            raw_get(&sim, path).starts_with("HTTP/1.1 4"),
            "other paths are spared"
        );
        sim.faults(|f| {
            f.path_faults = vec![PathFault::new(
                "/asx/",
                FaultKind::UnexpectedShape(json!([])),
            )]
        });
        assert!(raw_get(&sim, crate::asx::PAGE_PATH).ends_with("\r\n\r\n[]"));
    }

    #[test]
    fn truncation_never_leaves_json() {
        for body in ["", "{}", "[1,2,3]", r#"{"accounts":["DU1"],"x":"é"}"#] {
            let cut = truncate(body);
            assert!(serde_json::from_str::<Value>(&cut).is_err(), "{cut:?}");
        }
    }
}
