//! A loopback stand-in for IBKR's Client Portal Web API, strict where IBKR is
//! strict, so skim's tests run through the real HTTP path without a broker.
//!
//! This crate owns the server side of OAuth 1.0a as IBKR plays it: it checks
//! the live session token request's RSA signature with the user's public
//! signature key, answers the Diffie-Hellman challenge, checks the HMAC
//! signature of every later request, and keeps IBKR's session state (portal
//! session, brokerage session, account priming). It is deliberately
//! independent of the `skim-asx` crate: both sides implement the reference
//! separately, so a bug shared by client and server cannot hide.
//!
//! Beside the session it plays a trading day, or a week
//! ([`Scenario::example_week`]), from a [`Scenario`]: IBKR's scanner,
//! contract search and rules, snapshots and history (`market`), the
//! broker's side (`orders`, `broker`), the ASX announcements page (`asx`)
//! and a Discord webhook (`discord`), all answering for the market clock
//! set with [`Simulator::set_now`] or `POST /sim/clock` (`control`).
//! Moving the clock forward works the open orders against the bars that
//! become public on the way.
//!
//! The broker's endpoints (all under `/v1/api`, HMAC-signed):
//!
//! - `POST /iserver/account/{acct}/orders`: places one order or a bracket
//!   (MKT, LMT, STP, STOP_LIMIT; DAY or GTC) after strict checks, whose
//!   failures are answered 200 `{"error"}`; a `cOID` stays taken for 24 h;
//!   the questions of [`Config::order_questions`] come first.
//! - `POST /iserver/reply/{id}`: `{"confirmed": true}` answers with the next
//!   question or places; `false` discards; a stale id is a 503.
//! - `POST /iserver/questions/suppress` (and `.../reset`): skips those
//!   message ids for the brokerage session.
//! - `POST /iserver/account/{acct}/order/{id}`: modifies quantity, prices or
//!   tif; may ask questions too.
//! - `DELETE /iserver/account/{acct}/order/{id}`: cancels, with a bracket
//!   parent's children; `-1` cancels all.
//! - `GET /iserver/account/orders`: live orders and those done today, after
//!   a pre-flight call answered `snapshot: false`; 1 call per 5 s.
//! - `GET /iserver/account/order/status/{id}`: one order; 503 when unknown.
//! - `GET /iserver/account/trades?days=N`: executions of the last N (≤ 7)
//!   days; 1 call per 5 s.
//! - `GET /portfolio/accounts`: primes `/portfolio`; 1 call per 5 s.
//! - `GET /portfolio/{acct}/positions/{page}`: non-zero positions, 100 a
//!   page, from a cache that `POST /portfolio/{acct}/positions/invalidate`
//!   refreshes.
//! - `GET /portfolio/{acct}/summary`: cash, net liquidation, available
//!   funds, buying power.
//!
//! The control endpoints, unsigned, outside `/v1/api`: `POST /sim/clock
//! {"now": RFC 3339}` moves the clock (and works orders), `GET /sim/clock`
//! reads it, `GET /sim/state` dumps request counts, Discord messages,
//! orders, executions, positions and cash. In tests, [`Simulator::orders`],
//! [`Simulator::executions`], [`Simulator::positions`],
//! [`Simulator::set_position`] and [`Faults::drop_after_order`] /
//! [`Faults::error_after_order`] do the same and more.
//!
//! Tests build a [`Config`] (usually with [`Setup::from_keys_dir`]), start a
//! [`Simulator`] on port 0, point the client at [`Simulator::base_url`],
//! switch [`Faults`] on while it runs, and assert on the request log:
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use skim_sim::{Setup, Simulator};
//!
//! let setup = Setup::from_keys_dir(std::path::Path::new("oauth_keys"))?;
//! let sim = Simulator::start(setup.config.clone())?;
//! let env = setup.env_pairs(&sim.base_url()); // give these to the client
//! # let _ = env;
//! // ... run the client ...
//! sim.faults(|f| f.unauthorized_next = 1); // the next signed request: 401
//! // ... run it again ...
//! assert_eq!(sim.handshake_count(), 2);
//! # Ok(())
//! # }
//! ```

pub mod asx;
pub mod broker;
pub mod control;
pub mod discord;
pub mod http;
pub mod market;
pub mod oauth;
pub mod orders;
pub mod pathfault;
pub mod scenario;
pub mod session;
pub mod setup;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use num_bigint::BigUint;
use rsa::RsaPublicKey;
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::DecodePublicKey;

pub use asx::AsxFaults;
pub use broker::{Execution, Order, OrderStatus, OrderType, Position, Side, Tif};
pub use discord::{DiscordFaults, DiscordMessage};
pub use pathfault::{FaultKind, PathFault};
pub use scenario::Scenario;
pub use setup::Setup;

/// Where the simulator expects query parameters when it rebuilds the base
/// string of an HMAC-signed request. IBKR's behaviour here is unconfirmed
/// (reference section 3), so the simulator accepts exactly one form at a time
/// and the tests pick which.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum QuerySigning {
    /// Only the five OAuth parameters are signed; the query is left out.
    #[default]
    Excluded,
    /// The query's pairs are merged into the sorted parameter list.
    Included,
}

/// Everything the simulator knows about the one user it serves.
///
/// The access-token secret is held in plain text: it is what IBKR stores and
/// what the client recovers by decrypting its configured secret.
#[derive(Clone)]
pub struct Config {
    /// The consumer key the user registered (9 letters at IBKR).
    pub consumer_key: String,
    /// The access token the portal handed out.
    pub access_token: String,
    /// The OAuth realm every request must name.
    pub realm: String,
    /// The user's public signature key, PEM (SPKI or PKCS#1).
    pub public_signature_pem: String,
    /// The plaintext access-token secret S; its hex form is the "prepend".
    pub access_token_secret: Vec<u8>,
    /// The Diffie-Hellman prime p; the generator is always 2.
    pub dh_prime: BigUint,
    /// The account served by `/iserver/accounts` and `/portfolio/accounts`.
    pub account_id: String,
    /// Whether the account is a paper account; paper ids start with `DU`.
    pub paper: bool,
    /// How long a live session token stays valid after the handshake.
    pub lst_lifetime: Duration,
    /// Which base-string form HMAC-signed requests must use.
    pub query_signing: QuerySigning,
    /// How long after `ssodh/init` the brokerage session becomes
    /// authenticated; zero means at once.
    pub init_delay: Duration,
    /// Maximum distance between an OAuth timestamp and the real clock.
    pub timestamp_window: Duration,
    /// Seconds the simulator's clock runs ahead of the real one (negative:
    /// behind), to play a client machine whose clock is off.
    pub clock_skew_secs: i64,
    /// TCP port to listen on, 127.0.0.1 only; 0 picks a free one.
    pub port: u16,
    /// Print one line per request on stderr (the binary turns this on).
    pub log_requests: bool,
    /// The account's cash before any fill, A$.
    pub opening_cash: f64,
    /// Message ids every order request is asked about, in order, before it
    /// is placed (e.g. `o163`, `o10152`); ids the session suppressed are
    /// skipped. Empty: orders are placed at once.
    pub order_questions: Vec<String>,
    /// Message ids asked, after those, only about requests that place a
    /// market order (IBKR's `o10151` market-order warning is one).
    pub market_order_questions: Vec<String>,
    /// The pacing of `GET /iserver/account/orders`, `GET
    /// /iserver/account/trades` and `GET /portfolio/accounts`: one call per
    /// this interval (IBKR: 5 s). Tests may shorten it.
    pub slow_endpoint_interval: Duration,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret S must never reach a log, even a test's.
        f.debug_struct("Config")
            .field("consumer_key", &self.consumer_key)
            .field("access_token", &self.access_token)
            .field("realm", &self.realm)
            .field("access_token_secret", &"(redacted)")
            .field("account_id", &self.account_id)
            .field("paper", &self.paper)
            .field("query_signing", &self.query_signing)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Builds a config with IBKR's defaults around the given credentials:
    /// realm `limited_poa`, paper account `DU1234567`, a 24-hour token
    /// lifetime, query parameters excluded from signatures, immediate
    /// `ssodh/init`, a ±300 s timestamp window and port 0.
    pub fn new(
        consumer_key: &str,
        access_token: &str,
        public_signature_pem: &str,
        access_token_secret: Vec<u8>,
        dh_prime: BigUint,
    ) -> Config {
        Config {
            consumer_key: consumer_key.to_string(),
            access_token: access_token.to_string(),
            realm: "limited_poa".to_string(),
            public_signature_pem: public_signature_pem.to_string(),
            access_token_secret,
            dh_prime,
            account_id: "DU1234567".to_string(),
            paper: true,
            lst_lifetime: Duration::from_secs(24 * 3600),
            query_signing: QuerySigning::Excluded,
            init_delay: Duration::ZERO,
            timestamp_window: Duration::from_secs(300),
            clock_skew_secs: 0,
            port: 0,
            log_requests: false,
            opening_cash: 100_000.0,
            order_questions: Vec::new(),
            market_order_questions: Vec::new(),
            slow_endpoint_interval: Duration::from_secs(5),
        }
    }

    /// Switches to a live account (`U7654321`), as a user with a funded
    /// account would have.
    pub fn with_live_account(mut self) -> Config {
        self.account_id = "U7654321".to_string();
        self.paper = false;
        self
    }

    /// Checks the fields that tests could get wrong and returns the parsed
    /// public signature key.
    fn validate(&self) -> Result<RsaPublicKey> {
        if self.consumer_key.is_empty() || self.access_token.is_empty() {
            bail!("consumer key and access token must not be empty");
        }
        if self.access_token_secret.is_empty() {
            bail!("access token secret must not be empty");
        }
        if self.dh_prime <= BigUint::from(3u8) {
            bail!("diffie-hellman prime is too small");
        }
        if self.paper != self.account_id.starts_with("DU") {
            bail!(
                "account id {} does not match paper={} (paper ids start with DU)",
                self.account_id,
                self.paper
            );
        }
        parse_public_key(&self.public_signature_pem).context("invalid public signature key")
    }
}

/// Parses an RSA public key from SPKI (`BEGIN PUBLIC KEY`) or PKCS#1
/// (`BEGIN RSA PUBLIC KEY`) PEM.
pub fn parse_public_key(pem: &str) -> Result<RsaPublicKey> {
    if pem.contains("BEGIN RSA PUBLIC KEY") {
        RsaPublicKey::from_pkcs1_pem(pem).context("expected a PKCS#1 RSA public key")
    } else {
        RsaPublicKey::from_public_key_pem(pem).context("expected an SPKI RSA public key")
    }
}

/// Misbehaviour switched on while the simulator runs. Counters count down
/// as requests consume them; flags stay on until switched off.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Answer handshakes with a token signature that does not validate.
    pub wrong_token_signature: bool,
    /// Refuse handshakes with IBKR's "invalid consumer" 401, as for a
    /// consumer key that is not active yet.
    pub invalid_consumer: bool,
    /// Answer the next N signed requests with 401 and forget the live
    /// session token, as when it expires mid-session.
    pub unauthorized_next: u32,
    /// Answer the next N signed requests with 410 Gone and forget the live
    /// session token.
    pub gone_next: u32,
    /// Answer the next N requests with this 5xx status: `(status, n)`.
    pub server_error: Option<(u16, u32)>,
    /// When set, the next request trips the rate limit: it and every request
    /// within this period after it get 429 (IBKR's penalty box).
    pub penalty: Option<Duration>,
    /// Sleep this long before answering any request.
    pub delay: Duration,
    /// The next N requests that place or modify an order do so (the order
    /// exists at the broker) but the connection is closed before any
    /// answer. With a question chain, the request that completes the
    /// chain is the one that counts.
    pub drop_after_order: u32,
    /// The next N requests that place or modify an order do so, then are
    /// answered with this 5xx status: `(status, n)`.
    pub error_after_order: Option<(u16, u32)>,
    /// Faults of the ASX announcements page.
    pub asx: AsxFaults,
    /// Faults of the Discord webhook.
    pub discord: DiscordFaults,
    /// Faults aimed at single endpoints of any service, first match wins.
    pub path_faults: Vec<PathFault>,
}

/// One request as the simulator saw it.
#[derive(Clone, Debug)]
pub struct RequestRecord {
    /// HTTP method, upper case.
    pub method: String,
    /// Path as requested, without the query (e.g. `/v1/api/tickle`).
    pub path: String,
    /// Raw query string without `?`; empty when there was none.
    pub query: String,
    /// Status code of the answer.
    pub status: u16,
    /// Whether the OAuth signature (RSA or HMAC) checked out.
    pub signature_verified: bool,
    /// Request headers in arrival order, `Authorization` left out.
    pub headers: Vec<(String, String)>,
    /// Request body as text (lossy UTF-8).
    pub body: String,
}

/// The live session token the simulator handed out last.
#[derive(Clone)]
pub(crate) struct LiveToken {
    /// Raw token bytes: the HMAC key for signed requests.
    pub key: Vec<u8>,
    pub expires_at_ms: u64,
}

/// Mutable server state, behind one lock: requests are short, and a single
/// lock keeps nonce checks and session changes free of races.
pub(crate) struct State {
    pub config: Config,
    pub signature_key: RsaPublicKey,
    pub faults: Faults,
    pub penalty_until: Option<Instant>,
    pub session: session::Session,
    pub log: Vec<RequestRecord>,
    pub handshakes: usize,
    pub market: market::Market,
    pub discord: discord::Sink,
    pub book: broker::Book,
    /// Set by a handler to close the connection without answering.
    pub hang_up: bool,
}

impl State {
    /// Moves the market clock to `now`, working orders against the bars
    /// that become public on the way.
    pub(crate) fn move_clock(&mut self, now: DateTime<Utc>) {
        broker::advance(&self.market.scenario, &mut self.book, self.market.now, now);
        self.market.now = now;
    }
}

pub(crate) type Shared = Arc<Mutex<State>>;

/// Locks the state, recovering it if a worker panicked while holding it:
/// the data stays usable for the assertions that follow.
pub(crate) fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running simulator. Dropping it stops the workers and closes the port.
pub struct Simulator {
    shared: Shared,
    server: http::Server,
}

impl Simulator {
    /// Validates `config` and starts serving on 127.0.0.1 at `config.port`.
    pub fn start(config: Config) -> Result<Simulator> {
        let signature_key = config.validate()?;
        let port = config.port;
        let cash = config.opening_cash;
        let shared = Arc::new(Mutex::new(State {
            config,
            signature_key,
            faults: Faults::default(),
            penalty_until: None,
            session: session::Session::default(),
            log: Vec::new(),
            handshakes: 0,
            market: market::Market::new(Scenario::example()),
            discord: discord::Sink::new(),
            book: broker::Book::new(cash),
            hang_up: false,
        }));
        let server = http::Server::start(port, Arc::clone(&shared))?;
        Ok(Simulator { shared, server })
    }

    /// The socket the simulator listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The API base URL to give the client, `http://127.0.0.1:PORT/v1/api`.
    pub fn base_url(&self) -> String {
        format!("http://{}{}", self.addr(), http::API_PREFIX)
    }

    /// Replaces all fault switches at once.
    pub fn set_faults(&self, faults: Faults) {
        lock(&self.shared).faults = faults;
    }

    /// Changes some fault switches, e.g. `sim.faults(|f| f.gone_next = 1)`.
    pub fn faults(&self, change: impl FnOnce(&mut Faults)) {
        change(&mut lock(&self.shared).faults);
    }

    /// Drops the brokerage session, so `/iserver/*` answers "no bridge"
    /// until the client calls `ssodh/init` again.
    pub fn drop_bridge(&self) {
        lock(&self.shared).session.drop_bridge();
    }

    /// Forgets that `/iserver/accounts` was called, as after IBKR's daily
    /// reset, so priming-dependent endpoints answer "Please query /accounts
    /// first".
    pub fn lose_priming(&self) {
        lock(&self.shared).session.accounts_primed = false;
    }

    /// Forgets the live session token, as if it had expired.
    pub fn expire_token(&self) {
        lock(&self.shared).session.forget_token();
    }

    /// Serves a different account from now on; `paper` must agree with the
    /// id (`DU...` for paper, `U...` for live).
    pub fn set_account(&self, account_id: &str, paper: bool) -> Result<()> {
        if paper != account_id.starts_with("DU") {
            bail!("account id {account_id} does not match paper={paper}");
        }
        let mut state = lock(&self.shared);
        state.config.account_id = account_id.to_string();
        state.config.paper = paper;
        Ok(())
    }

    /// Switches the base-string form signed requests must use.
    pub fn set_query_signing(&self, mode: QuerySigning) {
        lock(&self.shared).config.query_signing = mode;
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.shared).log.clone()
    }

    /// How many requests had this method and API path (e.g. `"GET"`,
    /// `"/iserver/accounts"`; the `/v1/api` prefix is implied).
    pub fn count(&self, method: &str, api_path: &str) -> usize {
        let path = format!("{}{api_path}", http::API_PREFIX);
        let state = lock(&self.shared);
        state
            .log
            .iter()
            .filter(|r| r.method == method && r.path == path)
            .count()
    }

    /// How many live session tokens were handed out.
    pub fn handshake_count(&self) -> usize {
        lock(&self.shared).handshakes
    }

    /// Whether the brokerage session is authenticated right now.
    pub fn is_brokerage_authenticated(&self) -> bool {
        lock(&self.shared).session.is_authenticated(Instant::now())
    }

    /// Plays another trading day (the example day until this is called).
    /// The market clock moves to 07:00 Sydney on its date and snapshot
    /// subscriptions are dropped.
    pub fn set_scenario(&self, scenario: Scenario) {
        lock(&self.shared).market.set_scenario(scenario);
    }

    /// The trading day being played.
    pub fn scenario(&self) -> Scenario {
        lock(&self.shared).market.scenario.clone()
    }

    /// Sets the market's "now"; it stands still until set again. Prices,
    /// bars, scanner results and the announcements page follow it, and
    /// moving it forward works the open orders against the bars passed
    /// (see [`broker`]).
    pub fn set_now(&self, now: DateTime<Utc>) {
        lock(&self.shared).move_clock(now);
    }

    /// The market's "now".
    pub fn now(&self) -> DateTime<Utc> {
        lock(&self.shared).market.now
    }

    /// How long the penalty box lasts after a pacing violation (scanner
    /// params within 15 minutes, snapshots over 10/s, scanner runs over
    /// 1/s); 10 minutes unless changed.
    pub fn set_penalty_period(&self, period: Duration) {
        lock(&self.shared).market.penalty = period;
    }

    /// Every order the broker has, oldest first.
    pub fn orders(&self) -> Vec<Order> {
        lock(&self.shared).book.orders.clone()
    }

    /// Every fill, oldest first.
    pub fn executions(&self) -> Vec<Execution> {
        lock(&self.shared).book.executions.clone()
    }

    /// Every contract the account has traded or holds, flat ones included
    /// (their realized P&L stays), by conid.
    pub fn positions(&self) -> Vec<Position> {
        lock(&self.shared)
            .book
            .positions
            .values()
            .cloned()
            .collect()
    }

    /// The account's cash, A$: the opening cash less buys plus sells.
    pub fn cash(&self) -> f64 {
        lock(&self.shared).book.cash
    }

    /// How many orders carry this `cOID`, whatever their status.
    pub fn count_orders_with_coid(&self, coid: &str) -> usize {
        let state = lock(&self.shared);
        let orders = &state.book.orders;
        orders
            .iter()
            .filter(|o| o.coid.as_deref() == Some(coid))
            .count()
    }

    /// Sets the holding in an ASX contract of the scenario directly, as a
    /// position opened outside the client (for reconciliation tests);
    /// cash is not touched. The positions endpoint shows it only after the
    /// client invalidates its cache, as at IBKR.
    pub fn set_position(&self, conid: u64, quantity: i64, avg_cost: f64) -> Result<()> {
        let mut state = lock(&self.shared);
        let Some(inst) = state.market.scenario.by_conid(conid) else {
            bail!("conid {conid} is not an ASX contract of the scenario");
        };
        if !avg_cost.is_finite() || avg_cost < 0.0 {
            bail!("average cost must be a non-negative price, got {avg_cost}");
        }
        let symbol = inst.symbol.clone();
        state.book.set_position(conid, &symbol, quantity, avg_cost);
        Ok(())
    }

    /// Asks these message ids, in order, about every later order request
    /// (see [`Config::order_questions`]).
    pub fn set_order_questions(&self, ids: &[&str]) {
        lock(&self.shared).config.order_questions = ids.iter().map(|s| s.to_string()).collect();
    }

    /// Sets the questions asked only about market orders (see
    /// [`Config::market_order_questions`]).
    pub fn set_market_order_questions(&self, ids: &[&str]) {
        lock(&self.shared).config.market_order_questions =
            ids.iter().map(|s| s.to_string()).collect();
    }

    /// The announcements page URL, for `ASX_ANNOUNCEMENTS_URL`.
    pub fn asx_url(&self) -> String {
        format!("http://{}{}", self.addr(), asx::PAGE_PATH)
    }

    /// The webhook URL with its random token, for `DISCORD_WEBHOOK_URL`.
    /// It is a secret, as a real webhook URL is.
    pub fn discord_webhook_url(&self) -> String {
        format!(
            "http://{}{}",
            self.addr(),
            lock(&self.shared).discord.path()
        )
    }

    /// Every message the webhook accepted, oldest first.
    pub fn discord_messages(&self) -> Vec<DiscordMessage> {
        lock(&self.shared).discord.messages.clone()
    }

    /// The environment for the other services: `ASX_ANNOUNCEMENTS_URL` and
    /// `DISCORD_WEBHOOK_URL`, to add to [`Setup::env_pairs`].
    pub fn service_env_pairs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("ASX_ANNOUNCEMENTS_URL", self.asx_url()),
            ("DISCORD_WEBHOOK_URL", self.discord_webhook_url()),
        ]
    }
}
