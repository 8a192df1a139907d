//! Accounts: registration, password login, password change, and operator-created users.

use uuid::Uuid;

use super::{
    Client, Services,
    audit::{self, Event},
    mail::Notice,
    mfa::LoginOutcome,
    passwords,
    sessions::IssuedTokens,
};
use crate::{
    clock,
    domain::{
        identity::{self, LoginIdentifier},
        password::{Hasher, Verification},
        roles::Role,
        tokens::AccessClaims,
    },
    error::{Error, FieldError, Result},
    store::{
        mail_tokens, sessions,
        users::{self, Profile, UserRecord},
    },
};

pub struct NewAccount<'a> {
    pub email: &'a str,
    pub username: Option<&'a str>,
    pub password: &'a str,
}

/// How an operator-created account gets its password.
pub enum InitialPassword<'a> {
    Plain(&'a str),
    /// An Argon2id, bcrypt or PBKDF2-SHA256 hash imported from another system.
    Hash(&'a str),
}

impl Services {
    /// Self-registration: a `viewer` account, signed in at once, unless addresses must be confirmed first
    /// (`LATCHKEY_REQUIRE_EMAIL_VERIFICATION`): then no session, only the mail.
    pub async fn register(&self, new: NewAccount<'_>, client: &Client) -> Result<(UserRecord, Option<IssuedTokens>)> {
        let (email, username) = self.validate_account(&new, &InitialPassword::Plain(new.password))?;
        // email_taken is the documented exception to "no enumeration"; answering it before hashing saves the work.
        if users::email_exists(self.db.pool(), &email).await? {
            return Err(Error::Conflict { code: "email_taken", message: "An account with that email already exists." });
        }
        let user = self.new_user(email, username, Role::Viewer, self.passwords.hash(new.password).await?);
        let mut tx = self.db.begin().await?;
        users::insert(&mut tx, &user).await?;
        if self.mail_enabled() {
            self.queue_verification(&mut tx, &user, client).await?;
        }
        audit::record(&mut tx, client, Event::success("register", user.profile.id)).await?;
        let tokens = if self.config.require_email_verification {
            None
        } else {
            Some(self.open_session(&mut tx, &user, &["pwd"], client).await?)
        };
        tx.commit().await?;
        Ok((user, tokens))
    }

    /// `latchkey user create`: any role, a password or an imported hash.
    pub async fn create_user(
        &self,
        email: &str,
        username: Option<&str>,
        role: Role,
        password: InitialPassword<'_>,
    ) -> Result<UserRecord> {
        let plain = match password {
            InitialPassword::Plain(p) => p,
            InitialPassword::Hash(_) => "",
        };
        let (email, username) = self.validate_account(&NewAccount { email, username, password: plain }, &password)?;
        let hash = match password {
            InitialPassword::Plain(p) => self.passwords.hash(p).await?,
            InitialPassword::Hash(h) => h.to_string(),
        };
        // An operator vouches for the address of an account they make.
        let mut user = self.new_user(email, username, role, hash);
        user.profile.email_verified = true;
        let mut tx = self.db.begin().await?;
        users::insert(&mut tx, &user).await?;
        let event = Event::success("register", user.profile.id).with("via", "cli").with("role", role.as_str());
        audit::record(&mut tx, &Client::default(), event).await?;
        tx.commit().await?;
        Ok(user)
    }

    fn new_user(&self, email: String, username: Option<String>, role: Role, password_hash: String) -> UserRecord {
        let profile = Profile {
            id: Uuid::new_v4(),
            email,
            username,
            role,
            is_active: true,
            mfa_enabled: false,
            email_verified: false,
            created_at: clock::now_ms(),
            last_login_at: None,
        };
        UserRecord { profile, password_hash }
    }

    /// Field formats first (422 `validation_failed`), then the password policy (422 `weak_password`).
    fn validate_account(
        &self,
        new: &NewAccount<'_>,
        password: &InitialPassword<'_>,
    ) -> Result<(String, Option<String>)> {
        let mut problems = Vec::new();
        let email = identity::normalize_email(new.email)
            .map_err(|m| problems.push(FieldError { field: "email", message: m.into() }))
            .ok();
        let username = match new.username.filter(|u| !u.trim().is_empty()) {
            None => None,
            Some(raw) => identity::normalize_username(raw)
                .map_err(|m| problems.push(FieldError { field: "username", message: m.into() }))
                .ok(),
        };
        let Some(email) = email.filter(|_| problems.is_empty()) else {
            return Err(Error::Validation(problems));
        };
        match password {
            InitialPassword::Plain(p) => self
                .passwords
                .policy
                .check(p, &email, username.as_deref())
                .map_err(|message| Error::WeakPassword(FieldError { field: "password", message }))?,
            InitialPassword::Hash(h) if !Hasher::is_supported_hash(h) => {
                return Err(Error::invalid_field("password_hash", "Not an Argon2, bcrypt or pbkdf2_sha256 hash."));
            }
            InitialPassword::Hash(_) => {}
        }
        Ok((email, username))
    }

    /// Password login. Unknown users cost one Argon2 verification like everyone else and get the same answer.
    /// The attempt is counted before its password is checked; a locked identifier (or device) is refused
    /// without a check. An enrolled user gets an
    /// `mfa_token` instead of tokens.
    pub async fn login(
        &self,
        identifier: &str,
        password: &str,
        device_token: Option<&str>,
        client: &Client,
    ) -> Result<LoginOutcome> {
        if self.passwords.is_saturated() {
            // Shed before any database work: under a flood, refusing must stay cheap.
            return Err(passwords::overloaded());
        }
        let identifier = LoginIdentifier::parse(identifier);
        let user = users::find_by_identifier(self.db.pool(), &identifier).await?;
        let scope = self.lock_scope(&identifier, user.as_ref(), device_token, clock::now_ms()).await?;
        let attempt = self.reserve_attempt(scope, user.as_ref().map(|u| u.profile.id), client).await?;
        let verification = match self.passwords.verify(password, user.as_ref().map(|u| u.password_hash.as_str())).await
        {
            Ok(verification) => verification,
            Err(e) => {
                self.release_attempt(&attempt).await?;
                return Err(e);
            }
        };
        let (user, rehash) = match (user, verification) {
            (Some(user), Verification::Match { rehash }) => (user, rehash),
            (user, _) => {
                let user_id = user.map(|u| u.profile.id);
                let mut event = Event::failure("login_failed", user_id).with("reason", "invalid_credentials");
                if user_id.is_none() {
                    event = event.with("identifier", identifier.as_str().chars().take(64).collect::<String>());
                }
                let mut tx = self.db.begin().await?;
                audit::record(&mut tx, client, event).await?;
                let locked_meanwhile = self.count_failure(&mut tx, &attempt, user_id, client).await?;
                tx.commit().await?;
                return Err(locked_meanwhile.unwrap_or(Error::InvalidCredentials));
            }
        };
        if !user.profile.is_active {
            self.release_attempt(&attempt).await?;
            let event = Event::failure("login_failed", Some(user.profile.id)).with("reason", "inactive_user");
            self.record_alone(client, event).await?;
            return Err(Error::InactiveUser);
        }
        if self.config.require_email_verification && !user.profile.email_verified {
            self.release_attempt(&attempt).await?;
            let event = Event::failure("login_failed", Some(user.profile.id)).with("reason", "email_not_verified");
            self.record_alone(client, event).await?;
            return Err(Error::EmailNotVerified);
        }
        // A hash upgrade that cannot run now (a full queue) waits for the next login; the sign-in goes on.
        let upgraded = if rehash { self.passwords.hash(password).await.ok() } else { None };
        let now = clock::now_ms();
        let mut tx = self.db.begin().await?;
        self.clear_failures(&mut tx, &attempt).await?;
        if let Some(hash) = &upgraded {
            users::set_password_hash(&mut tx, user.profile.id, hash, now).await?;
        }
        let new_device = device_token.and_then(|t| self.devices.verify(t, user.profile.id, now / 1000)).is_none();
        if user.profile.mfa_enabled {
            let owed = self.open_challenge(&mut tx, &user, new_device).await?;
            tx.commit().await?;
            return Ok(owed);
        }
        users::record_login(&mut tx, user.profile.id, now).await?;
        let tokens = self.open_session(&mut tx, &user, &["pwd"], client).await?;
        if new_device {
            self.notice_new_device(&mut tx, &user, client, now).await?;
        }
        let event = Event::success("login", user.profile.id)
            .with("method", "password")
            .with("hash_upgraded", upgraded.is_some());
        audit::record(&mut tx, client, event).await?;
        self.commit_user_change(tx, &[user.profile.id]).await?;
        Ok(LoginOutcome::Tokens(tokens))
    }

    /// Needs the current password; ends every other session of the user.
    pub async fn change_password(&self, auth: &AccessClaims, current: &str, new: &str, client: &Client) -> Result<()> {
        let user = self.user(auth.sub).await?;
        self.require_step_up(auth, &user)?;
        self.check_current_password(&user, current, client, "password_changed").await?;
        self.passwords
            .policy
            .check(new, &user.profile.email, user.profile.username.as_deref())
            .map_err(|message| Error::WeakPassword(FieldError { field: "new_password", message }))?;
        let hash = self.passwords.hash(new).await?;
        let now = clock::now_ms();
        let mut tx = self.db.begin().await?;
        users::set_password_hash(&mut tx, user.profile.id, &hash, now).await?;
        mail_tokens::spend_all(&mut tx, user.profile.id, mail_tokens::PASSWORD_RESET, now).await?;
        self.queue_notice(&mut tx, &user, Notice::PasswordChanged, client, now).await?;
        let ended = sessions::revoke_all(&mut tx, user.profile.id, Some(auth.sid), now, "password_changed").await?;
        audit::record(
            &mut tx,
            client,
            Event::success("password_changed", user.profile.id).with("sessions_ended", ended.len()),
        )
        .await?;
        tx.commit().await?;
        self.revocations.add(ended, now);
        Ok(())
    }

    /// Confirms the password of a signed-in user before a sensitive change; a wrong one is audited as a
    /// failed `action`.
    pub(crate) async fn check_current_password(
        &self,
        user: &UserRecord,
        password: &str,
        client: &Client,
        action: &'static str,
    ) -> Result<()> {
        if matches!(self.passwords.verify(password, Some(&user.password_hash)).await?, Verification::Match { .. }) {
            return Ok(());
        }
        self.record_alone(client, Event::failure(action, Some(user.profile.id)).with("reason", "wrong_password"))
            .await?;
        Err(Error::WrongPassword)
    }

    /// The user behind a valid token. A token can outlive a deleted user only by its short lifetime.
    pub async fn user(&self, id: Uuid) -> Result<UserRecord> {
        users::find_by_id(self.db.pool(), id).await?.ok_or(Error::InvalidToken)
    }
}
