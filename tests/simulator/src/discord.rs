//! A Discord webhook on loopback: `POST /api/[v10/]webhooks/{id}/{token}`,
//! as strict as Discord (reference part A). It checks the body against the
//! message and embed limits and answers 400 with Discord's error tree, paces
//! each webhook at 5 requests per 2 s and 30 per minute with `X-RateLimit-*`
//! headers and 429 bodies, answers 404 "Unknown Webhook" for another id or
//! token, and keeps every accepted message for the tests to read.
//!
//! The token in the URL is a secret like a real webhook's: log lines and the
//! state dump show the path with the token replaced.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::Rng;
use serde_json::{Map, Value, json};

use crate::http::{Incoming, Reply};

/// Discord's documented webhook pace: 5 requests per 2 seconds...
const BURST: (usize, Duration) = (5, Duration::from_secs(2));
/// ...and the widely reported 30 per minute.
const PER_MINUTE: (usize, Duration) = (30, Duration::from_secs(60));

/// One message the sink accepted.
#[derive(Clone, Debug, PartialEq)]
pub struct DiscordMessage {
    /// The message id the sink gave it (a snowflake-like decimal).
    pub id: String,
    /// The JSON body as the client sent it.
    pub payload: Value,
}

/// Faults of the webhook, switched on while it runs.
#[derive(Clone, Debug, Default)]
pub struct DiscordFaults {
    /// Answer the next N requests with 429 as if the bucket were empty.
    pub rate_limited_next: u32,
    /// Pretend the webhook was deleted: every request gets 404.
    pub unknown_webhook: bool,
    /// Answer the next N requests with 500.
    pub server_error_next: u32,
}

/// The webhook's identity, recent requests and accepted messages.
pub(crate) struct Sink {
    pub id: String,
    pub token: String,
    recent: VecDeque<Instant>,
    pub messages: Vec<DiscordMessage>,
    next_id: u64,
}

impl Sink {
    /// A webhook with a random 18-digit id and a 68-character token.
    pub fn new() -> Sink {
        let mut rng = rand::thread_rng();
        let id = format!(
            "{}",
            rng.gen_range(100_000_000_000_000_000u64..1_000_000_000_000_000_000)
        );
        const TOKEN_CHARS: &[u8] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
        let token = (0..68)
            .map(|_| char::from(TOKEN_CHARS[rng.gen_range(0..TOKEN_CHARS.len())]))
            .collect();
        Sink {
            id,
            token,
            recent: VecDeque::new(),
            messages: Vec::new(),
            next_id: 1_345_000_000_000_000_000,
        }
    }

    /// The path a client posts to (append to `http://127.0.0.1:PORT`).
    pub fn path(&self) -> String {
        format!("/api/webhooks/{}/{}", self.id, self.token)
    }
}

/// The id and token of a webhook path, `/api[/vN]/webhooks/{id}/{token}`;
/// `None` for other paths. `Err` carries the answer for a retired version.
pub(crate) fn parse_path(path: &str) -> Option<Result<(&str, &str), Reply>> {
    let rest = path.strip_prefix("/api/")?;
    let (version, rest) = match rest.strip_prefix('v') {
        Some(versioned) => {
            let (number, rest) = versioned.split_once('/')?;
            (number.parse::<u32>().ok()?, rest)
        }
        None => (6, rest),
    };
    let rest = rest.strip_prefix("webhooks/")?;
    let (id, token) = rest.trim_end_matches('/').split_once('/')?;
    if token.contains('/') {
        return None;
    }
    if !(6..=10).contains(&version) {
        return Some(Err(error(
            400,
            &format!("API version v{version} is discontinued"),
            0,
        )));
    }
    Some(Ok((id, token)))
}

/// `path` with a webhook token replaced, for logs and dumps.
pub fn redact_path(path: &str) -> String {
    match parse_path(path) {
        Some(Ok((id, token))) if !token.is_empty() => {
            path.replacen(&format!("{id}/{token}"), &format!("{id}/(redacted)"), 1)
        }
        _ => path.to_string(),
    }
}

fn error(status: u16, message: &str, code: u32) -> Reply {
    Reply::json(status, &json!({ "message": message, "code": code }))
}

/// Handles one request to a webhook path.
pub(crate) fn serve(
    sink: &mut Sink,
    faults: &mut DiscordFaults,
    req: &Incoming,
    id: &str,
    token: &str,
    now: Instant,
) -> Reply {
    if faults.server_error_next > 0 {
        faults.server_error_next -= 1;
        return error(500, "500: Internal Server Error", 0);
    }
    if faults.unknown_webhook || id != sink.id || token != sink.token {
        return error(404, "Unknown Webhook", 10_015);
    }
    if req.method != "POST" {
        return error(405, "405: Method Not Allowed", 0);
    }
    let limited = faults.rate_limited_next > 0;
    if limited {
        faults.rate_limited_next -= 1;
    }
    let reply = match take_slot(&mut sink.recent, now, limited) {
        Err(retry_after) => rate_limited(retry_after),
        Ok(()) => accept(sink, req),
    };
    with_rate_headers(reply, &sink.recent, &sink.id, now)
}

/// Counts a request against both windows; `Err` gives how long to wait.
fn take_slot(recent: &mut VecDeque<Instant>, now: Instant, forced: bool) -> Result<(), Duration> {
    while recent
        .front()
        .is_some_and(|t| now.duration_since(*t) >= PER_MINUTE.1)
    {
        recent.pop_front();
    }
    let wait_for = |(limit, window): (usize, Duration)| {
        let inside: Vec<&Instant> = recent
            .iter()
            .filter(|t| now.duration_since(**t) < window)
            .collect();
        (inside.len() >= limit).then(|| window - now.duration_since(*inside[inside.len() - limit]))
    };
    if let Some(wait) = wait_for(BURST).max(wait_for(PER_MINUTE)) {
        return Err(wait);
    }
    if forced {
        return Err(Duration::from_millis(1500));
    }
    recent.push_back(now);
    Ok(())
}

fn rate_limited(retry_after: Duration) -> Reply {
    let seconds = (retry_after.as_secs_f64() * 1000.0).ceil() / 1000.0;
    Reply::json(
        429,
        &json!({
            "message": "You are being rate limited.",
            "retry_after": seconds,
            "global": false,
        }),
    )
    .with_header("Retry-After", &format!("{}", seconds.ceil() as u64))
    .with_header("X-RateLimit-Scope", "shared")
}

/// Adds the `X-RateLimit-*` headers of the 5-per-2-s bucket.
fn with_rate_headers(reply: Reply, recent: &VecDeque<Instant>, id: &str, now: Instant) -> Reply {
    let (limit, window) = BURST;
    let inside: Vec<&Instant> = recent
        .iter()
        .filter(|t| now.duration_since(**t) < window)
        .collect();
    let reset_after = inside.first().map_or(Duration::ZERO, |oldest| {
        window - now.duration_since(**oldest)
    });
    let epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        + reset_after;
    reply
        .with_header("X-RateLimit-Limit", &limit.to_string())
        .with_header(
            "X-RateLimit-Remaining",
            &limit.saturating_sub(inside.len()).to_string(),
        )
        .with_header("X-RateLimit-Reset", &format!("{:.3}", epoch.as_secs_f64()))
        .with_header(
            "X-RateLimit-Reset-After",
            &format!("{:.3}", reset_after.as_secs_f64()),
        )
        .with_header("X-RateLimit-Bucket", &format!("webhook-{id}"))
}

/// Checks the body, stores the message and answers as Discord does.
fn accept(sink: &mut Sink, req: &Incoming) -> Reply {
    let ua_ok = req
        .header("User-Agent")
        .is_some_and(|ua| ua.starts_with("DiscordBot ("));
    if !ua_ok {
        return error(
            403,
            "User-Agent must look like DiscordBot ($url, $version)",
            40_333,
        );
    }
    let is_json = req
        .header("Content-Type")
        .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("application/json"));
    if !is_json {
        return error(400, "Cannot send an empty message", 50_006);
    }
    let Ok(payload) = serde_json::from_slice::<Value>(&req.body) else {
        return error(400, "The request body contains invalid JSON.", 50_109);
    };
    if let Err(reply) = validate(&payload) {
        return reply;
    }
    sink.next_id += 1;
    let id = sink.next_id.to_string();
    sink.messages.push(DiscordMessage {
        id: id.clone(),
        payload: payload.clone(),
    });
    let wait = crate::oauth::query_pairs(&req.query)
        .unwrap_or_default()
        .into_iter()
        .any(|(k, v)| k == "wait" && matches!(v.as_str(), "true" | "True" | "1"));
    if !wait {
        return Reply::empty(204);
    }
    let timestamp = chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6f+00:00")
        .to_string();
    Reply::json(
        200,
        &json!({
            "id": id,
            "type": 0,
            "content": payload.get("content").cloned().unwrap_or(json!("")),
            "channel_id": "1345000000000000001",
            "author": { "bot": true, "id": sink.id, "username": "skim-sim" },
            "attachments": [],
            "embeds": payload.get("embeds").cloned().unwrap_or(json!([])),
            "mentions": [],
            "mention_roles": [],
            "pinned": false,
            "mention_everyone": false,
            "tts": false,
            "timestamp": timestamp,
            "edited_timestamp": null,
            "flags": 0,
            "components": [],
            "webhook_id": sink.id,
        }),
    )
}

/// One broken rule: where in the body, Discord's code and message.
struct Problem {
    path: Vec<String>,
    code: &'static str,
    message: String,
}

/// Length as Discord counts it: characters, surrounding whitespace left out.
fn length(text: &str) -> usize {
    text.trim().chars().count()
}

/// Checks one text value against `max`; returns its counted length.
fn check_text(
    problems: &mut Vec<Problem>,
    value: Option<&Value>,
    path: Vec<String>,
    max: usize,
) -> usize {
    match value {
        None | Some(Value::Null) => 0,
        Some(Value::String(text)) => {
            let n = length(text);
            if n > max {
                problems.push(Problem {
                    path,
                    code: "BASE_TYPE_MAX_LENGTH",
                    message: format!("Must be {max} or fewer in length."),
                });
            }
            n
        }
        Some(_) => {
            problems.push(Problem {
                path,
                code: "BASE_TYPE_STRING",
                message: "Must be a string.".to_string(),
            });
            0
        }
    }
}

/// Checks the message and embed limits; `Err` is Discord's 400.
fn validate(payload: &Value) -> Result<(), Reply> {
    let Some(body) = payload.as_object() else {
        return Err(error(400, "Cannot send an empty message", 50_006));
    };
    let mut problems = Vec::new();
    let content = check_text(
        &mut problems,
        body.get("content"),
        vec!["content".into()],
        2000,
    );
    let embeds = match body.get("embeds") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(items)) => items.as_slice(),
        Some(_) => {
            return Err(form_error(vec![Problem {
                path: vec!["embeds".into()],
                code: "BASE_TYPE_ARRAY",
                message: "Must be an array.".into(),
            }]));
        }
    };
    if content == 0 && embeds.is_empty() {
        return Err(error(400, "Cannot send an empty message", 50_006));
    }
    let mut total = 0;
    for (i, embed) in embeds.iter().enumerate() {
        let at = |rest: &[&str]| {
            let mut path = vec!["embeds".to_string(), i.to_string()];
            path.extend(rest.iter().map(|s| s.to_string()));
            path
        };
        total += check_text(&mut problems, embed.get("title"), at(&["title"]), 256);
        total += check_text(
            &mut problems,
            embed.get("description"),
            at(&["description"]),
            4096,
        );
        let footer = embed.get("footer").and_then(|f| f.get("text"));
        total += check_text(&mut problems, footer, at(&["footer", "text"]), 2048);
        let author = embed.get("author").and_then(|a| a.get("name"));
        total += check_text(&mut problems, author, at(&["author", "name"]), 256);
        let fields = embed.get("fields").and_then(Value::as_array);
        for (j, field) in fields.into_iter().flatten().enumerate() {
            let j = j.to_string();
            let (name, value) = (field.get("name"), field.get("value"));
            for (part, given) in [("name", name), ("value", value)] {
                if given
                    .and_then(Value::as_str)
                    .is_none_or(|s| s.trim().is_empty())
                {
                    problems.push(Problem {
                        path: at(&["fields", &j, part]),
                        code: "BASE_TYPE_REQUIRED",
                        message: "This field is required".into(),
                    });
                }
            }
            total += check_text(&mut problems, name, at(&["fields", &j, "name"]), 256);
            total += check_text(&mut problems, value, at(&["fields", &j, "value"]), 1024);
        }
        if fields.is_some_and(|f| f.len() > 25) {
            problems.push(Problem {
                path: at(&["fields"]),
                code: "BASE_TYPE_MAX_LENGTH",
                message: "Must be 25 or fewer in length.".into(),
            });
        }
    }
    if embeds.len() > 10 {
        problems.push(Problem {
            path: vec!["embeds".into()],
            code: "BASE_TYPE_MAX_LENGTH",
            message: "Must be 10 or fewer in length.".into(),
        });
    }
    if total > 6000 {
        problems.push(Problem {
            path: vec!["embeds".into()],
            code: "MAX_EMBED_SIZE_EXCEEDED",
            message: "Embed size exceeds maximum size of 6000".into(),
        });
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(form_error(problems))
    }
}

/// Discord's "Invalid Form Body": code 50035 and an `errors` tree keyed by
/// the path of each bad value, ending in `_errors`.
fn form_error(problems: Vec<Problem>) -> Reply {
    let mut tree = Map::new();
    for problem in problems {
        let mut node = &mut tree;
        for key in &problem.path {
            node = node
                .entry(key.clone())
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
                .expect("the tree holds only objects on paths");
        }
        let list = node.entry("_errors").or_insert_with(|| json!([]));
        if let Some(items) = list.as_array_mut() {
            items.push(json!({ "code": problem.code, "message": problem.message }));
        }
    }
    Reply::json(
        400,
        &json!({ "message": "Invalid Form Body", "code": 50_035, "errors": tree }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_id_and_token() {
        assert!(matches!(
            parse_path("/api/webhooks/1/abc"),
            Some(Ok(("1", "abc")))
        ));
        assert!(matches!(
            parse_path("/api/v10/webhooks/1/abc"),
            Some(Ok(("1", "abc")))
        ));
        assert!(matches!(parse_path("/api/v4/webhooks/1/abc"), Some(Err(_))));
        assert!(parse_path("/api/webhooks/1").is_none());
        assert!(parse_path("/v1/api/tickle").is_none());
        assert_eq!(
            redact_path("/api/v10/webhooks/123/s3cr3t"),
            "/api/v10/webhooks/123/(redacted)"
        );
    }

    #[test]
    fn the_burst_window_refuses_the_sixth_and_says_when() {
        let mut recent = VecDeque::new();
        let start = Instant::now();
        for i in 0..5 {
            assert!(take_slot(&mut recent, start + Duration::from_millis(i * 10), false).is_ok());
        }
        let wait = take_slot(&mut recent, start + Duration::from_millis(100), false).unwrap_err();
        assert_eq!(wait, Duration::from_millis(1900));
        assert!(take_slot(&mut recent, start + Duration::from_millis(2001), false).is_ok());
    }

    #[test]
    fn the_minute_window_refuses_the_thirty_first() {
        let mut recent = VecDeque::new();
        let start = Instant::now();
        // 30 requests, one every 400 ms: never 5 within 2 s.
        for i in 0..30 {
            let at = start + Duration::from_millis(i * 400);
            assert!(take_slot(&mut recent, at, false).is_ok(), "request {i}");
        }
        let at = start + Duration::from_millis(12_000);
        let wait = take_slot(&mut recent, at, false).unwrap_err();
        assert_eq!(wait, Duration::from_secs(48));
        assert!(take_slot(&mut recent, start + Duration::from_secs(60), false).is_ok());
    }

    #[test]
    fn limits_are_checked_with_the_error_tree() {
        let long = "x".repeat(257);
        let bad =
            json!({ "embeds": [{ "title": long, "fields": [{ "name": "a", "value": "" }] }] });
        let reply = validate(&bad).unwrap_err();
        let body: Value = serde_json::from_str(&reply.body).unwrap();
        assert_eq!(body["code"], 50_035);
        let embed = &body["errors"]["embeds"]["0"];
        assert_eq!(embed["title"]["_errors"][0]["code"], "BASE_TYPE_MAX_LENGTH");
        assert_eq!(
            embed["fields"]["0"]["value"]["_errors"][0]["code"],
            "BASE_TYPE_REQUIRED"
        );
        // Surrounding whitespace is not counted.
        let padded = format!("  {}  ", "x".repeat(256));
        assert!(validate(&json!({ "embeds": [{ "title": padded }] })).is_ok());
        assert!(validate(&json!({ "content": "" })).is_err());
    }
}
