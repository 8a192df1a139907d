//! Passkeys (WebAuthn): registering one, signing in with one (without a username, or as the second factor
//! after a password), and renaming or removing them. webauthn-rs-core runs the ceremonies; its state between
//! the two steps is kept in the database for 5 minutes and deleted before it is verified, so that each
//! challenge is used once, on whichever instance.

use std::time::Duration;

use anyhow::Context;
use uuid::Uuid;
use webauthn_rs_core::{
    WebauthnCore,
    proto::{
        AttestationConveyancePreference, AuthenticationState, COSEAlgorithm, Credential, PublicKeyCredential,
        RegisterPublicKeyCredential, RegistrationState, RequestRegistrationExtensions, ResidentKeyRequirement,
        UserVerificationPolicy,
    },
};

use super::{
    Client, Services,
    audit::{self, Event},
    mail::Notice,
    sessions::IssuedTokens,
};
use crate::{
    clock,
    config::Config,
    domain::{passkeys as rules, random, tokens::AccessClaims},
    error::{Error, Result},
    store::{
        Tx, mfa,
        passkeys::{self, ChallengeRecord, PasskeyRecord},
        sessions, users,
        users::UserRecord,
    },
};

/// API.md: challenges live 5 minutes. Also the `timeout` the browser is given.
const CHALLENGE_TTL: Duration = Duration::from_secs(300);

/// The relying party: its id and the origins whose ceremonies it accepts.
pub struct RelyingParty {
    core: WebauthnCore,
}

impl RelyingParty {
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let origin = |text: &str, what: &str| -> anyhow::Result<url::Url> {
            let url = url::Url::parse(text).with_context(|| format!("{what}: {text:?} is not a URL"))?;
            url::Url::parse(&url.origin().ascii_serialization())
                .with_context(|| format!("{what}: {text:?} has no origin (scheme://host[:port])"))
        };
        let mut origins = vec![origin(&config.issuer, "LATCHKEY_ISSUER")?];
        for extra in &config.webauthn_origins {
            origins.push(origin(extra, "LATCHKEY_WEBAUTHN_ORIGINS")?);
        }
        let core = WebauthnCore::new_unsafe_experts_only(
            &config.mfa_issuer,
            &config.rp_id(),
            origins,
            CHALLENGE_TTL,
            Some(false),
            Some(false),
        );
        Ok(Self { core })
    }
}

/// What a ceremony's first step hands the browser: `options` is what `navigator.credentials.create/get`
/// take (`{publicKey: ...}`, binary fields base64url).
#[derive(serde::Serialize)]
pub struct Ceremony {
    pub challenge_id: String,
    pub options: serde_json::Value,
}

/// What a registration gives back: the passkey, and the backup codes when it was the first second factor.
pub struct Registered {
    pub passkey: PasskeyRecord,
    pub backup_codes: Option<Vec<String>>,
}

/// A passkey's answer to a sign-in challenge, already checked: the passkey and its credential as it is
/// to be stored, and whether the authenticator verified the user (PIN, biometrics).
pub(crate) struct Assertion {
    passkey: PasskeyRecord,
    credential: String,
    pub user_verified: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Register,
    Login,
    Mfa,
    StepUp,
    /// New backup codes for an account without TOTP, confirmed with one of its passkeys.
    BackupCodes,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::Register => "register",
            Purpose::Login => "login",
            Purpose::Mfa => "mfa",
            Purpose::StepUp => "step_up",
            Purpose::BackupCodes => "backup_codes",
        }
    }
}

fn expired_challenge() -> Error {
    Error::invalid_field("challenge_id", "This passkey request expired or was used already; start again.")
}

fn parse_stored(passkey: &PasskeyRecord) -> Result<Credential> {
    serde_json::from_str(&passkey.credential)
        .map_err(|e| Error::Internal(anyhow::Error::new(e).context("a stored passkey does not parse")))
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::Internal(e.into()))
}

impl Services {
    fn webauthn(&self) -> &WebauthnCore {
        &self.relying_party.core
    }

    /// Stores a ceremony's state and hands out its id (kept by SHA-256 only).
    async fn open_ceremony(
        &self,
        purpose: Purpose,
        user_id: Option<Uuid>,
        bound_to: Option<String>,
        state: &impl serde::Serialize,
        options: &impl serde::Serialize,
    ) -> Result<Ceremony> {
        let now = clock::now_ms();
        let challenge_id = random::opaque_token();
        let record = ChallengeRecord {
            purpose: purpose.as_str().into(),
            user_id,
            bound_to,
            state: to_json(state)?,
            expires_at: now + clock::duration_ms(CHALLENGE_TTL),
        };
        let mut conn = self.db.pool().acquire().await?;
        passkeys::insert_challenge(&mut conn, &random::token_digest(&challenge_id), &record, now).await?;
        let options = serde_json::to_value(options).map_err(|e| Error::Internal(e.into()))?;
        Ok(Ceremony { challenge_id, options })
    }

    /// Takes a ceremony's state out of the database (on its own, before anything is verified: a failed
    /// attempt spends it too), if it is live and was opened for this purpose and pending sign-in or session
    /// (and this user, when one is given). Also whose ceremony it was.
    async fn take_ceremony<S: serde::de::DeserializeOwned>(
        &self,
        challenge_id: &str,
        purpose: Purpose,
        user_id: Option<Uuid>,
        bound_to: Option<&str>,
    ) -> Result<(Option<Uuid>, S)> {
        let mut conn = self.db.pool().acquire().await?;
        let taken = passkeys::take_challenge(&mut conn, &random::token_digest(challenge_id)).await?;
        let record = taken
            .filter(|c| c.expires_at > clock::now_ms())
            .filter(|c| c.purpose == purpose.as_str() && c.bound_to.as_deref() == bound_to)
            .filter(|c| user_id.is_none() || c.user_id == user_id)
            .ok_or_else(expired_challenge)?;
        let state = serde_json::from_str(&record.state)
            .map_err(|e| Error::Internal(anyhow::Error::new(e).context("a passkey ceremony's state does not parse")))?;
        Ok((record.user_id, state))
    }

    /// A registration's first step. An account with two factors adds one only from a session that gave both.
    pub async fn passkey_register_start(&self, auth: &AccessClaims) -> Result<Ceremony> {
        let user = self.user(auth.sub).await?;
        self.require_step_up(auth, &user)?;
        let mut exclude = Vec::new();
        for passkey in passkeys::of_user(self.db.pool(), user.profile.id).await? {
            exclude.push(parse_stored(&passkey)?.cred_id);
        }
        let display_name = user.profile.username.as_deref().unwrap_or(&user.profile.email);
        let builder = self
            .webauthn()
            .new_challenge_register_builder(user.profile.id.as_bytes(), &user.profile.email, display_name)
            .map_err(|e| Error::Internal(anyhow::anyhow!("cannot start a passkey registration: {e}")))?
            .attestation(AttestationConveyancePreference::None)
            .credential_algorithms(COSEAlgorithm::secure_algs())
            .user_verification_policy(UserVerificationPolicy::Preferred)
            .exclude_credentials(Some(exclude))
            .extensions(Some(RequestRegistrationExtensions { cred_props: Some(true), ..Default::default() }));
        let (mut options, state) = self
            .webauthn()
            .generate_challenge_register(builder)
            .map_err(|e| Error::Internal(anyhow::anyhow!("cannot start a passkey registration: {e}")))?;
        // webauthn-rs asks for a discoverable credential only as "required" or "discouraged"; "discouraged"
        // makes sign-in without a username impossible, "required" shuts out security keys that are full.
        if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
            selection.resident_key = Some(ResidentKeyRequirement::Preferred);
            selection.require_resident_key = false;
        }
        self.open_ceremony(Purpose::Register, Some(user.profile.id), None, &state, &options).await
    }

    /// A registration's second step. The first second factor of an account turns two-factor on, issues the
    /// backup codes and ends the account's other sessions, as turning on TOTP does.
    pub async fn passkey_register_finish(
        &self,
        auth: &AccessClaims,
        challenge_id: &str,
        name: &str,
        credential: &RegisterPublicKeyCredential,
        client: &Client,
    ) -> Result<Registered> {
        let user = self.user(auth.sub).await?;
        self.require_step_up(auth, &user)?;
        let name = rules::name(name).map_err(|message| Error::invalid_field("name", message))?;
        let (_, state): (_, RegistrationState) =
            self.take_ceremony(challenge_id, Purpose::Register, Some(user.profile.id), None).await?;
        let verified = self.webauthn().register_credential(credential, &state, None).map_err(|e| {
            tracing::info!(error = %e, "a passkey registration did not verify");
            Error::invalid_field("credential", "The passkey could not be verified; try again.")
        })?;
        let now = clock::now_ms();
        let passkey = PasskeyRecord {
            id: Uuid::new_v4(),
            user_id: user.profile.id,
            name,
            credential: to_json(&verified)?,
            created_at: now,
            last_used_at: None,
        };
        let mut tx = self.db.begin().await?;
        users::lock_row(&mut tx, user.profile.id, self.db.row_lock()).await?;
        if !passkeys::insert(&mut tx, &passkey, &rules::credential_id_text(&verified.cred_id)).await? {
            return Err(Error::Conflict { code: "passkey_exists", message: "This passkey is registered already." });
        }
        let first_factor = !self.user_in(&mut tx, user.profile.id).await?.profile.mfa_enabled;
        let mut backup_codes = None;
        let mut ended = Vec::new();
        if first_factor {
            backup_codes = Some(self.store_new_backup_codes(&mut tx, user.profile.id, now).await?);
            users::set_mfa_enabled(&mut tx, user.profile.id, true, now).await?;
            ended = sessions::revoke_all(&mut tx, user.profile.id, Some(auth.sid), now, "mfa_enabled").await?;
        }
        self.queue_notice(&mut tx, &user, Notice::PasskeyAdded { name: &passkey.name }, client, now).await?;
        let event = Event::success("passkey_added", user.profile.id)
            .with("passkey_id", passkey.id.to_string())
            .with("name", passkey.name.clone())
            .with("mfa_turned_on", first_factor)
            .with("sessions_ended", ended.len());
        audit::record(&mut tx, client, event).await?;
        self.commit_user_change(tx, &[user.profile.id]).await?;
        self.revocations.add(ended, now);
        Ok(Registered { passkey, backup_codes })
    }

    async fn user_in(&self, tx: &mut Tx, id: Uuid) -> Result<UserRecord> {
        users::find_by_id(&mut **tx, id).await?.ok_or(Error::InvalidToken)
    }

    pub async fn passkeys(&self, auth: &AccessClaims) -> Result<Vec<PasskeyRecord>> {
        passkeys::of_user(self.db.pool(), auth.sub).await
    }

    pub async fn passkeys_of(&self, user_id: Uuid) -> Result<Vec<PasskeyRecord>> {
        passkeys::of_user(self.db.pool(), user_id).await
    }

    pub async fn passkey_rename(&self, auth: &AccessClaims, id: Uuid, name: &str) -> Result<PasskeyRecord> {
        let name = rules::name(name).map_err(|message| Error::invalid_field("name", message))?;
        let mut conn = self.db.pool().acquire().await?;
        if !passkeys::rename(&mut conn, auth.sub, id, &name).await? {
            return Err(Error::NotFound);
        }
        let found = passkeys::of_user(&mut *conn, auth.sub).await?.into_iter().find(|p| p.id == id);
        found.ok_or(Error::NotFound)
    }

    /// Removes one of the caller's passkeys. On an account with two factors it needs a session that gave
    /// both; removing the last second factor also needs the password, and turns two-factor off.
    pub async fn passkey_remove(
        &self,
        auth: &AccessClaims,
        id: Uuid,
        password: Option<&str>,
        client: &Client,
    ) -> Result<()> {
        let user = self.user(auth.sub).await?;
        self.require_step_up(auth, &user)?;
        let held = passkeys::of_user(self.db.pool(), user.profile.id).await?;
        let Some(passkey) = held.iter().find(|p| p.id == id) else { return Err(Error::NotFound) };
        let totp_on = mfa::totp(self.db.pool(), user.profile.id).await?.is_some_and(|c| c.enabled);
        let last_factor = held.len() == 1 && !totp_on;
        if last_factor {
            self.check_current_password(&user, password.unwrap_or_default(), client, "passkey_removed").await?;
        }
        self.remove_passkey(&user, passkey, last_factor, None, client).await
    }

    /// An admin removes one passkey of a user (audited with who did it). The user's last second factor
    /// going turns two-factor off.
    pub async fn admin_remove_passkey(
        &self,
        actor: super::admin::Actor,
        user_id: Uuid,
        id: Uuid,
        client: &Client,
    ) -> Result<()> {
        let user = users::find_by_id(self.db.pool(), user_id).await?.ok_or(Error::NotFound)?;
        let held = passkeys::of_user(self.db.pool(), user.profile.id).await?;
        let Some(passkey) = held.iter().find(|p| p.id == id) else { return Err(Error::NotFound) };
        let totp_on = mfa::totp(self.db.pool(), user.profile.id).await?.is_some_and(|c| c.enabled);
        self.remove_passkey(&user, passkey, held.len() == 1 && !totp_on, Some(actor.name()), client).await
    }

    async fn remove_passkey(
        &self,
        user: &UserRecord,
        passkey: &PasskeyRecord,
        last_factor: bool,
        by: Option<String>,
        client: &Client,
    ) -> Result<()> {
        let now = clock::now_ms();
        let mut tx = self.db.begin().await?;
        if !passkeys::delete(&mut tx, user.profile.id, passkey.id).await? {
            return Err(Error::NotFound);
        }
        if last_factor {
            mfa::delete_all(&mut tx, user.profile.id).await?;
            users::set_mfa_enabled(&mut tx, user.profile.id, false, now).await?;
            self.queue_notice(&mut tx, user, Notice::MfaDisabled, client, now).await?;
        }
        let mut event = Event::success("passkey_removed", user.profile.id)
            .with("passkey_id", passkey.id.to_string())
            .with("name", passkey.name.clone())
            .with("mfa_turned_off", last_factor);
        if let Some(by) = by {
            event = event.with("by", by);
        }
        audit::record(&mut tx, client, event).await?;
        self.commit_user_change(tx, &[user.profile.id]).await?;
        Ok(())
    }

    /// A sign-in's first step. Without a username the browser offers whichever passkey of this site it
    /// holds; with one, that account's passkeys are listed (an unknown name gets an empty list, the same
    /// answer as a user without passkeys: no enumeration).
    pub async fn passkey_login_start(&self, username: Option<&str>) -> Result<Ceremony> {
        let mut user_id = None;
        let mut allowed = Vec::new();
        if let Some(name) = username.map(str::trim).filter(|n| !n.is_empty()) {
            let identifier = crate::domain::identity::LoginIdentifier::parse(name);
            if let Some(user) = users::find_by_identifier(self.db.pool(), &identifier).await? {
                for passkey in passkeys::of_user(self.db.pool(), user.profile.id).await? {
                    allowed.push(parse_stored(&passkey)?);
                }
                user_id = Some(user.profile.id);
            }
        }
        let (options, state) = self.assertion_challenge(allowed, UserVerificationPolicy::Preferred)?;
        self.open_ceremony(Purpose::Login, user_id, None, &state, &options).await
    }

    fn assertion_challenge(
        &self,
        allowed: Vec<Credential>,
        verification: UserVerificationPolicy,
    ) -> Result<(webauthn_rs_core::proto::RequestChallengeResponse, AuthenticationState)> {
        let fail = |e: webauthn_rs_core::error::WebauthnError| {
            Error::Internal(anyhow::anyhow!("cannot start a passkey sign-in: {e}"))
        };
        let builder = self
            .webauthn()
            .new_challenge_authenticate_builder(allowed, Some(verification))
            .map_err(fail)?
            .allow_backup_eligible_upgrade(true);
        self.webauthn().generate_challenge_authenticate(builder).map_err(fail)
    }

    /// Checks a passkey's answer against the ceremony: the credential must be registered, to the user the
    /// user handle names (and to `owner`, when the ceremony was for one account). A refusal carries the
    /// owner, when known, for the audit; a database that fails is an error, not a refusal (it must not count
    /// towards anyone's lock).
    async fn check_assertion(
        &self,
        state: &AuthenticationState,
        presented: &PublicKeyCredential,
        owner: Option<Uuid>,
    ) -> Result<Result<Assertion, Option<Uuid>>> {
        let credential_id = rules::credential_id_text(&presented.raw_id);
        let Some(passkey) = passkeys::by_credential_id(self.db.pool(), &credential_id).await? else {
            return Ok(Err(None));
        };
        let holder = Some(passkey.user_id);
        let handle_matches = presented.get_user_unique_id().is_none_or(|h| h == passkey.user_id.as_bytes());
        let for_holder = owner.is_none_or(|o| o == passkey.user_id);
        // Without a known owner the user handle is what names the account: it must be there.
        let named = owner.is_some() || presented.get_user_unique_id().is_some();
        if !(handle_matches && for_holder && named) {
            return Ok(Err(holder));
        }
        let stored = parse_stored(&passkey)?;
        let prepared = rules::prepared_for(&stored, presented.response.authenticator_data.as_ref());
        let result = match self.webauthn().authenticate_single_credential(presented, state, &prepared) {
            Ok(result) => result,
            Err(e) => {
                tracing::info!(error = %e, "a passkey sign-in did not verify");
                return Ok(Err(holder));
            }
        };
        let credential = to_json(&rules::after_sign_in(prepared, &result))?;
        Ok(Ok(Assertion { passkey, credential, user_verified: result.user_verified() }))
    }

    /// A sign-in's second step: a session, multi-factor when the authenticator verified the user. Locked
    /// and deactivated accounts are refused as at password sign-in; failures count towards the lock.
    pub async fn passkey_login_finish(
        &self,
        challenge_id: &str,
        presented: &PublicKeyCredential,
        device_token: Option<&str>,
        client: &Client,
    ) -> Result<IssuedTokens> {
        let (owner, state): (_, AuthenticationState) =
            self.take_ceremony(challenge_id, Purpose::Login, None, None).await?;
        let assertion = match self.check_assertion(&state, presented, owner).await? {
            Ok(assertion) => assertion,
            Err(holder) => return Err(self.passkey_refused(holder, client).await),
        };
        let now = clock::now_ms();
        let mut tx = self.db.begin().await?;
        users::lock_row(&mut tx, assertion.passkey.user_id, self.db.row_lock()).await?;
        let user = self.user_in(&mut tx, assertion.passkey.user_id).await.map_err(|_| Error::InvalidCredentials)?;
        self.refuse_if_locked(&mut tx, &user).await?;
        if !user.profile.is_active {
            drop(tx);
            let event = Event::failure("passkey_login_failed", Some(user.profile.id)).with("reason", "inactive_user");
            self.record_alone(client, event).await?;
            return Err(Error::InactiveUser);
        }
        if self.config.require_email_verification && !user.profile.email_verified {
            return Err(Error::EmailNotVerified);
        }
        passkeys::record_use(&mut tx, assertion.passkey.id, &assertion.credential, now).await?;
        crate::store::lockouts::reset_mfa_failures(&mut tx, user.profile.id).await?;
        users::record_login(&mut tx, user.profile.id, now).await?;
        let amr: &[&str] = if assertion.user_verified { &["pop", "mfa"] } else { &["pop"] };
        let tokens = self.open_session(&mut tx, &user, amr, client).await?;
        if device_token.and_then(|t| self.devices.verify(t, user.profile.id, now / 1000)).is_none() {
            self.notice_new_device(&mut tx, &user, client, now).await?;
        }
        let event = Event::success("passkey_login", user.profile.id)
            .with("passkey_id", assertion.passkey.id.to_string())
            .with("user_verified", assertion.user_verified);
        audit::record(&mut tx, client, event).await?;
        let method = if assertion.user_verified { "passkey" } else { "passkey_without_verification" };
        audit::record(&mut tx, client, Event::success("login", user.profile.id).with("method", method)).await?;
        self.commit_user_change(tx, &[user.profile.id]).await?;
        Ok(tokens)
    }

    /// Audits a refused passkey (on its owner when known, where it counts towards the account's lock) and
    /// gives the one answer every refusal gets.
    async fn passkey_refused(&self, holder: Option<Uuid>, client: &Client) -> Error {
        let outcome: Result<()> = async {
            let mut tx = self.db.begin().await?;
            audit::record(&mut tx, client, Event::failure("passkey_login_failed", holder)).await?;
            if let Some(user) = match holder {
                Some(id) => users::find_by_id(&mut *tx, id).await?,
                None => None,
            } {
                self.count_mfa_failure(&mut tx, &user, client).await?;
            }
            tx.commit().await?;
            Ok(())
        }
        .await;
        match outcome {
            Ok(()) => Error::InvalidCredentials,
            Err(e) => e,
        }
    }

    /// The second factor by passkey, after a password: a challenge listing the account's passkeys, bound
    /// to the pending sign-in. 404 when the account has none.
    pub async fn passkey_mfa_start(&self, mfa_token: &str) -> Result<Ceremony> {
        let hash = random::token_digest(mfa_token);
        let now = clock::now_ms();
        let challenge = mfa::challenge(self.db.pool(), &hash, "").await?;
        let challenge = challenge.filter(|c| !c.spent && now < c.expires_at).ok_or(Error::InvalidToken)?;
        let allowed = self.credentials_of(challenge.user_id).await?;
        let (options, state) = self.assertion_challenge(allowed, UserVerificationPolicy::Preferred)?;
        self.open_ceremony(Purpose::Mfa, Some(challenge.user_id), Some(hash), &state, &options).await
    }

    /// A user's passkeys as the library lists them in a challenge; 404 when there are none.
    async fn credentials_of(&self, user_id: Uuid) -> Result<Vec<Credential>> {
        let mut allowed = Vec::new();
        for passkey in passkeys::of_user(self.db.pool(), user_id).await? {
            allowed.push(parse_stored(&passkey)?);
        }
        if allowed.is_empty() {
            return Err(Error::NotFound);
        }
        Ok(allowed)
    }

    /// The second factor by passkey for a signed-in session that has not given one: a challenge listing
    /// the account's passkeys, bound to the session. After a passkey sign-in the authenticator must verify
    /// the person (`domain::passkeys::step_up_needs_user_verification`). 404 when the account has none.
    pub async fn passkey_step_up_start(&self, auth: &AccessClaims) -> Result<Ceremony> {
        if auth.mfa {
            return Err(super::mfa::already_passed());
        }
        let verification = if rules::step_up_needs_user_verification(&auth.amr) {
            UserVerificationPolicy::Required
        } else {
            UserVerificationPolicy::Preferred
        };
        self.session_ceremony(auth, Purpose::StepUp, verification).await
    }

    /// A passkey to confirm new backup codes with, for an account without TOTP (whose codes would otherwise
    /// never be renewed): a challenge listing the account's passkeys, bound to the session.
    pub async fn passkey_backup_codes_start(&self, auth: &AccessClaims) -> Result<Ceremony> {
        self.session_ceremony(auth, Purpose::BackupCodes, UserVerificationPolicy::Preferred).await
    }

    /// A ceremony for a signed-in session, for one `purpose`, listing the account's passkeys.
    async fn session_ceremony(
        &self,
        auth: &AccessClaims,
        purpose: Purpose,
        verification: UserVerificationPolicy,
    ) -> Result<Ceremony> {
        let allowed = self.credentials_of(auth.sub).await?;
        let (options, state) = self.assertion_challenge(allowed, verification)?;
        self.open_ceremony(purpose, Some(auth.sub), Some(auth.sid.to_string()), &state, &options).await
    }

    /// The passkey's answer to a ceremony `session_ceremony` opened for this session and `purpose`, or
    /// `None` when it is refused.
    async fn session_assertion(
        &self,
        auth: &AccessClaims,
        purpose: Purpose,
        challenge_id: &str,
        presented: &PublicKeyCredential,
    ) -> Result<Option<Assertion>> {
        let session = auth.sid.to_string();
        let (_, state): (_, AuthenticationState) =
            self.take_ceremony(challenge_id, purpose, Some(auth.sub), Some(&session)).await?;
        Ok(self.check_assertion(&state, presented, Some(auth.sub)).await?.ok())
    }

    /// For `regenerate_backup_codes`: the passkey's answer to this session's backup-codes ceremony.
    pub(crate) async fn backup_codes_assertion(
        &self,
        auth: &AccessClaims,
        challenge_id: &str,
        presented: &PublicKeyCredential,
    ) -> Result<Option<Assertion>> {
        self.session_assertion(auth, Purpose::BackupCodes, challenge_id, presented).await
    }

    /// For `mfa_step_up`: the passkey's answer to a step-up ceremony of this session, or `None` when it is
    /// refused (which counts as a wrong code), including a passkey that did not verify the person when
    /// that was needed.
    pub(crate) async fn step_up_assertion(
        &self,
        auth: &AccessClaims,
        challenge_id: &str,
        presented: &PublicKeyCredential,
    ) -> Result<Option<Assertion>> {
        let needs_verification = rules::step_up_needs_user_verification(&auth.amr);
        let assertion = self.session_assertion(auth, Purpose::StepUp, challenge_id, presented).await?;
        Ok(assertion.filter(|a| a.user_verified || !needs_verification))
    }

    /// For `mfa_challenge`: the passkey's answer to a second-factor ceremony of this pending sign-in, or
    /// `None` when it is refused (which counts as a wrong code).
    pub(crate) async fn second_factor_assertion(
        &self,
        user_id: Uuid,
        mfa_token_hash: &str,
        challenge_id: &str,
        presented: &PublicKeyCredential,
    ) -> Result<Option<Assertion>> {
        let (_, state): (_, AuthenticationState) =
            self.take_ceremony(challenge_id, Purpose::Mfa, Some(user_id), Some(mfa_token_hash)).await?;
        Ok(self.check_assertion(&state, presented, Some(user_id)).await?.ok())
    }

    /// Stores what a second-factor passkey sign-in changed on the passkey (counter, flags, last use).
    pub(crate) async fn record_assertion(&self, tx: &mut Tx, assertion: &Assertion) -> Result<()> {
        passkeys::record_use(tx, assertion.passkey.id, &assertion.credential, clock::now_ms()).await
    }

    pub async fn second_factor_methods_of(&self, user_id: Uuid) -> Result<Vec<&'static str>> {
        let mut conn = self.db.pool().acquire().await?;
        self.second_factor_methods(&mut conn, user_id).await
    }

    /// Which second factors a user can give, in `MfaPending.methods`' words.
    pub(crate) async fn second_factor_methods(
        &self,
        conn: &mut sqlx::AnyConnection,
        user_id: Uuid,
    ) -> Result<Vec<&'static str>> {
        let mut methods = Vec::new();
        if mfa::totp(&mut *conn, user_id).await?.is_some_and(|c| c.enabled) {
            methods.push("totp");
        }
        if passkeys::count(&mut *conn, user_id).await? > 0 {
            methods.push("passkey");
        }
        methods.push("backup_code");
        Ok(methods)
    }
}
