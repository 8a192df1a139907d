-- The OpenID Connect provider: registered clients, consents, authorization codes, grants and their
-- refresh tokens. Secrets, codes and tokens are stored by SHA-256 (they are 256-bit random values).
CREATE TABLE oauth_clients (
    client_id TEXT PRIMARY KEY NOT NULL,
    secret_hash TEXT,
    name TEXT NOT NULL,
    -- JSON arrays of strings.
    redirect_uris TEXT NOT NULL,
    post_logout_redirect_uris TEXT NOT NULL,
    grant_types TEXT NOT NULL,
    scopes TEXT NOT NULL,
    consent TEXT NOT NULL,
    require_mfa BIGINT NOT NULL,
    require_pkce BIGINT NOT NULL,
    id_token_alg TEXT NOT NULL,
    backchannel_logout_uri TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    last_token_at BIGINT
);

-- What a user agreed to let a client have: a space-separated scope set.
CREATE TABLE oauth_consents (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id TEXT NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    scope TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

-- A grant: the tokens one authorization gave one client, tied to the browser session that approved it.
CREATE TABLE oauth_grants (
    id TEXT PRIMARY KEY NOT NULL,
    client_id TEXT NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    scope TEXT NOT NULL,
    nonce TEXT,
    auth_time BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL,
    access_expires_at BIGINT NOT NULL,
    revoked_at BIGINT,
    revoke_reason TEXT
);
CREATE INDEX oauth_grants_session ON oauth_grants (session_id);
CREATE INDEX oauth_grants_user ON oauth_grants (user_id, client_id);
CREATE INDEX oauth_grants_access_expires_at ON oauth_grants (access_expires_at);
CREATE INDEX oauth_grants_revoked_at ON oauth_grants (revoked_at);

CREATE TABLE oauth_codes (
    code_hash TEXT PRIMARY KEY NOT NULL,
    client_id TEXT NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    redirect_uri TEXT NOT NULL,
    scope TEXT NOT NULL,
    nonce TEXT,
    code_challenge TEXT,
    auth_time BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    spent_at BIGINT,
    -- The grant the code was redeemed for: a second redemption revokes it.
    grant_id TEXT
);
CREATE INDEX oauth_codes_expires_at ON oauth_codes (expires_at);

CREATE TABLE oauth_refresh_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    grant_id TEXT NOT NULL REFERENCES oauth_grants (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    spent_at BIGINT
);
CREATE INDEX oauth_refresh_tokens_grant ON oauth_refresh_tokens (grant_id);
