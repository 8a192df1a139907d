-- An org admin's invitation: the user becomes a member only by accepting it, and until then the org learns
-- nothing about them (SECURITY review 2026-12, finding 11).
CREATE TABLE org_invitations (
    org_id TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    invited_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, user_id)
);
CREATE INDEX org_invitations_user_id ON org_invitations (user_id);
