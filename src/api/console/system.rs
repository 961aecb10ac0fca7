//! The platform page of the operator console (issue 23.3, "system monitoring"): the reconciler's
//! state with its tenants per sync state at a glance, pause, resume and sync now; the replicas and
//! which one leads; what waits in the mail and webhook outboxes; the last signed audit checkpoint.
//! Operators act; auditors read. The JSON API's functions decide and audit.

use axum::body::Bytes;
use axum::extract::Query;
use axum::response::Response;
use chrono::Utc;
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::tenant::see_other;
use super::{Signed, short, when};
use crate::api::web::charts::{self, Part, Tone};
use crate::api::web::templates::{self, Body};
use crate::api::web::{Page, Tr};
use crate::api::{ApiError, AppState};
use crate::authz::{Action, Resource};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(platform_page, platform_form))
}

pub(super) const PLATFORM_PATH: &str = "/console/platform";

/// A replica that missed this many heartbeats has stopped answering.
const MISSED_HEARTBEATS: u64 = 4;

#[derive(Deserialize, Default)]
struct PlatformQuery {
    /// The action just done, to say so.
    done: Option<String>,
}

/// The tenants per sync state, as the reconciler counted them: a bar and its words.
fn sync_picture(tr: Tr, counts: &serde_json::Value) -> String {
    let count = |state: &str| counts[state].as_i64().unwrap_or(0);
    let parts = [
        ("Synced", "sync-synced", Tone::Good),
        ("OutOfSync", "sync-out-of-sync", Tone::Neutral),
        ("Drifted", "sync-drifted", Tone::Warn),
        ("Error", "sync-error", Tone::Bad),
    ]
    .map(|(state, key, tone)| Part { label: tr.t(key), value: count(state), tone });
    let total: i64 = parts.iter().map(|p| p.value).sum();
    let summary = tr.arg("platform-tenants-counted", "count", &total.to_string());
    charts::parts_bar("sync-picture", &tr.t("platform-sync-picture"), &summary, &parts)
}

/// The platform: sync, replicas, outboxes, audit checkpoint.
#[utoipa::path(get, operation_id = "console_platform", path = "/console/platform", tag = "console",
    responses(
        (status = 200, description = "The page.", body = String, content_type = "text/html"),
        (status = 303, description = "Not signed in: to the login page."),
        (status = 403, description = "A page: not platform staff (audited).", body = String, content_type = "text/html"),
    ))]
async fn platform_page(
    signed: Signed,
    query: Result<Query<PlatformQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let tr = signed.browser.tr;
    let done = query.ok().and_then(|Query(q)| q.done).and_then(|action| {
        Some(match action.as_str() {
            "sync" => tr.t("platform-done-sync"),
            "pause" => tr.t("platform-done-pause"),
            "resume" => tr.t("platform-done-resume"),
            _ => return None,
        })
    });
    let title = tr.t("console-platform");
    let (state, caller) = (&signed.state, &signed.caller);
    let sync = match crate::api::sync::sync_status(state, caller).await {
        Ok(sync) => sync,
        Err(error) => return signed.refused(&title, &error),
    };
    let platform = match crate::api::platform::platform_status(state, caller).await {
        Ok(platform) => platform,
        Err(error) => return signed.refused(&title, &error),
    };
    let now = Utc::now();
    let replicas = platform
        .replicas
        .iter()
        .map(|r| templates::ReplicaRow {
            name: r.name.clone(),
            leader: platform.leader.as_deref() == Some(r.name.as_str()),
            address: r.address.clone(),
            version: r.version.clone(),
            started: when(Some(r.started_at)),
            seen: if (now - r.seen_at).num_seconds() as u64
                > MISSED_HEARTBEATS * crate::store::status::HEARTBEAT.as_secs()
            {
                tr.arg("platform-not-seen-since", "at", &when(Some(r.seen_at)))
            } else {
                tr.t("platform-seen-now")
            },
        })
        .collect::<Vec<_>>();
    let checkpoint = crate::store::audit_chain::latest_checkpoint(&state.pool).await.ok().flatten();
    let may_read_audit = caller.may(Action::ReadAudit, &Resource::every_tenant("the audit log"));
    let count = |n: i64| n.to_string();
    let body = templates::PlatformStatus {
        t: tr,
        csrf: signed.browser.csrf(),
        done,
        may_control: caller.may(Action::ControlSync, &crate::api::sync::RECONCILER),
        paused: sync.paused,
        state: &sync_label_of(tr, &sync.state),
        picture: sync_picture(tr, &sync.counts),
        source: &format!("{} {}", short(sync.source_commit.as_deref()), sync.source_subject.as_deref().unwrap_or("")),
        author: sync.source_author.as_deref().unwrap_or("—"),
        last_attempt: &when(sync.last_attempt_at),
        last_success: &when(sync.last_success_at),
        last_error: sync.last_error.as_deref(),
        leader: platform.leader.as_deref().unwrap_or("—"),
        replicas: &replicas,
        outboxes: platform.outboxes.as_ref().map(|o| {
            [
                (tr.t("platform-mail"), count(o.mail_waiting), count(o.mail_failed), when(o.mail_oldest)),
                (tr.t("platform-webhooks"), count(o.hooks_waiting), count(o.hooks_failed), when(o.hooks_oldest)),
            ]
        }),
        checkpoint: checkpoint.map(|c| (when(Some(c.created_at)), c.key_id)),
        may_read_audit,
    };
    signed.render(Page::new(&title, body.html()), PLATFORM_PATH)
}

fn sync_label_of(tr: Tr, state: &str) -> String {
    match state {
        "Paused" => tr.t("sync-paused"),
        "Unknown" => tr.t("sync-unknown"),
        other => super::overview::sync_label(tr, other),
    }
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
struct PlatformForm {
    /// The browser's CSRF token (checked by the pages' layer).
    #[serde(default, rename = "csrf")]
    _csrf: String,
    /// `sync`, `pause` or `resume`.
    #[serde(default)]
    action: String,
}

/// Sync now, pause or resume the reconciler (the JSON API's functions), then back.
#[utoipa::path(post, operation_id = "console_platform_action", path = "/console/platform", tag = "console",
    request_body(content = PlatformForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Done: back to the page, which says so."),
        (status = 400, description = "A page: no such action.", body = String, content_type = "text/html"),
        (status = 403, description = "A page: only operators control the reconciler (audited).", body = String, content_type = "text/html"),
    ))]
async fn platform_form(signed: Signed, body: Bytes) -> Response {
    let (state, caller) = (&signed.state, &signed.caller);
    let decided = caller.authorize(state, Action::ControlSync, &crate::api::sync::RECONCILER);
    if let Some(page) = signed.refusal(&signed.browser.tr.t("console-platform"), decided) {
        return page;
    }
    let form: PlatformForm = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let outcome = match form.action.as_str() {
        "sync" => crate::api::sync::request_sync(state, caller).await,
        "pause" => crate::api::sync::set_paused(state, caller, true).await,
        "resume" => crate::api::sync::set_paused(state, caller, false).await,
        other => Err(ApiError::BadRequest(format!("no action `{}` on the reconciler", crate::model::shown(other)))),
    };
    match outcome {
        Ok(()) => see_other(&format!("{PLATFORM_PATH}?done={}", form.action)),
        Err(error) => signed.refused(&signed.browser.tr.t("console-platform"), &error),
    }
}
