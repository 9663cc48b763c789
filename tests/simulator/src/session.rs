//! IBKR's session, as the server keeps it: the live session token
//! handshake, the check of every signed request, the brokerage session
//! opened by `ssodh/init`, account priming, and the session and account
//! endpoints (reference sections 2-5.2).
//!
//! State mirrors IBKR's two tiers: a live session token gives a portal
//! session; `/iserver/*` also needs a brokerage session, and some `/iserver`
//! endpoints need `GET /iserver/accounts` first. Later endpoint modules call
//! [`require_accounts_primed`]; the "no bridge" gate is applied for them by
//! [`gate`].

use std::collections::{HashMap, HashSet};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use num_bigint::{BigUint, RandBigInt};
use serde_json::{Value, json};

use crate::http::{Handled, Incoming, Reply};
use crate::oauth::{self, AuthHeader};
use crate::{LiveToken, QuerySigning, State};

/// API path of the live session token handshake.
pub const HANDSHAKE_PATH: &str = "/oauth/live_session_token";

/// The parameters a handshake header must carry, besides the realm.
const HANDSHAKE_PARAMS: [&str; 7] = [
    "diffie_hellman_challenge",
    "oauth_consumer_key",
    "oauth_nonce",
    "oauth_signature",
    "oauth_signature_method",
    "oauth_timestamp",
    "oauth_token",
];

/// The parameters every other signed request must carry, besides the realm.
const SIGNED_PARAMS: [&str; 6] = [
    "oauth_consumer_key",
    "oauth_nonce",
    "oauth_signature",
    "oauth_signature_method",
    "oauth_timestamp",
    "oauth_token",
];

/// IBKR's text when the consumer key is unknown or not yet active.
const INVALID_CONSUMER: &str = "id: 123, error: invalid consumer";

/// Nonces are pruned past this many entries; older ones could not be
/// replayed anyway, since their timestamps fall outside the window.
const NONCE_PRUNE_AT: usize = 4096;

/// The simulated server's identity, as IBKR reports it in `serverInfo`.
fn server_info() -> Value {
    json!({ "serverName": "SkimSim01", "serverVersion": "Build 10.30.1, simulated" })
}

/// When the brokerage session opened by `ssodh/init` takes effect.
#[derive(Debug, Default, Clone, Copy)]
enum Bridge {
    #[default]
    Closed,
    OpensAt(Instant),
}

/// The user's IBKR session.
#[derive(Default)]
pub(crate) struct Session {
    token: Option<LiveToken>,
    /// Nonces seen in verified requests, with their timestamps.
    nonces: HashMap<String, i64>,
    bridge: Bridge,
    /// Whether `GET /iserver/accounts` was called since the bridge opened.
    pub accounts_primed: bool,
    /// Whether `GET /portfolio/accounts` was called since the token was
    /// issued, as the other `/portfolio` endpoints require.
    pub portfolio_primed: bool,
    /// Whether the live-orders pre-flight call has been made in this
    /// brokerage session (the next call answers with the orders).
    pub orders_ready: bool,
    /// Question message ids suppressed for this brokerage session.
    pub suppressed: HashSet<String>,
}

impl Session {
    pub fn is_authenticated(&self, now: Instant) -> bool {
        matches!(self.bridge, Bridge::OpensAt(at) if now >= at)
    }

    pub fn drop_bridge(&mut self) {
        self.bridge = Bridge::Closed;
        self.accounts_primed = false;
        self.orders_ready = false;
        self.suppressed.clear();
    }

    /// Ends everything a token carried: the brokerage session and priming.
    pub fn forget_token(&mut self) {
        self.token = None;
        self.portfolio_primed = false;
        self.drop_bridge();
    }

    /// Accepts `nonce` once; a second use is a replay.
    fn use_nonce(&mut self, nonce: &str, timestamp: i64, window: i64) -> bool {
        if self.nonces.len() >= NONCE_PRUNE_AT {
            let now = unix_seconds();
            self.nonces.retain(|_, seen| (now - *seen).abs() <= window);
        }
        self.nonces.insert(nonce.to_string(), timestamp).is_none()
    }
}

fn unix_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A request whose OAuth header passed the checks that need no key.
struct Checked {
    header: AuthHeader,
    /// Every OAuth parameter except the signature: what was signed.
    params: Vec<(String, String)>,
    /// The URL the client must have signed: `http://` + Host + path.
    url: String,
}

/// The checks the handshake and signed requests share: header present and
/// well-formed, exactly the expected parameters, the right signature
/// method, consumer key, token and realm, a fresh timestamp.
fn check_common(state: &State, req: &Incoming, expected: &[&str], method: &str) -> Result<Checked> {
    let value = req
        .header("Authorization")
        .context("missing Authorization header")?;
    let header = oauth::parse_authorization(value)?;
    let names: Vec<&str> = header.params.keys().map(String::as_str).collect();
    if names != expected {
        bail!(
            "expected OAuth parameters {}, got {}",
            expected.join(", "),
            names.join(", ")
        );
    }
    let p = &header.params;
    if p["oauth_signature_method"] != method {
        bail!("oauth_signature_method must be {method}");
    }
    let config = &state.config;
    if p["oauth_consumer_key"] != config.consumer_key {
        bail!("{INVALID_CONSUMER}");
    }
    if p["oauth_token"] != config.access_token {
        bail!("invalid oauth_token");
    }
    if header.realm.as_deref() != Some(config.realm.as_str()) {
        bail!("invalid realm");
    }
    let timestamp: i64 = p["oauth_timestamp"]
        .parse()
        .context("oauth_timestamp is not a number")?;
    let server_now = unix_seconds() + config.clock_skew_secs;
    if (timestamp - server_now).abs() > config.timestamp_window.as_secs() as i64 {
        bail!("oauth_timestamp {timestamp} is outside the allowed window");
    }
    let host = req.header("Host").context("missing Host header")?;
    let url = format!("http://{host}{}", req.path);
    let params = p
        .iter()
        .filter(|(k, _)| *k != "oauth_signature")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(Checked {
        header,
        params,
        url,
    })
}

/// `POST /oauth/live_session_token`: checks the RSA-signed request and
/// answers the Diffie-Hellman challenge with a fresh token.
pub(crate) fn handshake(state: &mut State, req: &Incoming) -> Handled {
    if req.method != "POST" {
        return Reply::error(405, "method not allowed").into();
    }
    if state.faults.invalid_consumer {
        return Reply::error(401, INVALID_CONSUMER).into();
    }
    match answer_challenge(state, req) {
        Ok(body) => Handled {
            reply: Reply::json(200, &body),
            signature_verified: true,
        },
        Err(Refusal { message, verified }) => Handled {
            reply: Reply::error(401, &message),
            signature_verified: verified,
        },
    }
}

/// Why a handshake was refused, and whether its signature had checked out.
struct Refusal {
    message: String,
    verified: bool,
}

impl From<anyhow::Error> for Refusal {
    fn from(error: anyhow::Error) -> Refusal {
        Refusal {
            message: format!("{error:#}"),
            verified: false,
        }
    }
}

fn answer_challenge(state: &mut State, req: &Incoming) -> Result<Value, Refusal> {
    let Checked {
        header,
        params,
        url,
    } = check_common(state, req, &HANDSHAKE_PARAMS, "RSA-SHA256")?;
    let prepend = oauth::hex(&state.config.access_token_secret);
    let base = oauth::base_string(&prepend, "POST", &url, &params);
    let p = &header.params;
    if !oauth::verify_rsa_sha256(&state.signature_key, &base, &p["oauth_signature"]) {
        return Err(anyhow::anyhow!("invalid signature").into());
    }
    let refuse = |message: &str| Refusal {
        message: message.to_string(),
        verified: true,
    };
    let window = state.config.timestamp_window.as_secs() as i64;
    let timestamp = p["oauth_timestamp"].parse().unwrap_or_default();
    if !state
        .session
        .use_nonce(&p["oauth_nonce"], timestamp, window)
    {
        return Err(refuse("oauth_nonce was already used"));
    }

    let prime = &state.config.dh_prime;
    let challenge = BigUint::parse_bytes(p["diffie_hellman_challenge"].as_bytes(), 16)
        .ok_or_else(|| refuse("diffie_hellman_challenge is not hexadecimal"))?;
    if challenge <= BigUint::from(1u8) || challenge >= prime - 1u8 {
        return Err(refuse("diffie_hellman_challenge is out of range"));
    }
    let b = rand::thread_rng().gen_biguint(256);
    let response = BigUint::from(2u8).modpow(&b, prime);
    let shared = challenge.modpow(&b, prime);
    let token = oauth::live_session_token(&shared, &state.config.access_token_secret);
    let key = BASE64
        .decode(&token)
        .expect("the token is base64 we just made");
    let mut signature = oauth::token_signature(&key, &state.config.consumer_key);
    if state.faults.wrong_token_signature {
        // Flip the first hex digit: well-formed, but it cannot validate.
        let first = if signature.starts_with('0') { "1" } else { "0" };
        signature.replace_range(0..1, first);
    }

    let expires_at_ms = unix_millis() + state.config.lst_lifetime.as_millis() as u64;
    state.session.forget_token();
    state.session.token = Some(LiveToken { key, expires_at_ms });
    state.handshakes += 1;
    Ok(json!({
        "diffie_hellman_response": response.to_str_radix(16),
        "live_session_token_signature": signature,
        "live_session_token_expiration": expires_at_ms,
    }))
}

/// Checks an HMAC-signed request. `Err` carries the 401 (or 410) to send.
/// The 401 and 410 faults strike here, before the signature is looked at.
pub(crate) fn authenticate(state: &mut State, req: &Incoming) -> Result<(), Reply> {
    if state.faults.unauthorized_next > 0 {
        state.faults.unauthorized_next -= 1;
        state.session.forget_token();
        return Err(Reply::error(401, "live session token expired"));
    }
    if state.faults.gone_next > 0 {
        state.faults.gone_next -= 1;
        state.session.forget_token();
        return Err(Reply::error(410, "Gone"));
    }
    verify_signed(state, req).map_err(|e| Reply::error(401, &format!("{e:#}")))
}

fn verify_signed(state: &mut State, req: &Incoming) -> Result<()> {
    let Checked {
        header,
        mut params,
        url,
    } = check_common(state, req, &SIGNED_PARAMS, "HMAC-SHA256")?;
    let Some(token) = state.session.token.as_ref() else {
        bail!("no live session token; request a new one");
    };
    if unix_millis() >= token.expires_at_ms {
        bail!("live session token expired");
    }
    if state.config.query_signing == QuerySigning::Included {
        params.extend(oauth::query_pairs(&req.query).context("malformed query string")?);
    }
    let base = oauth::base_string("", &req.method, &url, &params);
    let p = &header.params;
    if !oauth::verify_hmac_sha256(&token.key, &base, &p["oauth_signature"]) {
        bail!("invalid signature");
    }
    let window = state.config.timestamp_window.as_secs() as i64;
    let timestamp = p["oauth_timestamp"].parse().unwrap_or_default();
    if !state
        .session
        .use_nonce(&p["oauth_nonce"], timestamp, window)
    {
        bail!("oauth_nonce was already used");
    }
    Ok(())
}

/// Refuses `/iserver/*` (except `/iserver/auth/*`) while no brokerage
/// session is open, with IBKR's plain-text "no bridge".
pub(crate) fn gate(state: &State, api_path: &str, now: Instant) -> Option<Reply> {
    let needs_bridge = api_path.starts_with("/iserver/") && !api_path.starts_with("/iserver/auth/");
    if needs_bridge && !state.session.is_authenticated(now) {
        return Some(Reply::text(400, "Bad Request: no bridge"));
    }
    None
}

/// For endpoints IBKR serves only after `GET /iserver/accounts`: `Err`
/// carries the error to send when that call has not been made.
pub(crate) fn require_accounts_primed(state: &State) -> Result<(), Reply> {
    if state.session.accounts_primed {
        Ok(())
    } else {
        Err(Reply::error(400, "Please query /accounts first"))
    }
}

/// Serves the session and account endpoints; `None` when the request is
/// not one of them.
pub(crate) fn route(
    state: &mut State,
    req: &Incoming,
    api_path: &str,
    now: Instant,
) -> Option<Reply> {
    let reply = match (req.method.as_str(), api_path) {
        ("POST", "/iserver/auth/status") => Reply::json(200, &auth_status(state, now)),
        ("POST", "/iserver/auth/ssodh/init") => init_brokerage(state, req, now),
        ("GET", "/iserver/accounts") => {
            state.session.accounts_primed = true;
            Reply::json(200, &iserver_accounts(state))
        }
        ("POST", "/iserver/account") => switch_account(state, req),
        ("GET" | "POST", "/tickle") => Reply::json(200, &tickle(state, now)),
        ("POST", "/logout") => {
            state.session.forget_token();
            Reply::json(200, &json!({ "status": true }))
        }
        ("GET", "/portfolio/accounts") => {
            let every = state.config.slow_endpoint_interval;
            if let Some(reply) = crate::market::pace(state, "portfolio/accounts", 1, every, now) {
                return Some(reply);
            }
            state.session.portfolio_primed = true;
            Reply::json(200, &portfolio_accounts(state))
        }
        _ => return None,
    };
    Some(reply)
}

fn auth_status(state: &State, now: Instant) -> Value {
    json!({
        "authenticated": state.session.is_authenticated(now),
        "competing": false,
        "connected": true,
        "message": "",
        "MAC": "02:00:00:00:00:01",
        "serverInfo": server_info(),
        "hardware_info": "simulated|02:00:00:00:00:01",
        "fail": "",
    })
}

/// `POST /iserver/auth/ssodh/init`: `publish` must be true, in the JSON
/// body or, as IBKR's guide also allows, the query. A repeated init leaves
/// an open or opening session as it is.
fn init_brokerage(state: &mut State, req: &Incoming, now: Instant) -> Reply {
    let from_body = req
        .json_body()
        .and_then(|body| body.get("publish").and_then(Value::as_bool));
    let from_query = || {
        oauth::query_pairs(&req.query)
            .ok()?
            .into_iter()
            .find(|(k, _)| k == "publish")
            .map(|(_, v)| v == "true")
    };
    if from_body.or_else(from_query) != Some(true) {
        return Reply::error(500, "publish must be true");
    }
    if matches!(state.session.bridge, Bridge::Closed) {
        state.session.bridge = Bridge::OpensAt(now + state.config.init_delay);
        state.session.accounts_primed = false;
    }
    let mut body = auth_status(state, now);
    if let Some(map) = body.as_object_mut() {
        map.remove("hardware_info");
        map.remove("fail");
    }
    Reply::json(200, &body)
}

fn iserver_accounts(state: &State) -> Value {
    let id = &state.config.account_id;
    json!({
        "accounts": [id],
        "acctProps": { id: {
            "hasChildAccounts": false,
            "supportsCashQty": true,
            "supportsFractions": false,
            "allowCustomerTime": false,
        }},
        "aliases": { id: id },
        "allowFeatures": {
            "showGFIS": true,
            "allowFXConv": true,
            "allowTypeAhead": true,
            "snapshotRefreshTimeout": 30,
            "allowedAssetTypes": "STK,CFD,OPT,FUT,CASH,IND,BOND,FUND,WAR",
        },
        "chartPeriods": { "STK": ["*"] },
        "groups": [],
        "profiles": [],
        "selectedAccount": id,
        "serverInfo": server_info(),
        "sessionId": "5f3a1c2e.00000001",
        "isFT": false,
        "isPaper": state.config.paper,
    })
}

/// `POST /iserver/account {"acctId": ...}`: selecting the only account
/// there is; IBKR requires priming first.
fn switch_account(state: &State, req: &Incoming) -> Reply {
    if let Err(reply) = require_accounts_primed(state) {
        return reply;
    }
    let wanted = req
        .json_body()
        .and_then(|b| b.get("acctId")?.as_str().map(str::to_string));
    match wanted {
        Some(id) if id == state.config.account_id => {
            Reply::json(200, &json!({ "set": true, "acctId": id }))
        }
        Some(id) => Reply::error(400, &format!("account {id} is not available")),
        None => Reply::error(400, "body must be {\"acctId\": \"...\"}"),
    }
}

fn tickle(state: &State, now: Instant) -> Value {
    let expires_in = state
        .session
        .token
        .as_ref()
        .map_or(0, |t| t.expires_at_ms.saturating_sub(unix_millis()));
    let mut status = auth_status(state, now);
    if let Some(map) = status.as_object_mut() {
        map.remove("hardware_info");
        map.remove("fail");
    }
    json!({
        "session": "0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e",
        "ssoExpires": expires_in,
        "collission": false,
        "userId": 12345678,
        "hmds": { "error": "no bridge" },
        "iserver": { "authStatus": status },
    })
}

fn portfolio_accounts(state: &State) -> Value {
    let id = &state.config.account_id;
    let paper = state.config.paper;
    json!([{
        "id": id,
        "accountId": id,
        "accountVan": id,
        "accountTitle": if paper { "Paper Trading Account" } else { "Individual Account" },
        "displayName": id,
        "accountAlias": null,
        "accountStatus": 1_700_000_000_000u64,
        "currency": "AUD",
        "type": if paper { "DEMO" } else { "INDIVIDUAL" },
        "tradingType": "STKNOPT",
        "businessType": "IB_PROSERVE",
        "ibEntity": "IB-AU",
        "faclient": false,
        "clearingStatus": "O",
        "covestor": false,
        "noClientTrading": false,
        "trackVirtualFXPortfolio": true,
        "parent": {
            "mmc": [],
            "accountId": "",
            "isMParent": false,
            "isMChild": false,
            "isMultiplex": false,
        },
        "desc": id,
        "brokerageAccess": true,
    }])
}
