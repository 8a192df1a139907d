//! The issuer's public keys, read from its JWKS: only signing keys of the three algorithms Latchkey uses,
//! each bound to its algorithm, so a token's header can never choose another one (or a symmetric key).

use std::collections::HashMap;

use jsonwebtoken::{
    Algorithm, DecodingKey,
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse},
};

/// The keys of one JWKS, by `kid`.
#[derive(Default)]
pub(crate) struct KeySet {
    keys: HashMap<String, (Algorithm, DecodingKey)>,
}

impl KeySet {
    /// Reads every usable key of `jwks`; keys of other kinds, without a `kid`, or not for signatures are left
    /// out rather than failing the set.
    pub(crate) fn parse(jwks: &serde_json::Value) -> Self {
        let listed = jwks.get("keys").and_then(|k| k.as_array()).map(Vec::as_slice).unwrap_or_default();
        let keys = listed
            .iter()
            .filter_map(|value| serde_json::from_value::<Jwk>(value.clone()).ok())
            .filter_map(|jwk| {
                let kid = jwk.common.key_id.clone()?;
                let alg = algorithm_of(&jwk)?;
                Some((kid, (alg, DecodingKey::from_jwk(&jwk).ok()?)))
            })
            .collect();
        Self { keys }
    }

    pub(crate) fn get(&self, kid: &str) -> Option<&(Algorithm, DecodingKey)> {
        self.keys.get(kid)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.keys.len()
    }
}

/// EdDSA for Ed25519 keys, RS256 for RSA, ES256 for P-256; a key whose `alg` says otherwise, or whose `use`
/// is not `sig`, is not used.
fn algorithm_of(jwk: &Jwk) -> Option<Algorithm> {
    if jwk.common.public_key_use.as_ref().is_some_and(|u| *u != PublicKeyUse::Signature) {
        return None;
    }
    let (alg, named) = match &jwk.algorithm {
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            (Algorithm::EdDSA, KeyAlgorithm::EdDSA)
        }
        AlgorithmParameters::RSA(_) => (Algorithm::RS256, KeyAlgorithm::RS256),
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
            (Algorithm::ES256, KeyAlgorithm::ES256)
        }
        _ => return None,
    };
    match jwk.common.key_algorithm {
        Some(stated) if stated != named => None,
        _ => Some(alg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_signing_keys_of_known_kinds_are_kept() {
        let jwks = serde_json::json!({"keys": [
            {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "kid": "ed", "alg": "EdDSA"},
            {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "kid": "lying", "alg": "RS256"},
            {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "kid": "enc", "use": "enc"},
            {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
            {"kty": "made-up", "kid": "x"}
        ]});
        let set = KeySet::parse(&jwks);
        assert_eq!(set.len(), 1);
        assert_eq!(set.get("ed").map(|(alg, _)| *alg), Some(Algorithm::EdDSA));
    }
}
