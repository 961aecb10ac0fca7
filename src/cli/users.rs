//! `gatehouse users …`: a tenant's users on a running server, through `/v1/tenants/{t}/users`.
//! Text for people, `--format json` for scripts. The server keeps every tenant an active owner
//! (409 `last_owner`); the CLI prints its message.

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::ReportFormat;
use super::client::{ServerArgs, fields, segment, table, text, when};

#[derive(Debug, Args)]
pub struct UsersArgs {
    #[command(subcommand)]
    pub command: UsersCommand,
    #[command(flatten)]
    pub server: ServerArgs,
    #[arg(long, value_enum, default_value_t = ReportFormat::Text, global = true)]
    pub format: ReportFormat,
    /// Change only if it is still as last read: the `ETag` header of its `GET` (the server answers
    /// 412 when it changed since, and nothing is changed).
    #[arg(long, global = true)]
    pub if_match: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// List a tenant's users in email order: one page, or every page with --all.
    List {
        tenant: String,
        /// owner, admin or user.
        #[arg(long)]
        role: Option<String>,
        /// invited, active or disabled.
        #[arg(long)]
        status: Option<String>,
        /// Only users whose email starts with this.
        #[arg(long)]
        email_prefix: Option<String>,
        /// Users per page (1 to 1000; the server's default is 100).
        #[arg(long)]
        limit: Option<u16>,
        /// Follow every page; `--format json` prints them as one list.
        #[arg(long)]
        all: bool,
    },
    /// Show one user.
    Show { tenant: String, email: String },
    /// Invite a user: created `invited`, and mailed an invitation.
    Invite {
        tenant: String,
        email: String,
        /// owner, admin or user.
        #[arg(long)]
        role: String,
        #[arg(long)]
        name: Option<String>,
        /// A retry with the same key within 24 hours gets the first answer.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Change a user's role (owner, admin or user); their sessions end.
    SetRole { tenant: String, email: String, role: String },
    /// Disable a user: they cannot sign in and their sessions end.
    Disable { tenant: String, email: String },
    /// Enable a disabled user.
    Enable { tenant: String, email: String },
    /// Delete a user, with their sessions.
    Delete { tenant: String, email: String },
    /// End every session of a user at once.
    EndSessions { tenant: String, email: String },
    /// Send an invited user a new invitation; the earlier links stop working.
    ResendInvitation { tenant: String, email: String },
    /// Forget a user's failed sign-in attempts, ending a lockout.
    Unlock { tenant: String, email: String },
}

pub fn users(args: UsersArgs) -> anyhow::Result<u8> {
    let server = &args.server;
    let if_match: Vec<(&str, &str)> = args.if_match.iter().map(|tag| ("If-Match", tag.as_str())).collect();
    let change = |tenant: &str, email: &str, body: Value| {
        server.call_with("PATCH", &user_path(tenant, email), &if_match, Some(body))
    };
    let body = match &args.command {
        UsersCommand::List { tenant, role, status, email_prefix, limit, all } => {
            let limit = limit.map(|l| l.to_string());
            let query = [
                ("role", role.as_deref()),
                ("status", status.as_deref()),
                ("emailPrefix", email_prefix.as_deref()),
                ("limit", limit.as_deref()),
            ];
            server.list(&format!("/v1/tenants/{}/users", segment(tenant)), &query, "users", *all)?
        }
        UsersCommand::Show { tenant, email } => server.get(&user_path(tenant, email))?,
        UsersCommand::Invite { tenant, email, role, name, idempotency_key } => {
            let headers: Vec<(&str, &str)> = idempotency_key.iter().map(|k| ("Idempotency-Key", k.as_str())).collect();
            let path = format!("/v1/tenants/{}/users", segment(tenant));
            server.call_with("POST", &path, &headers, Some(json!({ "email": email, "role": role, "name": name })))?
        }
        UsersCommand::SetRole { tenant, email, role } => change(tenant, email, json!({ "role": role }))?,
        UsersCommand::Disable { tenant, email } => change(tenant, email, json!({ "status": "disabled" }))?,
        UsersCommand::Enable { tenant, email } => change(tenant, email, json!({ "status": "active" }))?,
        UsersCommand::Delete { tenant, email } => {
            server.call_with("DELETE", &user_path(tenant, email), &if_match, None)?
        }
        UsersCommand::EndSessions { tenant, email } => {
            server.call("DELETE", &format!("{}/sessions", user_path(tenant, email)), None)?
        }
        UsersCommand::ResendInvitation { tenant, email } => {
            server.call("POST", &format!("{}/invitation", user_path(tenant, email)), None)?
        }
        UsersCommand::Unlock { tenant, email } => {
            server.call("DELETE", &format!("{}/lockout", user_path(tenant, email)), None)?
        }
    };
    if let ReportFormat::Json = args.format {
        // A deletion answers 204 without a body: nothing to print.
        if !body.is_null() {
            println!("{body:#}");
        }
        return Ok(0);
    }
    match &args.command {
        UsersCommand::List { .. } => {
            print!("{}", users_table(body["users"].as_array().map_or(&[], Vec::as_slice)));
            if let Some(next) = body["next"].as_str() {
                eprintln!("more users after {next}: --all lists every page");
            }
        }
        UsersCommand::Delete { tenant, email } => println!("deleted {email} from tenant {tenant}"),
        UsersCommand::EndSessions { email, .. } => {
            println!("ended {} sessions of {email}", text(&body["sessionsEnded"]))
        }
        UsersCommand::ResendInvitation { .. } => println!("{}", text(&body["message"])),
        UsersCommand::Unlock { email, .. } => match body["wasLocked"].as_bool() {
            Some(true) => println!("unlocked {email}: their failed sign-in attempts are forgotten"),
            _ => println!("{email} was not locked out"),
        },
        _ => print!("{}", user_text(&body)),
    }
    Ok(0)
}

fn user_path(tenant: &str, email: &str) -> String {
    format!("/v1/tenants/{}/users/{}", segment(tenant), segment(email))
}

fn yes_no(value: &Value) -> &'static str {
    if value.as_bool() == Some(true) { "yes" } else { "no" }
}

fn users_table(users: &[Value]) -> String {
    let columns = [("EMAIL", 32), ("ROLE", 6), ("STATUS", 9), ("MFA", 4), ("SESSIONS", 8), ("FROM", 5), ("NAME", 0)];
    table(&columns, users, |user| {
        vec![
            text(&user["email"]),
            text(&user["role"]),
            text(&user["status"]),
            yes_no(&user["mfa"]).to_owned(),
            text(&user["liveSessions"]),
            text(&user["managedBy"]),
            text(&user["name"]),
        ]
    })
}

fn user_text(user: &Value) -> String {
    fields(&[
        ("user", text(&user["email"])),
        ("name", text(&user["name"])),
        ("role", text(&user["role"])),
        ("status", text(&user["status"])),
        ("mfa", yes_no(&user["mfa"]).to_owned()),
        ("sessions", text(&user["liveSessions"])),
        ("activated", when(&user["activatedAt"])),
        ("managed by", text(&user["managedBy"])),
    ])
}
