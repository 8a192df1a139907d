//! Audit events in words for the admin's audit log: what happened, said of the user it is about, and the
//! detail as labelled values instead of JSON.

use serde_json::Value;

/// The actions the audit log's picker offers, with what each is called there.
pub const ACTIONS: &[(&str, &str)] = &[
    ("login", "Sign-ins"),
    ("login_failed", "Failed sign-ins"),
    ("account_locked", "Locks"),
    ("user_unlocked", "Unlocks"),
    ("register", "Registrations"),
    ("logout", "Sign-outs"),
    ("logout_all", "Sign-outs everywhere"),
    ("session_revoked", "Sessions ended by their owner"),
    ("session_revoked_by_admin", "Sessions ended by an administrator"),
    ("sessions_revoked_by_admin", "All sessions ended by an administrator"),
    ("refresh_reuse_detected", "Reused refresh tokens"),
    ("mfa_enabled", "Two-factor turned on"),
    ("mfa_disabled", "Two-factor turned off"),
    ("mfa_reset", "Two-factor reset by an administrator"),
    ("mfa_challenge_failed", "Wrong second-factor codes"),
    ("passkey_added", "Passkeys added"),
    ("passkey_removed", "Passkeys removed"),
    ("passkey_login", "Passkey sign-ins"),
    ("passkey_login_failed", "Refused passkeys"),
    ("backup_code_used", "Backup codes used"),
    ("password_changed", "Password changes"),
    ("password_reset_requested", "Reset links made"),
    ("password_reset", "Password resets"),
    ("email_verified", "Addresses confirmed"),
    ("email_changed", "Address changes"),
    ("role_changed", "Role changes"),
    ("user_deactivated", "Deactivations"),
    ("user_reactivated", "Reactivations"),
    ("access_denied", "Refused requests"),
    ("oauth_token_issued", "Application sign-ins"),
    ("oauth_grant_revoked", "Application access revoked"),
    ("mail_test_sent", "Test mails"),
];

/// What happened, in a sentence about `who` (the user's email, or "someone").
pub fn describe(action: &str, who: &str, detail: &Value) -> String {
    let field = |key: &str| detail.get(key).and_then(Value::as_str);
    match action {
        "login" => match (field("method"), field("second_factor")) {
            (Some("passkey"), _) => format!("{who} signed in with a passkey"),
            (Some("passkey_without_verification"), _) => format!("{who} signed in with a passkey, without a PIN"),
            (_, Some("backup_code")) => format!("{who} signed in with a backup code as second factor"),
            (_, Some("pop")) => format!("{who} signed in with a passkey as second factor"),
            (_, Some(_)) => format!("{who} signed in with a second factor"),
            (_, None) => format!("{who} signed in with a password"),
        },
        "login_failed" => match field("reason") {
            Some("inactive_user") => format!("{who} tried to sign in while deactivated"),
            Some("email_not_verified") => format!("{who} tried to sign in before confirming the address"),
            _ if field("identifier").is_some() => "A sign-in with an unknown name failed".into(),
            _ => format!("A sign-in as {who} failed: wrong password"),
        },
        "account_locked" => {
            let what =
                if field("reason") == Some("mfa_failures") { "wrong second-factor codes" } else { "failed sign-ins" };
            // Events from before the count was recorded say it without a number.
            match detail.get("failures").and_then(Value::as_i64) {
                Some(n) => format!("{n} {what} locked {who}"),
                None => format!("{}{} locked {who}", what[..1].to_uppercase(), &what[1..]),
            }
        }
        "user_unlocked" => format!("{who} was unlocked"),
        "register" => format!("{who} registered"),
        "logout" => format!("{who} signed out"),
        "logout_all" => format!("{who} signed out everywhere"),
        "refresh" => format!("A session of {who} was renewed"),
        "session_revoked" => format!("{who} ended one of their sessions"),
        "session_revoked_by_admin" => format!("An administrator ended a session of {who}"),
        "sessions_revoked_by_admin" => format!("An administrator ended every session of {who}"),
        "refresh_reuse_detected" | "refresh_token_reuse" => {
            format!("A spent refresh token of {who} was used again, so the session was ended")
        }
        "mfa_enabled" => format!("{who} turned on two-factor authentication"),
        "mfa_disabled" => format!("{who} turned off two-factor authentication"),
        "passkey_added" => format!("{who} added a passkey"),
        "passkey_removed" if detail.get("by").is_some() => format!("An administrator removed a passkey of {who}"),
        "passkey_removed" => format!("{who} removed a passkey"),
        "passkey_login" => format!("{who} used a passkey"),
        "passkey_login_failed" => format!("A passkey sign-in as {who} was refused"),
        "mfa_reset" => format!("An administrator reset the two-factor authentication of {who}"),
        "mfa_challenge" => format!("{who} passed the second factor"),
        "mfa_challenge_failed" => format!("{who} entered a wrong second-factor code"),
        "mfa_step_up" => format!("{who} confirmed a session with a second factor"),
        "backup_code_used" => format!("{who} used a backup code"),
        "backup_codes_regenerated" => format!("{who} made new backup codes"),
        "password_changed" => format!("{who} changed their password"),
        "password_reset_requested" => format!("A password reset link was made for {who}"),
        "password_reset" => format!("The password of {who} was reset from a link"),
        "email_verified" => format!("{who} confirmed their address"),
        "email_change_requested" => format!("{who} asked to change their address"),
        "email_changed" => format!("The address of {who} was changed"),
        "role_changed" => format!("The role of {who} was changed"),
        "user_deactivated" => format!("{who} was deactivated"),
        "user_reactivated" => format!("{who} was reactivated"),
        "access_denied" => format!("{who} was refused a request"),
        "oauth_token_issued" => format!("{who} signed in to an application"),
        "oauth_grant_revoked" => format!("An application's access for {who} was revoked"),
        "mail_test_sent" => "A test mail was sent".into(),
        other => {
            let words = other.replace('_', " ");
            let mut chars = words.chars();
            let first = chars.next().map(|c| c.to_uppercase().collect::<String>()).unwrap_or_default();
            format!("{first}{}: {who}", chars.as_str())
        }
    }
}

/// The detail as (label, value) pairs; `by` (the acting admin) is shown on its own.
pub fn details(detail: &Value) -> Vec<(String, String)> {
    let Some(object) = detail.as_object() else { return Vec::new() };
    object
        .iter()
        .filter(|(key, _)| key.as_str() != "by")
        .map(|(key, value)| {
            let label = key.replace('_', " ");
            let value = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (label, value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn events_read_as_sentences() {
        let ana = "ana@example.com";
        assert_eq!(
            describe("login", ana, &json!({"second_factor": "totp"})),
            "ana@example.com signed in with a second factor"
        );
        assert_eq!(
            describe("account_locked", ana, &json!({"failures": 5})),
            "5 failed sign-ins locked ana@example.com"
        );
        assert_eq!(
            describe("account_locked", ana, &json!({"reason": "mfa_failures", "failures": 10})),
            "10 wrong second-factor codes locked ana@example.com"
        );
        assert_eq!(describe("account_locked", ana, &json!({})), "Failed sign-ins locked ana@example.com");
        assert_eq!(
            describe("login_failed", "someone", &json!({"identifier": "x"})),
            "A sign-in with an unknown name failed"
        );
        assert_eq!(describe("org_created", ana, &json!({})), "Org created: ana@example.com");
        assert_eq!(
            details(&json!({"by": "x", "sessions_ended": 2, "reason": "y"})),
            [("reason".to_string(), "y".to_string()), ("sessions ended".to_string(), "2".to_string())]
        );
    }
}
