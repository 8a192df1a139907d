//! Sessions and their tokens: opening one at login, refresh-token rotation with reuse detection, logout,
//! listing and revoking, and checking an access token on each request.

use sqlx::AnyConnection;
use uuid::Uuid;

use super::{
    Client, Services,
    audit::{self, Event},
};
use crate::{
    clock,
    domain::{
        random,
        roles::Role,
        tokens::{AccessClaims, InvalidToken, OrgClaim},
    },
    error::{Error, Result},
    store::{
        orgs,
        sessions::{self, SessionRecord},
        users::UserRecord,
    },
};

/// What a completed login, registration or refresh hands the client.
#[derive(Debug)]
pub struct IssuedTokens {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: i64,
    /// When the access token expires (Unix ms); the session records it for the revocation set.
    pub access_expires_at: i64,
    /// Set when a sign-in completed: proof for later logins that this client is a known device.
    pub device_token: Option<String>,
    pub session_id: Uuid,
}

impl Services {
    /// Checks a bearer access token: signature and claims (or a cached earlier verification of the same
    /// token), then that its session has not been revoked. No database read: revocations are in memory.
    pub fn authenticate(&self, token: &str) -> Result<AccessClaims> {
        let now = clock::now_ms() / 1000;
        let claims = match self.verified_tokens.get(token, now) {
            Some(claims) => claims,
            None => {
                let claims = self.keys.load().verify(token).map_err(|InvalidToken| Error::InvalidToken)?;
                self.verified_tokens.insert(token, &claims, now);
                claims
            }
        };
        if self.revocations.is_revoked(claims.sid) {
            return Err(Error::InvalidToken);
        }
        Ok(claims)
    }

    /// Creates a session with its first refresh token inside `conn`'s transaction.
    pub(crate) async fn open_session(
        &self,
        conn: &mut AnyConnection,
        user: &UserRecord,
        amr: &[&str],
        client: &Client,
    ) -> Result<IssuedTokens> {
        let expires_at = clock::now_ms() + clock::duration_ms(self.config.refresh_ttl);
        self.open_session_until(conn, user, amr, client, expires_at).await
    }

    /// `open_session` for a session that ends at `expires_at` (Unix ms).
    pub(crate) async fn open_session_until(
        &self,
        conn: &mut AnyConnection,
        user: &UserRecord,
        amr: &[&str],
        client: &Client,
        expires_at: i64,
    ) -> Result<IssuedTokens> {
        let now = clock::now_ms();
        let session = SessionRecord {
            id: Uuid::new_v4(),
            user_id: user.profile.id,
            created_at: now,
            last_used_at: now,
            expires_at,
            revoked_at: None,
            mfa: amr.len() > 1,
            amr: amr.iter().map(|s| s.to_string()).collect(),
            ip: client.ip.clone(),
            user_agent: client.user_agent.clone(),
        };
        sessions::insert(conn, &session).await?;
        let refresh_token = random::opaque_token();
        sessions::insert_refresh_token(conn, &random::token_digest(&refresh_token), session.id, now).await?;
        let orgs = org_claims(conn, user.profile.id).await?;
        let mut tokens = self.issue(&session, user.profile.role, orgs, refresh_token, now);
        sessions::extend_access_expiry(conn, session.id, tokens.access_expires_at).await?;
        tokens.device_token = Some(self.devices.issue(user.profile.id, now / 1000));
        Ok(tokens)
    }

    /// Signs an access token for `session`; it never outlives the session's absolute expiry.
    fn issue(
        &self,
        session: &SessionRecord,
        role: Role,
        orgs: Vec<OrgClaim>,
        refresh_token: String,
        now_ms: i64,
    ) -> IssuedTokens {
        let now = now_ms / 1000;
        let exp = (now + self.config.access_ttl.as_secs() as i64).min(session.expires_at / 1000);
        let claims = AccessClaims {
            iss: self.config.issuer.clone(),
            sub: session.user_id,
            aud: self.config.audience.clone(),
            exp,
            iat: now,
            jti: Uuid::new_v4(),
            sid: session.id,
            role,
            mfa: session.mfa,
            amr: session.amr.clone(),
            orgs,
        };
        IssuedTokens {
            access_token: self.keys.load().sign(&claims),
            refresh_token,
            expires_in: exp - now,
            access_expires_at: exp * 1000,
            device_token: None,
            session_id: session.id,
        }
    }

    /// Rotates a refresh token. A token that was already spent means it was copied: the whole session ends.
    pub async fn refresh(&self, presented: &str, client: &Client) -> Result<IssuedTokens> {
        let hash = random::token_digest(presented);
        let now = clock::now_ms();
        let mut tx = self.db.begin().await?;
        let Some(found) = sessions::find_by_refresh_token(&mut *tx, &hash).await? else {
            return Err(Error::InvalidToken);
        };
        let session = found.session;
        if session.revoked_at.is_some() {
            return Err(Error::InvalidToken);
        }
        let idle_cutoff = self.idle_cutoff(now);
        let end_reason = if found.spent_at.is_some() {
            Some("refresh_reuse_detected")
        } else if now >= session.expires_at {
            Some("expired")
        } else if session.last_used_at <= idle_cutoff {
            Some("idle")
        } else if !found.user_active {
            Some("inactive_user")
        } else {
            None
        };
        if let Some(reason) = end_reason {
            sessions::revoke(&mut tx, session.id, session.user_id, now, reason).await?;
            if reason == "refresh_reuse_detected" {
                let event = Event::failure("refresh_reuse_detected", Some(session.user_id))
                    .with("session_id", session.id.to_string());
                audit::record(&mut tx, client, event).await?;
            }
            tx.commit().await?;
            self.revocations.add([session.id], now);
            return Err(Error::InvalidToken);
        }
        if !sessions::spend_refresh_token(&mut tx, &hash, now).await? {
            // A parallel refresh of the same token won; this one gets nothing and changes nothing.
            return Err(Error::InvalidToken);
        }
        let refresh_token = random::opaque_token();
        sessions::insert_refresh_token(&mut tx, &random::token_digest(&refresh_token), session.id, now).await?;
        sessions::touch(&mut tx, session.id, now).await?;
        audit::record(
            &mut tx,
            client,
            Event::success("refresh", session.user_id).with("session_id", session.id.to_string()),
        )
        .await?;
        let orgs = org_claims(&mut tx, session.user_id).await?;
        let tokens = self.issue(&session, found.role, orgs, refresh_token, now);
        sessions::extend_access_expiry(&mut tx, session.id, tokens.access_expires_at).await?;
        tx.commit().await?;
        Ok(tokens)
    }

    pub async fn logout(&self, auth: &AccessClaims, client: &Client) -> Result<()> {
        self.end_session(auth, auth.sid, "logout", client).await.map(|_| ())
    }

    /// Ends one of the caller's sessions; 404 for a session that is not theirs (or no longer live).
    pub async fn revoke_session(&self, auth: &AccessClaims, session_id: Uuid, client: &Client) -> Result<()> {
        if self.end_session(auth, session_id, "session_revoked", client).await? { Ok(()) } else { Err(Error::NotFound) }
    }

    async fn end_session(
        &self,
        auth: &AccessClaims,
        session_id: Uuid,
        action: &'static str,
        client: &Client,
    ) -> Result<bool> {
        let now = clock::now_ms();
        let mut tx = self.db.begin().await?;
        let ended = sessions::revoke(&mut tx, session_id, auth.sub, now, action).await?;
        if ended {
            audit::record(&mut tx, client, Event::success(action, auth.sub).with("session_id", session_id.to_string()))
                .await?;
        }
        tx.commit().await?;
        if ended {
            self.revocations.add([session_id], now);
        }
        Ok(ended)
    }

    pub async fn logout_all(&self, auth: &AccessClaims, client: &Client) -> Result<()> {
        let now = clock::now_ms();
        let mut tx = self.db.begin().await?;
        let ended = sessions::revoke_all(&mut tx, auth.sub, None, now, "logout_all").await?;
        audit::record(&mut tx, client, Event::success("logout_all", auth.sub).with("sessions", ended.len())).await?;
        tx.commit().await?;
        self.revocations.add(ended, now);
        Ok(())
    }

    /// Sessions last used before this moment have idled out (`LATCHKEY_SESSION_IDLE_SECONDS`).
    pub(crate) fn idle_cutoff(&self, now: i64) -> i64 {
        now - clock::duration_ms(self.config.session_idle)
    }

    /// Sessions that are neither revoked, expired nor idle, across all users.
    pub async fn active_sessions(&self) -> Result<i64> {
        let now = clock::now_ms();
        sessions::count_live(self.db.pool(), now, self.idle_cutoff(now)).await
    }

    pub async fn list_sessions(&self, auth: &AccessClaims) -> Result<Vec<SessionRecord>> {
        let now = clock::now_ms();
        sessions::list_live(self.db.pool(), auth.sub, now, self.idle_cutoff(now)).await
    }
}

/// API.md: the access token carries at most 50 organisations.
const MAX_ORG_CLAIMS: i64 = 50;

async fn org_claims(conn: &mut AnyConnection, user_id: Uuid) -> Result<Vec<OrgClaim>> {
    let memberships = orgs::of_user(conn, user_id, MAX_ORG_CLAIMS).await?;
    Ok(memberships.into_iter().map(|(org, role)| OrgClaim { id: org.id, role }).collect())
}
