//! Every setting, read once from the environment (API.md lists them).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::{Context, bail};
use zeroize::Zeroizing;

/// How access tokens are signed.
#[derive(Clone)]
pub enum JwtSigning {
    /// Ed25519 keys generated on first start and sealed in the database.
    EdDsa,
    /// A shared secret of at least 256 bits, for deployments whose resource servers cannot do EdDSA.
    Hs256(Zeroizing<Vec<u8>>),
}

impl std::fmt::Debug for JwtSigning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::EdDsa => f.write_str("EdDSA"),
            Self::Hs256(_) => f.write_str("HS256(<redacted>)"),
        }
    }
}

/// Where the 32-byte key that seals secrets at rest comes from.
#[derive(Clone)]
pub enum SecretKeySource {
    Inline(Zeroizing<[u8; 32]>),
    File(PathBuf),
}

impl std::fmt::Debug for SecretKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Inline(_) => f.write_str("LATCHKEY_SECRET_KEY(<redacted>)"),
            Self::File(path) => write!(f, "File({})", path.display()),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub bind: SocketAddr,
    pub database_url: String,
    pub issuer: String,
    pub audience: String,
    /// The issuer authenticator apps show next to the account.
    pub mfa_issuer: String,
    /// Lifetime of a login's `mfa_token` (API.md: 5 minutes; only tests shorten it).
    pub mfa_token_ttl: Duration,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub session_idle: Duration,
    pub password_min_length: usize,
    /// Requests per client IP and minute on register, login, MFA challenge and refresh; 0 turns it off.
    pub rate_limit_per_minute: u32,
    /// Shares rate-limit counters between instances.
    pub redis_url: Option<String>,
    /// Administrative endpoints need a session that passed the second factor.
    pub admin_require_mfa: bool,
    /// Audit events older than this many days are deleted by the pruning job.
    pub audit_retention_days: u32,
    /// When set, `/metrics` needs `Authorization: Bearer <it>`.
    pub metrics_token: Option<String>,
    /// Origins allowed to call the API from a browser (CORS); none by default.
    pub cors_origins: Vec<axum::http::HeaderValue>,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Consecutive failed logins for one identifier (or one device) that lock it.
    pub lockout_threshold: u32,
    pub lockout: Duration,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    /// How many password hashes may run at once; the rest queue.
    pub hash_concurrency: usize,
    pub secret_key: SecretKeySource,
    pub jwt_signing: JwtSigning,
    /// How often each instance re-reads revoked sessions written by other instances.
    pub revocation_poll: Duration,
    /// How often each instance looks for signing keys rotated by another process.
    pub key_reload: Duration,
    /// How often each instance looks for due deliveries in the outbox, and the first retry's delay (each
    /// later one doubles it).
    pub outbox_poll: Duration,
    pub outbox_retry: Duration,
    pub log_json: bool,
    /// Password checks waiting for a hashing thread beyond this many are refused with 503.
    pub hash_queue: usize,
    /// The forward-authentication rules file (`LATCHKEY_ACCESS_RULES`).
    pub access_rules: Option<PathBuf>,
    /// `LATCHKEY_COOKIE_DOMAIN`, lower case: the web session cookie is shared with its subdomains.
    pub cookie_domain: Option<String>,
    /// `LATCHKEY_WEBAUTHN_RP_ID`: the passkeys' relying-party id; the issuer's host without it.
    pub webauthn_rp_id: Option<String>,
    /// `LATCHKEY_WEBAUTHN_ORIGINS`: origins besides the issuer's that may run passkey ceremonies.
    pub webauthn_origins: Vec<String>,
    pub connections: crate::edge::serve::ConnectionLimits,
    /// `LATCHKEY_SMTP_URL` in lettre's form (it may hold a password: never logged); no mail without it.
    pub smtp_url: Option<String>,
    /// `LATCHKEY_MAIL_FROM`; `Latchkey <noreply@HOST>` (HOST from the issuer) without it.
    pub mail_from: Option<String>,
    /// How long a password-reset link works.
    pub reset_ttl: Duration,
    /// Self-registered accounts sign in only once their address is confirmed (needs mail).
    pub require_email_verification: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: "sqlite://latchkey.db".into(),
            issuer: "http://localhost:8080".into(),
            audience: "latchkey".into(),
            mfa_issuer: "Latchkey".into(),
            mfa_token_ttl: Duration::from_secs(300),
            access_ttl: Duration::from_secs(900),
            refresh_ttl: Duration::from_secs(604_800),
            session_idle: Duration::from_secs(86_400),
            password_min_length: 12,
            rate_limit_per_minute: 60,
            redis_url: None,
            trusted_proxies: Vec::new(),
            cors_origins: Vec::new(),
            metrics_token: None,
            audit_retention_days: 365,
            admin_require_mfa: true,
            lockout_threshold: 5,
            lockout: Duration::from_secs(1800),
            argon2_memory_kib: 19_456,
            argon2_iterations: 2,
            hash_concurrency: std::thread::available_parallelism().map_or(2, |n| n.get()),
            secret_key: SecretKeySource::File(PathBuf::from("latchkey.key")),
            jwt_signing: JwtSigning::EdDsa,
            revocation_poll: Duration::from_millis(500),
            key_reload: Duration::from_secs(30),
            smtp_url: None,
            mail_from: None,
            reset_ttl: Duration::from_secs(1800),
            require_email_verification: false,
            outbox_poll: Duration::from_secs(1),
            outbox_retry: Duration::from_secs(2),
            log_json: false,
            hash_queue: 64,
            access_rules: None,
            cookie_domain: None,
            webauthn_rp_id: None,
            webauthn_origins: Vec::new(),
            connections: crate::edge::serve::ConnectionLimits {
                header_read: Duration::from_secs(10),
                idle: Duration::from_secs(60),
                max_connections: 4096,
            },
        }
    }
}

/// The `LATCHKEY_*` names this build understands; any other is reported at start-up as a likely typo.
const KNOWN: &[&str] = &[
    "LATCHKEY_BIND",
    "LATCHKEY_DATABASE_URL",
    "LATCHKEY_ISSUER",
    "LATCHKEY_AUDIENCE",
    "LATCHKEY_MFA_ISSUER",
    "LATCHKEY_ACCESS_TTL_SECONDS",
    "LATCHKEY_REFRESH_TTL_SECONDS",
    "LATCHKEY_SESSION_IDLE_SECONDS",
    "LATCHKEY_PASSWORD_MIN_LENGTH",
    "LATCHKEY_LOCKOUT_THRESHOLD",
    "LATCHKEY_RATE_LIMIT_PER_MINUTE",
    "LATCHKEY_REDIS_URL",
    "LATCHKEY_TRUSTED_PROXIES",
    "LATCHKEY_CORS_ORIGINS",
    "LATCHKEY_METRICS_TOKEN",
    "LATCHKEY_AUDIT_RETENTION_DAYS",
    "LATCHKEY_ADMIN_REQUIRE_MFA",
    "LATCHKEY_LOCKOUT_SECONDS",
    "LATCHKEY_ARGON2_MEMORY_KIB",
    "LATCHKEY_ARGON2_ITERATIONS",
    "LATCHKEY_HASH_CONCURRENCY",
    "LATCHKEY_SECRET_KEY",
    "LATCHKEY_KEY_FILE",
    "LATCHKEY_JWT_ALG",
    "LATCHKEY_JWT_HS256_SECRET",
    "LATCHKEY_REVOCATION_POLL_MS",
    "LATCHKEY_LOG_FORMAT",
    "LATCHKEY_HASH_QUEUE",
    "LATCHKEY_ACCESS_RULES",
    "LATCHKEY_COOKIE_DOMAIN",
    "LATCHKEY_HEADER_READ_TIMEOUT_SECONDS",
    "LATCHKEY_IDLE_TIMEOUT_SECONDS",
    "LATCHKEY_MAX_CONNECTIONS",
    "LATCHKEY_SMTP_URL",
    "LATCHKEY_MAIL_FROM",
    "LATCHKEY_RESET_TTL_SECONDS",
    "LATCHKEY_REQUIRE_EMAIL_VERIFICATION",
];

impl Config {
    /// Reads the process environment over the defaults.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Names that look like settings but are not ones Latchkey knows.
    pub fn unknown_env_names() -> Vec<String> {
        std::env::vars()
            .map(|(name, _)| name)
            .filter(|name| name.starts_with("LATCHKEY_") && !KNOWN.contains(&name.as_str()))
            .filter(|name| !name.starts_with("LATCHKEY_TEST_"))
            .collect()
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let mut c = Self::default();
        let parse = |name: &str| -> anyhow::Result<Option<u64>> {
            get(name)
                .map(|v| v.trim().parse::<u64>().with_context(|| format!("{name} must be a whole number, got {v:?}")))
                .transpose()
        };
        let secs = |name: &str, default: Duration| -> anyhow::Result<Duration> {
            match parse(name)? {
                Some(0) => bail!("{name} must be greater than 0"),
                Some(n) => Ok(Duration::from_secs(n)),
                None => Ok(default),
            }
        };

        if let Some(bind) = get("LATCHKEY_BIND") {
            c.bind = bind.parse().with_context(|| format!("LATCHKEY_BIND must be host:port, got {bind:?}"))?;
        }
        if let Some(url) = get("LATCHKEY_DATABASE_URL") {
            c.database_url = url;
        }
        if let Some(issuer) = get("LATCHKEY_ISSUER") {
            c.issuer = issuer;
        }
        if let Some(aud) = get("LATCHKEY_AUDIENCE") {
            c.audience = aud;
        }
        if let Some(issuer) = get("LATCHKEY_MFA_ISSUER") {
            c.mfa_issuer = issuer;
        }
        c.access_ttl = secs("LATCHKEY_ACCESS_TTL_SECONDS", c.access_ttl)?;
        c.refresh_ttl = secs("LATCHKEY_REFRESH_TTL_SECONDS", c.refresh_ttl)?;
        c.session_idle = secs("LATCHKEY_SESSION_IDLE_SECONDS", c.session_idle)?;
        if let Some(n) = parse("LATCHKEY_PASSWORD_MIN_LENGTH")? {
            if !(8..=256).contains(&n) {
                bail!("LATCHKEY_PASSWORD_MIN_LENGTH must be between 8 and 256");
            }
            c.password_min_length = n as usize;
        }
        if let Some(n) = parse("LATCHKEY_RATE_LIMIT_PER_MINUTE")? {
            c.rate_limit_per_minute = u32::try_from(n).context("LATCHKEY_RATE_LIMIT_PER_MINUTE is too large")?;
        }
        c.redis_url = get("LATCHKEY_REDIS_URL").filter(|u| !u.trim().is_empty());
        c.smtp_url = get("LATCHKEY_SMTP_URL").filter(|u| !u.trim().is_empty());
        c.mail_from = get("LATCHKEY_MAIL_FROM").filter(|f| !f.trim().is_empty());
        c.reset_ttl = secs("LATCHKEY_RESET_TTL_SECONDS", c.reset_ttl)?;
        if let Some(list) = get("LATCHKEY_TRUSTED_PROXIES") {
            c.trusted_proxies = crate::domain::client_ip::parse_trusted(&list)
                .map_err(|e| anyhow::anyhow!("LATCHKEY_TRUSTED_PROXIES: {e}"))?;
        }
        c.metrics_token = get("LATCHKEY_METRICS_TOKEN").filter(|t| !t.is_empty());
        c.require_email_verification = match get("LATCHKEY_REQUIRE_EMAIL_VERIFICATION").as_deref().map(str::trim) {
            None | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(other) => bail!("LATCHKEY_REQUIRE_EMAIL_VERIFICATION must be true or false, got {other:?}"),
        };
        c.admin_require_mfa = match get("LATCHKEY_ADMIN_REQUIRE_MFA").as_deref().map(str::trim) {
            None | Some("true") | Some("1") => true,
            Some("false") | Some("0") => false,
            Some(other) => bail!("LATCHKEY_ADMIN_REQUIRE_MFA must be true or false, got {other:?}"),
        };
        if let Some(days) = parse("LATCHKEY_AUDIT_RETENTION_DAYS")? {
            c.audit_retention_days = u32::try_from(days)
                .ok()
                .filter(|d| *d >= 1)
                .context("LATCHKEY_AUDIT_RETENTION_DAYS must be 1 or more")?;
        }
        if let Some(list) = get("LATCHKEY_CORS_ORIGINS") {
            c.cors_origins = parse_origins(&list)?;
        }
        if let Some(n) = parse("LATCHKEY_LOCKOUT_THRESHOLD")? {
            if !(1..=100).contains(&n) {
                bail!("LATCHKEY_LOCKOUT_THRESHOLD must be between 1 and 100 (NIST SP 800-63B allows at most 100)");
            }
            c.lockout_threshold = n as u32;
        }
        c.lockout = secs("LATCHKEY_LOCKOUT_SECONDS", c.lockout)?;
        if let Some(n) = parse("LATCHKEY_ARGON2_MEMORY_KIB")? {
            c.argon2_memory_kib = u32::try_from(n).context("LATCHKEY_ARGON2_MEMORY_KIB is too large")?;
        }
        if let Some(n) = parse("LATCHKEY_ARGON2_ITERATIONS")? {
            c.argon2_iterations = u32::try_from(n).context("LATCHKEY_ARGON2_ITERATIONS is too large")?;
        }
        if let Some(n) = parse("LATCHKEY_HASH_CONCURRENCY")? {
            c.hash_concurrency = (n as usize).max(1);
        }
        c.access_rules = get("LATCHKEY_ACCESS_RULES").filter(|p| !p.trim().is_empty()).map(PathBuf::from);
        c.cookie_domain = get("LATCHKEY_COOKIE_DOMAIN")
            .map(|d| d.trim().trim_start_matches('.').to_ascii_lowercase())
            .filter(|d| !d.is_empty());
        c.webauthn_rp_id =
            get("LATCHKEY_WEBAUTHN_RP_ID").map(|d| d.trim().to_ascii_lowercase()).filter(|d| !d.is_empty());
        c.webauthn_origins = get("LATCHKEY_WEBAUTHN_ORIGINS")
            .map(|list| list.split(',').map(str::trim).filter(|o| !o.is_empty()).map(String::from).collect())
            .unwrap_or_default();
        if let Some(n) = parse("LATCHKEY_HASH_QUEUE")? {
            c.hash_queue = usize::try_from(n).context("LATCHKEY_HASH_QUEUE is too large")?.max(1);
        }
        c.connections.header_read = secs("LATCHKEY_HEADER_READ_TIMEOUT_SECONDS", c.connections.header_read)?;
        c.connections.idle = secs("LATCHKEY_IDLE_TIMEOUT_SECONDS", c.connections.idle)?;
        if let Some(n) = parse("LATCHKEY_MAX_CONNECTIONS")? {
            c.connections.max_connections =
                usize::try_from(n).ok().filter(|n| *n >= 1).context("LATCHKEY_MAX_CONNECTIONS must be 1 or more")?;
        }
        if let Some(ms) = parse("LATCHKEY_REVOCATION_POLL_MS")? {
            c.revocation_poll = Duration::from_millis(ms.max(50));
        }
        if let Some(hex_key) = get("LATCHKEY_SECRET_KEY") {
            c.secret_key = SecretKeySource::Inline(parse_secret_key(&hex_key)?);
        } else if let Some(path) = get("LATCHKEY_KEY_FILE") {
            c.secret_key = SecretKeySource::File(PathBuf::from(path));
        }
        c.jwt_signing = match get("LATCHKEY_JWT_ALG").as_deref().map(str::trim) {
            None | Some("EdDSA") => JwtSigning::EdDsa,
            Some("HS256") => {
                let secret = get("LATCHKEY_JWT_HS256_SECRET")
                    .context("LATCHKEY_JWT_ALG=HS256 needs LATCHKEY_JWT_HS256_SECRET (64+ hex characters)")?;
                JwtSigning::Hs256(parse_hs256_secret(&secret)?)
            }
            Some(other) => bail!("LATCHKEY_JWT_ALG must be EdDSA or HS256, got {other:?}"),
        };
        c.log_json = match get("LATCHKEY_LOG_FORMAT").as_deref() {
            None | Some("text") => false,
            Some("json") => true,
            Some(other) => bail!("LATCHKEY_LOG_FORMAT must be text or json, got {other:?}"),
        };
        c.validate()?;
        Ok(c)
    }

    /// The host of `issuer`, lower case, without port.
    /// The sender of every mail.
    pub fn mail_sender(&self) -> String {
        self.mail_from.clone().unwrap_or_else(|| format!("Latchkey <noreply@{}>", self.issuer_host()))
    }

    pub fn issuer_host(&self) -> String {
        let uri: Option<axum::http::Uri> = self.issuer.parse().ok();
        uri.and_then(|u| u.host().map(str::to_ascii_lowercase)).unwrap_or_default()
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        if self.require_email_verification && self.smtp_url.is_none() {
            bail!("LATCHKEY_REQUIRE_EMAIL_VERIFICATION needs mail: set LATCHKEY_SMTP_URL too");
        }
        argon2::Params::new(self.argon2_memory_kib, self.argon2_iterations, 1, None)
            .map_err(|e| anyhow::anyhow!("invalid Argon2 parameters: {e}"))?;
        if self.access_ttl > self.refresh_ttl {
            bail!("LATCHKEY_ACCESS_TTL_SECONDS must not exceed LATCHKEY_REFRESH_TTL_SECONDS");
        }
        if let Some(domain) = &self.cookie_domain {
            let host = self.issuer_host();
            if !crate::domain::passkeys::covers(domain, &host) {
                bail!(
                    "LATCHKEY_COOKIE_DOMAIN must be the issuer's host or a domain above it (browsers refuse any \
                     other), got {domain:?} for the issuer host {host:?}"
                );
            }
        }
        if let Some(rp_id) = &self.webauthn_rp_id {
            let host = self.issuer_host();
            if !crate::domain::passkeys::covers(rp_id, &host) {
                bail!(
                    "LATCHKEY_WEBAUTHN_RP_ID must be the issuer's host or a domain above it (browsers refuse any \
                     other), got {rp_id:?} for the issuer host {host:?}"
                );
            }
        }
        Ok(())
    }

    /// The passkeys' relying-party id.
    pub fn rp_id(&self) -> String {
        self.webauthn_rp_id.clone().unwrap_or_else(|| self.issuer_host())
    }
}

/// `LATCHKEY_CORS_ORIGINS`: comma-separated `scheme://host[:port]` origins, matched exactly.
fn parse_origins(list: &str) -> anyhow::Result<Vec<axum::http::HeaderValue>> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|origin| {
            let shaped = (origin.starts_with("https://") || origin.starts_with("http://"))
                && !origin.trim_end_matches('/').contains(['*', ' '])
                && origin.matches('/').count() == 2;
            if !shaped {
                bail!(
                    "LATCHKEY_CORS_ORIGINS: {origin:?} is not an origin like https://app.example (no path, no wildcard)"
                );
            }
            axum::http::HeaderValue::from_str(origin).context("LATCHKEY_CORS_ORIGINS: not a valid header value")
        })
        .collect()
}

/// `LATCHKEY_SECRET_KEY`: exactly 32 bytes as hex, as `openssl rand -hex 32` prints them.
pub fn parse_secret_key(text: &str) -> anyhow::Result<Zeroizing<[u8; 32]>> {
    let mut key = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(text.trim(), key.as_mut_slice())
        .map_err(|_| anyhow::anyhow!("the secret key must be 64 hex characters (openssl rand -hex 32)"))?;
    Ok(key)
}

/// RFC 8725 §3.5: an HMAC key must be random and at least as long as the hash output.
fn parse_hs256_secret(text: &str) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let bytes = Zeroizing::new(
        hex::decode(text.trim())
            .map_err(|_| anyhow::anyhow!("LATCHKEY_JWT_HS256_SECRET must be hex (openssl rand -hex 32)"))?,
    );
    if bytes.len() < 32 {
        bail!("LATCHKEY_JWT_HS256_SECRET must hold at least 32 random bytes (64 hex characters)");
    }
    let distinct = bytes.iter().collect::<std::collections::HashSet<_>>().len();
    if distinct < 8 {
        bail!("LATCHKEY_JWT_HS256_SECRET does not look random; generate it with openssl rand -hex 32");
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: std::collections::HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn defaults_match_the_contract() {
        let c = Config::from_lookup(env(&[])).unwrap();
        assert_eq!(c.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(c.access_ttl.as_secs(), 900);
        assert_eq!(c.refresh_ttl.as_secs(), 604_800);
        assert_eq!(c.password_min_length, 12);
        assert!(matches!(c.jwt_signing, JwtSigning::EdDsa));
    }

    #[test]
    fn weak_hs256_secrets_are_refused() {
        let short =
            env(&[("LATCHKEY_JWT_ALG", "HS256"), ("LATCHKEY_JWT_HS256_SECRET", "00112233445566778899aabbccddeeff")]);
        assert!(Config::from_lookup(short).is_err());
        let repeated = env(&[("LATCHKEY_JWT_ALG", "HS256"), ("LATCHKEY_JWT_HS256_SECRET", &"61".repeat(32))]);
        assert!(Config::from_lookup(repeated).is_err());
    }

    #[test]
    fn required_verification_needs_mail() {
        let without = Config::from_lookup(env(&[("LATCHKEY_REQUIRE_EMAIL_VERIFICATION", "true")])).unwrap_err();
        assert!(without.to_string().contains("LATCHKEY_SMTP_URL"));
        let with = env(&[("LATCHKEY_REQUIRE_EMAIL_VERIFICATION", "true"), ("LATCHKEY_SMTP_URL", "smtp://relay:25")]);
        assert!(Config::from_lookup(with).unwrap().require_email_verification);
        assert!(Config::from_lookup(env(&[("LATCHKEY_REQUIRE_EMAIL_VERIFICATION", "maybe")])).is_err());
    }

    #[test]
    fn bad_numbers_name_the_setting() {
        let err = Config::from_lookup(env(&[("LATCHKEY_ACCESS_TTL_SECONDS", "soon")])).unwrap_err();
        assert!(err.to_string().contains("LATCHKEY_ACCESS_TTL_SECONDS"));
    }
}
