//! Interactive changes of what a Git-owned tenant declares, written back to Git (issue 24): the
//! domain functions of users, tenants and flag overrides hand their change here as `Edit`s when the
//! tenant's file says `sync: { interactiveEdits: writeBack }`.
//!
//! - `direct`: the edit is committed by the person who asked (Gatehouse as committer, the audit
//!   row's id in a `Gatehouse-Audit-Id:` trailer), pushed to the tracked branch, and the reconciler
//!   is asked for a pass at once; the answer waits until the commit is applied (the row stays
//!   Git-owned, there is no drift), and carries the commit in `Gatehouse-Commit`.
//! - `review`: the same commit goes to a branch of its own and is a proposal until merged in Git.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::AppState;
use super::caller::Caller;
use super::error::{ApiError, Result};
use crate::audit::{self, Outcome as Audited, Target};
use crate::authz::{Action, Actor, PlatformVia};
use crate::model::WriteBackMode;
use crate::store::tenants::TenantRecord;
use crate::store::{self, Rule, StoreError};
use crate::writeback::{Authored, Destination, Edit, Failure};

/// Where an interactive change went.
pub(crate) enum Done<T> {
    /// Made in the database (the row is the API's, or the tenant allows drift).
    Now(T),
    /// Committed to Git (`direct`); `applied`: the reconciler applied it before the answer.
    Committed { commit: String, applied: bool },
    /// Proposed on a branch (`review`).
    Proposed(Box<Proposal>),
}

/// A change waiting on a branch to be merged in Git.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Proposal {
    pub id: Uuid,
    pub tenant: String,
    /// The branch the commit is on, such as `gatehouse/acme/0193…`.
    pub branch: String,
    pub commit: String,
    /// The head of the tracked branch it was made on.
    pub base_commit: String,
    /// The file it changes, relative to the config folder.
    pub file: String,
    /// The audited action (`user.invite`, `tenant.update`, …).
    pub action: String,
    pub summary: String,
    /// The file's change, as a unified diff.
    pub diff: String,
    /// Who proposed it: the audit row's actor.
    pub proposed_by: String,
    /// `open`, `merged` (the tracked branch holds it), `superseded` (Git changed what it edits),
    /// `withdrawn`.
    #[schema(example = "open")]
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
}

/// The answer of a change that went to Git: `respond` makes the answer of an applied change from
/// the row as the database now has it, with the commit in `Gatehouse-Commit`; a commit not applied
/// in time, and a proposal, answer 202.
pub(crate) async fn answer<T>(
    done: Done<T>,
    respond: impl AsyncFnOnce(Option<T>) -> Result<Response>,
) -> Result<Response> {
    match done {
        Done::Now(value) => respond(Some(value)).await,
        Done::Committed { commit, applied: true } => {
            let mut response = respond(None).await?;
            if let Ok(value) = HeaderValue::from_str(&commit) {
                response.headers_mut().insert("gatehouse-commit", value);
            }
            Ok(response)
        }
        Done::Committed { commit, applied: false } => {
            let body = json!({ "writeBack": { "commit": commit, "state": "committed" } });
            Ok((StatusCode::ACCEPTED, axum::Json(body)).into_response())
        }
        Done::Proposed(proposal) => {
            Ok((StatusCode::ACCEPTED, axum::Json(json!({ "proposal": proposal }))).into_response())
        }
    }
}

/// The commit's author: the person (or application) who asked, as the session or the identity
/// provider names them. Git needs an email: one who has none (the bootstrap token, an application)
/// gets `<their name>@gatehouse.invalid`, which no one can receive mail at.
fn author(actor: &Actor) -> (String, String) {
    let (name, email) = named(actor);
    if email.is_empty() {
        let local: String =
            actor.name().chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '-' }).collect();
        return (name, format!("{local}@gatehouse.invalid"));
    }
    (name, email)
}

fn named(actor: &Actor) -> (String, String) {
    match actor {
        Actor::User(session) => (session.name.clone().unwrap_or_else(|| session.email.clone()), session.email.clone()),
        Actor::Platform(p) => {
            let name = match &p.via {
                PlatformVia::IdentityProvider { display_name: Some(n), .. } => n.clone(),
                PlatformVia::IdentityProvider { .. } => p.name.clone(),
                PlatformVia::BootstrapToken => "Gatehouse operator (bootstrap token)".to_owned(),
            };
            let email = if p.name.contains('@') { p.name.clone() } else { String::new() };
            (name, email)
        }
        other => (other.name().to_owned(), String::new()),
    }
}

/// A change asked for, as the audit log names it, and its edits of the tenant's file.
pub(crate) struct Asked {
    pub action: &'static str,
    pub target: Target,
    pub details: Value,
    pub edits: Vec<Edit>,
}

/// Writes the edits `asked` (of tenant `record`'s file) back to Git for `caller`, as the tenant's
/// policy `mode` says; the audit row (its details and the commit) is written once it landed, or as
/// a failure with the reason.
pub(crate) async fn write_back<T>(
    state: &AppState,
    caller: &Caller,
    record: &TenantRecord,
    mode: WriteBackMode,
    asked: Asked,
) -> Result<Done<T>> {
    let Asked { action, target, details, edits } = asked;
    let Some(writer) = state.write_back.as_ref() else {
        return Err(ApiError::rule(Rule::Conflict, "write_back_unavailable", "this server does not write back to Git"));
    };
    let file =
        record.source_file.clone().ok_or_else(|| ApiError::Internal("a Git-owned tenant without a file".into()))?;
    let id = Uuid::now_v7();
    let summary = edits.iter().map(Edit::summary).collect::<Vec<_>>().join("; ");
    let (name, email) = author(&caller.actor);
    let message = format!(
        "{summary}\n\nRequested through Gatehouse by {} ({action}).\n\nGatehouse-Audit-Id: {id}\n",
        caller.actor.name()
    );
    let destination = match mode {
        WriteBackMode::Direct => Destination::Tracked,
        WriteBackMode::Review => Destination::Branch(format!("gatehouse/{}/{id}", record.name)),
    };
    let branch = match &destination {
        Destination::Branch(name) => Some(name.clone()),
        Destination::Tracked => None,
    };
    let edit_json = serde_json::to_value(&edits).unwrap_or_default();
    let written = writer.write(file.clone(), edits, Authored { name, email, message }, destination).await;
    let written = match written {
        Ok(written) => written,
        Err(failure) => {
            let mut row = audit::entry(&caller.actor, action, target, Audited::Failure, &caller.origin(), details);
            row.metadata["writeBack"] = json!({ "mode": mode.as_str(), "error": failure.message() });
            let mut conn = state.pool.acquire().await.map_err(StoreError::from)?;
            store::insert_audit(&mut conn, &[row]).await?;
            return Err(refusal(failure));
        }
    };
    if written.unchanged {
        // Git already says so: nothing committed. What it says is applied by the next pass.
        if branch.is_some() {
            return Err(ApiError::rule(
                Rule::Conflict,
                "git_conflict",
                format!("{file} already says this at commit {}; there is nothing to propose", &written.commit[..7]),
            ));
        }
        let mut conn = state.pool.acquire().await.map_err(StoreError::from)?;
        store::status::request_sync(&mut conn).await?;
        drop(conn);
        store::notify_sync(&state.pool).await?;
        return Ok(Done::Committed { commit: written.commit, applied: false });
    }
    let mut row = caller.audit(action, target, details);
    row.metadata["writeBack"] = json!({
        "mode": mode.as_str(), "commit": written.commit, "file": file, "unchanged": written.unchanged, "branch": branch,
    });
    let mut tx = state.pool.begin().await.map_err(StoreError::from)?;
    store::insert_audit_with_id(&mut tx, &row, id).await?;
    if let Some(branch) = branch {
        let proposal: Proposal = sqlx::query_as(
            "WITH p AS (
                 INSERT INTO proposals (id, tenant_id, branch, commit, base_commit, file, action, summary, edit, diff, proposed_by)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING *)
             SELECT p.id, $12::text AS tenant, p.branch, p.commit, p.base_commit, p.file, p.action, p.summary, p.diff,
                    p.proposed_by, p.state, p.created_at, p.decided_at FROM p",
        )
        .bind(id)
        .bind(record.id)
        .bind(&branch)
        .bind(&written.commit)
        .bind(&written.base)
        .bind(&file)
        .bind(action)
        .bind(&summary)
        .bind(&edit_json)
        .bind(&written.diff)
        .bind(caller.actor.name())
        .bind(&record.name)
        .fetch_one(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        tx.commit().await.map_err(StoreError::from)?;
        return Ok(Done::Proposed(Box::new(proposal)));
    }
    store::status::request_sync(&mut tx).await?;
    tx.commit().await.map_err(StoreError::from)?;
    store::notify_sync(&state.pool).await?;
    let waited = std::time::Instant::now();
    let applied = applied(state, record, &written.commit).await?;
    tracing::info!(commit = %written.commit, applied, wait_ms = waited.elapsed().as_millis(), "write-back applied");
    Ok(Done::Committed { commit: written.commit, applied })
}

/// Where a tenant's file writes the override of `key`: `spec.flags.<key>`. A key with a dot in it
/// cannot be told from a nested field there yet, so it is changed by hand.
pub(crate) fn flag_path(key: &crate::model::FlagKey) -> Result<String> {
    if key.as_str().contains('.') {
        return Err(ApiError::rule(
            Rule::Conflict,
            "write_back_by_hand",
            format!(
                "flag `{key}` has a dot in its key, which write-back cannot address yet; change `spec.flags` in the file"
            ),
        ));
    }
    Ok(format!("spec.flags.{key}"))
}

/// Removing what Git declares from a tenant that does not prune (`sync.prune: false`) would leave
/// the row live as an orphan: such a removal is refused, saying so.
pub(crate) async fn refuse_unless_pruned(state: &AppState, record: &TenantRecord, what: &str) -> Result<()> {
    let prune: bool = sqlx::query_scalar("SELECT prune FROM tenants WHERE id = $1")
        .bind(record.id)
        .fetch_one(&state.pool)
        .await
        .map_err(StoreError::from)?;
    if prune {
        return Ok(());
    }
    let file = record.source_file.as_deref().unwrap_or("its file");
    Err(ApiError::rule(
        Rule::Conflict,
        "managed_by_git",
        format!(
            "{what} is declared in Git ({file}), whose `sync.prune: false` keeps what is removed from it; remove it there and delete it live, or set `prune: true`"
        ),
    ))
}

/// Waits (up to the write-back's wait) until the reconciler applied `commit` (or a later commit)
/// to the tenant.
async fn applied(state: &AppState, record: &TenantRecord, commit: &str) -> Result<bool> {
    let Some(writer) = state.write_back.as_ref() else { return Ok(false) };
    let deadline = tokio::time::Instant::now() + writer.wait;
    let mut checked: Option<String> = None;
    loop {
        let now: Option<String> = sqlx::query_scalar("SELECT applied_commit FROM tenants WHERE id = $1")
            .bind(record.id)
            .fetch_optional(&state.pool)
            .await
            .map_err(StoreError::from)?
            .flatten();
        match now {
            Some(now) if now == commit => return Ok(true),
            Some(now) if checked.as_ref() != Some(&now) => {
                if writer.descends(now.clone(), commit.to_owned()).await.unwrap_or(false) {
                    return Ok(true);
                }
                checked = Some(now);
            }
            _ => {}
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The API's answer to a write-back that did not land.
fn refusal(failure: Failure) -> ApiError {
    let message = failure.message();
    match failure {
        Failure::Conflict(_) => ApiError::rule(Rule::Conflict, "git_conflict", message),
        Failure::ByHand(_) => ApiError::rule(Rule::Conflict, "write_back_by_hand", message),
        Failure::Unavailable(_) => ApiError::rule(Rule::Conflict, "write_back_unavailable", message),
        Failure::Invalid(_) => ApiError::rule(
            Rule::Invalid,
            "invalid_config",
            format!("the change would make the config invalid: {message}"),
        ),
        Failure::Rejected(_) | Failure::Git(_) => ApiError::BadGateway { code: "write_back_failed", message },
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list)).routes(routes!(show, withdraw))
}

/// The proposals of a tenant, newest first.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Proposals {
    pub proposals: Vec<Proposal>,
}

const PROPOSAL: &str = "SELECT p.id, t.name AS tenant, p.branch, p.commit, p.base_commit, p.file, p.action, p.summary,
        p.diff, p.proposed_by, p.state, p.created_at, p.decided_at
   FROM proposals p JOIN tenants t ON t.id = p.tenant_id";

#[utoipa::path(
    get, operation_id = "list_proposals",
    path = "/v1/tenants/{tenant}/proposals",
    tag = "admin",
    security(("operator" = ["operator", "auditor"]), ("session" = ["owner", "admin"])),
    params(("tenant" = String, Path, description = "The tenant's name.", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", example = "acme")),
    responses((status = 200, description = "The tenant's changes proposed on branches (`writeBack: review`), newest first, each in its state now: open, merged, superseded or withdrawn.", body = Proposals)),
)]
async fn list(State(state): State<AppState>, caller: Caller, Path(tenant): Path<String>) -> Result<Response> {
    let (name, _) = caller.authorize_tenant(&state, Action::ReadTenants, "proposals", &tenant)?;
    let proposals: Vec<Proposal> = sqlx::query_as(&format!("{PROPOSAL} WHERE t.name = $1 ORDER BY p.created_at DESC"))
        .bind(name.as_str())
        .fetch_all(&state.pool)
        .await
        .map_err(StoreError::from)?;
    let mut refreshed = Vec::with_capacity(proposals.len());
    for proposal in proposals {
        refreshed.push(refresh(&state, proposal).await?);
    }
    Ok(axum::Json(Proposals { proposals: refreshed }).into_response())
}

#[utoipa::path(
    get, operation_id = "show_proposal",
    path = "/v1/tenants/{tenant}/proposals/{id}",
    tag = "admin",
    security(("operator" = ["operator", "auditor"]), ("session" = ["owner", "admin"])),
    params(
        ("tenant" = String, Path, description = "The tenant's name.", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", example = "acme"),
        ("id" = Uuid, Path, description = "The proposal's id."),
    ),
    responses((status = 200, description = "The proposal, with its diff, in its state now.", body = Proposal)),
)]
async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant, id)): Path<(String, String)>,
) -> Result<Response> {
    let (name, _) = caller.authorize_tenant(&state, Action::ReadTenants, "proposals", &tenant)?;
    let proposal = refresh(&state, proposal(&state, name.as_str(), &id).await?).await?;
    Ok(axum::Json(proposal).into_response())
}

#[utoipa::path(
    delete, operation_id = "withdraw_proposal",
    path = "/v1/tenants/{tenant}/proposals/{id}",
    tag = "admin",
    security(("operator" = ["operator"]), ("session" = ["owner", "admin"])),
    params(
        ("tenant" = String, Path, description = "The tenant's name.", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", example = "acme"),
        ("id" = Uuid, Path, description = "The proposal's id."),
    ),
    responses((status = 200, description = "The proposal, withdrawn: its branch is deleted. Admins withdraw only their own proposals; owners and operators any. 409 `proposal_decided` if it was merged, superseded or withdrawn before.", body = Proposal)),
)]
async fn withdraw(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant, id)): Path<(String, String)>,
) -> Result<Response> {
    // Who proposed a change may withdraw it; anyone else needs to be allowed to change the tenant
    // (owners and operators), whatever the change was.
    let (name, _) = caller.authorize_tenant(&state, Action::ManageUsers, "proposals", &tenant)?;
    let proposal = refresh(&state, proposal(&state, name.as_str(), &id).await?).await?;
    if proposal.proposed_by != caller.actor.name() {
        caller.authorize_tenant(&state, Action::UpdateTenant, "proposals", &tenant)?;
    }
    if proposal.state != "open" {
        return Err(ApiError::rule(
            Rule::Conflict,
            "proposal_decided",
            format!("proposal {} is {}; only an open proposal can be withdrawn", proposal.id, proposal.state),
        ));
    }
    let writer = state.write_back.as_ref().ok_or_else(|| ApiError::Internal("no write-back".into()))?;
    writer.delete_branch(proposal.branch.clone()).await.map_err(refusal)?;
    let mut tx = state.pool.begin().await.map_err(StoreError::from)?;
    decide(&mut tx, proposal.id, "withdrawn").await?;
    let details = json!({ "branch": proposal.branch, "commit": proposal.commit });
    let target = Target::in_tenant(name.as_str(), format!("tenant/{name}/proposal/{}", proposal.id));
    store::insert_audit(&mut tx, &[caller.audit("proposal.withdraw", target, details)]).await?;
    tx.commit().await.map_err(StoreError::from)?;
    let proposal = self::proposal(&state, name.as_str(), &id).await?;
    Ok(axum::Json(proposal).into_response())
}

async fn proposal(state: &AppState, tenant: &str, id: &str) -> Result<Proposal> {
    let not_found = || ApiError::NotFound(format!("tenant `{tenant}` has no proposal `{}`", crate::model::shown(id)));
    let id = Uuid::parse_str(id).map_err(|_| not_found())?;
    sqlx::query_as(&format!("{PROPOSAL} WHERE t.name = $1 AND p.id = $2"))
        .bind(tenant)
        .bind(id)
        .fetch_optional(&state.pool)
        .await
        .map_err(StoreError::from)?
        .ok_or_else(not_found)
}

async fn decide(conn: &mut sqlx::PgConnection, id: Uuid, state: &str) -> Result<()> {
    sqlx::query("UPDATE proposals SET state = $2, decided_at = now() WHERE id = $1 AND state = 'open'")
        .bind(id)
        .bind(state)
        .execute(conn)
        .await
        .map_err(StoreError::from)?;
    Ok(())
}

/// An open proposal as Git has it now: `merged` once the tracked branch holds its commit (or says
/// what it proposes, as a squash merge does), `superseded` once the tracked branch changed what it
/// edits (its edit no longer applies).
async fn refresh(state: &AppState, mut proposal: Proposal) -> Result<Proposal> {
    let Some(writer) = state.write_back.as_ref().filter(|_| proposal.state == "open") else { return Ok(proposal) };
    // An unreachable remote leaves the state as it was last known, rather than failing the list.
    let Ok(merged) = writer.merged(proposal.commit.clone()).await else { return Ok(proposal) };
    let decided = if merged {
        Some("merged")
    } else {
        let edit: Value = sqlx::query_scalar("SELECT edit FROM proposals WHERE id = $1")
            .bind(proposal.id)
            .fetch_one(&state.pool)
            .await
            .map_err(StoreError::from)?;
        let edits: Vec<Edit> = serde_json::from_value(edit)
            .map_err(|e| ApiError::Internal(format!("proposal {} holds edits that do not read: {e}", proposal.id)))?;
        match writer.current(proposal.file.clone()).await {
            // The file is gone (renamed, removed): what the proposal edits is no more.
            Err(Failure::Conflict(_)) => Some("superseded"),
            Err(_) => return Ok(proposal),
            // The tracked branch already says what it proposes: merged another way (a squash).
            Ok(text) if edits.iter().all(|e| e.holds(&text)) => Some("merged"),
            Ok(text) => {
                let mut edited = Ok(text);
                for edit in &edits {
                    edited = edited.and_then(|t| edit.apply(&t));
                }
                edited.is_err().then_some("superseded")
            }
        }
    };
    if let Some(decided) = decided {
        let mut conn = state.pool.acquire().await.map_err(StoreError::from)?;
        decide(&mut conn, proposal.id, decided).await?;
        proposal.state = decided.to_owned();
        proposal.decided_at = Some(Utc::now());
    }
    Ok(proposal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::PlatformActor;
    use crate::model::PlatformRole;

    #[test]
    fn an_author_without_an_email_gets_one_nobody_receives() {
        let token = Actor::Platform(PlatformActor {
            role: PlatformRole::Operator,
            name: "bootstrap-token".into(),
            via: PlatformVia::BootstrapToken,
        });
        assert_eq!(
            author(&token),
            ("Gatehouse operator (bootstrap token)".to_owned(), "bootstrap-token@gatehouse.invalid".to_owned())
        );
        let signed_in = Actor::Platform(PlatformActor {
            role: PlatformRole::Operator,
            name: "olga@corp.example".into(),
            via: PlatformVia::IdentityProvider {
                issuer: "https://idp.example".into(),
                subject: "42".into(),
                display_name: Some("Olga Ops".into()),
            },
        });
        assert_eq!(author(&signed_in), ("Olga Ops".to_owned(), "olga@corp.example".to_owned()));
    }
}
