//! `skim notify`: post a message to Discord through the outbox, or deliver
//! what is queued.

use std::io::Read;

use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;
use skim_asx::discord::{self, Embed, Message};
use skim_asx::outbox::{self, DeliveryReport, Queued};
use skim_asx::store::Store;
use skim_asx::{Ctx, error, output};

#[derive(Debug, Args)]
pub struct NotifyArgs {
    /// Message text (the embed's description when --title is given)
    #[arg(value_name = "TEXT")]
    pub text: Option<String>,

    /// Send an embed with this title
    #[arg(long, value_name = "TITLE")]
    pub title: Option<String>,

    /// Embed colour: green, yellow, red, blue, grey, or hex like #00ff00
    #[arg(long, value_name = "COLOR", value_parser = parse_colour)]
    pub color: Option<u32>,

    /// Add an embed field (repeatable)
    #[arg(long, value_name = "NAME=VALUE", value_parser = parse_field)]
    pub field: Vec<(String, String)>,

    /// Read the message from stdin as JSON: an embed object or a whole payload
    #[arg(long, conflicts_with_all = ["text", "title", "color", "field"])]
    pub stdin: bool,

    /// Only deliver what is queued
    #[arg(long, conflicts_with_all = ["text", "title", "color", "field", "stdin"])]
    pub flush: bool,
}

#[derive(Serialize)]
struct Report {
    queued_id: Option<i64>,
    delivery: DeliveryReport,
    pending: Vec<Queued>,
}

pub fn run(ctx: &Ctx, args: NotifyArgs) -> Result<()> {
    let message = if args.flush {
        None
    } else {
        Some(build_message(&args)?)
    };
    let store = Store::open(&ctx.config.db_path)?;
    let now = ctx.now();
    let queued_id = match &message {
        Some(message) => Some(outbox::enqueue(&store, message, now)?),
        None => None,
    };
    let webhook = ctx.config.discord_webhook_url.as_ref();
    let delivery = outbox::deliver_with(&store, webhook, now)?;
    let pending = outbox::pending(&store)?;
    let failed = webhook.is_some() && (delivery.failed > 0 || delivery.stopped.is_some());
    let report = Report {
        queued_id,
        delivery,
        pending,
    };
    if ctx.json {
        output::print_json(&report)?;
    } else {
        let d = &report.delivery;
        let mut text = format!("sent {} notification(s); {} queued", d.sent, d.queued);
        if let Some(why) = &d.stopped {
            text.push_str(&format!(" ({why})"));
        }
        output::print_text(&text)?;
    }
    if failed {
        let why = report
            .delivery
            .stopped
            .clone()
            .unwrap_or_else(|| "Discord refused it".into());
        return Err(error::failure(format!(
            "{} notification(s) could not be delivered: {why}",
            report.delivery.queued
        ))
        .hint("they stay queued; `skim notify --flush` or the next command retries them")
        .into());
    }
    Ok(())
}

fn build_message(args: &NotifyArgs) -> Result<Message> {
    if args.stdin {
        let mut input = String::new();
        std::io::stdin()
            .read_to_string(&mut input)
            .context("failed to read stdin")?;
        return parse_stdin(&input);
    }
    if args.title.is_none() && args.field.is_empty() && args.color.is_none() {
        return match &args.text {
            Some(text) => Ok(Message::text(text)),
            None => {
                Err(error::usage("nothing to send; give TEXT, --title, --stdin or --flush").into())
            }
        };
    }
    let mut embed = Embed::new(
        args.title.clone().unwrap_or_default(),
        args.color.unwrap_or(0),
    );
    if let Some(text) = &args.text {
        embed = embed.description(text);
    }
    for (name, value) in &args.field {
        embed = embed.field(name, value, false);
    }
    Ok(Message::embed(embed))
}

/// A payload (`content`/`embeds`) or a single embed object.
fn parse_stdin(input: &str) -> Result<Message> {
    let value: serde_json::Value = serde_json::from_str(input).map_err(|err| {
        error::usage(format!(
            "stdin is not JSON ({err}); expected an embed or a payload"
        ))
    })?;
    let is_payload = value.get("embeds").is_some() || value.get("content").is_some();
    let message = if is_payload {
        serde_json::from_value::<Message>(value)
    } else {
        serde_json::from_value::<Embed>(value).map(Message::embed)
    };
    let message = message.map_err(|err| {
        error::usage(format!(
            "stdin JSON is not a Discord embed or payload: {err}"
        ))
    })?;
    if message.is_empty() {
        return Err(error::usage("stdin JSON has nothing to send").into());
    }
    Ok(message)
}

fn parse_colour(text: &str) -> Result<u32, String> {
    let named = match text.to_ascii_lowercase().as_str() {
        "green" => Some(discord::GREEN),
        "yellow" => Some(discord::YELLOW),
        "red" => Some(discord::RED),
        "blue" => Some(0x3498db),
        "grey" | "gray" => Some(0x95a5a6),
        _ => None,
    };
    if let Some(colour) = named {
        return Ok(colour);
    }
    let hex = text.trim_start_matches('#').trim_start_matches("0x");
    match u32::from_str_radix(hex, 16) {
        Ok(colour) if hex.len() == 6 => Ok(colour),
        _ => Err(format!("expected a colour name or #RRGGBB, not {text:?}")),
    }
}

fn parse_field(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_owned(), value.to_owned()))
        }
        _ => Err(format!("expected NAME=VALUE, not {text:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_and_fields_parse() {
        assert_eq!(parse_colour("#00ff00"), Ok(0x00ff00));
        assert_eq!(parse_colour("RED"), Ok(discord::RED));
        assert!(parse_colour("#12").is_err());
        assert_eq!(parse_field("Gap=5.2%"), Ok(("Gap".into(), "5.2%".into())));
        assert!(parse_field("=x").is_err());
    }

    #[test]
    fn stdin_takes_an_embed_or_a_payload() {
        let embed = parse_stdin(r#"{"title":"Hi","description":"there"}"#).unwrap();
        assert_eq!(embed.embeds[0].title.as_deref(), Some("Hi"));
        let payload = parse_stdin(r#"{"content":"plain"}"#).unwrap();
        assert_eq!(payload.content.as_deref(), Some("plain"));
        assert!(parse_stdin("[1,2]").is_err());
        assert!(parse_stdin("{}").is_err());
    }
}
