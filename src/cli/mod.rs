//! The command line: parses arguments, runs one pipeline, prints the result, picks the exit code.
//! The only place that uses `anyhow`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};

mod apps;
mod audit;
mod budget;
mod client;
mod drift;
mod identity;
mod oidc;
mod proposals;
pub mod serve;
mod status;
mod sync;
mod tenants;
mod usage;
mod users;

use crate::config::{self, DiagnosticFormat};
use crate::plan::Options;
use crate::plan::render::{self, PlanFormat};
use crate::reconcile::{self, TenantOutcome};
use crate::secret::Secret;
use crate::store;

/// Gatehouse: tenants, users, flags, plans and applications declared in Git, reconciled into PostgreSQL.
#[derive(Debug, Parser)]
#[command(version, about, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log output format (logs go to stderr).
    #[arg(long, global = true, env = "GATEHOUSE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

pub use crate::traces::LogFormat;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a config repository without touching any database. Exit 0 valid, 1 invalid, 2 could not run.
    Validate {
        /// The config repository (any directory of YAML files).
        #[arg(default_value = ".")]
        dir: PathBuf,
        #[command(flatten)]
        path: PathArg,
        #[arg(long, value_enum, default_value_t = DiagnosticFormat::Text)]
        format: DiagnosticFormat,
    },
    /// Show what `apply` would change, and the drift. Exit 0 no changes, 1 changes, 2 error.
    Plan {
        #[arg(default_value = ".")]
        dir: PathBuf,
        #[command(flatten)]
        path: PathArg,
        #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
        format: PlanFormat,
        /// Also save the plan to this file, with the config version and every tenant's live
        /// revision, for `apply --plan`.
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        apply: ApplyArgs,
    },
    /// Converge the database with the config repository. Exit 0 converged, 1 some tenants failed, 2 error.
    Apply {
        #[arg(default_value = ".")]
        dir: PathBuf,
        #[command(flatten)]
        path: PathArg,
        /// `json` prints the per-tenant report as JSON.
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
        /// Apply exactly this plan (saved by `plan --out`), or nothing: refused (exit 1) with the
        /// tenants that changed since, in Git or live.
        #[arg(long)]
        plan: Option<PathBuf>,
        #[command(flatten)]
        apply: ApplyArgs,
    },
    /// Write the JSON Schemas of the config format (editors and CI validate YAML with them).
    Schema {
        #[arg(long, default_value = "schemas")]
        out: PathBuf,
    },
    /// Write the OpenAPI 3.1 document of the HTTP API (the one `GET /openapi.json` serves).
    Openapi {
        #[arg(long, default_value = "openapi.json")]
        out: PathBuf,
    },
    /// Run the API and the reconciler: keep the database converged with the config repository.
    Serve(Box<serve::ServeArgs>),
    /// Ask a running server whether the platform is synced. Exit 0 synced, 1 not, 2 cannot ask.
    Status(status::StatusArgs),
    /// A running server's reconciler: allow a tenant's deletion once, the history of passes.
    Sync(sync::SyncArgs),
    /// Managed applications on a running server: list, show, create, update, disable, enable.
    Apps(apps::AppsArgs),
    /// API keys of an application on a running server: create, list, revoke, rotate.
    Keys(apps::KeysArgs),
    /// Tenants on a running server: list, show, create, update, suspend, restore, delete.
    Tenants(tenants::TenantsArgs),
    /// Changes written back to Git for review on a running server: list, show, withdraw.
    Proposals(proposals::ProposalsArgs),
    /// A tenant's users on a running server: list, show, invite, set-role, disable, enable, delete,
    /// end-sessions, resend-invitation, unlock.
    Users(users::UsersArgs),
    /// A tenant's budget: show, and overrides (request, approve, list).
    Budget(budget::BudgetArgs),
    /// The audit log: export (CSV or JSON).
    Audit(audit::AuditArgs),
    /// The usage applications reported: export (CSV or JSON) and totals.
    Usage(usage::UsageArgs),
    /// Resolve drift other than by reverting it: adopt live values into the config files, or allow a
    /// tenant's drift until a deadline.
    Drift {
        #[command(subcommand)]
        command: drift::DriftCommand,
    },
    /// The mail outbox (invitations, password resets), with the links of undelivered mail.
    Mail {
        #[command(subcommand)]
        command: MailCommand,
    },
    /// Create the database if needed and run the migrations.
    Migrate {
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum MailCommand {
    /// List the outbox, newest first.
    List(identity::MailArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct PathArg {
    /// The folder of the repository that holds the config (default: its root).
    #[arg(long, env = "GATEHOUSE_PATH", value_parser = crate::source::config_path)]
    pub path: Option<PathBuf>,
}

impl PathArg {
    /// The config folder of the repository at `dir`.
    fn config_dir(&self, dir: &Path) -> PathBuf {
        self.path.as_ref().map_or_else(|| dir.to_owned(), |path| dir.join(path))
    }
}

#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// PostgreSQL URL. `serve`, `apply` and `migrate` create the database if it does not exist;
    /// `plan` and `mail list` only read it.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/gatehouse",
        hide_env_values = true,
        value_parser = secret
    )]
    pub database_url: Secret,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Allow removing more than half of a tenant's users, or all of them (deleting a tenant): for
    /// every tenant, or with `=TENANT[,TENANT…]` only for those.
    #[arg(long, value_name = "TENANT", num_args = 0..=1, require_equals = true, value_delimiter = ',')]
    pub allow_mass_delete: Option<Vec<String>>,
}

impl ApplyArgs {
    /// The plan options and the tenants allowed their guarded change once.
    fn options(&self) -> (Options, BTreeSet<String>) {
        match &self.allow_mass_delete {
            None => (Options::default(), BTreeSet::new()),
            Some(tenants) if tenants.is_empty() => (Options { allow_mass_delete: true }, BTreeSet::new()),
            Some(tenants) => (Options::default(), tenants.iter().cloned().collect()),
        }
    }
}

fn secret(value: &str) -> Result<Secret, std::convert::Infallible> {
    Ok(Secret::new(value.to_owned()))
}

/// The log on stderr, and spans over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set; keep the
/// guard until the command ends.
pub fn init_tracing(format: LogFormat) -> crate::traces::Guard {
    crate::traces::init(format)
}

/// Runs a command and maps its result to the documented exit codes.
pub fn run(cli: Cli) -> ExitCode {
    match execute(cli.command) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn execute(command: Command) -> anyhow::Result<u8> {
    match command {
        Command::Validate { dir, path, format } => validate(&dir, path.path.as_deref(), format),
        Command::Schema { out } => write_schemas(&out),
        Command::Openapi { out } => {
            std::fs::write(&out, crate::api::openapi::document())
                .with_context(|| format!("cannot write {}", out.display()))?;
            println!("wrote {}", out.display());
            Ok(0)
        }
        Command::Plan { dir, path, format, out, apply } => {
            runtime()?.block_on(plan(&path.config_dir(&dir), format, out.as_deref(), &apply))
        }
        Command::Apply { dir, path, format, plan: Some(saved), apply: args } => {
            runtime()?.block_on(apply_saved(&path.config_dir(&dir), &saved, format, &args))
        }
        Command::Apply { dir, path, format, plan: None, apply: args } => {
            runtime()?.block_on(apply(&path.config_dir(&dir), format, &args))
        }
        Command::Apps(args) => apps::apps(args),
        Command::Keys(args) => apps::keys(args),
        Command::Proposals(args) => proposals::proposals(args),
        Command::Tenants(args) => tenants::tenants(args),
        Command::Users(args) => users::users(args),
        Command::Usage(args) => usage::usage(args),
        Command::Audit(args) => audit::audit(args),
        Command::Budget(args) => budget::budget(args),
        Command::Serve(args) => runtime()?.block_on(serve::serve(*args)),
        Command::Status(args) => status::status(args),
        Command::Sync(args) => sync::sync(args),
        Command::Drift { command } => drift::drift(command),
        Command::Mail { command: MailCommand::List(args) } => runtime()?.block_on(identity::list(args)),
        Command::Migrate { database } => runtime()?.block_on(async {
            store::connect(database.database_url.expose()).await?;
            println!("database is migrated");
            Ok(0)
        }),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

fn load(dir: &Path) -> anyhow::Result<config::Validated> {
    config::load_repo(dir).with_context(|| format!("cannot read config repository {}", dir.display()))
}

fn validate(dir: &Path, path: Option<&Path>, format: DiagnosticFormat) -> anyhow::Result<u8> {
    let validated = load(&path.map_or_else(|| dir.to_owned(), |path| dir.join(path)))?;
    let mut diagnostics = validated.diagnostics();
    // Files are named from the repository root, as CI annotations and editors expect.
    if let Some(path) = path {
        let prefix = path.to_string_lossy().replace('\\', "/");
        diagnostics.iter_mut().for_each(|d| d.file = format!("{prefix}/{}", d.file));
    }
    print!("{}", config::diagnostic::render(&diagnostics, validated.files_read, format));
    Ok(if validated.is_valid() { 0 } else { 1 })
}

fn write_schemas(out: &Path) -> anyhow::Result<u8> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    for (name, text) in config::schema::all() {
        let path = out.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(0)
}

/// The config at `dir`, its version as `apply` records it (a clean work tree's commit, or a hash of
/// the files) and the hash of its files.
fn load_versioned(dir: &Path) -> anyhow::Result<(config::Validated, Option<String>, [u8; 32])> {
    // Reading the commit (git status) and loading the config are independent: do both at once.
    let mut cache = config::ParseCache::default();
    let (validated, snapshot) = std::thread::scope(|scope| {
        let snapshot = scope.spawn(|| crate::source::Source::Directory(dir.to_owned()).fetch());
        let validated = config::load_repo_cached(dir, &mut cache)
            .with_context(|| format!("cannot read config repository {}", dir.display()));
        (validated, snapshot.join().ok().and_then(Result::ok))
    });
    let content = cache.fingerprint();
    let version = snapshot.map(|s| crate::source::directory_version(&s, &content));
    Ok((validated?, version, content))
}

async fn plan(dir: &Path, format: PlanFormat, out: Option<&Path>, args: &ApplyArgs) -> anyhow::Result<u8> {
    let (validated, version, content) = load_versioned(dir)?;
    let (options, once) = args.options();
    if out.is_some() && !once.is_empty() {
        // A saved plan carries the options it was made with; allowances for named tenants are not
        // among them yet, so `apply --plan` would find such a plan stale.
        anyhow::bail!(
            "--allow-mass-delete=TENANT cannot be saved in a plan; use --allow-mass-delete for all, or `gatehouse sync allow-deletion TENANT`"
        );
    }
    // `plan` only reads: it never creates the database or migrates it. A database that does not
    // exist yet is an empty platform, so the plan shows everything `apply` would create.
    let (plan, live) = match store::connect_existing(args.database.database_url.expose()).await {
        Ok(pool) => reconcile::plan_and_live(&pool, &validated, options, &once).await?,
        Err(store::StoreError::NoDatabase(target)) => {
            eprintln!("database {target} does not exist yet: planning against an empty platform");
            let live = crate::plan::live::LiveState::default();
            (crate::plan::diff(&validated, &live, options), live)
        }
        Err(error) => return Err(error.into()),
    };
    anstream::print!("{}", render::render(&plan, format));
    if let Some(out) = out {
        let saved = crate::plan::exact::save(&plan, &validated, &live, version, content, options);
        let text = serde_json::to_string_pretty(&saved)? + "\n";
        std::fs::write(out, text).with_context(|| format!("cannot write the plan to {}", out.display()))?;
        eprintln!("saved the plan to {}: `gatehouse apply --plan {}` applies exactly it", out.display(), out.display());
    }
    let s = plan.summary();
    Ok(if !validated.is_valid() || s.refused_tenants > 0 {
        2
    } else if plan.has_changes() {
        1
    } else {
        0
    })
}

async fn apply(dir: &Path, format: ReportFormat, args: &ApplyArgs) -> anyhow::Result<u8> {
    let started = std::time::Instant::now();
    // A clean work tree's commit, or a hash of the files: what the rows are marked as applied from.
    let (validated, commit, _) = load_versioned(dir)?;
    let loaded = started.elapsed();
    let pool = store::connect(args.database.database_url.expose()).await?;
    let connected = started.elapsed();
    let (options, once) = args.options();
    let report = reconcile::apply_allowing(&pool, &validated, options, commit.as_deref(), &once).await?;
    tracing::debug!(?loaded, ?connected, total = ?started.elapsed(), "apply finished");
    match format {
        ReportFormat::Json => println!("{:#}", serde_json::to_value(&report)?),
        ReportFormat::Text => print_report(&report, &validated),
    }
    Ok(if report.succeeded() && validated.is_valid() { 0 } else { 1 })
}

/// `apply --plan`: exactly the saved plan, or nothing (exit 1, naming what changed since).
async fn apply_saved(dir: &Path, saved: &Path, format: ReportFormat, args: &ApplyArgs) -> anyhow::Result<u8> {
    use crate::plan::exact::{FORMAT, SavedPlan};
    if args.allow_mass_delete.is_some() {
        anyhow::bail!(
            "--allow-mass-delete goes with `plan --out`: a saved plan is applied with the options it was planned with"
        );
    }
    let text = std::fs::read_to_string(saved).with_context(|| format!("cannot read the plan {}", saved.display()))?;
    let plan: SavedPlan = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a plan saved by `gatehouse plan --out`", saved.display()))?;
    if plan.format != FORMAT {
        anyhow::bail!("{} is a plan of format `{}`; this gatehouse reads `{FORMAT}`", saved.display(), plan.format);
    }
    let (validated, commit, content) = load_versioned(dir)?;
    let pool = store::connect(args.database.database_url.expose()).await?;
    match reconcile::exact::apply_plan(&pool, &validated, &plan, content, commit.as_deref()).await? {
        reconcile::exact::Outcome::Stale(stale) => {
            match format {
                ReportFormat::Json => println!("{:#}", serde_json::json!({ "applied": false, "stale": stale })),
                ReportFormat::Text => {
                    eprintln!("refused: {} is stale, nothing was applied. Changed since the plan:", saved.display());
                    for s in &stale {
                        eprintln!("  {s}");
                    }
                    eprintln!("Plan again (`gatehouse plan --out {}`), review, and apply that.", saved.display());
                }
            }
            Ok(1)
        }
        reconcile::exact::Outcome::AlreadyApplied => {
            match format {
                ReportFormat::Json => {
                    println!("{:#}", serde_json::json!({ "applied": false, "alreadyApplied": true, "stale": [] }))
                }
                ReportFormat::Text => eprintln!(
                    "nothing to apply: {} was already applied (the config files are the ones it was planned from and the database matches them)",
                    saved.display()
                ),
            }
            Ok(0)
        }
        reconcile::exact::Outcome::Applied(report) => {
            match format {
                ReportFormat::Json => println!("{:#}", serde_json::to_value(&report)?),
                ReportFormat::Text => print_report(&report, &validated),
            }
            Ok(if report.succeeded() && validated.is_valid() { 0 } else { 1 })
        }
    }
}

fn print_report(report: &reconcile::ApplyReport, validated: &config::Validated) {
    for (subject, diagnostic) in &validated.problems {
        if !matches!(subject, config::Subject::Tenant(_)) {
            eprintln!("{diagnostic}");
        }
    }
    let mut failed = 0;
    for t in &report.tenants {
        match &t.outcome {
            TenantOutcome::Applied { .. } => {}
            TenantOutcome::Failed { reason }
            | TenantOutcome::Refused { reason }
            | TenantOutcome::Deferred { reason } => {
                failed += 1;
                eprintln!("tenant {}: not applied: {reason}", t.tenant);
            }
            TenantOutcome::Invalid { problems } => {
                failed += 1;
                eprintln!("tenant {}: invalid, keeps its last good state:", t.tenant);
                for p in problems {
                    eprintln!("  {p}");
                }
            }
        }
    }
    for tenant in &report.allowed_once {
        println!("tenant {tenant}: guarded change allowed once and applied");
    }
    if let Some(error) = &report.global_error {
        eprintln!("error: {error}");
    }
    let applied = report
        .tenants
        .iter()
        .filter(|t| matches!(t.outcome, TenantOutcome::Applied { changes } if changes > 0))
        .count();
    let commit = report.commit.as_deref().map(|c| format!(" at {c}")).unwrap_or_default();
    println!(
        "applied {} changes{commit}: {applied} tenants changed, {failed} not applied; {} drifted resources kept, {} orphans",
        report.applied_changes, report.drift_kept, report.orphans
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsed_arguments_never_show_secrets_in_debug_output() {
        let cli = Cli::try_parse_from([
            "gatehouse",
            "serve",
            "--repo",
            "example-config-repo",
            "--database-url",
            "postgres://gatehouse:db-pw-1@db/gatehouse",
            "--operator-token",
            "op-token-2",
            "--webhook-secret",
            "hook-secret-3",
            "--git-token",
            "git-token-4",
        ])
        .expect("valid arguments");
        let debug = format!("{cli:?}");
        assert!(debug.contains("example-config-repo"), "{debug}");
        for secret in ["db-pw-1", "op-token-2", "hook-secret-3", "git-token-4"] {
            assert!(!debug.contains(secret), "{secret} shows in {debug}");
        }
    }

    fn apply_options(args: &[&str]) -> (Options, BTreeSet<String>) {
        let cli = Cli::try_parse_from(["gatehouse", "apply", "."].iter().chain(args)).expect("valid arguments");
        let Command::Apply { apply, .. } = cli.command else { panic!("apply") };
        apply.options()
    }

    // Issue 15.7
    #[test]
    fn allow_mass_delete_alone_allows_every_tenant_and_with_names_only_those() {
        let (options, once) = apply_options(&[]);
        assert!(!options.allow_mass_delete && once.is_empty());
        let (options, once) = apply_options(&["--allow-mass-delete"]);
        assert!(options.allow_mass_delete && once.is_empty());
        let (options, once) = apply_options(&["--allow-mass-delete=globex"]);
        assert!(!options.allow_mass_delete);
        assert_eq!(once.into_iter().collect::<Vec<_>>(), ["globex"]);
        let (_, once) = apply_options(&["--allow-mass-delete=globex,hooli", "--allow-mass-delete=acme"]);
        assert_eq!(once.into_iter().collect::<Vec<_>>(), ["acme", "globex", "hooli"]);
    }
}
