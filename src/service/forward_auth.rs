//! Forward authentication: a reverse proxy asks, for each request to an application behind it, whether to
//! let it through and as whom. The rules decide (`domain::access_rules`); this finds who is asking, from
//! the web session cookie or a Bearer access token.

use uuid::Uuid;

use super::{Services, web::BrowserState};
use crate::{
    domain::access_rules::{Outcome, Subject, Target},
    error::{Error, Result},
    store::users::UserRecord,
};

/// How the request the proxy asks about proves who sent it.
pub enum Credential<'a> {
    Cookie(&'a str),
    Bearer(&'a str),
    None,
}

/// Who the application gets, in the `Remote-*` headers.
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
    Forbidden,
}

impl Services {
    pub async fn forward_auth(&self, target: &Target<'_>, credential: Credential<'_>) -> Result<Answer> {
        if !self.access_rules.names_host(target.host) {
            metrics::counter!("latchkey_forward_auth_total", "policy" => "none", "outcome" => "foreign_host")
                .increment(1);
            return Ok(Answer::Forbidden);
        }
        let signed_in = match credential {
            // A bad Bearer token is the program's mistake: 401, never a redirect.
            Credential::Bearer(token) => {
                let claims = self.authenticate(token)?;
                Some((self.user(claims.sub).await?, claims.mfa))
            }
            Credential::Cookie(cookie) => match self.web_session(cookie).await?.map(|s| s.state) {
                Some(BrowserState::SignedIn { user, claims }) => Some((*user, claims.mfa)),
                _ => None,
            },
            Credential::None => None,
        };
        let Some((user, mfa)) = signed_in else {
            return Ok(self.answer(target, None).0);
        };
        if !user.is_active {
            return Err(Error::InvalidToken);
        }
        let memberships = self.org_roles_by_slug(user.id).await?;
        let subject = Subject { role: user.role, mfa, orgs: &memberships };
        let (answer, allowed) = self.answer(target, Some(&subject));
        Ok(if allowed { Answer::Allow(Some(identity(&user, &memberships))) } else { answer })
    }

    /// The rules' verdict as an answer (an allowed request's identity is the caller's to add), counted by
    /// policy and outcome.
    fn answer(&self, target: &Target<'_>, subject: Option<&Subject<'_>>) -> (Answer, bool) {
        let verdict = self.access_rules.decide(target, subject);
        let (answer, outcome, allowed) = match verdict.outcome {
            Outcome::Allow => (Answer::Allow(None), "allowed", true),
            Outcome::SignIn => (Answer::SignIn, "sign_in", false),
            // A second factor on top of a signed-in session needs a step-up page that does not exist yet:
            // refused rather than sent round a sign-in that would not ask for it.
            Outcome::StepUp => (Answer::Forbidden, "step_up_refused", false),
            Outcome::Forbidden => (Answer::Forbidden, "forbidden", false),
        };
        metrics::counter!("latchkey_forward_auth_total", "policy" => verdict.policy.as_str(), "outcome" => outcome)
            .increment(1);
        (answer, allowed)
    }
}

fn identity(user: &UserRecord, memberships: &[(String, crate::domain::roles::Role)]) -> Identity {
    let mut groups = vec![user.role.as_str().to_string()];
    groups.extend(memberships.iter().map(|(slug, role)| format!("org:{slug}:{}", role.as_str())));
    Identity {
        user_id: user.id,
        name: user.username.clone().unwrap_or_else(|| user.email.clone()),
        email: user.email.clone(),
        groups,
    }
}
