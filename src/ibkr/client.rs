//! The signed HTTP client: the live session token, the brokerage session,
//! and the rules for what is retried and what never is.
//!
//! One-shot commands follow reference section 4a: reuse or make the live
//! session token, open the brokerage session, prime `/iserver/accounts`,
//! then call. A 401 or 410 drops the token, makes a new one, re-opens the
//! session and retries the request once. "no bridge", "Please query
//! /accounts first" and "Please query /portfolio/accounts first" are healed
//! once. Idempotent GETs retry 5xx and network errors with jittered
//! backoff; nothing else is retried blindly, so an order POST with an
//! unclear outcome surfaces as an error for its caller to resolve by
//! looking up the order's `cOID`.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, TimeZone, Utc};
use num_bigint::{BigUint, RandBigInt};
use rand::Rng;
use rand::rngs::OsRng;
use reqwest::Url;
use reqwest::blocking::Response;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, USER_AGENT};
use rsa::RsaPrivateKey;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::pacing::{Pacer, RateLimitPause};
use super::sign::{self, Method, OAuthParams};
use crate::error;
use crate::fsutil;
use crate::secret::Secret;

/// skim's User-Agent: IBKR requires one on every call.
pub const USER_AGENT_VALUE: &str = concat!("skim/", env!("CARGO_PKG_VERSION"));

/// A token within this much of its expiry is renewed before use.
const RENEW_BEFORE: Duration = Duration::from_secs(5 * 60);

/// Everything needed to sign: identities from the portal, the private
/// signature key and the decrypted access token secret.
pub struct Credentials {
    pub consumer_key: String,
    pub access_token: String,
    pub realm: String,
    pub dh_prime: BigUint,
    signature_key: RsaPrivateKey,
    /// The decrypted access token secret; its hex is the token request's
    /// prepend and its bytes the HMAC message of the token derivation.
    prepend: Vec<u8>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("consumer_key", &self.consumer_key)
            .field("realm", &self.realm)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Decrypts `access_token_secret` with `encryption_key` and keeps what
    /// signing needs.
    pub fn new(
        consumer_key: &str,
        access_token: &str,
        access_token_secret: &Secret,
        realm: &str,
        dh_prime: BigUint,
        signature_key: RsaPrivateKey,
        encryption_key: &RsaPrivateKey,
    ) -> Result<Credentials> {
        let prepend =
            sign::decrypt_access_token_secret(encryption_key, access_token_secret.expose())
                .map_err(|err| {
                    anyhow::Error::new(error::auth(err.to_string()).hint(
                        "the access token secret is RSA-encrypted to the public encryption key \
                         you uploaded: check OAUTH_ACCESS_TOKEN_SECRET was copied whole and \
                         that private_encryption.pem is that key's private half",
                    ))
                })?;
        Ok(Credentials {
            consumer_key: consumer_key.to_owned(),
            access_token: access_token.to_owned(),
            realm: realm.to_owned(),
            dh_prime,
            signature_key,
            prepend,
        })
    }

    /// Length of the decrypted secret, for `auth-check` to report.
    pub fn secret_len(&self) -> usize {
        self.prepend.len()
    }
}

/// How a client talks to IBKR.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// e.g. `https://api.ibkr.com/v1/api`; paths are appended to it.
    pub base_url: Url,
    pub timeout: Duration,
    /// Put query parameters into the OAuth base string.
    pub sign_query: bool,
    /// Where the token cache and the rate-limit pause live; `None` keeps
    /// nothing on disk.
    pub state_dir: Option<PathBuf>,
    /// Permit accounts that are not paper (`DU...`).
    pub allow_live: bool,
    /// How often and how long to poll the brokerage session after init.
    pub session_poll: Duration,
    pub session_wait: Duration,
}

impl ClientOptions {
    pub fn new(base_url: Url) -> Self {
        ClientOptions {
            base_url,
            timeout: Duration::from_secs(30),
            sign_query: false,
            state_dir: None,
            allow_live: false,
            session_poll: Duration::from_millis(500),
            session_wait: Duration::from_secs(20),
        }
    }
}

/// Where a live session token came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenSource {
    /// Read from the cache file written by an earlier run.
    Cached,
    /// Made by a handshake in this run.
    Fresh,
}

#[derive(Clone)]
struct LiveSessionToken {
    bytes: Vec<u8>,
    expires_at: DateTime<Utc>,
    source: TokenSource,
}

/// The token cache file: the token is a signing secret, so the file is
/// 0600 and refused otherwise.
#[derive(Serialize, Deserialize)]
struct TokenCache {
    /// Fingerprint of consumer key, access token and base URL: a cache made
    /// for other credentials or another server is ignored.
    identity: String,
    token: String,
    expires_at_ms: i64,
}

/// The brokerage account a session trades.
#[derive(Clone, Debug, Serialize)]
pub struct Account {
    pub id: String,
    /// Paper accounts have ids starting `DU`.
    pub paper: bool,
    pub accounts: Vec<String>,
}

/// An HTTP answer from IBKR that the caller may want to branch on.
#[derive(Debug)]
pub struct ApiError {
    pub method: String,
    pub path: String,
    pub status: u16,
    pub body: String,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "IBKR answered HTTP {} to {} {}",
            self.status, self.method, self.path
        )?;
        let body = excerpt(&self.body);
        if !body.is_empty() {
            write!(f, ": {body}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

/// The request could not be completed: no answer, or an answer cut off.
/// For a POST the outcome at IBKR is unknown.
#[derive(Debug)]
pub struct Unanswered {
    pub method: String,
    pub path: String,
}

impl fmt::Display for Unanswered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no complete answer from IBKR to {} {}",
            self.method, self.path
        )
    }
}

impl std::error::Error for Unanswered {}

/// A signed IBKR client for one run. Single-threaded by design: skim's
/// commands are one-shot and sequential.
pub struct Client {
    http: reqwest::blocking::Client,
    opts: ClientOptions,
    creds: Credentials,
    token: RefCell<Option<LiveSessionToken>>,
    account: RefCell<Option<Account>>,
    pacer: RefCell<Pacer>,
    /// Set while the session itself is being opened, so its own calls do not
    /// try to heal by re-opening it.
    opening: Cell<bool>,
    handshakes: Cell<u32>,
    requests: Cell<u32>,
}

struct Answer {
    status: u16,
    text: String,
}

impl Client {
    pub fn new(creds: Credentials, opts: ClientOptions) -> Result<Client> {
        let http = reqwest::blocking::Client::builder()
            .timeout(opts.timeout)
            .connect_timeout(opts.timeout.min(Duration::from_secs(10)))
            .build()
            .context("failed to build the HTTP client")?;
        let pacer = Pacer::new(
            opts.state_dir
                .as_ref()
                .map(|dir| dir.join("ibkr_pacing.json")),
        );
        Ok(Client {
            http,
            opts,
            creds,
            token: RefCell::new(None),
            account: RefCell::new(None),
            pacer: RefCell::new(pacer),
            opening: Cell::new(false),
            handshakes: Cell::new(0),
            requests: Cell::new(0),
        })
    }

    /// Handshakes made by this client so far.
    pub fn handshakes(&self) -> u32 {
        self.handshakes.get()
    }

    /// Requests sent so far, the token request included.
    pub fn requests(&self) -> u32 {
        self.requests.get()
    }

    /// The current token's expiry and origin, once there is one.
    pub fn token_status(&self) -> Option<(DateTime<Utc>, TokenSource)> {
        self.token
            .borrow()
            .as_ref()
            .map(|t| (t.expires_at, t.source))
    }

    /// Makes sure a live session token is at hand: the one in memory, the
    /// cached one, or a new one from a handshake. `fresh` skips the cache.
    pub fn ensure_token(&self, fresh: bool) -> Result<TokenSource> {
        if fresh {
            self.drop_token();
        }
        if let Some(token) = self.token.borrow().as_ref()
            && !expiring(token.expires_at)
        {
            return Ok(token.source);
        }
        if !fresh && let Some(token) = self.read_cached_token()? {
            log::debug!(
                "reusing the cached live session token until {}",
                token.expires_at
            );
            *self.token.borrow_mut() = Some(token);
            return Ok(TokenSource::Cached);
        }
        let token = self.handshake()?;
        self.write_cached_token(&token);
        *self.token.borrow_mut() = Some(token);
        Ok(TokenSource::Fresh)
    }

    /// Opens the brokerage session, primes `/iserver/accounts` and refuses a
    /// live account unless allowed: what every `/iserver` command does first.
    pub fn connect(&self) -> Result<Account> {
        let account = self.open_account()?;
        self.check_account(&account)?;
        Ok(account)
    }

    /// Makes sure of a token, opens the brokerage session and primes
    /// `/iserver/accounts`, returning the selected account.
    pub fn open_account(&self) -> Result<Account> {
        self.ensure_token(false)?;
        self.open_healing()
    }

    /// Refuses (exit 4) an account that is not paper unless `allow_live`.
    pub fn check_account(&self, account: &Account) -> Result<()> {
        if !account.paper && !self.opts.allow_live {
            return Err(error::refused(format!(
                "account {} is a live account; skim trades paper accounts (DU...) only",
                account.id
            ))
            .hint("set SKIM_ALLOW_LIVE=true to let skim use this live account")
            .into());
        }
        Ok(())
    }

    /// The account primed by [`Client::connect`].
    pub fn account(&self) -> Option<Account> {
        self.account.borrow().clone()
    }

    /// `GET path?query`, healed and retried as the module doc says.
    pub fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value> {
        self.call("GET", path, query, None)
    }

    /// `POST path` with a JSON body. Never retried blindly.
    pub fn post(&self, path: &str, body: &Value) -> Result<Value> {
        self.call("POST", path, &[], Some(body))
    }

    /// `DELETE path`. Never retried blindly.
    pub fn delete(&self, path: &str) -> Result<Value> {
        self.call("DELETE", path, &[], None)
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value> {
        // One token renewal and one session repair per call: a renewal can
        // itself leave a session to repair (a new token needs the portfolio
        // primed again), so the two have separate budgets. At most three
        // sends in all.
        let mut renewed = false;
        let mut repaired = false;
        loop {
            self.ensure_token(false)?;
            let answer = self.send(method, path, query, body)?;
            let repair = !repaired && !self.opening.get();
            match answer.status {
                200..=299 => return parse_json(method, path, &answer.text),
                401 | 410 if !renewed => {
                    renewed = true;
                    log::info!(
                        "IBKR answered {} to {path}; renewing the session",
                        answer.status
                    );
                    self.renew_session()?;
                }
                401 | 410 => {
                    return Err(error::auth(format!(
                        "IBKR rejected a new live session token (HTTP {} to {method} {path})",
                        answer.status
                    ))
                    .hint("run `skim auth-check --fresh` to see which step fails")
                    .into());
                }
                _ if repair && is_no_bridge(&answer) => {
                    repaired = true;
                    log::info!("no brokerage session (no bridge); opening one");
                    self.reopen()?;
                }
                _ if repair && needs_accounts(&answer) => {
                    repaired = true;
                    log::info!("IBKR asks for /iserver/accounts first; priming");
                    self.opening.set(true);
                    let primed = self.prime_accounts();
                    self.opening.set(false);
                    primed?;
                }
                _ if repair && needs_portfolio_accounts(&answer) => {
                    repaired = true;
                    // The portfolio endpoints have their own priming call; a
                    // command that reads the summary without reconciling
                    // first (a dry run) meets this.
                    log::info!("IBKR asks for /portfolio/accounts first; priming");
                    self.opening.set(true);
                    let primed = self.call("GET", "/portfolio/accounts", &[], None);
                    self.opening.set(false);
                    primed?;
                }
                status => {
                    return Err(ApiError {
                        method: method.to_owned(),
                        path: path.to_owned(),
                        status,
                        body: answer.text,
                    }
                    .into());
                }
            }
        }
    }

    /// Drops the token, makes a new one, and re-opens the brokerage session.
    fn renew_session(&self) -> Result<()> {
        self.drop_token();
        self.ensure_token(false)?;
        if !self.opening.get() {
            self.reopen()?;
        }
        Ok(())
    }

    fn reopen(&self) -> Result<()> {
        self.open_healing().map(|_| ())
    }

    /// Opens the brokerage session and primes the accounts. A 401 or 410
    /// while opening renews the token but cannot re-open from inside the
    /// opening; a new token needs a new brokerage session, so when one was
    /// made meanwhile and the opening failed, it is run once more.
    fn open_healing(&self) -> Result<Account> {
        let handshakes = self.handshakes.get();
        let result = self.open_once();
        match result {
            Err(err) if self.handshakes.get() > handshakes => {
                log::info!("the session token was renewed while opening ({err:#}); again");
                self.open_once()
            }
            result => result,
        }
    }

    fn open_once(&self) -> Result<Account> {
        self.opening.set(true);
        let result = self
            .open_brokerage_session()
            .and_then(|()| self.prime_accounts());
        self.opening.set(false);
        result
    }

    /// `POST /iserver/auth/status`; when not authenticated and connected,
    /// `POST /iserver/auth/ssodh/init` once and poll the status (bounded).
    /// Re-sending init in a loop makes IBKR answer `{"wait": true}`.
    fn open_brokerage_session(&self) -> Result<()> {
        let status = self.call("POST", "/iserver/auth/status", &[], None)?;
        if healthy(&status) {
            return Ok(());
        }
        let init = serde_json::json!({"publish": true, "compete": true});
        let answer = self.call("POST", "/iserver/auth/ssodh/init", &[], Some(&init))?;
        // init answers with the same flags as the status; often the session
        // is up at once and no poll is needed.
        if healthy(&answer) {
            return Ok(());
        }
        let deadline = Instant::now() + self.opts.session_wait;
        let mut last = Value::Null;
        while Instant::now() < deadline {
            thread::sleep(self.opts.session_poll);
            last = self.call("POST", "/iserver/auth/status", &[], None)?;
            if healthy(&last) {
                return Ok(());
            }
        }
        Err(error::failure(format!(
            "IBKR did not open a brokerage session within {} s (authenticated: {}, \
             connected: {}, competing: {})",
            self.opts.session_wait.as_secs(),
            last["authenticated"],
            last["connected"],
            last["competing"]
        ))
        .hint(
            "another login with this username (TWS, IBKR Mobile, Client Portal) competes for \
             the session; log it out, or give skim its own username",
        )
        .into())
    }

    /// `GET /iserver/accounts`, which IBKR wants before market data and
    /// orders; records the selected account.
    fn prime_accounts(&self) -> Result<Account> {
        let reply = self.call("GET", "/iserver/accounts", &[], None)?;
        let accounts: Vec<String> = reply["accounts"]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|a| a.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let id = reply["selectedAccount"]
            .as_str()
            .map(str::to_owned)
            .or_else(|| accounts.first().cloned())
            .context("IBKR's /iserver/accounts lists no account")?;
        let account = Account {
            paper: id.starts_with("DU"),
            id,
            accounts,
        };
        *self.account.borrow_mut() = Some(account.clone());
        Ok(account)
    }

    /// One signed exchange, with pacing, the rate-limit pause, and retries
    /// for GETs only.
    fn send(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Answer> {
        let attempts = if method == "GET" { 3 } else { 1 };
        for attempt in 1..=attempts {
            self.pause().map(|p| p.check(Utc::now())).transpose()?;
            self.pacer.borrow_mut().wait(path);
            let last = attempt == attempts;
            match self.exchange(method, path, query, body) {
                Ok(answer) if answer.status == 429 => {
                    return Err(self.rate_limited(&format!("{method} {path}")));
                }
                Ok(answer) if answer.status >= 500 && !last => {
                    log::warn!("IBKR answered {} to GET {path}; retrying", answer.status);
                }
                Ok(answer) => return Ok(answer),
                Err(err) if !last => log::warn!("{err:#}; retrying GET {path}"),
                Err(err) => {
                    return Err(err.context(Unanswered {
                        method: method.to_owned(),
                        path: path.to_owned(),
                    }));
                }
            }
            thread::sleep(backoff(attempt));
        }
        unreachable!("the last attempt always returns")
    }

    fn exchange(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Answer> {
        let url = self.url(path, query)?;
        let token = self.token.borrow().as_ref().map(|t| t.bytes.clone());
        let token = token.context("no live session token")?;
        let nonce = nonce();
        let timestamp = Utc::now().timestamp().to_string();
        let params = OAuthParams {
            consumer_key: &self.creds.consumer_key,
            access_token: &self.creds.access_token,
            nonce: &nonce,
            timestamp: &timestamp,
            method: Method::HmacSha256,
            dh_challenge: None,
        };
        let signed_query: Vec<(String, String)> = if self.opts.sign_query {
            query
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect()
        } else {
            Vec::new()
        };
        let base = sign::base_string(method, &signed_url(&url), &params, &signed_query, None);
        let signature = sign::hmac_sha256_signature(&token, &base);
        let header = sign::authorization_header(&self.creds.realm, &params, &signature);
        log::debug!("{method} {url}");
        let request = self.http.request(method.parse()?, url.clone());
        let response = self.dispatch(request, header, body)?;
        read_answer(response)
    }

    fn dispatch(
        &self,
        request: reqwest::blocking::RequestBuilder,
        authorization: String,
        body: Option<&Value>,
    ) -> Result<Response> {
        let mut auth = reqwest::header::HeaderValue::from_str(&authorization)?;
        auth.set_sensitive(true);
        let request = request
            .header(AUTHORIZATION, auth)
            .header(USER_AGENT, USER_AGENT_VALUE)
            .header(ACCEPT, "*/*");
        // IBKR answers 411 to a POST without Content-Length, so body-less
        // requests say 0 explicitly.
        let request = match body {
            Some(json) => request
                .header(CONTENT_TYPE, "application/json")
                .body(serde_json::to_vec(json).expect("JSON values serialise")),
            None => request.header(CONTENT_LENGTH, "0").body(Vec::new()),
        };
        self.requests.set(self.requests.get() + 1);
        request
            .send()
            .map_err(|err| anyhow::Error::new(err.without_url()))
    }

    /// The live session token handshake (reference section 2), validated
    /// against IBKR's signature every time.
    fn handshake(&self) -> Result<LiveSessionToken> {
        let path = "/oauth/live_session_token";
        if let Some(pause) = self.pause() {
            pause.check(Utc::now())?;
        }
        let creds = &self.creds;
        let a = OsRng.gen_biguint(256);
        let challenge = sign::dh_challenge(&a, &creds.dh_prime);
        let nonce = nonce();
        let timestamp = Utc::now().timestamp().to_string();
        let params = OAuthParams {
            consumer_key: &creds.consumer_key,
            access_token: &creds.access_token,
            nonce: &nonce,
            timestamp: &timestamp,
            method: Method::RsaSha256,
            dh_challenge: Some(&challenge),
        };
        let url = self.url(path, &[])?;
        let prepend = sign::hex(&creds.prepend);
        let base = sign::base_string("POST", &signed_url(&url), &params, &[], Some(&prepend));
        let signature = sign::rsa_sha256_signature(&creds.signature_key, &base);
        let header = sign::authorization_header(&creds.realm, &params, &signature);
        self.pacer.borrow_mut().wait(path);
        self.handshakes.set(self.handshakes.get() + 1);
        let response = self
            .dispatch(self.http.post(url), header, None)
            .with_context(|| {
                format!(
                    "failed to reach IBKR at {} (POST {path})",
                    self.opts.base_url
                )
            })?;
        let answer = read_answer(response)?;
        match answer.status {
            200 => {}
            401 => return Err(handshake_rejected(&answer.text)),
            429 => return Err(self.rate_limited(&format!("POST {path}"))),
            status => {
                return Err(ApiError {
                    method: "POST".into(),
                    path: path.into(),
                    status,
                    body: answer.text,
                }
                .into());
            }
        }
        let reply: HandshakeReply = serde_json::from_str(&answer.text).with_context(|| {
            format!(
                "IBKR's live session token answer is not what was expected: {}",
                excerpt(&answer.text)
            )
        })?;
        let bytes = sign::live_session_token(
            &reply.diffie_hellman_response,
            &a,
            &creds.dh_prime,
            &creds.prepend,
        )?;
        if !sign::validate_live_session_token(
            &bytes,
            &creds.consumer_key,
            &reply.live_session_token_signature,
        ) {
            return Err(error::auth(
                "the live session token did not validate: IBKR's signature of it does not match \
                 the token skim derived",
            )
            .hint(
                "OAUTH_ACCESS_TOKEN_SECRET, private_encryption.pem and OAUTH_DH_PRIME do not \
                 belong together; the secret must come from the portal page where the current \
                 public_encryption.pem and dhparam.pem were uploaded",
            )
            .into());
        }
        let expires_at = Utc
            .timestamp_millis_opt(reply.live_session_token_expiration)
            .single()
            .context("IBKR's live_session_token_expiration is not a valid time")?;
        Ok(LiveSessionToken {
            bytes,
            expires_at,
            source: TokenSource::Fresh,
        })
    }

    fn url(&self, path: &str, query: &[(&str, String)]) -> Result<Url> {
        debug_assert!(path.starts_with('/'));
        let base = self.opts.base_url.as_str().trim_end_matches('/');
        let mut url = Url::parse(&format!("{base}{path}"))
            .with_context(|| format!("failed to build the URL for {path}"))?;
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        Ok(url)
    }

    /// Records a 429 (pausing all traffic, see `pacing`) and returns the
    /// error to report.
    fn rate_limited(&self, cause: &str) -> anyhow::Error {
        match self.pause() {
            Some(pause) => pause.record(Utc::now(), cause),
            None => anyhow::anyhow!("IBKR rate limit (HTTP 429 to {cause})"),
        }
    }

    fn pause(&self) -> Option<RateLimitPause> {
        self.opts
            .state_dir
            .as_ref()
            .map(|dir| RateLimitPause::new(dir.join("ibkr_pause.json")))
    }

    fn cache_path(&self) -> Option<PathBuf> {
        self.opts
            .state_dir
            .as_ref()
            .map(|dir| dir.join("ibkr_session.json"))
    }

    fn identity(&self) -> String {
        let mut hasher = Sha256::new();
        for part in [
            &self.creds.consumer_key,
            &self.creds.access_token,
            self.opts.base_url.as_str(),
        ] {
            hasher.update(part.as_bytes());
            hasher.update([0]);
        }
        sign::hex(&hasher.finalize()[..16])
    }

    fn read_cached_token(&self) -> Result<Option<LiveSessionToken>> {
        let Some(path) = self.cache_path() else {
            return Ok(None);
        };
        if !path.exists() {
            return Ok(None);
        }
        fsutil::require_private_mode(&path, "session token cache")?;
        let parsed = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<TokenCache>(&bytes).ok());
        let Some(cache) = parsed else {
            log::warn!(
                "ignoring an unreadable session token cache at {}",
                path.display()
            );
            return Ok(None);
        };
        if cache.identity != self.identity() {
            log::debug!("the cached token belongs to other credentials; ignoring it");
            return Ok(None);
        }
        let expires_at = Utc.timestamp_millis_opt(cache.expires_at_ms).single();
        let bytes = BASE64.decode(&cache.token).ok();
        match (expires_at, bytes) {
            (Some(expires_at), Some(bytes)) if !expiring(expires_at) => {
                Ok(Some(LiveSessionToken {
                    bytes,
                    expires_at,
                    source: TokenSource::Cached,
                }))
            }
            _ => Ok(None),
        }
    }

    fn write_cached_token(&self, token: &LiveSessionToken) {
        let Some(path) = self.cache_path() else {
            return;
        };
        let cache = TokenCache {
            identity: self.identity(),
            token: BASE64.encode(&token.bytes),
            expires_at_ms: token.expires_at.timestamp_millis(),
        };
        let bytes = serde_json::to_vec(&cache).expect("serialisable");
        // A cache that cannot be written costs a handshake next run, nothing more.
        if let Err(err) = fsutil::write_private_file(&path, &bytes) {
            log::warn!("could not cache the live session token: {err:#}");
        }
    }

    fn drop_token(&self) {
        *self.token.borrow_mut() = None;
        if let Some(path) = self.cache_path()
            && path.exists()
            && let Err(err) = std::fs::remove_file(&path)
        {
            log::warn!("could not remove {}: {err}", path.display());
        }
    }
}

#[derive(Deserialize)]
struct HandshakeReply {
    diffie_hellman_response: String,
    live_session_token_signature: String,
    live_session_token_expiration: i64,
}

/// Maps IBKR's 401 on the token request to its likely cause.
fn handshake_rejected(body: &str) -> anyhow::Error {
    let lower = body.to_ascii_lowercase();
    let detail = excerpt(body);
    let coded = if lower.contains("invalid consumer") {
        error::auth(format!("IBKR does not accept the consumer key ({detail})")).hint(
            "IBKR activates a new consumer key only after its weekend restart; if the key is \
             older, check OAUTH_CONSUMER_KEY and OAUTH_REALM",
        )
    } else if lower.contains("timestamp") {
        error::auth(format!("IBKR rejected the request time ({detail})"))
            .hint("this machine's clock is off; sync it (e.g. `timedatectl set-ntp true`)")
    } else if lower.contains("access secret") || lower.contains("access token") {
        error::auth(format!("IBKR does not accept the access token ({detail})"))
            .hint("regenerate the access token in IBKR's self-service portal and copy both values")
    } else {
        error::auth(format!(
            "IBKR rejected the live session token request ({detail})"
        ))
        .hint(
            "check that private_signature.pem is the private half of the public signature key \
             uploaded for this consumer key, and that OAUTH_ACCESS_TOKEN is current",
        )
    };
    coded.into()
}

fn read_answer(response: Response) -> Result<Answer> {
    let status = response.status().as_u16();
    let text = response
        .text()
        .map_err(|err| anyhow::Error::new(err.without_url()))
        .context("the answer was cut off")?;
    Ok(Answer { status, text })
}

fn parse_json(method: &str, path: &str, text: &str) -> Result<Value> {
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(text).with_context(|| {
        format!(
            "IBKR's answer to {method} {path} is not JSON: {}",
            excerpt(text)
        )
    })
}

fn healthy(status: &Value) -> bool {
    status["authenticated"].as_bool() == Some(true)
        && status["connected"].as_bool() == Some(true)
        && status["competing"].as_bool() != Some(true)
}

fn is_no_bridge(answer: &Answer) -> bool {
    answer.status >= 400 && answer.text.to_ascii_lowercase().contains("no bridge")
}

fn needs_accounts(answer: &Answer) -> bool {
    answer.status >= 400 && answer.text.contains("Please query /accounts first")
}

fn needs_portfolio_accounts(answer: &Answer) -> bool {
    answer.status >= 400
        && answer
            .text
            .contains("Please query /portfolio/accounts first")
}

fn expiring(expires_at: DateTime<Utc>) -> bool {
    Utc::now() + chrono::Duration::from_std(RENEW_BEFORE).expect("fits") >= expires_at
}

/// The URL as signed: scheme, host, port when not the default, and path,
/// exactly as requested; no query.
fn signed_url(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    match url.port() {
        Some(port) => format!("{}://{host}:{port}{}", url.scheme(), url.path()),
        None => format!("{}://{host}{}", url.scheme(), url.path()),
    }
}

/// 16 random alphanumerics from the OS CSPRNG.
fn nonce() -> String {
    let mut rng = OsRng;
    (0..16)
        .map(|_| rng.sample(rand::distributions::Alphanumeric) as char)
        .collect()
}

/// 250 ms, 500 ms, ... with up to 50% random jitter, so many clients do not
/// retry in step.
fn backoff(attempt: u32) -> Duration {
    let base = 250u64 << attempt.saturating_sub(1).min(4);
    Duration::from_millis(base + rand::thread_rng().gen_range(0..=base / 2))
}

/// The first 200 characters of an answer, control characters escaped: IBKR
/// text is untrusted and goes to a terminal.
pub fn excerpt(text: &str) -> String {
    let mut out: String = text
        .trim()
        .chars()
        .take(200)
        .flat_map(char::escape_default)
        .collect();
    if text.trim().chars().count() > 200 {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_url_drops_default_ports_and_the_query() {
        let url = Url::parse("https://API.ibkr.com:443/v1/api/x?a=1").unwrap();
        assert_eq!(signed_url(&url), "https://api.ibkr.com/v1/api/x");
        let url = Url::parse("http://127.0.0.1:8123/v1/api/x").unwrap();
        assert_eq!(signed_url(&url), "http://127.0.0.1:8123/v1/api/x");
    }

    #[test]
    fn nonces_are_alphanumeric_and_distinct() {
        let (a, b) = (nonce(), nonce());
        assert_eq!(a.len(), 16);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }

    #[test]
    fn excerpts_escape_control_characters() {
        assert_eq!(excerpt("bad\x1b[31m"), "bad\\u{1b}[31m");
        assert!(excerpt(&"x".repeat(300)).ends_with("..."));
    }

    #[test]
    fn handshake_rejections_map_to_causes() {
        let err = handshake_rejected(r#"{"error":"id: 123, error: invalid consumer"}"#);
        assert_eq!(error::exit_kind(&err), error::ExitKind::Auth);
        assert!(error::hint(&err).unwrap().contains("weekend restart"));
        let err = handshake_rejected("invalid timestamp");
        assert!(error::hint(&err).unwrap().contains("clock"));
    }

    #[test]
    fn backoff_grows_with_jitter() {
        for attempt in 1..4 {
            let base = 250u64 << (attempt - 1);
            let wait = backoff(attempt).as_millis() as u64;
            assert!((base..=base + base / 2).contains(&wait));
        }
    }
}
