//! Adopting drift (issue 15.6): instead of reverting a change made outside Git, write the live value
//! into the config file that declares it, so the admin commits it and the next plan is clean.
//!
//! `adoptions` turns a plan's drift into edits (pure); `adopt_file` makes a file's edits through
//! `config::rewrite`, which changes only the drifted values. Rows that exist on one side only:
//! - a user that exists live but not in Git (created outside it) is added to the tenant's `users`
//!   list as a new line in the style of its siblings;
//! - a declared user deleted live is left to the admin ("adopt by hand", with the line to remove):
//!   removing a person from Git is a decision, and `apply` would otherwise recreate them.

use serde_json::Value;

use super::fields;
use super::live::{LiveState, ManagedBy};
use super::{Action, Plan, Resource};
use crate::config::Validated;
use crate::config::position::{NodeKind, PositionIndex};
use crate::config::rewrite::{self, ByHand};

/// One thing to write into a config file.
#[derive(Debug, Clone, PartialEq)]
pub struct Adoption {
    /// The declaring file, relative to the config folder.
    pub file: String,
    pub resource: Resource,
    pub edit: Edit,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Edit {
    /// A drifted field: Git applied `applied`, the database holds `live`.
    Field { field: &'static str, applied: Value, live: Value },
    /// A user who exists live but not in the file: a new item of `spec.users`.
    AddUser { item: Vec<(String, Value)> },
    /// A declared user deleted live: left to the admin.
    RemovedUser,
}

/// What became of one adoption.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub adoption: Adoption,
    /// The line written (in the file as the edit left it), or what to do by hand.
    pub result: Result<usize, ByHand>,
}

/// The edits that adopt the drift of `plan` (of one tenant when `tenant` is given; plans and
/// applications too when it is not), in file order of resources.
pub fn adoptions(plan: &Plan, validated: &Validated, live: &LiveState, tenant: Option<&str>) -> Vec<Adoption> {
    let mut out = Vec::new();
    let field_edits = |out: &mut Vec<Adoption>, file: &str, drift: &super::Drift| {
        for f in &drift.fields {
            let edit = Edit::Field { field: f.field, applied: f.applied.clone(), live: f.live.clone() };
            out.push(Adoption { file: file.to_owned(), resource: drift.resource.clone(), edit });
        }
    };
    if tenant.is_none() {
        for drift in &plan.global_drift {
            let source = match &drift.resource {
                Resource::Plan { name } => {
                    validated.desired.plans.iter().find(|p| p.name.as_str() == name.as_str()).map(|p| &p.source)
                }
                Resource::Application { name } => (validated.desired.applications.iter())
                    .find(|a| a.name.as_str() == name.as_str())
                    .map(|a| &a.source),
                _ => None,
            };
            if let Some(file) = source {
                field_edits(&mut out, file, drift);
            }
        }
    }
    for t in plan.tenants.iter().filter(|t| tenant.is_none_or(|name| t.name == name)) {
        let Some(desired) = validated.desired.tenants.iter().find(|d| d.name.as_str() == t.name) else { continue };
        let file = desired.source.as_str();
        for drift in &t.drift {
            field_edits(&mut out, file, drift);
        }
        let Some(live_tenant) = live.tenants.get(&t.name) else { continue };
        // A declared user missing live is drift only when Git has not changed since it was applied;
        // otherwise it may be a user Git just added.
        let unchanged = live_tenant.applied_tree_hash == Some(fields::tree_hash(desired));
        for change in &t.changes {
            if unchanged && change.action == Action::Create && matches!(change.resource, Resource::User { .. }) {
                out.push(Adoption {
                    file: file.to_owned(),
                    resource: change.resource.clone(),
                    edit: Edit::RemovedUser,
                });
            }
        }
        let Some(detail) = live.details.get(&live_tenant.row.id) else { continue };
        let mut created: Vec<_> = (detail.users.iter())
            .filter(|(email, row)| {
                row.managed_by == ManagedBy::Api && !desired.users.iter().any(|u| u.email.as_str() == email.as_str())
            })
            .collect();
        created.sort_by(|a, b| a.0.cmp(b.0));
        for (email, row) in created {
            let mut item = vec![("email".to_owned(), Value::String(email.clone()))];
            if let Some(name) = row.fields.get("name").filter(|n| !n.is_null()) {
                item.push(("name".to_owned(), name.clone()));
            }
            item.push(("role".to_owned(), row.fields.get("role").cloned().unwrap_or_default()));
            if row.fields.get("enabled") == Some(&Value::Bool(false)) {
                item.push(("status".to_owned(), "disabled".into()));
            }
            let resource = Resource::User { tenant: t.name.clone(), email: email.clone() };
            out.push(Adoption { file: file.to_owned(), resource, edit: Edit::AddUser { item } });
        }
    }
    out
}

/// Makes `adoptions` (all of one file) in `text`: field edits first, new list items after them.
pub fn adopt_file(text: &str, adoptions: Vec<Adoption>) -> (String, Vec<Outcome>) {
    let mut text = text.to_owned();
    let mut outcomes = Vec::with_capacity(adoptions.len());
    let (mut fields, items): (Vec<_>, Vec<_>) =
        adoptions.into_iter().partition(|a| matches!(a.edit, Edit::Field { .. } | Edit::RemovedUser));
    fields.extend(items);
    for adoption in fields {
        let result = match adopt_one(&text, &adoption) {
            Ok((edited, line)) => {
                text = edited;
                Ok(line)
            }
            Err(todo) => Err(todo),
        };
        outcomes.push(Outcome { adoption, result });
    }
    (text, outcomes)
}

/// The edited text and the line of the edit.
fn adopt_one(text: &str, adoption: &Adoption) -> Result<(String, usize), ByHand> {
    let index = PositionIndex::build(text);
    let (kind, name) = match &adoption.resource {
        Resource::Plan { name } => ("Plan", name),
        Resource::Application { name } => ("Application", name),
        Resource::Tenant { name } | Resource::User { tenant: name, .. } | Resource::Flag { tenant: name, .. } => {
            ("Tenant", name)
        }
    };
    let document = index
        .document_of(kind, name)
        .ok_or_else(|| ByHand(format!("{kind} `{name}` is not declared in {}", adoption.file)))?;
    let line = |path: &str| index.locate(document, path).map_or(0, |p| p.line);
    match (&adoption.edit, &adoption.resource) {
        (Edit::AddUser { item }, _) => {
            let edited = rewrite::add_item(text, document, "spec.users", item)?;
            let users = match index.node(document, "spec.users").map(|n| &n.kind) {
                Some(NodeKind::Sequence { items, .. }) => *items,
                _ => 0,
            };
            // The new item's line is the one after the last one written before.
            let at =
                PositionIndex::build(&edited).locate(document, &format!("spec.users[{users}]")).map_or(0, |p| p.line);
            Ok((edited, at))
        }
        (Edit::RemovedUser, Resource::User { email, .. }) => {
            let path = user_path(&index, document, email).unwrap_or_else(|| "spec.users".into());
            let at = line(&path);
            let written = text.lines().nth(at.saturating_sub(1)).unwrap_or_default().trim();
            Err(ByHand(format!(
                "line {at}: {email} was deleted outside Git; to adopt that, remove `{written}` by hand (or run apply to recreate the user)"
            )))
        }
        (Edit::Field { field, applied, live }, resource) => {
            let (path, applied, live) = match resource {
                Resource::User { email, .. } => {
                    let user = user_path(&index, document, email)
                        .ok_or_else(|| ByHand(format!("user {email} is not in the file's `spec.users`")))?;
                    match *field {
                        "enabled" => (format!("{user}.status"), user_status(applied), user_status(live)),
                        other => (format!("{user}.{other}"), applied.clone(), live.clone()),
                    }
                }
                Resource::Flag { key, .. } => (format!("spec.flags.{key}"), applied.clone(), live.clone()),
                _ => (format!("spec.{field}"), applied.clone(), live.clone()),
            };
            let edited = rewrite::set(text, document, &path, &applied, &live)?;
            // Where the value is now (a removed key: where its mapping is).
            let at = PositionIndex::build(&edited).locate(document, &path).map_or(0, |p| p.line);
            Ok((edited, at))
        }
        (Edit::RemovedUser, _) => Err(ByHand("only users are adopted as removed".into())),
    }
}

/// `spec.users[i]` of the user with `email` (any case), as the file lists them.
pub fn user_path(index: &PositionIndex, document: usize, email: &str) -> Option<String> {
    let Some(NodeKind::Sequence { items, .. }) = index.node(document, "spec.users").map(|n| &n.kind) else {
        return None;
    };
    (0..*items).map(|i| format!("spec.users[{i}]")).find(|path| {
        matches!(index.node(document, &format!("{path}.email")).map(|n| &n.kind),
            Some(NodeKind::Scalar { value, .. }) if value.eq_ignore_ascii_case(email))
    })
}

/// A user's `enabled` field as the file writes it.
fn user_status(enabled: &Value) -> Value {
    Value::String(if enabled == &Value::Bool(false) { "disabled" } else { "active" }.to_owned())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const FILE: &str = "\
apiVersion: gatehouse.dev/v1
kind: Tenant
metadata:
  name: acme
spec:
  displayName: Acme Corp
  plan: pro
  users:
    - { email: alice@acme.example, role: owner }
    - { email: carol@acme.example, role: admin }
  flags:
    max_projects: 1000
";

    fn field(resource: Resource, field: &'static str, applied: Value, live: Value) -> Adoption {
        Adoption { file: "tenants/acme.yaml".into(), resource, edit: Edit::Field { field, applied, live } }
    }

    #[test]
    fn drifted_user_and_flag_fields_are_written_on_their_own_lines() {
        // Issue 15.6
        let carol = Resource::User { tenant: "acme".into(), email: "carol@acme.example".into() };
        let flag = Resource::Flag { tenant: "acme".into(), key: "max_projects".into() };
        let (text, outcomes) = adopt_file(
            FILE,
            vec![
                field(carol.clone(), "role", json!("admin"), json!("user")),
                field(carol, "enabled", json!(true), json!(false)),
                field(flag, "value", json!(1000), json!(7)),
            ],
        );
        let lines: Vec<usize> = outcomes.iter().map(|o| *o.result.as_ref().expect("adopted")).collect();
        assert_eq!(lines, [10, 10, 12]);
        assert_eq!(
            text,
            FILE.replace("carol@acme.example, role: admin }", "carol@acme.example, role: user, status: disabled }")
                .replace("max_projects: 1000", "max_projects: 7")
        );
    }

    #[test]
    fn a_user_created_outside_git_becomes_a_line_like_its_siblings_and_a_deleted_one_is_left_by_hand() {
        let dan = Resource::User { tenant: "acme".into(), email: "dan@acme.example".into() };
        let item = vec![("email".to_owned(), json!("dan@acme.example")), ("role".to_owned(), json!("user"))];
        let alice = Resource::User { tenant: "acme".into(), email: "alice@acme.example".into() };
        let (text, outcomes) = adopt_file(
            FILE,
            vec![
                Adoption { file: "f".into(), resource: dan, edit: Edit::AddUser { item } },
                Adoption { file: "f".into(), resource: alice, edit: Edit::RemovedUser },
            ],
        );
        assert!(text.contains("role: admin }\n    - { email: dan@acme.example, role: user }\n  flags:"), "{text}");
        let by_hand = outcomes.iter().find_map(|o| o.result.as_ref().err()).expect("the deletion is by hand");
        assert!(by_hand.0.contains("line 9") && by_hand.0.contains("`- { email: alice@acme.example, role: owner }`"));
        assert_eq!(outcomes.iter().find_map(|o| o.result.as_ref().ok()), Some(&11));
    }
}
