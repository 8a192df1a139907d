-- Every change to what a user view shows (the user's row, their memberships, an organisation's name), written
-- by triggers so that no write path can forget it. Each instance reads the recent rows every revocation poll
-- and drops those users from its cache of user views. `changed_at` is the database's clock (Unix ms), the
-- one clock every instance shares. Pruned with the other dead rows.
CREATE TABLE user_changes (
    user_id TEXT NOT NULL,
    changed_at BIGINT NOT NULL
);
CREATE INDEX user_changes_changed_at ON user_changes (changed_at);

CREATE FUNCTION user_changes_now() RETURNS BIGINT LANGUAGE sql VOLATILE AS $$
    SELECT (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT
$$;

CREATE FUNCTION note_user_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO user_changes (user_id, changed_at) VALUES (NEW.id, user_changes_now());
    RETURN NULL;
END
$$;
CREATE TRIGGER users_changed AFTER UPDATE OF email, username, role, is_active, mfa_enabled, email_verified,
    last_login_at ON users FOR EACH ROW EXECUTE FUNCTION note_user_changed();

CREATE FUNCTION note_membership_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO user_changes (user_id, changed_at) VALUES (OLD.user_id, user_changes_now());
    ELSE
        INSERT INTO user_changes (user_id, changed_at) VALUES (NEW.user_id, user_changes_now());
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER org_members_changed AFTER INSERT OR UPDATE OR DELETE ON org_members
    FOR EACH ROW EXECUTE FUNCTION note_membership_changed();

CREATE FUNCTION note_org_renamed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO user_changes (user_id, changed_at)
    SELECT user_id, user_changes_now() FROM org_members WHERE org_id = NEW.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER orgs_renamed AFTER UPDATE OF name, slug ON orgs FOR EACH ROW EXECUTE FUNCTION note_org_renamed();
