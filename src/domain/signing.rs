//! The server's asymmetric signing keys (Ed25519, RSA-2048, P-256) and JWS compact signing with them.
//!
//! Signing goes through aws-lc, whose RSA is constant-time (the `rsa` crate's is not: RUSTSEC-2023-0071,
//! the Marvin attack). Each key is parsed once and held for the life of the process; jsonwebtoken would
//! re-parse and re-check an RSA key on every signature. Verification stays with jsonwebtoken
//! (`tokens.rs`), with the algorithm fixed by the key, never by the token.

use aws_lc_rs::{
    encoding::{AsDer, Pkcs8V1Der},
    rand::SystemRandom,
    rsa::KeySize,
    signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256, RsaKeyPair},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// The algorithms the server signs with, by their JOSE names.
pub const ALGORITHMS: [Algorithm; 3] = [Algorithm::RS256, Algorithm::EdDSA, Algorithm::ES256];

pub fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::RS256 => "RS256",
        Algorithm::EdDSA => "EdDSA",
        Algorithm::ES256 => "ES256",
        Algorithm::HS256 => "HS256",
        _ => "unsupported",
    }
}

pub fn parse_alg(name: &str) -> Option<Algorithm> {
    ALGORITHMS.into_iter().find(|alg| alg_name(*alg) == name)
}

#[derive(Debug, thiserror::Error)]
#[error("the {0} key cannot be made or read")]
pub struct BadKey(&'static str);

impl BadKey {
    pub fn missing() -> Self {
        Self("missing")
    }
}

enum Private {
    Ed25519 { pair: Ed25519KeyPair, seed: Zeroizing<[u8; 32]> },
    Rsa { pair: RsaKeyPair, pkcs8: Zeroizing<Vec<u8>> },
    Ecdsa { pair: EcdsaKeyPair, pkcs8: Zeroizing<Vec<u8>> },
}

/// A private key, its RFC 7638 thumbprint as `kid`, and its public JWK as the JWKS publishes it.
pub struct SigningKey {
    pub kid: String,
    pub alg: Algorithm,
    private: Private,
    public_jwk: Value,
}

impl SigningKey {
    pub fn generate(alg: Algorithm) -> Result<Self, BadKey> {
        let private = match alg {
            Algorithm::EdDSA => return Self::from_private(alg, &super::random::bytes::<32>()),
            Algorithm::RS256 => {
                let pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| BadKey("RSA"))?;
                let der = AsDer::<Pkcs8V1Der>::as_der(&pair).map_err(|_| BadKey("RSA"))?;
                Zeroizing::new(der.as_ref().to_vec())
            }
            Algorithm::ES256 => {
                let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).map_err(|_| BadKey("P-256"))?;
                Zeroizing::new(pair.to_pkcs8v1().map_err(|_| BadKey("P-256"))?.as_ref().to_vec())
            }
            _ => return Err(BadKey("unsupported")),
        };
        Self::from_private(alg, &private)
    }

    /// From what [`Self::private_bytes`] gave: the Ed25519 seed, or PKCS#8 DER for RSA and P-256.
    pub fn from_private(alg: Algorithm, bytes: &[u8]) -> Result<Self, BadKey> {
        let (private, jwk) = match alg {
            Algorithm::EdDSA => {
                let seed: Zeroizing<[u8; 32]> = Zeroizing::new(bytes.try_into().map_err(|_| BadKey("Ed25519"))?);
                let pair = Ed25519KeyPair::from_seed_unchecked(seed.as_slice()).map_err(|_| BadKey("Ed25519"))?;
                let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
                (Private::Ed25519 { pair, seed }, json!({"crv": "Ed25519", "kty": "OKP", "x": x}))
            }
            Algorithm::RS256 => {
                let pair = RsaKeyPair::from_pkcs8(bytes).map_err(|_| BadKey("RSA"))?;
                let public = pair.public_key();
                let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
                let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
                (Private::Rsa { pair, pkcs8: Zeroizing::new(bytes.to_vec()) }, json!({"e": e, "kty": "RSA", "n": n}))
            }
            Algorithm::ES256 => {
                let pair =
                    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, bytes).map_err(|_| BadKey("P-256"))?;
                // The uncompressed point: 0x04, then x and y of 32 bytes each.
                let point = pair.public_key().as_ref();
                if point.len() != 65 {
                    return Err(BadKey("P-256"));
                }
                let (x, y) = (URL_SAFE_NO_PAD.encode(&point[1..33]), URL_SAFE_NO_PAD.encode(&point[33..]));
                let jwk = json!({"crv": "P-256", "kty": "EC", "x": x, "y": y});
                (Private::Ecdsa { pair, pkcs8: Zeroizing::new(bytes.to_vec()) }, jwk)
            }
            _ => return Err(BadKey("unsupported")),
        };
        let kid = thumbprint(&jwk);
        let mut public_jwk = jwk;
        public_jwk["kid"] = kid.clone().into();
        public_jwk["alg"] = alg_name(alg).into();
        public_jwk["use"] = "sig".into();
        Ok(Self { kid, alg, private, public_jwk })
    }

    /// The private key to seal and store.
    pub fn private_bytes(&self) -> Zeroizing<Vec<u8>> {
        match &self.private {
            Private::Ed25519 { seed, .. } => Zeroizing::new(seed.to_vec()),
            Private::Rsa { pkcs8, .. } | Private::Ecdsa { pkcs8, .. } => pkcs8.clone(),
        }
    }

    pub fn public_jwk(&self) -> &Value {
        &self.public_jwk
    }

    /// The key that verifies this key's signatures.
    pub fn decoding_key(&self) -> DecodingKey {
        let member = |name: &str| self.public_jwk[name].as_str().unwrap_or_default().to_string();
        let key = match self.alg {
            Algorithm::RS256 => DecodingKey::from_rsa_components(&member("n"), &member("e")),
            Algorithm::ES256 => DecodingKey::from_ec_components(&member("x"), &member("y")),
            _ => DecodingKey::from_ed_components(&member("x")),
        };
        // The members were produced above from a key aws-lc accepted.
        #[allow(clippy::expect_used)]
        key.expect("a public key this server made always decodes")
    }

    /// A JWS in compact form, with `alg`, `typ` and `kid` in its header.
    pub fn sign(&self, typ: &str, claims: &impl Serialize) -> String {
        let header = json!({"alg": alg_name(self.alg), "typ": typ, "kid": self.kid});
        #[allow(clippy::expect_used)]
        let payload = serde_json::to_vec(claims).expect("claims always serialise");
        let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(payload));
        let signature = self.signature(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    #[allow(clippy::expect_used)]
    fn signature(&self, message: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.private {
            Private::Ed25519 { pair, .. } => pair.sign(message).as_ref().to_vec(),
            Private::Rsa { pair, .. } => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &rng, message, &mut signature)
                    .expect("RSA signing with a valid key and a buffer of the modulus size cannot fail");
                signature
            }
            Private::Ecdsa { pair, .. } => {
                pair.sign(&rng, message).expect("ECDSA signing with a valid key cannot fail").as_ref().to_vec()
            }
        }
    }

    /// OpenID Connect Core §3.1.3.6: the left half of the hash of `value` (an access token, a code), with
    /// the hash of the signing algorithm: SHA-256 for RS256 and ES256, SHA-512 for Ed25519.
    pub fn half_hash(&self, value: &str) -> String {
        let digest = match self.alg {
            Algorithm::EdDSA => sha2::Sha512::digest(value.as_bytes()).to_vec(),
            _ => Sha256::digest(value.as_bytes()).to_vec(),
        };
        URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2])
    }
}

/// RFC 7638: SHA-256 of the required members in lexical order, no spaces (serde_json's maps are sorted).
fn thumbprint(jwk: &Value) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(jwk.to_string().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifies(key: &SigningKey, token: &str) -> bool {
        let mut validation = jsonwebtoken::Validation::new(key.alg);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        jsonwebtoken::decode::<Value>(token, &key.decoding_key(), &validation).is_ok()
    }

    #[test]
    fn every_algorithm_signs_what_jsonwebtoken_verifies_and_survives_storage() {
        for alg in ALGORITHMS {
            let key = SigningKey::generate(alg).unwrap();
            let token = key.sign("JWT", &json!({"sub": "a"}));
            assert!(verifies(&key, &token), "{alg:?}");
            let header = jsonwebtoken::decode_header(&token).unwrap();
            assert_eq!((header.alg, header.kid.as_deref()), (alg, Some(key.kid.as_str())));
            let again = SigningKey::from_private(alg, &key.private_bytes()).unwrap();
            assert_eq!(again.kid, key.kid);
            assert!(verifies(&again, &token));
            assert_eq!(key.public_jwk()["use"], "sig");
            assert!(key.public_jwk().get("d").is_none(), "no private member is published");
        }
    }

    #[test]
    fn a_signature_of_another_key_or_a_tampered_token_fails() {
        let a = SigningKey::generate(Algorithm::RS256).unwrap();
        let b = SigningKey::generate(Algorithm::RS256).unwrap();
        assert!(!verifies(&a, &b.sign("JWT", &json!({"sub": "a"}))));
        let token = a.sign("JWT", &json!({"sub": "a"}));
        let forged =
            token.replacen(&URL_SAFE_NO_PAD.encode(r#"{"sub":"a"}"#), &URL_SAFE_NO_PAD.encode(r#"{"sub":"b"}"#), 1);
        assert_ne!(forged, token);
        assert!(!verifies(&a, &forged));
    }

    #[test]
    fn rsa_keys_are_2048_bits() {
        let key = SigningKey::generate(Algorithm::RS256).unwrap();
        let n = URL_SAFE_NO_PAD.decode(key.public_jwk()["n"].as_str().unwrap()).unwrap();
        assert_eq!(n.len(), 256);
        assert_eq!(key.public_jwk()["e"], "AQAB");
    }

    #[test]
    fn rfc7638_thumbprint_vector() {
        // RFC 7638 §3.1's example RSA key.
        let jwk = json!({"e": "AQAB", "kty": "RSA", "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"});
        assert_eq!(thumbprint(&jwk), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }

    #[test]
    fn half_hash_uses_the_algorithms_hash() {
        // OpenID Connect Core's at_hash for RS256 is the left 128 bits of SHA-256.
        let rs = SigningKey::generate(Algorithm::RS256).unwrap();
        let expected = URL_SAFE_NO_PAD.encode(&Sha256::digest(b"token")[..16]);
        assert_eq!(rs.half_hash("token"), expected);
        let ed = SigningKey::generate(Algorithm::EdDSA).unwrap();
        assert_eq!(URL_SAFE_NO_PAD.decode(ed.half_hash("token")).unwrap().len(), 32);
    }
}
