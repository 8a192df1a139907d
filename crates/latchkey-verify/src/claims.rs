//! What a verified access token says, and the checks a handler makes on it.

use serde::{Deserialize, Deserializer, Serialize};

use crate::roles::{Permission, Role};

/// The claims of a verified Latchkey access token: the JSON API's tokens (with `role`, `mfa`, `amr`,
/// `orgs`) and OAuth access tokens issued to clients (with `scope` and `client_id`) share this shape;
/// what a kind of token does not carry is empty.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Claims {
    /// The issuer, checked against the one the verifier trusts.
    pub iss: String,
    /// The user's id, or the client's id for a client-credentials token.
    pub sub: String,
    /// The audiences, one of which is the verifier's.
    #[serde(deserialize_with = "one_or_many")]
    pub aud: Vec<String>,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// Issued at, Unix seconds.
    #[serde(default)]
    pub iat: Option<i64>,
    /// The token's own id.
    #[serde(default)]
    pub jti: Option<String>,
    /// The sign-in session the token belongs to.
    #[serde(default)]
    pub sid: Option<String>,
    /// The user's role; `None` when the token carries none or one this version does not know.
    #[serde(default, deserialize_with = "lenient_role")]
    pub role: Option<Role>,
    /// The user's organisations and role in each.
    #[serde(default)]
    pub orgs: Vec<OrgRole>,
    /// The OAuth scopes granted (the space-separated `scope` claim, split).
    #[serde(default, deserialize_with = "space_separated")]
    pub scope: Vec<String>,
    /// Whether the session passed a second factor.
    #[serde(default)]
    pub mfa: bool,
    /// How the user authenticated (RFC 8176: `pwd`, `otp`, `pop`, `mfa`, ...).
    #[serde(default)]
    pub amr: Vec<String>,
    /// The OAuth client the token was issued to.
    #[serde(default)]
    pub client_id: Option<String>,
}

/// A user's membership of an organisation, as the `orgs` claim lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct OrgRole {
    /// The organisation's id.
    pub id: String,
    /// The user's role in it; `None` for a role this version does not know.
    #[serde(default, deserialize_with = "lenient_role")]
    pub role: Option<Role>,
}

/// Why an authenticated request is refused (403).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Denied {
    /// The token's role lacks the permission, or the application's own rule says no.
    #[error("You are not allowed to do this.")]
    Forbidden,
    /// The action needs a session that passed a second factor.
    #[error("This action needs a session verified with a second factor.")]
    MfaRequired,
    /// The token was not granted `scope` (RFC 6750 `insufficient_scope`).
    #[error("The token lacks the scope {scope}.")]
    InsufficientScope {
        /// The scope that was needed.
        scope: String,
    },
}

impl Denied {
    /// The `error` code of Latchkey's JSON error shape: `forbidden`, `mfa_required`, `insufficient_scope`.
    pub fn code(&self) -> &'static str {
        match self {
            Denied::Forbidden => "forbidden",
            Denied::MfaRequired => "mfa_required",
            Denied::InsufficientScope { .. } => "insufficient_scope",
        }
    }
}

impl Claims {
    /// Whether the token's role has `permission` in Latchkey's role table.
    pub fn allows(&self, permission: Permission) -> bool {
        self.role.is_some_and(|role| role.allows(permission))
    }

    /// Whether the token was granted `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.iter().any(|s| s == scope)
    }

    /// `Ok` when the role has `permission`.
    pub fn require_permission(&self, permission: Permission) -> Result<(), Denied> {
        if self.allows(permission) { Ok(()) } else { Err(Denied::Forbidden) }
    }

    /// `Ok` when the role is `lowest` or above.
    pub fn require_role(&self, lowest: Role) -> Result<(), Denied> {
        if self.role.is_some_and(|role| role >= lowest) { Ok(()) } else { Err(Denied::Forbidden) }
    }

    /// `Ok` when the token was granted `scope`.
    pub fn require_scope(&self, scope: &str) -> Result<(), Denied> {
        if self.has_scope(scope) { Ok(()) } else { Err(Denied::InsufficientScope { scope: scope.to_string() }) }
    }

    /// `Ok` when the session passed a second factor.
    pub fn require_mfa(&self) -> Result<(), Denied> {
        if self.mfa { Ok(()) } else { Err(Denied::MfaRequired) }
    }
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}

fn space_separated<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let scope = Option::<String>::deserialize(d)?.unwrap_or_default();
    Ok(scope.split_ascii_whitespace().map(str::to_string).collect())
}

/// A role added to Latchkey after this version must not make every token unreadable.
fn lenient_role<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Role>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.and_then(|name| name.parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(json: serde_json::Value) -> Claims {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn api_and_oauth_tokens_read_into_one_shape() {
        let api = claims(serde_json::json!({"iss": "i", "sub": "u", "aud": "latchkey", "exp": 1, "role": "reviewer",
            "mfa": true, "amr": ["pwd", "otp"], "orgs": [{"id": "o", "role": "admin"}, {"id": "p", "role": "owner"}]}));
        assert_eq!((api.aud.clone(), api.role, api.mfa), (vec!["latchkey".to_string()], Some(Role::Reviewer), true));
        assert_eq!((api.orgs[0].role, api.orgs[1].role), (Some(Role::Admin), None));
        let oauth = claims(serde_json::json!({"iss": "i", "sub": "u", "aud": ["a", "b"], "exp": 1,
            "scope": "openid  drafts:read", "client_id": "c", "role": "superuser"}));
        assert_eq!(oauth.scope, ["openid", "drafts:read"]);
        assert_eq!(oauth.role, None, "an unknown role reads as none");
    }

    #[test]
    fn guards_follow_the_role_table() {
        let mut c = claims(serde_json::json!({"iss": "i", "sub": "u", "aud": "a", "exp": 1, "role": "analyst"}));
        assert_eq!(c.require_permission(Permission::DraftsSave), Ok(()));
        assert_eq!(c.require_permission(Permission::DraftsCommit), Err(Denied::Forbidden));
        assert_eq!(c.require_role(Role::Reviewer), Err(Denied::Forbidden));
        assert_eq!(c.require_mfa(), Err(Denied::MfaRequired));
        assert_eq!(c.require_scope("x").unwrap_err().code(), "insufficient_scope");
        c.role = Some(Role::Reviewer);
        assert!(c.require_permission(Permission::DraftsCommit).is_ok() && c.require_role(Role::Analyst).is_ok());
    }
}
