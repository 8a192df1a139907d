//! The OpenID Connect flows: the authorization request (sign-in, MFA, consent, code), the token endpoint's
//! grants, and userinfo. A grant belongs to the browser session that approved it: its access tokens name
//! both, and either revoked (logout, logout-all, password change, deactivation, code reuse) refuses them
//! through the in-memory revocation set, on every instance.

use jsonwebtoken::Algorithm;
use serde::Serialize;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::{
    Client, Services,
    audit::{self, Event},
};
use crate::{
    clock,
    domain::{
        oauth::{
            self, AuthorizationRequest, Checked, ClientRules, OauthAccessClaims, OrgDetail, Person, ResponseMode,
            Scopes,
        },
        random,
        roles::Role,
        signing,
        tokens::{ACCESS_TOKEN_TYPE, AccessClaims, ID_TOKEN_TYPE, LEEWAY_SECONDS, OrgClaim},
    },
    error::{Error, Result},
    service::web::{BrowserSession, BrowserState},
    store::{
        oauth::{self as store, ClientRecord, CodeRecord, GrantRecord},
        orgs::OrgRecord,
        sessions,
        users::{self, Profile, UserView},
    },
};

/// How long a client read from the database is used without reading it again.
const CLIENT_CACHE_MS: i64 = 5_000;
/// "Last obtained a token" is for people: kept to the minute, not written per token.
const TOUCH_CLIENT_EVERY_MS: i64 = 60_000;

/// RFC 9700 §4.1.2 and API.md: codes live 60 seconds.
const CODE_TTL_MS: i64 = 60_000;

/// Where an authorization request goes next.
pub enum Authorize {
    /// `client_id` or `redirect_uri` is wrong: shown to the person, never sent anywhere.
    Refuse(&'static str),
    /// The answer goes back to the client (a code, or an error) by `mode`.
    Respond { redirect_uri: String, params: Vec<(&'static str, String)>, mode: ResponseMode },
    /// The person must sign in (again): to `/login` with this `next`, the username field filled with the
    /// client's `login_hint`.
    SignIn { next: String, again: bool, login_hint: Option<String> },
    /// The client wants a second factor this session has not given.
    SecondFactor { next: String },
    /// Ask the person: the consent page for this client and these scopes; either answer goes to
    /// `redirect_uri` (checked).
    Consent { client_name: String, scopes: Vec<String>, redirect_uri: String },
}

/// What the token endpoint answers (RFC 6749 §5.1).
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

/// A grant's tokens as claims, recorded but not yet signed.
struct UnsignedTokens {
    access: OauthAccessClaims,
    id_claims: Option<serde_json::Map<String, serde_json::Value>>,
    id_alg: Algorithm,
    refresh_token: Option<String>,
    scope: Scopes,
    expires_in: u64,
}

/// RFC 6749 §5.2's errors, without HTTP: the face gives `invalid_client` its 401.
#[derive(Debug)]
pub struct TokenError {
    pub error: &'static str,
    pub description: &'static str,
}

impl TokenError {
    const fn new(error: &'static str, description: &'static str) -> Self {
        Self { error, description }
    }
}

pub const INVALID_CLIENT: TokenError = TokenError::new("invalid_client", "Client authentication failed.");
const INVALID_GRANT: TokenError =
    TokenError::new("invalid_grant", "The grant is invalid, expired, revoked, or was issued to another client.");

/// A token endpoint failure that is ours, not the client's, still answers in the RFC's shape.
impl From<Error> for TokenError {
    fn from(e: Error) -> Self {
        match e {
            // The user was deactivated, or the session ended, between the checks.
            Error::InvalidToken => INVALID_GRANT,
            Error::Unavailable => TokenError::new("temporarily_unavailable", "Try again shortly."),
            other => {
                tracing::error!(error = %other, "token endpoint failed");
                TokenError::new("server_error", "Something went wrong on our side.")
            }
        }
    }
}

/// How a client authenticated at the token endpoint.
pub struct ClientCredentials<'a> {
    pub client_id: &'a str,
    pub secret: Option<&'a str>,
}

fn rules(client: &ClientRecord) -> Scopes {
    Scopes::parse(&client.scopes.join(" "))
}

impl Services {
    fn error_response(&self, request: &AuthorizationRequest, error: &'static str, description: &str) -> Authorize {
        let mut params = vec![("error", error.to_string()), ("error_description", description.to_string())];
        if let Some(state) = &request.state {
            params.push(("state", state.clone()));
        }
        params.push(("iss", self.config.issuer.clone()));
        Authorize::Respond { redirect_uri: request.redirect_uri.clone(), params, mode: request.response_mode() }
    }

    /// The authorization endpoint, for a browser that is `browser` (or none). `query` is the request as
    /// received, to come back to after a sign-in.
    pub async fn oauth_authorize(
        &self,
        request: &AuthorizationRequest,
        query: &str,
        browser: Option<&BrowserSession>,
    ) -> Result<Authorize> {
        let (client, checked) = match self.admitted(request).await? {
            Ok(admitted) => admitted,
            Err(answer) => return Ok(answer),
        };
        let now = clock::now_ms() / 1000;
        let signed_in = browser.and_then(|b| match &b.state {
            BrowserState::SignedIn { user, claims, auth_time } => Some((user, claims, *auth_time)),
            _ => None,
        });
        let back = |fresh: bool| {
            let mut next = format!("/oauth2/authorize?{}", without_fresh_marker(query));
            if fresh {
                next.push_str(&format!("&{}={now}", oauth::FRESH_SINCE));
            }
            next
        };
        let Some((user, claims, auth_time)) = signed_in else {
            if checked.prompt.none {
                return Ok(self.error_response(request, "login_required", "The user is not signed in."));
            }
            return Ok(Authorize::SignIn {
                next: back(checked.prompt.login || checked.max_age.is_some()),
                again: false,
                login_hint: request.login_hint.clone(),
            });
        };
        if checked.needs_fresh_sign_in(auth_time, now, request.fresh_since) {
            if checked.prompt.none {
                return Ok(self.error_response(request, "login_required", "The user must sign in again."));
            }
            return Ok(Authorize::SignIn { next: back(true), again: true, login_hint: request.login_hint.clone() });
        }
        if client.require_mfa && !claims.mfa {
            if checked.prompt.none {
                return Ok(self.error_response(request, "interaction_required", "A second factor is needed."));
            }
            return Ok(Authorize::SecondFactor { next: back(false) });
        }
        let granted = self.scope_to_grant(&client, request, &checked, user.profile.id).await?;
        if let Some(granted) = granted {
            return self.issue_code(&client, request, &granted, user.profile.id, claims.sid, auth_time).await;
        }
        if checked.prompt.none {
            return Ok(self.error_response(request, "consent_required", "The user has not consented."));
        }
        Ok(Authorize::Consent {
            client_name: client.name,
            scopes: request.scope.iter().map(str::to_string).collect(),
            redirect_uri: request.redirect_uri.clone(),
        })
    }

    /// The consent form's answer: the request is checked again from the start, then granted or refused.
    pub async fn decide_consent(
        &self,
        request: &AuthorizationRequest,
        query: &str,
        browser: &BrowserSession,
        allow: bool,
        who: &Client,
    ) -> Result<Authorize> {
        let BrowserState::SignedIn { user, claims, auth_time } = &browser.state else {
            return self.oauth_authorize(request, query, Some(browser)).await;
        };
        let (client, checked) = match self.admitted(request).await? {
            Ok(admitted) => admitted,
            Err(answer) => return Ok(answer),
        };
        // A consent form posted long after it was shown is held to the request's freshness and MFA rules.
        let stale = checked.needs_fresh_sign_in(*auth_time, clock::now_ms() / 1000, request.fresh_since);
        if stale || (client.require_mfa && !claims.mfa) {
            return self.oauth_authorize(request, query, Some(browser)).await;
        }
        let event = |action| Event::success(action, user.profile.id).with("client_id", client.client_id.as_str());
        if !allow {
            self.record_alone(who, event("oauth_consent_denied")).await?;
            return Ok(self.error_response(request, "access_denied", "The user refused."));
        }
        // Offline access only with prompt=consent or an earlier consent to it (API.md).
        let previous =
            store::consent(self.db.pool(), user.profile.id, &client.client_id).await?.map(|s| Scopes::parse(&s));
        let offline_ok = checked.prompt.consent || previous.as_ref().is_some_and(|p| p.contains("offline_access"));
        let granted = if offline_ok { request.scope.clone() } else { request.scope.without("offline_access") };
        let mut tx = self.db.begin().await?;
        store::save_consent(&mut tx, user.profile.id, &client.client_id, &granted.to_string(), clock::now_ms()).await?;
        audit::record(&mut tx, who, event("oauth_consent_granted").with("scope", granted.to_string())).await?;
        tx.commit().await?;
        self.issue_code(&client, request, &granted, user.profile.id, claims.sid, *auth_time).await
    }

    /// The checks every authorization request passes, whoever asks: a registered client and redirect URI
    /// (else a page), then the request's own rules (else an error sent back to the client).
    async fn admitted(&self, request: &AuthorizationRequest) -> Result<Result<(ClientRecord, Checked), Authorize>> {
        let Some(client) = self.client_for(request).await? else {
            return Ok(Err(Authorize::Refuse(
                "The application that sent you here is not registered, or gave a return address it did not register.",
            )));
        };
        let rules = ClientRules { scopes: &rules(&client), pkce_required: client.require_pkce };
        let checked = match request.check(&rules) {
            Ok(checked) => checked,
            Err(refused) => return Ok(Err(self.error_response(request, refused.error, refused.description))),
        };
        if !client.allows("authorization_code") {
            let refused = self.error_response(request, "unauthorized_client", "This client may not use the code flow.");
            return Ok(Err(refused));
        }
        Ok(Ok((client, checked)))
    }

    /// Where, beyond this server, the redirects after a sign-in form may end: the application `next` returns
    /// to (forward authentication), or the redirect URI of the authorization request `next` is, once its
    /// client and URI check out. Browsers hold every redirect that follows a form submission to the page's
    /// `form-action`, so the sign-in pages name this there.
    pub async fn sign_in_leads_to(&self, next: Option<&str>) -> Result<Option<String>> {
        let target = self.web_return_to(next);
        if let Some(query) = target.strip_prefix("/oauth2/authorize?") {
            let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
            let request = AuthorizationRequest::from_pairs(&pairs);
            return Ok(self.client_for(&request).await?.map(|_| request.redirect_uri));
        }
        Ok(target.starts_with("http").then_some(target))
    }

    async fn client_for(&self, request: &AuthorizationRequest) -> Result<Option<ClientRecord>> {
        if request.client_id.is_empty() || request.client_id.len() > 100 {
            return Ok(None);
        }
        let client = store::find_client(self.db.pool(), &request.client_id).await?;
        Ok(client.filter(|c| oauth::redirect_uri_matches(&c.redirect_uris, &request.redirect_uri)))
    }

    /// The scopes to grant without asking, or `None` when the person must be asked.
    async fn scope_to_grant(
        &self,
        client: &ClientRecord,
        request: &AuthorizationRequest,
        checked: &Checked,
        user_id: Uuid,
    ) -> Result<Option<Scopes>> {
        if client.consent == "implicit" {
            return Ok(Some(request.scope.clone()));
        }
        if checked.prompt.consent {
            return Ok(None);
        }
        let Some(consented) = store::consent(self.db.pool(), user_id, &client.client_id).await? else {
            return Ok(None);
        };
        let consented = Scopes::parse(&consented);
        let wanted = request.scope.without("offline_access");
        if !wanted.is_subset(&consented) {
            return Ok(None);
        }
        // offline_access only if it was consented to before; otherwise granted without it.
        Ok(Some(if consented.contains("offline_access") { request.scope.clone() } else { wanted }))
    }

    async fn issue_code(
        &self,
        client: &ClientRecord,
        request: &AuthorizationRequest,
        scope: &Scopes,
        user_id: Uuid,
        session_id: Uuid,
        auth_time: i64,
    ) -> Result<Authorize> {
        let code = random::opaque_token();
        let record = CodeRecord {
            code_hash: random::token_digest(&code),
            client_id: client.client_id.clone(),
            user_id,
            session_id,
            redirect_uri: request.redirect_uri.clone(),
            scope: scope.to_string(),
            nonce: request.nonce.clone(),
            code_challenge: request.code_challenge.clone(),
            auth_time,
            expires_at: clock::now_ms() + CODE_TTL_MS,
            spent_at: None,
            grant_id: None,
        };
        let mut conn = self.db.pool().acquire().await?;
        store::insert_code(&mut conn, &record).await?;
        let mut params = vec![("code", code)];
        if let Some(state) = &request.state {
            params.push(("state", state.clone()));
        }
        params.push(("iss", self.config.issuer.clone()));
        Ok(Authorize::Respond { redirect_uri: request.redirect_uri.clone(), params, mode: request.response_mode() })
    }

    /// Client authentication at the token endpoint: a confidential client by its secret, a public one by
    /// its id alone. Unknown clients and wrong secrets answer alike.
    pub async fn authenticate_client(&self, credentials: &ClientCredentials<'_>) -> Result<ClientRecord, TokenError> {
        let client = self.known_client(credentials.client_id).await?.ok_or(INVALID_CLIENT)?;
        match (&client.secret_hash, credentials.secret) {
            (Some(hash), Some(secret)) => {
                let presented = random::token_digest(secret);
                if bool::from(presented.as_bytes().ct_eq(hash.as_bytes())) { Ok(client) } else { Err(INVALID_CLIENT) }
            }
            (None, None) => Ok(client),
            _ => Err(INVALID_CLIENT),
        }
    }

    /// A registered client, from memory when it was read in the last `CLIENT_CACHE_MS`: the token and
    /// introspection endpoints read it on every request. Changes made on this instance take effect at once,
    /// those made on another one within that time.
    pub(crate) async fn known_client(&self, client_id: &str) -> Result<Option<ClientRecord>> {
        let now = clock::now_ms();
        if let Some(client) = self.clients.get(client_id, now) {
            return Ok(Some(client));
        }
        let found = store::find_client(self.db.pool(), client_id).await?;
        if let Some(client) = &found {
            self.clients.insert(client.client_id.clone(), client.clone(), now + CLIENT_CACHE_MS, now);
        }
        Ok(found)
    }

    /// `grant_type=authorization_code`.
    pub async fn exchange_code(
        &self,
        client: &ClientRecord,
        code: &str,
        redirect_uri: Option<&str>,
        verifier: Option<&str>,
        who: &Client,
    ) -> Result<TokenResponse, TokenError> {
        if !client.allows("authorization_code") {
            return Err(TokenError::new("unauthorized_client", "This client may not use this grant."));
        }
        let now = clock::now_ms();
        let mut tx = self.db.begin().await.map_err(Error::from)?;
        let lock = self.db.row_lock();
        let Some(found) = store::find_code(&mut tx, &random::token_digest(code), lock).await? else {
            return Err(INVALID_GRANT);
        };
        if found.client_id != client.client_id {
            return Err(INVALID_GRANT);
        }
        if found.spent_at.is_some() {
            // RFC 6749 §4.1.2: a code used twice was stolen or replayed; what it gave is revoked.
            if let Some(grant_id) = found.grant_id {
                store::revoke_grant(&mut tx, grant_id, now, "code_reused").await?;
                let event = Event::failure("oauth_code_reuse_detected", Some(found.user_id))
                    .with("client_id", client.client_id.as_str());
                audit::record(&mut tx, who, event).await?;
                tx.commit().await.map_err(Error::from)?;
                self.revocations.add([grant_id], now);
            }
            return Err(INVALID_GRANT);
        }
        if found.expires_at <= now || redirect_uri != Some(found.redirect_uri.as_str()) {
            return Err(INVALID_GRANT);
        }
        match (&found.code_challenge, verifier) {
            (Some(challenge), Some(verifier)) if oauth::pkce_verifies(verifier, challenge) => {}
            (None, None) => {}
            _ => return Err(INVALID_GRANT),
        }
        let session = sessions::find_live(&mut *tx, found.session_id, now, self.idle_cutoff(now)).await?;
        let Some(session) = session else { return Err(INVALID_GRANT) };
        let grant = GrantRecord {
            id: Uuid::new_v4(),
            client_id: client.client_id.clone(),
            user_id: found.user_id,
            session_id: found.session_id,
            scope: found.scope.clone(),
            nonce: found.nonce.clone(),
            auth_time: found.auth_time,
            created_at: now,
            revoked_at: None,
        };
        if !store::spend_code(&mut tx, &found.code_hash, grant.id, now).await? {
            return Err(INVALID_GRANT);
        }
        let access_expires_at = now + clock::duration_ms(self.config.access_ttl);
        store::insert_grant(&mut tx, &grant, access_expires_at).await?;
        let unsigned = self.grant_tokens(&mut tx, client, &grant, &session, true, who).await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(self.sign_tokens(unsigned))
    }

    /// `grant_type=refresh_token`: the token is spent and a new one issued; a spent one presented again
    /// revokes the grant (RFC 9700 §4.14.2).
    pub async fn refresh_grant(
        &self,
        client: &ClientRecord,
        refresh_token: &str,
        who: &Client,
    ) -> Result<TokenResponse, TokenError> {
        if !client.allows("refresh_token") {
            return Err(TokenError::new("unauthorized_client", "This client may not use this grant."));
        }
        let now = clock::now_ms();
        let hash = random::token_digest(refresh_token);
        let Some((grant, spent)) = store::find_refresh_token(self.db.pool(), &hash).await? else {
            return Err(INVALID_GRANT);
        };
        if grant.client_id != client.client_id || grant.revoked_at.is_some() {
            return Err(INVALID_GRANT);
        }
        let mut tx = self.db.begin().await.map_err(Error::from)?;
        if spent || !store::spend_refresh_token(&mut tx, &hash, now).await? {
            store::revoke_grant(&mut tx, grant.id, now, "refresh_token_reused").await?;
            let event =
                Event::failure("refresh_token_reuse", Some(grant.user_id)).with("client_id", client.client_id.as_str());
            audit::record(&mut tx, who, event).await?;
            tx.commit().await.map_err(Error::from)?;
            self.revocations.add([grant.id], now);
            return Err(INVALID_GRANT);
        }
        let session = sessions::find_live(&mut *tx, grant.session_id, now, self.idle_cutoff(now)).await?;
        // Not touched: an application refreshing in the background must not keep an unattended browser
        // signed in past its idle timeout.
        let Some(session) = session else { return Err(INVALID_GRANT) };
        let unsigned = self.grant_tokens(&mut tx, client, &grant, &session, false, who).await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(self.sign_tokens(unsigned))
    }

    /// Records a use of a grant in the caller's transaction (its refresh token, its latest access-token
    /// expiry, the client's last token, the audit row) and returns the tokens' claims, to be signed by
    /// [`Self::sign_tokens`] after the commit: RS256 costs about half a millisecond, which SQLite's one
    /// writer must not wait for.
    async fn grant_tokens(
        &self,
        tx: &mut sqlx::AnyConnection,
        client: &ClientRecord,
        grant: &GrantRecord,
        session: &sessions::SessionRecord,
        with_nonce: bool,
        who: &Client,
    ) -> Result<UnsignedTokens> {
        let now = clock::now_ms();
        let Some(UserView { profile: user, memberships }) = users::find_view(&mut *tx, grant.user_id).await? else {
            return Err(Error::InvalidToken);
        };
        if !user.is_active {
            return Err(Error::InvalidToken);
        }
        let scope = Scopes::parse(&grant.scope);
        let ttl = self.config.access_ttl;
        let (iat, exp) = (now / 1000, (now + clock::duration_ms(ttl)) / 1000);
        let access = OauthAccessClaims {
            iss: self.config.issuer.clone(),
            sub: user.id.to_string(),
            aud: client.client_id.clone(),
            client_id: client.client_id.clone(),
            scope: scope.to_string(),
            exp,
            iat,
            jti: Uuid::new_v4(),
            grant_id: grant.id,
            auth_time: Some(grant.auth_time),
            sid: Some(session.id),
            // Memberships are the `roles` scope's to tell.
            orgs: if scope.contains("roles") {
                memberships.iter().take(50).map(|(org, role)| OrgClaim { id: org.id, role: *role }).collect()
            } else {
                vec![]
            },
        };
        let id_claims = scope.contains("openid").then(|| {
            let mut claims = oauth::person_claims(&person(&user, &memberships), &scope);
            let mut put = |name: &str, value: serde_json::Value| claims.insert(name.into(), value);
            put("iss", self.config.issuer.clone().into());
            put("aud", client.client_id.clone().into());
            put("azp", client.client_id.clone().into());
            put("iat", iat.into());
            put("exp", exp.into());
            put("auth_time", grant.auth_time.into());
            put("amr", session.amr.clone().into());
            put("acr", oauth::acr(session.mfa).into());
            put("sid", session.id.to_string().into());
            if let (true, Some(nonce)) = (with_nonce, &grant.nonce) {
                put("nonce", nonce.clone().into());
            }
            claims
        });
        let refresh_token = if scope.contains("offline_access") && client.allows("refresh_token") {
            let token = random::opaque_token();
            store::insert_refresh_token(tx, &random::token_digest(&token), grant.id, now).await?;
            Some(token)
        } else {
            None
        };
        store::use_grant(tx, grant.id, now, now + clock::duration_ms(ttl)).await?;
        if client.last_token_at.is_none_or(|at| now - at > TOUCH_CLIENT_EVERY_MS) {
            store::touch_client(tx, &client.client_id, now).await?;
        }
        let event = Event::success("oauth_token_issued", user.id).with("client_id", client.client_id.as_str());
        audit::record(tx, who, event).await?;
        let id_alg = signing::parse_alg(&client.id_token_alg).unwrap_or(Algorithm::RS256);
        Ok(UnsignedTokens { access, id_claims, id_alg, refresh_token, scope, expires_in: ttl.as_secs() })
    }

    /// The signed answer: the access token (RS256), the ID token with its `at_hash` in the client's algorithm.
    fn sign_tokens(&self, unsigned: UnsignedTokens) -> TokenResponse {
        let keys = self.keys.load();
        let access_token = keys.signing_key(Algorithm::RS256).sign(ACCESS_TOKEN_TYPE, &unsigned.access);
        let id_token = unsigned.id_claims.map(|mut claims| {
            let key = keys.signing_key(unsigned.id_alg);
            claims.insert("at_hash".into(), key.half_hash(&access_token).into());
            key.sign(ID_TOKEN_TYPE, &claims)
        });
        TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: unsigned.expires_in,
            scope: unsigned.scope.to_string(),
            refresh_token: unsigned.refresh_token,
            id_token,
        }
    }

    /// `grant_type=client_credentials`: a token for the client itself (`sub` = its id), within its scopes,
    /// without refresh or ID token.
    pub async fn client_credentials(
        &self,
        client: &ClientRecord,
        scope: Option<&str>,
        who: &Client,
    ) -> Result<TokenResponse, TokenError> {
        if client.secret_hash.is_none() || !client.allows("client_credentials") {
            return Err(TokenError::new("unauthorized_client", "This client may not use this grant."));
        }
        // Scopes about a person mean nothing without one.
        let allowed = rules(client).without("openid").without("offline_access");
        let scope = match scope {
            Some(asked) => Scopes::parse(asked),
            None => allowed.clone(),
        };
        if !scope.is_subset(&allowed) {
            return Err(TokenError::new("invalid_scope", "The client may not ask for one of these scopes."));
        }
        let now = clock::now_ms();
        let ttl = self.config.access_ttl;
        let access = OauthAccessClaims {
            iss: self.config.issuer.clone(),
            sub: client.client_id.clone(),
            aud: client.client_id.clone(),
            client_id: client.client_id.clone(),
            scope: scope.to_string(),
            exp: (now + clock::duration_ms(ttl)) / 1000,
            iat: now / 1000,
            jti: Uuid::new_v4(),
            grant_id: Uuid::new_v4(),
            auth_time: None,
            sid: None,
            orgs: vec![],
        };
        // A machine client may take thousands of tokens a minute: its last use and the audit row are
        // written once a minute, not per token (each would be a write transaction).
        if client.last_token_at.is_none_or(|at| now - at > TOUCH_CLIENT_EVERY_MS) {
            let mut tx = self.db.begin().await.map_err(Error::from)?;
            store::touch_client(&mut tx, &client.client_id, now).await?;
            let event = Event::success_for("oauth_token_issued", None)
                .with("client_id", client.client_id.as_str())
                .with("grant_type", "client_credentials");
            audit::record(&mut tx, who, event).await?;
            tx.commit().await.map_err(Error::from)?;
            let touched = ClientRecord { last_token_at: Some(now), ..client.clone() };
            self.clients.insert(client.client_id.clone(), touched, now + CLIENT_CACHE_MS, now);
        }
        Ok(TokenResponse {
            access_token: self.keys.load().signing_key(Algorithm::RS256).sign(ACCESS_TOKEN_TYPE, &access),
            token_type: "Bearer",
            expires_in: ttl.as_secs(),
            scope: scope.to_string(),
            refresh_token: None,
            id_token: None,
        })
    }

    /// An OAuth access token that is valid, unexpired and not revoked (its grant, its session).
    pub fn authenticate_oauth(&self, token: &str) -> Result<OauthAccessClaims> {
        let now = clock::now_ms() / 1000;
        let claims = match self.verified_oauth_tokens.get(token, now) {
            Some(claims) => claims,
            None => {
                let claims: OauthAccessClaims =
                    self.keys.load().verify_oauth(token).map_err(|_| Error::InvalidToken)?;
                let until = claims.exp + LEEWAY_SECONDS as i64;
                self.verified_oauth_tokens.insert(token.into(), claims.clone(), until, now);
                claims
            }
        };
        let revoked = self.revocations.is_revoked(claims.grant_id)
            || claims.sid.is_some_and(|sid| self.revocations.is_revoked(sid));
        if claims.aud != claims.client_id || revoked {
            return Err(Error::InvalidToken);
        }
        Ok(claims)
    }

    /// RFC 7662: what a token is, for a resource server (a confidential client): OAuth access and refresh
    /// tokens, and the JSON API's access tokens. Anything not live answers exactly `{"active": false}`. An
    /// access token is answered from memory.
    pub async fn introspect(&self, requester: &ClientRecord, token: &str) -> Result<serde_json::Value, TokenError> {
        if requester.secret_hash.is_none() {
            return Err(INVALID_CLIENT);
        }
        let inactive = serde_json::json!({"active": false});
        if let Ok(claims) = self.authenticate_oauth(token) {
            return Ok(serde_json::json!({
                "active": true, "scope": claims.scope, "client_id": claims.client_id, "sub": claims.sub,
                "exp": claims.exp, "iat": claims.iat, "iss": claims.iss, "aud": claims.aud, "token_type": "Bearer",
            }));
        }
        // The JSON API's own tokens too: resource servers that accept them learn of a sign-out here.
        if let Ok(claims) = self.authenticate(token) {
            return Ok(serde_json::json!({
                "active": true, "sub": claims.sub, "exp": claims.exp, "iat": claims.iat, "iss": claims.iss,
                "aud": claims.aud, "sid": claims.sid, "token_type": "Bearer",
            }));
        }
        let now = clock::now_ms();
        let Some((grant, spent)) = store::find_refresh_token(self.db.pool(), &random::token_digest(token)).await?
        else {
            return Ok(inactive);
        };
        if spent || grant.revoked_at.is_some() {
            return Ok(inactive);
        }
        let Some(session) = sessions::find_live(self.db.pool(), grant.session_id, now, self.idle_cutoff(now)).await?
        else {
            return Ok(inactive);
        };
        Ok(serde_json::json!({
            "active": true, "scope": grant.scope, "client_id": grant.client_id, "sub": grant.user_id.to_string(),
            "exp": session.expires_at / 1000, "iat": grant.created_at / 1000, "iss": self.config.issuer,
            "aud": grant.client_id, "token_type": "refresh_token",
        }))
    }

    /// RFC 7009: a client revokes one of its own tokens; the grant it belongs to ends, with every token of
    /// it. Unknown tokens are no error; another client's token is refused and stays valid.
    pub async fn revoke_token(&self, client: &ClientRecord, token: &str, who: &Client) -> Result<(), TokenError> {
        const NOT_YOURS: TokenError = TokenError::new("unauthorized_client", "The token was issued to another client.");
        let grant = if let Ok(claims) = self.keys.load().verify_oauth::<OauthAccessClaims>(token) {
            if claims.client_id != client.client_id {
                return Err(NOT_YOURS);
            }
            (claims.grant_id, claims.sub.parse::<Uuid>().ok())
        } else {
            let found = store::find_refresh_token(self.db.pool(), &random::token_digest(token)).await?;
            let Some((grant, _)) = found else { return Ok(()) };
            if grant.client_id != client.client_id {
                return Err(NOT_YOURS);
            }
            (grant.id, Some(grant.user_id))
        };
        let (grant_id, user_id) = grant;
        let now = clock::now_ms();
        let mut tx = self.db.begin().await.map_err(Error::from)?;
        if store::revoke_grant(&mut tx, grant_id, now, "revoked_by_client").await? {
            let event = Event::success_for("oauth_grant_revoked", user_id)
                .with("client_id", client.client_id.as_str())
                .with("by", "client");
            audit::record(&mut tx, who, event).await?;
        }
        tx.commit().await.map_err(Error::from)?;
        self.revocations.add([grant_id], now);
        Ok(())
    }

    /// The applications the caller consented to ("Connected apps").
    pub async fn connected_apps(&self, auth: &AccessClaims) -> Result<Vec<store::ConnectedApp>> {
        store::connected_apps(self.db.pool(), auth.sub).await
    }

    /// Disconnects an application: its grants and their tokens end, on every instance, and the consent is
    /// forgotten, so the next sign-in asks again.
    pub async fn disconnect_app(&self, auth: &AccessClaims, client_id: &str, who: &Client) -> Result<()> {
        let now = clock::now_ms();
        let mut tx = self.db.begin().await?;
        let (grants, anything) = store::disconnect(&mut tx, auth.sub, client_id, now).await?;
        if !anything {
            return Err(Error::NotFound);
        }
        let event = Event::success("oauth_grant_revoked", auth.sub)
            .with("client_id", client_id)
            .with("by", "user")
            .with("grants_ended", grants.len());
        audit::record(&mut tx, who, event).await?;
        tx.commit().await?;
        self.revocations.add(grants, now);
        Ok(())
    }

    /// Userinfo (OpenID Connect Core §5.3): the claims of the token's scopes.
    pub async fn userinfo(&self, token: &str) -> Result<serde_json::Map<String, serde_json::Value>> {
        let claims = self.authenticate_oauth(token)?;
        // A client's own token names no person; a deleted client's tokens are void.
        if claims.sid.is_none() || self.known_client(&claims.client_id).await?.is_none() {
            return Err(Error::InvalidToken);
        }
        let id: Uuid = claims.sub.parse().map_err(|_| Error::InvalidToken)?;
        let user = self.user_view(id).await?;
        if !user.profile.is_active {
            return Err(Error::InvalidToken);
        }
        Ok(oauth::person_claims(&person(&user.profile, &user.memberships), &Scopes::parse(&claims.scope)))
    }
}

/// What a user's claims are made of.
fn person<'a>(user: &'a Profile, memberships: &[(OrgRecord, Role)]) -> Person<'a> {
    Person {
        id: user.id,
        email: &user.email,
        email_verified: user.email_verified,
        username: user.username.as_deref(),
        updated_at: user.created_at,
        role: user.role.as_str(),
        orgs: memberships
            .iter()
            .map(|(org, role)| OrgDetail { id: org.id, slug: org.slug.clone(), role: role.as_str().into() })
            .collect(),
    }
}

/// The request's query without our freshness marker, so that a second trip to sign in does not stack them.
fn without_fresh_marker(query: &str) -> String {
    query
        .split('&')
        .filter(|pair| !pair.starts_with(&format!("{}=", oauth::FRESH_SINCE)) && !pair.is_empty())
        .collect::<Vec<_>>()
        .join("&")
}
