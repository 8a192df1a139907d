-- Browser sessions: the cookie holds an opaque token stored here by SHA-256. A row without session_id is a
-- pre-session (before sign-in, carrying the login form's CSRF token) or, with mfa_token, a sign-in waiting
-- for its second factor.
CREATE TABLE web_sessions (
    token_hash TEXT PRIMARY KEY NOT NULL,
    session_id TEXT REFERENCES sessions (id) ON DELETE CASCADE,
    sealed_mfa_token BYTEA,
    csrf TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX web_sessions_expires_at ON web_sessions (expires_at);
