//! Forward authentication: a reverse proxy asks, for each request to an application behind it, whether to
//! let it through and as whom. The rules decide (`domain::access_rules`); this finds who is asking, from
//! the web session cookie or a Bearer access token.
//!
//! A proxy asks on every request, so which session a cookie names is remembered for a few seconds
//! (`Remembered`) and users come from `user_views`: a hit costs no database read. What must take effect at
//! once is not remembered: every hit checks the revocation set, which every instance refreshes twice a
//! second, and sign-out, logout-all, deactivation and role changes all end sessions. A membership change is
//! seen at once on the instance that made it and within a poll on the others.

use std::sync::Arc;

use uuid::Uuid;

use super::{Services, cache::Expiring, web::BrowserState};
use crate::{
    clock,
    domain::{
        access_rules::{Outcome, Subject, Target},
        random,
        roles::Role,
    },
    error::{Error, Result},
    store::users::UserView,
};

/// How long who a session or user is may be answered from memory.
pub(crate) const REMEMBER_MS: i64 = 10_000;

/// How the request the proxy asks about proves who sent it.
pub enum Credential<'a> {
    Cookie(&'a str),
    Bearer(&'a str),
    None,
}

/// Who the application gets, in the `Remote-*` headers.
#[derive(Clone)]
pub struct Identity {
    pub user_id: Uuid,
    /// The username, else the email.
    pub name: String,
    pub email: String,
    /// The global role, then `org:<slug>:<role>` per membership.
    pub groups: Vec<String>,
}

pub enum Answer {
    Allow(Option<Identity>),
    /// To the sign-in page, and back to the original URL afterwards.
    SignIn,
    /// Signed in, but the rule wants a second factor this session has not given: to the second-factor
    /// page, and back.
    StepUp,
    Forbidden,
}

#[derive(Clone, Copy)]
struct KnownSession {
    session_id: Uuid,
    user_id: Uuid,
    mfa: bool,
}

/// Signed-in web sessions by the digest of their cookie (users are in `user_views`).
#[derive(Default)]
pub struct Remembered {
    sessions: Expiring<String, KnownSession>,
}

impl Services {
    pub async fn forward_auth(&self, target: &Target<'_>, credential: Credential<'_>) -> Result<Answer> {
        if !self.access_rules.names_host(target.host) {
            metrics::counter!("latchkey_forward_auth_total", "policy" => "none", "outcome" => "foreign_host")
                .increment(1);
            return Ok(Answer::Forbidden);
        }
        // A program cannot be sent through a page for its second factor.
        let can_step_up = !matches!(credential, Credential::Bearer(_));
        let signed_in = match credential {
            // A bad Bearer token is the program's mistake: 401, never a redirect.
            Credential::Bearer(token) => {
                let claims = self.authenticate(token)?;
                Some((self.active_user(claims.sub).await?, claims.mfa))
            }
            Credential::Cookie(cookie) => self.known_session(cookie).await?,
            Credential::None => None,
        };
        let Some((user, mfa)) = signed_in else {
            return Ok(self.answer(target, None));
        };
        let orgs: Vec<(&str, Role)> = user.memberships.iter().map(|(org, role)| (org.slug.as_str(), *role)).collect();
        let subject = Subject { role: user.profile.role, mfa, orgs: &orgs };
        Ok(match self.answer(target, Some(&subject)) {
            Answer::Allow(_) => Answer::Allow(Some(identity(&user))),
            Answer::StepUp if !can_step_up => Answer::Forbidden,
            other => other,
        })
    }

    /// The rules' verdict as an answer (an allowed request's identity is the caller's to add), counted by
    /// policy and outcome.
    fn answer(&self, target: &Target<'_>, subject: Option<&Subject<'_>>) -> Answer {
        let verdict = self.access_rules.decide(target, subject);
        let (answer, outcome) = match verdict.outcome {
            Outcome::Allow => (Answer::Allow(None), "allowed"),
            Outcome::SignIn => (Answer::SignIn, "sign_in"),
            Outcome::StepUp => (Answer::StepUp, "step_up"),
            Outcome::Forbidden => (Answer::Forbidden, "forbidden"),
        };
        metrics::counter!("latchkey_forward_auth_total", "policy" => verdict.policy.as_str(), "outcome" => outcome)
            .increment(1);
        answer
    }

    /// The user of the signed-in session the cookie names, and whether it passed a second factor; the
    /// session is remembered for a while, never once it has been revoked.
    async fn known_session(&self, cookie: &str) -> Result<Option<(Arc<UserView>, bool)>> {
        let now = clock::now_ms();
        let digest = random::token_digest(cookie);
        if let Some(session) = self.remembered.sessions.get(&digest, now) {
            if self.revocations.is_revoked(session.session_id) {
                return Ok(None);
            }
            return Ok(Some((self.active_user(session.user_id).await?, session.mfa)));
        }
        let Some(BrowserState::SignedIn { user, claims, .. }) = self.web_session(cookie).await?.map(|s| s.state) else {
            return Ok(None);
        };
        let session = KnownSession { session_id: claims.sid, user_id: user.profile.id, mfa: claims.mfa };
        let until = (now + REMEMBER_MS).min(claims.exp * 1000);
        self.remembered.sessions.insert(digest, session, until, now);
        Ok(Some((self.active_user(user.profile.id).await?, claims.mfa)))
    }

    /// The active user a verified token or session names.
    async fn active_user(&self, id: Uuid) -> Result<Arc<UserView>> {
        let user = self.user_view(id).await?;
        if !user.profile.is_active {
            return Err(Error::InvalidToken);
        }
        Ok(user)
    }
}

/// Who the application is told the user is.
fn identity(user: &UserView) -> Identity {
    let profile = &user.profile;
    let mut groups = vec![profile.role.as_str().to_string()];
    groups.extend(user.memberships.iter().map(|(org, role)| format!("org:{}:{}", org.slug, role.as_str())));
    Identity {
        user_id: profile.id,
        name: profile.username.clone().unwrap_or_else(|| profile.email.clone()),
        email: profile.email.clone(),
        groups,
    }
}
