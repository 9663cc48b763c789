//! The server loop: a few tiny_http workers on 127.0.0.1, the checks IBKR
//! makes before looking at a request (penalty box, `User-Agent`,
//! `Content-Length`), the fault switches that act on every request, routing,
//! and the request log.
//!
//! Endpoint modules see an [`Incoming`] and return a [`Reply`]; they never
//! touch sockets. A new family of endpoints adds one `route` call in
//! [`dispatch`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use anyhow::{Result, anyhow};
use serde_json::{Value, json};

use crate::{
    RequestRecord, Shared, State, asx, control, discord, lock, market, orders, pathfault, session,
};

/// Every endpoint lives under this path, as at `https://api.ibkr.com/v1/api`.
pub const API_PREFIX: &str = "/v1/api";

/// Worker threads: enough for a client plus a tickler plus a slow request.
const WORKERS: usize = 4;

/// A request, read in full, as endpoint handlers see it.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// Upper-case HTTP method.
    pub method: String,
    /// Path as requested, without the query.
    pub path: String,
    /// Raw query string without `?`.
    pub query: String,
    /// Headers in arrival order.
    pub headers: Vec<(String, String)>,
    /// The body bytes.
    pub body: Vec<u8>,
}

impl Incoming {
    /// The first header named `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The path below [`API_PREFIX`], or `None` for paths outside the API.
    pub fn api_path(&self) -> Option<&str> {
        self.path
            .strip_prefix(API_PREFIX)
            .filter(|rest| rest.starts_with('/'))
    }

    /// The body parsed as JSON; `None` when empty or not JSON.
    pub fn json_body(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// An answer: status, content type and body.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// Value of the `Content-Type` header.
    pub content_type: &'static str,
    /// Response body.
    pub body: String,
    /// Further headers, such as Discord's `X-RateLimit-*`.
    pub headers: Vec<(String, String)>,
}

impl Reply {
    /// A JSON answer.
    pub fn json(status: u16, body: &Value) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            body: body.to_string(),
            headers: Vec::new(),
        }
    }

    /// An HTML page, as the ASX serves it.
    pub fn html(status: u16, body: &str) -> Reply {
        Reply {
            status,
            content_type: "text/html;charset=UTF-8",
            body: body.to_string(),
            headers: Vec::new(),
        }
    }

    /// An answer without a body, such as Discord's 204.
    pub fn empty(status: u16) -> Reply {
        Reply {
            status,
            content_type: "text/plain",
            body: String::new(),
            headers: Vec::new(),
        }
    }

    /// The same answer with one more header.
    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// A plain-text answer, as IBKR gives for "no bridge".
    pub fn text(status: u16, body: &str) -> Reply {
        Reply {
            status,
            content_type: "text/plain",
            body: body.to_string(),
            headers: Vec::new(),
        }
    }

    /// IBKR's error shape: `{"error": message, "statusCode": status}`.
    pub fn error(status: u16, message: &str) -> Reply {
        Reply::json(status, &json!({ "error": message, "statusCode": status }))
    }
}

/// The outcome of handling one request.
pub(crate) struct Handled {
    pub reply: Reply,
    pub signature_verified: bool,
}

impl From<Reply> for Handled {
    fn from(reply: Reply) -> Handled {
        Handled {
            reply,
            signature_verified: false,
        }
    }
}

/// The listening socket and its workers; dropping it stops them.
pub(crate) struct Server {
    /// `None` only while dropping.
    server: Option<Arc<tiny_http::Server>>,
    stopping: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
}

impl Server {
    /// Binds 127.0.0.1:`port` and starts the workers.
    pub fn start(port: u16, shared: Shared) -> Result<Server> {
        let server = tiny_http::Server::http(("127.0.0.1", port))
            .map_err(|e| anyhow!("failed to listen on 127.0.0.1:{port}: {e}"))?;
        let server = Arc::new(server);
        let stopping = Arc::new(AtomicBool::new(false));
        let workers = (0..WORKERS)
            .map(|_| {
                let server = Arc::clone(&server);
                let stopping = Arc::clone(&stopping);
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || serve(&server, &stopping, &shared))
            })
            .collect();
        Ok(Server {
            server: Some(server),
            stopping,
            workers,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.server
            .as_ref()
            .expect("the server runs until dropped")
            .server_addr()
            .to_ip()
            .expect("bound to a TCP address")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let addr = self.addr();
        self.stopping.store(true, Ordering::SeqCst);
        let Some(server) = self.server.take() else {
            return;
        };
        // Each unblock wakes exactly one worker blocked in recv().
        for _ in &self.workers {
            server.unblock();
        }
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
        drop(server);
        // tiny_http closes its listener from its accept thread a moment
        // after the server is dropped; wait for that, so that a dropped
        // simulator has surely left its port.
        let deadline = Instant::now() + std::time::Duration::from_secs(2);
        while Instant::now() < deadline && std::net::TcpStream::connect(addr).is_ok() {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

fn serve(server: &tiny_http::Server, stopping: &AtomicBool, shared: &Shared) {
    loop {
        match server.recv() {
            Ok(request) => answer(request, shared),
            // recv also fails on accept errors; only a stop request ends us.
            Err(_) if stopping.load(Ordering::SeqCst) => return,
            Err(_) => {}
        }
    }
}

/// Reads one request, handles it, logs it and writes the answer.
fn answer(mut request: tiny_http::Request, shared: &Shared) {
    let (path, query) = match request.url().split_once('?') {
        Some((path, query)) => (path.to_string(), query.to_string()),
        None => (request.url().to_string(), String::new()),
    };
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|h| {
            (
                h.field.as_str().as_str().to_string(),
                h.value.as_str().to_string(),
            )
        })
        .collect();
    let mut body = Vec::new();
    let read = request.as_reader().read_to_end(&mut body);
    let incoming = Incoming {
        method: request.method().as_str().to_uppercase(),
        path,
        query,
        headers,
        body,
    };

    let delay = lock(shared).faults.delay;
    if !delay.is_zero() {
        std::thread::sleep(delay);
    }
    let mut hang_up = false;
    // A fault aimed at this path answers in place of the route.
    let request = match read {
        Ok(_) => match pathfault::intercept(request, &incoming, shared) {
            Some(request) => request,
            None => return,
        },
        Err(_) => request,
    };
    let handled = match read {
        Ok(_) => {
            let mut state = lock(shared);
            let handled = dispatch(&mut state, &incoming);
            hang_up = std::mem::take(&mut state.hang_up);
            record(&mut state, &incoming, &handled);
            handled
        }
        Err(_) => Reply::error(400, "could not read request body").into(),
    };
    if hang_up {
        // The work is done; the client just never hears of it. Dropping
        // the writer shuts the socket's write side without a byte sent.
        drop(request.into_writer());
        return;
    }

    respond(request, handled.reply);
}

/// Writes `reply` as the answer to `request`.
pub(crate) fn respond(request: tiny_http::Request, reply: Reply) {
    let content_type =
        tiny_http::Header::from_bytes("Content-Type", reply.content_type).expect("valid header");
    let mut response = tiny_http::Response::from_string(reply.body)
        .with_status_code(reply.status)
        .with_header(content_type);
    for (name, value) in &reply.headers {
        if let Ok(header) = tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            response.add_header(header);
        }
    }
    // A client that hung up early is its own problem, not the server's.
    let _ = request.respond(response);
}

/// Routes requests for the other servers the simulator plays (the ASX
/// page, Discord) and its own control endpoints, which IBKR's checks and
/// faults do not touch; `None` for IBKR's requests.
fn dispatch_other(state: &mut State, req: &Incoming, now: Instant) -> Option<Reply> {
    if req.path.starts_with(control::PREFIX) {
        return Some(control::serve(state, req));
    }
    if req.path == asx::PAGE_PATH {
        if req.method != "GET" {
            return Some(Reply::html(
                405,
                "<html><body>Method Not Allowed</body></html>\n",
            ));
        }
        let State { market, faults, .. } = state;
        return Some(asx::serve(&market.scenario, market.now, &mut faults.asx));
    }
    match discord::parse_path(&req.path)? {
        Err(reply) => Some(reply),
        Ok((id, token)) => {
            let State {
                discord, faults, ..
            } = state;
            Some(discord::serve(
                discord,
                &mut faults.discord,
                req,
                id,
                token,
                now,
            ))
        }
    }
}

/// Applies the checks every request goes through, then routes it.
pub(crate) fn dispatch(state: &mut State, req: &Incoming) -> Handled {
    let now = Instant::now();
    if let Some(reply) = dispatch_other(state, req, now) {
        return reply.into();
    }
    if let Some(reply) = penalty_box(state, now) {
        return reply.into();
    }
    if req
        .header("User-Agent")
        .is_none_or(|ua| ua.trim().is_empty())
    {
        return Reply::error(400, "User-Agent header is required").into();
    }
    if req.method == "POST" && req.header("Content-Length").is_none() {
        return Reply::text(411, "Length Required").into();
    }
    if let Some((status, left)) = state.faults.server_error {
        state.faults.server_error = (left > 1).then(|| (status, left - 1));
        if left > 0 {
            return Reply::error(status, "internal server error").into();
        }
    }
    let Some(api_path) = req.api_path() else {
        return Reply::error(404, "not found").into();
    };
    if api_path == session::HANDSHAKE_PATH {
        return session::handshake(state, req);
    }
    if let Err(reply) = session::authenticate(state, req) {
        return reply.into();
    }
    if let Some(reply) = session::gate(state, api_path, now) {
        return Handled {
            reply,
            signature_verified: true,
        };
    }
    orders::note_request(state, req, api_path);
    let reply = session::route(state, req, api_path, now)
        .or_else(|| market::route(state, req, api_path, now))
        .or_else(|| orders::route(state, req, api_path, now))
        .unwrap_or_else(|| Reply::error(404, &format!("no endpoint {} {api_path}", req.method)));
    Handled {
        reply,
        signature_verified: true,
    }
}

/// IBKR's penalty box: once tripped, every request gets 429 until it ends.
fn penalty_box(state: &mut State, now: Instant) -> Option<Reply> {
    if let Some(period) = state.faults.penalty.take() {
        state.penalty_until = Some(now + period);
    }
    match state.penalty_until {
        Some(until) if now < until => Some(Reply::error(429, "Too Many Requests")),
        Some(_) => {
            state.penalty_until = None;
            None
        }
        None => None,
    }
}

fn record(state: &mut State, req: &Incoming, handled: &Handled) {
    record_reply(state, req, &handled.reply, handled.signature_verified);
}

/// Logs `req` with the status of `reply`.
pub(crate) fn record_reply(state: &mut State, req: &Incoming, reply: &Reply, verified: bool) {
    let record = RequestRecord {
        method: req.method.clone(),
        path: req.path.clone(),
        query: req.query.clone(),
        status: reply.status,
        signature_verified: verified,
        headers: req
            .headers
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("Authorization"))
            .cloned()
            .collect(),
        body: String::from_utf8_lossy(&req.body).into_owned(),
    };
    if state.config.log_requests {
        let query = if record.query.is_empty() {
            String::new()
        } else {
            format!("?{}", record.query)
        };
        let signed = if record.signature_verified {
            "signed"
        } else {
            "unsigned"
        };
        // The path of a webhook carries its token, a secret.
        eprintln!(
            "skim-sim: {} {}{query} -> {} ({signed})",
            record.method,
            discord::redact_path(&record.path),
            record.status
        );
    }
    state.log.push(record);
}
