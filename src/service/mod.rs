//! The flows (register, login, refresh, sessions, ...) over the store and the domain rules. Nothing here
//! knows about HTTP; handlers and the CLI call these.

pub mod accounts;
pub mod admin;
pub mod audit;
pub mod authorization;
pub mod cache;
pub mod dashboard;
pub mod end_session;
pub mod forward_auth;
pub mod housekeeping;
pub mod keys;
pub mod lockout;
pub mod mail;
pub mod mfa;
pub mod oauth_clients;
pub mod oidc;
pub mod orgs;
pub mod outbox;
pub mod passkeys;
pub mod passwords;
pub mod rate_limit;
pub mod recovery;
pub mod revocation;
pub mod sessions;
pub mod user_views;
pub mod verification;
pub mod web;

use std::sync::Arc;

use anyhow::Context;
use arc_swap::ArcSwap;

use crate::{
    config::Config,
    domain::{
        access_rules::AccessRules, backup_codes::CodeHasher, device_token::DeviceTokens, pre_session::PreSessions,
        seal::Sealer, tokens::KeyRing,
    },
    store::Db,
};

/// Who is on the other end of a request, as recorded in sessions and the audit log.
#[derive(Clone, Debug, Default)]
pub struct Client {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl Client {
    /// The client's address as mails about its requests show it.
    pub fn ip_or_unknown(&self) -> &str {
        self.ip.as_deref().unwrap_or("an unknown address")
    }
}

/// Everything a flow needs, built once at start-up and shared by every request.
pub struct Services {
    pub config: Config,
    pub db: Db,
    pub passwords: passwords::Passwords,
    /// Swapped whole when another process rotates the keys (see `keys::reload`).
    pub keys: ArcSwap<KeyRing>,
    /// Seals TOTP secrets at rest.
    pub sealer: Sealer,
    pub backup_codes: CodeHasher,
    pub devices: DeviceTokens,
    pub pre_sessions: PreSessions,
    pub revocations: Arc<revocation::Revocations>,
    pub verified_tokens: cache::VerifiedTokens,
    /// OAuth access tokens that verified, by their text, for userinfo and introspection (which resource
    /// servers may call on every request); revocation is still checked on every hit.
    pub verified_oauth_tokens: cache::Expiring<Box<str>, crate::domain::oauth::OauthAccessClaims>,
    /// Registered OAuth clients by id, read at most every few seconds (`oidc::known_client`).
    pub clients: cache::Expiring<String, crate::store::oauth::ClientRecord>,
    pub rate_limiter: rate_limit::RateLimiter,
    pub access_rules: AccessRules,
    pub remembered: forward_auth::Remembered,
    pub user_views: Arc<user_views::UserViews>,
    /// For what the outbox delivers to other servers: no redirects followed, rustls.
    pub http: reqwest::Client,
    pub relying_party: passkeys::RelyingParty,
    /// `None` without `LATCHKEY_SMTP_URL`: then no mail, and the flows that need it answer 404.
    pub mailer: Option<mail::Mailer>,
}

impl Services {
    /// Opens and migrates the database, unseals (or creates) the signing key, and loads recent revocations.
    pub async fn start(config: Config) -> anyhow::Result<Arc<Self>> {
        config.validate()?;
        let db = Db::connect(&config.database_url).await?;
        db.migrate().await?;
        let server_key = keys::load_secret_key(&config.secret_key)?;
        let sealer = Sealer::new(&server_key);
        let backup_codes = CodeHasher::new(&server_key);
        let devices = DeviceTokens::new(&server_key);
        let pre_sessions = PreSessions::new(&server_key);
        let keys = keys::load_key_ring(&config, &db, &sealer).await?;
        let passwords = passwords::Passwords::new(&config)?;
        let rate_limiter = rate_limit::RateLimiter::new(config.rate_limit_per_minute, config.redis_url.as_deref())?;
        let revocations = Arc::new(revocation::Revocations::new(&config));
        revocations.sync(&db).await.context("cannot read revoked sessions")?;
        let access_rules = load_access_rules(&config)?;
        let mailer = mail::Mailer::from_config(&config)?;
        let relying_party = passkeys::RelyingParty::from_config(&config)?;
        Ok(Arc::new(Self {
            config,
            db,
            passwords,
            keys: ArcSwap::from_pointee(keys),
            sealer,
            backup_codes,
            devices,
            pre_sessions,
            revocations,
            verified_tokens: Default::default(),
            verified_oauth_tokens: Default::default(),
            clients: Default::default(),
            rate_limiter,
            access_rules,
            remembered: Default::default(),
            user_views: Default::default(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("Latchkey/", env!("CARGO_PKG_VERSION")))
                .build()
                .context("cannot set up the HTTP client")?,
            relying_party,
            mailer,
        }))
    }
}

/// `LATCHKEY_ACCESS_RULES`, or without it: a signed-in user for every request to the issuer's host.
fn load_access_rules(config: &Config) -> anyhow::Result<AccessRules> {
    let Some(path) = &config.access_rules else {
        return Ok(AccessRules::signed_in_on(&[config.issuer_host()]));
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("LATCHKEY_ACCESS_RULES: cannot read {}", path.display()))?;
    AccessRules::parse(&text).map_err(|e| anyhow::anyhow!("LATCHKEY_ACCESS_RULES {}: {e}", path.display()))
}

/// Runs `job` every `period` until the runtime shuts down; a failed run is logged and the next one tries again.
pub(crate) fn spawn_periodic<F, Fut>(
    period: std::time::Duration,
    what: &'static str,
    job: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = crate::error::Result<()>> + Send,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = job().await {
                tracing::warn!(error = %e, "{what} failed; will try again");
            }
        }
    })
}
