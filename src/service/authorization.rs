//! Deciding whether a signed-in caller may do something; refusals are audited (`access_denied`).

use super::{Client, Services, audit::Event};
use crate::{
    domain::{roles::Permission, tokens::AccessClaims},
    error::{Error, Result},
};

impl Services {
    pub async fn authorize(
        &self,
        auth: &AccessClaims,
        permission: Permission,
        path: &str,
        client: &Client,
    ) -> Result<()> {
        let refusal = if !auth.role.allows(permission) {
            Some((Error::Forbidden, "role"))
        } else if permission.is_administrative() && self.config.admin_require_mfa && !auth.mfa {
            Some((Error::MfaRequired, "mfa_required"))
        } else {
            None
        };
        let Some((error, reason)) = refusal else { return Ok(()) };
        self.record_denial(auth, permission, reason, path, client).await?;
        Err(error)
    }

    /// Refuses with 403 `forbidden` for a rule that is not the role table's (e.g. org admins only).
    pub(crate) async fn deny(
        &self,
        auth: &AccessClaims,
        permission: Permission,
        path: &str,
        client: &Client,
    ) -> Result<()> {
        self.record_denial(auth, permission, "not_org_admin", path, client).await?;
        Err(Error::Forbidden)
    }

    async fn record_denial(
        &self,
        auth: &AccessClaims,
        permission: Permission,
        reason: &str,
        path: &str,
        client: &Client,
    ) -> Result<()> {
        let event = Event::failure("access_denied", Some(auth.sub))
            .with("permission", permission.as_str())
            .with("reason", reason)
            .with("path", path.chars().take(200).collect::<String>());
        self.record_alone(client, event).await
    }
}
