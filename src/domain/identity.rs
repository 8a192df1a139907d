//! Email and username rules: how they are validated and normalised before storage or lookup.

/// Trimmed and lower-cased, so that uniqueness and login are case-insensitive.
pub fn normalize_email(raw: &str) -> Result<String, &'static str> {
    let email = raw.trim().to_lowercase();
    if email.is_empty() {
        return Err("Email is required.");
    }
    if email.len() > 254 {
        return Err("Email must be at most 254 characters.");
    }
    match email.parse::<email_address::EmailAddress>() {
        // Display names ("Ana <ana@x>") parse too, but are not an address to store.
        Ok(parsed) if parsed.email() == email && parsed.domain().contains('.') => Ok(email),
        _ => Err("Enter a valid email address, like ana@example.com."),
    }
}

/// 3–32 of `[a-z0-9_.-]`, stored lower-case.
pub fn normalize_username(raw: &str) -> Result<String, &'static str> {
    let name = raw.trim().to_lowercase();
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-');
    if !(3..=32).contains(&name.len()) || !name.chars().all(allowed) {
        return Err("Username must be 3 to 32 characters of a-z, 0-9, '_', '.' or '-'.");
    }
    Ok(name)
}

/// What a login form's `username` field names: an email (it has an `@`) or a username.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginIdentifier {
    Email(String),
    Username(String),
}

impl LoginIdentifier {
    /// Never fails: an identifier that cannot exist simply matches no account.
    pub fn parse(raw: &str) -> Self {
        let normalized = raw.trim().to_lowercase();
        if normalized.contains('@') { Self::Email(normalized) } else { Self::Username(normalized) }
    }

    /// What lockout counts failures against: the kind and the normalised text.
    pub fn lock_key(&self) -> String {
        match self {
            Self::Email(s) => format!("email:{s}"),
            Self::Username(s) => format!("username:{s}"),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Email(s) | Self::Username(s) => s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_lowercased() {
        assert_eq!(normalize_email("  Ana@Example.COM ").unwrap(), "ana@example.com");
    }

    #[test]
    fn bad_emails_are_refused() {
        for bad in ["", "ana", "ana@", "@example.com", "ana@localhost", "Ana <ana@example.com>", "a b@example.com"] {
            assert!(normalize_email(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(normalize_email(&format!("{}@example.com", "a".repeat(250))).is_err());
    }

    #[test]
    fn usernames_follow_the_contract() {
        assert_eq!(normalize_username("Ana.B-1_").unwrap(), "ana.b-1_");
        for bad in ["ab", "a".repeat(33).as_str(), "ana b", "ana@x", "ånа"] {
            assert!(normalize_username(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn identifiers_pick_email_or_username() {
        assert_eq!(LoginIdentifier::parse(" Ana@Example.com"), LoginIdentifier::Email("ana@example.com".into()));
        assert_eq!(LoginIdentifier::parse("Ana"), LoginIdentifier::Username("ana".into()));
    }
}
