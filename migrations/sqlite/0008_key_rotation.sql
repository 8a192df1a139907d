-- Key rotation: a retired key loses its slot and is kept, published, until the tokens it signed have expired.
-- public_x holds the public half as published: x for Ed25519, the JWK for RSA and P-256 keys.
ALTER TABLE signing_keys ADD COLUMN retired_at BIGINT;
