//! Email verification: registration (with mail on) mails a link that confirms the address; the person can
//! ask for it again; `email_verified` then shows on the account and in OpenID Connect's claims.

use super::{
    Client, Services,
    audit::{self, Event},
    mail::LinkMail,
};
use crate::{
    clock,
    domain::{random, tokens::AccessClaims},
    error::{Error, Result},
    store::{
        Tx,
        mail_tokens::{self, EMAIL_VERIFICATION},
        users::{self, UserRecord},
    },
};

/// API.md: verification links work for a day.
const VERIFY_TTL_MS: i64 = 24 * 3600 * 1000;
/// At most this many verification mails per account per hour.
const MAILS_PER_HOUR: i64 = 3;

impl Services {
    /// Queues the verification mail for `user` inside `tx` (registration, or a resend).
    pub(crate) async fn queue_verification(&self, tx: &mut Tx, user: &UserRecord, who: &Client) -> Result<()> {
        let now = clock::now_ms();
        let token = random::opaque_token();
        let hash = random::token_digest(&token);
        mail_tokens::replace(tx, &hash, EMAIL_VERIFICATION, user.id, now, now + VERIFY_TTL_MS).await?;
        let link = format!("{}/verify-email?token={token}", self.config.issuer);
        let at = clock::rfc3339(now);
        let mail = LinkMail {
            subject: "Confirm your email address for Latchkey",
            intro: format!("please confirm that {} is the address of your Latchkey account.", user.email),
            action: "Confirm the address",
            link: &link,
            validity: "within 24 hours".into(),
            ignore: "If you did not make this account, ignore this mail: nothing happens without the link.",
            ip: who.ip.as_deref().unwrap_or("an unknown address"),
            at: &at,
        };
        self.queue_link_mail(tx, &user.email, &mail, now).await
    }

    /// `POST /auth/email/verify/resend`: another link, unless the address is confirmed already or three were
    /// sent this hour (the answer is the same). 404 when mail is off.
    pub async fn resend_verification(&self, auth: &AccessClaims, who: &Client) -> Result<()> {
        if !self.mail_enabled() {
            return Err(Error::NotFound);
        }
        let user = self.user(auth.sub).await?;
        if user.email_verified {
            return Ok(());
        }
        let mut tx = self.db.begin().await?;
        let since = clock::now_ms() - 3_600_000;
        if mail_tokens::count_since(&mut *tx, user.id, EMAIL_VERIFICATION, since).await? >= MAILS_PER_HOUR {
            return Ok(());
        }
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
        let Some(user_id) = mail_tokens::find_live(&mut tx, &hash, EMAIL_VERIFICATION, now, lock).await? else {
            return Err(Error::InvalidLink);
        };
        let Some(mut user) = users::find_by_id(&mut *tx, user_id).await? else { return Err(Error::InvalidLink) };
        mail_tokens::spend_all(&mut tx, user.id, EMAIL_VERIFICATION, now).await?;
        users::set_email_verified(&mut tx, user.id, now).await?;
        audit::record(&mut tx, who, Event::success("email_verified", user.id)).await?;
        tx.commit().await?;
        user.email_verified = true;
        self.remembered.forget_users();
        Ok(user)
    }
}
