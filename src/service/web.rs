//! Browser sessions for the web pages. The cookie holds an opaque 256-bit token (stored by SHA-256), never
//! a JWT. Every authentication step issues a new token and deletes the old row: a pre-session (CSRF for the
//! login form; stateless, see `domain::pre_session`), then a sign-in waiting for its second factor, then the
//! signed-in session, which points at an ordinary session row, so that the session list, revocation, idle
//! timeout and audit apply unchanged.

use uuid::Uuid;

use super::{
    Client, Services,
    accounts::NewAccount,
    mfa::{LoginOutcome, Proof},
    passkeys::Ceremony,
    sessions::IssuedTokens,
};
use crate::{
    clock,
    domain::{pre_session::PreSessions, random, return_to::Destinations, tokens::AccessClaims},
    error::{Error, Result},
    store::{
        oauth, sessions,
        users::{self, UserRecord},
        web_sessions::{self, WebSessionRecord},
    },
};

/// Page views refresh the session's last use at most this often (the idle timeout counts from it).
const TOUCH_EVERY_MS: i64 = 60 * 1000;

pub enum BrowserState {
    Anonymous,
    SecondFactorOwed {
        sealed_mfa_token: Vec<u8>,
    },
    /// `auth_time`: when the session signed in (Unix seconds), for OpenID Connect's `max_age` and `auth_time`.
    SignedIn {
        user: Box<UserRecord>,
        claims: Box<AccessClaims>,
        auth_time: i64,
    },
}

pub struct BrowserSession {
    pub token_hash: String,
    pub csrf: String,
    pub state: BrowserState,
}

/// A step that changed the browser session: the new cookie value, and what it now is.
pub struct Step {
    pub cookie: String,
    pub signed_in: bool,
    pub device_token: Option<String>,
}

impl Services {
    /// The browser session a cookie names, if it is still good (its sign-in not revoked, expired or idle).
    pub async fn web_session(&self, cookie: &str) -> Result<Option<BrowserSession>> {
        let now = clock::now_ms();
        if PreSessions::is_pre_session(cookie) {
            let csrf = self.pre_sessions.csrf_for(cookie, now / 1000);
            let token_hash = random::token_digest(cookie);
            return Ok(csrf.map(|csrf| BrowserSession { token_hash, csrf, state: BrowserState::Anonymous }));
        }
        let Some(row) = web_sessions::find(self.db.pool(), &random::token_digest(cookie), now).await? else {
            return Ok(None);
        };
        let state = match (row.session_id, row.sealed_mfa_token) {
            (Some(session_id), _) => {
                let Some(session) = sessions::find_live(self.db.pool(), session_id, now, self.idle_cutoff(now)).await?
                else {
                    return Ok(None);
                };
                let Some(user) =
                    users::find_by_id(self.db.pool(), session.user_id).await?.filter(|u| u.profile.is_active)
                else {
                    return Ok(None);
                };
                if now - session.last_used_at > TOUCH_EVERY_MS {
                    let mut conn = self.db.pool().acquire().await?;
                    sessions::touch(&mut conn, session.id, now).await?;
                }
                let claims = AccessClaims {
                    iss: self.config.issuer.clone(),
                    sub: user.profile.id,
                    aud: self.config.audience.clone(),
                    exp: session.expires_at / 1000,
                    iat: now / 1000,
                    jti: Uuid::new_v4(),
                    sid: session.id,
                    role: user.profile.role,
                    mfa: session.mfa,
                    amr: session.amr.clone(),
                    orgs: vec![],
                };
                BrowserState::SignedIn {
                    user: Box::new(user),
                    claims: Box::new(claims),
                    auth_time: session.created_at / 1000,
                }
            }
            (None, Some(sealed_mfa_token)) => BrowserState::SecondFactorOwed { sealed_mfa_token },
            (None, None) => BrowserState::Anonymous,
        };
        Ok(Some(BrowserSession { token_hash: row.token_hash, csrf: row.csrf, state }))
    }

    /// Where a finished sign-in goes: `next` when it may be followed (`domain::return_to`), else the
    /// account page.
    pub fn web_return_to(&self, next: Option<&str>) -> String {
        let destinations = Destinations {
            issuer: &self.config.issuer,
            cookie_domain: self.config.cookie_domain.as_deref(),
            protects: |host: &str| self.access_rules.names_host(host),
        };
        next.and_then(|next| destinations.check(next)).unwrap_or_else(|| "/account".into())
    }

    /// A pre-session for the sign-in forms: its cookie value and CSRF token. Nothing is stored.
    pub fn web_pre_session(&self) -> (String, String) {
        self.pre_sessions.issue(clock::now_ms() / 1000)
    }

    /// Stores a new browser session (deleting `old`); returns its cookie value and CSRF token.
    async fn web_replace(
        &self,
        old: Option<&str>,
        session_id: Option<Uuid>,
        sealed_mfa_token: Option<Vec<u8>>,
        expires_at: i64,
    ) -> Result<(String, String)> {
        let cookie = random::opaque_token();
        let csrf = random::opaque_token();
        let row = WebSessionRecord {
            token_hash: random::token_digest(&cookie),
            session_id,
            sealed_mfa_token,
            csrf: csrf.clone(),
            expires_at,
        };
        let now = clock::now_ms();
        let mut tx = self.db.begin().await?;
        if let Some(old) = old {
            web_sessions::delete(&mut tx, old).await?;
        }
        web_sessions::delete_expired(&mut tx, now).await?;
        web_sessions::insert(&mut tx, &row, now).await?;
        tx.commit().await?;
        Ok((cookie, csrf))
    }

    async fn web_signed_in(&self, old: &BrowserSession, tokens: IssuedTokens) -> Result<Step> {
        if let BrowserState::SignedIn { claims, .. } = &old.state
            && claims.sid != tokens.session_id
        {
            self.replace_signed_in(claims, tokens.session_id).await?;
        }
        let expires_at = clock::now_ms() + clock::duration_ms(self.config.refresh_ttl);
        let (cookie, _) = self.web_replace(Some(&old.token_hash), Some(tokens.session_id), None, expires_at).await?;
        Ok(Step { cookie, signed_in: true, device_token: tokens.device_token })
    }

    /// A signed-in browser that signed in again (an application asked for `prompt=login`) or gave its second
    /// factor: the applications it approved move to the new session, and the old one ends.
    async fn replace_signed_in(&self, old: &AccessClaims, new_session: Uuid) -> Result<()> {
        let now = clock::now_ms();
        let mut tx = self.db.begin().await?;
        oauth::move_grants(&mut tx, old.sid, new_session, old.sub).await?;
        sessions::revoke(&mut tx, old.sid, old.sub, now, "signed_in_again").await?;
        tx.commit().await?;
        self.revocations.add([old.sid], now);
        Ok(())
    }

    /// The login form: the same checks, lockout and audit as the API.
    pub async fn web_sign_in(
        &self,
        current: &BrowserSession,
        identifier: &str,
        password: &str,
        device_token: Option<&str>,
        client: &Client,
    ) -> Result<Step> {
        match self.login(identifier, password, device_token, client).await? {
            LoginOutcome::Tokens(tokens) => self.web_signed_in(current, tokens).await,
            LoginOutcome::SecondFactorOwed { mfa_token, .. } => {
                let sealed = self.sealer.seal(mfa_token.as_bytes(), "web-mfa-token");
                let expires_at = clock::now_ms() + clock::duration_ms(self.config.mfa_token_ttl);
                let (cookie, _) = self.web_replace(Some(&current.token_hash), None, Some(sealed), expires_at).await?;
                Ok(Step { cookie, signed_in: false, device_token: None })
            }
        }
    }

    /// The `mfa_token` of a browser's pending sign-in.
    pub fn web_mfa_token(&self, current: &BrowserSession) -> Result<String> {
        let BrowserState::SecondFactorOwed { sealed_mfa_token } = &current.state else {
            return Err(Error::InvalidToken);
        };
        let mfa_token = self
            .sealer
            .open(sealed_mfa_token, "web-mfa-token")
            .map_err(|e| Error::Internal(anyhow::Error::new(e).context("a pending sign-in does not open")))?;
        Ok(String::from_utf8_lossy(&mfa_token).into_owned())
    }

    pub async fn web_second_factor(&self, current: &BrowserSession, proof: Proof<'_>, client: &Client) -> Result<Step> {
        let mfa_token = self.web_mfa_token(current)?;
        let tokens = self.mfa_challenge(&mfa_token, proof, client).await?;
        self.web_signed_in(current, tokens).await
    }

    /// A sign-in with a passkey (`passkey_login_finish`) from a sign-in page.
    pub async fn web_passkey_sign_in(
        &self,
        current: &BrowserSession,
        challenge_id: &str,
        credential: &webauthn_rs_core::proto::PublicKeyCredential,
        device_token: Option<&str>,
        client: &Client,
    ) -> Result<Step> {
        let tokens = self.passkey_login_finish(challenge_id, credential, device_token, client).await?;
        self.web_signed_in(current, tokens).await
    }

    /// The second factor for a session signed in with one (see `mfa_step_up`).
    pub async fn web_step_up(&self, current: &BrowserSession, proof: Proof<'_>, client: &Client) -> Result<Step> {
        let BrowserState::SignedIn { claims, .. } = &current.state else {
            return Err(Error::InvalidToken);
        };
        let tokens = self.mfa_step_up(claims, proof, client).await?;
        self.web_signed_in(current, tokens).await
    }

    /// A passkey ceremony for `/login/mfa`: the second step of a pending sign-in, or a signed-in session's
    /// step-up.
    pub async fn web_second_factor_passkey_start(&self, current: &BrowserSession) -> Result<Ceremony> {
        match &current.state {
            BrowserState::SignedIn { claims, .. } => self.passkey_step_up_start(claims).await,
            _ => self.passkey_mfa_start(&self.web_mfa_token(current)?).await,
        }
    }

    /// Whether `/login/mfa` offers a passkey: the account behind the pending sign-in or session has one.
    pub async fn web_second_factor_has_passkey(&self, current: &BrowserSession) -> Result<bool> {
        let user_id = match &current.state {
            BrowserState::SignedIn { claims, .. } => claims.sub,
            BrowserState::SecondFactorOwed { .. } => {
                let hash = random::token_digest(&self.web_mfa_token(current)?);
                match crate::store::mfa::challenge(self.db.pool(), &hash, "").await? {
                    Some(challenge) => challenge.user_id,
                    None => return Ok(false),
                }
            }
            BrowserState::Anonymous => return Ok(false),
        };
        Ok(crate::store::passkeys::count(self.db.pool(), user_id).await? > 0)
    }

    /// A registration, signed in at once; `None` when the address must be confirmed first.
    pub async fn web_register(
        &self,
        current: &BrowserSession,
        new: NewAccount<'_>,
        client: &Client,
    ) -> Result<Option<Step>> {
        let (_, tokens) = self.register(new, client).await?;
        match tokens {
            Some(tokens) => self.web_signed_in(current, tokens).await.map(Some),
            None => Ok(None),
        }
    }

    /// Ends the sign-in behind the browser session (as `/auth/logout` does) and forgets the session.
    pub async fn web_sign_out(&self, current: &BrowserSession, client: &Client) -> Result<()> {
        if let BrowserState::SignedIn { claims, .. } = &current.state {
            self.logout(claims, client).await?;
        }
        let mut conn = self.db.pool().acquire().await?;
        web_sessions::delete(&mut conn, &current.token_hash).await
    }
}
