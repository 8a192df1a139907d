//! Account lockout: consecutive failures per submitted identifier lock it for a while, whether or not an
//! account has that name (so lockout does not reveal which names exist). A client that presents a valid
//! device token for the account is judged by that device's own failures instead, so a stranger who locks
//! the identifier does not lock the owner out of devices they have signed in from before.

use std::time::Duration;

use uuid::Uuid;

use super::{
    Client, Services,
    audit::{self, Event},
};
use crate::{
    clock,
    domain::identity::LoginIdentifier,
    error::{Error, Result},
    store::{Tx, lockouts, mfa, users::UserRecord},
};

/// No password check takes this long: an attempt counted longer ago than this and never judged is a failure.
const UNJUDGED_AFTER_MS: i64 = 60_000;

/// SECURITY.md decision 7: this many wrong second-factor codes in a row lock the account.
pub const MFA_FAILURE_LIMIT: i64 = 10;

/// What a login attempt's failures count against.
pub struct LockScope {
    key: String,
}

/// A login attempt counted against its scope before being judged.
pub struct Attempt {
    scope: LockScope,
    number: i64,
}

impl Services {
    /// The identifier's counter, or the device's own when the client proved it is a known device that is
    /// not itself locked.
    pub(crate) async fn lock_scope(
        &self,
        identifier: &LoginIdentifier,
        user: Option<&UserRecord>,
        device_token: Option<&str>,
        now: i64,
    ) -> Result<LockScope> {
        let device =
            device_token.zip(user).and_then(|(token, user)| self.devices.verify(token, user.profile.id, now / 1000));
        if let Some(nonce) = device {
            let key = format!("device:{nonce}");
            if lockouts::locked_until(self.db.pool(), &key, now).await?.is_none() {
                return Ok(LockScope { key });
            }
        }
        Ok(LockScope { key: identifier.lock_key() })
    }

    /// Counts the attempt before its password is checked (SECURITY.md ★26), so that no burst of parallel
    /// guesses gets more than `lockout_threshold` judged, on any number of instances. Refused with 429
    /// `account_locked` while the scope is locked, and with 429 `too_many_attempts` (`Retry-After: 1`, no
    /// lock) while the threshold's places are taken by attempts still being judged.
    pub(crate) async fn reserve_attempt(
        &self,
        scope: LockScope,
        user_id: Option<Uuid>,
        client: &Client,
    ) -> Result<Attempt> {
        let now = clock::now_ms();
        // A locked scope is refused with a read only: a flood against a locked account writes nothing.
        if let Some(until) = lockouts::locked_until(self.db.pool(), &scope.key, now).await? {
            return Err(locked(until - now));
        }
        let limit = i64::from(self.config.lockout_threshold);
        let mut conn = self.db.pool().acquire().await?;
        if let Some(number) = lockouts::reserve(&mut conn, &scope.key, limit, now).await? {
            return Ok(Attempt { scope, number });
        }
        if let Some(until) = lockouts::locked_until(&mut *conn, &scope.key, now).await? {
            return Err(locked(until - now));
        }
        // Every place taken and nothing counted for a while: those attempts ended without a verdict (the
        // process stopped while judging them). They count as the failures they were counted as.
        let last = lockouts::last_counted(&mut *conn, &scope.key).await?.unwrap_or(now);
        drop(conn);
        if now - last > UNJUDGED_AFTER_MS {
            let mut tx = self.db.begin().await?;
            self.lock(&mut tx, &scope.key, user_id, ("password_failures", limit), client).await?;
            tx.commit().await?;
            return Err(locked(clock::duration_ms(self.config.lockout)));
        }
        Err(Error::too_many_attempts())
    }

    /// A wrong password: it was counted when reserved; the attempt that takes the last place locks the
    /// scope (audited once). Returns the lock to answer with when another attempt locked the scope while
    /// this one was judged: then a wrong password gets the same 429 as a right one would, and the answer
    /// does not tell which it was.
    pub(crate) async fn count_failure(
        &self,
        tx: &mut Tx,
        attempt: &Attempt,
        user_id: Option<Uuid>,
        client: &Client,
    ) -> Result<Option<Error>> {
        if attempt.number >= i64::from(self.config.lockout_threshold) {
            self.lock(tx, &attempt.scope.key, user_id, ("password_failures", attempt.number), client).await?;
            return Ok(None);
        }
        let now = clock::now_ms();
        Ok(lockouts::locked_until(&mut **tx, &attempt.scope.key, now).await?.map(|until| locked(until - now)))
    }

    /// An attempt that was never judged as right or wrong (the server could not check it) does not count.
    pub(crate) async fn release_attempt(&self, attempt: &Attempt) -> Result<()> {
        lockouts::release(&mut *self.db.pool().acquire().await?, &attempt.scope.key).await
    }

    /// A right password ends the run of failures, unless a lock came into force while it was being
    /// checked: then the sign-in is refused like any other during the lock.
    pub(crate) async fn clear_failures(&self, tx: &mut Tx, attempt: &Attempt) -> Result<()> {
        let now = clock::now_ms();
        match lockouts::clear_unless_locked(tx, &attempt.scope.key, now).await? {
            Some(until) => Err(locked(until - now)),
            None => Ok(()),
        }
    }

    /// Locks `key` for `lockout`, audited with why: the kind of failures and how many there were in a row.
    async fn lock(
        &self,
        tx: &mut Tx,
        key: &str,
        user_id: Option<Uuid>,
        (reason, failures): (&str, i64),
        client: &Client,
    ) -> Result<()> {
        let now = clock::now_ms();
        let until = now + clock::duration_ms(self.config.lockout);
        if lockouts::lock(tx, key, until, now).await? {
            metrics::counter!("latchkey_lockouts_total", "reason" => reason.to_string()).increment(1);
            let (kind, name) = key.split_once(':').unwrap_or(("", key));
            let event = Event::failure("account_locked", user_id)
                .with("reason", reason)
                .with("failures", failures)
                .with("scope", kind)
                .with("until", clock::from_ms(until).unix_timestamp());
            // A device's nonce is a credential of sorts; only identifiers are named in the log.
            let event = if kind == "device" {
                event
            } else {
                event.with("identifier", name.chars().take(64).collect::<String>())
            };
            audit::record(tx, client, event).await?;
        }
        Ok(())
    }

    /// 429 `account_locked` while any identifier of the account is locked.
    pub(crate) async fn refuse_if_locked(&self, tx: &mut Tx, user: &UserRecord) -> Result<()> {
        let now = clock::now_ms();
        for identifier in identifiers_of(user) {
            if let Some(until) = lockouts::locked_until(&mut **tx, &identifier.lock_key(), now).await? {
                return Err(locked(until - now));
            }
        }
        Ok(())
    }

    /// Counts a wrong second-factor code against the account; the tenth in a row locks every identifier of
    /// the account like password failures do, and spends its open challenges.
    pub(crate) async fn count_mfa_failure(&self, tx: &mut Tx, user: &UserRecord, client: &Client) -> Result<()> {
        if lockouts::add_mfa_failure(tx, user.profile.id).await? < MFA_FAILURE_LIMIT {
            return Ok(());
        }
        lockouts::reset_mfa_failures(tx, user.profile.id).await?;
        mfa::spend_open_challenges(tx, user.profile.id, clock::now_ms()).await?;
        for identifier in identifiers_of(user) {
            self.lock(tx, &identifier.lock_key(), Some(user.profile.id), ("mfa_failures", MFA_FAILURE_LIMIT), client)
                .await?;
        }
        Ok(())
    }
}

/// Every name the account signs in with.
pub(super) fn identifiers_of(user: &UserRecord) -> Vec<LoginIdentifier> {
    let mut identifiers = vec![LoginIdentifier::Email(user.profile.email.clone())];
    identifiers.extend(user.profile.username.clone().map(LoginIdentifier::Username));
    identifiers
}

fn locked(remaining_ms: i64) -> Error {
    let seconds = u64::try_from((remaining_ms + 999) / 1000).unwrap_or(1).max(1);
    Error::TooManyRequests { code: "account_locked", retry_after: Duration::from_secs(seconds) }
}
