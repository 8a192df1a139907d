-- Every change to what a user view shows (the user's row, their memberships, an organisation's name), written
-- by triggers so that no write path can forget it. Each instance reads the recent rows every revocation poll
-- and drops those users from its cache of user views. `changed_at` is the database's clock (Unix ms), the
-- one clock every instance shares. Pruned with the other dead rows.
CREATE TABLE user_changes (
    user_id TEXT NOT NULL,
    changed_at BIGINT NOT NULL
);
CREATE INDEX user_changes_changed_at ON user_changes (changed_at);

CREATE TRIGGER users_changed AFTER UPDATE OF email, username, role, is_active, mfa_enabled, email_verified,
    last_login_at ON users
BEGIN
    INSERT INTO user_changes (user_id, changed_at)
    VALUES (NEW.id, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;

CREATE TRIGGER org_members_added AFTER INSERT ON org_members
BEGIN
    INSERT INTO user_changes (user_id, changed_at)
    VALUES (NEW.user_id, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;

CREATE TRIGGER org_members_changed AFTER UPDATE ON org_members
BEGIN
    INSERT INTO user_changes (user_id, changed_at)
    VALUES (NEW.user_id, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;

CREATE TRIGGER org_members_removed AFTER DELETE ON org_members
BEGIN
    INSERT INTO user_changes (user_id, changed_at)
    VALUES (OLD.user_id, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;

CREATE TRIGGER orgs_renamed AFTER UPDATE OF name, slug ON orgs
BEGIN
    INSERT INTO user_changes (user_id, changed_at)
    SELECT user_id, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) FROM org_members
    WHERE org_id = NEW.id;
END;
