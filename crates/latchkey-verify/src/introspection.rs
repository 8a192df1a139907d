//! Optional revocation awareness: RFC 7662 introspection of tokens that verified locally, with a short cache,
//! so that a sign-out or a revoked session reaches the resource server within the cache's lifetime.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use tokio::sync::Mutex;

use crate::VerifyError;

/// Answers kept at most this many; past it the cache is emptied, so a flood of distinct tokens cannot grow it.
const MAX_CACHED: usize = 10_000;

pub(crate) struct Introspector {
    client_id: String,
    client_secret: String,
    ttl: Duration,
    cache: Mutex<HashMap<String, (bool, Instant)>>,
}

impl Introspector {
    pub(crate) fn new(client_id: String, client_secret: String, ttl: Duration) -> Self {
        Self { client_id, client_secret, ttl, cache: Mutex::new(HashMap::new()) }
    }

    /// Whether the issuer still calls `token` active, asked at most once per `ttl`.
    pub(crate) async fn is_active(
        &self,
        http: &reqwest::Client,
        endpoint: &str,
        token: &str,
    ) -> Result<bool, VerifyError> {
        let now = Instant::now();
        if let Some((active, at)) = self.cache.lock().await.get(token)
            && now.duration_since(*at) < self.ttl
        {
            return Ok(*active);
        }
        let unavailable = |e: reqwest::Error| VerifyError::IssuerUnavailable(format!("introspection: {e}"));
        let answer: serde_json::Value = http
            .post(endpoint)
            .basic_auth(&self.client_id, Some(&self.client_secret))
            .form(&[("token", token)])
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(unavailable)?
            .json()
            .await
            .map_err(unavailable)?;
        let active = answer.get("active").and_then(serde_json::Value::as_bool).unwrap_or(false);
        let mut cache = self.cache.lock().await;
        if cache.len() >= MAX_CACHED {
            cache.retain(|_, (_, at)| now.duration_since(*at) < self.ttl);
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
        }
        cache.insert(token.to_string(), (active, now));
        Ok(active)
    }
}
