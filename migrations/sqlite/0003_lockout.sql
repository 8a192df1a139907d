-- Consecutive login failures per submitted identifier ("email:...", "username:...") and per device token
-- ("device:<nonce>"), and the lock they lead to.
CREATE TABLE login_lockouts (
    lock_key TEXT PRIMARY KEY NOT NULL,
    failures BIGINT NOT NULL,
    locked_until BIGINT,
    updated_at BIGINT NOT NULL
);

-- Consecutive wrong second-factor codes across mfa_tokens (SECURITY.md decision 7).
ALTER TABLE users ADD COLUMN mfa_failures BIGINT NOT NULL DEFAULT 0;
