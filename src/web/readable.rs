//! Records as people read them on every page that shows sessions and events: the device in words ("Chrome
//! 156 on Linux", parsed with woothee; the raw user agent only in a `title`) and times as `<time datetime>`
//! with text such as "3 minutes ago" or a date.

use std::sync::LazyLock;

use uuid::Uuid;

use crate::{
    clock,
    store::{audit::AuditRecord, sessions::SessionRecord},
};

static PARSER: LazyLock<woothee::parser::Parser> = LazyLock::new(woothee::parser::Parser::new);

/// The browser with its major version and the OS, or the program's own name when it is no browser.
pub fn device(user_agent: Option<&str>) -> String {
    let Some(agent) = user_agent.map(str::trim).filter(|a| !a.is_empty()) else {
        return "Unknown device".into();
    };
    let known = |value: &str| value != woothee::woothee::VALUE_UNKNOWN && !value.is_empty();
    let browser = |r: &woothee::parser::WootheeResult| {
        known(r.name) && matches!(r.category, "pc" | "smartphone" | "mobilephone" | "appliance")
    };
    match PARSER.parse(agent).filter(browser) {
        Some(r) => {
            let major = r.version.split('.').next().filter(|v| known(v)).map(|v| format!(" {v}")).unwrap_or_default();
            let os = if known(r.os) { format!(" on {}", r.os) } else { String::new() };
            format!("{}{major}{os}", r.name)
        }
        // Programs (curl/8.5.0, python-requests/2.31) name themselves first.
        None => agent.split_whitespace().next().unwrap_or(agent).chars().take(40).collect(),
    }
}

/// A time for a `<time>` element: `datetime` in RFC 3339, `text` relative when recent, else the date.
pub struct When {
    pub datetime: String,
    pub text: String,
}

pub fn when(ms: i64, now: i64) -> When {
    let seconds = (now - ms).max(0) / 1000;
    let ago = |n: i64, unit: &str| format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" });
    let text = match seconds {
        0..60 => "just now".to_string(),
        60..3600 => ago(seconds / 60, "minute"),
        3600..86_400 => ago(seconds / 3600, "hour"),
        86_400..604_800 => ago(seconds / 86_400, "day"),
        _ => {
            format!("{} {}", super::chart::day_label(ms), clock::from_ms(ms).year())
        }
    };
    When { datetime: clock::rfc3339(ms), text }
}

/// A live session as the account page and the admin's user page list it.
pub struct SessionRow {
    pub id: Uuid,
    pub ip: String,
    pub device: String,
    pub user_agent: String,
    pub last_used: When,
    pub current: bool,
}

impl SessionRow {
    /// `current` is the session of the person looking, when it is one of theirs.
    pub fn of(session: SessionRecord, current: Option<Uuid>, now: i64) -> Self {
        Self {
            current: Some(session.id) == current,
            id: session.id,
            device: device(session.user_agent.as_deref()),
            user_agent: session.user_agent.unwrap_or_default(),
            ip: session.ip.unwrap_or_default(),
            last_used: when(session.last_used_at, now),
        }
    }
}

/// An audit event as a person's own security log and the admin's user page list it.
pub struct EventRow {
    pub at: When,
    pub action: String,
    pub outcome: String,
    pub ip: String,
}

impl EventRow {
    pub fn of(e: AuditRecord, now: i64) -> Self {
        Self { at: when(e.at, now), action: e.action, outcome: e.outcome, ip: e.ip.unwrap_or_default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_read_as_browser_version_and_os() {
        let chrome =
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36";
        assert_eq!(device(Some(chrome)), "Chrome 156 on Linux");
        let safari = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) \
                      Version/17.0 Mobile/15E148 Safari/604.1";
        assert_eq!(device(Some(safari)), "Safari 17 on iPhone");
        assert_eq!(device(Some("curl/8.5.0")), "curl/8.5.0");
        assert_eq!(device(None), "Unknown device");
    }

    #[test]
    fn times_are_relative_when_recent() {
        let now = 1_764_000_000_000;
        assert_eq!(when(now - 5_000, now).text, "just now");
        assert_eq!(when(now - 60_000, now).text, "1 minute ago");
        assert_eq!(when(now - 3 * 3_600_000, now).text, "3 hours ago");
        assert_eq!(when(now - 2 * 86_400_000, now).text, "2 days ago");
        assert_eq!(when(now - 30 * 86_400_000, now).text, "25 Oct 2025");
        assert!(when(now, now).datetime.starts_with("2025-11-24T"));
    }
}
