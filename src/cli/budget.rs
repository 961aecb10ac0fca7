//! `gatehouse budget …`: a tenant's budget on a running server: `show` (usage this month, the limit
//! in force, the state, the thresholds crossed), `override request` (a higher limit until a time,
//! with a reason) and `override approve` (the second approval by two people other than the
//! requester grants it), `override list`.

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::ReportFormat;
use super::client::{ServerArgs, fields, segment, table, text, when};

#[derive(Debug, Args)]
pub struct BudgetArgs {
    #[command(subcommand)]
    pub command: BudgetCommand,
    #[command(flatten)]
    pub server: ServerArgs,
    #[arg(long, value_enum, default_value_t = ReportFormat::Text, global = true)]
    pub format: ReportFormat,
}

#[derive(Debug, Subcommand)]
pub enum BudgetCommand {
    /// Usage this month, the limit in force, the state and the thresholds crossed.
    Show { tenant: String },
    /// Overrides of a `requireOverride` budget.
    #[command(subcommand)]
    Override(OverrideCommand),
}

#[derive(Debug, Subcommand)]
pub enum OverrideCommand {
    /// Ask for a higher limit: `--amount` more than the budget, or a new `--limit`.
    Request {
        tenant: String,
        #[arg(long, conflicts_with = "limit", required_unless_present = "limit")]
        amount: Option<i64>,
        #[arg(long)]
        limit: Option<i64>,
        /// Why, for the approvers and the audit log.
        #[arg(long)]
        reason: String,
        /// How long it stays in force once granted (at most 31d).
        #[arg(long, default_value = "7d")]
        expires_in: String,
    },
    /// Approve an override (two people other than the requester grant it).
    Approve { tenant: String, id: String },
    /// A tenant's overrides, newest first.
    List { tenant: String },
}

pub fn budget(args: BudgetArgs) -> anyhow::Result<u8> {
    let server = &args.server;
    let base = |tenant: &str| format!("/v1/tenants/{}/budget", segment(tenant));
    let body = match &args.command {
        BudgetCommand::Show { tenant } => server.get(&base(tenant))?,
        BudgetCommand::Override(OverrideCommand::Request { tenant, amount, limit, reason, expires_in }) => server
            .call(
                "POST",
                &format!("{}/overrides", base(tenant)),
                Some(json!({ "amount": amount, "limit": limit, "reason": reason, "expiresIn": expires_in })),
            )?,
        BudgetCommand::Override(OverrideCommand::Approve { tenant, id }) => {
            server.call("POST", &format!("{}/overrides/{}/approve", base(tenant), segment(id)), None)?
        }
        BudgetCommand::Override(OverrideCommand::List { tenant }) => {
            server.get(&format!("{}/overrides", base(tenant)))?
        }
    };
    match args.format {
        ReportFormat::Json => println!("{body:#}"),
        ReportFormat::Text => match (&args.command, body["overrides"].as_array()) {
            (_, Some(overrides)) => print!("{}", overrides_table(overrides)),
            (BudgetCommand::Show { .. }, _) => print!("{}", budget_text(&body)),
            _ => print!("{}", override_text(&body)),
        },
    }
    Ok(0)
}

fn budget_text(budget: &Value) -> String {
    let limit = match (budget["limit"].as_i64(), budget["monthlyLimit"].as_i64()) {
        (Some(limit), Some(monthly)) if limit != monthly => format!("{limit} (override; the budget is {monthly})"),
        (Some(limit), _) => limit.to_string(),
        _ => "none".into(),
    };
    fields(&[
        ("tenant", text(&budget["tenant"])),
        ("month", text(&budget["month"])),
        ("state", text(&budget["state"])),
        ("usage", budget["usage"].to_string()),
        ("limit", limit),
        ("remaining", text(&budget["remaining"])),
        ("on limit", text(&budget["onLimit"])),
        ("warn at", text(&budget["warnAt"])),
        (
            "crossed",
            match budget["thresholdsCrossed"].as_array() {
                Some(crossed) if !crossed.is_empty() => text(&budget["thresholdsCrossed"]),
                _ => "none".into(),
            },
        ),
    ])
}

fn override_text(o: &Value) -> String {
    fields(&[
        ("override", text(&o["id"])),
        ("status", text(&o["status"])),
        ("limit", o["limit"].to_string()),
        ("reason", text(&o["reason"])),
        ("requested by", text(&o["requestedBy"])),
        ("approvals", text(&o["approvals"])),
        ("expires", when(&o["expiresAt"])),
    ])
}

fn overrides_table(overrides: &[Value]) -> String {
    let columns = [("ID", 38), ("STATUS", 9), ("LIMIT", 10), ("REQUESTED BY", 24), ("APPROVALS", 0)];
    table(&columns, overrides, |o| {
        vec![text(&o["id"]), text(&o["status"]), o["limit"].to_string(), text(&o["requestedBy"]), text(&o["approvals"])]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_under_an_override_shows_both_limits() {
        let shown = budget_text(&json!({
            "tenant": "acme", "month": "2026-12-01", "state": "exceeded", "usage": 1200, "monthlyLimit": 1000,
            "limit": 1500, "remaining": 300, "onLimit": "requireOverride", "warnAt": [75, 90], "thresholdsCrossed": [75, 90, 100]
        }));
        assert!(shown.contains("limit:     1500 (override; the budget is 1000)\n"), "{shown}");
        assert!(shown.contains("state:     exceeded\n"), "{shown}");
    }
}
