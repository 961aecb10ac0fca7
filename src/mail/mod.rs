//! Mail to tenant users: invitations and password resets. A message is rendered (plain text and
//! HTML), sealed (it carries a single-use link) and written to the outbox in the transaction of the
//! change that needs it; the worker delivers it over SMTP.

pub mod templates;
pub mod worker;

use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::i18n::{Lang, Tr};
use crate::secret::sealed::{Keyring, OpenError};
use crate::store::{self, mail::NewMail};

pub use templates::Message;

/// The two bodies of a message, as sealed in the outbox.
#[derive(Debug, Serialize, Deserialize)]
pub struct Bodies {
    pub text: String,
    pub html: String,
}

/// Renders `message` in `lang`, seals it and queues it for `recipient`, in the caller's transaction.
pub async fn queue(
    conn: &mut PgConnection,
    keyring: &Keyring,
    recipient: &str,
    lang: Lang,
    message: &Message,
) -> store::Result<()> {
    let tr = Tr::new(lang);
    let id = Uuid::now_v7();
    let bodies = Bodies { text: message.text(tr), html: message.html(tr) };
    let plain = serde_json::to_vec(&bodies).expect("two strings serialise");
    let (key_id, sealed) = keyring.seal(&plain, id.as_bytes());
    let subject = message.subject(tr);
    let mail =
        NewMail { id, recipient, subject: &subject, kind: message.kind(), key_id: &key_id, body_sealed: &sealed };
    store::mail::enqueue(conn, mail).await
}

/// The bodies of a queued message.
pub fn open(keyring: &Keyring, row: &store::mail::OutboxRow) -> Result<Option<Bodies>, OpenError> {
    let (Some(key_id), Some(sealed)) = (&row.key_id, &row.body_sealed) else {
        return Ok(None);
    };
    let plain = keyring.open(key_id, sealed, row.id.as_bytes())?;
    Ok(serde_json::from_slice(&plain).ok())
}

/// Outbox rows as `gatehouse mail list` and `GET /v1/mail/outbox` show them: each row's fields with
/// the plain text of mail still waiting (delivered and abandoned mail has no body any more).
pub fn listing(keyring: &Keyring, rows: Vec<store::mail::OutboxRow>) -> Vec<ListedMail> {
    rows.into_iter()
        .map(|row| {
            let text = match open(keyring, &row) {
                Ok(bodies) => bodies.map(|b| b.text),
                Err(error) => Some(format!("(cannot open: {error})")),
            };
            ListedMail { row, text }
        })
        .collect()
}

/// A mail of the outbox as an operator reads it: its record and its text.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ListedMail {
    #[serde(flatten)]
    pub row: store::mail::OutboxRow,
    /// The text body; `null` once delivered (the body is then erased).
    pub text: Option<String>,
}
