//! Latchkey's roles, lowest to highest, and what each may do: the table the server itself enforces, so a
//! resource server that maps a token's `role` through it applies the same rules. Handlers ask for a
//! permission, never for a role.

use serde::{Deserialize, Serialize};

/// A user's role, in the `role` claim of Latchkey's access tokens (and per organisation in `orgs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads; may do nothing else.
    Viewer,
    /// Saves drafts.
    Analyst,
    /// Saves drafts and commits other people's.
    Reviewer,
    /// A reviewer who edits.
    Editor,
    /// Everything, administration included.
    Admin,
}

impl Role {
    /// Every role, lowest first.
    pub const ALL: [Role; 5] = [Role::Viewer, Role::Analyst, Role::Reviewer, Role::Editor, Role::Admin];

    /// The role's name in tokens and in the API: `"viewer"`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Analyst => "analyst",
            Role::Reviewer => "reviewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role {s:?}; expected one of viewer, analyst, reviewer, editor, admin"))
    }
}

/// Something a handler can require. Names are the `resource:action` strings of the table below.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    /// `users:read`: list and read accounts.
    UsersRead,
    /// `users:write`: change roles, deactivate, unlock, reset a second factor.
    UsersWrite,
    /// `audit:read`: read the audit log.
    AuditRead,
    /// `orgs:manage`: every organisation, as their administrator.
    OrgsManage,
    /// `drafts:save`: write drafts.
    DraftsSave,
    /// `drafts:commit`: commit a draft someone else wrote.
    DraftsCommit,
}

impl Permission {
    /// The permission's `resource:action` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::UsersRead => "users:read",
            Permission::UsersWrite => "users:write",
            Permission::AuditRead => "audit:read",
            Permission::OrgsManage => "orgs:manage",
            Permission::DraftsSave => "drafts:save",
            Permission::DraftsCommit => "drafts:commit",
        }
    }

    /// Administrative permissions, which also need an MFA-verified session while
    /// `LATCHKEY_ADMIN_REQUIRE_MFA` is on.
    pub fn is_administrative(self) -> bool {
        matches!(self, Permission::UsersRead | Permission::UsersWrite | Permission::AuditRead | Permission::OrgsManage)
    }
}

impl Role {
    /// Each role has its own permissions and every permission of the roles below it.
    pub fn permissions(self) -> &'static [Permission] {
        use Permission::*;
        match self {
            Role::Viewer => &[],
            Role::Analyst => &[DraftsSave],
            Role::Reviewer => &[DraftsSave, DraftsCommit],
            Role::Editor => &[DraftsSave, DraftsCommit],
            Role::Admin => &[DraftsSave, DraftsCommit, UsersRead, UsersWrite, AuditRead, OrgsManage],
        }
    }

    /// Whether the role has `permission`.
    pub fn allows(self, permission: Permission) -> bool {
        self.permissions().contains(&permission)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_round_trip() {
        assert!(Role::Viewer < Role::Analyst && Role::Editor < Role::Admin);
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
        }
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn permissions_grow_with_the_role() {
        for pair in Role::ALL.windows(2) {
            for p in pair[0].permissions() {
                assert!(pair[1].allows(*p), "{:?} has {:?} but {:?} does not", pair[0], p, pair[1]);
            }
        }
        assert!(Role::Admin.allows(Permission::UsersWrite));
        assert!(!Role::Editor.allows(Permission::UsersRead));
        assert!(Role::Reviewer.allows(Permission::DraftsCommit) && !Role::Analyst.allows(Permission::DraftsCommit));
        assert!(Role::Analyst.allows(Permission::DraftsSave) && !Role::Viewer.allows(Permission::DraftsSave));
        assert!(Role::Viewer.permissions().is_empty());
    }
}
