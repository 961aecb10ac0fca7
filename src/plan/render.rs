//! Prints a plan for people (text, coloured on a terminal), for tools (JSON) and for pull-request
//! comments (Markdown, kept short however big the change).

use std::fmt::Write as _;

use anstyle::{AnsiColor, Style};
use serde_json::Value;

use super::{Action, Change, Drift, Plan, Resource, TenantPlan, TenantState};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanFormat {
    Text,
    Json,
    Markdown,
}

pub fn render(plan: &Plan, format: PlanFormat) -> String {
    match format {
        PlanFormat::Text => text(plan, true),
        PlanFormat::Json => format!("{:#}\n", json(plan)),
        PlanFormat::Markdown => markdown(plan),
    }
}

/// The plan as `--format json` prints it (and `plan --out` saves it).
pub fn json(plan: &Plan) -> Value {
    let mut body = serde_json::json!({
        "summary": plan.summary(),
        "global": plan.global,
        "globalDrift": plan.global_drift,
        "tenants": plan.tenants,
    });
    if !plan.warnings.is_empty() {
        body["warnings"] = serde_json::json!(plan.warnings);
    }
    body
}

const GREEN: Style = AnsiColor::Green.on_default();
const YELLOW: Style = AnsiColor::Yellow.on_default();
const RED: Style = AnsiColor::Red.on_default();
const MAGENTA: Style = AnsiColor::Magenta.on_default();
const BOLD: Style = Style::new().bold();

struct Out {
    text: String,
    color: bool,
}

impl Out {
    fn line(&mut self, style: Style, indent: usize, content: &str) {
        let pad = " ".repeat(indent);
        if self.color {
            let _ = writeln!(self.text, "{pad}{style}{content}{style:#}");
        } else {
            let _ = writeln!(self.text, "{pad}{content}");
        }
    }
}

fn headline(plan: &Plan) -> String {
    let s = plan.summary();
    let mut line = format!("Plan: {} to create, {} to update, {} to delete", s.create, s.update, s.delete);
    let _ = write!(line, "; {} drifted ({} to revert); {} orphaned", s.drift, s.drift_to_revert, s.orphans);
    if s.invalid_tenants > 0 {
        let _ = write!(line, "; {} invalid tenants keep their last good state", s.invalid_tenants);
    }
    if s.refused_tenants > 0 {
        let _ = write!(line, "; {} tenants refused", s.refused_tenants);
    }
    line
}

/// The plan as text; `color` adds ANSI styles (stripped by the caller when not on a terminal).
pub fn text(plan: &Plan, color: bool) -> String {
    let mut out = Out { text: String::new(), color };
    let shown: Vec<&TenantPlan> = plan.tenants.iter().filter(|t| is_shown(t)).collect();
    if plan.global.iter().all(|c| !c.is_visible()) && plan.global_drift.is_empty() && shown.is_empty() {
        out.line(BOLD, 0, "No changes: the live state matches the config repository.");
        return out.text;
    }
    out.line(BOLD, 0, &headline(plan));
    if plan.global.iter().any(Change::is_visible) || !plan.global_drift.is_empty() {
        out.line(BOLD, 0, "\nGlobal");
        for change in plan.global.iter().filter(|c| c.is_visible()) {
            change_lines(&mut out, change);
        }
        for drift in &plan.global_drift {
            drift_lines(&mut out, drift);
        }
    }
    for tenant in shown {
        tenant_lines(&mut out, tenant);
    }
    if !plan.warnings.is_empty() {
        out.line(BOLD, 0, "\nWarnings");
        for warning in &plan.warnings {
            out.line(RED, 2, &format!("⚠ {warning}"));
        }
    }
    out.text
}

fn is_shown(t: &TenantPlan) -> bool {
    !matches!(t.state, TenantState::OutOfSync)
        || t.visible_changes().next().is_some()
        || !t.drift.is_empty()
        || !t.orphans.is_empty()
}

fn tenant_lines(out: &mut Out, t: &TenantPlan) {
    let source = t.source.as_deref().map(|s| format!("  ({s})")).unwrap_or_default();
    out.line(BOLD, 0, &format!("\nTenant {}{source}", t.name));
    match &t.state {
        TenantState::Invalid { problems } => {
            out.line(RED, 2, "invalid: keeps its last good state until these are fixed");
            for p in problems {
                out.line(RED, 4, &p.to_string());
            }
            return;
        }
        TenantState::Refused { reason } => out.line(RED, 2, &format!("refused: {reason}")),
        TenantState::Synced | TenantState::OutOfSync => {}
    }
    for change in t.visible_changes() {
        change_lines(out, change);
    }
    for drift in &t.drift {
        drift_lines(out, drift);
    }
    for orphan in &t.orphans {
        let what =
            format!("? orphan {} {} (removed from Git, kept because prune is off)", orphan.kind(), orphan.short_name());
        out.line(MAGENTA, 2, &what);
    }
}

fn label(resource: &Resource) -> String {
    format!("{} {}", resource.kind(), resource.short_name())
}

fn change_lines(out: &mut Out, change: &Change) {
    let compact = matches!(change.resource, Resource::User { .. } | Resource::Flag { .. });
    match change.action {
        Action::Create if compact => {
            let fields: Vec<String> = change
                .fields
                .iter()
                .filter(|f| !matches!(f.field, "email"))
                .map(|f| format!("{}={}", f.field, short(&f.after)))
                .collect();
            out.line(GREEN, 2, &format!("+ {}  {}", label(&change.resource), fields.join(" ")));
        }
        Action::Create => {
            out.line(GREEN, 2, &format!("+ {}", label(&change.resource)));
            for f in &change.fields {
                out.line(GREEN, 6, &format!("{}: {}", f.field, short(&f.after)));
            }
        }
        Action::Delete => out.line(RED, 2, &format!("- {}", label(&change.resource))),
        Action::Update => {
            let note = match change.reason {
                super::Reason::Adopt => "  (adopted from the API)",
                super::Reason::Drift => "  (reverts drift)",
                super::Reason::Git => "",
            };
            out.line(YELLOW, 2, &format!("~ {}{note}", label(&change.resource)));
            for f in &change.fields {
                value_change(out, f.field, &f.before, &f.after);
            }
        }
    }
}

fn drift_lines(out: &mut Out, drift: &Drift) {
    let what = match &drift.allowed {
        Some(a) => format!("kept: allowed until {} ({})", a.until.to_rfc3339(), a.reason),
        None if drift.revert => "reverted by apply (selfHeal)".to_owned(),
        None => "kept and reported (selfHeal is off)".to_owned(),
    };
    out.line(MAGENTA, 2, &format!("! drift {}: {what}", label(&drift.resource)));
    for f in &drift.fields {
        out.line(MAGENTA, 6, &format!("{}: applied {}, live {}", f.field, short(&f.applied), short(&f.live)));
    }
}

/// One line for scalars; a line diff (similar) for objects that span lines.
fn value_change(out: &mut Out, field: &str, before: &Value, after: &Value) {
    let (b, a) = (short(before), short(after));
    if b.len() + a.len() < 100 {
        out.line(YELLOW, 6, &format!("{field}: {b} → {a}"));
        return;
    }
    out.line(YELLOW, 6, &format!("{field}:"));
    let before = serde_json::to_string_pretty(before).unwrap_or_default();
    let after = serde_json::to_string_pretty(after).unwrap_or_default();
    for change in similar::TextDiff::from_lines(&before, &after).iter_all_changes() {
        let (sign, style) = match change.tag() {
            similar::ChangeTag::Delete => ("-", RED),
            similar::ChangeTag::Insert => ("+", GREEN),
            similar::ChangeTag::Equal => (" ", Style::new()),
        };
        out.line(style, 8, &format!("{sign} {}", change.value().trim_end()));
    }
}

fn short(value: &Value) -> String {
    match value {
        Value::Null => "(none)".into(),
        other => other.to_string(),
    }
}

const MARKDOWN_TABLE_ROWS: usize = 50;
const MARKDOWN_DETAIL_LINES: usize = 300;

/// A pull-request comment: the headline, a table of tenants and the text plan folded away, each
/// cut short for big changes so the comment stays within what code hosts accept.
fn markdown(plan: &Plan) -> String {
    let mut md = String::from("### Gatehouse plan\n\n");
    let shown: Vec<&TenantPlan> = plan.tenants.iter().filter(|t| is_shown(t)).collect();
    if plan.global.iter().all(|c| !c.is_visible()) && plan.global_drift.is_empty() && shown.is_empty() {
        md.push_str("No changes: the live state matches the config repository.\n");
        return md;
    }
    let _ = writeln!(md, "**{}**\n", headline(plan));
    md.push_str("| Tenant | Create | Update | Delete | Drift | Orphans | State |\n|---|--:|--:|--:|--:|--:|---|\n");
    for t in shown.iter().take(MARKDOWN_TABLE_ROWS) {
        let count = |action| t.visible_changes().filter(|c| c.action == action).count();
        let state = match &t.state {
            TenantState::Invalid { .. } => "❌ invalid",
            TenantState::Refused { .. } => "⛔ refused",
            TenantState::Synced | TenantState::OutOfSync => "out of sync",
        };
        let _ = writeln!(
            md,
            "| `{}` | {} | {} | {} | {} | {} | {state} |",
            t.name,
            count(Action::Create),
            count(Action::Update),
            count(Action::Delete),
            t.drift.len(),
            t.orphans.len()
        );
    }
    if shown.len() > MARKDOWN_TABLE_ROWS {
        let _ = writeln!(md, "| … and {} more tenants | | | | | | |", shown.len() - MARKDOWN_TABLE_ROWS);
    }
    if !plan.warnings.is_empty() {
        md.push_str("\n**Warnings**\n\n");
        for warning in &plan.warnings {
            let _ = writeln!(md, "- ⚠ {}", warning.to_string().replace('`', "ʼ"));
        }
    }
    let details = text(plan, false);
    let lines: Vec<&str> = details.lines().skip(1).collect();
    md.push_str("\n<details><summary>Details</summary>\n\n```diff\n");
    for line in lines.iter().take(MARKDOWN_DETAIL_LINES) {
        md.push_str(&line.replace("```", "ʼʼʼ"));
        md.push('\n');
    }
    md.push_str("```\n");
    if lines.len() > MARKDOWN_DETAIL_LINES {
        let _ = writeln!(
            md,
            "\n… {} more lines: run `gatehouse plan` for the full plan.",
            lines.len() - MARKDOWN_DETAIL_LINES
        );
    }
    md.push_str("\n</details>\n");
    md
}
