-- Times are Unix milliseconds (UTC); ids are UUID text; flags are 0/1 integers (sqlx's Any driver cannot read SQLite booleans). The SQLite migration of the same name matches this one.
CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    email TEXT NOT NULL,
    username TEXT,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    is_active BIGINT NOT NULL DEFAULT 1,
    mfa_enabled BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    last_login_at BIGINT,
    CONSTRAINT users_email_key UNIQUE (email),
    CONSTRAINT users_username_key UNIQUE (username)
);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT,
    revoke_reason TEXT,
    mfa BIGINT NOT NULL,
    amr TEXT NOT NULL,
    ip TEXT,
    user_agent TEXT
);
CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_revoked_at ON sessions (revoked_at);

-- Every refresh token a session was ever given, by SHA-256; spent ones stay so that their reuse is recognised.
CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    spent_at BIGINT
);
CREATE INDEX refresh_tokens_session_id ON refresh_tokens (session_id);

-- slot = 'current' marks the one signing key; the unique slot makes first-start key creation race-safe.
CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY NOT NULL,
    slot TEXT UNIQUE,
    alg TEXT NOT NULL,
    public_x TEXT NOT NULL,
    sealed_private BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE audit_events (
    id TEXT PRIMARY KEY NOT NULL,
    at BIGINT NOT NULL,
    user_id TEXT,
    action TEXT NOT NULL,
    outcome TEXT NOT NULL,
    ip TEXT,
    user_agent TEXT,
    detail TEXT NOT NULL
);
CREATE INDEX audit_events_user_at ON audit_events (user_id, at);
CREATE INDEX audit_events_at ON audit_events (at);
