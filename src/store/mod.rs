//! Persistence on SQLite or PostgreSQL through one sqlx `Any` pool. Backend differences live here only:
//! the migrations folder, connection set-up, and how a write transaction begins.

pub mod audit;
pub mod dashboard;
pub mod housekeeping;
pub mod keys;
pub mod lockouts;
pub mod mail_tokens;
pub mod mfa;
pub mod oauth;
pub mod orgs;
pub mod outbox;
pub mod passkeys;
pub mod sessions;
pub mod user_changes;
pub mod users;
pub mod web_sessions;

use std::time::Duration;

use anyhow::Context;
use sqlx::{Any, AnyPool, Transaction, any::AnyPoolOptions};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
}

pub type Tx = Transaction<'static, Any>;

impl Db {
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if url.starts_with("sqlite:") {
            // Create the file on first start.
            let url = if url.contains("mode=") {
                url.to_string()
            } else if url.contains('?') {
                format!("{url}&mode=rwc")
            } else {
                format!("{url}?mode=rwc")
            };
            restrict_sqlite_files(&url)?;
            (Backend::Sqlite, url)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_string())
        } else {
            anyhow::bail!("LATCHKEY_DATABASE_URL must start with sqlite:// or postgres://");
        };
        let options = AnyPoolOptions::new()
            .acquire_timeout(Duration::from_secs(3))
            .max_connections(if backend == Backend::Sqlite { 8 } else { 16 })
            // A connection must never be handed out inside a transaction: its BEGIN would fail and, on
            // SQLite, the write lock it holds would stop every other writer. `Db::begin` cannot leave one
            // behind; this is the net under anything else that might. (On release sqlx first flushes the
            // rollback of a dropped transaction, so this check sees only a transaction nobody will end.)
            .before_acquire(|conn, _meta| {
                Box::pin(async move {
                    let clean = !sqlx::Connection::is_in_transaction(conn);
                    if !clean {
                        tracing::error!("a pooled database connection was left inside a transaction; closing it");
                    }
                    Ok(clean)
                })
            })
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers run beside the one writer; NORMAL is durable across process
                        // crashes in WAL mode, and the busy timeout queues writers instead of failing them.
                        let pragmas = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                                       PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;";
                        sqlx::Executor::execute(&mut *conn, pragmas).await?;
                    }
                    Ok(())
                })
            });
        let pool = options.connect(&url).await.context("cannot open the database")?;
        Ok(Self { pool, backend })
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        // On PostgreSQL sqlx holds an advisory lock while migrating, so instances starting together are safe.
        match self.backend {
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite").run(&self.pool).await,
            Backend::Postgres => sqlx::migrate!("migrations/postgres").run(&self.pool).await,
        }
        .context("database migration failed")
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A transaction that will write. On SQLite it takes the write lock at once, so two writers queue on
    /// the busy timeout rather than one failing when it upgrades from reading.
    ///
    /// Cancel-safe: sqlx's `begin` is not (a future dropped after the server ran `BEGIN` but before the
    /// `Transaction` exists returns the connection to the pool inside that transaction), so it runs in a task
    /// of its own. If the caller goes away, the task still finishes and drops the transaction, which rolls
    /// it back.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        let (pool, backend) = (self.pool.clone(), self.backend);
        let begun = tokio::spawn(async move {
            match backend {
                Backend::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await,
                Backend::Postgres => pool.begin().await,
            }
        });
        begun.await.map_err(|e| sqlx::Error::Io(std::io::Error::other(e)))?
    }

    /// What a `SELECT` appends to lock the rows it reads until the transaction ends.
    pub fn row_lock(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => "FOR UPDATE",
        }
    }

    /// What a `SELECT` of work items appends so that concurrent workers each take different rows.
    pub fn skip_locked(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
        }
    }

    /// Readiness: a read, and a write transaction begun and rolled back, so that a writer stuck holding the
    /// lock makes the instance not ready instead of failing every write behind a green health check.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        self.begin().await?.rollback().await
    }
}

/// The database holds password hashes and the audit log: only its owner may read it. SQLite creates the
/// `-wal` and `-shm` files with the mode of the database file, so creating that one 0600 is enough; files
/// from an older version are narrowed to 0600.
fn restrict_sqlite_files(url: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Ok(());
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create the database file {path}"))?;
    for file in [path.to_string(), format!("{path}-wal"), format!("{path}-shm")] {
        let Ok(meta) = std::fs::metadata(&file) else { continue };
        if meta.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("cannot make {file} readable by its owner only"))?;
            tracing::info!(file, "database file was readable by others; now mode 0600");
        }
    }
    Ok(())
}

/// Ids are stored as text; a malformed one in the database is a bug, not client input.
pub(crate) fn parse_id(text: &str) -> Result<uuid::Uuid, sqlx::Error> {
    text.parse().map_err(|e| sqlx::Error::Decode(Box::new(e)))
}
