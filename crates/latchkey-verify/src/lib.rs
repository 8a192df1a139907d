//! Verify [Latchkey](https://github.com/latchkey) access tokens in a resource server.
//!
//! A [`Verifier`] trusts one issuer and one audience. It discovers the issuer's keys (OpenID Connect
//! discovery, or `/.well-known/jwks.json`), caches them, and fetches them again when a token names a key it
//! does not know, at most once per [`VerifierBuilder::min_refresh_interval`], so a flood of made-up key ids
//! cannot make it hammer the issuer. A token passes only with:
//!
//! - a signature by one of the issuer's keys, in that key's algorithm (EdDSA, RS256 or ES256): the algorithm
//!   comes from the key, never from the token's header alone, and `none` or HMAC never pass;
//! - `typ: at+jwt` (RFC 9068), so an ID token or any other JWT is not taken for an access token;
//! - the trusted `iss`, the expected `aud`, and `exp` / `nbf` within a small leeway.
//!
//! It returns typed [`Claims`], whose guards ([`Claims::require_permission`], [`Claims::require_role`],
//! [`Claims::require_scope`], [`Claims::require_mfa`]) apply Latchkey's own [role table](roles). With the
//! `axum` feature, [`axum::Verified`] is an extractor answering 401 / 403 in Latchkey's error shape.
//!
//! ```no_run
//! # async fn run(token: &str) -> Result<(), Box<dyn std::error::Error>> {
//! use latchkey_verify::{Verifier, roles::Permission};
//!
//! let verifier = Verifier::builder("https://auth.example.com").audience("latchkey").build();
//! let claims = verifier.verify(token).await?;
//! claims.require_permission(Permission::DraftsSave)?;
//! println!("{} may save drafts", claims.sub);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

#[cfg(feature = "axum")]
pub mod axum;
mod claims;
mod introspection;
mod keys;
pub mod roles;

use std::{
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

pub use claims::{Claims, Denied, OrgRole};
use jsonwebtoken::{Validation, errors::ErrorKind};
use keys::KeySet;

/// Tokens longer than this are refused unread.
const MAX_TOKEN_LEN: usize = 8192;

/// Why a token was refused (401), or why it could not be judged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// No bearer token came with the request.
    #[error("no bearer token")]
    Missing,
    /// Not a JWT, or claims of the wrong shape.
    #[error("the token is malformed")]
    Malformed,
    /// The header names no key of the issuer's, even after fetching its keys again.
    #[error("the token is signed with an unknown key")]
    UnknownKey,
    /// The header's `alg` is not the algorithm of the key it names.
    #[error("the token's algorithm does not match its key")]
    WrongAlgorithm,
    /// The signature does not verify.
    #[error("the token's signature is invalid")]
    BadSignature,
    /// `typ` is not `at+jwt`: an ID token, a logout token, or another JWT.
    #[error("the token is not an access token")]
    WrongType,
    /// `exp` has passed.
    #[error("the token has expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// Another issuer's token.
    #[error("the token comes from another issuer")]
    WrongIssuer,
    /// A token for another audience.
    #[error("the token is meant for another audience")]
    WrongAudience,
    /// Introspection says the token is no longer active (its session ended).
    #[error("the token has been revoked")]
    Revoked,
    /// The issuer's keys or introspection could not be fetched; the token could not be judged.
    #[error("the issuer cannot be reached: {0}")]
    IssuerUnavailable(String),
}

/// Builds a [`Verifier`]; nothing is fetched until the first token.
#[must_use]
pub struct VerifierBuilder {
    issuer: String,
    audience: Vec<String>,
    leeway: Duration,
    jwks_uri: Option<String>,
    min_refresh: Duration,
    http: Option<reqwest::Client>,
    introspection: Option<(String, String, Duration)>,
}

impl VerifierBuilder {
    /// An audience a token may be for (Latchkey's API tokens say `latchkey`; OAuth tokens the resource's
    /// identifier). At least one is needed; several are any-of.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience.push(audience.into());
        self
    }

    /// Clock difference tolerated on `exp` and `nbf`; 5 s by default.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Where the keys are, instead of discovering them.
    pub fn jwks_uri(mut self, uri: impl Into<String>) -> Self {
        self.jwks_uri = Some(uri.into());
        self
    }

    /// The shortest time between two fetches of the keys (10 s by default): a token with an unknown `kid`
    /// inside it is refused without asking the issuer.
    pub fn min_refresh_interval(mut self, interval: Duration) -> Self {
        self.min_refresh = interval;
        self
    }

    /// The HTTP client for the issuer (timeouts, proxies, extra roots); a default one with a 5 s timeout
    /// otherwise.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// Asks the issuer's introspection endpoint (RFC 7662) about each token that verified, as the
    /// confidential client `client_id`, keeping each answer for `cache_for`: a revoked session is refused
    /// within that time instead of at the token's expiry, for one request to the issuer per token and period.
    pub fn introspection(
        mut self,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        cache_for: Duration,
    ) -> Self {
        self.introspection = Some((client_id.into(), client_secret.into(), cache_for));
        self
    }

    /// The verifier. Without an audience it would accept tokens meant for anyone, so it then expects
    /// `latchkey`, the audience of Latchkey's own API tokens.
    pub fn build(self) -> Verifier {
        let issuer = self.issuer.trim_end_matches('/').to_string();
        let audience = if self.audience.is_empty() { vec!["latchkey".to_string()] } else { self.audience };
        let http = self
            .http
            .unwrap_or_else(|| reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap_or_default());
        let introspection =
            self.introspection.map(|(id, secret, ttl)| introspection::Introspector::new(id, secret, ttl));
        Verifier {
            inner: Arc::new(Inner {
                issuer,
                audience,
                leeway: self.leeway,
                configured_jwks_uri: self.jwks_uri,
                min_refresh: self.min_refresh,
                http,
                introspection,
                endpoints: tokio::sync::Mutex::new(None),
                keys: RwLock::new(Arc::new(KeySet::default())),
                last_fetch: tokio::sync::Mutex::new(None),
            }),
        }
    }
}

/// Verifies access tokens of one issuer for one audience; cheap to clone (the key cache is shared).
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    issuer: String,
    audience: Vec<String>,
    leeway: Duration,
    configured_jwks_uri: Option<String>,
    min_refresh: Duration,
    http: reqwest::Client,
    introspection: Option<introspection::Introspector>,
    endpoints: tokio::sync::Mutex<Option<Endpoints>>,
    keys: RwLock<Arc<KeySet>>,
    /// When the keys were last fetched; held while fetching, so parallel misses fetch once.
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
}

#[derive(Clone)]
struct Endpoints {
    jwks_uri: String,
    introspection: Option<String>,
}

impl Verifier {
    /// A verifier for tokens issued by `issuer` (e.g. `https://auth.example.com`).
    pub fn builder(issuer: impl Into<String>) -> VerifierBuilder {
        VerifierBuilder {
            issuer: issuer.into(),
            audience: Vec::new(),
            leeway: Duration::from_secs(5),
            jwks_uri: None,
            min_refresh: Duration::from_secs(10),
            http: None,
            introspection: None,
        }
    }

    /// The issuer this verifier trusts.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// Verifies `token` and returns its claims.
    pub async fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(VerifyError::Malformed);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
        let is_access_token = header
            .typ
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt"));
        if !is_access_token {
            return Err(VerifyError::WrongType);
        }
        let kid = header.kid.as_deref().ok_or(VerifyError::UnknownKey)?;
        let keys = match self.known_keys(kid) {
            Some(keys) => keys,
            None => {
                self.refresh_keys().await?;
                self.known_keys(kid).ok_or(VerifyError::UnknownKey)?
            }
        };
        let (alg, key) = keys.get(kid).ok_or(VerifyError::UnknownKey)?;
        if header.alg != *alg {
            return Err(VerifyError::WrongAlgorithm);
        }
        let mut validation = Validation::new(*alg);
        validation.set_issuer(&[&self.inner.issuer]);
        validation.set_audience(&self.inner.audience);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = self.inner.leeway.as_secs();
        let claims = jsonwebtoken::decode::<Claims>(token, key, &validation).map_err(|e| match e.kind() {
            ErrorKind::InvalidSignature => VerifyError::BadSignature,
            ErrorKind::ExpiredSignature => VerifyError::Expired,
            ErrorKind::ImmatureSignature => VerifyError::NotYetValid,
            ErrorKind::InvalidIssuer => VerifyError::WrongIssuer,
            ErrorKind::InvalidAudience => VerifyError::WrongAudience,
            ErrorKind::InvalidAlgorithm => VerifyError::WrongAlgorithm,
            _ => VerifyError::Malformed,
        })?;
        if let Some(introspector) = &self.inner.introspection {
            let endpoint = self.endpoints().await?.introspection.ok_or_else(|| {
                VerifyError::IssuerUnavailable("the issuer's discovery names no introspection endpoint".into())
            })?;
            if !introspector.is_active(&self.inner.http, &endpoint, token).await? {
                return Err(VerifyError::Revoked);
            }
        }
        Ok(claims.claims)
    }

    /// The cached keys, when they hold `kid`.
    fn known_keys(&self, kid: &str) -> Option<Arc<KeySet>> {
        let keys = self.inner.keys.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        keys.get(kid).is_some().then_some(keys)
    }

    /// Fetches the keys again, unless they were fetched less than `min_refresh` ago.
    async fn refresh_keys(&self) -> Result<(), VerifyError> {
        let mut last = self.inner.last_fetch.lock().await;
        if last.is_some_and(|at| at.elapsed() < self.inner.min_refresh) {
            return Ok(());
        }
        *last = Some(Instant::now());
        let jwks_uri = self.endpoints().await?.jwks_uri;
        let jwks: serde_json::Value = self.get_json(&jwks_uri).await?;
        let keys = KeySet::parse(&jwks);
        *self.inner.keys.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(keys);
        Ok(())
    }

    /// The issuer's JWKS and introspection addresses: from its discovery document, whose `issuer` must be the
    /// one trusted, or the configured JWKS address; `/.well-known/jwks.json` when there is no discovery.
    async fn endpoints(&self) -> Result<Endpoints, VerifyError> {
        let mut known = self.inner.endpoints.lock().await;
        if let Some(endpoints) = known.as_ref() {
            return Ok(endpoints.clone());
        }
        let issuer = &self.inner.issuer;
        let discovered = self.get_json(&format!("{issuer}/.well-known/openid-configuration")).await;
        let configured = self.inner.configured_jwks_uri.clone();
        let well_known = || format!("{issuer}/.well-known/jwks.json");
        let endpoints = match discovered {
            Ok(doc) => {
                if doc.get("issuer").and_then(|i| i.as_str()) != Some(issuer.as_str()) {
                    return Err(VerifyError::IssuerUnavailable("the discovery document names another issuer".into()));
                }
                let field = |name: &str| doc.get(name).and_then(|v| v.as_str()).map(str::to_string);
                Endpoints {
                    jwks_uri: configured.or_else(|| field("jwks_uri")).unwrap_or_else(well_known),
                    introspection: field("introspection_endpoint"),
                }
            }
            Err(_) if self.inner.introspection.is_none() => {
                Endpoints { jwks_uri: configured.unwrap_or_else(well_known), introspection: None }
            }
            Err(e) => return Err(e),
        };
        *known = Some(endpoints.clone());
        Ok(endpoints)
    }

    async fn get_json(&self, url: &str) -> Result<serde_json::Value, VerifyError> {
        let unavailable = |e: reqwest::Error| VerifyError::IssuerUnavailable(format!("{url}: {e}"));
        let response = self.inner.http.get(url).send().await.and_then(reqwest::Response::error_for_status);
        response.map_err(unavailable)?.json().await.map_err(unavailable)
    }
}
