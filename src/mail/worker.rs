//! The mail worker: delivers the outbox over SMTP with retries and backoff. It wakes on `NOTIFY
//! gatehouse_mail` (`store::listen`) and every few seconds for retries; replicas share the work
//! through `FOR UPDATE SKIP LOCKED`. What goes into the outbox is the flows' business (invitations:
//! `identity::invitation`; password resets: `identity`).

use std::sync::Arc;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::secret::sealed::Keyring;
use crate::store::listen::Listener;
use crate::store::{self, mail::MAIL_CHANNEL};

const POLL: Duration = Duration::from_secs(5);
/// The most one message may take to send, every SMTP command included.
const SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a claimed message is this replica's: past `SEND_TIMEOUT`, so another replica never
/// sends it while this one still may.
const LEASE: Duration = Duration::from_secs(120);
/// Attempts before a message is given up on (the last waits about an hour).
const MAX_ATTEMPTS: i32 = 10;

/// Where mail goes: an SMTP relay, or nowhere (mail stays in the outbox; `gatehouse mail list`).
pub struct Delivery {
    pub transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
    pub from: Mailbox,
}

impl Delivery {
    /// `smtp://host:port` (plain, or STARTTLS when offered), `smtp://…?tls=required`, `smtps://…`,
    /// with optional `user:password@`.
    pub fn new(smtp_url: Option<&str>, from: &str) -> anyhow::Result<Delivery> {
        let from =
            from.parse().map_err(|e| anyhow::anyhow!("GATEHOUSE_MAIL_FROM `{from}` is not a mail address: {e}"))?;
        let transport = match smtp_url {
            Some(url) => Some(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| anyhow::anyhow!("GATEHOUSE_SMTP_URL is not a valid SMTP URL: {e}"))?
                    .timeout(Some(Duration::from_secs(20)))
                    .build(),
            ),
            None => None,
        };
        Ok(Delivery { transport, from })
    }
}

/// Runs until `shutdown`, delivering what is due; without a relay there is nothing to do (mail stays
/// in the outbox).
pub async fn run(pool: PgPool, keyring: Arc<Keyring>, delivery: Delivery, shutdown: CancellationToken) {
    let Some(transport) = &delivery.transport else {
        tracing::warn!("GATEHOUSE_SMTP_URL is not set: mail stays in the outbox (see `gatehouse mail list`)");
        return;
    };
    let mut listener = Listener::new(&pool, "mail", &[MAIL_CHANNEL]);
    loop {
        if let Err(error) = deliver(&pool, &keyring, transport, &delivery.from, &shutdown).await {
            tracing::warn!(%error, "cannot deliver mail");
        }
        if !listener.wait_for_work(POLL, &shutdown).await {
            return;
        }
    }
}

async fn deliver(
    pool: &PgPool,
    keyring: &Keyring,
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    from: &Mailbox,
    shutdown: &CancellationToken,
) -> store::Result<()> {
    // Claim one (committed at once), send it, then record its outcome: no transaction is open
    // while the relay takes its time. A stopping server gives back the one it has not sent.
    while !shutdown.is_cancelled() {
        let Some(row) = store::mail::claim_next(pool, LEASE).await? else {
            return Ok(());
        };
        let outcome = match super::open(keyring, &row) {
            Ok(Some(bodies)) => tokio::select! {
                biased;
                outcome = tokio::time::timeout(SEND_TIMEOUT, send(transport, from, &row, bodies)) => {
                    outcome.unwrap_or_else(|_| Err((false, format!("not sent within {} s", SEND_TIMEOUT.as_secs()))))
                }
                () = shutdown.cancelled() => return store::mail::release(pool, &row).await,
            },
            Ok(None) => Err((true, "the message has no body".to_owned())),
            Err(error) => Err((true, error.to_string())),
        };
        match outcome {
            Ok(()) => {
                store::mail::mark_sent(pool, &row).await?;
                tracing::info!(id = %row.id, kind = %row.kind, "mail delivered");
            }
            Err((permanent, error)) => {
                let give_up = permanent || row.attempts + 1 >= MAX_ATTEMPTS;
                let delay = backoff(row.attempts);
                tracing::warn!(id = %row.id, %error, give_up, retry_in = ?delay, "mail not delivered");
                store::mail::mark_failed(pool, &row, &error, delay, give_up).await?;
            }
        }
    }
    Ok(())
}

async fn send(
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    from: &Mailbox,
    row: &store::mail::OutboxRow,
    bodies: super::Bodies,
) -> Result<(), (bool, String)> {
    let to: Mailbox = row.recipient.parse().map_err(|e| (true, format!("invalid recipient: {e}")))?;
    let message = lettre::Message::builder()
        .from(from.clone())
        .to(to)
        .subject(&row.subject)
        .multipart(MultiPart::alternative_plain_html(bodies.text, bodies.html))
        .map_err(|e| (true, e.to_string()))?;
    transport.send(message).await.map(|_| ()).map_err(|e| (e.is_permanent(), e.to_string()))
}

/// 10 s, 20 s, 40 s, … at most an hour.
fn backoff(attempts: i32) -> Duration {
    let exponent = u32::try_from(attempts.clamp(0, 12)).unwrap_or(12);
    Duration::from_secs((10u64 << exponent).min(3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        assert_eq!(backoff(0), Duration::from_secs(10));
        assert_eq!(backoff(3), Duration::from_secs(80));
        assert_eq!(backoff(20), Duration::from_secs(3600));
    }
}
