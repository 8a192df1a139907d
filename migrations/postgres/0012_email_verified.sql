-- Whether the account's address was confirmed from a mailed link (accounts made by an operator count as confirmed).
ALTER TABLE users ADD COLUMN email_verified BIGINT NOT NULL DEFAULT 0;
