//! Invitations, the whole flow: an invited user (declared in Git, or added through the API) gets a
//! single-use link and a mail that carries it; an operator or admin may send a new one (the earlier
//! ones stop working); accepting sets the password and activates the user. The mail is queued in
//! the transaction that issues the link, so a link is mailed if and only if it exists; `mail`
//! delivers it.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::token::{self, TokenKind};
use super::{AuthError, Client, Identity, LinkPurpose};
use crate::i18n::Lang;
use crate::mail::{self, Message};
use crate::store::invitation::{self as db, Invitee};
use crate::store::listen::Listener;
use crate::store::{self, mail::MAIL_CHANNEL};

/// A safety net under the notifications: invitees are looked for at least this often.
const POLL: Duration = Duration::from_secs(5);
/// Invitations issued per transaction.
const BATCH: i64 = 50;

/// Runs until `shutdown`: gives every invited user without an invitation one, woken by the
/// `users` trigger's `NOTIFY gatehouse_mail`, after a reconnection, and every few seconds.
/// Replicas share the work through `FOR UPDATE SKIP LOCKED`.
pub async fn run(identity: Identity, shutdown: CancellationToken) {
    let mut listener = Listener::new(&identity.pool, "invitations", &[MAIL_CHANNEL]);
    loop {
        if let Err(error) = issue_pending(&identity, &shutdown).await {
            tracing::warn!(%error, "cannot issue invitations");
        }
        if !listener.wait_for_work(POLL, &shutdown).await {
            return;
        }
    }
}

/// Gives each invited user without an invitation a link and a mail, a batch per transaction, until
/// none is left or `shutdown` (checked between batches: a stopping server waits for one batch at
/// most, issue 25.6).
async fn issue_pending(identity: &Identity, shutdown: &CancellationToken) -> store::Result<()> {
    loop {
        if shutdown.is_cancelled() {
            return Ok(());
        }
        let mut tx = identity.pool.begin().await?;
        let invitees = db::users_to_invite(&mut tx, BATCH).await?;
        for invitee in &invitees {
            issue(identity, &mut tx, invitee).await?;
        }
        tx.commit().await?;
        if invitees.len() < BATCH as usize {
            return Ok(());
        }
    }
}

/// Issues a new invitation link (the earlier ones stop working) and queues its mail, in the
/// caller's transaction.
async fn issue(identity: &Identity, conn: &mut sqlx::PgConnection, invitee: &Invitee) -> store::Result<()> {
    let settings = &identity.settings;
    let link = token::issue(TokenKind::Link);
    store::identity::issue_link_token(
        conn,
        invitee.user_id,
        LinkPurpose::Invitation.as_str(),
        &link.hash,
        settings.invitation_ttl,
    )
    .await?;
    let message = Message::Invitation {
        name: invitee.name.clone(),
        organisation: invitee.tenant_display_name.clone(),
        link: LinkPurpose::Invitation.url(&settings.public_url, &link.token),
        valid_for: settings.invitation_ttl,
    };
    let lang = invitee.language.as_deref().and_then(Lang::parse).unwrap_or(Lang::En);
    mail::queue(conn, &identity.keyring, &invitee.email, lang, &message).await
}

impl Identity {
    /// Sends `user_id` a new invitation: a new link (the earlier ones stop working) and its mail,
    /// in one transaction. `None`: there is no such user. The caller checks that the user is
    /// still invited.
    pub async fn resend_invitation(&self, user_id: Uuid) -> store::Result<Option<Invitee>> {
        let mut tx = self.pool.begin().await?;
        let Some(invitee) = db::invitee(&mut tx, user_id).await? else { return Ok(None) };
        issue(self, &mut tx, &invitee).await?;
        tx.commit().await?;
        Ok(Some(invitee))
    }

    /// Accepting an invitation sets the password and activates the user; returns their email.
    pub async fn accept_invitation(&self, link: &str, password: &str, client: &Client) -> Result<String, AuthError> {
        Ok(self.use_link(LinkPurpose::Invitation, link, password, client).await?.email)
    }
}
