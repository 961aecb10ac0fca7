//! Semantic checks: raw documents → the typed `DesiredState`, with every problem of the repository
//! reported at once, each located by file, line, column and field path.
//!
//! A resource with any problem is left out of the desired state and named in `Validated::problems`,
//! so that `apply` keeps its last good state while every valid resource converges.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rayon::prelude::*;

use super::diagnostic::{Diagnostic, Subject};
use super::document::{BudgetSpec, Document, InteractiveEdits, OidcClientSpec, RawFlagValue, SsoSpec};
use super::load::{Loaded, ParsedDocument};
use super::position::PositionIndex;
use crate::model::{
    AppName, Application, Budget, DesiredState, Email, FlagKey, FlagType, FlagValue, OidcClient, Plan, PlanName, Role,
    SecretRef, Sso, SyncPolicy, Tenant, TenantName, TenantStatus, User, UserStatus, WriteBackMode,
};

#[derive(Debug, Default)]
pub struct Validated {
    pub desired: DesiredState,
    /// Every problem, each with the resource it holds back, sorted by file and position.
    pub problems: Vec<(Subject, Diagnostic)>,
    pub files_read: usize,
}

impl Validated {
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        self.problems.iter().map(|(_, d)| d.clone()).collect()
    }

    pub fn is_valid(&self) -> bool {
        self.problems.is_empty()
    }

    /// The problems that hold back tenant `name`.
    pub fn tenant_problems(&self, name: &str) -> Vec<&Diagnostic> {
        self.problems.iter().filter(|(s, _)| matches!(s, Subject::Tenant(n) if n == name)).map(|(_, d)| d).collect()
    }

    /// Whether a live resource must be kept as it is: its declaration is invalid, or it was last
    /// declared in a file that could not be read far enough to tell.
    pub fn holds_back(&self, subject: &Subject, source_file: Option<&str>) -> bool {
        self.problems
            .iter()
            .any(|(s, _)| s == subject || matches!((s, source_file), (Subject::File(f), Some(src)) if f == src))
    }
}

/// Checks every parsed document and builds the desired state from the valid ones.
pub fn validate(loaded: Loaded) -> Validated {
    let mut checker = Checker { loaded: &loaded, pending: Vec::new() };
    let plans = checker.plans();
    let applications = checker.applications();
    let tenants = checker.tenants(&plans, &applications);

    let mut problems = loaded.problems.clone();
    problems.extend(checker.locate());
    problems.sort_by(|a, b| a.1.cmp(&b.1));
    problems.dedup();
    let invalid: BTreeSet<&Subject> = problems.iter().map(|(s, _)| s).collect();
    let keep = |subject: Subject| !invalid.contains(&subject);

    let desired = DesiredState {
        plans: plans
            .into_values()
            .filter_map(|c| c.parsed.filter(|_| c.valid))
            .filter(|p| keep(Subject::Plan(p.name.to_string())))
            .collect(),
        applications: applications
            .into_values()
            .filter_map(|c| c.parsed.filter(|_| c.valid))
            .filter(|a| keep(Subject::Application(a.name.to_string())))
            .collect(),
        tenants: tenants.into_iter().filter(|t| keep(Subject::Tenant(t.name.to_string()))).collect(),
    };
    let files_read = loaded.files.len();
    // Freeing a large repository's parsed documents (a million small strings) takes longer than
    // validating them; nothing waits for it, so it happens beside the rest of the pipeline.
    std::thread::spawn(move || drop(loaded));
    Validated { desired, problems, files_read }
}

/// A problem whose line and column are looked up at the end, only for files that have problems.
struct Pending {
    subject: Subject,
    file: usize,
    document: usize,
    path: String,
    message: String,
}

/// A tenant document checked on its own: the tenant if valid, its emails with their index, its problems.
type CheckedTenant<'a> = (&'a ParsedDocument, Option<Tenant>, Vec<(usize, Email)>, Vec<Pending>);

/// What a plan or application name resolves to.
struct Candidate<T> {
    file: usize,
    /// Built from the valid parts of the declaration even when it has problems, so that what depends
    /// on it is still checked (a tenant's flags against its plan's); `None` when its name is invalid.
    parsed: Option<T>,
    /// Whether the declaration has no problem; only then can a dependent be applied.
    valid: bool,
    /// Flags whose declaration has a problem: a dependent's value for them cannot be checked.
    doubtful_flags: BTreeSet<String>,
    /// The whole `spec.flags` could not be read: no flag can be checked against it.
    flags_unreadable: bool,
}

impl<T> Candidate<T> {
    fn usable(&self) -> Option<&T> {
        self.parsed.as_ref().filter(|_| self.valid)
    }
}

struct Checker<'a> {
    loaded: &'a Loaded,
    pending: Vec<Pending>,
}

impl<'a> Checker<'a> {
    fn report(&mut self, doc: &ParsedDocument, subject: &Subject, path: impl Into<String>, message: impl Into<String>) {
        let path = path.into();
        // A document with parts taken out (see `recover`) numbers its list items as in the file.
        let path = if doc.removed.is_empty() { path } else { doc.removed.original_path(&path) };
        self.pending.push(Pending {
            subject: subject.clone(),
            file: doc.file,
            document: doc.index,
            path,
            message: message.into(),
        });
    }

    /// The file of a resource whose document had problems too severe to type it (found by the loader).
    fn unreadable(&self, subject: &Subject) -> Option<&'a str> {
        self.loaded.problems.iter().find(|(s, _)| s == subject).map(|(_, d)| d.file.as_str())
    }

    fn file(&self, doc: &ParsedDocument) -> &'a str {
        &self.loaded.files[doc.file].path
    }

    fn problem_count(&self) -> usize {
        self.pending.len()
    }

    fn of_kind(&self, pick: fn(&Document) -> bool) -> Vec<&'a ParsedDocument> {
        self.loaded.documents.iter().filter(|d| pick(&d.document)).collect()
    }

    /// Checks a resource's name and that no earlier document of the same kind took it.
    fn name<N>(
        &mut self,
        doc: &ParsedDocument,
        subject: &Subject,
        parse: fn(&str) -> Result<N, crate::model::NameError>,
        seen: &mut HashMap<String, usize>,
    ) -> Option<N> {
        let parsed = parse(doc.document.name()).map_err(|e| self.report(doc, subject, "metadata.name", e.0)).ok();
        self.unique_name(doc, subject, seen);
        parsed
    }

    fn unique_name(&mut self, doc: &ParsedDocument, subject: &Subject, seen: &mut HashMap<String, usize>) {
        let raw = doc.document.name();
        if let Some(first) = seen.get(raw) {
            let first = &self.loaded.files[*first].path;
            let kind = doc.document.kind().as_str();
            let message = format!("{kind} `{raw}` is declared twice (also in {first}); names must be unique");
            self.report(doc, subject, "metadata.name", message);
        } else {
            seen.insert(raw.to_owned(), doc.file);
        }
    }

    fn display_name(&mut self, doc: &ParsedDocument, subject: &Subject, path: &str, value: &str) {
        if value.trim().is_empty() || value.chars().count() > 200 {
            self.report(doc, subject, path, "must be 1 to 200 characters");
        }
    }

    fn budget(&mut self, doc: &ParsedDocument, subject: &Subject, spec: Option<&BudgetSpec>) -> Option<Budget> {
        let spec = spec?;
        if spec.monthly_limit <= 0 {
            self.report(
                doc,
                subject,
                "spec.budget.monthlyLimit",
                format!("must be greater than 0, not {}", spec.monthly_limit),
            );
        }
        let mut previous = 0;
        for (i, percent) in spec.warn_at.iter().enumerate() {
            if !(1..=99).contains(percent) || *percent <= previous {
                self.report(
                    doc,
                    subject,
                    format!("spec.budget.warnAt[{i}]"),
                    format!("{percent} is not allowed: warnAt lists percentages from 1 to 99 in increasing order, such as [75, 90]"),
                );
            }
            previous = *percent;
        }
        let mut event_types: Vec<String> = spec.event_types.clone().unwrap_or_default();
        for (i, kind) in event_types.iter().enumerate() {
            if kind.is_empty() || kind.len() > 256 || kind.chars().any(char::is_control) {
                self.report(
                    doc,
                    subject,
                    format!("spec.budget.eventTypes[{i}]"),
                    "an event type is 1 to 256 characters, as applications send it in `type`".to_owned(),
                );
            }
        }
        if spec.event_types.as_ref().is_some_and(Vec::is_empty) {
            self.report(
                doc,
                subject,
                "spec.budget.eventTypes",
                "is empty, so the budget would count nothing: list event types, or leave it out to count every type"
                    .to_owned(),
            );
        }
        event_types.sort();
        event_types.dedup();
        Some(Budget {
            monthly_limit: spec.monthly_limit.max(0).unsigned_abs(),
            on_limit: spec.on_limit,
            warn_at: spec.warn_at.iter().map(|p| (*p).clamp(0, 100) as u8).collect(),
            event_types,
        })
    }

    /// Parses flag keys and types of one document's `spec.flags`.
    fn flags(
        &mut self,
        doc: &ParsedDocument,
        subject: &Subject,
        flags: &BTreeMap<String, RawFlagValue>,
    ) -> Vec<(FlagKey, FlagType, serde_json::Value)> {
        let mut out = Vec::new();
        for (key, RawFlagValue(value)) in flags {
            let path = format!("spec.flags.{key}");
            let parsed_key = FlagKey::parse(key).map_err(|e| self.report(doc, subject, &path, e.0)).ok();
            let flag_type = FlagType::of(value);
            if flag_type.is_none() {
                self.report(
                    doc,
                    subject,
                    &path,
                    "a flag value is a boolean, integer, number, string or object; not null or a list",
                );
            }
            if let (Some(key), Some(flag_type)) = (parsed_key, flag_type) {
                out.push((key, flag_type, value.clone()));
            }
        }
        out
    }

    fn plans(&mut self) -> BTreeMap<String, Candidate<Plan>> {
        let mut seen = HashMap::new();
        let mut flag_types: HashMap<FlagKey, (FlagType, String)> = HashMap::new();
        let mut parsed = Vec::new();
        for doc in self.of_kind(|d| matches!(d, Document::Plan { .. })) {
            let Document::Plan { metadata, spec } = &*doc.document else {
                continue;
            };
            let subject = Subject::Plan(metadata.name.clone());
            let before = self.problem_count();
            let name = self.name(doc, &subject, PlanName::parse, &mut seen);
            if let Some(display_name) = &spec.display_name {
                self.display_name(doc, &subject, "spec.displayName", display_name);
            }
            let budget = self.budget(doc, &subject, spec.budget.as_ref());
            let flags = self.flags(doc, &subject, &spec.flags);
            for (key, flag_type, _) in &flags {
                match flag_types.get_mut(key) {
                    None => {
                        flag_types.insert(key.clone(), (*flag_type, metadata.name.clone()));
                    }
                    Some((known, _)) if known.accepts(*flag_type) => {}
                    Some((known, _)) if flag_type.accepts(*known) => *known = *flag_type,
                    Some((known, other)) => {
                        let message = format!(
                            "flag `{key}` is {flag_type} here but {known} in plan `{other}`; a flag has one type in every plan and tenant"
                        );
                        self.report(doc, &subject, format!("spec.flags.{key}"), message);
                    }
                }
            }
            let ok = self.problem_count() == before && doc.removed.is_empty();
            let doubtful: BTreeSet<String> = self.pending[before..]
                .iter()
                .filter_map(|p| p.path.strip_prefix("spec.flags."))
                .map(str::to_owned)
                .collect();
            parsed.push((doc, metadata.name.clone(), name, ok, doubtful, spec, budget, flags));
        }
        let mut plans = BTreeMap::new();
        for (doc, raw_name, name, ok, doubtful_flags, spec, budget, flags) in parsed {
            let plan = name.map(|name| Plan {
                name,
                display_name: spec.display_name.clone(),
                flags: flags
                    .into_iter()
                    .filter_map(|(key, _, value)| {
                        let flag_type = flag_types.get(&key)?.0;
                        Some((key, FlagValue::typed(flag_type, value)?))
                    })
                    .collect(),
                budget,
                source: self.file(doc).to_owned(),
            });
            let flags_unreadable = doc.removed.touches("spec.flags");
            let candidate = Candidate { file: doc.file, parsed: plan, valid: ok, doubtful_flags, flags_unreadable };
            plans.entry(raw_name).or_insert(candidate);
        }
        plans
    }

    fn applications(&mut self) -> BTreeMap<String, Candidate<Application>> {
        let mut seen = HashMap::new();
        let mut applications = BTreeMap::new();
        for doc in self.of_kind(|d| matches!(d, Document::Application { .. })) {
            let Document::Application { metadata, spec } = &*doc.document else {
                continue;
            };
            let subject = Subject::Application(metadata.name.clone());
            let before = self.problem_count();
            let name = self.name(doc, &subject, AppName::parse, &mut seen);
            self.display_name(doc, &subject, "spec.displayName", &spec.display_name);
            let owner = Email::parse(&spec.owner).map_err(|e| self.report(doc, &subject, "spec.owner", e.0)).ok();
            let oidc = spec.oidc.as_ref().map(|oidc| self.oidc_client(doc, &subject, oidc));
            let ok = self.problem_count() == before && doc.removed.is_empty();
            let parsed = match (name, owner) {
                (Some(name), Some(owner)) => {
                    let scopes: BTreeSet<_> = spec.scopes.iter().copied().collect();
                    Some(Application {
                        name,
                        display_name: spec.display_name.clone(),
                        owner,
                        status: spec.status,
                        scopes: scopes.into_iter().collect(),
                        oidc,
                        source: self.file(doc).to_owned(),
                    })
                }
                _ => None,
            };
            let candidate = Candidate {
                file: doc.file,
                parsed,
                valid: ok,
                doubtful_flags: BTreeSet::new(),
                flags_unreadable: false,
            };
            applications.entry(metadata.name.clone()).or_insert(candidate);
        }
        applications
    }

    fn oidc_client(&mut self, doc: &ParsedDocument, subject: &Subject, spec: &OidcClientSpec) -> OidcClient {
        if spec.redirect_uris.is_empty() {
            self.report(doc, subject, "spec.oidc.redirectUris", "list at least one redirect URI");
        }
        let lists =
            [("redirectUris", &spec.redirect_uris), ("postLogoutRedirectUris", &spec.post_logout_redirect_uris)];
        for (field, uris) in lists {
            for (i, uri) in uris.iter().enumerate() {
                if let Err(problem) = crate::model::check_redirect_uri(uri) {
                    self.report(doc, subject, format!("spec.oidc.{field}[{i}]"), problem);
                }
            }
        }
        OidcClient {
            client_type: spec.client_type,
            redirect_uris: spec.redirect_uris.clone(),
            post_logout_redirect_uris: spec.post_logout_redirect_uris.clone(),
            id_token_signed_response_alg: spec.id_token_signed_response_alg,
        }
    }

    fn sso(&mut self, doc: &ParsedDocument, subject: &Subject, spec: Option<&SsoSpec>) -> Option<Sso> {
        let spec = spec?;
        let host = spec.issuer.strip_prefix("https://").unwrap_or_default();
        if host.is_empty() || host.starts_with('/') || spec.issuer.contains(char::is_whitespace) {
            self.report(
                doc,
                subject,
                "spec.sso.issuer",
                format!("`{}` is not an https URL; OIDC issuers must use https", spec.issuer),
            );
        }
        if spec.client_id.trim().is_empty() {
            self.report(doc, subject, "spec.sso.clientId", "must not be empty");
        }
        let env = &spec.client_secret_ref.env;
        let env_ok = env.chars().next().is_some_and(|c| c.is_ascii_uppercase() || c == '_')
            && env.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if !env_ok {
            self.report(
                doc,
                subject,
                "spec.sso.clientSecretRef.env",
                format!("`{env}` is not an environment variable name: use A-Z, 0-9 and '_'"),
            );
        }
        let mut domains = std::collections::BTreeSet::new();
        for (i, domain) in spec.domains.iter().enumerate() {
            let domain = domain.trim().to_lowercase();
            if Email::parse(&format!("someone@{domain}")).is_err() || !domain.contains('.') {
                self.report(
                    doc,
                    subject,
                    format!("spec.sso.domains[{i}]"),
                    format!("`{domain}` is not an email domain"),
                );
            }
            domains.insert(domain);
        }
        if spec.jit_role == Some(Role::Owner) {
            self.report(
                doc,
                subject,
                "spec.sso.jitRole",
                "users made just in time are `admin` or `user`, never `owner`",
            );
        }
        Some(Sso {
            issuer: spec.issuer.trim_end_matches('/').to_owned(),
            client_id: spec.client_id.clone(),
            client_secret_ref: SecretRef { env: env.clone() },
            domains: domains.into_iter().collect(),
            mandatory: spec.mandatory,
            jit_role: spec.jit_role,
        })
    }

    /// Tenants are checked one document at a time in parallel (everything a document can say about
    /// itself), then together for what spans documents: unique names and unique emails.
    fn tenants(
        &mut self,
        plans: &BTreeMap<String, Candidate<Plan>>,
        applications: &BTreeMap<String, Candidate<Application>>,
    ) -> Vec<Tenant> {
        let loaded = self.loaded;
        let checked: Vec<CheckedTenant> = self
            .of_kind(|d| matches!(d, Document::Tenant { .. }))
            .into_par_iter()
            .map(|doc| {
                let mut local = Checker { loaded, pending: Vec::new() };
                let (tenant, emails) = local.tenant(doc, plans, applications);
                (doc, tenant, emails, local.pending)
            })
            .collect();

        let mut seen = HashMap::new();
        let mut owners: HashMap<Email, (&str, usize)> = HashMap::new();
        let mut tenants = Vec::new();
        for (doc, tenant, emails, pending) in checked {
            let name = doc.document.name();
            let subject = Subject::Tenant(name.to_owned());
            let mut valid = pending.is_empty();
            self.pending.extend(pending);
            let before = self.problem_count();
            self.unique_name(doc, &subject, &mut seen);
            for (i, email) in emails {
                if let Some((other, file)) = owners.get(&email) {
                    let owner = if *other == name { "this tenant".to_owned() } else { format!("tenant `{other}`") };
                    let file = &self.loaded.files[*file].path;
                    let message =
                        format!("{email} is already a user of {owner} ({file}); an email belongs to one user");
                    self.report(doc, &subject, format!("spec.users[{i}].email"), message);
                } else {
                    owners.insert(email, (name, doc.file));
                }
            }
            valid &= self.problem_count() == before;
            if let Some(tenant) = tenant.filter(|_| valid) {
                tenants.push(tenant);
            }
        }
        tenants.sort_by(|a, b| a.name.cmp(&b.name));
        tenants
    }

    /// Checks one tenant document on its own; returns the tenant when it has no problem, and the
    /// emails it declares (with their index in `spec.users`) for the repository-wide check.
    fn tenant(
        &mut self,
        doc: &ParsedDocument,
        plans: &BTreeMap<String, Candidate<Plan>>,
        applications: &BTreeMap<String, Candidate<Application>>,
    ) -> (Option<Tenant>, Vec<(usize, Email)>) {
        let Document::Tenant { metadata, spec } = &*doc.document else { return (None, Vec::new()) };
        let subject = Subject::Tenant(metadata.name.clone());
        let name = TenantName::parse(&metadata.name).map_err(|e| self.report(doc, &subject, "metadata.name", e.0)).ok();
        self.display_name(doc, &subject, "spec.displayName", &spec.display_name);

        // A plan with problems holds its tenants back, but their own problems are still reported:
        // they are checked against what the plan declares validly.
        let candidate = plans.get(&spec.plan);
        let plan = match candidate {
            Some(candidate) if candidate.usable().is_some() => candidate.usable(),
            Some(Candidate { file, .. }) => {
                let file = &self.loaded.files[*file].path;
                let message = format!("plan `{}` has problems (see {file}); fix them first", spec.plan);
                self.report(doc, &subject, "spec.plan", message);
                None
            }
            None if self.unreadable(&Subject::Plan(spec.plan.clone())).is_some() => {
                let file = self.unreadable(&Subject::Plan(spec.plan.clone())).unwrap_or_default();
                let message = format!("plan `{}` has problems (see {file}); fix them first", spec.plan);
                self.report(doc, &subject, "spec.plan", message);
                None
            }
            None => {
                let known: Vec<&str> = plans.keys().map(String::as_str).collect();
                let message = format!("plan `{}` is not declared; declared plans: {}", spec.plan, known.join(", "));
                self.report(doc, &subject, "spec.plan", message);
                None
            }
        };

        let mut app_names = BTreeSet::new();
        for (i, app) in spec.applications.iter().enumerate() {
            let path = format!("spec.applications[{i}]");
            match applications.get(app) {
                Some(candidate) if candidate.usable().is_some() => {
                    app_names.extend(candidate.usable().map(|a| a.name.clone()));
                }
                Some(_) => {
                    self.report(doc, &subject, path, format!("application `{app}` has problems; fix them first"))
                }
                None if self.unreadable(&Subject::Application(app.clone())).is_some() => {
                    self.report(doc, &subject, path, format!("application `{app}` has problems; fix them first"))
                }
                None => self.report(doc, &subject, path, format!("application `{app}` is not declared")),
            }
        }

        let budget = self.budget(doc, &subject, spec.budget.as_ref());
        if spec.sync.write_back.is_some() && !matches!(spec.sync.interactive_edits, Some(InteractiveEdits::Written(_)))
        {
            self.report(
                doc,
                &subject,
                "spec.sync.writeBack",
                "`writeBack` applies only with `interactiveEdits: writeBack`; set that too, or remove `writeBack`",
            );
        }
        let sso = self.sso(doc, &subject, spec.sso.as_ref());
        let (users, emails) = self.users(doc, &subject, &metadata.name, spec);
        let flags = match candidate {
            Some(c @ Candidate { parsed: Some(declared), flags_unreadable: false, .. }) => {
                self.tenant_flags(doc, &subject, declared, &c.doubtful_flags, &spec.flags)
            }
            // Without a plan to check them against, the values are still checked for a type.
            _ => {
                self.flags(doc, &subject, &spec.flags);
                BTreeMap::new()
            }
        };

        let tenant = match (name, plan) {
            (Some(name), Some(plan)) if self.pending.is_empty() && doc.removed.is_empty() => Some(Tenant {
                name,
                display_name: spec.display_name.clone(),
                plan: plan.name.clone(),
                status: spec.status,
                sync: SyncPolicy {
                    self_heal: spec.sync.self_heal.unwrap_or(true),
                    prune: spec.sync.prune.unwrap_or(true),
                    interactive_edits: spec.sync.interactive_edits == Some(InteractiveEdits::Allowed(true)),
                    write_back: matches!(spec.sync.interactive_edits, Some(InteractiveEdits::Written(_)))
                        .then(|| spec.sync.write_back.unwrap_or(WriteBackMode::Direct)),
                },
                budget,
                sso,
                applications: app_names.into_iter().collect(),
                users,
                flags,
                source: self.file(doc).to_owned(),
            }),
            _ => None,
        };
        (tenant, emails)
    }

    /// A tenant's flag overrides, each declared by its plan and of the plan's type. Flags whose
    /// declaration in the plan has a problem (`doubtful`) are left to that problem.
    fn tenant_flags(
        &mut self,
        doc: &ParsedDocument,
        subject: &Subject,
        plan: &Plan,
        doubtful: &BTreeSet<String>,
        raw: &BTreeMap<String, RawFlagValue>,
    ) -> BTreeMap<FlagKey, FlagValue> {
        let mut flags = BTreeMap::new();
        for (key, own_type, value) in self.flags(doc, subject, raw) {
            if doubtful.contains(key.as_str()) {
                continue;
            }
            let path = format!("spec.flags.{key}");
            let Some(default) = plan.flags.get(&key) else {
                let message =
                    format!("flag `{key}` is not declared by plan `{}`; add a default there first", plan.name);
                self.report(doc, subject, path, message);
                continue;
            };
            let expected = default.flag_type();
            match FlagValue::typed(expected, value) {
                Some(typed) => {
                    flags.insert(key, typed);
                }
                None => {
                    let message = format!(
                        "flag `{key}` is {expected} in plan `{}`, so this value must be {expected} too, not {own_type}",
                        plan.name
                    );
                    self.report(doc, subject, path, message);
                }
            }
        }
        flags
    }

    fn users(
        &mut self,
        doc: &ParsedDocument,
        subject: &Subject,
        tenant: &str,
        spec: &super::document::TenantSpec,
    ) -> (Vec<User>, Vec<(usize, Email)>) {
        let mut users = Vec::with_capacity(spec.users.len());
        let mut emails = Vec::with_capacity(spec.users.len());
        for (i, user) in spec.users.iter().enumerate() {
            let path = format!("spec.users[{i}]");
            if let Some(name) = &user.name {
                self.display_name(doc, subject, &format!("{path}.name"), name);
            }
            match Email::parse(&user.email) {
                Ok(email) => {
                    emails.push((i, email.clone()));
                    users.push(User { email, name: user.name.clone(), role: user.role, status: user.status });
                }
                Err(e) => self.report(doc, subject, format!("{path}.email"), e.0),
            }
        }
        let has_owner = users.iter().any(|u| u.role == Role::Owner && u.status == UserStatus::Active);
        // With a user or the status taken out for a problem of its own, whether an owner is missing
        // cannot be told: that user may be the owner.
        let complete = !doc.removed.touches("spec.users") && !doc.removed.touches("spec.status");
        if spec.status == TenantStatus::Active && !has_owner && complete {
            let path = if spec.users.is_empty() { "spec" } else { "spec.users" };
            let message =
                format!("active tenant `{tenant}` has no active owner: give at least one active user `role: owner`");
            self.report(doc, subject, path, message);
        }
        users.sort_by(|a, b| a.email.cmp(&b.email));
        (users, emails)
    }

    /// Resolves positions, building each file's index once and only for files with problems.
    fn locate(&mut self) -> Vec<(Subject, Diagnostic)> {
        let mut indexes: HashMap<usize, PositionIndex> = HashMap::new();
        std::mem::take(&mut self.pending)
            .into_iter()
            .map(|p| {
                let file = &self.loaded.files[p.file];
                let index = indexes.entry(p.file).or_insert_with(|| PositionIndex::build(&file.text));
                let position = index.locate(p.document, &p.path);
                let (line, column) = position.map_or((1, 1), |pos| (pos.line, pos.column));
                let diagnostic = Diagnostic { file: file.path.clone(), line, column, path: p.path, message: p.message };
                (p.subject, diagnostic)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load::{SourceFile, parse_files};

    const PLAN: &str = "apiVersion: gatehouse.dev/v1\nkind: Plan\nmetadata: { name: pro }\nspec:\n  flags: { ai: false, seats: 10, ratio: 0.5 }\n";

    fn tenant(name: &str, extra: &str) -> String {
        format!(
            "apiVersion: gatehouse.dev/v1\nkind: Tenant\nmetadata: {{ name: {name} }}\nspec:\n  displayName: {name}\n  plan: pro\n  users:\n    - {{ email: owner@{name}.example, role: owner }}\n{extra}"
        )
    }

    fn check(files: &[(&str, &str)]) -> Validated {
        let files =
            files.iter().map(|(path, text)| SourceFile { path: (*path).into(), text: (*text).into() }).collect();
        validate(parse_files(files))
    }

    fn lines(validated: &Validated) -> Vec<String> {
        validated.diagnostics().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_valid_repo_becomes_the_desired_state_with_typed_flags() {
        let acme = tenant("acme", "  flags: { ratio: 2 }\n");
        let validated = check(&[("plan.yaml", PLAN), ("acme.yaml", &acme)]);
        assert!(validated.is_valid(), "{:?}", lines(&validated));
        let acme = &validated.desired.tenants[0];
        assert_eq!(acme.name.as_str(), "acme");
        let ratio = acme.flags.values().next().map(|v| v.as_json().clone());
        assert_eq!(ratio, Some(serde_json::json!(2.0)), "an integer for a number flag is widened");
    }

    // Issue 15.1: an unknown field no longer hides the other problems of its document.
    #[test]
    fn an_unknown_field_does_not_hide_a_duplicate_email_or_a_wrong_flag_type_of_the_same_tenant() {
        let acme = tenant(
            "acme",
            "    - { email: Owner@Acme.example, role: user }\n  colour: blue\n  flags: { seats: \"many\" }\n",
        );
        let validated = check(&[("plan.yaml", PLAN), ("acme.yaml", &acme)]);
        let found = lines(&validated);
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(
            found[0].starts_with("acme.yaml:9:16: spec.users[1].email: owner@acme.example is already a user"),
            "{found:#?}"
        );
        assert!(found[1].starts_with("acme.yaml:10:3: spec: unknown field `colour`"), "{found:#?}");
        assert!(
            found[2].starts_with("acme.yaml:11:19: spec.flags.seats: flag `seats` is integer in plan `pro`"),
            "{found:#?}"
        );
        assert!(validated.desired.tenants.is_empty(), "a tenant with problems is held back");
        assert_eq!(validated.tenant_problems("acme").len(), 3);
    }

    #[test]
    fn emails_of_a_tenant_with_a_structural_problem_still_count_for_uniqueness() {
        let acme = tenant("acme", "  colour: blue\n");
        let globex = tenant("globex", "    - { email: owner@acme.example, role: user }\n");
        let validated = check(&[("plan.yaml", PLAN), ("acme.yaml", &acme), ("globex.yaml", &globex)]);
        let found = lines(&validated);
        assert!(
            found.iter().any(|l| l.starts_with(
                "globex.yaml:9:16: spec.users[1].email: owner@acme.example is already a user of tenant `acme`"
            )),
            "{found:#?}"
        );
    }

    // Issue 15.1: a plan with problems does not hide its tenants' own problems.
    #[test]
    fn a_plan_with_problems_holds_its_tenants_back_and_their_own_problems_are_still_reported() {
        let plan = PLAN.replace("ratio: 0.5", "ratio: 0.5, regions: [eu]");
        let acme = tenant("acme", "  flags: { ai: \"yes\", regions: eu }\n");
        let validated = check(&[("plan.yaml", &plan), ("acme.yaml", &acme)]);
        let found = lines(&validated);
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(
            found[0].starts_with("acme.yaml:6:9: spec.plan: plan `pro` has problems (see plan.yaml)"),
            "{found:#?}"
        );
        assert!(
            found[1].starts_with("acme.yaml:9:16: spec.flags.ai: flag `ai` is boolean in plan `pro`"),
            "{found:#?}"
        );
        assert!(found[2].starts_with("plan.yaml:5:46: spec.flags.regions: a flag value is"), "{found:#?}");
        assert!(validated.desired.plans.is_empty() && validated.desired.tenants.is_empty());
    }

    #[test]
    fn a_user_taken_out_for_a_misspelt_field_is_not_reported_as_a_missing_owner() {
        let acme = "apiVersion: gatehouse.dev/v1\nkind: Tenant\nmetadata: { name: acme }\nspec:\n  displayName: Acme\n  plan: pro\n  users:\n    - { email: a@acme.example, rol: owner }\n";
        let validated = check(&[("plan.yaml", PLAN), ("acme.yaml", acme)]);
        let found = lines(&validated);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(found[0].starts_with("acme.yaml:8:32: spec.users[0]: unknown field `rol`"), "{found:#?}");
    }

    #[test]
    fn list_items_after_one_taken_out_are_reported_at_their_place_in_the_file() {
        let acme =
            tenant("acme", "    - { email: b@acme.example, role: boss }\n    - { email: not-an-email, role: user }\n");
        let validated = check(&[("plan.yaml", PLAN), ("acme.yaml", &acme)]);
        let found = lines(&validated);
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(found[0].starts_with("acme.yaml:9:38: spec.users[1].role: unknown variant `boss`"), "{found:#?}");
        assert!(
            found[1].starts_with("acme.yaml:10:16: spec.users[2].email: `not-an-email` is not a valid email"),
            "{found:#?}"
        );
    }

    #[test]
    fn a_plan_whose_document_cannot_be_typed_is_named_as_having_problems_not_as_undeclared() {
        let plan = PLAN.replace("metadata: { name: pro }", "metadata: { name: pro, owner: x }\nextra: 1");
        let validated = check(&[("plan.yaml", &plan), ("acme.yaml", &tenant("acme", ""))]);
        let found = lines(&validated);
        assert!(
            found.iter().any(|l| l.starts_with("acme.yaml:6:9: spec.plan: plan `pro` has problems (see plan.yaml)")),
            "{found:#?}"
        );
    }
}
