-- An email-change link carries the address it confirms.
ALTER TABLE mail_tokens ADD COLUMN new_email TEXT;
