//! What administrators (over the API) and operators (on the command line) do to accounts. Every change is
//! audited about the user it changes, with the acting admin in `detail.by`.

use uuid::Uuid;

use super::{
    Client, Services,
    audit::{self, Event},
};
use crate::{
    clock,
    domain::{identity::LoginIdentifier, roles::Role},
    error::{Error, Result},
    store::{
        Tx,
        audit::{self as audit_store, AuditQuery, AuditRecord},
        lockouts, mfa,
        orgs::OrgRecord,
        sessions::{self, SessionRecord},
        users::{self, UserRecord},
    },
};

/// One user as the admin's user page shows them.
pub struct UserOverview {
    pub user: UserRecord,
    pub totp_enabled: bool,
    pub passkeys: Vec<crate::store::passkeys::PasskeyRecord>,
    pub backup_codes_left: i64,
    pub orgs: Vec<(OrgRecord, Role)>,
    /// Live sessions, newest use first.
    pub sessions: Vec<SessionRecord>,
    /// The newest 20 events about the user.
    pub events: Vec<AuditRecord>,
}

/// Who made an administrative change.
#[derive(Clone, Copy, Debug)]
pub enum Actor {
    Admin(Uuid),
    /// `latchkey user ...` on the server itself.
    Operator,
}

impl Actor {
    pub(crate) fn name(self) -> String {
        match self {
            Actor::Admin(id) => id.to_string(),
            Actor::Operator => "cli".into(),
        }
    }
}

#[derive(Debug, Default)]
pub struct UserChanges {
    pub role: Option<Role>,
    pub is_active: Option<bool>,
}

fn last_admin() -> Error {
    Error::Conflict { code: "last_admin", message: "This is the last active admin; make another admin first." }
}

impl Services {
    pub async fn admin_list_users(
        &self,
        filter: &users::UserFilter<'_>,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<UserRecord>, i64)> {
        let mut conn = self.db.pool().acquire().await?;
        users::search(&mut conn, filter, limit, offset).await
    }

    pub async fn admin_get_user(&self, id: Uuid) -> Result<UserRecord> {
        users::find_by_id(self.db.pool(), id).await?.ok_or(Error::NotFound)
    }

    /// Finds a user by email or username (for the command line).
    pub async fn find_user(&self, identifier: &str) -> Result<UserRecord> {
        users::find_by_identifier(self.db.pool(), &LoginIdentifier::parse(identifier)).await?.ok_or(Error::NotFound)
    }

    async fn locked_target(&self, tx: &mut Tx, id: Uuid) -> Result<UserRecord> {
        users::find_by_id(&mut **tx, id).await?.ok_or(Error::NotFound)
    }

    /// Changes role and/or active state. Either change ends the user's sessions at once, so that the next
    /// request with an old token is refused and a new login carries the new role. The last active admin
    /// can be neither demoted nor deactivated.
    pub async fn admin_update_user(
        &self,
        actor: Actor,
        id: Uuid,
        changes: UserChanges,
        client: &Client,
    ) -> Result<UserRecord> {
        let now = clock::now_ms();
        let mut tx = self.db.begin().await?;
        let admins = users::active_admins(&mut tx, self.db.row_lock()).await?;
        let mut user = self.locked_target(&mut tx, id).await?;
        let role = changes.role.unwrap_or(user.profile.role);
        let is_active = changes.is_active.unwrap_or(user.profile.is_active);
        let loses_admin = admins.contains(&id) && (role != Role::Admin || !is_active);
        if loses_admin && admins.len() <= 1 {
            return Err(last_admin());
        }
        let mut events = Vec::new();
        if role != user.profile.role {
            events.push(
                Event::success("role_changed", id).with("from", user.profile.role.as_str()).with("to", role.as_str()),
            );
        }
        if is_active != user.profile.is_active {
            events.push(Event::success(if is_active { "user_reactivated" } else { "user_deactivated" }, id));
        }
        if events.is_empty() {
            return Ok(user);
        }
        users::set_role_and_active(&mut tx, id, role, is_active, now).await?;
        let ended = sessions::revoke_all(&mut tx, id, None, now, "changed_by_admin").await?;
        for event in events {
            audit::record(&mut tx, client, event.with("by", actor.name()).with("sessions_ended", ended.len())).await?;
        }
        self.commit_user_change(tx, &[id]).await?;
        self.revocations.add(ended, now);
        (user.profile.role, user.profile.is_active) = (role, is_active);
        Ok(user)
    }

    /// Lifts the lockout of the user's email and username (and their second-factor failure count).
    pub async fn admin_unlock(&self, actor: Actor, id: Uuid, client: &Client) -> Result<()> {
        let mut tx = self.db.begin().await?;
        let user = self.locked_target(&mut tx, id).await?;
        for identifier in super::lockout::identifiers_of(&user) {
            lockouts::clear(&mut tx, &identifier.lock_key()).await?;
        }
        lockouts::reset_mfa_failures(&mut tx, id).await?;
        audit::record(&mut tx, client, Event::success("user_unlocked", id).with("by", actor.name())).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes the user's TOTP secret, passkeys and backup codes (a lost phone) and ends their sessions.
    pub async fn admin_reset_mfa(&self, actor: Actor, id: Uuid, client: &Client) -> Result<()> {
        let now = clock::now_ms();
        let mut tx = self.db.begin().await?;
        let user = self.locked_target(&mut tx, id).await?;
        mfa::delete_all(&mut tx, id).await?;
        mfa::spend_open_challenges(&mut tx, id, now).await?;
        users::set_mfa_enabled(&mut tx, id, false, now).await?;
        let ended = sessions::revoke_all(&mut tx, id, None, now, "mfa_reset").await?;
        let event =
            Event::success("mfa_reset", id).with("by", actor.name()).with("was_enabled", user.profile.mfa_enabled);
        audit::record(&mut tx, client, event.with("sessions_ended", ended.len())).await?;
        self.commit_user_change(tx, &[id]).await?;
        self.revocations.add(ended, now);
        Ok(())
    }

    /// Ends one session of the user (`revoke_session` for the admin's user page); 404 when it is not theirs
    /// or already over.
    pub async fn admin_revoke_session(&self, actor: Actor, id: Uuid, session_id: Uuid, client: &Client) -> Result<()> {
        let now = clock::now_ms();
        let mut tx = self.db.begin().await?;
        self.locked_target(&mut tx, id).await?;
        if !sessions::revoke(&mut tx, session_id, id, now, "session_revoked_by_admin").await? {
            return Err(Error::NotFound);
        }
        let event = Event::success("session_revoked_by_admin", id).with("by", actor.name());
        audit::record(&mut tx, client, event.with("session_id", session_id.to_string())).await?;
        tx.commit().await?;
        self.revocations.add([session_id], now);
        Ok(())
    }

    /// Everything the admin's page for one user shows.
    pub async fn admin_user_overview(&self, id: Uuid) -> Result<UserOverview> {
        let user = self.admin_get_user(id).await?;
        let now = clock::now_ms();
        let pool = self.db.pool();
        Ok(UserOverview {
            totp_enabled: mfa::totp(pool, id).await?.is_some_and(|c| c.enabled),
            passkeys: crate::store::passkeys::of_user(pool, id).await?,
            backup_codes_left: mfa::remaining_backup_codes(pool, id).await?,
            orgs: self.my_orgs(id).await?,
            sessions: sessions::list_live(pool, id, now, self.idle_cutoff(now)).await?,
            events: audit_store::list(pool, &AuditQuery::latest(Some(id), None, 20)).await?,
            user,
        })
    }

    pub async fn admin_end_sessions(&self, actor: Actor, id: Uuid, client: &Client) -> Result<()> {
        let now = clock::now_ms();
        let mut tx = self.db.begin().await?;
        self.locked_target(&mut tx, id).await?;
        let ended = sessions::revoke_all(&mut tx, id, None, now, "sessions_revoked_by_admin").await?;
        let event = Event::success("sessions_revoked_by_admin", id).with("by", actor.name());
        audit::record(&mut tx, client, event.with("sessions_ended", ended.len())).await?;
        tx.commit().await?;
        self.revocations.add(ended, now);
        Ok(())
    }
}
