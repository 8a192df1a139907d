//! Self-service password reset: a single-use link by mail (`forgot_password`), or printed for an operator
//! (`reset_link`), and the reset itself. SECURITY.md 63–66: the request answers the same, at once, for every
//! address; the link is 256 bits, stored hashed, single use, 30 minutes; a reset ends every session, lifts
//! the lockout, keeps the second factor and signs nobody in.

use std::sync::Arc;

use uuid::Uuid;

use super::{
    Client, Services,
    admin::Actor,
    audit::{self, Event},
    mail::{LinkMail, Notice},
};
use crate::{
    clock,
    domain::{identity::LoginIdentifier, random},
    error::{Error, FieldError, Result},
    store::{
        Tx, lockouts,
        mail_tokens::{self, NewLink, PASSWORD_RESET},
        outbox::Topic,
        sessions,
        users::{self, UserRecord},
    },
};

impl Services {
    /// `POST /auth/password/forgot`: answers at once and the same whether or not the address has an account;
    /// the lookup and the mail happen afterwards in a task of their own, so neither the answer nor its time
    /// tells anything. 404 when mail is off.
    pub fn forgot_password(self: &Arc<Self>, email: &str, who: &Client) -> Result<()> {
        if !self.mail_enabled() {
            return Err(Error::NotFound);
        }
        let (this, email, who) = (Arc::clone(self), email.to_string(), who.clone());
        tokio::spawn(async move {
            if let Err(e) = this.mail_reset_link(&email, &who).await {
                tracing::warn!(error = %e, "could not queue a password-reset mail");
            }
        });
        Ok(())
    }

    async fn mail_reset_link(&self, email: &str, who: &Client) -> Result<()> {
        let LoginIdentifier::Email(email) = LoginIdentifier::parse(email) else { return Ok(()) };
        let Some(user) = users::find_by_identifier(self.db.pool(), &LoginIdentifier::Email(email)).await? else {
            return Ok(());
        };
        if !user.profile.is_active {
            return Ok(());
        }
        let now = clock::now_ms();
        let mut tx = self.db.begin().await?;
        // SECURITY.md 64: past the hour's limit the request answers the same and sends nothing.
        let topic = Topic { user_id: user.profile.id, kind: PASSWORD_RESET };
        if !self.may_mail(&mut tx, &topic, now).await? {
            return Ok(());
        }
        let link = self.new_reset_link(&mut tx, &user, now).await?;
        let at = clock::rfc3339(now);
        let mail = LinkMail {
            subject: "Reset your Latchkey password",
            intro: format!("someone asked to reset the password of the Latchkey account {}.", user.profile.email),
            action: "Choose a new password",
            link: &link,
            validity: format!("within {} minutes", self.config.reset_ttl.as_secs() / 60),
            ignore: "If you did not ask for this, ignore this mail: your password stays as it is, and nobody can \
                     use the link without access to your mailbox.",
            ip: who.ip_or_unknown(),
            at: &at,
        };
        self.queue_link_mail(&mut tx, &user.profile.email, &mail, &topic, now).await?;
        audit::record(&mut tx, who, Event::success("password_reset_requested", user.profile.id).with("by", "mail"))
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// `latchkey user reset-link <user>`: the same link, printed for an operator instead of mailed.
    pub async fn reset_link(&self, identifier: &str, who: &Client) -> Result<String> {
        let user = self.find_user(identifier).await?;
        self.handed_reset_link(&user, Actor::Operator, who).await
    }

    /// An administrator's reset link for a user (the admin API), to hand over.
    pub async fn admin_reset_link(&self, actor: Actor, id: Uuid, who: &Client) -> Result<String> {
        let user = users::find_by_id(self.db.pool(), id).await?.ok_or(Error::NotFound)?;
        self.handed_reset_link(&user, actor, who).await
    }

    async fn handed_reset_link(&self, user: &UserRecord, actor: Actor, who: &Client) -> Result<String> {
        let now = clock::now_ms();
        let mut tx = self.db.begin().await?;
        let link = self.new_reset_link(&mut tx, user, now).await?;
        let event = Event::success("password_reset_requested", user.profile.id).with("by", actor.name());
        audit::record(&mut tx, who, event).await?;
        tx.commit().await?;
        Ok(link)
    }

    /// A new reset link for the user (older ones stop working), on the issuer, never on a request's `Host`.
    async fn new_reset_link(&self, tx: &mut Tx, user: &UserRecord, now: i64) -> Result<String> {
        let expires_at = now + clock::duration_ms(self.config.reset_ttl);
        let link = NewLink { purpose: PASSWORD_RESET, user_id: user.profile.id, expires_at, new_email: None };
        self.new_mail_link(tx, "/reset-password", &link, now).await
    }

    /// `POST /auth/password/reset`: a new password from a live link. A password the policy refuses leaves
    /// the link usable.
    pub async fn reset_password(&self, token: &str, new_password: &str, who: &Client) -> Result<()> {
        let hash = random::token_digest(token);
        let now = clock::now_ms();
        let user = self.reset_link_owner(&hash, now).await?;
        self.passwords
            .policy
            .check(new_password, &user.profile.email, user.profile.username.as_deref())
            .map_err(|message| Error::WeakPassword(FieldError { field: "new_password", message }))?;
        let password_hash = self.passwords.hash(new_password).await?;
        let now = clock::now_ms();
        let mut tx = self.db.begin().await?;
        // Checked again under the row lock: of two resets with one link, one wins.
        let owner = mail_tokens::find_live(&mut tx, &hash, PASSWORD_RESET, now, self.db.row_lock()).await?;
        if owner.map(|(id, _)| id) != Some(user.profile.id) {
            return Err(Error::InvalidLink);
        }
        mail_tokens::spend_all(&mut tx, user.profile.id, PASSWORD_RESET, now).await?;
        users::set_password_hash(&mut tx, user.profile.id, &password_hash, now).await?;
        self.queue_notice(&mut tx, &user, Notice::PasswordReset, who, now).await?;
        for identifier in super::lockout::identifiers_of(&user) {
            lockouts::clear(&mut tx, &identifier.lock_key()).await?;
        }
        let ended = sessions::revoke_all(&mut tx, user.profile.id, None, now, "password_reset").await?;
        let event = Event::success("password_reset", user.profile.id).with("sessions_ended", ended.len());
        audit::record(&mut tx, who, event).await?;
        tx.commit().await?;
        self.revocations.add(ended, now);
        Ok(())
    }

    async fn reset_link_owner(&self, hash: &str, now: i64) -> Result<UserRecord> {
        let mut conn = self.db.pool().acquire().await?;
        let owner = mail_tokens::find_live(&mut conn, hash, PASSWORD_RESET, now, "").await?.map(|(id, _)| id);
        let user = match owner {
            Some(id) => users::find_by_id(&mut *conn, id).await?,
            None => None,
        };
        user.filter(|u| u.profile.is_active).ok_or(Error::InvalidLink)
    }
}
