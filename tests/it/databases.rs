//! A database of its own for every test, cheaply: copied from a template that holds what a first
//! start leaves (the migrations, the ID token signing keys, the audit months), then handed from test
//! to test, emptied in between.
//!
//! Costs measured on the 2-core machine, in PostgreSQL's CPU: migrating a new database 0.6 s,
//! copying the template 0.4 s (its 10 MB, PostgreSQL's own catalogs most of it), emptying a used
//! one 0.015 s. A database a test changed the shape of (a dropped audit month, a disabled
//! trigger, another migration) is not handed on: its catalog no longer matches the template's, and
//! it is dropped.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::{Connection as _, PgConnection, PgPool};

use crate::helpers::{ENCRYPTION_KEY, project_dir};

/// The server the tests create their databases on; override with `GATEHOUSE_TEST_DATABASE_URL`.
pub fn server_url() -> String {
    std::env::var("GATEHOUSE_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// One test's database, back in the free list when the test ends.
pub struct TestDb {
    pub url: String,
    pub pool: PgPool,
    name: String,
}

impl TestDb {
    pub async fn new() -> Self {
        let template = TEMPLATE.get_or_init(Template::make).await;
        let name = match reused(template).await {
            Some(name) => name,
            None => copied(template).await,
        };
        let url = format!("{}/{name}", server_url());
        let pool = gatehouse::store::connect(&url).await.expect("test database");
        TestDb { url, pool, name }
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(&self.pool).await.expect(sql)
    }

    pub async fn execute(&self, sql: &str) {
        sqlx::query(sql).execute(&self.pool).await.expect(sql);
    }

    pub async fn text(&self, sql: &str) -> String {
        sqlx::query_scalar(sql).fetch_one(&self.pool).await.expect(sql)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        FREE.lock().expect("free databases").push(self.name.clone());
    }
}

/// Databases whose tests have ended, to be emptied and handed on. Those left when the run ends are
/// dropped by the next run (`drop_orphans`).
static FREE: Mutex<Vec<String>> = Mutex::new(Vec::new());

static NEXT_DB: AtomicUsize = AtomicUsize::new(0);

static TEMPLATE: tokio::sync::OnceCell<Template> = tokio::sync::OnceCell::const_new();

/// What a test's database starts as.
struct Template {
    name: String,
    /// The template's catalog (`CATALOG`): a database that still matches it can be emptied.
    catalog: String,
    /// Empties a database and puts back the template's rows: one script.
    reset: String,
}

/// The shape of a database: its schemas, relations with their columns and access rights,
/// constraints, triggers (and whether they fire), functions, settings, and the migrations applied.
const CATALOG: &str = r"
SELECT md5(string_agg(x, ',' ORDER BY x)) FROM (
  SELECT nspname::text FROM pg_namespace WHERE nspname NOT LIKE 'pg\_temp\_%' AND nspname NOT LIKE 'pg\_toast\_temp\_%'
  UNION ALL
  SELECT n.nspname || '.' || c.relname || ':' || c.relkind::text || ':' || c.relpersistence::text || ':' || coalesce(c.relacl::text, '')
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
     AND n.nspname NOT LIKE 'pg\_temp\_%' AND n.nspname NOT LIKE 'pg\_toast\_temp\_%'
  UNION ALL
  SELECT a.attrelid::regclass || '.' || a.attname || ':' || a.atttypid || ':' || a.attnotnull || ':'
         || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
   WHERE n.nspname = 'public' AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
  SELECT conrelid::regclass || '.' || conname || ':' || pg_get_constraintdef(c.oid)
    FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = 'public'
  UNION ALL
  SELECT tgrelid::regclass || '.' || tgname || ':' || tgenabled::text FROM pg_trigger
  UNION ALL
  SELECT p.oid::regprocedure::text || ':' || md5(p.prosrc)
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'
  UNION ALL
  SELECT coalesce(array_to_string(setconfig, ';'), '') FROM pg_db_role_setting
   WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
  UNION ALL
  SELECT string_agg(version || ':' || success, ';' ORDER BY version) FROM _sqlx_migrations
) AS catalog(x)";

impl Template {
    /// Makes the template unless a test run (this one or another sharing the server) already has:
    /// built under a temporary name, its pool closed (a template must have no connections while
    /// it is copied), then renamed, so that no test ever copies half a template. Older templates
    /// and the databases of runs that have ended are dropped. Its catalog and rows are read once.
    async fn make() -> Template {
        let name = format!("gatehouse_test_template_{}_{}", today(), fingerprint());
        let mut admin = admin().await;
        sqlx::query("SELECT pg_advisory_lock(hashtext('gatehouse_test_template'))")
            .execute(&mut admin)
            .await
            .expect("template lock");
        drop_orphans(&mut admin).await;
        let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await
            .expect("template lookup");
        if !exists {
            // Templates of two days ago and before: yesterday's may still serve a run that crossed
            // midnight, and a run on another branch today keeps its own.
            let older: Vec<String> = sqlx::query_scalar(
                r"SELECT datname FROM pg_database WHERE datname ~ '^gatehouse_test_template_[0-9]{8}_' AND substr(datname, 25, 8) < $1",
            )
            .bind((chrono::Utc::now().date_naive() - chrono::Days::new(1)).format("%Y%m%d").to_string())
            .fetch_all(&mut admin)
            .await
            .expect("older templates");
            for stale in older {
                // Without FORCE: a template another run is copying right now stays until it is free.
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {stale}")).execute(&mut admin).await;
            }
            let building = format!("{name}_building");
            let pool =
                gatehouse::store::connect(&format!("{}/{building}", server_url())).await.expect("template database");
            let keyring =
                std::sync::Arc::new(gatehouse::secret::sealed::Keyring::parse(ENCRYPTION_KEY).expect("test key ring"));
            let keys = gatehouse::oidc::keys::Keys::new(pool.clone(), keyring, std::time::Duration::from_secs(300));
            keys.load().await.expect("the first start's signing keys");
            drop(keys);
            pool.close().await;
            // The audit months a start with the default retention (400 days) makes.
            let mut building_connection =
                PgConnection::connect(&format!("{}/{building}", server_url())).await.expect("template database");
            sqlx::query("SELECT audit_log_ensure_partitions(now() - interval '400 days', now() + interval '62 days')")
                .execute(&mut building_connection)
                .await
                .expect("the audit months of a start");
            building_connection.close().await.expect("template database closed");
            // A closed connection's server process may still be ending: the rename waits for it.
            let rename = format!("ALTER DATABASE {building} RENAME TO {name}");
            let mut attempts = 0;
            while let Err(error) = sqlx::query(&rename).execute(&mut admin).await {
                attempts += 1;
                assert!(attempts < 50, "template renamed: {error}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
        let mut template = PgConnection::connect(&format!("{}/{name}", server_url())).await.expect("template");
        let catalog: String = sqlx::query_scalar(CATALOG).fetch_one(&mut template).await.expect("template catalog");
        let reset = reset_script(&mut template).await;
        template.close().await.expect("template closed");
        sqlx::query("SELECT pg_advisory_unlock(hashtext('gatehouse_test_template'))")
            .execute(&mut admin)
            .await
            .expect("template unlock");
        Template { name, catalog, reset }
    }
}

/// What the template is made of: the migrations. With the day in its name (the signing keys age,
/// audit months turn), another fingerprint means another template.
fn fingerprint() -> String {
    use sha2::Digest as _;
    let mut files: Vec<_> = std::fs::read_dir(project_dir().join("migrations"))
        .expect("migrations folder")
        .map(|entry| entry.expect("migration").path())
        .collect();
    files.sort();
    let mut digest = sha2::Sha256::new();
    for file in files {
        digest.update(std::fs::read(&file).expect("migration file"));
    }
    // And how it is made: a change here must not meet a template made the old way.
    digest.update("migrated, signing keys, the audit months of a start");
    hex::encode(digest.finalize())[..16].to_owned()
}

/// The script that empties a database shaped as the template and puts the template's rows back:
/// with triggers off (`session_replication_role`), as the audit log refuses deletes otherwise.
async fn reset_script(template: &mut PgConnection) -> String {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
            AND c.relname <> '_sqlx_migrations' ORDER BY 1",
    )
    .fetch_all(&mut *template)
    .await
    .expect("template tables");
    let sequences: Vec<(String, Option<i64>)> =
        sqlx::query_as("SELECT format('%I.%I', schemaname, sequencename), last_value FROM pg_sequences ORDER BY 1")
            .fetch_all(&mut *template)
            .await
            .expect("template sequences");
    let mut script = String::from("SET session_replication_role = replica;\n");
    for table in &tables {
        script += &format!("DELETE FROM {table};\n");
    }
    // Each sequence as the template left it: unused, or at its last value.
    for (sequence, last_value) in &sequences {
        script += &match last_value {
            None => format!("ALTER SEQUENCE {sequence} RESTART;\n"),
            Some(value) => format!("SELECT setval('{sequence}', {value});\n"),
        };
    }
    for table in &tables {
        let rows: Option<String> = sqlx::query_scalar(&format!("SELECT json_agg(t)::text FROM {table} t"))
            .fetch_one(&mut *template)
            .await
            .expect("template rows");
        if let Some(rows) = rows {
            let rows = rows.replace('\'', "''");
            script += &format!(
                "INSERT INTO {table} OVERRIDING SYSTEM VALUE SELECT * FROM json_populate_recordset(NULL::{table}, '{rows}');\n"
            );
        }
    }
    script + "RESET session_replication_role;\n"
}

fn today() -> String {
    chrono::Utc::now().format("%Y%m%d").to_string()
}

/// This machine, in the names of its test databases: a run drops only its own machine's orphans,
/// since a shared server may hold another machine's live ones.
fn host() -> String {
    use sha2::Digest as _;
    let name = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    hex::encode(sha2::Sha256::digest(name.trim().as_bytes()))[..8].to_owned()
}

/// A name no database of this run has had.
fn next_name() -> String {
    format!("gatehouse_test_{}_{}_{}", host(), std::process::id(), NEXT_DB.fetch_add(1, Ordering::SeqCst))
}

async fn admin() -> PgConnection {
    PgConnection::connect(&format!("{}/postgres", server_url())).await.expect("the test server")
}

/// A database a finished test left, under a new name, emptied, if its shape is still the
/// template's; one that is not is dropped. The new name cuts off whatever of the last test still
/// runs (a server never stopped, a pool reconnecting): it can no longer reach the database.
async fn reused(template: &Template) -> Option<String> {
    loop {
        let old = FREE.lock().expect("free databases").pop()?;
        let name = next_name();
        let mut admin = admin().await;
        let mut renamed = false;
        for _ in 0..5 {
            let _ = sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
                .bind(&old)
                .execute(&mut admin)
                .await;
            // A terminated connection's server process may still be ending.
            renamed = sqlx::query(&format!("ALTER DATABASE {old} RENAME TO {name}")).execute(&mut admin).await.is_ok();
            if renamed {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        if !renamed {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {old} WITH (FORCE)")).execute(&mut admin).await;
            continue;
        }
        let url = format!("{}/{name}", server_url());
        if let Ok(mut connection) = PgConnection::connect(&url).await {
            let catalog: Option<String> = sqlx::query_scalar(CATALOG).fetch_one(&mut connection).await.ok();
            if catalog.as_deref() == Some(template.catalog.as_str())
                && sqlx::raw_sql(&template.reset).execute(&mut connection).await.is_ok()
            {
                let _ = connection.close().await;
                return Some(name);
            }
        }
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut admin).await;
    }
}

/// A new copy of the template.
async fn copied(template: &Template) -> String {
    let name = next_name();
    let mut admin = admin().await;
    sqlx::query(&format!("CREATE DATABASE {name} TEMPLATE {}", template.name))
        .execute(&mut admin)
        .await
        .expect("test database from the template");
    let _ = admin.close().await;
    name
}

/// Drops this machine's test databases of runs whose process has ended
/// (`gatehouse_test_<host>_<pid>_<n>`): a run leaves the databases of its last tests behind for
/// lack of an end-of-run hook. Those bearing this process's id are an earlier run's too (the id came
/// round again): this run has none yet.
async fn drop_orphans(admin: &mut PgConnection) {
    let names: Vec<String> = sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname ~ $1")
        .bind(format!("^gatehouse_test_{}_[0-9]+_[0-9]+$", host()))
        .fetch_all(&mut *admin)
        .await
        .expect("test databases");
    for name in names {
        let pid = name.split('_').nth(3).unwrap_or_default();
        if pid == std::process::id().to_string() || !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut *admin).await;
        }
    }
}
