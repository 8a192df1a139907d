//! Passkeys over HTTP, with a software authenticator written here (ES256, attestation "none", CTAP2's
//! authenticator data built byte by byte), so every flag and the counter can be set as a device would.

use aws_lc_rs::{
    digest::{SHA256, digest},
    rand::SystemRandom,
    signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use ciborium::Value as Cbor;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    helpers::{PASSWORD, TestApp, expect_error, expect_json, token},
    on_both,
};

const UP: u8 = 0x01;
const UV: u8 = 0x04;
const BE: u8 = 0x08;
const BS: u8 = 0x10;
const AT: u8 = 0x40;

/// One passkey on a software authenticator.
pub(crate) struct SoftPasskey {
    key: EcdsaKeyPair,
    pub credential_id: Vec<u8>,
    user_handle: Vec<u8>,
    rp_id: String,
    origin: String,
    pub counter: u32,
    /// Whether the authenticator verifies the user (a PIN, a fingerprint).
    pub verifies_user: bool,
    /// Backup eligible / backed up, as a synced passkey reports them.
    pub backup: u8,
}

fn origin_of(app: &TestApp) -> String {
    app.services.config.issuer.trim_end_matches('/').to_string()
}

fn client_data(kind: &str, options: &Value, origin: &str) -> Vec<u8> {
    let challenge = options["publicKey"]["challenge"].as_str().expect("challenge");
    serde_json::to_vec(&json!({"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": false}))
        .expect("client data")
}

impl SoftPasskey {
    /// `navigator.credentials.create` for `options`: the passkey and its `toJSON()`.
    pub(crate) fn create(options: &Value, origin: &str, verifies_user: bool, counter: u32) -> (Self, Value) {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &SystemRandom::new()).expect("key");
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).expect("key");
        let public = options["publicKey"].clone();
        let user_handle = B64.decode(public["user"]["id"].as_str().expect("user id")).expect("b64 user id");
        let passkey = Self {
            key,
            credential_id: uuid::Uuid::new_v4().as_bytes().to_vec(),
            user_handle,
            rp_id: public["rp"]["id"].as_str().expect("rp id").to_string(),
            origin: origin.to_string(),
            counter,
            verifies_user,
            backup: 0,
        };
        let client_data = client_data("webauthn.create", options, origin);
        let point = passkey.key.public_key().as_ref(); // 0x04 | x | y
        let cose = Cbor::Map(vec![
            (Cbor::Integer(1.into()), Cbor::Integer(2.into())),
            (Cbor::Integer(3.into()), Cbor::Integer((-7).into())),
            (Cbor::Integer((-1).into()), Cbor::Integer(1.into())),
            (Cbor::Integer((-2).into()), Cbor::Bytes(point[1..33].to_vec())),
            (Cbor::Integer((-3).into()), Cbor::Bytes(point[33..65].to_vec())),
        ]);
        let mut auth_data = passkey.auth_data_head(AT);
        auth_data.extend_from_slice(&[0u8; 16]); // AAGUID
        auth_data.extend_from_slice(&(passkey.credential_id.len() as u16).to_be_bytes());
        auth_data.extend_from_slice(&passkey.credential_id);
        ciborium::into_writer(&cose, &mut auth_data).expect("cose");
        let attestation = Cbor::Map(vec![
            (Cbor::Text("fmt".into()), Cbor::Text("none".into())),
            (Cbor::Text("attStmt".into()), Cbor::Map(vec![])),
            (Cbor::Text("authData".into()), Cbor::Bytes(auth_data)),
        ]);
        let mut attestation_object = Vec::new();
        ciborium::into_writer(&attestation, &mut attestation_object).expect("attestation");
        let id = B64.encode(&passkey.credential_id);
        let json = json!({
            "id": id, "rawId": id, "type": "public-key",
            "response": {
                "clientDataJSON": B64.encode(&client_data),
                "attestationObject": B64.encode(&attestation_object),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        });
        (passkey, json)
    }

    fn auth_data_head(&self, extra: u8) -> Vec<u8> {
        let mut data = digest(&SHA256, self.rp_id.as_bytes()).as_ref().to_vec();
        data.push(UP | if self.verifies_user { UV } else { 0 } | self.backup | extra);
        data.extend_from_slice(&self.counter.to_be_bytes());
        data
    }

    /// `navigator.credentials.get` for `options`: the assertion's `toJSON()`. The counter grows first
    /// when the authenticator keeps one.
    pub(crate) fn get(&mut self, options: &Value) -> Value {
        if self.counter > 0 {
            self.counter += 1;
        }
        self.sign(options, &self.user_handle.clone())
    }

    fn sign(&self, options: &Value, user_handle: &[u8]) -> Value {
        let client_data = client_data("webauthn.get", options, &self.origin);
        let auth_data = self.auth_data_head(0);
        let mut signed = auth_data.clone();
        signed.extend_from_slice(digest(&SHA256, &client_data).as_ref());
        let signature = self.key.sign(&SystemRandom::new(), &signed).expect("signature");
        let id = B64.encode(&self.credential_id);
        json!({
            "id": id, "rawId": id, "type": "public-key",
            "response": {
                "clientDataJSON": B64.encode(&client_data),
                "authenticatorData": B64.encode(&auth_data),
                "signature": B64.encode(signature.as_ref()),
                "userHandle": B64.encode(user_handle),
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        })
    }
}

/// Registers a passkey for the bearer of `access`; returns it and the answer's body.
pub(crate) async fn add_passkey(app: &TestApp, access: &str, verifies_user: bool) -> (SoftPasskey, Value) {
    let start = app.client.post(app.url("/auth/passkeys/register/start")).bearer_auth(access).send().await.unwrap();
    let start = expect_json(start, StatusCode::OK).await;
    let (passkey, credential) = SoftPasskey::create(&start["options"], &origin_of(app), verifies_user, 1);
    let body = json!({"challenge_id": start["challenge_id"], "name": "Test key", "credential": credential});
    let finish = app
        .client
        .post(app.url("/auth/passkeys/register/finish"))
        .bearer_auth(access)
        .json(&body)
        .send()
        .await
        .unwrap();
    (passkey, expect_json(finish, StatusCode::CREATED).await)
}

async fn login_start(app: &TestApp) -> Value {
    expect_json(app.post_json("/auth/passkeys/login/start", &json!({})).await, StatusCode::OK).await
}

async fn login_finish(app: &TestApp, start: &Value, credential: Value) -> reqwest::Response {
    app.post_json(
        "/auth/passkeys/login/finish",
        &json!({"challenge_id": start["challenge_id"], "credential": credential}),
    )
    .await
}

fn claims_of(access: &str) -> Value {
    let payload = access.split('.').nth(1).expect("payload");
    serde_json::from_slice(&B64.decode(payload).expect("b64")).expect("claims")
}

async fn sign_in(app: &TestApp, passkey: &mut SoftPasskey) -> Value {
    let start = login_start(app).await;
    let credential = passkey.get(&start["options"]);
    expect_json(login_finish(app, &start, credential).await, StatusCode::OK).await
}

async fn register_sign_in_without_a_username(app: &TestApp) {
    let (email, pair) = app.new_user().await;
    let (mut passkey, added) = add_passkey(app, &token(&pair, "access_token"), true).await;
    assert_eq!(added["name"], "Test key");
    assert_eq!(added["backup_codes"].as_array().map(Vec::len), Some(10), "{added}");
    let options = app.post_json("/auth/passkeys/login/start", &json!({})).await;
    let options = expect_json(options, StatusCode::OK).await;
    assert_eq!(options["options"]["publicKey"]["userVerification"], "preferred");
    assert!(options["options"]["publicKey"].get("allowCredentials").is_none_or(|a| a == &json!([])));
    // Several sign-ins: the counter grows each time and the server keeps up.
    for _ in 0..3 {
        let tokens = sign_in(app, &mut passkey).await;
        let claims = claims_of(&token(&tokens, "access_token"));
        assert_eq!(claims["mfa"], true);
        assert_eq!(claims["amr"], json!(["pop", "mfa"]));
    }
    // The session that added it goes on (other sessions end, as when TOTP is turned on).
    expect_json(app.me(&token(&pair, "access_token")).await, StatusCode::OK).await;
    let tokens = sign_in(app, &mut passkey).await;
    let me = expect_json(app.me(&token(&tokens, "access_token")).await, StatusCode::OK).await;
    assert_eq!(me["email"], email.as_str());
    assert_eq!(me["mfa_enabled"], true);
    let list = app.get_bearer("/auth/passkeys", &token(&tokens, "access_token")).await;
    let list = expect_json(list, StatusCode::OK).await;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert!(list[0]["last_used_at"].is_string());
    let audit = app.get_bearer("/auth/audit", &token(&tokens, "access_token")).await;
    let audit = expect_json(audit, StatusCode::OK).await.to_string();
    assert!(audit.contains("passkey_added") && audit.contains("passkey_login"), "{audit}");
}
on_both!(register_sign_in_without_a_username);

async fn challenges_are_single_use_and_counters_only_grow(app: &TestApp) {
    let (_, pair) = app.new_user().await;
    let (mut passkey, _) = add_passkey(app, &token(&pair, "access_token"), true).await;
    let start = login_start(app).await;
    let credential = passkey.get(&start["options"]);
    expect_json(login_finish(app, &start, credential.clone()).await, StatusCode::OK).await;
    // The same answer again: its challenge is spent.
    expect_error(login_finish(app, &start, credential).await, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
        .await;
    // A fresh challenge signed with a counter that went back (a cloned key): refused.
    passkey.counter -= 2;
    let start = login_start(app).await;
    let credential = passkey.sign(&start["options"], &passkey.user_handle.clone());
    expect_error(login_finish(app, &start, credential).await, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    // A wrong signature: refused too, and the challenge is gone as well.
    let start = login_start(app).await;
    let mut credential = passkey.get(&start["options"]);
    credential["response"]["signature"] = json!(B64.encode([0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01]));
    expect_error(login_finish(app, &start, credential.clone()).await, StatusCode::UNAUTHORIZED, "invalid_credentials")
        .await;
    expect_error(login_finish(app, &start, credential).await, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
        .await;
}
on_both!(challenges_are_single_use_and_counters_only_grow);

async fn synced_passkeys_keep_working_and_zero_counters_are_accepted(app: &TestApp) {
    let (_, pair) = app.new_user().await;
    let start = app.client.post(app.url("/auth/passkeys/register/start")).bearer_auth(token(&pair, "access_token"));
    let start = expect_json(start.send().await.unwrap(), StatusCode::OK).await;
    // Counter always 0, as synced passkeys report.
    let (mut passkey, credential) = SoftPasskey::create(&start["options"], &origin_of(app), true, 0);
    let body = json!({"challenge_id": start["challenge_id"], "name": "", "credential": credential});
    let finish = app.client.post(app.url("/auth/passkeys/register/finish")).bearer_auth(token(&pair, "access_token"));
    let added = expect_json(finish.json(&body).send().await.unwrap(), StatusCode::CREATED).await;
    assert_eq!(added["name"], "Passkey");
    sign_in(app, &mut passkey).await;
    sign_in(app, &mut passkey).await;
    // After syncing it says "backup eligible" and "backed up" at once: still the same passkey.
    passkey.backup = BE | BS;
    sign_in(app, &mut passkey).await;
    passkey.backup = BE;
    sign_in(app, &mut passkey).await;
    // Eligibility turning off again is refused (the key would have moved to hardware that cannot sync).
    passkey.backup = 0;
    let start = login_start(app).await;
    let credential = passkey.get(&start["options"]);
    expect_error(login_finish(app, &start, credential).await, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
}
on_both!(synced_passkeys_keep_working_and_zero_counters_are_accepted);

async fn without_user_verification_a_passkey_is_one_factor(app: &TestApp) {
    let (_, pair) = app.new_user().await;
    let (mut passkey, _) = add_passkey(app, &token(&pair, "access_token"), false).await;
    let tokens = sign_in(app, &mut passkey).await;
    let access = token(&tokens, "access_token");
    let claims = claims_of(&access);
    assert_eq!(claims["mfa"], false);
    assert_eq!(claims["amr"], json!(["pop"]));
    // One factor cannot change the account's second factors.
    let start = app.client.post(app.url("/auth/passkeys/register/start")).bearer_auth(&access).send().await.unwrap();
    expect_error(start, StatusCode::FORBIDDEN, "mfa_required").await;
}
on_both!(without_user_verification_a_passkey_is_one_factor);

async fn a_passkey_is_the_second_factor_after_a_password(app: &TestApp) {
    let (email, pair) = app.new_user().await;
    let (mut passkey, _) = add_passkey(app, &token(&pair, "access_token"), true).await;
    let pending = expect_json(app.login(&email, PASSWORD).await, StatusCode::OK).await;
    assert_eq!(pending["mfa_required"], true);
    assert_eq!(pending["methods"], json!(["passkey", "backup_code"]));
    let mfa_token = pending["mfa_token"].clone();
    let start = app.post_json("/auth/mfa/passkey/start", &json!({"mfa_token": mfa_token})).await;
    let start = expect_json(start, StatusCode::OK).await;
    let listed = &start["options"]["publicKey"]["allowCredentials"];
    assert_eq!(listed[0]["id"], B64.encode(&passkey.credential_id), "{listed}");
    // A challenge of one pending sign-in does not serve another.
    let other = expect_json(app.login(&email, PASSWORD).await, StatusCode::OK).await;
    let credential = passkey.get(&start["options"]);
    let wrong =
        json!({"mfa_token": other["mfa_token"], "challenge_id": start["challenge_id"], "credential": credential});
    expect_error(
        app.post_json("/auth/mfa/challenge", &wrong).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let start = app.post_json("/auth/mfa/passkey/start", &json!({"mfa_token": mfa_token})).await;
    let start = expect_json(start, StatusCode::OK).await;
    let credential = passkey.get(&start["options"]);
    let body = json!({"mfa_token": mfa_token, "challenge_id": start["challenge_id"], "credential": credential});
    let tokens = expect_json(app.post_json("/auth/mfa/challenge", &body).await, StatusCode::OK).await;
    let claims = claims_of(&token(&tokens, "access_token"));
    assert_eq!(claims["amr"], json!(["pwd", "pop"]));
    assert_eq!(claims["mfa"], true);
}
on_both!(a_passkey_is_the_second_factor_after_a_password);

async fn foreign_and_unknown_passkeys_are_refused(app: &TestApp) {
    let (_, ana) = app.new_user().await;
    let (_, bob) = app.new_user().await;
    let (mut anas, _) = add_passkey(app, &token(&ana, "access_token"), true).await;
    let (bobs, _) = add_passkey(app, &token(&bob, "access_token"), true).await;
    // Ana's passkey presented under Bob's user handle.
    let start = login_start(app).await;
    anas.counter += 1;
    let credential = anas.sign(&start["options"], &bobs.user_handle);
    expect_error(login_finish(app, &start, credential).await, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    // A passkey the server never saw.
    let start = login_start(app).await;
    let elsewhere = json!({"publicKey": {
        "challenge": "AAAA",
        "rp": {"id": start["options"]["publicKey"]["rpId"]},
        "user": {"id": B64.encode(uuid::Uuid::new_v4().as_bytes())},
    }});
    let (mut stranger, _) = SoftPasskey::create(&elsewhere, &origin_of(app), true, 1);
    let credential = stranger.get(&start["options"]);
    expect_error(login_finish(app, &start, credential).await, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let query = latchkey::store::audit::AuditQuery::latest(None, Some("passkey_login_failed"), 10);
    let events = app.services.audit_events(&query).await.expect("audit");
    assert_eq!(events.len(), 2);
    assert!(events.iter().any(|e| e.user_id.is_some()), "the foreign-handle attempt is audited on the key's owner");
}
on_both!(foreign_and_unknown_passkeys_are_refused);

/// A stored passkey the server cannot read is the server's fault: an error, not a refused passkey that
/// would count towards its owner's lock.
async fn an_unreadable_stored_passkey_is_an_error_not_a_refusal(app: &TestApp) {
    let (_, pair) = app.new_user().await;
    let (mut passkey, added) = add_passkey(app, &token(&pair, "access_token"), true).await;
    sqlx::query("UPDATE passkeys SET credential = '{' WHERE id = $1")
        .bind(added["id"].as_str().unwrap())
        .execute(app.services.db.pool())
        .await
        .unwrap();
    let refusals = latchkey::store::audit::AuditQuery::latest(None, Some("passkey_login_failed"), 100);
    let refused_before = app.services.audit_events(&refusals).await.unwrap().len();
    let start = login_start(app).await;
    let credential = passkey.get(&start["options"]);
    let answer = login_finish(app, &start, credential).await;
    expect_error(answer, StatusCode::INTERNAL_SERVER_ERROR, "internal_error").await;
    assert_eq!(app.services.audit_events(&refusals).await.unwrap().len(), refused_before, "not audited as refused");
}
on_both!(an_unreadable_stored_passkey_is_an_error_not_a_refusal);

async fn removing_the_last_passkey_needs_the_password_and_turns_mfa_off(app: &TestApp) {
    let (_, pair) = app.new_user().await;
    let (mut passkey, added) = add_passkey(app, &token(&pair, "access_token"), true).await;
    let id = added["id"].as_str().expect("id").to_string();
    let tokens = sign_in(app, &mut passkey).await;
    let access = token(&tokens, "access_token");
    let path = app.url(&format!("/auth/passkeys/{id}"));
    let renamed = app.client.patch(&path).bearer_auth(&access).json(&json!({"name": "  Phone "})).send().await.unwrap();
    assert_eq!(expect_json(renamed, StatusCode::OK).await["name"], "Phone");
    let too_long = app.client.patch(&path).bearer_auth(&access).json(&json!({"name": "x".repeat(65)})).send().await;
    expect_error(too_long.unwrap(), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let bare = app.client.delete(&path).bearer_auth(&access).send().await.unwrap();
    expect_error(bare, StatusCode::BAD_REQUEST, "wrong_password").await;
    let wrong = app.client.delete(&path).bearer_auth(&access).json(&json!({"password": "nope"})).send().await;
    expect_error(wrong.unwrap(), StatusCode::BAD_REQUEST, "wrong_password").await;
    let done = app.client.delete(&path).bearer_auth(&access).json(&json!({"password": PASSWORD})).send().await;
    assert_eq!(done.unwrap().status(), StatusCode::NO_CONTENT);
    let me = expect_json(app.me(&access).await, StatusCode::OK).await;
    assert_eq!(me["mfa_enabled"], false);
    // The removed passkey signs no one in.
    let start = login_start(app).await;
    let credential = passkey.get(&start["options"]);
    expect_error(login_finish(app, &start, credential).await, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let gone = app.client.delete(&path).bearer_auth(&access).json(&json!({"password": PASSWORD})).send().await;
    expect_error(gone.unwrap(), StatusCode::NOT_FOUND, "not_found").await;
}
on_both!(removing_the_last_passkey_needs_the_password_and_turns_mfa_off);

fn browser() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// The pages' ceremonies as `static/passkeys.js` runs them: options by a CSRF-checked post, the answer in a form.
async fn ceremony(app: &TestApp, browser: &reqwest::Client, options_path: &str, csrf: &str) -> Value {
    let refused = browser.post(app.url(options_path)).form(&[("csrf", "wrong")]).send().await.unwrap();
    assert_ne!(refused.status(), StatusCode::OK, "no options without the page's CSRF token");
    let options = browser.post(app.url(options_path)).form(&[("csrf", csrf)]).send().await.unwrap();
    expect_json(options, StatusCode::OK).await
}

/// Adds a passkey from a signed-in browser's account page, as the page's script does.
async fn add_passkey_in_browser(
    app: &TestApp,
    browser: &reqwest::Client,
    verifies_user: bool,
) -> (SoftPasskey, String) {
    let account = browser.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    assert!(account.contains(r#"data-passkey="register""#));
    let csrf = crate::helpers::csrf_of(&account);
    let start = ceremony(app, browser, "/account/passkeys/options", &csrf).await;
    let (passkey, credential) = SoftPasskey::create(&start["options"], &origin_of(app), verifies_user, 1);
    let form = [
        ("csrf", csrf),
        ("challenge_id", start["challenge_id"].as_str().unwrap().to_string()),
        ("credential", credential.to_string()),
        ("name", "Laptop".into()),
    ];
    let added = browser.post(app.url("/account/passkeys")).form(&form).send().await.unwrap();
    assert_eq!(added.status(), StatusCode::OK);
    (passkey, added.text().await.unwrap())
}

/// Answers a page's passkey ceremony: options from `options_path`, the answer posted to `answer_path`.
async fn answer_on_page(
    app: &TestApp,
    browser: &reqwest::Client,
    page: &str,
    (options_path, answer_path): (&str, &str),
    passkey: &mut SoftPasskey,
) -> (Value, reqwest::Response) {
    let html = browser.get(app.url(page)).send().await.unwrap().text().await.unwrap();
    let csrf = crate::helpers::csrf_of(&html);
    let start = ceremony(app, browser, options_path, &csrf).await;
    let form = answer_form(csrf, &start, passkey);
    (start["options"].clone(), browser.post(app.url(answer_path)).form(&form).send().await.unwrap())
}

/// The form the page's script posts: `passkey`'s answer to the ceremony `start`.
fn answer_form(csrf: String, start: &Value, passkey: &mut SoftPasskey) -> [(&'static str, String); 3] {
    let answer = passkey.get(&start["options"]);
    [
        ("csrf", csrf),
        ("challenge_id", start["challenge_id"].as_str().unwrap().to_string()),
        ("credential", answer.to_string()),
    ]
}

const SIGN_IN: (&str, &str) = ("/login/passkey/options", "/login/passkey");
const SECOND_FACTOR: (&str, &str) = ("/login/mfa/passkey/options", "/login/mfa");

/// A new browser signed in with `passkey` alone.
async fn passkey_browser(app: &TestApp, passkey: &mut SoftPasskey) -> reqwest::Client {
    let anonymous = browser();
    let login = anonymous.get(app.url("/login")).send().await.unwrap().text().await.unwrap();
    assert!(login.contains(r#"data-passkey="login""#) && login.contains(r#"autocomplete="username webauthn""#));
    let (_, done) = answer_on_page(app, &anonymous, "/login", SIGN_IN, passkey).await;
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(done.headers()["location"], "/account");
    anonymous
}

async fn the_pages_run_the_ceremonies(app: &TestApp) {
    let email = format!("pages-{}@example.com", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let (signed_in, _) = app.signed_in_browser(&email).await;
    let (mut passkey, added) = add_passkey_in_browser(app, &signed_in, true).await;
    assert_eq!(added.matches("<li><code>").count(), 10, "the first factor's backup codes");
    let account = signed_in.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    assert!(account.contains("Laptop") && account.contains("Remove Laptop"), "listed with its remove form");

    // A new browser signs in with the passkey alone.
    let anonymous = passkey_browser(app, &mut passkey).await;
    let account = anonymous.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    assert!(account.contains(&email));

    // With the password, the passkey is offered as the second factor and finishes the sign-in.
    let second = browser();
    let login = second.get(app.url("/login")).send().await.unwrap().text().await.unwrap();
    let form = [("csrf", crate::helpers::csrf_of(&login)), ("username", email.clone()), ("password", PASSWORD.into())];
    let owed = second.post(app.url("/login")).form(&form).send().await.unwrap();
    assert!(owed.headers()["location"].to_str().unwrap().starts_with("/login/mfa"));
    let mfa = second.get(app.url("/login/mfa")).send().await.unwrap().text().await.unwrap();
    assert!(mfa.contains(r#"data-passkey="mfa""#));
    let (_, done) = answer_on_page(app, &second, "/login/mfa", SECOND_FACTOR, &mut passkey).await;
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    let account = second.get(app.url("/account")).send().await.unwrap();
    assert_eq!(account.status(), StatusCode::OK);
}
on_both!(the_pages_run_the_ceremonies);

/// Whether the browser's session gave two factors: `/login/mfa` then sends it straight on.
async fn gave_two_factors(app: &TestApp, browser: &reqwest::Client) -> bool {
    let page = browser.get(app.url("/login/mfa")).send().await.unwrap();
    match page.status() {
        StatusCode::SEE_OTHER => true,
        StatusCode::OK => false,
        other => panic!("/login/mfa answered {other}"),
    }
}

/// A session signed in with one factor gives a passkey when an application wants two (`/login/mfa`):
/// after a password any of the account's passkeys; after a passkey only one that verifies the person; and
/// a step-up ceremony serves only the session it was opened for.
async fn a_passkey_steps_a_session_up(app: &TestApp) {
    let email = format!("step-up-{}@example.com", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let (password_only, _) = app.signed_in_browser(&email).await;
    let (mut passkey, _) = add_passkey_in_browser(app, &password_only, false).await;
    // The session that added the passkey has still given the password alone.
    let page = password_only.get(app.url("/login/mfa")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("asks for a second factor") && page.contains(r#"data-passkey="mfa""#), "{page}");
    let (options, done) = answer_on_page(app, &password_only, "/login/mfa", SECOND_FACTOR, &mut passkey).await;
    assert_eq!(options["publicKey"]["userVerification"], "preferred", "a password and a passkey are two factors");
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert!(gave_two_factors(app, &password_only).await);

    // Signed in with the passkey, which verified nobody: one factor, and the same passkey is not a second.
    let passkey_only = passkey_browser(app, &mut passkey).await;
    assert!(!gave_two_factors(app, &passkey_only).await);
    let (options, refused) = answer_on_page(app, &passkey_only, "/login/mfa", SECOND_FACTOR, &mut passkey).await;
    assert_eq!(options["publicKey"]["userVerification"], "required");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(refused.text().await.unwrap().contains("This passkey was not accepted"));
    assert!(!gave_two_factors(app, &passkey_only).await);

    // Another session's step-up ceremony is no use here, even answered by a verifying passkey.
    let other = passkey_browser(app, &mut passkey).await;
    passkey.verifies_user = true;
    let other_page = other.get(app.url("/login/mfa")).send().await.unwrap().text().await.unwrap();
    let start = ceremony(app, &other, SECOND_FACTOR.0, &crate::helpers::csrf_of(&other_page)).await;
    let page = passkey_only.get(app.url("/login/mfa")).send().await.unwrap().text().await.unwrap();
    let form = answer_form(crate::helpers::csrf_of(&page), &start, &mut passkey);
    let misplaced = passkey_only.post(app.url("/login/mfa")).form(&form).send().await.unwrap();
    assert_eq!(misplaced.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(!gave_two_factors(app, &passkey_only).await);

    // Nor is a sign-in's ceremony, nor another account's passkey.
    let page = passkey_only.get(app.url("/login/mfa")).send().await.unwrap().text().await.unwrap();
    let csrf = crate::helpers::csrf_of(&page);
    let sign_in = ceremony(app, &passkey_only, SIGN_IN.0, &csrf).await;
    let form = answer_form(csrf, &sign_in, &mut passkey);
    let misplaced = passkey_only.post(app.url("/login/mfa")).form(&form).send().await.unwrap();
    assert_eq!(misplaced.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let (_, stranger) = app.new_user().await;
    let (mut foreign, _) = add_passkey(app, &token(&stranger, "access_token"), true).await;
    let (_, refused) = answer_on_page(app, &passkey_only, "/login/mfa", SECOND_FACTOR, &mut foreign).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(!gave_two_factors(app, &passkey_only).await);

    // A passkey that verifies the person is a second factor on its own.
    let (_, done) = answer_on_page(app, &passkey_only, "/login/mfa", SECOND_FACTOR, &mut passkey).await;
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert!(gave_two_factors(app, &passkey_only).await);
    let user = app.services.find_user(&email).await.unwrap().profile.id;
    let query = latchkey::store::audit::AuditQuery::latest(Some(user), Some("mfa_step_up"), 1);
    let events = app.services.audit_events(&query).await.unwrap();
    assert_eq!(events[0].detail["user_verified"], true, "{:?}", events[0].detail);
    let account = passkey_only.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    let csrf = crate::helpers::csrf_of(&account);
    let options = passkey_only.post(app.url(SECOND_FACTOR.0)).form(&[("csrf", csrf)]).send().await.unwrap();
    expect_error(options, StatusCode::CONFLICT, "mfa_already_passed").await;
}
on_both!(a_passkey_steps_a_session_up);

const NEW_BACKUP_CODES: (&str, &str) = ("/account/mfa/regenerate/options", "/account/mfa/regenerate");

/// The backup codes a page shows, each in `<li><code>`.
fn codes_in(html: &str) -> Vec<String> {
    html.split("<li><code>").skip(1).map(|rest| rest.split('<').next().unwrap().to_string()).collect()
}

/// Whether `code` finishes a password sign-in as the second factor, in a new browser.
async fn finishes_a_sign_in(app: &TestApp, email: &str, code: &str) -> bool {
    let browser = browser();
    let login = browser.get(app.url("/login")).send().await.unwrap().text().await.unwrap();
    let form = [("csrf", crate::helpers::csrf_of(&login)), ("username", email.into()), ("password", PASSWORD.into())];
    assert_eq!(browser.post(app.url("/login")).form(&form).send().await.unwrap().status(), StatusCode::SEE_OTHER);
    let mfa = browser.get(app.url("/login/mfa")).send().await.unwrap().text().await.unwrap();
    let form = [("csrf", crate::helpers::csrf_of(&mfa)), ("code", code.into())];
    browser.post(app.url("/login/mfa")).form(&form).send().await.unwrap().status() == StatusCode::SEE_OTHER
}

/// An account whose second factor is a passkey, without TOTP, renews its backup codes on the account page
/// with the passkey; another account's passkey and a ceremony opened for something else are refused.
async fn a_passkey_account_renews_its_backup_codes(app: &TestApp) {
    let email = format!("codes-{}@example.com", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let (first, _) = app.signed_in_browser(&email).await;
    let (mut passkey, added) = add_passkey_in_browser(app, &first, true).await;
    let old_codes = codes_in(&added);
    assert_eq!(old_codes.len(), 10);
    let browser = passkey_browser(app, &mut passkey).await;
    let account = browser.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    assert!(account.contains(r#"data-options="/account/mfa/regenerate/options""#), "{account}");

    let (_, stranger) = app.new_user().await;
    let (mut foreign, _) = add_passkey(app, &token(&stranger, "access_token"), true).await;
    let (_, refused) = answer_on_page(app, &browser, "/account", NEW_BACKUP_CODES, &mut foreign).await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.text().await.unwrap().contains("This passkey was not accepted"));
    let csrf = crate::helpers::csrf_of(&account);
    let sign_in = ceremony(app, &browser, SIGN_IN.0, &csrf).await;
    let form = answer_form(csrf, &sign_in, &mut passkey);
    let misplaced = browser.post(app.url(NEW_BACKUP_CODES.1)).form(&form).send().await.unwrap();
    assert_eq!(misplaced.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let (_, renewed) = answer_on_page(app, &browser, "/account", NEW_BACKUP_CODES, &mut passkey).await;
    assert_eq!(renewed.status(), StatusCode::OK);
    let new_codes = codes_in(&renewed.text().await.unwrap());
    assert_eq!(new_codes.len(), 10);
    assert!(!finishes_a_sign_in(app, &email, &old_codes[0]).await, "the old codes stop working");
    assert!(finishes_a_sign_in(app, &email, &new_codes[0]).await);
}
on_both!(a_passkey_account_renews_its_backup_codes);

async fn an_admin_sees_and_removes_a_users_passkeys(app: &TestApp) {
    use latchkey::{domain::roles::Role, service::accounts::InitialPassword};
    let (email, pair) = app.new_user().await;
    let (mut passkey, added) = add_passkey(app, &token(&pair, "access_token"), true).await;
    let passkey_id = added["id"].as_str().unwrap().to_string();
    let user_id = app.services.find_user(&email).await.unwrap().profile.id;
    let admin_email = format!("admin-{}@example.com", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    app.services.create_user(&admin_email, None, Role::Admin, InitialPassword::Plain(PASSWORD)).await.unwrap();
    let admin = browser();
    let login = admin.get(app.url("/login")).send().await.unwrap().text().await.unwrap();
    let form = [("csrf", crate::helpers::csrf_of(&login)), ("username", admin_email), ("password", PASSWORD.into())];
    assert_eq!(admin.post(app.url("/login")).form(&form).send().await.unwrap().status(), StatusCode::SEE_OTHER);
    let path = app.url(&format!("/admin/users/{user_id}"));
    let html = admin.get(&path).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("Test key") && html.contains("1 passkeys"), "{html}");
    let form = [
        ("csrf", crate::helpers::csrf_of(&html)),
        ("action", "remove_passkey".into()),
        ("from", "user".into()),
        ("id", passkey_id.clone()),
    ];
    let asked = admin.post(&path).form(&form).send().await.unwrap().text().await.unwrap();
    assert!(asked.contains("Yes, remove the passkey") && asked.contains(&passkey_id), "asks first, keeping the id");
    assert_eq!(app.services.passkeys_of(user_id).await.unwrap().len(), 1, "nothing removed before the answer");
    let mut confirmed = form.to_vec();
    confirmed.push(("confirm", "yes".into()));
    let done = admin.post(&path).form(&confirmed).send().await.unwrap();
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert!(app.services.passkeys_of(user_id).await.unwrap().is_empty());
    let html = admin.get(&path).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("passkey_removed"), "in the user's events");
    let start = login_start(app).await;
    let credential = passkey.get(&start["options"]);
    expect_error(login_finish(app, &start, credential).await, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
}
on_both!(an_admin_sees_and_removes_a_users_passkeys, |c| c.admin_require_mfa = false);
