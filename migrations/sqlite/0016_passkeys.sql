-- Passkeys (WebAuthn credentials). `credential` is webauthn-rs's JSON of the credential: its public key, the
-- signature counter and the backup flags, rewritten after every sign-in. Nothing in it is secret.
CREATE TABLE passkeys (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The authenticator's credential id, base64url: one account per credential.
    credential_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    credential TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE INDEX passkeys_user_id ON passkeys (user_id);

-- A ceremony between its two steps: the challenge_id by SHA-256, what it is for ("register", "login", "mfa"),
-- whose it is (no one for a usernameless sign-in), the pending sign-in it belongs to (for "mfa"), and
-- webauthn-rs's state. Deleted before it is verified, so each challenge is used once.
CREATE TABLE passkey_challenges (
    id_hash TEXT PRIMARY KEY NOT NULL,
    purpose TEXT NOT NULL,
    user_id TEXT REFERENCES users (id) ON DELETE CASCADE,
    mfa_token_hash TEXT,
    state TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX passkey_challenges_expires_at ON passkey_challenges (expires_at);
