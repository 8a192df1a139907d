//! Per-client-IP rate limits on the unauthenticated endpoints (register, login, MFA challenge, refresh).
//!
//! A sliding-window counter per (endpoint, IP). Counters live in the process by default, or in Redis when
//! `LATCHKEY_REDIS_URL` is set so that every instance shares them. When Redis cannot be reached the
//! process's own counters take over (and it says so in the log) until Redis answers again: limits keep
//! holding per instance, and serving never stops.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use tokio::sync::RwLock;

use crate::{
    clock,
    domain::{client_ip, rate_window},
    error::{Error, Result},
};

const WINDOW_MS: i64 = 60_000;
/// A Redis call slower than this counts as Redis being down.
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);
/// After a Redis failure, how long the process's counters are used before Redis is tried again.
const REDIS_RETRY: Duration = Duration::from_secs(5);

/// The process's own counters hold at most this many keys; keys beyond it in one window share one counter,
/// so a flood of new addresses costs bounded memory and is limited as one client.
const MAX_LOCAL_KEYS: usize = 500_000;

pub struct RateLimiter {
    per_minute: u64,
    local: Mutex<LocalCounts>,
    redis: Option<SharedCounts>,
}

#[derive(Default)]
struct LocalCounts {
    counters: HashMap<String, Counts>,
    /// The window at whose start keys idle for two windows were last dropped.
    pruned_at: i64,
}

/// This window's and the previous window's counts for one key.
#[derive(Clone, Copy)]
struct Counts {
    window: i64,
    current: u64,
    previous: u64,
}

struct SharedCounts {
    client: redis::Client,
    connection: RwLock<Option<redis::aio::ConnectionManager>>,
    down_since: Mutex<Option<Instant>>,
}

impl RateLimiter {
    pub fn new(per_minute: u32, redis_url: Option<&str>) -> anyhow::Result<Self> {
        let redis = redis_url
            .map(|url| -> anyhow::Result<SharedCounts> {
                Ok(SharedCounts {
                    client: redis::Client::open(url)
                        .map_err(|e| anyhow::anyhow!("LATCHKEY_REDIS_URL is not valid: {e}"))?,
                    connection: RwLock::default(),
                    down_since: Mutex::default(),
                })
            })
            .transpose()?;
        Ok(Self { per_minute: u64::from(per_minute), local: Mutex::default(), redis })
    }

    /// Counts a request from `ip` to `endpoint`; 429 `rate_limited` with `Retry-After` past the limit.
    pub async fn check(&self, endpoint: &str, ip: &str) -> Result<()> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let now = clock::now_ms();
        let (window, elapsed) = rate_window::position(now, WINDOW_MS);
        let key = format!("{endpoint}:{}", client_ip::rate_limit_subject(ip));
        let (previous, current) = match &self.redis {
            Some(shared) => match shared.count(&key, window).await {
                Some(counts) => counts,
                None => self.count_locally(&key, window),
            },
            None => self.count_locally(&key, window),
        };
        match rate_window::decide(self.per_minute, WINDOW_MS, elapsed, previous, current) {
            None => Ok(()),
            Some(wait) => Err(Error::TooManyRequests { code: "rate_limited", retry_after: Duration::from_secs(wait) }),
        }
    }

    fn count_locally(&self, key: &str, window: i64) -> (u64, u64) {
        let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        if local.pruned_at != window {
            // Once per window: keys idle for two windows no longer affect any decision.
            local.counters.retain(|_, c| c.window >= window - 1);
            local.pruned_at = window;
        }
        let key =
            if local.counters.len() >= MAX_LOCAL_KEYS && !local.counters.contains_key(key) { "overflow" } else { key };
        let counts = local.counters.entry(key.to_string()).or_insert(Counts { window, current: 0, previous: 0 });
        if counts.window != window {
            let previous = if counts.window == window - 1 { counts.current } else { 0 };
            *counts = Counts { window, current: 0, previous };
        }
        counts.current += 1;
        (counts.previous, counts.current)
    }
}

impl SharedCounts {
    /// (previous, current) from Redis, or `None` while Redis is unavailable.
    async fn count(&self, key: &str, window: i64) -> Option<(u64, u64)> {
        if self.down_since.lock().unwrap_or_else(|p| p.into_inner()).is_some_and(|t| t.elapsed() < REDIS_RETRY) {
            return None;
        }
        let result = tokio::time::timeout(REDIS_TIMEOUT, self.query(key, window)).await;
        let mut down_since = self.down_since.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(Ok(counts)) => {
                if down_since.take().is_some() {
                    tracing::info!("Redis answers again; rate limits are shared across instances");
                }
                Some(counts)
            }
            Ok(Err(e)) => {
                mark_down(&mut down_since, &e.to_string());
                None
            }
            Err(_) => {
                mark_down(&mut down_since, "timed out");
                None
            }
        }
    }

    async fn query(&self, key: &str, window: i64) -> redis::RedisResult<(u64, u64)> {
        let mut connection = self.connection().await?;
        let current_key = format!("latchkey:rate:{key}:{window}");
        let previous_key = format!("latchkey:rate:{key}:{}", window - 1);
        let (current, previous): (u64, Option<u64>) = redis::pipe()
            .atomic()
            .incr(&current_key, 1)
            .expire(&current_key, 2 * WINDOW_MS / 1000)
            .ignore()
            .get(&previous_key)
            .query_async(&mut connection)
            .await?;
        Ok((previous.unwrap_or(0), current))
    }

    async fn connection(&self) -> redis::RedisResult<redis::aio::ConnectionManager> {
        if let Some(connection) = self.connection.read().await.as_ref() {
            return Ok(connection.clone());
        }
        let mut slot = self.connection.write().await;
        if let Some(connection) = slot.as_ref() {
            return Ok(connection.clone());
        }
        let connection = self.client.get_connection_manager().await?;
        *slot = Some(connection.clone());
        Ok(connection)
    }
}

fn mark_down(down_since: &mut Option<Instant>, why: &str) {
    if down_since.is_none() {
        tracing::warn!(error = why, "Redis is unavailable; rate limits fall back to this instance's own counters");
    }
    *down_since = Some(Instant::now());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_limit_counts_per_endpoint_and_ip() {
        let limiter = RateLimiter::new(3, None).unwrap();
        for _ in 0..3 {
            limiter.check("login", "1.1.1.1").await.unwrap();
        }
        assert!(matches!(
            limiter.check("login", "1.1.1.1").await,
            Err(Error::TooManyRequests { code: "rate_limited", .. })
        ));
        limiter.check("login", "2.2.2.2").await.unwrap();
        limiter.check("refresh", "1.1.1.1").await.unwrap();
    }

    #[test]
    fn a_flood_of_new_addresses_stays_bounded_and_is_limited_as_one() {
        let limiter = RateLimiter::new(60, None).unwrap();
        for i in 0..MAX_LOCAL_KEYS + 100 {
            limiter.count_locally(&format!("login:{i}"), 7);
        }
        let local = limiter.local.lock().unwrap();
        assert_eq!(local.counters.len(), MAX_LOCAL_KEYS + 1, "the cap and the one shared overflow counter");
        assert_eq!(local.counters["overflow"].current, 100, "the addresses beyond the cap count as one client");
    }

    #[tokio::test]
    async fn zero_turns_it_off() {
        let limiter = RateLimiter::new(0, None).unwrap();
        for _ in 0..1000 {
            limiter.check("login", "1.1.1.1").await.unwrap();
        }
    }

    #[tokio::test]
    async fn unreachable_redis_falls_back_to_local_counts() {
        let limiter = RateLimiter::new(2, Some("redis://127.0.0.1:1/")).unwrap();
        limiter.check("login", "1.1.1.1").await.unwrap();
        limiter.check("login", "1.1.1.1").await.unwrap();
        assert!(limiter.check("login", "1.1.1.1").await.is_err());
    }
}
