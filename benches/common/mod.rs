//! What the benches share: the claims of a typical API access token.

use latchkey::domain::{roles::Role, tokens::AccessClaims};

pub const ISSUER: &str = "http://localhost:8080";

pub fn claims() -> AccessClaims {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    AccessClaims {
        iss: ISSUER.into(),
        sub: uuid::Uuid::new_v4(),
        aud: "latchkey".into(),
        exp: now + 900,
        iat: now,
        jti: uuid::Uuid::new_v4(),
        sid: uuid::Uuid::new_v4(),
        role: Role::Viewer,
        mfa: false,
        amr: vec!["pwd".into()],
        orgs: vec![],
    }
}
