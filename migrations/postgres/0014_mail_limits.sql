-- Which account a queued mail is about and its kind ("password_reset", "notice_mfa_enabled", ...): at most three
-- mails of a kind per account per hour (API.md). Back-channel logouts leave both empty.
ALTER TABLE outbox ADD COLUMN user_id TEXT;
ALTER TABLE outbox ADD COLUMN topic TEXT;
CREATE INDEX outbox_user_topic ON outbox (user_id, topic, created_at) WHERE user_id IS NOT NULL;
-- Whether the password step of a sign-in waiting for its second factor came from a device the account had not
-- signed in from before: the notice goes out when the sign-in completes.
ALTER TABLE mfa_challenges ADD COLUMN new_device BIGINT NOT NULL DEFAULT 0;
