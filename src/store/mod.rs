//! Persistence on SQLite or PostgreSQL through one sqlx `Any` pool. Backend differences live here only:
//! the migrations folder, connection set-up, and how a write transaction begins.

pub mod audit;
pub mod housekeeping;
pub mod keys;
pub mod lockouts;
pub mod mfa;
pub mod orgs;
pub mod sessions;
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
            (Backend::Sqlite, url)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_string())
        } else {
            anyhow::bail!("LATCHKEY_DATABASE_URL must start with sqlite:// or postgres://");
        };
        let options = AnyPoolOptions::new()
            .acquire_timeout(Duration::from_secs(3))
            .max_connections(if backend == Backend::Sqlite { 8 } else { 16 })
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
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }

    /// What a `SELECT` appends to lock the rows it reads until the transaction ends.
    pub fn row_lock(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => "FOR UPDATE",
        }
    }

    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ())
    }
}

/// Ids are stored as text; a malformed one in the database is a bug, not client input.
pub(crate) fn parse_id(text: &str) -> Result<uuid::Uuid, sqlx::Error> {
    text.parse().map_err(|e| sqlx::Error::Decode(Box::new(e)))
}
