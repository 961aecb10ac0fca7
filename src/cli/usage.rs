//! `gatehouse usage …`: the usage applications reported, from a running server (an operator, or a
//! key with `usage:read` naming its tenant). `export` writes CSV for a spreadsheet or a billing
//! import (every matching event, streamed), or with `--format json` the events as one JSON list;
//! `totals` sums per tenant, type and day or month.

use std::io::Write as _;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::ReportFormat;
use super::client::{ServerArgs, table, text, with_query};

#[derive(Debug, Args)]
pub struct UsageArgs {
    #[command(subcommand)]
    pub command: UsageCommand,
    #[command(flatten)]
    pub server: ServerArgs,
    /// `text` (CSV for `export`, a table for `totals`) or `json`.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text, global = true)]
    pub format: ReportFormat,
}

#[derive(Debug, Subcommand)]
pub enum UsageCommand {
    /// Every event matching the filters, in ingest order: CSV on standard output, or JSON.
    Export {
        /// Only this tenant (required with an API key).
        #[arg(long)]
        tenant: Option<String>,
        /// Only events of this type.
        #[arg(long = "type")]
        kind: Option<String>,
        /// Only events at or after this RFC 3339 instant.
        #[arg(long)]
        from: Option<String>,
        /// Only events before this RFC 3339 instant.
        #[arg(long)]
        to: Option<String>,
        /// Only events after this cursor (the `cursor` of the last event a previous export printed).
        #[arg(long)]
        after: Option<String>,
    },
    /// Sums per tenant, event type and day (or month).
    Totals {
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long = "type")]
        kind: Option<String>,
        /// First day, YYYY-MM-DD (default: the first of this month).
        #[arg(long)]
        from: Option<String>,
        /// The day after the last, YYYY-MM-DD (default: tomorrow).
        #[arg(long)]
        to: Option<String>,
        /// Per month instead of per day.
        #[arg(long)]
        monthly: bool,
    },
}

pub fn usage(args: UsageArgs) -> anyhow::Result<u8> {
    let server = &args.server;
    match &args.command {
        UsageCommand::Export { tenant, kind, from, to, after } => {
            let query = [
                ("tenant", tenant.as_deref()),
                ("type", kind.as_deref()),
                ("from", from.as_deref()),
                ("to", to.as_deref()),
                ("after", after.as_deref()),
            ];
            match args.format {
                ReportFormat::Text => {
                    let mut out = std::io::stdout().lock();
                    server.download(&with_query("/v1/usage/events", &query)?, "text/csv", &mut out)?;
                    out.flush()?;
                }
                ReportFormat::Json => println!("{:#}", every_event(server, &query)?),
            }
        }
        UsageCommand::Totals { tenant, kind, from, to, monthly } => {
            let query = [
                ("tenant", tenant.as_deref()),
                ("type", kind.as_deref()),
                ("from", from.as_deref()),
                ("to", to.as_deref()),
                ("granularity", monthly.then_some("month")),
            ];
            let body = server.get(&with_query("/v1/usage/totals", &query)?)?;
            match args.format {
                ReportFormat::Json => println!("{body:#}"),
                ReportFormat::Text => {
                    print!("{}", totals_table(body["totals"].as_array().map_or(&[][..], Vec::as_slice)))
                }
            }
        }
    }
    Ok(0)
}

/// Every page of `/v1/usage/events`, following `next`, as one `{"events": […]}`.
fn every_event(server: &ServerArgs, query: &[(&str, Option<&str>)]) -> anyhow::Result<Value> {
    let mut events = Vec::new();
    let mut query: Vec<(&str, Option<String>)> = query.iter().map(|(k, v)| (*k, v.map(str::to_owned))).collect();
    query.push(("limit", Some("1000".into())));
    loop {
        let borrowed: Vec<(&str, Option<&str>)> = query.iter().map(|(k, v)| (*k, v.as_deref())).collect();
        let page = server.get(&with_query("/v1/usage/events", &borrowed)?)?;
        events.extend(page["events"].as_array().cloned().unwrap_or_default());
        let Some(next) = page["next"].as_str() else { break };
        query.retain(|(k, _)| *k != "after");
        query.push(("after", Some(next.to_owned())));
    }
    Ok(json!({ "events": events }))
}

fn totals_table(totals: &[Value]) -> String {
    let columns = [("TENANT", 24), ("PERIOD", 12), ("TYPE", 24), ("QUANTITY", 12), ("EVENTS", 0)];
    table(&columns, totals, |t| {
        vec![
            text(&t["tenant"]),
            text(&t["period"]),
            text(&t["type"]),
            t["quantity"].to_string(),
            t["events"].to_string(),
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_filters_given_reach_the_query() {
        let query = [("tenant", Some("acme")), ("type", None), ("from", Some("2026-12-01T00:00:00+01:00"))];
        assert_eq!(
            with_query("/v1/usage/events", &query).expect("encoded"),
            "/v1/usage/events?tenant=acme&from=2026-12-01T00%3A00%3A00%2B01%3A00"
        );
        assert_eq!(with_query("/v1/usage/totals", &[("tenant", None)]).expect("encoded"), "/v1/usage/totals");
    }

    #[test]
    fn totals_are_a_table_per_tenant_period_and_type() {
        let totals =
            [json!({"tenant": "acme", "period": "2026-12-01", "type": "api.call", "quantity": 6, "events": 2})];
        let shown = totals_table(&totals);
        assert!(shown.starts_with("TENANT"), "{shown}");
        assert!(shown.contains("acme") && shown.contains("2026-12-01") && shown.contains("api.call"), "{shown}");
    }
}
