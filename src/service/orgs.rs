//! Organisations: anyone may create one and becomes its admin; org admins (and global admins) manage its
//! members. An organisation is invisible (404) to anyone who is not a member or a global admin.
//!
//! An org admin cannot make someone a member: adding a user who is not one yet invites them, and they join
//! by accepting. Until then the organisation learns nothing about them (not even their email), and their
//! tokens carry nothing of it. Global admins, who can see every account anyway, add members directly.

use uuid::Uuid;

use super::{
    Client, Services,
    audit::{self, Event},
};
use crate::{
    clock,
    domain::{
        roles::{Permission, Role},
        tokens::AccessClaims,
    },
    error::{Error, FieldError, Result},
    store::{
        orgs::{self, MemberRecord, OrgRecord},
        users,
    },
};

/// API.md's `GET /auth/me` lists memberships; beyond this many, the list is cut.
const MAX_LISTED: i64 = 1000;

fn validate(name: &str, slug: &str) -> Result<(String, String)> {
    let mut problems = Vec::new();
    let name = name.trim().to_string();
    if name.is_empty() || name.chars().count() > 100 {
        problems.push(FieldError { field: "name", message: "Name must be 1 to 100 characters.".into() });
    }
    let slug = slug.trim().to_lowercase();
    let slug_ok = (2..=40).contains(&slug.len())
        && slug.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
        && !slug.ends_with('-');
    if !slug_ok {
        problems.push(FieldError {
            field: "slug",
            message: "Slug must be 2 to 40 of a-z, 0-9 and '-', not starting or ending with '-'.".into(),
        });
    }
    if problems.is_empty() { Ok((name, slug)) } else { Err(Error::Validation(problems)) }
}

/// What `PUT /orgs/{id}/members/{user_id}` did.
pub enum Membership {
    Active(MemberRecord),
    /// The user was not a member: they are invited, and nothing about them is disclosed.
    Invited {
        user_id: Uuid,
        role: Role,
    },
}

/// Who may change an organisation's members, and how.
enum Authority {
    /// Invites users who are not members yet.
    OrgAdmin,
    /// Adds them directly.
    GlobalAdmin,
}

/// How the caller stands towards an organisation.
enum Standing {
    Member(Role),
    /// Not a member, but a global admin (with `orgs:manage`).
    GlobalAdmin,
}

impl Services {
    pub async fn create_org(&self, auth: &AccessClaims, name: &str, slug: &str, client: &Client) -> Result<OrgRecord> {
        let (name, slug) = validate(name, slug)?;
        let org = OrgRecord { id: Uuid::new_v4(), name, slug, created_at: clock::now_ms() };
        let mut tx = self.db.begin().await?;
        orgs::insert(&mut tx, &org).await?;
        orgs::set_member(&mut tx, org.id, auth.sub, Role::Admin, org.created_at).await?;
        let event =
            Event::success("org_created", auth.sub).with("org_id", org.id.to_string()).with("slug", org.slug.clone());
        audit::record(&mut tx, client, event).await?;
        self.commit_user_change(tx, &[auth.sub]).await?;
        Ok(org)
    }

    /// Every organisation with its size, for the admin console.
    pub async fn all_orgs(&self) -> Result<Vec<(OrgRecord, i64)>> {
        orgs::all_with_sizes(self.db.pool(), 500).await
    }

    pub async fn my_orgs(&self, user_id: Uuid) -> Result<Vec<(OrgRecord, Role)>> {
        orgs::of_user(self.db.pool(), user_id, MAX_LISTED).await
    }

    /// The organisation if the caller may see it; 404 otherwise, whether or not it exists.
    async fn standing(&self, auth: &AccessClaims, org_id: Uuid) -> Result<(OrgRecord, Standing)> {
        let org = orgs::find(self.db.pool(), org_id).await?.ok_or(Error::NotFound)?;
        if let Some(role) = orgs::role_of(self.db.pool(), org_id, auth.sub).await? {
            return Ok((org, Standing::Member(role)));
        }
        if auth.role.allows(Permission::OrgsManage) {
            return Ok((org, Standing::GlobalAdmin));
        }
        Err(Error::NotFound)
    }

    pub async fn org(&self, auth: &AccessClaims, org_id: Uuid) -> Result<OrgRecord> {
        Ok(self.standing(auth, org_id).await?.0)
    }

    pub async fn org_members(&self, auth: &AccessClaims, org_id: Uuid) -> Result<Vec<MemberRecord>> {
        self.standing(auth, org_id).await?;
        orgs::members(self.db.pool(), org_id).await
    }

    /// Membership changes are for org admins, and for global admins (under the admin MFA rule).
    async fn require_org_admin(&self, auth: &AccessClaims, org_id: Uuid, client: &Client) -> Result<Authority> {
        let path = format!("/api/v1/orgs/{org_id}/members");
        match self.standing(auth, org_id).await?.1 {
            Standing::Member(Role::Admin) => Ok(Authority::OrgAdmin),
            _ if auth.role.allows(Permission::OrgsManage) => {
                self.authorize(auth, Permission::OrgsManage, &path, client).await?;
                Ok(Authority::GlobalAdmin)
            }
            _ => {
                self.deny(auth, Permission::OrgsManage, &path, client).await?;
                Err(Error::Forbidden)
            }
        }
    }

    pub async fn set_org_member(
        &self,
        auth: &AccessClaims,
        org_id: Uuid,
        user_id: Uuid,
        role: Role,
        client: &Client,
    ) -> Result<Membership> {
        let authority = self.require_org_admin(auth, org_id, client).await?;
        let now = clock::now_ms();
        let mut tx = self.db.begin().await?;
        let user = users::find_by_id(&mut *tx, user_id).await?.ok_or(Error::NotFound)?;
        let is_member = orgs::role_of(&mut *tx, org_id, user_id).await?.is_some();
        let invite = !is_member && matches!(authority, Authority::OrgAdmin);
        if invite {
            orgs::invite(&mut tx, org_id, user_id, role, auth.sub, now).await?;
        } else {
            let admins = orgs::admins(&mut tx, org_id, self.db.row_lock()).await?;
            if role != Role::Admin && admins == [user_id] {
                return Err(last_org_admin());
            }
            orgs::take_invitation(&mut tx, org_id, user_id).await?;
            orgs::set_member(&mut tx, org_id, user_id, role, now).await?;
        }
        let event = Event::success(if invite { "org_member_invited" } else { "org_member_set" }, user_id)
            .with("org_id", org_id.to_string())
            .with("role", role.as_str())
            .with("by", auth.sub.to_string());
        audit::record(&mut tx, client, event).await?;
        self.commit_user_change(tx, &[user_id]).await?;
        Ok(if invite {
            Membership::Invited { user_id, role }
        } else {
            Membership::Active(MemberRecord { user_id, email: user.profile.email, role })
        })
    }

    pub async fn my_invitations(&self, user_id: Uuid) -> Result<Vec<(OrgRecord, Role, i64)>> {
        orgs::invitations_of_user(self.db.pool(), user_id, MAX_LISTED).await
    }

    /// The invited user joins with the role they were offered.
    pub async fn accept_org_invitation(
        &self,
        auth: &AccessClaims,
        org_id: Uuid,
        client: &Client,
    ) -> Result<(OrgRecord, Role)> {
        let mut tx = self.db.begin().await?;
        let role = orgs::take_invitation(&mut tx, org_id, auth.sub).await?.ok_or(Error::NotFound)?;
        let org = orgs::find(&mut *tx, org_id).await?.ok_or(Error::NotFound)?;
        orgs::set_member(&mut tx, org_id, auth.sub, role, clock::now_ms()).await?;
        let event = Event::success("org_invitation_accepted", auth.sub)
            .with("org_id", org_id.to_string())
            .with("role", role.as_str());
        audit::record(&mut tx, client, event).await?;
        self.commit_user_change(tx, &[auth.sub]).await?;
        Ok((org, role))
    }

    /// The invited user declines, or an org admin (or global admin) withdraws the invitation.
    pub async fn remove_org_invitation(
        &self,
        auth: &AccessClaims,
        org_id: Uuid,
        user_id: Uuid,
        client: &Client,
    ) -> Result<()> {
        if user_id != auth.sub {
            self.require_org_admin(auth, org_id, client).await?;
        }
        let mut tx = self.db.begin().await?;
        orgs::take_invitation(&mut tx, org_id, user_id).await?.ok_or(Error::NotFound)?;
        let event = Event::success("org_invitation_removed", user_id)
            .with("org_id", org_id.to_string())
            .with("by", auth.sub.to_string());
        audit::record(&mut tx, client, event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Org admins and global admins remove anyone; a member may leave. The last org admin stays.
    pub async fn remove_org_member(
        &self,
        auth: &AccessClaims,
        org_id: Uuid,
        user_id: Uuid,
        client: &Client,
    ) -> Result<()> {
        if user_id == auth.sub {
            self.standing(auth, org_id).await?;
        } else {
            self.require_org_admin(auth, org_id, client).await?;
        }
        let mut tx = self.db.begin().await?;
        let admins = orgs::admins(&mut tx, org_id, self.db.row_lock()).await?;
        if admins == [user_id] {
            return Err(last_org_admin());
        }
        if !orgs::remove_member(&mut tx, org_id, user_id).await? {
            return Err(Error::NotFound);
        }
        let event = Event::success("org_member_removed", user_id)
            .with("org_id", org_id.to_string())
            .with("by", auth.sub.to_string());
        audit::record(&mut tx, client, event).await?;
        self.commit_user_change(tx, &[user_id]).await?;
        Ok(())
    }
}

fn last_org_admin() -> Error {
    Error::Conflict { code: "last_admin", message: "This is the organisation's last admin; make another admin first." }
}
