//! Access-token attacks: tampering, `alg: none`, key confusion, foreign keys, expiry, wrong claims and kinds.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, expect_error, expect_json, token},
    on_both,
};

/// The HS256 secret of the test configuration, so that tests can sign valid-but-wrong tokens.
const HS_SECRET: [u8; 32] = *b"0123456789abcdefghijklmnopqrstuv";

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

fn split(token: &str) -> (Value, Value, String) {
    let parts: Vec<&str> = token.split('.').collect();
    let decode = |p: &str| serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap();
    (decode(parts[0]), decode(parts[1]), parts[2].to_string())
}

async fn assert_rejected(app: &TestApp, bearer: &str) {
    let response = app.me(bearer).await;
    let challenge = response.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_string());
    expect_error(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
    assert_eq!(challenge.as_deref(), Some(r#"Bearer realm="latchkey", error="invalid_token""#));
}

async fn tampered_tokens_are_refused(app: &TestApp) {
    let (_, pair) = app.new_user().await;
    let at = token(&pair, "access_token");
    let (header, mut claims, sig) = split(&at);
    claims["role"] = json!("admin");
    assert_rejected(app, &format!("{}.{}.{sig}", b64(&header), b64(&claims))).await;
    let mut raw = URL_SAFE_NO_PAD.decode(&sig).unwrap();
    raw[10] ^= 0x01;
    let parts: Vec<&str> = at.split('.').collect();
    assert_rejected(app, &format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(raw))).await;
    assert_rejected(app, &format!("{}.{}.", parts[0], parts[1])).await;
    assert_rejected(app, "garbage").await;
    assert_rejected(app, &"x".repeat(10_000)).await;
    expect_json(app.me(&at).await, StatusCode::OK).await;
}
on_both!(tampered_tokens_are_refused);

async fn alg_none_and_algorithm_switches_are_refused(app: &TestApp) {
    let (_, pair) = app.new_user().await;
    let (header, claims, _) = split(&token(&pair, "access_token"));
    for alg in ["none", "None", "NONE", "nOnE"] {
        let h = json!({"alg": alg, "typ": "at+jwt", "kid": header["kid"]});
        assert_rejected(app, &format!("{}.{}.", b64(&h), b64(&claims))).await;
    }
    for alg in ["ES256", "RS256", "HS256"] {
        let h = json!({"alg": alg, "typ": "at+jwt", "kid": header["kid"]});
        assert_rejected(app, &format!("{}.{}.{}", b64(&h), b64(&claims), URL_SAFE_NO_PAD.encode([7u8; 64]))).await;
    }
}
on_both!(alg_none_and_algorithm_switches_are_refused);

/// SECURITY.md 42: the published Ed25519 key, in every form, used as an HMAC secret.
async fn public_key_as_hmac_secret_is_refused(app: &TestApp) {
    let (_, pair) = app.new_user().await;
    let (header, mut claims, _) = split(&token(&pair, "access_token"));
    claims["role"] = json!("admin");
    let jwks =
        expect_json(app.client.get(app.url("/.well-known/jwks.json")).send().await.unwrap(), StatusCode::OK).await;
    let jwk = jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == header["kid"]).unwrap();
    let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
    let mut der = hex::decode("302a300506032b6570032100").unwrap();
    der.extend(&x);
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(&der)
    );
    for secret in [x.clone(), jwk.to_string().into_bytes(), pem.into_bytes(), der] {
        let mut h = Header::new(Algorithm::HS256);
        h.typ = Some("at+jwt".into());
        h.kid = header["kid"].as_str().map(str::to_string);
        let forged = jsonwebtoken::encode(&h, &claims, &EncodingKey::from_secret(&secret)).unwrap();
        assert_rejected(app, &forged).await;
    }
}
on_both!(public_key_as_hmac_secret_is_refused);

/// SECURITY.md 43: keys named by the token itself are never trusted; `kid` only picks among our keys.
async fn keys_from_the_token_header_are_ignored(app: &TestApp) {
    let (_, pair) = app.new_user().await;
    let (header, claims, _) = split(&token(&pair, "access_token"));
    let attacker = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
    let x = URL_SAFE_NO_PAD.encode(attacker.verifying_key().as_bytes());
    let sign = |extra: Value| {
        let mut h = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": header["kid"]});
        h.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let signing_input = format!("{}.{}", b64(&h), b64(&claims));
        let sig = ed25519_dalek::Signer::sign(&attacker, signing_input.as_bytes());
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
    };
    assert_rejected(app, &sign(json!({"jwk": {"kty": "OKP", "crv": "Ed25519", "x": x}}))).await;
    assert_rejected(app, &sign(json!({"jku": format!("{}/.well-known/jwks.json", app.base)}))).await;
    assert_rejected(app, &sign(json!({}))).await;
    for kid in ["../../../../dev/null", "' OR '1'='1", &"k".repeat(10_000)] {
        assert_rejected(app, &sign(json!({"kid": kid}))).await;
    }
}
on_both!(keys_from_the_token_header_are_ignored);

fn hs256(c: &mut latchkey::config::Config) {
    c.jwt_signing = latchkey::config::JwtSigning::Hs256(zeroize::Zeroizing::new(HS_SECRET.to_vec()));
}

fn sign_hs(claims: &Value, typ: Option<&str>) -> String {
    let mut h = Header::new(Algorithm::HS256);
    h.typ = typ.map(str::to_string);
    h.kid = Some("hs256".into());
    jsonwebtoken::encode(&h, claims, &EncodingKey::from_secret(&HS_SECRET)).unwrap()
}

/// With HS256 configured the test can sign tokens that are valid except for one claim.
async fn wrong_claims_and_types_are_refused(app: &TestApp) {
    let (_, pair) = app.new_user().await;
    let (header, claims, _) = split(&token(&pair, "access_token"));
    assert_eq!(header["alg"], "HS256");
    let jwks = app.client.get(app.url("/.well-known/jwks.json")).send().await.unwrap().json::<Value>().await.unwrap();
    // The OpenID Connect keys are published; the shared secret never is.
    assert!(jwks["keys"].as_array().unwrap().iter().all(|k| k["kty"] != "oct" && k["kid"] != header["kid"]));
    expect_json(app.me(&sign_hs(&claims, Some("at+jwt"))).await, StatusCode::OK).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let with = |key: &str, value: Value| {
        let mut c = claims.clone();
        c[key] = value;
        c
    };
    let without = |key: &str| {
        let mut c = claims.clone();
        c.as_object_mut().unwrap().remove(key);
        c
    };
    for bad in [
        with("exp", json!(now - 30)),
        with("nbf", json!(now + 600)),
        with("aud", json!("other")),
        with("iss", json!("https://evil.example")),
        without("exp"),
        without("aud"),
        without("iss"),
    ] {
        assert_rejected(app, &sign_hs(&bad, Some("at+jwt"))).await;
    }
    assert_rejected(app, &sign_hs(&claims, Some("JWT"))).await;
    assert_rejected(app, &sign_hs(&claims, None)).await;
}
on_both!(wrong_claims_and_types_are_refused, hs256);

async fn expired_access_tokens_are_refused(app: &TestApp) {
    let (_, pair) = app.new_user().await;
    let at = token(&pair, "access_token");
    assert_eq!(pair["expires_in"], 1);
    expect_json(app.me(&at).await, StatusCode::OK).await;
    // One second of lifetime plus the verifier's five seconds of leeway.
    tokio::time::sleep(std::time::Duration::from_millis(7_000)).await;
    assert_rejected(app, &at).await;
}
on_both!(expired_access_tokens_are_refused, |c| c.access_ttl = std::time::Duration::from_secs(1));

/// Refresh tokens are not access tokens and the reverse; tokens in the query string are ignored.
async fn token_kinds_cannot_be_swapped(app: &TestApp) {
    let (_, pair) = app.new_user().await;
    assert_rejected(app, &token(&pair, "refresh_token")).await;
    expect_error(app.refresh(&token(&pair, "access_token")).await, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let at = token(&pair, "access_token");
    let response = app.client.get(app.url(&format!("/auth/me?access_token={at}"))).send().await.unwrap();
    let challenge = response.headers()["www-authenticate"].to_str().unwrap().to_string();
    expect_error(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
    assert_eq!(challenge, r#"Bearer realm="latchkey""#, "no error code when no token was sent");
    let basic = app.client.get(app.url("/auth/me")).basic_auth("u", Some("p")).send().await.unwrap();
    expect_error(basic, StatusCode::UNAUTHORIZED, "invalid_token").await;
}
on_both!(token_kinds_cannot_be_swapped);

async fn access_token_claims_match_the_contract(app: &TestApp) {
    let (_, pair) = app.new_user().await;
    let (header, claims, _) = split(&token(&pair, "access_token"));
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["typ"], "at+jwt");
    let mut keys: Vec<&str> = claims.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["amr", "aud", "exp", "iat", "iss", "jti", "mfa", "role", "sid", "sub"]);
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 900);
    assert_eq!(claims["iss"], "http://localhost:8080");
    assert_eq!(claims["amr"], json!(["pwd"]));
    assert_eq!(claims["mfa"], false);
    assert_eq!(claims["sub"], pair["user"]["id"]);
    let jwks =
        expect_json(app.client.get(app.url("/.well-known/jwks.json")).send().await.unwrap(), StatusCode::OK).await;
    let jwk = jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == header["kid"]).expect("published");
    assert_eq!((&jwk["kty"], &jwk["alg"], &jwk["use"]), (&json!("OKP"), &json!("EdDSA"), &json!("sig")));
    for key in jwks["keys"].as_array().unwrap() {
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(key.get(private).is_none(), "no private part");
        }
    }
}
on_both!(access_token_claims_match_the_contract);
