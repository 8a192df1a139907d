//! Mail: messages written to the outbox in the transaction of the change they belong to (sealed, since they
//! carry single-use links) and sent over SMTP with lettre by the outbox worker, which retries while the
//! server refuses or is down. Without `LATCHKEY_SMTP_URL` there is no mailer, and nothing that needs mail is
//! offered.

use std::time::Duration;

use anyhow::Context;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor, message::Mailbox, message::MultiPart};
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;

use super::Services;
use crate::{
    config::Config,
    domain::random,
    error::{Error, Result},
    store::{
        mail_tokens,
        outbox::{self, MAIL, Topic},
        users::UserRecord,
    },
};

/// A message as queued: rendered when it was asked for, so the outbox needs no templates.
#[derive(Debug, Serialize, Deserialize)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// A mail whose point is one single-use link: both parts come from the `mail/link` templates.
#[derive(askama::Template)]
#[template(path = "mail/link.txt")]
pub(crate) struct LinkMail<'a> {
    pub subject: &'a str,
    pub intro: String,
    /// What the link does, as its label: "Choose a new password".
    pub action: &'a str,
    pub link: &'a str,
    /// "within 30 minutes".
    pub validity: String,
    /// What to do if the person did not ask for it.
    pub ignore: &'a str,
    pub ip: &'a str,
    pub at: &'a str,
}

#[derive(askama::Template)]
#[template(path = "mail/link.html")]
struct LinkMailHtml<'a> {
    m: &'a LinkMail<'a>,
}

/// A security notice: something changed on the account, in case it was not its owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Notice<'a> {
    PasswordChanged,
    PasswordReset,
    MfaEnabled,
    MfaDisabled,
    /// To the old address.
    EmailChanged {
        to: &'a str,
    },
    /// A completed sign-in from a client that showed no device token of this account.
    NewDevice {
        device: &'a str,
    },
    PasskeyAdded {
        name: &'a str,
    },
}

impl Notice<'_> {
    fn subject(self) -> &'static str {
        match self {
            Notice::PasswordChanged => "Your Latchkey password was changed",
            Notice::PasswordReset => "Your Latchkey password was reset",
            Notice::MfaEnabled => "Two-factor authentication is on for your Latchkey account",
            Notice::MfaDisabled => "Two-factor authentication is off for your Latchkey account",
            Notice::EmailChanged { .. } => "The address of your Latchkey account was changed",
            Notice::NewDevice { .. } => "A new sign-in to your Latchkey account",
            Notice::PasskeyAdded { .. } => "A passkey was added to your Latchkey account",
        }
    }

    /// Its kind, for the limit of mails of a kind per account and hour.
    fn kind(self) -> &'static str {
        match self {
            Notice::PasswordChanged => "notice_password_changed",
            Notice::PasswordReset => "notice_password_reset",
            Notice::MfaEnabled => "notice_mfa_enabled",
            Notice::MfaDisabled => "notice_mfa_disabled",
            Notice::EmailChanged { .. } => "notice_email_changed",
            Notice::NewDevice { .. } => "notice_new_device",
            Notice::PasskeyAdded { .. } => "notice_passkey_added",
        }
    }

    fn what(self, email: &str) -> String {
        match self {
            Notice::PasswordChanged => format!("the password of the Latchkey account {email} was changed."),
            Notice::PasswordReset => {
                format!("the password of the Latchkey account {email} was reset from a mailed link.")
            }
            Notice::MfaEnabled => format!("two-factor authentication was turned on for the Latchkey account {email}."),
            Notice::MfaDisabled => {
                format!("two-factor authentication was turned off for the Latchkey account {email}.")
            }
            Notice::EmailChanged { to } => {
                format!("the Latchkey account {email} now uses the address {to}; mail no longer comes here.")
            }
            Notice::NewDevice { device } => {
                format!("someone signed in to the Latchkey account {email} from a device not seen before: {device}.")
            }
            Notice::PasskeyAdded { name } => {
                format!("a passkey named \"{name}\" was added to the Latchkey account {email}; it can sign in.")
            }
        }
    }
}

#[derive(askama::Template)]
#[template(path = "mail/notice.txt")]
struct NoticeMail<'a> {
    subject: &'a str,
    what: String,
    advice: String,
    ip: &'a str,
    at: &'a str,
}

#[derive(askama::Template)]
#[template(path = "mail/notice.html")]
struct NoticeMailHtml<'a> {
    m: &'a NoticeMail<'a>,
}

/// How a send went wrong: a permanent refusal (5xx, a bad address) is not retried.
pub struct SendError {
    pub permanent: bool,
    pub message: String,
}

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    hint: &'static str,
}

const SEAL_PURPOSE: &str = "outbox-mail";

/// API.md: at most this many mails of a kind about one account per hour; more are not sent.
const MAILS_PER_HOUR: i64 = 3;

impl Mailer {
    pub fn from_config(config: &Config) -> anyhow::Result<Option<Self>> {
        let Some(url) = &config.smtp_url else { return Ok(None) };
        // lettre's errors can quote the URL, password included: say what is wrong without it.
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|_| anyhow::anyhow!("LATCHKEY_SMTP_URL is not an SMTP URL (smtp://, smtps://; see the README)"))?
            .timeout(Some(Duration::from_secs(10)))
            .build();
        let from =
            config.mail_sender().parse().with_context(|| format!("LATCHKEY_MAIL_FROM {:?}", config.mail_sender()))?;
        Ok(Some(Self { transport, from, hint: likely_mistake(url) }))
    }

    /// Start-up: a warning, naming the likely mistake, when the server cannot be reached or logged in to.
    pub async fn check(&self) {
        match self.transport.test_connection().await {
            Ok(true) => tracing::info!("the SMTP server answers; mail is on"),
            Ok(false) | Err(_) => {
                tracing::warn!(hint = self.hint, "cannot reach the SMTP server of LATCHKEY_SMTP_URL; mail stays queued")
            }
        }
    }

    /// Sends `mail` now; the server's answer ("250 2.0.0 queued as ...").
    async fn send(&self, mail: &Mail) -> Result<String, SendError> {
        let hopeless = |message: String| SendError { permanent: true, message };
        let to: Mailbox = mail.to.parse().map_err(|e| hopeless(format!("bad address: {e}")))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(&mail.subject)
            .message_id(None)
            .multipart(MultiPart::alternative_plain_html(mail.text.clone(), mail.html.clone()))
            .map_err(|e| hopeless(format!("cannot build the message: {e}")))?;
        match self.transport.send(message).await {
            Ok(answer) => Ok(format!("{} {}", answer.code(), answer.message().collect::<Vec<_>>().join(" "))),
            Err(e) => Err(SendError { permanent: e.is_permanent(), message: e.to_string() }),
        }
    }
}

/// The most reported confusion: implicit TLS is port 465 (`smtps://`), STARTTLS port 587 (`smtp://` with
/// `?tls=required`).
fn likely_mistake(url: &str) -> &'static str {
    let port = url.rsplit_once(':').and_then(|(_, rest)| rest.split(['/', '?']).next()?.parse::<u16>().ok());
    match (url.split("://").next(), port) {
        (Some("smtp"), Some(465)) => "port 465 speaks TLS from the start: use smtps://host:465",
        (Some("smtps"), Some(587)) => "port 587 starts in plain text and upgrades: use smtp://host:587?tls=required",
        _ => "check the host, port, user name and password",
    }
}

impl Services {
    pub fn mail_enabled(&self) -> bool {
        self.mailer.is_some()
    }

    /// Whether another mail of `topic`'s kind may go to its account this hour.
    pub(crate) async fn may_mail(&self, conn: &mut AnyConnection, topic: &Topic<'_>, now: i64) -> Result<bool> {
        Ok(outbox::count_since(conn, topic, now - 3_600_000).await? < MAILS_PER_HOUR)
    }

    /// Queues `mail` about `topic` inside `conn`'s transaction; the outbox worker sends it.
    async fn queue_mail(&self, conn: &mut AnyConnection, mail: &Mail, topic: &Topic<'_>, now: i64) -> Result<()> {
        let json = serde_json::to_vec(mail).map_err(|e| Error::Internal(e.into()))?;
        let sealed = self.sealer.seal(&json, SEAL_PURPOSE);
        use base64::Engine;
        let payload = base64::engine::general_purpose::STANDARD.encode(sealed);
        outbox::enqueue(conn, MAIL, &payload, Some(topic), now).await
    }

    /// Stores a new single-use link for `link`'s user and purpose (the older ones stop working) and returns
    /// its address: `path` on the issuer, never on a request's `Host`, with the token; only its digest is kept.
    pub(crate) async fn new_mail_link(
        &self,
        conn: &mut AnyConnection,
        path: &str,
        link: &mail_tokens::NewLink<'_>,
        now: i64,
    ) -> Result<String> {
        let token = random::opaque_token();
        mail_tokens::replace(conn, &random::token_digest(&token), link, now).await?;
        Ok(format!("{}{path}?token={token}", self.config.issuer))
    }

    /// Renders `mail` (text and HTML) for `to` and queues it about `topic` inside `conn`'s transaction; the
    /// caller asked `may_mail` first, before making the link.
    pub(crate) async fn queue_link_mail(
        &self,
        conn: &mut AnyConnection,
        to: &str,
        mail: &LinkMail<'_>,
        topic: &Topic<'_>,
        now: i64,
    ) -> Result<()> {
        use askama::Template;
        let rendering = |e: askama::Error| Error::Internal(e.into());
        let mail = Mail {
            to: to.to_string(),
            subject: mail.subject.to_string(),
            text: mail.render().map_err(rendering)?,
            html: LinkMailHtml { m: mail }.render().map_err(rendering)?,
        };
        self.queue_mail(conn, &mail, topic, now).await
    }

    /// Queues a security notice to `user`'s address inside `conn`'s transaction; nothing without mail or
    /// past the hour's limit for this kind of notice.
    pub(crate) async fn queue_notice(
        &self,
        conn: &mut AnyConnection,
        user: &UserRecord,
        notice: Notice<'_>,
        who: &super::Client,
        now: i64,
    ) -> Result<()> {
        let topic = Topic { user_id: user.profile.id, kind: notice.kind() };
        if !self.mail_enabled() || !self.may_mail(conn, &topic, now).await? {
            return Ok(());
        }
        let email = user.profile.email.as_str();
        use askama::Template;
        let rendering = |e: askama::Error| Error::Internal(e.into());
        let at = crate::clock::rfc3339(now);
        let notice = NoticeMail {
            subject: notice.subject(),
            what: notice.what(email),
            advice: format!(
                "If this was you, there is nothing to do. If not, choose a new password at {}/forgot-password \
                 at once and tell your administrator.",
                self.config.issuer
            ),
            ip: who.ip_or_unknown(),
            at: &at,
        };
        let mail = Mail {
            to: email.to_string(),
            subject: notice.subject.to_string(),
            text: notice.render().map_err(rendering)?,
            html: NoticeMailHtml { m: &notice }.render().map_err(rendering)?,
        };
        self.queue_mail(conn, &mail, &topic, now).await
    }

    /// A sign-in completed from a client that showed no device token of `user`'s: its owner is told, with
    /// what the client called itself.
    pub(crate) async fn notice_new_device(
        &self,
        conn: &mut AnyConnection,
        user: &UserRecord,
        who: &super::Client,
        now: i64,
    ) -> Result<()> {
        let agent = who.user_agent.as_deref().map(|a| a.chars().take(120).collect::<String>());
        let device = agent.map_or_else(|| "a program that gave no name".to_string(), |a| format!("\"{a}\""));
        self.queue_notice(conn, user, Notice::NewDevice { device: &device }, who, now).await
    }

    /// The outbox worker's delivery of a queued mail.
    pub(crate) async fn send_queued_mail(&self, payload: &str) -> Result<(), SendError> {
        let hopeless = |message: &str| SendError { permanent: true, message: message.into() };
        let Some(mailer) = &self.mailer else {
            return Err(SendError { permanent: false, message: "mail is off (no LATCHKEY_SMTP_URL)".into() });
        };
        use base64::Engine;
        let sealed = base64::engine::general_purpose::STANDARD.decode(payload).map_err(|_| hopeless("unreadable"))?;
        let json = self.sealer.open(&sealed, SEAL_PURPOSE).map_err(|_| hopeless("does not open with this key"))?;
        let mail: Mail = serde_json::from_slice(&json).map_err(|_| hopeless("unreadable"))?;
        mailer.send(&mail).await.map(|_| ())
    }

    /// An administrator's "send a test email": sent at once, not queued, so the answer is the SMTP server's.
    /// `Ok(Err(..))` is a send that failed, with why. 404 when mail is off.
    pub async fn send_test_mail(
        &self,
        actor: super::admin::Actor,
        to: &str,
        who: &super::Client,
    ) -> Result<Result<String, String>> {
        let Some(mailer) = &self.mailer else { return Err(Error::NotFound) };
        let to = crate::domain::identity::normalize_email(to).map_err(|m| Error::invalid_field("to", m))?;
        let at = crate::clock::rfc3339(crate::clock::now_ms());
        let text = format!("This is a test mail from Latchkey at {}, sent at {at}. Mail works.", self.config.issuer);
        let mail = Mail { to, subject: "Latchkey test mail".into(), html: format!("<p>{text}</p>"), text };
        let sent = mailer.send(&mail).await.map_err(|e| e.message);
        let event = super::audit::Event::success_for("mail_test_sent", None)
            .with("by", actor.name())
            .with("delivered", sent.is_ok());
        self.record_alone(who, event).await?;
        Ok(sent)
    }
}

#[cfg(test)]
mod tests {
    use super::likely_mistake;

    #[test]
    fn the_tls_port_confusion_is_named() {
        assert!(likely_mistake("smtp://u:p@mail.example:465").contains("smtps://"));
        assert!(likely_mistake("smtps://u:p@mail.example:587").contains("tls=required"));
        assert!(likely_mistake("smtp://mail.example:587?tls=required").contains("check"));
    }
}
