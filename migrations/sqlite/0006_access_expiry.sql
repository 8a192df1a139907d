-- The latest expiry of any access token a session has issued (Unix ms). A revoked session stays in every
-- instance's revocation set until then, whatever access-token lifetime each instance runs with now.
ALTER TABLE sessions ADD COLUMN access_expires_at BIGINT;
UPDATE sessions SET access_expires_at = expires_at;
CREATE INDEX sessions_revoked_access ON sessions (access_expires_at) WHERE revoked_at IS NOT NULL;
