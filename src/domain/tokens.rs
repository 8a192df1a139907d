//! Access tokens: JWTs signed with Ed25519 (or HS256 by configuration) and verified strictly.
//!
//! Verification fixes the algorithm from configuration (never from the header), selects the key by `kid`
//! among the server's own keys only, refuses headers that try to bring their own key (`jwk`, `jku`, `x5u`,
//! `x5c`), and requires `typ: at+jwt` (RFC 9068) so that no other kind of token passes as an access token.

use std::collections::HashMap;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;
use zeroize::Zeroizing;

use super::roles::Role;

pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";
/// Tokens longer than this are not parsed at all.
const MAX_TOKEN_LEN: usize = 4096;
/// Clock difference tolerated on `exp` and `nbf`.
pub const LEEWAY_SECONDS: u64 = 5;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: Uuid,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: Uuid,
    pub sid: Uuid,
    pub role: Role,
    pub mfa: bool,
    pub amr: Vec<String>,
    /// The user's organisations and role in each (at most 50), as of when the token was issued.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub orgs: Vec<OrgClaim>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgClaim {
    pub id: Uuid,
    pub role: Role,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the access token is not valid")]
pub struct InvalidToken;

/// An Ed25519 private key: its 32-byte seed and its RFC 7638 thumbprint as `kid`.
pub struct Ed25519Key {
    pub kid: String,
    pub seed: Zeroizing<[u8; 32]>,
}

impl Ed25519Key {
    pub fn from_seed(seed: Zeroizing<[u8; 32]>) -> Self {
        let public = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key();
        let x = URL_SAFE_NO_PAD.encode(public.as_bytes());
        Self { kid: jwk_thumbprint(&x), seed }
    }

    pub fn generate() -> Self {
        Self::from_seed(Zeroizing::new(super::random::bytes::<32>()))
    }

    /// The public key as the `x` member of an OKP JWK.
    pub fn public_x(&self) -> String {
        let public = ed25519_dalek::SigningKey::from_bytes(&self.seed).verifying_key();
        URL_SAFE_NO_PAD.encode(public.as_bytes())
    }
}

/// RFC 7638 thumbprint of an Ed25519 JWK: the members in lexical order, no spaces.
fn jwk_thumbprint(x: &str) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// The keys this server signs with and accepts, and the rules a token must meet.
pub struct KeyRing {
    header: Header,
    encoding: EncodingKey,
    verifying: HashMap<String, DecodingKey>,
    validation: Validation,
    jwks: serde_json::Value,
}

impl KeyRing {
    pub fn eddsa(current: &Ed25519Key, issuer: &str, audience: &str) -> Self {
        let signing = ed25519_dalek::SigningKey::from_bytes(&current.seed);
        #[allow(clippy::expect_used)]
        let der = signing.to_pkcs8_der().expect("an Ed25519 key always encodes as PKCS#8");
        let public = [(current.kid.clone(), current.public_x())];
        let verifying = public
            .iter()
            .filter_map(|(kid, x)| DecodingKey::from_ed_components(x).ok().map(|k| (kid.clone(), k)))
            .collect();
        let keys: Vec<_> = public
            .iter()
            .map(|(kid, x)| {
                serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig"})
            })
            .collect();
        Self::new(
            Algorithm::EdDSA,
            &current.kid,
            EncodingKey::from_ed_der(der.as_bytes()),
            verifying,
            serde_json::json!({ "keys": keys }),
            issuer,
            audience,
        )
    }

    /// A shared secret is not published: the JWKS stays empty.
    pub fn hs256(secret: &[u8], issuer: &str, audience: &str) -> Self {
        let kid = "hs256";
        let verifying = HashMap::from([(kid.to_string(), DecodingKey::from_secret(secret))]);
        Self::new(
            Algorithm::HS256,
            kid,
            EncodingKey::from_secret(secret),
            verifying,
            serde_json::json!({ "keys": [] }),
            issuer,
            audience,
        )
    }

    fn new(
        alg: Algorithm,
        kid: &str,
        encoding: EncodingKey,
        verifying: HashMap<String, DecodingKey>,
        jwks: serde_json::Value,
        issuer: &str,
        audience: &str,
    ) -> Self {
        let mut header = Header::new(alg);
        header.typ = Some(ACCESS_TOKEN_TYPE.into());
        header.kid = Some(kid.into());
        let mut validation = Validation::new(alg);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECONDS;
        Self { header, encoding, verifying, validation, jwks }
    }

    pub fn sign(&self, claims: &AccessClaims) -> String {
        #[allow(clippy::expect_used)]
        jsonwebtoken::encode(&self.header, claims, &self.encoding).expect("signing serialisable claims cannot fail")
    }

    pub fn verify(&self, token: &str) -> Result<AccessClaims, InvalidToken> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(InvalidToken);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| InvalidToken)?;
        let brings_own_key =
            header.jwk.is_some() || header.jku.is_some() || header.x5u.is_some() || header.x5c.is_some();
        if brings_own_key || header.typ.as_deref().is_none_or(|t| !t.eq_ignore_ascii_case(ACCESS_TOKEN_TYPE)) {
            return Err(InvalidToken);
        }
        let key = header.kid.as_deref().and_then(|kid| self.verifying.get(kid)).ok_or(InvalidToken)?;
        jsonwebtoken::decode::<AccessClaims>(token, key, &self.validation)
            .map(|data| data.claims)
            .map_err(|_| InvalidToken)
    }

    pub fn jwks(&self) -> &serde_json::Value {
        &self.jwks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISS: &str = "https://auth.example";
    const AUD: &str = "latchkey";

    fn now() -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp()
    }

    fn claims() -> AccessClaims {
        AccessClaims {
            iss: ISS.into(),
            sub: Uuid::new_v4(),
            aud: AUD.into(),
            exp: now() + 900,
            iat: now(),
            jti: Uuid::new_v4(),
            sid: Uuid::new_v4(),
            role: Role::Viewer,
            mfa: false,
            amr: vec!["pwd".into()],
            orgs: vec![],
        }
    }

    fn b64(value: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(value.to_string())
    }

    fn parts(token: &str) -> Vec<String> {
        token.split('.').map(str::to_string).collect()
    }

    #[test]
    fn eddsa_round_trip_with_kid_and_jwks() {
        let key = Ed25519Key::generate();
        let ring = KeyRing::eddsa(&key, ISS, AUD);
        let c = claims();
        let token = ring.sign(&c);
        assert_eq!(ring.verify(&token).unwrap(), c);
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(key.kid.as_str()));
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(ring.jwks()["keys"][0]["x"], key.public_x());
    }

    #[test]
    fn tampered_payload_and_signature_are_refused() {
        let ring = KeyRing::eddsa(&Ed25519Key::generate(), ISS, AUD);
        let token = ring.sign(&claims());
        let p = parts(&token);
        let mut promoted = claims();
        promoted.role = Role::Admin;
        let forged = format!("{}.{}.{}", p[0], b64(&serde_json::to_value(&promoted).unwrap()), p[2]);
        assert_eq!(ring.verify(&forged), Err(InvalidToken));
        let mut sig = URL_SAFE_NO_PAD.decode(&p[2]).unwrap();
        sig[0] ^= 1;
        assert_eq!(ring.verify(&format!("{}.{}.{}", p[0], p[1], URL_SAFE_NO_PAD.encode(sig))), Err(InvalidToken));
        assert_eq!(ring.verify(&format!("{}.{}.", p[0], p[1])), Err(InvalidToken));
    }

    #[test]
    fn alg_none_and_key_confusion_are_refused() {
        let key = Ed25519Key::generate();
        let ring = KeyRing::eddsa(&key, ISS, AUD);
        let payload = b64(&serde_json::to_value(claims()).unwrap());
        for alg in ["none", "None", "NONE", "nOnE"] {
            let header = b64(&serde_json::json!({"alg": alg, "typ": "at+jwt", "kid": key.kid}));
            assert_eq!(ring.verify(&format!("{header}.{payload}.")), Err(InvalidToken));
        }
        // The public key used as an HMAC secret must not verify.
        let x = URL_SAFE_NO_PAD.decode(key.public_x()).unwrap();
        let confused = KeyRing::hs256(&x, ISS, AUD);
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some("at+jwt".into());
        header.kid = Some(key.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_secret(&x)).unwrap();
        assert_eq!(ring.verify(&token), Err(InvalidToken));
        drop(confused);
    }

    #[test]
    fn foreign_keys_and_unknown_kids_are_refused() {
        let ring = KeyRing::eddsa(&Ed25519Key::generate(), ISS, AUD);
        let attacker = KeyRing::eddsa(&Ed25519Key::generate(), ISS, AUD);
        assert_eq!(ring.verify(&attacker.sign(&claims())), Err(InvalidToken));
        assert_eq!(ring.verify(&"a".repeat(10_000)), Err(InvalidToken));
    }

    #[test]
    fn claims_are_enforced() {
        let secret = [42u8; 32];
        let ring = KeyRing::hs256(&secret, ISS, AUD);
        let sign = |value: serde_json::Value, typ: Option<&str>| {
            let mut header = Header::new(Algorithm::HS256);
            header.typ = typ.map(str::to_string);
            header.kid = Some("hs256".into());
            jsonwebtoken::encode(&header, &value, &EncodingKey::from_secret(&secret)).unwrap()
        };
        let good = serde_json::to_value(claims()).unwrap();
        assert!(ring.verify(&sign(good.clone(), Some("at+jwt"))).is_ok());
        assert!(ring.verify(&sign(good.clone(), Some("JWT"))).is_err(), "wrong typ");
        assert!(ring.verify(&sign(good.clone(), None)).is_err(), "no typ");
        let with = |key: &str, value: serde_json::Value| {
            let mut c = good.clone();
            c[key] = value;
            sign(c, Some("at+jwt"))
        };
        assert!(ring.verify(&with("exp", (now() - 60).into())).is_err(), "expired");
        assert!(ring.verify(&with("aud", "other".into())).is_err(), "audience");
        assert!(ring.verify(&with("iss", "https://evil.example".into())).is_err(), "issuer");
        assert!(ring.verify(&with("nbf", (now() + 600).into())).is_err(), "not yet valid");
        assert!(ring.verify(&with("role", "root".into())).is_err(), "unknown role");
        let mut no_exp = good.clone();
        no_exp.as_object_mut().unwrap().remove("exp");
        assert!(ring.verify(&sign(no_exp, Some("at+jwt"))).is_err(), "no exp");
    }
}
