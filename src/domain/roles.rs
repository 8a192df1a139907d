//! Roles, lowest to highest, and what each may do. The table in `Role::permissions` is the one place the
//! rules live; handlers ask for a permission, never for a role.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Analyst,
    Reviewer,
    Editor,
    Admin,
}

impl Role {
    pub const ALL: [Role; 5] = [Role::Viewer, Role::Analyst, Role::Reviewer, Role::Editor, Role::Admin];

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
    UsersRead,
    UsersWrite,
    AuditRead,
    OrgsManage,
    DraftsSave,
    DraftsCommit,
}

impl Permission {
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
            Role::Reviewer => &[DraftsSave],
            Role::Editor => &[DraftsSave, DraftsCommit],
            Role::Admin => &[DraftsSave, DraftsCommit, UsersRead, UsersWrite, AuditRead, OrgsManage],
        }
    }

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
        assert!(Role::Editor.allows(Permission::DraftsCommit) && !Role::Reviewer.allows(Permission::DraftsCommit));
        assert!(Role::Viewer.permissions().is_empty());
    }
}
