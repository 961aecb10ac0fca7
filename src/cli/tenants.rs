//! `gatehouse tenants …`: tenants on a running server (operator token), through `/v1/tenants`.
//! Text for people, `--format json` for scripts. Tenants declared in Git are changed in Git: the
//! server refuses (409) and the CLI prints why.

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::ReportFormat;
use super::client::{ServerArgs, fields, segment, table, text, when};

#[derive(Debug, Args)]
pub struct TenantsArgs {
    #[command(subcommand)]
    pub command: TenantsCommand,
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
pub enum TenantsCommand {
    /// List tenants in name order: one page, or every page with --all.
    List {
        /// active, suspended or pending_deletion.
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        plan: Option<String>,
        /// Only tenants whose name starts with this.
        #[arg(long)]
        prefix: Option<String>,
        /// Tenants per page (1 to 1000; the server's default is 100).
        #[arg(long)]
        limit: Option<u16>,
        /// Follow every page; `--format json` prints them as one list.
        #[arg(long)]
        all: bool,
    },
    /// Show one tenant.
    Show { name: String },
    /// Create a tenant; its first owner is invited by mail.
    Create {
        name: String,
        #[arg(long)]
        display_name: String,
        #[arg(long)]
        plan: String,
        /// The first owner's email address.
        #[arg(long)]
        owner: String,
        #[arg(long)]
        owner_name: Option<String>,
        /// Applications whose keys may read the tenant (repeat, or comma-separated).
        #[arg(long = "app", value_name = "APP", value_delimiter = ',')]
        apps: Vec<String>,
        /// A retry with the same key within 24 hours gets the first answer, not a second tenant.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Change a tenant created through the API.
    Update {
        name: String,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long)]
        plan: Option<String>,
        /// The applications whose keys may read the tenant, replacing the list (repeat, or comma-separated).
        #[arg(long = "app", value_name = "APP", value_delimiter = ',')]
        apps: Option<Vec<String>>,
    },
    /// Suspend a tenant: its users' sessions end and its keys are refused.
    Suspend {
        name: String,
        /// Why, for the audit log and the tenant's admins.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Make a suspended tenant, or one pending deletion, active again.
    Restore { name: String },
    /// Delete a tenant: suspended and pending deletion, restorable until it is purged.
    Delete { name: String },
}

pub fn tenants(args: TenantsArgs) -> anyhow::Result<u8> {
    let server = &args.server;
    let if_match: Vec<(&str, &str)> = args.if_match.iter().map(|tag| ("If-Match", tag.as_str())).collect();
    let body = match &args.command {
        TenantsCommand::List { state, plan, prefix, limit, all } => {
            let limit = limit.map(|l| l.to_string());
            let query = [
                ("state", state.as_deref()),
                ("plan", plan.as_deref()),
                ("prefix", prefix.as_deref()),
                ("limit", limit.as_deref()),
            ];
            server.list("/v1/tenants", &query, "tenants", *all)?
        }
        TenantsCommand::Show { name } => server.get(&tenant_path(name))?,
        TenantsCommand::Create { name, display_name, plan, owner, owner_name, apps, idempotency_key } => {
            let headers: Vec<(&str, &str)> = idempotency_key.iter().map(|k| ("Idempotency-Key", k.as_str())).collect();
            let owner = json!({ "email": owner, "name": owner_name });
            let body = json!({ "name": name, "displayName": display_name, "plan": plan, "applications": apps, "owner": owner });
            server.call_with("POST", "/v1/tenants", &headers, Some(body))?
        }
        TenantsCommand::Update { name, display_name, plan, apps } => server.call_with(
            "PATCH",
            &tenant_path(name),
            &if_match,
            Some(json!({ "displayName": display_name, "plan": plan, "applications": apps })),
        )?,
        TenantsCommand::Suspend { name, reason } => server.call_with(
            "POST",
            &format!("{}/suspend", tenant_path(name)),
            &if_match,
            Some(json!({ "reason": reason })),
        )?,
        TenantsCommand::Restore { name } => {
            server.call_with("POST", &format!("{}/restore", tenant_path(name)), &if_match, None)?
        }
        TenantsCommand::Delete { name } => server.call_with("DELETE", &tenant_path(name), &if_match, None)?,
    };
    match args.format {
        ReportFormat::Json => println!("{body:#}"),
        ReportFormat::Text => match body["tenants"].as_array() {
            Some(tenants) => {
                print!("{}", tenants_table(tenants));
                if let Some(next) = body["next"].as_str() {
                    eprintln!("more tenants after {next}: --all lists every page");
                }
            }
            None => print!("{}", tenant_text(&body)),
        },
    }
    Ok(0)
}

fn tenant_path(name: &str) -> String {
    format!("/v1/tenants/{}", segment(name))
}

fn tenants_table(tenants: &[Value]) -> String {
    let columns = [("NAME", 24), ("STATE", 17), ("PLAN", 12), ("FROM", 5), ("DISPLAY NAME", 0)];
    table(&columns, tenants, |t| {
        vec![text(&t["name"]), text(&t["state"]), text(&t["plan"]), text(&t["managedBy"]), text(&t["displayName"])]
    })
}

/// One tenant, a line per field; the source file, suspension and purge lines only when they apply.
fn tenant_text(tenant: &Value) -> String {
    let mut rows = vec![
        ("tenant", text(&tenant["name"])),
        ("display name", text(&tenant["displayName"])),
        ("state", text(&tenant["state"])),
        ("plan", text(&tenant["plan"])),
        ("applications", text(&tenant["applications"])),
        ("managed by", text(&tenant["managedBy"])),
    ];
    if let Some(file) = tenant["sourceFile"].as_str() {
        rows.push(("source file", file.to_owned()));
    }
    if !tenant["suspendedAt"].is_null() {
        rows.push(("suspended", format!("{} ({})", when(&tenant["suspendedAt"]), text(&tenant["suspendedReason"]))));
    }
    if !tenant["purgeAfter"].is_null() {
        rows.push(("purged after", format!("{} (restore before to keep it)", when(&tenant["purgeAfter"]))));
    }
    rows.push(("created", when(&tenant["createdAt"])));
    rows.push(("updated", when(&tenant["updatedAt"])));
    fields(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_suspended_tenant_shows_when_and_why_and_an_active_one_does_not() {
        let mut tenant = json!({
            "name": "initech", "displayName": "Initech", "state": "active", "plan": "pro",
            "applications": ["billing-app", "crm"], "managedBy": "api", "sourceFile": null,
            "suspendedAt": null, "suspendedReason": null, "purgeAfter": null,
            "createdAt": "2026-11-21T11:45:01.123456Z", "updatedAt": "2026-11-21T11:45:01.123456Z",
        });
        let active = tenant_text(&tenant);
        assert!(active.contains("applications: billing-app,crm\n"), "{active}");
        assert!(active.contains("created:      2026-11-21T11:45:01Z\n"), "{active}");
        assert!(!active.contains("suspended:") && !active.contains("purged"), "{active}");
        tenant["state"] = json!("suspended");
        tenant["suspendedAt"] = json!("2026-11-22T08:00:00.5Z");
        tenant["suspendedReason"] = json!("unpaid invoice");
        assert!(tenant_text(&tenant).contains("suspended:    2026-11-22T08:00:00Z (unpaid invoice)\n"));
    }
}
