//! Forward-authentication rules (`LATCHKEY_ACCESS_RULES`): which requests to the applications behind a
//! reverse proxy need whom. A TOML file with a `default_policy` and an ordered list of `[[rules]]`; the
//! first rule that matches the request's host, path and method decides.
//!
//! ```toml
//! default_policy = "signed_in"
//!
//! [[rules]]
//! hosts = ["status.example.com"]
//! policy = "bypass"
//!
//! [[rules]]
//! hosts = ["*.example.com"]
//! paths = ["/admin"]
//! policy = "mfa"
//! roles = ["admin"]            # any of; a role admits every higher one
//! orgs = ["acme:editor"]       # any of: `slug` (any role) or `slug:role`
//! ```
//!
//! When a rule names both `roles` and `orgs`, the user must satisfy both.

use serde::Deserialize;

use super::roles::Role;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Anyone, signed in or not.
    Bypass,
    SignedIn,
    /// Signed in with a second factor.
    Mfa,
    /// Nobody.
    Deny,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Bypass => "bypass",
            Policy::SignedIn => "signed_in",
            Policy::Mfa => "mfa",
            Policy::Deny => "deny",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum HostPattern {
    Exact(String),
    /// `*.example.com`, stored as `.example.com`: any depth of subdomain, not the domain itself.
    Subdomains(String),
}

impl HostPattern {
    fn parse(text: &str) -> Result<Self, String> {
        let lower = text.trim().to_ascii_lowercase();
        let (name, pattern): (&str, fn(String) -> Self) = match lower.strip_prefix("*.") {
            Some(domain) => (domain, |d| HostPattern::Subdomains(format!(".{d}"))),
            None => (lower.as_str(), HostPattern::Exact),
        };
        let valid = !name.is_empty()
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            });
        if valid {
            Ok(pattern(name.to_string()))
        } else {
            Err(format!("{text:?} is not a host name or *.domain (no port, no scheme, no path)"))
        }
    }

    fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(name) => host == name,
            HostPattern::Subdomains(suffix) => host.len() > suffix.len() && host.ends_with(suffix.as_str()),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct OrgRequirement {
    slug: String,
    /// At least this role in the organisation; `None`: any member.
    role: Option<Role>,
}

impl OrgRequirement {
    fn parse(text: &str) -> Result<Self, String> {
        let (slug, role) = match text.split_once(':') {
            Some((slug, role)) => (slug, Some(role.parse::<Role>()?)),
            None => (text, None),
        };
        if slug.is_empty() || !slug.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return Err(format!("{text:?} is not an organisation slug, or slug:role"));
        }
        Ok(Self { slug: slug.to_string(), role })
    }
}

#[derive(Clone, Debug)]
struct Rule {
    /// Where the rule starts in the file (1-based), for `rules explain` and error messages.
    line: usize,
    hosts: Vec<HostPattern>,
    paths: Vec<String>,
    methods: Vec<String>,
    policy: Policy,
    roles: Vec<Role>,
    orgs: Vec<OrgRequirement>,
}

#[derive(Clone, Debug)]
pub struct AccessRules {
    default_policy: Policy,
    rules: Vec<Rule>,
}

/// The request the proxy asks about.
pub struct Target<'a> {
    /// Lower case, without the port.
    pub host: &'a str,
    pub path: &'a str,
    pub method: &'a str,
}

/// The signed-in user, as the rules see them.
pub struct Subject<'a> {
    pub role: Role,
    pub mfa: bool,
    /// (slug, role) of each membership.
    pub orgs: &'a [(&'a str, Role)],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Allow,
    /// Not signed in: to the sign-in page and back.
    SignIn,
    /// Signed in without the second factor the rule asks for.
    StepUp,
    Forbidden,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Verdict {
    pub outcome: Outcome,
    pub policy: Policy,
    /// The deciding rule's line in the file; `None` for the default policy.
    pub rule_line: Option<usize>,
    pub reason: String,
}

/// A rules file that cannot be used: where, and why.
#[derive(Debug, PartialEq, Eq)]
pub struct RulesError {
    pub line: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for RulesError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    default_policy: Option<Policy>,
    #[serde(default)]
    rules: Vec<toml::Spanned<RawRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    hosts: Vec<String>,
    #[serde(default)]
    paths: Vec<String>,
    #[serde(default)]
    methods: Vec<String>,
    policy: Policy,
    #[serde(default)]
    roles: Vec<Role>,
    #[serde(default)]
    orgs: Vec<String>,
}

impl AccessRules {
    /// No rules file: every request needs a signed-in user, on the hosts given (the issuer's, and the cookie
    /// domain's when set), since the original URL must be on a host the rules name.
    pub fn signed_in_on(hosts: &[String]) -> Self {
        let hosts = hosts.iter().filter_map(|h| HostPattern::parse(h).ok()).collect();
        let rule = Rule {
            line: 0,
            hosts,
            paths: vec![],
            methods: vec![],
            policy: Policy::SignedIn,
            roles: vec![],
            orgs: vec![],
        };
        Self { default_policy: Policy::SignedIn, rules: vec![rule] }
    }

    pub fn parse(text: &str) -> Result<Self, RulesError> {
        let raw: RawFile = toml::from_str(text).map_err(|e| RulesError {
            line: e.span().map(|span| line_of(text, span.start)),
            message: e.message().to_string(),
        })?;
        let rules = raw
            .rules
            .into_iter()
            .map(|spanned| {
                let line = line_of(text, spanned.span().start);
                let fail = |message: String| RulesError { line: Some(line), message };
                let raw = spanned.into_inner();
                if raw.hosts.is_empty() {
                    return Err(fail("a rule needs at least one entry in `hosts`".into()));
                }
                let hosts = raw.hosts.iter().map(|h| HostPattern::parse(h)).collect::<Result<_, _>>().map_err(fail)?;
                if let Some(bad) = raw.paths.iter().find(|p| !p.starts_with('/')) {
                    return Err(fail(format!("path {bad:?} must start with /")));
                }
                let methods = raw.methods.iter().map(|m| m.trim().to_ascii_uppercase()).collect::<Vec<_>>();
                if let Some(bad) = methods.iter().find(|m| m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase())) {
                    return Err(fail(format!("{bad:?} is not an HTTP method")));
                }
                let orgs = raw.orgs.iter().map(|o| OrgRequirement::parse(o)).collect::<Result<_, _>>().map_err(fail)?;
                let restricts = !raw.roles.is_empty() || !raw.orgs.is_empty();
                if restricts && matches!(raw.policy, Policy::Bypass | Policy::Deny) {
                    return Err(fail(format!("`roles` and `orgs` mean nothing with policy {:?}", raw.policy.as_str())));
                }
                Ok(Rule { line, hosts, paths: raw.paths, methods, policy: raw.policy, roles: raw.roles, orgs })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { default_policy: raw.default_policy.unwrap_or(Policy::SignedIn), rules })
    }

    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    pub fn default_policy(&self) -> Policy {
        self.default_policy
    }

    /// Whether `host` (lower case, no port) is one the rules name: only such hosts are protected, and only
    /// they may be sent back to after sign-in.
    pub fn names_host(&self, host: &str) -> bool {
        self.rules.iter().any(|rule| rule.hosts.iter().any(|pattern| pattern.matches(host)))
    }

    pub fn decide(&self, target: &Target<'_>, subject: Option<&Subject<'_>>) -> Verdict {
        let rule = self.rules.iter().find(|rule| {
            rule.hosts.iter().any(|h| h.matches(target.host))
                && (rule.paths.is_empty() || rule.paths.iter().any(|p| path_matches(p, target.path)))
                && (rule.methods.is_empty() || rule.methods.iter().any(|m| m.eq_ignore_ascii_case(target.method)))
        });
        let (policy, roles, orgs, rule_line) = match rule {
            Some(rule) => (rule.policy, rule.roles.as_slice(), rule.orgs.as_slice(), Some(rule.line)),
            None => (self.default_policy, &[][..], &[][..], None),
        };
        let verdict = |outcome, reason: &str| Verdict { outcome, policy, rule_line, reason: reason.to_string() };
        match (policy, subject) {
            (Policy::Bypass, _) => verdict(Outcome::Allow, "the rule lets anyone through"),
            (Policy::Deny, _) => verdict(Outcome::Forbidden, "the rule lets nobody through"),
            (_, None) => verdict(Outcome::SignIn, "not signed in"),
            (_, Some(s)) if !roles.is_empty() && !roles.iter().any(|r| s.role >= *r) => {
                verdict(Outcome::Forbidden, &format!("role {} is below every role the rule admits", s.role.as_str()))
            }
            (_, Some(s)) if !orgs.is_empty() && !orgs.iter().any(|o| member_of(s, o)) => {
                verdict(Outcome::Forbidden, "not in any organisation (with the role) the rule names")
            }
            (Policy::Mfa, Some(s)) if !s.mfa => verdict(Outcome::StepUp, "the rule wants a second factor"),
            (_, Some(_)) => verdict(Outcome::Allow, "signed in as the rule requires"),
        }
    }
}

/// The path as the application will resolve it: percent-decoded, empty and `.` segments dropped, `..`
/// applied. `None` for what has no single reading (an encoded `/` or `\`, invalid UTF-8, a `..` above the
/// root): the proxy's question is refused rather than judged against the wrong rule.
pub fn normalize_path(raw: &str) -> Option<String> {
    let lower = raw.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") || raw.contains('\\') {
        return None;
    }
    let decoded = percent_encoding::percent_decode_str(raw).decode_utf8().ok()?;
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop()?;
            }
            s => segments.push(s),
        }
    }
    let trailing = decoded.ends_with('/') && !segments.is_empty();
    Some(format!("/{}{}", segments.join("/"), if trailing { "/" } else { "" }))
}

/// `/admin` covers `/admin` and `/admin/...`, not `/administrator`; a rule path ending in `/` covers what
/// is below it.
fn path_matches(rule: &str, path: &str) -> bool {
    path.strip_prefix(rule).is_some_and(|rest| rest.is_empty() || rule.ends_with('/') || rest.starts_with('/'))
}

fn member_of(subject: &Subject<'_>, requirement: &OrgRequirement) -> bool {
    subject.orgs.iter().any(|(slug, role)| *slug == requirement.slug && requirement.role.is_none_or(|min| *role >= min))
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|b| *b == b'\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
default_policy = "deny"

[[rules]]
hosts = ["status.example.com"]
policy = "bypass"

[[rules]]
hosts = ["*.example.com"]
paths = ["/admin"]
policy = "mfa"
roles = ["admin"]

[[rules]]
hosts = ["wiki.example.com"]
methods = ["post", "PUT"]
policy = "signed_in"
orgs = ["acme:editor", "docs"]

[[rules]]
hosts = ["*.example.com", "example.org"]
policy = "signed_in"
"#;

    fn rules() -> AccessRules {
        AccessRules::parse(FILE).expect("the example parses")
    }

    fn at<'a>(host: &'a str, path: &'a str, method: &'a str) -> Target<'a> {
        Target { host, path, method }
    }

    fn ask(host: &str, path: &str, method: &str, subject: Option<&Subject<'_>>) -> (Outcome, Option<usize>) {
        let v = rules().decide(&at(host, path, method), subject);
        (v.outcome, v.rule_line)
    }

    #[test]
    fn anonymous_requests() {
        use Outcome::*;
        let table = [
            ("status.example.com", "/", "GET", (Allow, Some(4))),
            ("app.example.com", "/", "GET", (SignIn, Some(20))),
            ("app.example.com", "/admin/x", "GET", (SignIn, Some(8))),
            ("example.org", "/", "GET", (SignIn, Some(20))),
            // Not named anywhere: the default policy.
            ("example.com", "/", "GET", (Forbidden, None)),
            ("evil.com", "/", "GET", (Forbidden, None)),
            ("app.example.com.evil.com", "/", "GET", (Forbidden, None)),
        ];
        for (host, path, method, expected) in table {
            assert_eq!(ask(host, path, method, None), expected, "{host}{path}");
        }
    }

    #[test]
    fn roles_admit_themselves_and_higher_and_mfa_needs_a_second_factor() {
        use Outcome::*;
        let (admin, admin_mfa, editor) = (
            Subject { role: Role::Admin, mfa: false, orgs: &[] },
            Subject { role: Role::Admin, mfa: true, orgs: &[] },
            Subject { role: Role::Editor, mfa: true, orgs: &[] },
        );
        assert_eq!(ask("a.example.com", "/admin", "GET", Some(&admin)).0, StepUp);
        assert_eq!(ask("a.b.example.com", "/admin/users", "GET", Some(&admin_mfa)).0, Allow);
        assert_eq!(ask("a.example.com", "/admin", "GET", Some(&editor)).0, Forbidden);
        assert_eq!(ask("a.example.com", "/admin/", "GET", Some(&editor)).0, Forbidden);
        assert_eq!(ask("a.example.com", "/administrators", "GET", Some(&editor)), (Allow, Some(20)), "not /admin");
        assert_eq!(ask("a.example.com", "/", "GET", Some(&editor)).0, Allow);
    }

    #[test]
    fn orgs_by_slug_or_slug_and_role_and_methods() {
        use Outcome::*;
        let acme_viewer = [("acme", Role::Viewer)];
        let acme_admin = [("acme", Role::Admin)];
        let docs_viewer = [("docs", Role::Viewer)];
        let who = |orgs| Subject { role: Role::Viewer, mfa: false, orgs };
        assert_eq!(ask("wiki.example.com", "/", "POST", Some(&who(&acme_viewer))).0, Forbidden);
        assert_eq!(ask("wiki.example.com", "/", "put", Some(&who(&acme_admin))).0, Allow);
        assert_eq!(ask("wiki.example.com", "/", "POST", Some(&who(&docs_viewer))).0, Allow);
        // GET is not among the rule's methods: the next rule decides.
        assert_eq!(ask("wiki.example.com", "/", "GET", Some(&who(&acme_viewer))), (Allow, Some(20)));
    }

    #[test]
    fn paths_are_judged_as_the_application_resolves_them() {
        let table = [
            ("/admin", Some("/admin")),
            ("//admin//users", Some("/admin/users")),
            ("/x/../admin", Some("/admin")),
            ("/./admin/", Some("/admin/")),
            ("/%61dmin", Some("/admin")),
            ("/", Some("/")),
            ("/a%2Fb", None),
            ("/a%5cb", None),
            ("/a\\b", None),
            ("/../admin", None),
            ("/%ff", None),
        ];
        for (raw, expected) in table {
            assert_eq!(normalize_path(raw).as_deref(), expected, "{raw}");
        }
    }

    #[test]
    fn hosts_are_named_exactly_or_by_subdomain() {
        let r = rules();
        assert!(r.names_host("status.example.com") && r.names_host("x.y.example.com") && r.names_host("example.org"));
        assert!(!r.names_host("example.com") && !r.names_host("evil.com") && !r.names_host("sub.example.org"));
    }

    #[test]
    fn bad_files_say_where_and_why() {
        let cases = [
            ("default_policy = \"maybe\"\n", 1, "unknown variant"),
            (
                "[[rules]]\nhosts = [\"a.example.com\"]\npolicy = \"signed_in\"\nroles = [\"boss\"]\n",
                4,
                "unknown variant",
            ),
            ("\n[[rules]]\nhosts = [\"https://a.example.com\"]\npolicy = \"bypass\"\n", 2, "not a host name"),
            ("[[rules]]\nhosts = [\"a.example.com:8080\"]\npolicy = \"bypass\"\n", 1, "no port"),
            ("[[rules]]\nhosts = []\npolicy = \"bypass\"\n", 1, "at least one"),
            ("[[rules]]\nhosts = [\"a.example.com\"]\npaths = [\"admin\"]\npolicy = \"mfa\"\n", 1, "must start with /"),
            ("[[rules]]\nhosts = [\"a.example.com\"]\npolicy = \"deny\"\nroles = [\"admin\"]\n", 1, "mean nothing"),
            ("[[rules]]\nhosts = [\"a.example.com\"]\npolicy = \"mfa\"\norgs = [\"Acme\"]\n", 1, "not an organisation"),
            ("[[rules]]\nhost = [\"a.example.com\"]\npolicy = \"mfa\"\n", 2, "unknown field"),
        ];
        for (text, line, words) in cases {
            let error = AccessRules::parse(text).expect_err(text);
            assert_eq!(error.line, Some(line), "{text}: {error}");
            assert!(error.message.contains(words), "{text}: {error}");
        }
    }

    #[test]
    fn without_a_file_every_request_needs_a_signed_in_user() {
        let r = AccessRules::signed_in_on(&["auth.example.com".into(), "*.example.com".into()]);
        assert_eq!(r.decide(&at("app.example.com", "/", "GET"), None).outcome, Outcome::SignIn);
        assert!(r.names_host("auth.example.com") && !r.names_host("evil.com"));
    }
}
