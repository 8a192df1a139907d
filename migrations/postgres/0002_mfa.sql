-- Two-factor authentication. One TOTP credential per user: pending (enabled = 0) until a first code proves it.
CREATE TABLE totp_credentials (
    user_id TEXT PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    sealed_secret BYTEA NOT NULL,
    enabled BIGINT NOT NULL DEFAULT 0,
    -- The last accepted time step; codes for it or earlier steps are refused (replay).
    last_step BIGINT NOT NULL DEFAULT -1,
    created_at BIGINT NOT NULL
);

-- Server-keyed HMAC-SHA256 of each normalized code.
CREATE TABLE backup_codes (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    used_at BIGINT,
    PRIMARY KEY (user_id, code_hash)
);

-- Login's second step: the mfa_token by SHA-256, its wrong-code count, and whether it was spent.
CREATE TABLE mfa_challenges (
    token_hash TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    failures BIGINT NOT NULL DEFAULT 0,
    spent_at BIGINT
);
CREATE INDEX mfa_challenges_user_id ON mfa_challenges (user_id);
