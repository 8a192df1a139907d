//! Confirming addresses: registration (with mail on) mails a link that confirms the address, which the
//! person can ask for again; `email_verified` then shows on the account and in OpenID Connect's claims. A
//! new address is confirmed the same way, from a link sent to it, and the old address is told.

use std::time::Duration;

use super::{
    Client, Services,
    audit::{self, Event},
    mail::{LinkMail, Notice},
};
use crate::{
    clock,
    domain::{identity, random, tokens::AccessClaims},
    error::{Error, Result},
    store::{
        Tx,
        mail_tokens::{self, EMAIL_CHANGE, EMAIL_VERIFICATION, NewLink},
        outbox::Topic,
        users::{self, UserRecord},
    },
};

/// API.md: verification links work for a day.
const VERIFY_TTL_MS: i64 = 24 * 3600 * 1000;

impl Services {
    /// Queues the verification mail for `user` inside `tx` (registration, or a resend), unless the hour's
    /// limit was reached.
    pub(crate) async fn queue_verification(&self, tx: &mut Tx, user: &UserRecord, who: &Client) -> Result<()> {
        let now = clock::now_ms();
        let topic = Topic { user_id: user.profile.id, kind: EMAIL_VERIFICATION };
        if !self.may_mail(tx, &topic, now).await? {
            return Ok(());
        }
        let new = NewLink {
            purpose: EMAIL_VERIFICATION,
            user_id: user.profile.id,
            expires_at: now + VERIFY_TTL_MS,
            new_email: None,
        };
        let link = self.new_mail_link(tx, "/verify-email", &new, now).await?;
        let at = clock::rfc3339(now);
        let mail = LinkMail {
            subject: "Confirm your email address for Latchkey",
            intro: format!("please confirm that {} is the address of your Latchkey account.", user.profile.email),
            action: "Confirm the address",
            link: &link,
            validity: "within 24 hours".into(),
            ignore: "If you did not make this account, ignore this mail: nothing happens without the link.",
            ip: who.ip_or_unknown(),
            at: &at,
        };
        self.queue_link_mail(tx, &user.profile.email, &mail, &topic, now).await
    }

    /// `POST /auth/email/verify/resend`: another link, unless the address is confirmed already or three were
    /// sent this hour (the answer is the same). 404 when mail is off.
    pub async fn resend_verification(&self, auth: &AccessClaims, who: &Client) -> Result<()> {
        if !self.mail_enabled() {
            return Err(Error::NotFound);
        }
        let user = self.user(auth.sub).await?;
        if user.profile.email_verified {
            return Ok(());
        }
        let mut tx = self.db.begin().await?;
        self.queue_verification(&mut tx, &user, who).await?;
        tx.commit().await?;
        Ok(())
    }

    /// `POST /auth/email/verify`: the link's token confirms the address it was sent to.
    pub async fn verify_email(&self, token: &str, who: &Client) -> Result<UserRecord> {
        let now = clock::now_ms();
        let hash = random::token_digest(token);
        let mut tx = self.db.begin().await?;
        let lock = self.db.row_lock();
        let Some((user_id, _)) = mail_tokens::find_live(&mut tx, &hash, EMAIL_VERIFICATION, now, lock).await? else {
            return Err(Error::InvalidLink);
        };
        let Some(mut user) = users::find_by_id(&mut *tx, user_id).await? else { return Err(Error::InvalidLink) };
        mail_tokens::spend_all(&mut tx, user.profile.id, EMAIL_VERIFICATION, now).await?;
        users::set_email_verified(&mut tx, user.profile.id, now).await?;
        audit::record(&mut tx, who, Event::success("email_verified", user.profile.id)).await?;
        self.commit_user_change(tx, &[user.profile.id]).await?;
        user.profile.email_verified = true;
        Ok(user)
    }

    /// `POST /auth/email/change`: needs the password (and a second-factor session when MFA is on); mails a
    /// link to the new address, which changes nothing until it is followed.
    pub async fn change_email(&self, auth: &AccessClaims, new_email: &str, password: &str, who: &Client) -> Result<()> {
        if !self.mail_enabled() {
            return Err(Error::NotFound);
        }
        let user = self.user(auth.sub).await?;
        self.require_step_up(auth, &user)?;
        let new_email = identity::normalize_email(new_email).map_err(|m| Error::invalid_field("new_email", m))?;
        self.check_current_password(&user, password, who, "email_change_requested").await?;
        if users::email_exists(self.db.pool(), &new_email).await? {
            return Err(Error::Conflict { code: "email_taken", message: "An account with that email already exists." });
        }
        let now = clock::now_ms();
        let new = NewLink {
            purpose: EMAIL_CHANGE,
            user_id: user.profile.id,
            expires_at: now + VERIFY_TTL_MS,
            new_email: Some(&new_email),
        };
        let mut tx = self.db.begin().await?;
        let topic = Topic { user_id: user.profile.id, kind: EMAIL_CHANGE };
        if !self.may_mail(&mut tx, &topic, now).await? {
            return Err(Error::TooManyRequests { code: "rate_limited", retry_after: Duration::from_secs(3600) });
        }
        let link = self.new_mail_link(&mut tx, "/confirm-email", &new, now).await?;
        let at = clock::rfc3339(now);
        let mail = LinkMail {
            subject: "Confirm the new address of your Latchkey account",
            intro: format!(
                "please confirm that {new_email} is to be the address of the Latchkey account {}.",
                user.profile.email
            ),
            action: "Confirm the new address",
            link: &link,
            validity: "within 24 hours".into(),
            ignore: "If you did not ask for this, ignore this mail: the account keeps its address.",
            ip: who.ip_or_unknown(),
            at: &at,
        };
        self.queue_link_mail(&mut tx, &new_email, &mail, &topic, now).await?;
        audit::record(&mut tx, who, Event::success("email_change_requested", user.profile.id)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// `POST /auth/email/confirm`: the link sent to the new address makes it the account's, confirmed; the
    /// old address gets a notice.
    pub async fn confirm_email(&self, token: &str, who: &Client) -> Result<UserRecord> {
        let now = clock::now_ms();
        let hash = random::token_digest(token);
        let mut tx = self.db.begin().await?;
        let lock = self.db.row_lock();
        let Some((user_id, Some(new_email))) = mail_tokens::find_live(&mut tx, &hash, EMAIL_CHANGE, now, lock).await?
        else {
            return Err(Error::InvalidLink);
        };
        let Some(mut user) = users::find_by_id(&mut *tx, user_id).await? else { return Err(Error::InvalidLink) };
        mail_tokens::spend_all(&mut tx, user.profile.id, EMAIL_CHANGE, now).await?;
        users::set_email(&mut tx, user.profile.id, &new_email, now).await?;
        self.queue_notice(&mut tx, &user, Notice::EmailChanged { to: &new_email }, who, now).await?;
        audit::record(&mut tx, who, Event::success("email_changed", user.profile.id)).await?;
        self.commit_user_change(tx, &[user.profile.id]).await?;
        (user.profile.email, user.profile.email_verified) = (new_email, true);
        Ok(user)
    }
}
