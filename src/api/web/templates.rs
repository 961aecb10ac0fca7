//! The pages' bodies: askama templates (in `templates/`), checked when the binary is compiled,
//! every text from the message catalogue through `t`.

use askama::Template;

use super::i18n::{Lang, Tr};

/// A body rendered to HTML, for the layout to wrap.
pub trait Body: Template {
    fn html(&self) -> String {
        self.render().unwrap_or_else(|error| {
            tracing::error!(%error, "a page's template failed");
            String::new()
        })
    }
}

impl<T: Template> Body for T {}

#[derive(Template)]
#[template(path = "layout.html")]
pub struct Layout<'a> {
    pub t: Tr,
    pub title: &'a str,
    pub body: &'a str,
    pub refresh_to: Option<&'a str>,
    pub style: &'a str,
    pub script: &'a str,
    /// Each language with the link that switches to it.
    pub languages: Vec<(Lang, String)>,
    /// A console's navigation (HTML), above the content.
    pub nav: Option<&'a str>,
    /// A console's screen: the content takes the width of the window.
    pub wide: bool,
}

/// What an htmx request swaps in: the title, the heading and the body, without the layout.
#[derive(Template)]
#[template(path = "fragment.html")]
pub struct Fragment<'a> {
    pub title: &'a str,
    pub body: &'a str,
}

/// A page of a sentence or two: a problem, a status, a link.
#[derive(Template)]
#[template(path = "message.html")]
pub struct Message<'a> {
    pub alert: Option<String>,
    pub text: Option<String>,
    pub link: Option<(&'a str, String)>,
}

#[derive(Template)]
#[template(path = "continue.html")]
pub struct Continue<'a> {
    pub t: Tr,
    pub url: &'a str,
}

#[derive(Template)]
#[template(path = "login_email.html")]
pub struct LoginEmail<'a> {
    pub t: Tr,
    pub csrf: &'a str,
    pub step: &'a str,
    pub return_to: &'a str,
    pub problem: Option<&'a str>,
    pub signed_out: bool,
    pub email: &'a str,
    /// Platform staff may sign in at their identity provider: the link to it, with `return_to`.
    pub staff: Option<String>,
}

#[derive(Template)]
#[template(path = "login_password.html")]
pub struct LoginPassword<'a> {
    pub t: Tr,
    pub csrf: &'a str,
    pub step: &'a str,
    pub return_to: &'a str,
    pub return_to_encoded: &'a str,
    pub problem: Option<&'a str>,
    pub email: &'a str,
}

#[derive(Template)]
#[template(path = "login_totp.html")]
pub struct LoginTotp<'a> {
    pub t: Tr,
    pub csrf: &'a str,
    pub step: &'a str,
    pub return_to: &'a str,
    pub problem: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "login_enrol.html")]
pub struct LoginEnrol<'a> {
    pub t: Tr,
    pub csrf: &'a str,
    pub step: &'a str,
    pub return_to: &'a str,
    pub problem: Option<&'a str>,
    /// An inline SVG, made by the `qrcode` crate from the key.
    pub qr: &'a str,
    pub secret: &'a str,
}

#[derive(Template)]
#[template(path = "login_recovery.html")]
pub struct LoginRecovery<'a> {
    pub t: Tr,
    pub codes: &'a [String],
    pub return_to: &'a str,
}

#[derive(Template)]
#[template(path = "account.html")]
pub struct Account<'a> {
    pub t: Tr,
    pub csrf: &'a str,
    pub email: &'a str,
    pub tenant: &'a str,
    pub role: &'a str,
    /// An owner or admin: a link to the tenant console.
    pub administers: bool,
}

#[derive(Template)]
#[template(path = "forgot.html")]
pub struct Forgot<'a> {
    pub t: Tr,
    pub csrf: &'a str,
    pub problem: Option<&'a str>,
    pub email: &'a str,
}

/// The form of a mailed link: accept an invitation, or reset a password.
#[derive(Template)]
#[template(path = "link_form.html")]
pub struct LinkForm<'a> {
    pub t: Tr,
    pub csrf: &'a str,
    pub problem: Option<&'a str>,
    pub action: &'a str,
    pub token: &'a str,
    pub button: &'a str,
}

#[derive(Template)]
#[template(path = "logout_confirm.html")]
pub struct LogoutConfirm<'a> {
    pub t: Tr,
    pub csrf: &'a str,
    pub hidden: Vec<(&'a str, &'a str)>,
}

/// A console's navigation: each link with its label and whether it is the current screen.
#[derive(Template)]
#[template(path = "console_nav.html")]
pub struct ConsoleNav<'a> {
    pub t: Tr,
    pub csrf: &'a str,
    /// Who is signed in.
    pub email: &'a str,
    /// Where the sign-out form posts.
    pub sign_out: &'a str,
    pub items: Vec<(String, String, bool)>,
}

/// One user in the tenant console's list, its texts in the page's language.
pub struct UserRow {
    pub href: String,
    pub email: String,
    pub name: String,
    pub role: String,
    pub status: String,
    pub mfa: String,
    pub managed_by: String,
}

#[derive(Template)]
#[template(path = "tenant_users.html")]
pub struct TenantUsers<'a> {
    pub t: Tr,
    pub csrf: &'a str,
    pub tenant: &'a str,
    pub done: Option<String>,
    pub problem: Option<&'a str>,
    /// Git declares the tenant's users: where to change them.
    pub git: Option<String>,
    /// The tenant's own state and actions, for an operator.
    pub panel: Option<TenantPanel>,
    pub can_invite: bool,
    pub form_email: &'a str,
    pub form_name: &'a str,
    pub form_role: &'a str,
    pub roles: Vec<(&'static str, String)>,
    pub statuses: Vec<(&'static str, String)>,
    pub q: &'a str,
    pub filter_role: &'a str,
    pub filter_status: &'a str,
    pub count: &'a str,
    pub rows: &'a [UserRow],
    pub next: Option<String>,
}

#[derive(Template)]
#[template(path = "tenant_user.html")]
pub struct TenantUser<'a> {
    pub t: Tr,
    pub csrf: &'a str,
    pub tenant: &'a str,
    /// Where the user's forms post.
    pub action: &'a str,
    pub done: Option<String>,
    pub problem: Option<&'a str>,
    pub name: &'a str,
    pub role: &'a str,
    pub role_value: &'a str,
    pub status: &'a str,
    pub status_value: &'a str,
    pub mfa: &'a str,
    pub sessions: &'a str,
    pub managed_by: &'a str,
    /// The rules that apply to this user, as sentences.
    pub rules: &'a [String],
    pub can_change: bool,
    pub roles: Vec<(&'static str, String)>,
    pub etag: &'a str,
}

/// One tenant in the operator console's list, its texts in the page's language.
pub struct TenantRow {
    pub href: String,
    pub name: String,
    pub display_name: String,
    pub plan: String,
    pub state: String,
    /// Its sync state with Git, in words.
    pub sync: String,
    pub managed_by: String,
    /// The day a tenant pending deletion is purged.
    pub purge: String,
}

#[derive(Template)]
#[template(path = "platform_tenants.html")]
pub struct PlatformTenants<'a> {
    pub t: Tr,
    pub csrf: &'a str,
    pub done: Option<String>,
    pub problem: Option<&'a str>,
    pub may_provision: bool,
    pub form_name: &'a str,
    pub form_display_name: &'a str,
    pub form_plan: &'a str,
    pub form_owner: &'a str,
    pub form_applications: &'a str,
    pub q: &'a str,
    pub filter_state: &'a str,
    pub filter_plan: &'a str,
    pub filter_sync: &'a str,
    pub states: Vec<(&'static str, String)>,
    /// The sync states: value and words.
    pub syncs: Vec<(&'static str, String)>,
    pub count: &'a str,
    pub rows: &'a [TenantRow],
    pub next: Option<String>,
}

/// One row of the audit log in the auditor console.
pub struct AuditLine {
    pub time: String,
    pub tenant: String,
    pub actor: String,
    pub action: String,
    pub resource: String,
    pub outcome: String,
}

#[derive(Template)]
#[template(path = "audit_console.html")]
pub struct AuditConsole<'a> {
    pub t: Tr,
    /// The page's rows per day (an SVG figure with its words), when there are rows.
    pub picture: Option<String>,
    pub problem: Option<&'a str>,
    pub from: &'a str,
    pub to: &'a str,
    pub tenant: &'a str,
    pub actor: &'a str,
    pub action: &'a str,
    pub outcome: &'a str,
    pub resource: &'a str,
    pub count: &'a str,
    pub rows: &'a [AuditLine],
    pub next: Option<String>,
    /// The CSV of exactly this filter.
    pub export: String,
    /// Each chain: its number, last sequence number and the start of its head's hash.
    pub heads: Vec<(String, String, String)>,
    /// The last signed checkpoint: when, and the key that signed it.
    pub checkpoint: Option<(String, String)>,
    /// Whether the reader may read the whole log (and so its chains).
    pub everything: bool,
}

/// A tenant's state and the actions an operator may take on it, on its console page.
pub struct TenantPanel {
    /// Where its forms post.
    pub action: String,
    pub state: String,
    pub state_value: &'static str,
    /// The day it is purged, if it is pending deletion.
    pub purge: String,
    /// Why it is suspended.
    pub reason: String,
    /// Git declares it: it is deleted by removing its file.
    pub git: bool,
    pub restorable_days: String,
}

#[derive(Template)]
#[template(path = "tenant_subscription.html")]
pub struct TenantSubscription<'a> {
    pub t: Tr,
    /// The month's usage against the limit (an SVG figure with its words).
    pub picture: String,
    pub csrf: &'a str,
    pub tenant: &'a str,
    pub action: &'a str,
    pub done: Option<String>,
    pub problem: Option<&'a str>,
    pub plan: &'a str,
    /// The plan's flags: key and value as the plan sets it.
    pub includes: Vec<(String, String)>,
    /// Git declares the tenant (its plan is changed there).
    pub git: Option<String>,
    pub can_change: bool,
    pub plans: Vec<String>,
    pub etag: &'a str,
    pub month: &'a str,
    pub usage: &'a str,
    pub limit: &'a str,
    pub state: &'a str,
}

/// A tenant's single sign-on: where it stands, the steps, the settings form.
#[derive(Template)]
#[template(path = "tenant_sso.html")]
pub struct TenantSso<'a> {
    pub t: Tr,
    pub csrf: &'a str,
    pub tenant: &'a str,
    pub action: &'a str,
    pub done: Option<String>,
    pub problem: Option<&'a str>,
    /// The tenant has a provider (in any state).
    pub configured: bool,
    /// `draft`, `verified`, `tested` or `active` (empty without a provider).
    pub state: &'a str,
    pub state_label: String,
    /// What to register at the provider.
    pub redirect_uri: &'a str,
    pub verified_at: Option<String>,
    pub tested_at: Option<String>,
    /// A verification just run: whether it passed, and each problem in words.
    pub passed: Option<bool>,
    pub problems: Vec<String>,
    /// Git declares the provider: read-only here, with the file.
    pub git: Option<String>,
    pub can_change: bool,
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub domains: &'a str,
    pub mandatory: bool,
    pub jit_role: &'a str,
    pub jit_roles: Vec<(&'static str, String)>,
}

/// A flag of a tenant: the plan's default, the tenant's override, the value applications get.
pub struct FlagRow {
    pub key: String,
    pub default: String,
    /// The override, `—` without one.
    pub own: String,
    pub effective: String,
    /// The override is declared in Git.
    pub from_git: bool,
}

/// A budget override waiting for its approvals.
pub struct PendingOverride {
    pub id: String,
    pub limit: String,
    pub reason: String,
    /// Who asked, and when.
    pub requested: String,
    pub approvals: String,
}

/// A field that differs from what Git applied.
pub struct DriftRow {
    pub resource: String,
    pub field: String,
    pub applied: String,
    pub live: String,
    pub by: String,
    pub at: String,
}

/// A reconcile pass that touched the tenant.
pub struct PassRow {
    pub at: String,
    pub trigger: String,
    pub state: String,
    pub version: String,
    /// The commit's subject.
    pub change: String,
    pub author: String,
}

/// An operator's page of one tenant.
#[derive(Template)]
#[template(path = "tenant_overview.html")]
pub struct TenantOverview<'a> {
    pub t: Tr,
    pub csrf: &'a str,
    pub action: &'a str,
    pub done: Option<String>,
    pub problem: Option<&'a str>,
    pub display_name: &'a str,
    pub state: &'a str,
    pub plan: &'a str,
    /// Git and its file, or the console and API.
    pub managed: &'a str,
    /// The tenant's other console pages: path and label.
    pub links: Vec<(String, String)>,
    pub flags: &'a [FlagRow],
    pub applications: &'a [String],
    pub month: String,
    pub usage: String,
    pub limit: String,
    /// The month's usage against the limit (an SVG figure with its words).
    pub budget_picture: String,
    pub pending: &'a [PendingOverride],
    pub may_approve: bool,
    pub sync_state: &'a str,
    pub synced_commit: &'a str,
    pub applied_commit: &'a str,
    /// Each problem of its files, `file:line: message`.
    pub errors: &'a [String],
    pub drift: &'a [DriftRow],
    pub orphans: Vec<String>,
    pub history: &'a [PassRow],
}

/// A replica as the platform page lists it.
pub struct ReplicaRow {
    pub name: String,
    /// It runs the reconciler now.
    pub leader: bool,
    pub address: String,
    pub version: String,
    pub started: String,
    /// "now", or when it was last seen.
    pub seen: String,
}

/// The platform page: sync, replicas, outboxes, audit checkpoint.
#[derive(Template)]
#[template(path = "platform_status.html")]
pub struct PlatformStatus<'a> {
    pub t: Tr,
    pub csrf: &'a str,
    pub done: Option<String>,
    /// Operators pause, resume and sync now.
    pub may_control: bool,
    pub paused: bool,
    pub state: &'a str,
    /// The tenants per sync state (an SVG figure with its words).
    pub picture: String,
    /// The source commit (short) and its subject.
    pub source: &'a str,
    pub author: &'a str,
    pub last_attempt: &'a str,
    pub last_success: &'a str,
    pub last_error: Option<&'a str>,
    pub leader: &'a str,
    pub replicas: &'a [ReplicaRow],
    /// Per outbox (mail, webhooks): its name, waiting, given up, oldest waiting; `None` unless the
    /// reader may read the outbox.
    pub outboxes: Option<[(String, String, String, String); 2]>,
    /// When, and the key that signed it.
    pub checkpoint: Option<(String, String)>,
    pub may_read_audit: bool,
}

/// An application in the operator console's list.
pub struct AppRow {
    pub href: String,
    pub name: String,
    pub display_name: String,
    pub owner: String,
    pub status: String,
    pub scopes: String,
    pub managed_by: String,
}

#[derive(Template)]
#[template(path = "apps.html")]
pub struct Apps<'a> {
    pub t: Tr,
    pub rows: &'a [AppRow],
}

/// An API key as the console lists it: never its secret.
pub struct KeyRow {
    pub id: String,
    pub name: String,
    pub scopes: String,
    /// When, and by whom.
    pub created: String,
    pub last_used: String,
    /// Active, expires, expired or revoked, in words.
    pub state: String,
    pub revocable: bool,
}

/// One application: its keys, issue and revoke.
#[derive(Template)]
#[template(path = "app.html")]
pub struct App<'a> {
    pub t: Tr,
    pub csrf: &'a str,
    pub action: &'a str,
    pub done: Option<String>,
    pub problem: Option<&'a str>,
    /// A key just issued: its id and whole value, shown this once.
    pub issued: Option<(String, String)>,
    pub display_name: &'a str,
    pub owner: &'a str,
    pub status: &'a str,
    pub scopes: &'a [String],
    pub managed_by: &'a str,
    pub keys: &'a [KeyRow],
    pub may_manage: bool,
}
