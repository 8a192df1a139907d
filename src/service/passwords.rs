//! Password hashing off the async runtime: Argon2id runs on the blocking pool, at most
//! `hash_concurrency` at once, so a login flood queues logins instead of starving token-checked requests.

use std::sync::Arc;

use anyhow::Context;
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use crate::{
    config::Config,
    domain::password::{Hasher, Policy, Verification},
    error::{Error, Result},
};

pub struct Passwords {
    hasher: Arc<Hasher>,
    permits: Semaphore,
    pub policy: Policy,
}

impl Passwords {
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        Ok(Self {
            hasher: Arc::new(Hasher::new(config.argon2_memory_kib, config.argon2_iterations)?),
            permits: Semaphore::new(config.hash_concurrency),
            policy: Policy {
                min_chars: config.password_min_length,
            },
        })
    }

    async fn run<T: Send + 'static>(&self, work: impl FnOnce(&Hasher) -> T + Send + 'static) -> Result<T> {
        let _permit = self.permits.acquire().await.context("password hashing is shut down")?;
        let hasher = self.hasher.clone();
        Ok(tokio::task::spawn_blocking(move || work(&hasher))
            .await
            .context("password hashing panicked")?)
    }

    pub async fn hash(&self, password: &str) -> Result<String> {
        let password = Zeroizing::new(password.to_string());
        self.run(move |h| h.hash(&password))
            .await?
            .map_err(|e| Error::Internal(e.into()))
    }

    /// `stored: None` (no such user) still costs one full verification and never matches.
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> Result<Verification> {
        let password = Zeroizing::new(password.to_string());
        let stored = stored.map(str::to_string);
        self.run(move |h| match stored {
            Some(stored) => h.verify(&password, &stored),
            None => {
                h.verify_dummy(&password);
                Ok(Verification::Mismatch)
            }
        })
        .await?
        .map_err(|e| Error::Internal(e.into()))
    }
}
