//! Two-factor authentication: TOTP enrollment, the login challenge, backup codes, and turning MFA off.

use uuid::Uuid;
use zeroize::Zeroizing;

use super::{
    Client, Services,
    audit::{self, Event},
    mail::Notice,
    passkeys::Assertion,
    sessions::IssuedTokens,
};
use crate::{
    clock,
    domain::{backup_codes, random, tokens::AccessClaims, totp},
    error::{Error, Result},
    store::{Tx, lockouts, mfa, sessions, users, users::UserRecord},
};

/// API.md: an `mfa_token` dies after 5 wrong codes.
const MAX_CHALLENGE_FAILURES: i64 = 5;

/// What `/auth/mfa/setup` shows, once: the secret, its otpauth URI, and that URI as a QR code.
pub struct Enrollment {
    pub secret: String,
    pub otpauth_uri: String,
    pub qr_png: Vec<u8>,
}

/// A password login either completes or owes a second factor (`methods`: which ones the account has).
pub enum LoginOutcome {
    Tokens(IssuedTokens),
    SecondFactorOwed { mfa_token: String, expires_in: i64, methods: Vec<&'static str> },
}

/// What a second step presents: a TOTP or backup code, or a passkey's answer to its challenge.
pub enum Proof<'a> {
    Code(&'a str),
    Passkey { challenge_id: &'a str, credential: &'a webauthn_rs_core::proto::PublicKeyCredential },
}

impl Proof<'_> {
    /// How the audit names it.
    fn method(&self) -> &'static str {
        match self {
            Proof::Code(_) => "code",
            Proof::Passkey { .. } => "passkey",
        }
    }

    /// The answer to a wrong one.
    fn refused(&self) -> Error {
        match self {
            Proof::Code(_) => Error::InvalidCode { at_login: true },
            Proof::Passkey { .. } => Error::InvalidCredentials,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Factor {
    Totp,
    BackupCode,
    Passkey { user_verified: bool },
}

impl Factor {
    /// RFC 8176 method reference.
    fn amr(self) -> &'static str {
        match self {
            Factor::Totp => "otp",
            Factor::BackupCode => "backup_code",
            Factor::Passkey { .. } => "pop",
        }
    }

    /// What a session gains by it: a passkey that verified the person is two factors on its own, as at a
    /// passkey sign-in.
    fn methods(self) -> &'static [&'static str] {
        match self {
            Factor::Totp => &["otp"],
            Factor::BackupCode => &["backup_code"],
            Factor::Passkey { user_verified: false } => &["pop"],
            Factor::Passkey { user_verified: true } => &["pop", "mfa"],
        }
    }
}

/// A step-up asked of a session that gave its second factor.
pub(super) fn already_passed() -> Error {
    Error::Conflict { code: "mfa_already_passed", message: "This session passed the second factor." }
}

fn already_enabled() -> Error {
    Error::Conflict { code: "mfa_already_enabled", message: "Two-factor authentication is already on." }
}

fn not_enabled() -> Error {
    Error::Conflict { code: "mfa_not_enabled", message: "Two-factor authentication is not on." }
}

fn seal_purpose(user_id: Uuid) -> String {
    format!("totp:{user_id}")
}

impl Services {
    /// Starts (or restarts) enrollment with a fresh secret; it stays pending until `/auth/mfa/enable`.
    pub async fn mfa_setup(&self, auth: &AccessClaims) -> Result<Enrollment> {
        let user = self.user(auth.sub).await?;
        if self.totp_on(user.profile.id).await? {
            return Err(already_enabled());
        }
        // Adding TOTP to an account that has passkeys is a change to its second factors.
        self.require_step_up(auth, &user)?;
        let secret = totp::generate_secret();
        let sealed = self.sealer.seal(&secret, &seal_purpose(user.profile.id));
        let mut tx = self.db.begin().await?;
        if !mfa::set_pending_totp(&mut tx, user.profile.id, &sealed, clock::now_ms()).await? {
            return Err(already_enabled());
        }
        tx.commit().await?;
        self.enrollment(&user, &secret)
    }

    /// The QR code of the pending enrollment; 404 when there is none.
    pub async fn mfa_qr_png(&self, auth: &AccessClaims) -> Result<Vec<u8>> {
        let user = self.user(auth.sub).await?;
        let credential =
            mfa::totp(self.db.pool(), user.profile.id).await?.filter(|c| !c.enabled).ok_or(Error::NotFound)?;
        let secret = self.open_secret(user.profile.id, &credential.sealed_secret)?;
        Ok(self.enrollment(&user, &secret)?.qr_png)
    }

    async fn totp_on(&self, user_id: Uuid) -> Result<bool> {
        Ok(mfa::totp(self.db.pool(), user_id).await?.is_some_and(|c| c.enabled))
    }

    fn enrollment(&self, user: &UserRecord, secret: &[u8]) -> Result<Enrollment> {
        let otpauth_uri = totp::otpauth_uri(&self.config.mfa_issuer, &user.profile.email, secret);
        let qr_png =
            totp::qr_png(&otpauth_uri).map_err(|e| Error::Internal(anyhow::anyhow!("QR rendering failed: {e}")))?;
        Ok(Enrollment { secret: totp::secret_base32(secret), otpauth_uri, qr_png })
    }

    fn open_secret(&self, user_id: Uuid, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        self.sealer
            .open(sealed, &seal_purpose(user_id))
            .map_err(|e| Error::Internal(anyhow::Error::new(e).context("a TOTP secret does not open")))
    }

    /// Checks a TOTP code against the user's credential (the pending one while enrolling) and records its
    /// time step in `tx`, so that the code cannot be used again, on any instance.
    async fn accept_totp(&self, tx: &mut Tx, user_id: Uuid, code: &str, enrolling: bool) -> Result<bool> {
        let Some(credential) = mfa::totp(&mut **tx, user_id).await?.filter(|c| c.enabled != enrolling) else {
            return Ok(false);
        };
        let secret = self.open_secret(user_id, &credential.sealed_secret)?;
        let now = clock::now_ms() / 1000;
        match totp::matching_step(&secret, code.trim(), now, credential.last_step) {
            Some(step) => mfa::use_totp_step(tx, user_id, step).await,
            None => Ok(false),
        }
    }

    /// A second step's proof, in `tx`: a code is checked and spent here; a passkey's answer was checked
    /// before (`assertion`, `None` inside when refused) and what it changed on the passkey is stored here.
    async fn judge(
        &self,
        tx: &mut Tx,
        user_id: Uuid,
        proof: &Proof<'_>,
        assertion: Option<Option<Assertion>>,
    ) -> Result<Option<Factor>> {
        match (proof, assertion) {
            (Proof::Code(code), _) => self.accept_second_factor(tx, user_id, code).await,
            (Proof::Passkey { .. }, Some(Some(assertion))) => {
                self.record_assertion(tx, &assertion).await?;
                Ok(Some(Factor::Passkey { user_verified: assertion.user_verified }))
            }
            (Proof::Passkey { .. }, _) => Ok(None),
        }
    }

    /// A 6-digit code is a TOTP code; anything else is tried as a backup code.
    async fn accept_second_factor(&self, tx: &mut Tx, user_id: Uuid, code: &str) -> Result<Option<Factor>> {
        let trimmed = code.trim();
        if trimmed.len() == totp::DIGITS && trimmed.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(self.accept_totp(tx, user_id, trimmed, false).await?.then_some(Factor::Totp));
        }
        let Some(normalized) = backup_codes::normalize(trimmed) else {
            return Ok(None);
        };
        let hash = self.backup_codes.digest(&normalized);
        Ok(mfa::use_backup_code(tx, user_id, &hash, clock::now_ms()).await?.then_some(Factor::BackupCode))
    }

    pub(crate) async fn store_new_backup_codes(&self, tx: &mut Tx, user_id: Uuid, now: i64) -> Result<Vec<String>> {
        let codes = backup_codes::generate();
        let hashes: Vec<String> =
            codes.iter().filter_map(|c| backup_codes::normalize(c)).map(|c| self.backup_codes.digest(&c)).collect();
        mfa::replace_backup_codes(tx, user_id, &hashes, now).await?;
        Ok(codes)
    }

    /// Finishes enrollment with a first code; returns the 10 backup codes, shown this once, when TOTP is the
    /// account's first second factor (an account with passkeys keeps the codes it has). Other sessions end.
    pub async fn mfa_enable(&self, auth: &AccessClaims, code: &str, client: &Client) -> Result<Vec<String>> {
        let user = self.user(auth.sub).await?;
        if self.totp_on(user.profile.id).await? {
            return Err(already_enabled());
        }
        self.require_step_up(auth, &user)?;
        let now = clock::now_ms();
        let mut tx = self.db.begin().await?;
        if mfa::totp(&mut *tx, user.profile.id).await?.is_none_or(|c| c.enabled) {
            return Err(Error::NotFound);
        }
        if !self.accept_totp(&mut tx, user.profile.id, code, true).await? {
            return Err(Error::InvalidCode { at_login: false });
        }
        let codes = if user.profile.mfa_enabled {
            Vec::new()
        } else {
            self.store_new_backup_codes(&mut tx, user.profile.id, now).await?
        };
        users::set_mfa_enabled(&mut tx, user.profile.id, true, now).await?;
        self.queue_notice(&mut tx, &user, Notice::MfaEnabled, client, now).await?;
        let ended = sessions::revoke_all(&mut tx, user.profile.id, Some(auth.sid), now, "mfa_enabled").await?;
        audit::record(
            &mut tx,
            client,
            Event::success("mfa_enabled", user.profile.id).with("sessions_ended", ended.len()),
        )
        .await?;
        self.commit_user_change(tx, &[user.profile.id]).await?;
        self.revocations.add(ended, now);
        Ok(codes)
    }

    /// Turning TOTP off needs an MFA-verified session, the password and a current code. Other sessions end.
    /// With passkeys left the account stays two-factor (and keeps its backup codes); without, it is off.
    pub async fn mfa_disable(&self, auth: &AccessClaims, password: &str, code: &str, client: &Client) -> Result<()> {
        let user = self.enrolled_user_with_step_up(auth).await?;
        if !self.totp_on(user.profile.id).await? {
            return Err(not_enabled());
        }
        self.check_current_password(&user, password, client, "mfa_disabled").await?;
        let now = clock::now_ms();
        let mut tx = self.db.begin().await?;
        let Some(factor) = self.accept_second_factor(&mut tx, user.profile.id, code).await? else {
            return Err(Error::InvalidCode { at_login: false });
        };
        let passkeys_left = crate::store::passkeys::count(&mut *tx, user.profile.id).await? > 0;
        if passkeys_left {
            mfa::delete_totp(&mut tx, user.profile.id).await?;
        } else {
            mfa::delete_all(&mut tx, user.profile.id).await?;
            users::set_mfa_enabled(&mut tx, user.profile.id, false, now).await?;
            self.queue_notice(&mut tx, &user, Notice::MfaDisabled, client, now).await?;
        }
        let ended = sessions::revoke_all(&mut tx, user.profile.id, Some(auth.sid), now, "mfa_disabled").await?;
        let event = Event::success("mfa_disabled", user.profile.id)
            .with("method", factor.amr())
            .with("passkeys_left", passkeys_left)
            .with("sessions_ended", ended.len());
        audit::record(&mut tx, client, event).await?;
        self.commit_user_change(tx, &[user.profile.id]).await?;
        self.revocations.add(ended, now);
        Ok(())
    }

    pub async fn backup_codes_remaining(&self, auth: &AccessClaims) -> Result<i64> {
        mfa::remaining_backup_codes(self.db.pool(), auth.sub).await
    }

    /// A new set of 10 codes for a current TOTP code; the old set stops working.
    pub async fn regenerate_backup_codes(
        &self,
        auth: &AccessClaims,
        proof: Proof<'_>,
        client: &Client,
    ) -> Result<Vec<String>> {
        let user = self.enrolled_user_with_step_up(auth).await?;
        let assertion = match proof {
            Proof::Code(_) => None,
            Proof::Passkey { challenge_id, credential } => {
                Some(self.backup_codes_assertion(auth, challenge_id, credential).await?)
            }
        };
        let now = clock::now_ms();
        let mut tx = self.db.begin().await?;
        // API.md: the code is a TOTP code (a backup code cannot renew the codes it belongs to).
        let proven = match (&proof, assertion) {
            (Proof::Code(code), _) => self.accept_totp(&mut tx, user.profile.id, code, false).await?,
            (Proof::Passkey { .. }, Some(Some(assertion))) => {
                self.record_assertion(&mut tx, &assertion).await?;
                true
            }
            (Proof::Passkey { .. }, _) => false,
        };
        if !proven {
            return Err(match proof {
                Proof::Code(_) => Error::InvalidCode { at_login: false },
                Proof::Passkey { .. } => Error::invalid_field("credential", "This passkey was not accepted."),
            });
        }
        let codes = self.store_new_backup_codes(&mut tx, user.profile.id, now).await?;
        let event = Event::success("backup_codes_regenerated", user.profile.id).with("method", proof.method());
        audit::record(&mut tx, client, event).await?;
        tx.commit().await?;
        Ok(codes)
    }

    /// The caller, who must have MFA on and be in a session that passed it.
    async fn enrolled_user_with_step_up(&self, auth: &AccessClaims) -> Result<UserRecord> {
        let user = self.user(auth.sub).await?;
        if !user.profile.mfa_enabled {
            return Err(not_enabled());
        }
        self.require_step_up(auth, &user)?;
        Ok(user)
    }

    /// Sensitive changes on an enrolled account need a session whose token says `mfa: true`.
    pub(crate) fn require_step_up(&self, auth: &AccessClaims, user: &UserRecord) -> Result<()> {
        if user.profile.mfa_enabled && !auth.mfa { Err(Error::MfaRequired) } else { Ok(()) }
    }

    /// A second factor for a signed-in session that has not given one (a forward-auth rule wants it): the
    /// session is replaced by one that has. Wrong codes count towards the account's lock as at sign-in, and
    /// a locked account cannot step up.
    pub async fn mfa_step_up(&self, auth: &AccessClaims, proof: Proof<'_>, client: &Client) -> Result<IssuedTokens> {
        let user = self.user(auth.sub).await?;
        if !user.profile.is_active {
            return Err(Error::InvalidToken);
        }
        if !user.profile.mfa_enabled {
            return Err(not_enabled());
        }
        if auth.mfa {
            return Err(already_passed());
        }
        // A passkey's challenge is spent before its answer is judged, whatever comes of it.
        let assertion = match proof {
            Proof::Code(_) => None,
            Proof::Passkey { challenge_id, credential } => {
                Some(self.step_up_assertion(auth, challenge_id, credential).await?)
            }
        };
        let now = clock::now_ms();
        let mut tx = self.db.begin().await?;
        // Parallel guesses for one account are judged one after the other, and none once they locked it.
        users::lock_row(&mut tx, user.profile.id, self.db.row_lock()).await?;
        self.refuse_if_locked(&mut tx, &user).await?;
        let Some(factor) = self.judge(&mut tx, user.profile.id, &proof, assertion).await? else {
            let event = Event::failure("mfa_step_up_failed", Some(user.profile.id)).with("method", proof.method());
            audit::record(&mut tx, client, event).await?;
            self.count_mfa_failure(&mut tx, &user, client).await?;
            tx.commit().await?;
            return Err(proof.refused());
        };
        // Only one step-up per session: a parallel one that ended it first wins, and this code is given back.
        if !sessions::revoke(&mut tx, auth.sid, user.profile.id, now, "stepped_up").await? {
            return Err(Error::InvalidToken);
        }
        lockouts::reset_mfa_failures(&mut tx, user.profile.id).await?;
        let amr = auth.methods_with(factor.methods());
        // The new session ends when the old one would have: a code renews no lifetime.
        let tokens = self.open_session_until(&mut tx, &user, &amr, client, auth.exp * 1000).await?;
        let mut event = Event::success("mfa_step_up", user.profile.id)
            .with("method", factor.amr())
            .with("replaced_session", auth.sid.to_string());
        if let Factor::Passkey { user_verified } = factor {
            event = event.with("user_verified", user_verified);
        }
        audit::record(&mut tx, client, event).await?;
        tx.commit().await?;
        self.revocations.add([auth.sid], now);
        Ok(tokens)
    }

    /// After a correct password for an enrolled user: a single-use `mfa_token` for `/auth/mfa/challenge`,
    /// which remembers whether the password came from a new device.
    pub(crate) async fn open_challenge(
        &self,
        tx: &mut Tx,
        user: &UserRecord,
        new_device: bool,
    ) -> Result<LoginOutcome> {
        let now = clock::now_ms();
        let mfa_token = random::opaque_token();
        let ttl = clock::duration_ms(self.config.mfa_token_ttl);
        mfa::insert_challenge(tx, &random::token_digest(&mfa_token), user.profile.id, now, now + ttl, new_device)
            .await?;
        let methods = self.second_factor_methods(tx, user.profile.id).await?;
        Ok(LoginOutcome::SecondFactorOwed { mfa_token, expires_in: ttl / 1000, methods })
    }

    /// Login's second step. A wrong code (or a refused passkey) counts against the `mfa_token`; the fifth
    /// spends it (429).
    pub async fn mfa_challenge(&self, mfa_token: &str, proof: Proof<'_>, client: &Client) -> Result<IssuedTokens> {
        let hash = random::token_digest(mfa_token);
        let now = clock::now_ms();
        let live = |c: &mfa::Challenge| !c.spent && now < c.expires_at;
        // A read first, so that made-up tokens cost no write transaction.
        let Some(challenge) = mfa::challenge(self.db.pool(), &hash, "").await?.filter(live) else {
            return Err(Error::InvalidToken);
        };
        let user = users::find_by_id(self.db.pool(), challenge.user_id).await?.ok_or(Error::InvalidToken)?;
        if !user.profile.mfa_enabled {
            return Err(Error::InvalidToken);
        }
        if !user.profile.is_active {
            return Err(Error::InactiveUser);
        }
        // A passkey's challenge is spent before its answer is judged, whatever comes of it.
        let assertion = match proof {
            Proof::Code(_) => None,
            Proof::Passkey { challenge_id, credential } => {
                Some(self.second_factor_assertion(user.profile.id, &hash, challenge_id, credential).await?)
            }
        };
        let mut tx = self.db.begin().await?;
        // Judged only while still live, read again under the row lock: parallel codes for one token are
        // judged one after the other, and none after the one that spent it.
        if mfa::challenge(&mut *tx, &hash, self.db.row_lock()).await?.filter(live).is_none() {
            return Err(Error::InvalidToken);
        }
        let Some(factor) = self.judge(&mut tx, user.profile.id, &proof, assertion).await? else {
            let failures = mfa::fail_challenge(&mut tx, &hash, MAX_CHALLENGE_FAILURES, now).await?;
            let event = Event::failure("mfa_challenge_failed", Some(user.profile.id))
                .with("attempt", failures)
                .with("method", proof.method());
            audit::record(&mut tx, client, event).await?;
            self.count_mfa_failure(&mut tx, &user, client).await?;
            tx.commit().await?;
            return Err(if failures >= MAX_CHALLENGE_FAILURES { Error::too_many_attempts() } else { proof.refused() });
        };
        if !mfa::spend_challenge(&mut tx, &hash, now).await? {
            // A parallel request completed this challenge first; dropping the transaction gives the code back.
            return Err(Error::InvalidToken);
        }
        lockouts::reset_mfa_failures(&mut tx, user.profile.id).await?;
        users::record_login(&mut tx, user.profile.id, now).await?;
        let tokens = self.open_session(&mut tx, &user, &["pwd", factor.amr()], client).await?;
        if challenge.new_device {
            self.notice_new_device(&mut tx, &user, client, now).await?;
        }
        audit::record(&mut tx, client, Event::success("mfa_challenge", user.profile.id).with("method", factor.amr()))
            .await?;
        if factor == Factor::BackupCode {
            let remaining = mfa::remaining_backup_codes(&mut *tx, user.profile.id).await?;
            audit::record(
                &mut tx,
                client,
                Event::success("backup_code_used", user.profile.id).with("remaining", remaining),
            )
            .await?;
        }
        let event =
            Event::success("login", user.profile.id).with("method", "password").with("second_factor", factor.amr());
        audit::record(&mut tx, client, event).await?;
        self.commit_user_change(tx, &[user.profile.id]).await?;
        Ok(tokens)
    }
}
