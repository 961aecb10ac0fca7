//! Budget notifications (issue 13.6): each threshold crossed, the limit reached and each override
//! step is mailed to the tenant's active owners (through the outbox) and, when a URL is configured,
//! sent as a signed webhook. Both are queued in the transaction that records the step, so a step is
//! announced if and only if it happened; `run` delivers the webhooks, retried with backoff.
//!
//! The webhook is a JSON `POST` with `Gatehouse-Event`, `Gatehouse-Delivery` (its id: deliveries are
//! at least once) and `Gatehouse-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`
//! under the shared secret, as Stripe signs its webhooks.

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::i18n::{Lang, Text, Tr};
use crate::mail::{self, Message};
use crate::secret::Secret;
use crate::secret::sealed::Keyring;
use crate::store::listen::Listener;
use crate::store::{self, budget as db};

/// Where budget webhooks go, and the secret they are signed with.
#[derive(Debug, Clone)]
pub struct Webhook {
    pub url: String,
    pub secret: Secret,
}

/// What to announce.
#[derive(Debug, Clone)]
pub struct Notice<'a> {
    pub tenant: &'a str,
    pub tenant_id: Uuid,
    /// `budget.threshold`, `budget.limit_reached`, `budget.override.request`, …
    pub event: &'static str,
    /// One sentence for the mail (in each owner's language) and the webhook (in English).
    pub summary: Text,
    pub details: Value,
}

/// Where the notices of budget steps go: the owners' mail (with a link under `public_url`) and the
/// webhook, if one is set.
#[derive(Clone, Copy)]
pub struct Outbox<'a> {
    pub keyring: &'a Keyring,
    pub public_url: &'a str,
    pub webhook: Option<&'a Webhook>,
}

impl Outbox<'_> {
    /// Queues the mail to the owners and the webhook of `notice`, in the caller's transaction.
    pub async fn queue(&self, conn: &mut PgConnection, notice: &Notice<'_>) -> store::Result<()> {
        let link = format!("{}/v1/tenants/{}/budget", self.public_url.trim_end_matches('/'), notice.tenant);
        let message = Message::Budget { organisation: notice.tenant.to_owned(), summary: notice.summary.clone(), link };
        let summary = notice.summary.said(Tr::new(Lang::En));
        for (owner, language) in db::owners(conn, notice.tenant_id).await? {
            let lang = language.as_deref().and_then(Lang::parse).unwrap_or(Lang::En);
            mail::queue(conn, self.keyring, &owner, lang, &message).await?;
        }
        if let Some(webhook) = self.webhook {
            let body = json!({ "type": notice.event, "tenant": notice.tenant, "summary": summary,
                               "data": notice.details, "createdAt": chrono::Utc::now() });
            db::enqueue_webhook(conn, &webhook.url, notice.event, &body.to_string()).await?;
        }
        Ok(())
    }
}

/// `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
pub fn signature(secret: &[u8], timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(format!("{timestamp}.{body}").as_bytes());
    format!("t={timestamp},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Attempts before a webhook is given up on.
const MAX_ATTEMPTS: i32 = 10;
const POLL: Duration = Duration::from_secs(2);

/// 1 s, 2 s, 4 s, … at most an hour.
fn backoff(attempts: i32) -> Duration {
    let exponent = u32::try_from(attempts.clamp(0, 12)).unwrap_or(12);
    Duration::from_secs((1u64 << exponent).min(3600))
}

/// How long a claimed webhook is this replica's: past the client's 10 s timeout, so another
/// replica never sends it while this one still may.
const LEASE: Duration = Duration::from_secs(60);

/// Delivers due webhooks until `shutdown`; replicas share the work (`FOR UPDATE SKIP LOCKED`).
pub async fn run(pool: PgPool, webhook: Webhook, shutdown: CancellationToken) {
    let mut listener = Listener::new(&pool, "budget webhooks", &[db::WEBHOOK_CHANNEL]);
    // The operator configured the address: their setting allows a private one.
    let client = crate::outbound::Client::new(crate::outbound::Policy::operator());
    loop {
        if let Err(error) = deliver_due(&pool, &client, &webhook, &shutdown).await {
            tracing::warn!(%error, "cannot deliver budget webhooks");
        }
        if !listener.wait_for_work(POLL, &shutdown).await {
            return;
        }
    }
}

/// Claim one (committed at once), send it, then record its outcome: no transaction is open while a
/// receiver takes its time. A stopping server gives back the one it has not delivered.
async fn deliver_due(
    pool: &PgPool,
    client: &crate::outbound::Client,
    webhook: &Webhook,
    shutdown: &CancellationToken,
) -> store::Result<()> {
    while let Some(due) = db::claim_webhook(pool, LEASE).await? {
        let signed = signature(webhook.secret.expose().as_bytes(), chrono::Utc::now().timestamp(), &due.body);
        let outcome = tokio::select! {
            biased;
            outcome = send(client, &due, &signed) => outcome,
            // Stopping: it goes back (a receiver that got it sees it again, with the same
            // `Gatehouse-Delivery`).
            () = shutdown.cancelled() => return db::release_webhook(pool, &due).await,
        };
        match outcome {
            Ok(()) => db::webhook_delivered(pool, &due).await?,
            Err(error) => {
                let give_up = due.attempts + 1 >= MAX_ATTEMPTS;
                tracing::warn!(id = %due.id, %error, give_up, "budget webhook not delivered");
                db::webhook_failed(pool, &due, &error, backoff(due.attempts), give_up).await?;
            }
        }
    }
    Ok(())
}

/// One delivery: a 2xx answer is delivered; anything else (redirects included) is a failure.
async fn send(client: &crate::outbound::Client, due: &db::DueWebhook, signed: &str) -> Result<(), String> {
    let request = client
        .request(reqwest::Method::POST, &due.url)?
        .header("Content-Type", "application/json")
        .header("Gatehouse-Event", &due.event)
        .header("Gatehouse-Delivery", due.id.to_string())
        .header("Gatehouse-Signature", signed)
        .body(due.body.clone());
    let response = request.send().await.map_err(|e| crate::outbound::transport(&e))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("{} answered {}", due.url, response.status().as_u16()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_an_hmac_of_the_time_and_the_body() {
        let signed = signature(b"secret", 1_764_590_400, r#"{"a":1}"#);
        let mut mac = Hmac::<Sha256>::new_from_slice(b"secret").expect("key");
        mac.update(br#"1764590400.{"a":1}"#);
        assert_eq!(signed, format!("t=1764590400,v1={}", hex::encode(mac.finalize().into_bytes())));
        assert_ne!(signed, signature(b"other", 1_764_590_400, r#"{"a":1}"#));
    }

    #[test]
    fn retries_back_off_to_an_hour() {
        assert_eq!(backoff(0), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(8));
        assert_eq!(backoff(30), Duration::from_secs(3600));
    }
}
