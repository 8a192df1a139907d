//! The forward-authentication rules file: any text is rules or an error with a line, never a panic; rules
//! that parse decide any request without one.
#![no_main]

use latchkey::domain::{
    access_rules::{AccessRules, Subject, Target},
    roles::Role,
};
use libfuzzer_sys::fuzz_target;

/// Requests every rules file is asked about: hosts and paths the matching has edge cases for.
const TARGETS: [(&str, &str); 6] = [
    ("status.example.com", "/"),
    ("app.example.com", "/admin"),
    ("app.example.com", "/administrator"),
    ("example.com", "/admin/"),
    ("x.y.example.com", "//admin"),
    ("", ""),
];

fuzz_target!(|text: &str| {
    let Ok(rules) = AccessRules::parse(text) else { return };
    let orgs = [("acme", Role::Editor)];
    let subject = Subject { role: Role::Viewer, mfa: false, orgs: &orgs };
    for (host, path) in TARGETS {
        let target = Target { host, path, method: "GET" };
        for who in [None, Some(&subject)] {
            let verdict = rules.decide(&target, who);
            assert!(verdict.rule_line.is_none_or(|line| line >= 1), "rule lines count from 1");
        }
        rules.names_host(host);
    }
});
