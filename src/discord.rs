//! Discord webhook notifications: the URL, the message model, the limits and
//! the HTTP client that respects Discord's rate limits.
//!
//! This module owns everything that touches Discord: validating
//! `DISCORD_WEBHOOK_URL`, building embeds (including the integration guide's
//! scan, trade and positions messages), fitting any message inside Discord's
//! limits by truncating and splitting, and posting with `?wait=true`. It
//! does not decide when to send: callers queue messages in the outbox
//! (`crate::outbox`), which calls [`Webhook::post`] for each part.
//!
//! The webhook token is a credential. It is held in a [`Secret`], never
//! printed by `Debug`, and every error text that leaves this module has been
//! through [`Webhook::redact`] (HTTP client errors carry the request URL).
//!
//! See: <https://discord.com/developers/docs/resources/webhook#execute-webhook>

use std::collections::VecDeque;
use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::Url;
use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};

use crate::error;
use crate::secret::Secret;

/// Embed colour for scan results with candidates (and other good news).
pub const GREEN: u32 = 0x00FF00;
/// Embed colour for "nothing found" and other neutral news.
pub const YELLOW: u32 = 0xFFFF00;
/// Embed colour for errors.
pub const RED: u32 = 0xFF0000;

/// Discord's limits, in characters, after trimming leading and trailing
/// whitespace.
/// See: <https://discord.com/developers/docs/resources/message#embed-object-embed-limits>
const CONTENT_MAX: usize = 2000;
const TITLE_MAX: usize = 256;
const DESCRIPTION_MAX: usize = 4096;
const FIELDS_MAX: usize = 25;
const FIELD_NAME_MAX: usize = 256;
const FIELD_VALUE_MAX: usize = 1024;
const FOOTER_MAX: usize = 2048;
/// Title, description, field names and values and footer, summed over every
/// embed of one message.
const MESSAGE_EMBED_CHARS_MAX: usize = 6000;
const EMBEDS_MAX: usize = 10;
/// Webhook names are limited to 80 characters; the per-message override is
/// assumed to share the limit.
const USERNAME_MAX: usize = 80;

/// What replaces the token in redacted text.
const REDACTED: &str = "(redacted)";

/// Discord blocks HTTP API clients whose User-Agent is not of this form.
const USER_AGENT: &str = concat!("DiscordBot (skim-asx, ", env!("CARGO_PKG_VERSION"), ")");

/// Attempts per payload: the first try plus retries after 429, 5xx and
/// network errors.
const MAX_ATTEMPTS: u32 = 4;
/// A 429 asking for a longer wait than this gives up for this run instead;
/// the message stays queued, and a scheduled command is not held for minutes.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(60);

/// Client-side limits per webhook, from Discord staff and widely observed
/// behaviour rather than documentation: 5 requests per 2 s, 30 per minute.
const BURST: usize = 5;
const BURST_WINDOW: Duration = Duration::from_secs(2);
const SUSTAINED: usize = 30;
const SUSTAINED_WINDOW: Duration = Duration::from_secs(60);

/// Replaces the token of every Discord webhook URL in `text` (any host, with
/// or without an API version) with `(redacted)`, keeping the id so the
/// webhook can still be told apart. [`Webhook::redact`] also removes the
/// token where it appears outside a URL.
pub fn redact(text: &str) -> String {
    const MARK: &str = "/webhooks/";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(MARK) {
        let after = &rest[at + MARK.len()..];
        let id_len = after.bytes().take_while(u8::is_ascii_digit).count();
        let tail = &after[id_len..];
        let token_len = match tail.strip_prefix('/') {
            Some(token) if id_len > 0 => token.bytes().take_while(|b| is_token_byte(*b)).count(),
            _ => 0,
        };
        if token_len == 0 {
            out.push_str(&rest[..at + MARK.len()]);
            rest = after;
            continue;
        }
        out.push_str(&rest[..at + MARK.len() + id_len + 1]);
        out.push_str(REDACTED);
        rest = &tail[1 + token_len..];
    }
    out.push_str(rest);
    out
}

fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.')
}

/// A validated webhook URL. `Debug` shows the host and id, never the token.
#[derive(Clone)]
pub struct WebhookUrl {
    /// `scheme://host[:port]` requests go to: `https://discord.com` for every
    /// Discord host, or the loopback host tests use.
    origin: String,
    id: String,
    token: Secret,
    /// Query parameters to keep (such as `thread_id`), without `wait`.
    query: Vec<(String, String)>,
}

/// Hosts that serve Discord's API. Requests to any of them go to
/// `discord.com`: Discord dropped API support on `discordapp.com` in 2020.
const DISCORD_HOSTS: &[&str] = &[
    "discord.com",
    "ptb.discord.com",
    "canary.discord.com",
    "discordapp.com",
    "ptb.discordapp.com",
    "canary.discordapp.com",
];

impl WebhookUrl {
    /// Parses the value of `DISCORD_WEBHOOK_URL`.
    ///
    /// Accepts `https://discord.com/api/webhooks/{id}/{token}` on Discord's
    /// hosts (`discord.com`, `discordapp.com`, their `ptb.` and `canary.`
    /// variants), with an optional `/v{N}` after `/api` and an optional
    /// query (kept, except `wait`). `http://` is accepted only for loopback
    /// hosts (127.0.0.0/8, `::1`, `localhost`), with the same path. Anything
    /// else is a usage error that names the variable and the expected form;
    /// the error never repeats the value, since it may hold the token.
    pub fn parse(raw: &str) -> anyhow::Result<WebhookUrl> {
        let url = Url::parse(raw).map_err(|_| bad_url("is not a URL"))?;
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let is_loopback = is_loopback(&host);
        match url.scheme() {
            "https" => {}
            "http" if is_loopback => {}
            "http" => {
                return Err(bad_url(
                    "uses http://, which is allowed only for loopback hosts",
                ));
            }
            other => return Err(bad_url(&format!("has scheme {other}:"))),
        }
        if !is_loopback && !DISCORD_HOSTS.contains(&host.as_str()) {
            return Err(bad_url(&format!("names host {host}, which is not Discord")));
        }
        if !is_loopback && url.port().is_some() {
            return Err(bad_url("names a port"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad_url("carries a user name or password"));
        }
        if url.fragment().is_some() {
            return Err(bad_url("has a #fragment"));
        }

        let mut segments: Vec<&str> = url
            .path_segments()
            .map(Iterator::collect)
            .unwrap_or_default();
        if segments.last() == Some(&"") {
            segments.pop();
        }
        let (id, token) = match segments.as_slice() {
            ["api", "webhooks", id, token] => (*id, *token),
            ["api", version, "webhooks", id, token] if is_api_version(version) => (*id, *token),
            _ => return Err(bad_url("does not have the path /api/webhooks/ID/TOKEN")),
        };
        if id.is_empty() || id.len() > 20 || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad_url("has a webhook id that is not a number"));
        }
        if token.is_empty() || !token.bytes().all(is_token_byte) {
            return Err(bad_url("has a token with characters Discord never uses"));
        }

        let origin = if is_loopback {
            match url.port() {
                Some(port) => format!("{}://{host}:{port}", url.scheme()),
                None => format!("{}://{host}", url.scheme()),
            }
        } else {
            "https://discord.com".to_string()
        };
        let query = url
            .query_pairs()
            .filter(|(key, _)| key != "wait")
            .map(|(key, value)| (key.into_owned(), value.into_owned()))
            .collect();
        Ok(WebhookUrl {
            origin,
            id: id.to_string(),
            token: Secret::new(token),
            query,
        })
    }

    /// The webhook's id (a Discord snowflake; not secret).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The URL with its token replaced by `(redacted)`, for logs.
    pub fn redacted(&self) -> String {
        redact(self.execute_url().as_str())
    }

    /// Replaces this webhook's token wherever it appears in `text`, and the
    /// token part of any webhook URL (see [`redact`]).
    pub fn redact(&self, text: &str) -> String {
        redact(&text.replace(self.token.expose(), REDACTED))
    }

    /// Where messages are posted: API v10, the kept query, and `wait=true`
    /// so Discord confirms the save and returns the message id.
    fn execute_url(&self) -> Url {
        let base = format!(
            "{}/api/v10/webhooks/{}/{}",
            self.origin,
            self.id,
            self.token.expose()
        );
        let mut url = Url::parse(&base).expect("origin, id and token were validated");
        url.query_pairs_mut()
            .extend_pairs(&self.query)
            .append_pair("wait", "true");
        url
    }
}

impl fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookUrl")
            .field("origin", &self.origin)
            .field("id", &self.id)
            .field("token", &self.token)
            .field("query", &self.query)
            .finish()
    }
}

fn bad_url(why: &str) -> anyhow::Error {
    error::usage(format!(
        "DISCORD_WEBHOOK_URL {why}; expected https://discord.com/api/webhooks/ID/TOKEN"
    ))
    .hint("copy the URL from the Discord channel's Integrations > Webhooks settings")
    .into()
}

fn is_api_version(segment: &str) -> bool {
    segment
        .strip_prefix('v')
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// One rich embed. Fields follow Discord's embed object; anything over a
/// limit is cut or split when the message is fitted ([`payloads`]), never
/// sent as is.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Embed {
    /// Up to 256 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Up to 4096 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// RGB packed as `0xRRGGBB`; see [`GREEN`], [`YELLOW`], [`RED`].
    #[serde(default, rename = "color", skip_serializing_if = "Option::is_none")]
    pub colour: Option<u32>,
    /// Up to 25 per embed; more continue in further embeds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<EmbedField>,
    /// Up to 2048 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub footer: Option<EmbedFooter>,
    /// RFC 3339 in UTC with `Z`; set it with [`Embed::timestamp`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
}

/// A name/value pair shown in an embed; `inline` fields sit side by side.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EmbedField {
    /// Up to 256 characters; empty becomes "-".
    pub name: String,
    /// Up to 1024 characters; empty becomes "-".
    pub value: String,
    #[serde(default)]
    pub inline: bool,
}

/// The small text at the bottom of an embed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EmbedFooter {
    pub text: String,
}

impl Embed {
    /// An embed with a title and colour and nothing else yet.
    pub fn new(title: impl Into<String>, colour: u32) -> Embed {
        Embed {
            title: Some(title.into()),
            colour: Some(colour),
            ..Embed::default()
        }
    }

    /// Sets the description.
    pub fn description(mut self, text: impl Into<String>) -> Embed {
        self.description = Some(text.into());
        self
    }

    /// Appends a field.
    pub fn field(
        mut self,
        name: impl Into<String>,
        value: impl Into<String>,
        inline: bool,
    ) -> Embed {
        self.fields.push(EmbedField {
            name: name.into(),
            value: value.into(),
            inline,
        });
        self
    }

    /// Sets the footer text.
    pub fn footer(mut self, text: impl Into<String>) -> Embed {
        self.footer = Some(EmbedFooter { text: text.into() });
        self
    }

    /// Sets the timestamp Discord shows beside the footer.
    pub fn timestamp(mut self, at: DateTime<Utc>) -> Embed {
        self.timestamp = Some(at.to_rfc3339_opts(SecondsFormat::Secs, true));
        self
    }
}

/// A notification as skim means it: optional text, optional sender name,
/// any number of embeds. It is stored in the outbox as JSON and fitted into
/// one or more Discord messages only when sent.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Plain text above the embeds, up to 2000 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Overrides the webhook's name for this message (up to 80 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Any number: they are spread over as many Discord messages as needed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub embeds: Vec<Embed>,
}

impl Message {
    /// A plain text message.
    pub fn text(content: impl Into<String>) -> Message {
        Message {
            content: Some(content.into()),
            ..Message::default()
        }
    }

    /// A message of one embed.
    pub fn embed(embed: Embed) -> Message {
        Message {
            embeds: vec![embed],
            ..Message::default()
        }
    }

    /// Posts under `name` instead of the webhook's own name.
    pub fn username(mut self, name: impl Into<String>) -> Message {
        self.username = Some(name.into());
        self
    }

    /// Whether fitting leaves nothing to send (Discord refuses empty
    /// messages).
    pub fn is_empty(&self) -> bool {
        payloads(self).is_empty()
    }

    /// A short description for listings: the first title, else the start of
    /// the text.
    pub fn summary(&self) -> String {
        let title = self.embeds.iter().find_map(|embed| embed.title.as_deref());
        clip(title.or(self.content.as_deref()).unwrap_or_default(), 80)
    }
}

/// A scan candidate as the scan notification shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct ScanCandidate {
    /// ASX code, such as `BHP` or `14D`.
    pub ticker: String,
    /// Opening gap in percent, e.g. `12.5` for 12.5 %.
    pub gap_pct: f64,
    /// Last price in AUD.
    pub price: f64,
    /// Headline of the price-sensitive announcement, if known.
    pub headline: Option<String>,
}

/// Title of the scan result messages, as in the integration guide.
pub const SCAN_COMPLETE_TITLE: &str = "ASX Market Scan Complete";
/// Title of the scan error message, as in the integration guide.
pub const SCAN_ERROR_TITLE: &str = "ASX Market Scan Error";

/// The integration guide's scan result message. With candidates: a green
/// embed titled "ASX Market Scan Complete", described "N new candidates
/// found" ("1 new candidate found" for one), and one field per candidate
/// named by its ticker with gap, price and headline. Without: a yellow embed,
/// same title, "No new candidates found".
pub fn scan_complete(candidates: &[ScanCandidate], at: DateTime<Utc>) -> Message {
    let embed = match candidates.len() {
        0 => Embed::new(SCAN_COMPLETE_TITLE, YELLOW).description("No new candidates found"),
        1 => Embed::new(SCAN_COMPLETE_TITLE, GREEN).description("1 new candidate found"),
        n => {
            Embed::new(SCAN_COMPLETE_TITLE, GREEN).description(format!("{n} new candidates found"))
        }
    };
    let embed = candidates.iter().fold(embed, |embed, candidate| {
        let mut value = format!(
            "Gap: {:.1}%, Price: ${:.3}",
            candidate.gap_pct, candidate.price
        );
        if let Some(headline) = candidate
            .headline
            .as_deref()
            .filter(|h| !h.trim().is_empty())
        {
            value.push('\n');
            value.push_str(headline.trim());
        }
        embed.field(&candidate.ticker, value, false)
    });
    Message::embed(embed.timestamp(at))
}

/// The integration guide's scan error message: a red embed titled "ASX
/// Market Scan Error" with the error text (webhook tokens redacted) as its
/// description.
pub fn scan_error(error: &str, at: DateTime<Utc>) -> Message {
    Message::embed(
        Embed::new(SCAN_ERROR_TITLE, RED)
            .description(redact(error))
            .timestamp(at),
    )
}

/// Title of the message listing newly placed entry orders.
pub const ENTRY_PLACED_TITLE: &str = "Entry Orders Placed";
/// Title of the message for a filled entry.
pub const ENTRY_FILLED_TITLE: &str = "Entry Filled";
/// Title of the message for a position closed at its stop.
pub const STOP_HIT_TITLE: &str = "Stop Hit";
/// Title of the message for the sale of half a position on day 3.
pub const HALF_EXIT_TITLE: &str = "Half Exit (Day 3)";
/// Title of the message for a position closed below its 10-day SMA.
pub const TRAIL_EXIT_TITLE: &str = "Trailing Exit (10-day SMA)";
/// Title of the message for a trade command that refused to act.
pub const TRADE_REFUSED_TITLE: &str = "Trading Refused";
/// Title of the message for a trade command that failed.
pub const TRADE_ERROR_TITLE: &str = "Trade Error";
/// Title of the daily positions message.
pub const POSITIONS_SUMMARY_TITLE: &str = "ASX Positions Summary";

/// An entry order as the "Entry Orders Placed" message shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct EntryOrder {
    /// ASX code, such as `BHP`.
    pub ticker: String,
    /// Shares to buy.
    pub quantity: u64,
    /// The price whose break triggers the buy (the opening-range high), AUD.
    pub entry_stop: f64,
    /// The protective stop once filled (the low of the day), AUD.
    pub stop_loss: f64,
}

/// One open position as the daily summary shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct PositionLine {
    /// ASX code.
    pub ticker: String,
    /// Shares held.
    pub quantity: u64,
    /// Average entry price, AUD.
    pub entry_price: f64,
    /// Latest price, AUD.
    pub last_price: f64,
    /// Unrealized P&L in AUD, as the broker reports it (costs included).
    pub unrealized_pnl: f64,
}

/// A scheduled command that did not run, or ran and failed, since the last
/// summary.
#[derive(Clone, Debug, PartialEq)]
pub struct MissedRun {
    /// The command as scheduled, e.g. `skim trade manage`.
    pub command: String,
    /// What went wrong, e.g. "did not run at 10:30" or the error text.
    pub problem: String,
}

/// Everything the daily positions message shows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PositionsSummary {
    /// Open positions, in the order to show them.
    pub positions: Vec<PositionLine>,
    /// P&L already realized over the period the summary covers, AUD.
    pub realized_pnl: f64,
    /// Scheduled runs to draw attention to; no field when empty.
    pub missed_runs: Vec<MissedRun>,
}

/// A price with the decimals its ASX price step needs: `$12.35` from $2
/// up, `$1.235` and `$0.095` below (the steps there are half a cent and a
/// tenth of a cent).
pub fn format_price(price: f64) -> String {
    if price >= 2.0 {
        format!("${price:.2}")
    } else {
        format!("${price:.3}")
    }
}

/// An amount of money with its sign and cents: `+$12.50`, `-$3.00`, and
/// `$0.00` for anything that rounds to zero (never `-$0.00`).
pub fn format_pnl(amount: f64) -> String {
    let cents = (amount * 100.0).round();
    if cents == 0.0 {
        "$0.00".to_owned()
    } else if cents > 0.0 {
        format!("+${:.2}", cents / 100.0)
    } else {
        format!("-${:.2}", -cents / 100.0)
    }
}

/// A signed percentage with one decimal: `+3.5%`, `-1.2%`, `0.0%`.
fn format_signed_pct(pct: f64) -> String {
    let tenths = (pct * 10.0).round();
    if tenths == 0.0 {
        "0.0%".to_owned()
    } else {
        format!("{:+.1}%", tenths / 10.0)
    }
}

/// Green for a gain, red for a loss, yellow for break-even (to the cent).
fn pnl_colour(amount: f64) -> u32 {
    let cents = (amount * 100.0).round();
    if cents > 0.0 {
        GREEN
    } else if cents < 0.0 {
        RED
    } else {
        YELLOW
    }
}

/// "1 entry order" or "N entry orders", and the like.
fn count(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// The entries `trade enter` placed: a green embed titled "Entry Orders
/// Placed", described "N entry orders placed", one field per order named
/// by its ticker with "Buy Q @ stop $X, stop loss $Y". With no orders it is
/// yellow and described "No entry orders placed", as the scan message is
/// when it finds nothing.
pub fn entry_placed(orders: &[EntryOrder], at: DateTime<Utc>) -> Message {
    let embed = if orders.is_empty() {
        Embed::new(ENTRY_PLACED_TITLE, YELLOW).description("No entry orders placed")
    } else {
        Embed::new(ENTRY_PLACED_TITLE, GREEN).description(format!(
            "{} placed",
            count(orders.len(), "entry order", "entry orders")
        ))
    };
    let embed = orders.iter().fold(embed, |embed, order| {
        let value = format!(
            "Buy {} @ stop {}, stop loss {}",
            order.quantity,
            format_price(order.entry_stop),
            format_price(order.stop_loss)
        );
        embed.field(&order.ticker, value, false)
    });
    Message::embed(embed.timestamp(at))
}

/// A filled entry: green, "Entry Filled", described "Bought Q TICKER @ $P",
/// with the ticker, quantity, fill price and stop loss as inline fields.
pub fn entry_filled(
    ticker: &str,
    quantity: u64,
    price: f64,
    stop_loss: f64,
    at: DateTime<Utc>,
) -> Message {
    let embed = Embed::new(ENTRY_FILLED_TITLE, GREEN)
        .description(format!(
            "Bought {quantity} {ticker} @ {}",
            format_price(price)
        ))
        .field("Ticker", ticker, true)
        .field("Quantity", quantity.to_string(), true)
        .field("Fill price", format_price(price), true)
        .field("Stop loss", format_price(stop_loss), true);
    Message::embed(embed.timestamp(at))
}

/// A position closed at its stop: red, "Stop Hit", described "Sold Q TICKER
/// @ $P at the stop", with the realized P&L signed (`-$52.00`).
pub fn stop_hit(
    ticker: &str,
    quantity: u64,
    price: f64,
    realized_pnl: f64,
    at: DateTime<Utc>,
) -> Message {
    let embed = Embed::new(STOP_HIT_TITLE, RED)
        .description(format!(
            "Sold {quantity} {ticker} @ {} at the stop",
            format_price(price)
        ))
        .field("Ticker", ticker, true)
        .field("Quantity", quantity.to_string(), true)
        .field("Exit price", format_price(price), true)
        .field("Realized P&L", format_pnl(realized_pnl), true);
    Message::embed(embed.timestamp(at))
}

/// Half the position sold on the third trading day: green, "Half Exit (Day
/// 3)", with what was sold, what remains and the stop that now protects it.
pub fn half_exit(
    ticker: &str,
    quantity_sold: u64,
    price: f64,
    remaining: u64,
    new_stop: f64,
    at: DateTime<Utc>,
) -> Message {
    let embed = Embed::new(HALF_EXIT_TITLE, GREEN)
        .description(format!(
            "Sold {quantity_sold} {ticker} @ {}; {remaining} remain",
            format_price(price)
        ))
        .field("Ticker", ticker, true)
        .field("Sold", quantity_sold.to_string(), true)
        .field("Price", format_price(price), true)
        .field("Remaining", remaining.to_string(), true)
        .field("New stop", format_price(new_stop), true);
    Message::embed(embed.timestamp(at))
}

/// The rest of a position sold on a close below its 10-day simple moving
/// average: "Trailing Exit (10-day SMA)", green for a gain, red for a loss,
/// yellow at break-even, with the price, the average and the realized P&L.
pub fn trail_exit(
    ticker: &str,
    quantity: u64,
    price: f64,
    sma: f64,
    realized_pnl: f64,
    at: DateTime<Utc>,
) -> Message {
    let embed = Embed::new(TRAIL_EXIT_TITLE, pnl_colour(realized_pnl))
        .description(format!(
            "Sold {quantity} {ticker} @ {} after a close below the 10-day SMA",
            format_price(price)
        ))
        .field("Ticker", ticker, true)
        .field("Quantity", quantity.to_string(), true)
        .field("Exit price", format_price(price), true)
        .field("10-day SMA", format_price(sma), true)
        .field("Realized P&L", format_pnl(realized_pnl), true);
    Message::embed(embed.timestamp(at))
}

/// A trade command that refused to act for safety (a halt, records that
/// disagree with the broker's, a broker question nobody has reviewed): red,
/// "Trading Refused", the reason (webhook tokens redacted) as description.
pub fn trade_refused(reason: &str, at: DateTime<Utc>) -> Message {
    Message::embed(
        Embed::new(TRADE_REFUSED_TITLE, RED)
            .description(redact(reason))
            .timestamp(at),
    )
}

/// A trade command that failed: red, "Trade Error", the error text
/// (webhook tokens redacted) as description.
pub fn trade_error(error: &str, at: DateTime<Utc>) -> Message {
    Message::embed(
        Embed::new(TRADE_ERROR_TITLE, RED)
            .description(redact(error))
            .timestamp(at),
    )
}

/// The daily "ASX Positions Summary": described "N open positions" (or "No
/// open positions"); one field per position, named by its ticker, "Q @
/// $entry, last $L, P&L $x (y%)" with y against the cost of the position;
/// then inline totals (unrealized, realized, total P&L) and, when
/// `summary.missed_runs` is not empty, a "Missed runs" field with one line
/// each. The colour follows the total P&L: green, red, or yellow at zero.
/// Many positions continue in further embeds (see [`payloads`]).
pub fn daily_summary(summary: &PositionsSummary, at: DateTime<Utc>) -> Message {
    let unrealized: f64 = summary.positions.iter().map(|p| p.unrealized_pnl).sum();
    let total = unrealized + summary.realized_pnl;
    let description = if summary.positions.is_empty() {
        "No open positions".to_owned()
    } else {
        count(summary.positions.len(), "open position", "open positions")
    };
    let embed = Embed::new(POSITIONS_SUMMARY_TITLE, pnl_colour(total)).description(description);
    let embed = summary.positions.iter().fold(embed, |embed, position| {
        let cost = position.quantity as f64 * position.entry_price;
        let mut value = format!(
            "{} @ {}, last {}, P&L {}",
            position.quantity,
            format_price(position.entry_price),
            format_price(position.last_price),
            format_pnl(position.unrealized_pnl)
        );
        // A zero cost (no fill price known) has no meaningful percentage.
        if cost > 0.0 {
            let pct = position.unrealized_pnl / cost * 100.0;
            value.push_str(&format!(" ({})", format_signed_pct(pct)));
        }
        embed.field(&position.ticker, value, false)
    });
    let mut embed = embed
        .field("Unrealized P&L", format_pnl(unrealized), true)
        .field("Realized P&L", format_pnl(summary.realized_pnl), true)
        .field("Total P&L", format_pnl(total), true);
    if !summary.missed_runs.is_empty() {
        let lines: Vec<String> = summary
            .missed_runs
            .iter()
            .map(|run| format!("{}: {}", run.command, redact(&run.problem)))
            .collect();
        embed = embed.field("Missed runs", lines.join("\n"), false);
    }
    Message::embed(embed.timestamp(at))
}

/// One Discord message as posted: within every limit, mentions disabled.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Payload {
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    embeds: Vec<Embed>,
    allowed_mentions: AllowedMentions,
}

/// `{"parse": []}`: no text in a notification (a headline saying
/// "@everyone", say) may ping anyone.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
struct AllowedMentions {
    parse: [&'static str; 0],
}

impl Payload {
    /// The text content, if any.
    pub fn content(&self) -> Option<&str> {
        self.content.as_deref()
    }

    /// The embeds of this message.
    pub fn embeds(&self) -> &[Embed] {
        &self.embeds
    }
}

/// Fits `message` into Discord's limits: trims every text, cuts each one that
/// is too long with an ellipsis, spreads fields over continuation embeds (25
/// per embed) and spreads embeds over several messages (10 and 6000
/// characters per message). The text content goes with the first message;
/// the footer and timestamp with the last part of each embed. The result is
/// empty when there is nothing to send. Deterministic: the outbox relies on
/// the same message always giving the same parts.
pub fn payloads(message: &Message) -> Vec<Payload> {
    let content = message
        .content
        .as_deref()
        .map(|text| clip(text, CONTENT_MAX));
    let content = content.filter(|text| !text.is_empty());
    // Discord refuses webhook names containing "clyde" or "discord"; such an
    // override is dropped rather than risk a 400 for the whole message.
    let username = message
        .username
        .as_deref()
        .map(|name| clip(name, USERNAME_MAX))
        .filter(|n| {
            let lower = n.to_lowercase();
            !n.is_empty() && !lower.contains("clyde") && !lower.contains("discord")
        });

    let mut groups: Vec<Vec<Embed>> = Vec::new();
    let mut group: Vec<Embed> = Vec::new();
    let mut group_chars = 0;
    for part in message.embeds.iter().flat_map(split_embed) {
        let chars = embed_chars(&part);
        if group.len() == EMBEDS_MAX || group_chars + chars > MESSAGE_EMBED_CHARS_MAX {
            groups.push(std::mem::take(&mut group));
            group_chars = 0;
        }
        group_chars += chars;
        group.push(part);
    }
    if !group.is_empty() || content.is_some() {
        groups.push(group);
    }

    groups
        .into_iter()
        .enumerate()
        .map(|(index, embeds)| Payload {
            content: if index == 0 { content.clone() } else { None },
            username: username.clone(),
            embeds,
            allowed_mentions: AllowedMentions::default(),
        })
        .collect()
}

/// Cuts one embed into parts that each respect the per-embed limits and fit
/// alone in a message. Continuation parts repeat the title with
/// "(continued)" and the colour.
fn split_embed(embed: &Embed) -> Vec<Embed> {
    let title = non_empty(embed.title.as_deref().map(|t| clip(t, TITLE_MAX)));
    let footer = non_empty(embed.footer.as_ref().map(|f| clip(&f.text, FOOTER_MAX)));
    let footer_chars = footer.as_deref().map_or(0, char_count);
    let title_chars = title.as_deref().map_or(0, char_count);
    // Title, description and footer together may exceed the message budget
    // (256 + 4096 + 2048), so the description gives way.
    let description_room = MESSAGE_EMBED_CHARS_MAX - title_chars - footer_chars;
    let description = non_empty(
        embed
            .description
            .as_deref()
            .map(|d| clip(d, DESCRIPTION_MAX.min(description_room))),
    );
    let fields: Vec<EmbedField> = embed
        .fields
        .iter()
        .map(|field| EmbedField {
            name: placeholder_if_empty(clip(&field.name, FIELD_NAME_MAX)),
            value: placeholder_if_empty(clip(&field.value, FIELD_VALUE_MAX)),
            inline: field.inline,
        })
        .collect();
    if title.is_none() && description.is_none() && footer.is_none() && fields.is_empty() {
        return Vec::new();
    }
    let colour = embed.colour.map(|c| c.min(0xFF_FF_FF));
    let timestamp = embed.timestamp.as_deref().and_then(normalise_timestamp);
    let continued = title
        .as_deref()
        .map(|t| clip(&format!("{t} (continued)"), TITLE_MAX));

    let mut parts = Vec::new();
    let mut part = Embed {
        title,
        description,
        colour,
        ..Embed::default()
    };
    let mut chars = embed_chars(&part);
    for field in fields {
        let field_chars = char_count(&field.name) + char_count(&field.value);
        if part.fields.len() == FIELDS_MAX
            || chars + field_chars + footer_chars > MESSAGE_EMBED_CHARS_MAX
        {
            parts.push(part);
            part = Embed {
                title: continued.clone(),
                colour,
                ..Embed::default()
            };
            chars = embed_chars(&part);
        }
        chars += field_chars;
        part.fields.push(field);
    }
    part.footer = footer.map(|text| EmbedFooter { text });
    part.timestamp = timestamp;
    parts.push(part);
    parts
}

/// The characters of `embed` that count toward the 6000 per message.
fn embed_chars(embed: &Embed) -> usize {
    let texts = [embed.title.as_deref(), embed.description.as_deref()];
    texts.into_iter().flatten().map(char_count).sum::<usize>()
        + embed
            .fields
            .iter()
            .map(|f| char_count(&f.name) + char_count(&f.value))
            .sum::<usize>()
        + embed.footer.as_ref().map_or(0, |f| char_count(&f.text))
}

fn char_count(text: &str) -> usize {
    text.chars().count()
}

/// Trims `text` and, when it is longer than `max` characters, keeps the
/// first `max - 1` and an ellipsis.
fn clip(text: &str, max: usize) -> String {
    let text = text.trim();
    if char_count(text) <= max {
        return text.to_string();
    }
    let mut kept: String = text.chars().take(max.saturating_sub(1)).collect();
    kept.truncate(kept.trim_end().len());
    kept.push('…');
    kept
}

fn non_empty(text: Option<String>) -> Option<String> {
    text.filter(|t| !t.is_empty())
}

/// Discord refuses fields with an empty name or value.
fn placeholder_if_empty(text: String) -> String {
    if text.is_empty() {
        "-".to_string()
    } else {
        text
    }
}

/// Rewrites an RFC 3339 timestamp in UTC with `Z`; anything else is dropped
/// (with a warning) rather than sent to be refused.
fn normalise_timestamp(text: &str) -> Option<String> {
    match DateTime::parse_from_rfc3339(text) {
        Ok(at) => Some(
            at.with_timezone(&Utc)
                .to_rfc3339_opts(SecondsFormat::Secs, true),
        ),
        Err(_) => {
            log::warn!("dropping embed timestamp {text:?}: expected RFC 3339");
            None
        }
    }
}

/// The passage of time, for the rate limiter: real in production, simulated
/// in tests so they never sleep.
pub trait Clock: Send {
    /// Time elapsed since an arbitrary fixed origin; never goes backwards.
    fn elapsed(&self) -> Duration;
    /// Blocks for `duration`.
    fn sleep(&self, duration: Duration);
}

/// The real monotonic clock and `std::thread::sleep`.
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    /// A clock whose origin is now.
    pub fn new() -> SystemClock {
        SystemClock {
            origin: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    fn elapsed(&self) -> Duration {
        self.origin.elapsed()
    }

    fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration);
    }
}

/// Why a payload was not delivered. The text has been redacted.
#[derive(Clone, Debug, PartialEq)]
pub enum SendError {
    /// Discord answered 401, 403 or 404: the webhook is deleted, its token is
    /// wrong or it is blocked. Sending is disabled for the rest of this run,
    /// because repeating such requests gets the host banned.
    Disabled { status: u16, reason: String },
    /// Discord refused this payload (a 4xx other than the above); sending it
    /// again unchanged will fail the same way.
    Rejected { status: u16, reason: String },
    /// Network trouble, 5xx or a rate limit that outlasted the retries;
    /// worth trying again on the next run.
    Transient { reason: String },
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Disabled { reason, .. }
            | SendError::Rejected { reason, .. }
            | SendError::Transient { reason } => f.write_str(reason),
        }
    }
}

impl std::error::Error for SendError {}

/// A client for one webhook: posts payloads, waits as Discord's rate limits
/// and skim's own limiter require, retries what is worth retrying, and
/// stops for good after the webhook turns out to be gone.
pub struct Webhook {
    url: WebhookUrl,
    http: reqwest::blocking::Client,
    clock: Box<dyn Clock>,
    /// When recent requests were sent (by `clock`), oldest first, for the
    /// client-side limiter; entries older than the longest window are dropped.
    recent: VecDeque<Duration>,
    /// When Discord said the bucket refills, after it reported none left.
    bucket_refills_at: Option<Duration>,
    disabled: Option<SendError>,
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &self.url)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

impl Webhook {
    /// A client on the real clock.
    pub fn new(url: WebhookUrl) -> anyhow::Result<Webhook> {
        Webhook::with_clock(url, Box::new(SystemClock::new()))
    }

    /// A client whose waits go through `clock`.
    pub fn with_clock(url: WebhookUrl, clock: Box<dyn Clock>) -> anyhow::Result<Webhook> {
        let http = reqwest::blocking::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(20))
            // The token is in the path: never follow a redirect elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|err| anyhow::anyhow!(url.redact(&error_text(err))))
            .map_err(|err| err.context("failed to build the Discord HTTP client"))?;
        Ok(Webhook {
            url,
            http,
            clock,
            recent: VecDeque::new(),
            bucket_refills_at: None,
            disabled: None,
        })
    }

    /// The webhook this client posts to.
    pub fn url(&self) -> &WebhookUrl {
        &self.url
    }

    /// Why sending is disabled for this run, if it is.
    pub fn disabled(&self) -> Option<&SendError> {
        self.disabled.as_ref()
    }

    /// See [`WebhookUrl::redact`].
    pub fn redact(&self, text: &str) -> String {
        self.url.redact(text)
    }

    /// Sends every part of `message` (see [`payloads`]) and returns Discord's
    /// message ids; stops at the first part that fails. Callers that must
    /// not lose a notification queue it in the outbox instead.
    pub fn send(&mut self, message: &Message) -> Result<Vec<String>, SendError> {
        let mut ids = Vec::new();
        for payload in payloads(message) {
            ids.extend(self.post(&payload)?);
        }
        Ok(ids)
    }

    /// Posts one payload and returns the id of the message Discord created
    /// (`None` if its answer carried none).
    ///
    /// Before each request it waits for the client-side limiter (5 per 2 s,
    /// 30 per minute) and for a bucket Discord reported empty. A 429 waits
    /// `retry_after` (body, else the `Retry-After` header) and tries again;
    /// 5xx and network errors back off and try again; at most
    /// four tries in all. 401, 403 and 404 disable this client:
    /// later calls fail at once without a request.
    pub fn post(&mut self, payload: &Payload) -> Result<Option<String>, SendError> {
        if let Some(disabled) = &self.disabled {
            return Err(disabled.clone());
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let retry_after = match self.try_post(payload) {
                Attempt::Sent(id) => return Ok(id),
                Attempt::Failed(err @ SendError::Disabled { .. }) => {
                    log::warn!("{err}");
                    self.disabled = Some(err.clone());
                    return Err(err);
                }
                Attempt::Failed(err) => return Err(err),
                Attempt::Retry(_, wait) if wait > MAX_RETRY_WAIT => {
                    return Err(SendError::Transient {
                        reason: format!(
                            "Discord rate limit asks for a {:.0} s wait; left for the next run",
                            wait.as_secs_f64()
                        ),
                    });
                }
                Attempt::Retry(reason, _) if attempt >= MAX_ATTEMPTS => {
                    return Err(SendError::Transient {
                        reason: format!("{reason} (gave up after {attempt} attempts)"),
                    });
                }
                Attempt::Retry(reason, wait) => {
                    log::debug!("retrying Discord webhook in {wait:?}: {reason}");
                    wait
                }
            };
            self.clock.sleep(retry_after);
        }
    }

    /// One request, after the limiter allows it.
    fn try_post(&mut self, payload: &Payload) -> Attempt {
        self.wait_for_turn();
        self.recent.push_back(self.clock.elapsed());
        let response = match self.http.post(self.url.execute_url()).json(payload).send() {
            Ok(response) => response,
            Err(err) => {
                let reason = self.redact(&format!("failed to reach Discord: {}", error_text(err)));
                return Attempt::Retry(reason, Duration::from_secs(2));
            }
        };
        self.note_bucket(response.headers());
        let status = response.status();
        let header_wait = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_seconds);
        let body = response.text().unwrap_or_default();
        if status.is_success() {
            let id = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|message| message.get("id")?.as_str().map(str::to_string));
            return Attempt::Sent(id);
        }

        let detail = self.redact(&discord_error_detail(&body));
        let code = status.as_u16();
        let reason = format!(
            "Discord answered {status} to the webhook {}: {detail}",
            self.url.id
        );
        match code {
            429 => {
                let body_wait = serde_json::from_str::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v.get("retry_after")?.as_f64())
                    .and_then(|secs| Duration::try_from_secs_f64(secs).ok());
                Attempt::Retry(
                    reason,
                    body_wait.or(header_wait).unwrap_or(Duration::from_secs(1)),
                )
            }
            401 | 403 | 404 => Attempt::Failed(SendError::Disabled {
                status: code,
                reason: format!(
                    "{reason}; the webhook is deleted, its token is wrong or it is blocked, \
                     so no more notifications are sent this run"
                ),
            }),
            500..=599 => Attempt::Retry(reason, Duration::from_secs(2)),
            _ => Attempt::Failed(SendError::Rejected {
                status: code,
                reason,
            }),
        }
    }

    /// Sleeps until both the client-side windows and Discord's bucket allow
    /// another request.
    fn wait_for_turn(&mut self) {
        loop {
            let now = self.clock.elapsed();
            while self
                .recent
                .front()
                .is_some_and(|t| now.saturating_sub(*t) >= SUSTAINED_WINDOW)
            {
                self.recent.pop_front();
            }
            let mut until = now;
            if let Some(refill) = self.bucket_refills_at {
                until = until.max(refill);
            }
            let burst: Vec<Duration> = self
                .recent
                .iter()
                .copied()
                .filter(|t| now.saturating_sub(*t) < BURST_WINDOW)
                .collect();
            if burst.len() >= BURST {
                until = until.max(burst[burst.len() - BURST] + BURST_WINDOW);
            }
            if self.recent.len() >= SUSTAINED {
                until = until.max(self.recent[self.recent.len() - SUSTAINED] + SUSTAINED_WINDOW);
            }
            if until <= now {
                self.bucket_refills_at = None;
                return;
            }
            log::debug!("waiting {:?} for the Discord rate limit", until - now);
            self.clock.sleep(until - now);
        }
    }

    /// Remembers when Discord's bucket refills once it reports none left.
    fn note_bucket(&mut self, headers: &HeaderMap) {
        let number = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<f64>().ok();
        let remaining = number("x-ratelimit-remaining");
        let reset_after = headers
            .get("x-ratelimit-reset-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_seconds);
        if let (Some(remaining), Some(reset_after)) = (remaining, reset_after)
            && remaining < 1.0
        {
            self.bucket_refills_at = Some(self.clock.elapsed() + reset_after.min(MAX_RETRY_WAIT));
        }
    }
}

/// The outcome of one request.
enum Attempt {
    Sent(Option<String>),
    Failed(SendError),
    /// Worth another try after the wait.
    Retry(String, Duration),
}

/// Seconds, possibly fractional, as Discord's headers give them.
fn parse_seconds(text: &str) -> Option<Duration> {
    Duration::try_from_secs_f64(text.trim().parse().ok()?).ok()
}

/// Discord's JSON error as "message (code N)", else the start of the body.
fn discord_error_detail(body: &str) -> String {
    let json: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let message = json.as_ref().and_then(|v| v.get("message")?.as_str());
    let code = json.as_ref().and_then(|v| v.get("code")?.as_i64());
    match (message, code) {
        (Some(message), Some(code)) => format!("{message} (code {code})"),
        (Some(message), None) => message.to_string(),
        _ if body.trim().is_empty() => "empty response".to_string(),
        _ => clip(body, 200),
    }
}

/// The HTTP client's error and its causes on one line, without the request
/// URL (callers still redact: a cause may quote it).
fn error_text(err: reqwest::Error) -> String {
    let err = err.without_url();
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
pub(crate) mod testing {
    //! A fake webhook on a loopback socket and a clock that only moves when
    //! slept, shared by the tests of this module and the outbox.

    use std::collections::VecDeque;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::Clock;

    pub(crate) const ID: &str = "112233445566778899";
    pub(crate) const TOKEN: &str =
        "tOkEn-SECRET_value.0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ";

    /// A request as the fake webhook received it.
    #[derive(Clone, Debug)]
    pub(crate) struct Request {
        pub target: String,
        pub headers: Vec<(String, String)>,
        pub body: serde_json::Value,
    }

    /// An answer the fake webhook gives, in order; once the script runs out
    /// it answers 200 with a message id.
    pub(crate) struct Reply {
        pub status: u16,
        pub headers: Vec<(String, String)>,
        pub body: String,
    }

    #[derive(Default)]
    struct State {
        requests: Vec<Request>,
        script: VecDeque<Reply>,
    }

    pub(crate) struct FakeWebhook {
        port: u16,
        state: Arc<Mutex<State>>,
    }

    impl FakeWebhook {
        pub(crate) fn start() -> FakeWebhook {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            let state = Arc::new(Mutex::new(State::default()));
            let shared = Arc::clone(&state);
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(stream) = stream else { continue };
                    serve(stream, &shared);
                }
            });
            FakeWebhook { port, state }
        }

        /// The webhook URL, in the loopback form with a thread id.
        pub(crate) fn url(&self) -> String {
            format!(
                "http://127.0.0.1:{}/api/webhooks/{ID}/{TOKEN}?thread_id=77",
                self.port
            )
        }

        pub(crate) fn reply(&self, status: u16, headers: &[(&str, &str)], body: &str) {
            let headers = headers
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect();
            self.state.lock().unwrap().script.push_back(Reply {
                status,
                headers,
                body: body.to_string(),
            });
        }

        pub(crate) fn requests(&self) -> Vec<Request> {
            self.state.lock().unwrap().requests.clone()
        }
    }

    fn serve(stream: TcpStream, state: &Mutex<State>) {
        let mut reader = BufReader::new(stream);
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).is_err() {
            return;
        }
        let target = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
            }
        }
        let length = headers
            .iter()
            .find(|(name, _)| name == "content-length")
            .and_then(|(_, value)| value.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        let _ = reader.read_exact(&mut body);
        let body = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);

        let reply = {
            let mut state = state.lock().unwrap();
            state.requests.push(Request {
                target,
                headers,
                body,
            });
            let number = state.requests.len();
            state.script.pop_front().unwrap_or_else(|| Reply {
                status: 200,
                headers: Vec::new(),
                body: format!(r#"{{"id": "90000000000000000{number}", "channel_id": "1"}}"#),
            })
        };
        let mut response = format!(
            "HTTP/1.1 {} Fake\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             connection: close\r\n",
            reply.status,
            reply.body.len()
        );
        for (name, value) in &reply.headers {
            response.push_str(&format!("{name}: {value}\r\n"));
        }
        response.push_str("\r\n");
        response.push_str(&reply.body);
        let mut stream = reader.into_inner();
        let _ = stream.write_all(response.as_bytes());
        let _ = stream.flush();
    }

    /// A clock that starts at zero and moves only when slept.
    #[derive(Clone, Default)]
    pub(crate) struct ManualClock {
        state: Arc<Mutex<(Duration, Vec<Duration>)>>,
    }

    impl ManualClock {
        /// Every sleep asked for, in order.
        pub(crate) fn sleeps(&self) -> Vec<Duration> {
            self.state.lock().unwrap().1.clone()
        }
    }

    impl Clock for ManualClock {
        fn elapsed(&self) -> Duration {
            self.state.lock().unwrap().0
        }

        fn sleep(&self, duration: Duration) {
            let mut state = self.state.lock().unwrap();
            state.0 += duration;
            state.1.push(duration);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{FakeWebhook, ID, ManualClock, TOKEN};
    use super::*;
    use crate::error::{ExitKind, exit_kind};
    use serde_json::json;

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-03T10:15:00+11:00")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn candidate(ticker: &str, headline: &str) -> ScanCandidate {
        ScanCandidate {
            ticker: ticker.to_string(),
            gap_pct: 12.345,
            price: 1.2,
            headline: Some(headline.to_string()),
        }
    }

    fn client(fake: &FakeWebhook, clock: &ManualClock) -> Webhook {
        Webhook::with_clock(
            WebhookUrl::parse(&fake.url()).unwrap(),
            Box::new(clock.clone()),
        )
        .unwrap()
    }

    fn assert_within_limits(payload: &Payload) {
        assert!(payload.embeds().len() <= EMBEDS_MAX);
        assert!(payload.content().map_or(0, char_count) <= CONTENT_MAX);
        let total: usize = payload.embeds().iter().map(embed_chars).sum();
        assert!(
            total <= MESSAGE_EMBED_CHARS_MAX,
            "{total} characters in one message"
        );
        for embed in payload.embeds() {
            assert!(embed.title.as_deref().map_or(0, char_count) <= TITLE_MAX);
            assert!(embed.description.as_deref().map_or(0, char_count) <= DESCRIPTION_MAX);
            assert!(embed.footer.as_ref().map_or(0, |f| char_count(&f.text)) <= FOOTER_MAX);
            assert!(embed.fields.len() <= FIELDS_MAX);
            for field in &embed.fields {
                assert!(char_count(&field.name) <= FIELD_NAME_MAX);
                assert!((1..=FIELD_VALUE_MAX).contains(&char_count(&field.value)));
            }
        }
    }

    #[test]
    fn parses_every_official_form_into_one_execute_url() {
        let token = "abc_DEF-123";
        let expected = format!("https://discord.com/api/v10/webhooks/{ID}/{token}?wait=true");
        for raw in [
            format!("https://discord.com/api/webhooks/{ID}/{token}"),
            format!("https://discord.com/api/webhooks/{ID}/{token}/"),
            format!("https://discordapp.com/api/webhooks/{ID}/{token}"),
            format!("https://ptb.discord.com/api/webhooks/{ID}/{token}"),
            format!("https://canary.discord.com/api/v9/webhooks/{ID}/{token}"),
            format!("https://discord.com/api/v10/webhooks/{ID}/{token}?wait=false"),
        ] {
            let url = WebhookUrl::parse(&raw).unwrap();
            assert_eq!(url.execute_url().as_str(), expected, "{raw}");
            assert_eq!(url.id(), ID);
        }
        let thread = WebhookUrl::parse(&format!(
            "https://discord.com/api/webhooks/{ID}/{token}?thread_id=123"
        ))
        .unwrap();
        assert_eq!(
            thread.execute_url().as_str(),
            format!("https://discord.com/api/v10/webhooks/{ID}/{token}?thread_id=123&wait=true")
        );
    }

    #[test]
    fn allows_plain_http_only_on_loopback() {
        for origin in [
            "http://127.0.0.1:8080",
            "http://127.9.9.9",
            "http://[::1]:9",
            "http://localhost",
        ] {
            let url = WebhookUrl::parse(&format!("{origin}/api/webhooks/{ID}/t0k")).unwrap();
            assert!(
                url.execute_url()
                    .as_str()
                    .starts_with(&format!("{origin}/api/v10/"))
            );
        }
        let err = WebhookUrl::parse(&format!("http://discord.com/api/webhooks/{ID}/t0k"));
        assert!(format!("{:#}", err.unwrap_err()).contains("only for loopback"));
    }

    #[test]
    fn rejects_other_urls_naming_the_variable_but_not_the_token() {
        for (raw, why) in [
            (
                format!("https://example.com/api/webhooks/{ID}/{TOKEN}"),
                "not Discord",
            ),
            (format!("https://discord.com/webhooks/{ID}/{TOKEN}"), "path"),
            (format!("https://discord.com/api/webhooks/{ID}"), "path"),
            (
                format!("https://discord.com/api/webhooks/{ID}/{TOKEN}/extra"),
                "path",
            ),
            (
                format!("https://discord.com/api/webhooks/test/{TOKEN}"),
                "not a number",
            ),
            (
                format!("https://discord.com/api/webhooks/{ID}/{TOKEN}%20x"),
                "characters",
            ),
            (
                format!("https://discord.com:8443/api/webhooks/{ID}/{TOKEN}"),
                "port",
            ),
            (
                format!("https://u:p@discord.com/api/webhooks/{ID}/{TOKEN}"),
                "user name",
            ),
            (
                format!("ftp://discord.com/api/webhooks/{ID}/{TOKEN}"),
                "scheme",
            ),
            (
                format!("'https://discord.com/api/webhooks/{ID}/{TOKEN}'"),
                "not a URL",
            ),
        ] {
            let err = WebhookUrl::parse(&raw).unwrap_err();
            let text = format!("{err:#}");
            assert_eq!(exit_kind(&err), ExitKind::Usage, "{raw}");
            assert!(text.starts_with("DISCORD_WEBHOOK_URL "), "{text}");
            assert!(
                text.contains("https://discord.com/api/webhooks/ID/TOKEN"),
                "{text}"
            );
            assert!(text.contains(why), "{raw}: {text}");
            assert!(!text.contains(TOKEN), "{text}");
        }
    }

    #[test]
    fn redacts_tokens_in_any_webhook_url_form() {
        let text = format!(
            "a https://discord.com/api/webhooks/{ID}/{TOKEN} b \
             https://canary.discordapp.com/api/v10/webhooks/{ID}/{TOKEN}?wait=true c \
             /api/webhooks/notanid/keep"
        );
        let redacted = redact(&text);
        assert!(!redacted.contains(TOKEN), "{redacted}");
        assert_eq!(
            redacted,
            format!(
                "a https://discord.com/api/webhooks/{ID}/(redacted) b \
                 https://canary.discordapp.com/api/v10/webhooks/{ID}/(redacted)?wait=true c \
                 /api/webhooks/notanid/keep"
            )
        );
        let url =
            WebhookUrl::parse(&format!("https://discord.com/api/webhooks/{ID}/{TOKEN}")).unwrap();
        assert_eq!(url.redact(&format!("token={TOKEN};")), "token=(redacted);");
        assert!(!url.redacted().contains(TOKEN));
    }

    #[test]
    fn debug_output_never_shows_the_token() {
        let fake = FakeWebhook::start();
        let url = WebhookUrl::parse(&fake.url()).unwrap();
        let webhook = Webhook::new(url.clone()).unwrap();
        for text in [
            format!("{url:?}"),
            format!("{webhook:?}"),
            format!("{webhook:#?}"),
        ] {
            assert!(!text.contains(TOKEN), "{text}");
            assert!(text.contains(ID), "{text}");
        }
    }

    #[test]
    fn scan_messages_match_the_integration_guide() {
        let two = scan_complete(
            &[
                candidate("BHP", "Quarterly Activities Report"),
                candidate("14D", "Trading Halt"),
            ],
            at(),
        );
        let parts = payloads(&two);
        assert_eq!(parts.len(), 1);
        assert_eq!(
            serde_json::to_value(&parts[0]).unwrap(),
            json!({
                "embeds": [{
                    "title": "ASX Market Scan Complete",
                    "description": "2 new candidates found",
                    "color": 0x00FF00,
                    "fields": [
                        {"name": "BHP",
                         "value": "Gap: 12.3%, Price: $1.200\nQuarterly Activities Report",
                         "inline": false},
                        {"name": "14D", "value": "Gap: 12.3%, Price: $1.200\nTrading Halt",
                         "inline": false},
                    ],
                    "timestamp": "2026-12-02T23:15:00Z",
                }],
                "allowed_mentions": {"parse": []},
            })
        );

        let one = scan_complete(&[candidate("BHP", "")], at());
        let embed = &one.embeds[0];
        assert_eq!(embed.description.as_deref(), Some("1 new candidate found"));
        assert_eq!(embed.fields[0].value, "Gap: 12.3%, Price: $1.200");

        let none = scan_complete(&[], at());
        let embed = &none.embeds[0];
        assert_eq!(embed.title.as_deref(), Some("ASX Market Scan Complete"));
        assert_eq!(
            embed.description.as_deref(),
            Some("No new candidates found")
        );
        assert_eq!(embed.colour, Some(YELLOW));
        assert!(embed.fields.is_empty());

        let failed = scan_error(
            &format!("failed to fetch https://discord.com/api/webhooks/{ID}/{TOKEN}"),
            at(),
        );
        let embed = &failed.embeds[0];
        assert_eq!(embed.title.as_deref(), Some("ASX Market Scan Error"));
        assert_eq!(embed.colour, Some(RED));
        assert_eq!(
            embed.description.as_deref(),
            Some(
                format!("failed to fetch https://discord.com/api/webhooks/{ID}/(redacted)")
                    .as_str()
            )
        );
    }

    #[test]
    fn long_headline_is_truncated_with_an_ellipsis() {
        let message = scan_complete(
            &[candidate("XYZ", &"Very long headline ".repeat(100))],
            at(),
        );
        let parts = payloads(&message);
        assert_eq!(parts.len(), 1);
        assert_within_limits(&parts[0]);
        let value = &parts[0].embeds()[0].fields[0].value;
        // The cut keeps 1023 characters, less a trailing space, then "…".
        assert!((FIELD_VALUE_MAX - 1..=FIELD_VALUE_MAX).contains(&char_count(value)));
        assert!(value.starts_with("Gap: 12.3%, Price: $1.200\nVery long headline"));
        assert!(value.ends_with(" long…"), "{value}");
    }

    #[test]
    fn thirty_candidates_spread_over_embeds_and_messages() {
        let tickers: Vec<String> = (0..30).map(|i| format!("T{i:02}")).collect();
        let short: Vec<ScanCandidate> = tickers.iter().map(|t| candidate(t, "Results")).collect();
        let parts = payloads(&scan_complete(&short, at()));
        assert_eq!(parts.len(), 1);
        let embeds = parts[0].embeds();
        assert_eq!(embeds.len(), 2);
        assert_eq!(embeds[0].fields.len(), 25);
        assert_eq!(
            embeds[0].description.as_deref(),
            Some("30 new candidates found")
        );
        assert_eq!(embeds[0].timestamp, None);
        assert_eq!(
            embeds[1].title.as_deref(),
            Some("ASX Market Scan Complete (continued)")
        );
        assert_eq!(embeds[1].fields.len(), 5);
        assert_eq!(embeds[1].colour, Some(GREEN));
        assert_eq!(embeds[1].timestamp.as_deref(), Some("2026-12-02T23:15:00Z"));

        // 30 fields of about 330 characters exceed one message's 6000.
        let long: Vec<ScanCandidate> = tickers
            .iter()
            .map(|t| candidate(t, &"Material contract ".repeat(17)))
            .collect();
        let parts = payloads(&scan_complete(&long, at()));
        assert!(parts.len() >= 2, "{} messages", parts.len());
        parts.iter().for_each(assert_within_limits);
        let shown: Vec<&str> = parts
            .iter()
            .flat_map(|p| p.embeds())
            .flat_map(|e| &e.fields)
            .map(|f| f.name.as_str())
            .collect();
        assert_eq!(shown, tickers);
    }

    /// The one Discord payload `message` fits into, as JSON.
    fn only_payload(message: &Message) -> serde_json::Value {
        let parts = payloads(message);
        assert_eq!(parts.len(), 1, "{parts:?}");
        assert_within_limits(&parts[0]);
        serde_json::to_value(&parts[0]).unwrap()
    }

    fn order(ticker: &str, quantity: u64, entry_stop: f64, stop_loss: f64) -> EntryOrder {
        EntryOrder {
            ticker: ticker.to_owned(),
            quantity,
            entry_stop,
            stop_loss,
        }
    }

    fn position(ticker: &str, quantity: u64, entry: f64, last: f64, pnl: f64) -> PositionLine {
        PositionLine {
            ticker: ticker.to_owned(),
            quantity,
            entry_price: entry,
            last_price: last,
            unrealized_pnl: pnl,
        }
    }

    #[test]
    fn prices_show_the_decimals_of_their_step_and_pnl_its_sign() {
        for (price, shown) in [
            (45.5, "$45.50"),
            (2.0, "$2.00"),
            (1.995, "$1.995"),
            (0.1, "$0.100"),
            (0.095, "$0.095"),
            (0.0, "$0.000"),
        ] {
            assert_eq!(format_price(price), shown, "{price}");
        }
        for (amount, shown) in [
            (12.5, "+$12.50"),
            (-3.0, "-$3.00"),
            (1234.567, "+$1234.57"),
            (-0.004, "$0.00"),
            (0.0, "$0.00"),
        ] {
            assert_eq!(format_pnl(amount), shown, "{amount}");
        }
        assert_eq!(format_signed_pct(3.333), "+3.3%");
        assert_eq!(format_signed_pct(-7.69), "-7.7%");
        assert_eq!(format_signed_pct(-0.04), "0.0%");
        assert_eq!(
            [pnl_colour(0.01), pnl_colour(-0.01), pnl_colour(0.004)],
            [GREEN, RED, YELLOW]
        );
    }

    #[test]
    fn entry_orders_placed_lists_each_order() {
        let message = entry_placed(
            &[
                order("BHP", 100, 45.5, 44.1),
                order("14D", 2000, 0.195, 0.18),
            ],
            at(),
        );
        assert_eq!(
            only_payload(&message),
            json!({
                "embeds": [{
                    "title": "Entry Orders Placed",
                    "description": "2 entry orders placed",
                    "color": 0x00FF00,
                    "fields": [
                        {"name": "BHP", "value": "Buy 100 @ stop $45.50, stop loss $44.10",
                         "inline": false},
                        {"name": "14D", "value": "Buy 2000 @ stop $0.195, stop loss $0.180",
                         "inline": false},
                    ],
                    "timestamp": "2026-12-02T23:15:00Z",
                }],
                "allowed_mentions": {"parse": []},
            })
        );

        let one = entry_placed(&[order("BHP", 100, 45.5, 44.1)], at());
        assert_eq!(
            one.embeds[0].description.as_deref(),
            Some("1 entry order placed")
        );
        assert_eq!(
            only_payload(&entry_placed(&[], at())),
            json!({
                "embeds": [{
                    "title": "Entry Orders Placed",
                    "description": "No entry orders placed",
                    "color": 0xFFFF00,
                    "timestamp": "2026-12-02T23:15:00Z",
                }],
                "allowed_mentions": {"parse": []},
            })
        );
    }

    #[test]
    fn fills_and_exits_match_the_guide_style() {
        assert_eq!(
            only_payload(&entry_filled("BHP", 100, 45.52, 44.1, at())),
            json!({
                "embeds": [{
                    "title": "Entry Filled",
                    "description": "Bought 100 BHP @ $45.52",
                    "color": 0x00FF00,
                    "fields": [
                        {"name": "Ticker", "value": "BHP", "inline": true},
                        {"name": "Quantity", "value": "100", "inline": true},
                        {"name": "Fill price", "value": "$45.52", "inline": true},
                        {"name": "Stop loss", "value": "$44.10", "inline": true},
                    ],
                    "timestamp": "2026-12-02T23:15:00Z",
                }],
                "allowed_mentions": {"parse": []},
            })
        );
        assert_eq!(
            only_payload(&stop_hit("14D", 2000, 0.17, -50.0, at())),
            json!({
                "embeds": [{
                    "title": "Stop Hit",
                    "description": "Sold 2000 14D @ $0.170 at the stop",
                    "color": 0xFF0000,
                    "fields": [
                        {"name": "Ticker", "value": "14D", "inline": true},
                        {"name": "Quantity", "value": "2000", "inline": true},
                        {"name": "Exit price", "value": "$0.170", "inline": true},
                        {"name": "Realized P&L", "value": "-$50.00", "inline": true},
                    ],
                    "timestamp": "2026-12-02T23:15:00Z",
                }],
                "allowed_mentions": {"parse": []},
            })
        );
        assert_eq!(
            only_payload(&half_exit("BHP", 50, 48.2, 50, 45.52, at())),
            json!({
                "embeds": [{
                    "title": "Half Exit (Day 3)",
                    "description": "Sold 50 BHP @ $48.20; 50 remain",
                    "color": 0x00FF00,
                    "fields": [
                        {"name": "Ticker", "value": "BHP", "inline": true},
                        {"name": "Sold", "value": "50", "inline": true},
                        {"name": "Price", "value": "$48.20", "inline": true},
                        {"name": "Remaining", "value": "50", "inline": true},
                        {"name": "New stop", "value": "$45.52", "inline": true},
                    ],
                    "timestamp": "2026-12-02T23:15:00Z",
                }],
                "allowed_mentions": {"parse": []},
            })
        );
        assert_eq!(
            only_payload(&trail_exit("BHP", 50, 51.3, 51.75, 289.0, at())),
            json!({
                "embeds": [{
                    "title": "Trailing Exit (10-day SMA)",
                    "description": "Sold 50 BHP @ $51.30 after a close below the 10-day SMA",
                    "color": 0x00FF00,
                    "fields": [
                        {"name": "Ticker", "value": "BHP", "inline": true},
                        {"name": "Quantity", "value": "50", "inline": true},
                        {"name": "Exit price", "value": "$51.30", "inline": true},
                        {"name": "10-day SMA", "value": "$51.75", "inline": true},
                        {"name": "Realized P&L", "value": "+$289.00", "inline": true},
                    ],
                    "timestamp": "2026-12-02T23:15:00Z",
                }],
                "allowed_mentions": {"parse": []},
            })
        );
        let losing = trail_exit("BHP", 50, 44.0, 44.5, -76.0, at());
        assert_eq!(losing.embeds[0].colour, Some(RED));
        assert_eq!(losing.embeds[0].fields[4].value, "-$76.00");
    }

    #[test]
    fn refusals_and_errors_are_red_and_redacted() {
        assert_eq!(
            only_payload(&trade_refused(
                "trading is halted since 2026-12-02 (reason: news)",
                at()
            )),
            json!({
                "embeds": [{
                    "title": "Trading Refused",
                    "description": "trading is halted since 2026-12-02 (reason: news)",
                    "color": 0xFF0000,
                    "timestamp": "2026-12-02T23:15:00Z",
                }],
                "allowed_mentions": {"parse": []},
            })
        );
        let hook = format!("https://discord.com/api/webhooks/{ID}");
        let error = format!("failed to notify {hook}/{TOKEN}");
        assert_eq!(
            only_payload(&trade_error(&error, at())),
            json!({
                "embeds": [{
                    "title": "Trade Error",
                    "description": format!("failed to notify {hook}/(redacted)"),
                    "color": 0xFF0000,
                    "timestamp": "2026-12-02T23:15:00Z",
                }],
                "allowed_mentions": {"parse": []},
            })
        );
        let refused = serde_json::to_string(&trade_refused(&error, at())).unwrap();
        assert!(!refused.contains(TOKEN), "{refused}");
    }

    #[test]
    fn daily_summary_shows_positions_totals_and_missed_runs() {
        let summary = PositionsSummary {
            positions: vec![
                position("BHP", 100, 45.0, 46.5, 150.0),
                position("14D", 2000, 0.195, 0.18, -30.0),
            ],
            realized_pnl: -200.0,
            missed_runs: vec![
                MissedRun {
                    command: "skim trade manage".to_owned(),
                    problem: "did not run at 10:30".to_owned(),
                },
                MissedRun {
                    command: "skim scan".to_owned(),
                    problem: "failed: HTTP 503 from IBKR".to_owned(),
                },
            ],
        };
        assert_eq!(
            only_payload(&daily_summary(&summary, at())),
            json!({
                "embeds": [{
                    "title": "ASX Positions Summary",
                    "description": "2 open positions",
                    "color": 0xFF0000,
                    "fields": [
                        {"name": "BHP", "value": "100 @ $45.00, last $46.50, P&L +$150.00 (+3.3%)",
                         "inline": false},
                        {"name": "14D",
                         "value": "2000 @ $0.195, last $0.180, P&L -$30.00 (-7.7%)",
                         "inline": false},
                        {"name": "Unrealized P&L", "value": "+$120.00", "inline": true},
                        {"name": "Realized P&L", "value": "-$200.00", "inline": true},
                        {"name": "Total P&L", "value": "-$80.00", "inline": true},
                        {"name": "Missed runs",
                         "value": "skim trade manage: did not run at 10:30\n\
                                   skim scan: failed: HTTP 503 from IBKR",
                         "inline": false},
                    ],
                    "timestamp": "2026-12-02T23:15:00Z",
                }],
                "allowed_mentions": {"parse": []},
            })
        );

        let gaining = PositionsSummary {
            positions: vec![position("BHP", 1, 45.0, 46.0, 1.0)],
            ..PositionsSummary::default()
        };
        let embed = &daily_summary(&gaining, at()).embeds[0];
        assert_eq!(embed.colour, Some(GREEN));
        assert_eq!(embed.description.as_deref(), Some("1 open position"));
        assert!(embed.fields.iter().all(|f| f.name != "Missed runs"));

        assert_eq!(
            only_payload(&daily_summary(&PositionsSummary::default(), at())),
            json!({
                "embeds": [{
                    "title": "ASX Positions Summary",
                    "description": "No open positions",
                    "color": 0xFFFF00,
                    "fields": [
                        {"name": "Unrealized P&L", "value": "$0.00", "inline": true},
                        {"name": "Realized P&L", "value": "$0.00", "inline": true},
                        {"name": "Total P&L", "value": "$0.00", "inline": true},
                    ],
                    "timestamp": "2026-12-02T23:15:00Z",
                }],
                "allowed_mentions": {"parse": []},
            })
        );
    }

    #[test]
    fn long_trade_lists_are_split_within_discords_limits() {
        let orders: Vec<EntryOrder> = (0..30)
            .map(|i| order(&format!("T{i:02}"), 100, 1.5, 1.4))
            .collect();
        let parts = payloads(&entry_placed(&orders, at()));
        parts.iter().for_each(assert_within_limits);
        let embeds: Vec<&Embed> = parts.iter().flat_map(|p| p.embeds()).collect();
        assert_eq!(embeds.len(), 2);
        assert_eq!(
            embeds[1].title.as_deref(),
            Some("Entry Orders Placed (continued)")
        );
        let shown: Vec<&str> = embeds
            .iter()
            .flat_map(|e| &e.fields)
            .map(|f| f.name.as_str())
            .collect();
        let tickers: Vec<&str> = orders.iter().map(|o| o.ticker.as_str()).collect();
        assert_eq!(shown, tickers);

        let summary = PositionsSummary {
            positions: (0..40)
                .map(|i| position(&format!("P{i:02}"), 10, 3.0, 3.1, 1.0))
                .collect(),
            realized_pnl: 0.0,
            missed_runs: (0..200)
                .map(|i| MissedRun {
                    command: format!("skim trade manage #{i}"),
                    problem: "did not run".to_owned(),
                })
                .collect(),
        };
        let parts = payloads(&daily_summary(&summary, at()));
        parts.iter().for_each(assert_within_limits);
        let fields: Vec<&EmbedField> = parts
            .iter()
            .flat_map(|p| p.embeds())
            .flat_map(|e| &e.fields)
            .collect();
        assert_eq!(fields.len(), 40 + 3 + 1);
        let last = fields.last().unwrap();
        assert_eq!(last.name, "Missed runs");
        assert!(last.value.ends_with('…'), "cut to 1024 characters");
        assert_eq!(fields[42].value, "+$40.00");
    }

    #[test]
    fn oversized_texts_are_cut_to_fit() {
        let embed = Embed::new("T".repeat(300), 0x1FF_FFFF)
            .description("d".repeat(5000))
            .footer("f".repeat(3000))
            .field("", "  ", true);
        let message = Message {
            content: Some("c".repeat(2500)),
            username: Some("skim".to_string()),
            embeds: vec![embed; 3],
        };
        let parts = payloads(&message);
        parts.iter().for_each(assert_within_limits);
        assert_eq!(parts[0].content().map(char_count), Some(CONTENT_MAX));
        assert!(parts[1..].iter().all(|p| p.content().is_none()));
        let first = &parts[0].embeds()[0];
        assert_eq!(first.colour, Some(0xFF_FF_FF));
        assert_eq!(first.title.as_deref().map(char_count), Some(TITLE_MAX));
        let json = serde_json::to_value(&parts[0]).unwrap();
        assert_eq!(json["username"], "skim");

        assert!(Message::default().is_empty());
        assert!(Message::text("   ").is_empty());
        let renamed = payloads(&Message::text("hi").username("Discord Bot"));
        assert_eq!(
            serde_json::to_value(&renamed[0]).unwrap().get("username"),
            None
        );
    }

    #[test]
    fn posts_with_wait_true_and_no_mentions() {
        let fake = FakeWebhook::start();
        let clock = ManualClock::default();
        let mut webhook = client(&fake, &clock);
        let id = webhook
            .post(&payloads(&Message::text("@everyone hello"))[0])
            .unwrap();
        assert_eq!(id.as_deref(), Some("900000000000000001"));

        let requests = fake.requests();
        assert_eq!(requests.len(), 1);
        let request = &requests[0];
        assert_eq!(
            request.target,
            format!("/api/v10/webhooks/{ID}/{TOKEN}?thread_id=77&wait=true")
        );
        assert_eq!(
            request.body,
            json!({"content": "@everyone hello", "allowed_mentions": {"parse": []}})
        );
        let agent = request
            .headers
            .iter()
            .find(|(name, _)| name == "user-agent")
            .unwrap();
        assert!(agent.1.starts_with("DiscordBot ("), "{}", agent.1);
        assert!(clock.sleeps().is_empty());
    }

    #[test]
    fn honours_retry_after_from_a_429() {
        let fake = FakeWebhook::start();
        fake.reply(
            429,
            &[("retry-after", "2")],
            r#"{"message": "You are being rate limited.", "retry_after": 1.5, "global": false}"#,
        );
        fake.reply(429, &[("retry-after", "3")], "");
        let clock = ManualClock::default();
        let mut webhook = client(&fake, &clock);
        let id = webhook.post(&payloads(&Message::text("hi"))[0]).unwrap();
        assert_eq!(id.as_deref(), Some("900000000000000003"));
        assert_eq!(fake.requests().len(), 3);
        assert_eq!(
            clock.sleeps(),
            [Duration::from_millis(1500), Duration::from_secs(3)]
        );
    }

    #[test]
    fn gives_up_on_repeated_429_and_long_waits() {
        let fake = FakeWebhook::start();
        for _ in 0..MAX_ATTEMPTS {
            fake.reply(429, &[], r#"{"retry_after": 0.25}"#);
        }
        let clock = ManualClock::default();
        let mut webhook = client(&fake, &clock);
        let err = webhook
            .post(&payloads(&Message::text("hi"))[0])
            .unwrap_err();
        assert!(matches!(err, SendError::Transient { .. }), "{err:?}");
        assert_eq!(fake.requests().len(), MAX_ATTEMPTS as usize);

        fake.reply(429, &[], r#"{"retry_after": 1336.57}"#);
        let err = webhook
            .post(&payloads(&Message::text("hi"))[0])
            .unwrap_err();
        assert!(err.to_string().contains("left for the next run"), "{err}");
        assert_eq!(fake.requests().len(), MAX_ATTEMPTS as usize + 1);
    }

    #[test]
    fn never_sends_more_than_5_per_2s_or_30_per_minute() {
        let fake = FakeWebhook::start();
        let clock = ManualClock::default();
        let mut webhook = client(&fake, &clock);
        let payload = &payloads(&Message::text("tick"))[0];
        let mut sent_at = Vec::new();
        for _ in 0..31 {
            webhook.post(payload).unwrap();
            sent_at.push(clock.elapsed());
        }
        assert_eq!(sent_at[4], Duration::ZERO);
        assert_eq!(sent_at[5], Duration::from_secs(2));
        for i in 5..sent_at.len() {
            assert!(
                sent_at[i] - sent_at[i - 5] >= BURST_WINDOW,
                "burst at request {i}"
            );
        }
        assert!(sent_at[30] - sent_at[0] >= SUSTAINED_WINDOW);
        assert_eq!(sent_at[30], Duration::from_secs(60));
        assert_eq!(fake.requests().len(), 31);
    }

    #[test]
    fn waits_for_an_empty_bucket_to_refill() {
        let fake = FakeWebhook::start();
        fake.reply(
            200,
            &[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset-after", "3.5"),
            ],
            r#"{"id": "1"}"#,
        );
        let clock = ManualClock::default();
        let mut webhook = client(&fake, &clock);
        let payload = &payloads(&Message::text("hi"))[0];
        webhook.post(payload).unwrap();
        assert!(clock.sleeps().is_empty());
        webhook.post(payload).unwrap();
        assert_eq!(clock.sleeps(), [Duration::from_millis(3500)]);
    }

    #[test]
    fn a_404_disables_the_webhook_for_the_run() {
        let fake = FakeWebhook::start();
        fake.reply(404, &[], r#"{"message": "Unknown Webhook", "code": 10015}"#);
        let clock = ManualClock::default();
        let mut webhook = client(&fake, &clock);
        let payload = &payloads(&Message::text("hi"))[0];
        let err = webhook.post(payload).unwrap_err();
        assert!(
            matches!(err, SendError::Disabled { status: 404, .. }),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(text.contains("Unknown Webhook (code 10015)"), "{text}");
        assert!(text.contains(ID) && !text.contains(TOKEN), "{text}");

        assert_eq!(webhook.post(payload).unwrap_err(), err);
        assert_eq!(webhook.send(&Message::text("again")).unwrap_err(), err);
        assert_eq!(fake.requests().len(), 1, "no request after a 404");
        assert!(clock.sleeps().is_empty());
        assert_eq!(webhook.disabled(), Some(&err));
    }

    #[test]
    fn server_errors_are_retried_a_bounded_number_of_times() {
        let fake = FakeWebhook::start();
        fake.reply(502, &[], "<html>Bad Gateway</html>");
        let clock = ManualClock::default();
        let mut webhook = client(&fake, &clock);
        assert!(webhook.post(&payloads(&Message::text("hi"))[0]).is_ok());
        assert_eq!(fake.requests().len(), 2);

        for _ in 0..MAX_ATTEMPTS {
            fake.reply(500, &[], "");
        }
        let err = webhook
            .post(&payloads(&Message::text("hi"))[0])
            .unwrap_err();
        assert!(matches!(err, SendError::Transient { .. }), "{err:?}");
        assert!(
            err.to_string().contains("gave up after 4 attempts"),
            "{err}"
        );
        assert_eq!(fake.requests().len(), 2 + MAX_ATTEMPTS as usize);
    }

    #[test]
    fn errors_never_carry_the_token() {
        // A refused connection: the HTTP client's own error names the URL.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/api/webhooks/{ID}/{TOKEN}");
        let clock = ManualClock::default();
        let mut webhook =
            Webhook::with_clock(WebhookUrl::parse(&url).unwrap(), Box::new(clock.clone())).unwrap();
        let err = webhook
            .post(&payloads(&Message::text("hi"))[0])
            .unwrap_err();
        assert!(matches!(err, SendError::Transient { .. }), "{err:?}");
        let text = format!("{err} {err:?}");
        assert!(text.contains("failed to reach Discord"), "{text}");
        assert!(!text.contains(TOKEN), "{text}");
        assert_eq!(clock.sleeps().len(), MAX_ATTEMPTS as usize - 1);

        // Discord echoing the token back in a 400.
        let fake = FakeWebhook::start();
        fake.reply(
            400,
            &[],
            &format!(r#"{{"message": "bad {TOKEN}", "code": 50035}}"#),
        );
        let mut webhook = client(&fake, &clock);
        let err = webhook
            .post(&payloads(&Message::text("hi"))[0])
            .unwrap_err();
        assert!(
            matches!(err, SendError::Rejected { status: 400, .. }),
            "{err:?}"
        );
        let text = format!("{err} {err:?}");
        assert!(text.contains("bad (redacted) (code 50035)"), "{text}");
        assert!(!text.contains(TOKEN), "{text}");
        assert!(webhook.disabled().is_none());
    }
}
