//! The notification outbox: write first, send after.
//!
//! Every notification is stored in the `outbox` table (in the same
//! transaction as the change it reports, when the caller wants that) before
//! any attempt to send it. [`deliver_pending`] later sends what is queued, in
//! order, and records each outcome; what could not be sent stays queued for
//! the next run. Delivery problems come back as a [`DeliveryReport`], never as
//! an error, so a failing webhook cannot fail a scan or a trade. Fitting a
//! message into Discord's limits and talking to Discord belong to
//! `crate::discord`.

use anyhow::Context;
use chrono::{DateTime, Utc};
use rusqlite::{Transaction, params};
use serde::Serialize;

use crate::discord::{self, Message, SendError, Webhook};
use crate::error;
use crate::store::{Store, timestamp};

/// What one call of [`deliver_pending`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DeliveryReport {
    /// Notifications fully delivered by this call.
    pub sent: usize,
    /// Notifications attempted and not (fully) delivered; they stay queued.
    pub failed: usize,
    /// Notifications still queued after this call.
    pub queued: usize,
    /// Why delivery stopped before the end of the queue, if it did: no
    /// webhook configured, the webhook is gone (401/403/404), or Discord or
    /// the network failing. Token-free text.
    pub stopped: Option<String>,
}

/// A notification waiting in the outbox, for listings such as
/// `skim notify --json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Queued {
    /// The outbox row id, as [`enqueue`] returned it.
    pub id: i64,
    /// When it was queued, RFC 3339 UTC.
    pub created_at: String,
    /// Runs that tried to deliver it.
    pub attempts: u32,
    /// The last delivery error, redacted.
    pub last_error: Option<String>,
    /// Its first title or the start of its text.
    pub summary: String,
}

/// Queues `message` in its own transaction and returns its outbox id.
/// An empty message (nothing left after trimming) is a usage error.
pub fn enqueue(store: &Store, message: &Message, now: DateTime<Utc>) -> anyhow::Result<i64> {
    store.transaction(|tx| enqueue_in(tx, message, now))
}

/// Queues `message` inside the caller's transaction, so the notification is
/// stored if and only if the change it reports is.
pub fn enqueue_in(
    tx: &Transaction<'_>,
    message: &Message,
    now: DateTime<Utc>,
) -> anyhow::Result<i64> {
    if message.is_empty() {
        return Err(error::usage("notification has no text and no embeds").into());
    }
    let json = serde_json::to_string(message).context("failed to encode notification")?;
    tx.execute(
        "INSERT INTO outbox (created_at, message) VALUES (?1, ?2)",
        params![timestamp(now), json],
    )
    .context("failed to queue notification")?;
    let id = tx.last_insert_rowid();
    log::debug!("queued notification {id}: {}", message.summary());
    Ok(id)
}

/// The queued notifications, oldest first.
pub fn pending(store: &Store) -> anyhow::Result<Vec<Queued>> {
    let mut stmt = store
        .connection()
        .prepare(
            "SELECT id, created_at, attempts, last_error, message FROM outbox
             WHERE status = 'queued' ORDER BY id",
        )
        .context("failed to read the notification outbox")?;
    let rows = stmt
        .query_map([], |row| {
            let message: String = row.get(4)?;
            let summary = serde_json::from_str::<Message>(&message)
                .map_or_else(|_| "(unreadable notification)".to_string(), |m| m.summary());
            Ok(Queued {
                id: row.get(0)?,
                created_at: row.get(1)?,
                attempts: row.get(2)?,
                last_error: row.get(3)?,
                summary,
            })
        })
        .and_then(Iterator::collect)
        .context("failed to read the notification outbox")?;
    Ok(rows)
}

/// Sends the queued notifications in order through `webhook`.
///
/// Each notification is fitted into one or more Discord messages; after each
/// part is accepted the outbox records Discord's message id, so a run that
/// dies half-way never repeats a part. A notification is marked sent when
/// its last part is. A failure is recorded on the notification (attempt
/// count, time, redacted error) and it stays queued. A payload Discord
/// refuses (400) does not hold up the rest of the queue; a webhook that is
/// gone (401/403/404), or Discord or the network failing after the client's
/// retries, stops delivery for this call, and the report says why. Without a
/// webhook nothing is sent and the report says so.
///
/// Returns an error only when the database itself cannot be read or
/// written; delivery problems are data in the report.
pub fn deliver_pending(
    store: &Store,
    webhook: Option<&mut Webhook>,
    now: DateTime<Utc>,
) -> anyhow::Result<DeliveryReport> {
    let mut report = DeliveryReport::default();
    match webhook {
        None => report.stopped = Some("DISCORD_WEBHOOK_URL is not set".to_string()),
        Some(webhook) => deliver(store, webhook, now, &mut report)?,
    }
    report.queued = store
        .connection()
        .query_row(
            "SELECT count(*) FROM outbox WHERE status = 'queued'",
            [],
            |row| row.get(0),
        )
        .context("failed to count queued notifications")?;
    Ok(report)
}

/// One queued row as delivery needs it.
struct Row {
    id: i64,
    message: String,
    parts_sent: usize,
    message_ids: Vec<String>,
}

fn deliver(
    store: &Store,
    webhook: &mut Webhook,
    now: DateTime<Utc>,
    report: &mut DeliveryReport,
) -> anyhow::Result<()> {
    if let Some(disabled) = webhook.disabled() {
        report.stopped = Some(disabled.to_string());
        return Ok(());
    }
    for row in queued_rows(store)? {
        let message = match serde_json::from_str::<Message>(&row.message) {
            Ok(message) => message,
            Err(err) => {
                let reason = format!("stored notification cannot be decoded: {err}");
                record_failure(store, row.id, now, &reason)?;
                report.failed += 1;
                continue;
            }
        };
        match send_parts(store, webhook, row, &message)? {
            Ok(id) => {
                store
                    .transaction(|tx| {
                        tx.execute(
                            "UPDATE outbox SET status = 'sent', sent_at = ?2,
                                 attempts = attempts + 1, last_attempt_at = ?2, last_error = NULL
                             WHERE id = ?1",
                            params![id, timestamp(now)],
                        )?;
                        Ok(())
                    })
                    .with_context(|| format!("failed to mark notification {id} sent"))?;
                report.sent += 1;
            }
            Err((id, err)) => {
                let reason = webhook.redact(&err.to_string());
                log::warn!("notification {id} not delivered, it stays queued: {reason}");
                record_failure(store, id, now, &reason)?;
                report.failed += 1;
                if !matches!(err, SendError::Rejected { .. }) {
                    report.stopped = Some(reason);
                    break;
                }
            }
        }
    }
    Ok(())
}

/// Posts the parts of `message` not yet sent, recording each one's id as it
/// is accepted. The outer result is the database's; the inner one says
/// whether every part went out.
fn send_parts(
    store: &Store,
    webhook: &mut Webhook,
    row: Row,
    message: &Message,
) -> anyhow::Result<Result<i64, (i64, SendError)>> {
    let Row {
        id,
        parts_sent,
        mut message_ids,
        ..
    } = row;
    for (index, payload) in discord::payloads(message)
        .iter()
        .enumerate()
        .skip(parts_sent)
    {
        match webhook.post(payload) {
            Ok(message_id) => {
                message_ids.push(message_id.unwrap_or_default());
                let ids = serde_json::to_string(&message_ids)?;
                store
                    .transaction(|tx| {
                        tx.execute(
                            "UPDATE outbox SET parts_sent = ?2, discord_message_ids = ?3
                             WHERE id = ?1",
                            params![id, index + 1, ids],
                        )?;
                        Ok(())
                    })
                    .with_context(|| format!("failed to record delivery of notification {id}"))?;
            }
            Err(err) => return Ok(Err((id, err))),
        }
    }
    Ok(Ok(id))
}

fn queued_rows(store: &Store) -> anyhow::Result<Vec<Row>> {
    let mut stmt = store
        .connection()
        .prepare(
            "SELECT id, message, parts_sent, discord_message_ids FROM outbox
             WHERE status = 'queued' ORDER BY id",
        )
        .context("failed to read the notification outbox")?;
    let rows = stmt
        .query_map([], |row| {
            let ids: String = row.get(3)?;
            Ok(Row {
                id: row.get(0)?,
                message: row.get(1)?,
                parts_sent: row.get(2)?,
                message_ids: serde_json::from_str(&ids).unwrap_or_default(),
            })
        })
        .and_then(Iterator::collect)
        .context("failed to read the notification outbox")?;
    Ok(rows)
}

fn record_failure(store: &Store, id: i64, now: DateTime<Utc>, reason: &str) -> anyhow::Result<()> {
    store
        .transaction(|tx| {
            tx.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_attempt_at = ?2, last_error = ?3
                 WHERE id = ?1",
                params![id, timestamp(now), reason],
            )?;
            Ok(())
        })
        .with_context(|| format!("failed to record the failed delivery of notification {id}"))
}

/// Delivers the queue through the webhook at `webhook_url` (the
/// `DISCORD_WEBHOOK_URL` setting), or reports that none is set.
pub fn deliver_with(
    store: &Store,
    webhook_url: Option<&crate::secret::Secret>,
    now: DateTime<Utc>,
) -> anyhow::Result<DeliveryReport> {
    let mut webhook = match webhook_url {
        Some(url) => Some(Webhook::new(discord::WebhookUrl::parse(url.expose())?)?),
        None => None,
    };
    deliver_pending(store, webhook.as_mut(), now)
}

/// Delivers what is queued and never fails: a notification that cannot be
/// sent stays queued, and the command that queued it still succeeds. What
/// went wrong is logged as a warning.
pub fn deliver_quietly(
    store: &Store,
    webhook_url: Option<&crate::secret::Secret>,
    now: DateTime<Utc>,
) {
    match deliver_with(store, webhook_url, now) {
        Ok(report) if report.failed > 0 => log::warn!(
            "{} notification(s) not delivered ({}); they stay queued",
            report.failed,
            report.stopped.as_deref().unwrap_or("Discord refused them")
        ),
        Ok(_) => {}
        Err(err) => log::warn!("could not deliver notifications: {err:#}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discord::testing::{FakeWebhook, ManualClock, TOKEN};
    use crate::discord::{ScanCandidate, WebhookUrl, scan_complete, scan_error};
    use crate::error::{ExitKind, exit_kind};

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-03T10:15:00+11:00")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("skim.db")).unwrap();
        (dir, store)
    }

    fn webhook(fake: &FakeWebhook) -> Webhook {
        let url = WebhookUrl::parse(&fake.url()).unwrap();
        Webhook::with_clock(url, Box::new(ManualClock::default())).unwrap()
    }

    /// (status, attempts, last_error, parts_sent, discord_message_ids) of row `id`.
    fn row(store: &Store, id: i64) -> (String, u32, Option<String>, usize, String) {
        store
            .connection()
            .query_row(
                "SELECT status, attempts, last_error, parts_sent, discord_message_ids
                 FROM outbox WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .unwrap()
    }

    #[test]
    fn queues_without_a_webhook_and_delivers_later_in_order() {
        let (_dir, store) = store();
        let first = enqueue(&store, &scan_complete(&[], now()), now()).unwrap();
        let second = enqueue(&store, &scan_error("announcements page down", now()), now()).unwrap();

        let report = deliver_pending(&store, None, now()).unwrap();
        assert_eq!(
            report,
            DeliveryReport {
                sent: 0,
                failed: 0,
                queued: 2,
                stopped: Some("DISCORD_WEBHOOK_URL is not set".to_string()),
            }
        );
        assert_eq!(pending(&store).unwrap().len(), 2);
        assert_eq!(row(&store, first).1, 0, "no attempt without a webhook");

        let fake = FakeWebhook::start();
        let mut webhook = webhook(&fake);
        let report = deliver_pending(&store, Some(&mut webhook), now()).unwrap();
        assert_eq!(
            report,
            DeliveryReport {
                sent: 2,
                failed: 0,
                queued: 0,
                stopped: None
            }
        );
        let titles: Vec<_> = fake
            .requests()
            .iter()
            .map(|r| r.body["embeds"][0]["title"].clone())
            .collect();
        assert_eq!(
            titles,
            ["ASX Market Scan Complete", "ASX Market Scan Error"]
        );
        assert_eq!(
            row(&store, first),
            (
                "sent".into(),
                1,
                None,
                1,
                r#"["900000000000000001"]"#.into()
            )
        );
        assert_eq!(row(&store, second).0, "sent");

        let again = deliver_pending(&store, Some(&mut webhook), now()).unwrap();
        assert_eq!(again, DeliveryReport::default());
        assert_eq!(fake.requests().len(), 2, "nothing is sent twice");
    }

    #[test]
    fn a_failure_keeps_it_queued_without_an_error() {
        let (_dir, store) = store();
        let first = enqueue(&store, &Message::text("first"), now()).unwrap();
        let second = enqueue(&store, &Message::text("second"), now()).unwrap();
        let fake = FakeWebhook::start();
        for _ in 0..4 {
            fake.reply(503, &[], r#"{"message": "upstream unavailable"}"#);
        }
        let mut webhook = webhook(&fake);

        let report = deliver_pending(&store, Some(&mut webhook), now()).unwrap();
        assert_eq!((report.sent, report.failed, report.queued), (0, 1, 2));
        let stopped = report.stopped.unwrap();
        assert!(
            stopped.contains("503") && !stopped.contains(TOKEN),
            "{stopped}"
        );
        let (status, attempts, error, _, _) = row(&store, first);
        assert_eq!((status.as_str(), attempts), ("queued", 1));
        assert!(error.unwrap().contains("upstream unavailable"));
        assert_eq!(
            row(&store, second).1,
            0,
            "delivery stopped before the second"
        );

        let report = deliver_pending(&store, Some(&mut webhook), now()).unwrap();
        assert_eq!(
            report,
            DeliveryReport {
                sent: 2,
                failed: 0,
                queued: 0,
                stopped: None
            }
        );
        assert_eq!(row(&store, first).1, 2);
    }

    #[test]
    fn a_gone_webhook_stops_delivery_for_the_run() {
        let (_dir, store) = store();
        enqueue(&store, &Message::text("first"), now()).unwrap();
        enqueue(&store, &Message::text("second"), now()).unwrap();
        let fake = FakeWebhook::start();
        fake.reply(
            401,
            &[],
            r#"{"message": "Invalid Webhook Token", "code": 50027}"#,
        );
        let mut webhook = webhook(&fake);

        let report = deliver_pending(&store, Some(&mut webhook), now()).unwrap();
        assert_eq!((report.sent, report.failed, report.queued), (0, 1, 2));
        assert!(
            report
                .stopped
                .as_deref()
                .unwrap()
                .contains("Invalid Webhook Token (code 50027)")
        );
        let again = deliver_pending(&store, Some(&mut webhook), now()).unwrap();
        assert_eq!((again.sent, again.failed, again.queued), (0, 0, 2));
        assert!(again.stopped.is_some());
        assert_eq!(fake.requests().len(), 1, "no retry storm after a 401");
        let queued = pending(&store).unwrap();
        assert_eq!(queued[0].attempts, 1);
        assert_eq!(queued[0].summary, "first");
    }

    #[test]
    fn a_refused_payload_does_not_hold_up_the_queue() {
        let (_dir, store) = store();
        let bad = enqueue(&store, &Message::text("refused"), now()).unwrap();
        let good = enqueue(&store, &Message::text("fine"), now()).unwrap();
        let fake = FakeWebhook::start();
        fake.reply(
            400,
            &[],
            r#"{"message": "Invalid Form Body", "code": 50035}"#,
        );
        let mut webhook = webhook(&fake);

        let report = deliver_pending(&store, Some(&mut webhook), now()).unwrap();
        assert_eq!(
            report,
            DeliveryReport {
                sent: 1,
                failed: 1,
                queued: 1,
                stopped: None
            }
        );
        assert_eq!(row(&store, bad).0, "queued");
        assert_eq!(row(&store, good).0, "sent");
    }

    #[test]
    fn a_split_message_resumes_where_it_stopped() {
        let (_dir, store) = store();
        let candidates: Vec<ScanCandidate> = (0..30)
            .map(|i| ScanCandidate {
                ticker: format!("T{i:02}"),
                gap_pct: 5.0,
                price: 0.5,
                headline: Some("Material contract ".repeat(17)),
            })
            .collect();
        let message = scan_complete(&candidates, now());
        let parts = discord::payloads(&message).len();
        assert!(parts >= 2);
        let id = enqueue(&store, &message, now()).unwrap();

        let fake = FakeWebhook::start();
        fake.reply(200, &[], r#"{"id": "111"}"#);
        for _ in 0..4 {
            fake.reply(500, &[], "");
        }
        let mut webhook = webhook(&fake);
        let report = deliver_pending(&store, Some(&mut webhook), now()).unwrap();
        assert_eq!((report.sent, report.failed, report.queued), (0, 1, 1));
        assert_eq!(row(&store, id).3, 1);

        let report = deliver_pending(&store, Some(&mut webhook), now()).unwrap();
        assert_eq!((report.sent, report.queued), (1, 0));
        assert_eq!(
            fake.requests().len(),
            1 + 4 + (parts - 1),
            "the first part went once"
        );
        let (status, _, _, parts_sent, ids) = row(&store, id);
        assert_eq!((status.as_str(), parts_sent), ("sent", parts));
        assert!(ids.starts_with(r#"["111","#), "{ids}");
    }

    #[test]
    fn empty_messages_are_refused_and_enqueue_joins_the_callers_transaction() {
        let (_dir, store) = store();
        let err = enqueue(&store, &Message::text("  "), now()).unwrap_err();
        assert_eq!(exit_kind(&err), ExitKind::Usage);

        let result: anyhow::Result<()> = store.transaction(|tx| {
            enqueue_in(tx, &Message::text("order placed"), now())?;
            anyhow::bail!("the order could not be recorded")
        });
        assert!(result.is_err());
        assert!(
            pending(&store).unwrap().is_empty(),
            "rolled back with the caller"
        );
    }
}
