//! `gatehouse proposals …`: changes written back to Git for review (`sync.writeBack: review`),
//! waiting on their branches, on a running server. Text for people, `--format json` for scripts.

use clap::{Args, Subcommand};
use serde_json::Value;

use super::ReportFormat;
use super::client::{ServerArgs, table, text, when};

#[derive(Debug, Args)]
pub struct ProposalsArgs {
    #[command(subcommand)]
    pub command: ProposalsCommand,
    #[command(flatten)]
    pub server: ServerArgs,
    #[arg(long, value_enum, default_value_t = ReportFormat::Text, global = true)]
    pub format: ReportFormat,
}

#[derive(Debug, Subcommand)]
pub enum ProposalsCommand {
    /// A tenant's proposals, newest first, each in its state now (open, merged, superseded, withdrawn).
    List {
        #[arg(long)]
        tenant: String,
    },
    /// One proposal with its diff.
    Show {
        #[arg(long)]
        tenant: String,
        id: String,
    },
    /// Withdraw an open proposal: its branch is deleted.
    Withdraw {
        #[arg(long)]
        tenant: String,
        id: String,
    },
}

pub fn proposals(args: ProposalsArgs) -> anyhow::Result<u8> {
    let server = &args.server;
    let path = |tenant: &str, id: Option<&str>| match id {
        Some(id) => format!("/v1/tenants/{tenant}/proposals/{id}"),
        None => format!("/v1/tenants/{tenant}/proposals"),
    };
    let body = match &args.command {
        ProposalsCommand::List { tenant } => server.get(&path(tenant, None))?,
        ProposalsCommand::Show { tenant, id } => server.get(&path(tenant, Some(id)))?,
        ProposalsCommand::Withdraw { tenant, id } => server.call("DELETE", &path(tenant, Some(id)), None)?,
    };
    match (args.format, &args.command) {
        (ReportFormat::Json, _) => println!("{body:#}"),
        (ReportFormat::Text, ProposalsCommand::List { .. }) => {
            print!("{}", proposals_table(body["proposals"].as_array().map_or(&[], Vec::as_slice)));
        }
        (ReportFormat::Text, _) => print!("{}", described(&body)),
    }
    Ok(0)
}

fn proposals_table(proposals: &[Value]) -> String {
    let columns = [("ID", 36), ("STATE", 10), ("PROPOSED", 21), ("BY", 24), ("SUMMARY", 0)];
    table(&columns, proposals, |p| {
        vec![text(&p["id"]), text(&p["state"]), when(&p["createdAt"]), text(&p["proposedBy"]), text(&p["summary"])]
    })
}

/// One proposal as a person reads it: what, who, where, its state, then the diff.
fn described(p: &Value) -> String {
    format!(
        "{}\n  state:    {}\n  by:       {} at {}\n  branch:   {} (commit {}, on {})\n  file:     {}\n\n{}",
        text(&p["summary"]),
        text(&p["state"]),
        text(&p["proposedBy"]),
        when(&p["createdAt"]),
        text(&p["branch"]),
        text(&p["commit"]),
        text(&p["baseCommit"]),
        text(&p["file"]),
        text(&p["diff"]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_proposal_reads_as_what_who_where_and_its_diff() {
        let p = json!({
            "summary": "Set plan of tenant acme to pro", "state": "open", "proposedBy": "alice@acme.example",
            "createdAt": "2026-12-06T15:00:00Z", "branch": "gatehouse/acme/1", "commit": "abc", "baseCommit": "def",
            "file": "tenants/acme.yaml", "diff": "-  plan: enterprise\n+  plan: pro\n",
        });
        let shown = described(&p);
        assert!(shown.starts_with("Set plan of tenant acme to pro\n  state:    open\n"), "{shown}");
        assert!(shown.contains("branch:   gatehouse/acme/1 (commit abc, on def)"), "{shown}");
        assert!(shown.ends_with("+  plan: pro\n"), "{shown}");
    }
}
