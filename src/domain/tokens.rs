//! Access tokens: JWTs signed with Ed25519 (or HS256 by configuration) for the JSON API, and with the key
//! of the client's algorithm for OAuth; verified strictly.
//!
//! Verification fixes the algorithm from configuration (never from the header), selects the key by `kid`
//! among the server's own keys only, refuses headers that try to bring their own key (`jwk`, `jku`, `x5u`,
//! `x5c`), and requires `typ: at+jwt` (RFC 9068) so that no other kind of token passes as an access token.

use std::{collections::HashMap, sync::Arc};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use uuid::Uuid;

use super::{
    roles::Role,
    signing::{self, BadKey, SigningKey},
};

pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";
/// The `typ` of ID tokens.
pub const ID_TOKEN_TYPE: &str = "JWT";
/// The `kid` of HS256 API tokens: the secret is configured, not stored with the keys.
pub const HS256_KID: &str = "hs256";
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

impl AccessClaims {
    /// The session's method references (RFC 8176) once `added` is given too: each method once, so that a
    /// second passkey is not counted as a second factor by the length of the list.
    pub fn methods_with<'a>(&'a self, added: &[&'a str]) -> Vec<&'a str> {
        let mut methods: Vec<&str> = self.amr.iter().map(String::as_str).collect();
        for method in added {
            if !methods.contains(method) {
                methods.push(method);
            }
        }
        methods
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgClaim {
    pub id: Uuid,
    pub role: Role,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the access token is not valid")]
pub struct InvalidToken;

/// How the API's own access tokens are signed: with the current Ed25519 key, or HS256 by configuration.
enum ApiSigner {
    Key(Arc<SigningKey>),
    Hs256 { header: Box<Header>, key: EncodingKey },
}

/// The keys this server signs with and accepts, and the rules a token must meet.
pub struct KeyRing {
    api: ApiSigner,
    /// The current key of each algorithm, for OAuth access tokens and ID tokens.
    current: HashMap<Algorithm, Arc<SigningKey>>,
    /// Every key a token may name by `kid`: current, retired but not yet expired, and the HS256 secret.
    verifying: HashMap<String, (Algorithm, DecodingKey)>,
    api_validation: Validation,
    oauth_validation: Validation,
    issuer: String,
    jwks: serde_json::Value,
}

/// What an `id_token_hint` says, once its signature is known to be ours.
#[derive(Debug, Deserialize, PartialEq, Eq)]
pub struct IdTokenHint {
    pub sub: Uuid,
    pub aud: String,
    pub sid: Option<Uuid>,
}

impl KeyRing {
    /// `current` holds one key per algorithm of [`signing::ALGORITHMS`]; `retired` keys still verify and are
    /// still published, until the tokens they signed have expired. With `hs256`, the API's access tokens are
    /// HS256 with that secret, which is not published.
    pub fn new(
        current: Vec<SigningKey>,
        retired: Vec<SigningKey>,
        hs256: Option<&[u8]>,
        issuer: &str,
        audience: &str,
    ) -> Result<Self, BadKey> {
        let current: HashMap<Algorithm, Arc<SigningKey>> =
            current.into_iter().map(|key| (key.alg, Arc::new(key))).collect();
        if signing::ALGORITHMS.iter().any(|alg| !current.contains_key(alg)) {
            return Err(BadKey::missing());
        }
        let mut published: Vec<&SigningKey> = current.values().map(Arc::as_ref).chain(retired.iter()).collect();
        let mut verifying: HashMap<String, (Algorithm, DecodingKey)> =
            published.iter().map(|key| (key.kid.clone(), (key.alg, key.decoding_key()))).collect();
        // RS256 first: relying parties that take the first key find the one ID tokens use by default.
        published.sort_by_key(|key| signing::ALGORITHMS.iter().position(|alg| *alg == key.alg));
        let jwks = serde_json::json!({ "keys": published.iter().map(|key| key.public_jwk()).collect::<Vec<_>>() });
        let (api, api_alg) = match hs256 {
            Some(secret) => {
                let kid = HS256_KID;
                verifying.insert(kid.into(), (Algorithm::HS256, DecodingKey::from_secret(secret)));
                let mut header = Header::new(Algorithm::HS256);
                header.typ = Some(ACCESS_TOKEN_TYPE.into());
                header.kid = Some(kid.into());
                (ApiSigner::Hs256 { header: Box::new(header), key: EncodingKey::from_secret(secret) }, Algorithm::HS256)
            }
            None => (ApiSigner::Key(current[&Algorithm::EdDSA].clone()), Algorithm::EdDSA),
        };
        let mut api_validation = validation(api_alg, issuer);
        api_validation.set_audience(&[audience]);
        // An OAuth access token's audience is the client it was issued to; the caller compares the two.
        // OAuth access tokens are RS256, the one algorithm RFC 9068 makes every resource server support.
        let mut oauth_validation = validation(Algorithm::RS256, issuer);
        oauth_validation.validate_aud = false;
        Ok(Self { api, current, verifying, api_validation, oauth_validation, issuer: issuer.into(), jwks })
    }

    /// A fresh key set, for tests and benches.
    #[allow(clippy::expect_used)]
    pub fn generated(hs256: Option<&[u8]>, issuer: &str, audience: &str) -> Self {
        let keys = signing::ALGORITHMS.iter().map(|alg| SigningKey::generate(*alg).expect("key generation")).collect();
        Self::new(keys, vec![], hs256, issuer, audience).expect("a complete key set")
    }

    /// Signs an access token of the JSON API.
    pub fn sign(&self, claims: &AccessClaims) -> String {
        match &self.api {
            ApiSigner::Key(key) => key.sign(ACCESS_TOKEN_TYPE, claims),
            #[allow(clippy::expect_used)]
            ApiSigner::Hs256 { header, key } => {
                jsonwebtoken::encode(header, claims, key).expect("signing serialisable claims cannot fail")
            }
        }
    }

    /// The current key of `alg`; RS256's for an algorithm the server does not sign with.
    pub fn signing_key(&self, alg: Algorithm) -> &SigningKey {
        self.current.get(&alg).unwrap_or(&self.current[&Algorithm::RS256])
    }

    /// An access token of the JSON API: its audience, its one algorithm.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, InvalidToken> {
        self.verify_with(token, &self.api_validation)
    }

    /// An OAuth access token (RFC 9068, RS256) with its claims as `T`; the audience is left to the caller.
    pub fn verify_oauth<T: DeserializeOwned>(&self, token: &str) -> Result<T, InvalidToken> {
        self.verify_with(token, &self.oauth_validation)
    }

    /// An ID token this server signed, presented back as `id_token_hint` (RP-initiated logout): any of the
    /// server's keys and algorithms, its issuer; expired ones count (OpenID Connect RP-Initiated Logout §2).
    /// The audience is the client's, which the caller compares.
    pub fn verify_id_token_hint(&self, token: &str) -> Result<IdTokenHint, InvalidToken> {
        let (header, alg, key) = self.header_and_key(token, ID_TOKEN_TYPE)?;
        let mut validation = validation(*alg, &self.issuer);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["iss", "aud", "sub"]);
        if header.alg != *alg {
            return Err(InvalidToken);
        }
        jsonwebtoken::decode(token, key, &validation).map(|data| data.claims).map_err(|_| InvalidToken)
    }

    fn verify_with<T: DeserializeOwned>(&self, token: &str, validation: &Validation) -> Result<T, InvalidToken> {
        let (header, alg, key) = self.header_and_key(token, ACCESS_TOKEN_TYPE)?;
        // The key decides the algorithm; a header naming another one is refused.
        if header.alg != *alg || !validation.algorithms.contains(alg) {
            return Err(InvalidToken);
        }
        jsonwebtoken::decode::<T>(token, key, validation).map(|data| data.claims).map_err(|_| InvalidToken)
    }

    /// The header of a token of type `typ` that names one of the server's keys (and brings none of its own),
    /// with that key and its algorithm.
    fn header_and_key(&self, token: &str, typ: &str) -> Result<(Header, &Algorithm, &DecodingKey), InvalidToken> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(InvalidToken);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| InvalidToken)?;
        let brings_own_key =
            header.jwk.is_some() || header.jku.is_some() || header.x5u.is_some() || header.x5c.is_some();
        if brings_own_key || header.typ.as_deref().is_none_or(|t| !t.eq_ignore_ascii_case(typ)) {
            return Err(InvalidToken);
        }
        let (alg, key) = header.kid.as_deref().and_then(|kid| self.verifying.get(kid)).ok_or(InvalidToken)?;
        Ok((header, alg, key))
    }

    /// The ids of every key in the ring, sorted: two rings with the same ids hold the same keys.
    pub fn kids(&self) -> Vec<&str> {
        let mut kids: Vec<&str> = self.verifying.keys().map(String::as_str).collect();
        kids.sort_unstable();
        kids
    }

    pub fn jwks(&self) -> &serde_json::Value {
        &self.jwks
    }
}

/// The rules for tokens of one algorithm: jsonwebtoken wants every algorithm it is given to fit the key.
fn validation(alg: Algorithm, issuer: &str) -> Validation {
    let mut validation = Validation::new(alg);
    validation.set_issuer(&[issuer]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    validation.validate_nbf = true;
    validation.leeway = LEEWAY_SECONDS;
    validation
}

#[cfg(test)]
mod tests {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

    use super::*;

    const ISS: &str = "https://auth.example";
    const AUD: &str = "latchkey";

    fn now() -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp()
    }

    #[test]
    fn a_method_given_twice_is_counted_once() {
        let mut session = claims();
        assert_eq!(session.methods_with(&["otp"]), ["pwd", "otp"]);
        session.amr = vec!["pop".into()];
        assert_eq!(session.methods_with(&["pop"]), ["pop"], "the same kind of factor again is not a second");
        assert_eq!(session.methods_with(&["pop", "mfa"]), ["pop", "mfa"]);
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

    fn ring() -> KeyRing {
        KeyRing::generated(None, ISS, AUD)
    }

    #[test]
    fn eddsa_round_trip_with_kid_and_jwks() {
        let ring = ring();
        let c = claims();
        let token = ring.sign(&c);
        assert_eq!(ring.verify(&token).unwrap(), c);
        let header = jsonwebtoken::decode_header(&token).unwrap();
        let key = ring.signing_key(Algorithm::EdDSA);
        assert_eq!((header.alg, header.kid.as_deref()), (Algorithm::EdDSA, Some(key.kid.as_str())));
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        let algs: Vec<_> = ring.jwks()["keys"].as_array().unwrap().iter().map(|k| k["alg"].clone()).collect();
        assert_eq!(algs, ["RS256", "EdDSA", "ES256"], "RS256 first");
    }

    #[test]
    fn api_tokens_and_oauth_tokens_do_not_pass_for_each_other() {
        let ring = ring();
        // Signed by the server's RSA key with the right typ, issuer and audience: still not an API token.
        let rsa = ring.signing_key(Algorithm::RS256).sign(ACCESS_TOKEN_TYPE, &claims());
        assert_eq!(ring.verify(&rsa), Err(InvalidToken));
        assert!(ring.verify_oauth::<AccessClaims>(&rsa).is_ok());
        // A header naming another algorithm than its key's is refused.
        let p = parts(&rsa);
        let header =
            b64(&serde_json::json!({"alg": "RS384", "typ": "at+jwt", "kid": ring.signing_key(Algorithm::RS256).kid}));
        assert!(ring.verify_oauth::<AccessClaims>(&format!("{header}.{}.{}", p[1], p[2])).is_err());
        // An ID token (typ JWT) is not an access token.
        let id = ring.signing_key(Algorithm::RS256).sign("JWT", &claims());
        assert!(ring.verify_oauth::<AccessClaims>(&id).is_err());
    }

    #[test]
    fn tampered_payload_and_signature_are_refused() {
        let ring = ring();
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
        let ring = ring();
        let key = ring.signing_key(Algorithm::EdDSA);
        let payload = b64(&serde_json::to_value(claims()).unwrap());
        for alg in ["none", "None", "NONE", "nOnE"] {
            let header = b64(&serde_json::json!({"alg": alg, "typ": "at+jwt", "kid": key.kid}));
            assert_eq!(ring.verify(&format!("{header}.{payload}.")), Err(InvalidToken));
        }
        // The public key used as an HMAC secret must not verify.
        let x = URL_SAFE_NO_PAD.decode(key.public_jwk()["x"].as_str().unwrap()).unwrap();
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some("at+jwt".into());
        header.kid = Some(key.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_secret(&x)).unwrap();
        assert_eq!(ring.verify(&token), Err(InvalidToken));
    }

    #[test]
    fn foreign_keys_and_unknown_kids_are_refused() {
        let ring = ring();
        let attacker = KeyRing::generated(None, ISS, AUD);
        assert_eq!(ring.verify(&attacker.sign(&claims())), Err(InvalidToken));
        assert_eq!(ring.verify(&"a".repeat(10_000)), Err(InvalidToken));
    }

    #[test]
    fn claims_are_enforced() {
        let secret = [42u8; 32];
        let ring = KeyRing::generated(Some(&secret), ISS, AUD);
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
