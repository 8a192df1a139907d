//! Registering the applications that sign users in through Latchkey: create, change, delete, rotate the
//! secret. The CLI and the admin API both come here; every change is audited in its own transaction.

use serde::Deserialize;
use utoipa::ToSchema;

use super::{
    Client, Services,
    admin::Actor,
    audit::{self, Event},
};
use crate::{
    clock,
    domain::{
        oauth::{self, SCOPES},
        random, signing,
    },
    error::{Error, FieldError, Result},
    store::oauth::{self as store, ClientRecord},
};

pub const GRANT_TYPES: [&str; 3] = ["authorization_code", "refresh_token", "client_credentials"];
/// `required`: the person is asked; `implicit`: first-party apps, never asked.
pub const CONSENTS: [&str; 2] = ["required", "implicit"];

/// A client's settings as the CLI and the admin API take them; absent fields keep their value (or default).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientSettings {
    pub name: Option<String>,
    pub redirect_uris: Option<Vec<String>>,
    pub post_logout_redirect_uris: Option<Vec<String>>,
    /// A public client (a single-page or native app) has no secret and must use PKCE. Fixed at creation.
    pub public: Option<bool>,
    pub grant_types: Option<Vec<String>>,
    pub scopes: Option<Vec<String>>,
    /// `required` (the default) or `implicit` (first-party apps: never asks).
    pub consent: Option<String>,
    pub require_mfa: Option<bool>,
    pub require_pkce: Option<bool>,
    /// `RS256` (the default), `EdDSA` or `ES256`.
    pub id_token_signed_response_alg: Option<String>,
    pub backchannel_logout_uri: Option<String>,
}

/// A client as made or changed, with its secret when one was just made (shown this once).
pub struct IssuedClient {
    pub client: ClientRecord,
    pub secret: Option<String>,
}

fn defaults(public: bool, now: i64) -> ClientRecord {
    ClientRecord {
        client_id: random::opaque_token()[..22].to_string(),
        secret_hash: None,
        name: String::new(),
        redirect_uris: vec![],
        post_logout_redirect_uris: vec![],
        grant_types: vec!["authorization_code".into(), "refresh_token".into()],
        scopes: SCOPES.iter().map(|s| s.to_string()).collect(),
        consent: "required".into(),
        require_mfa: false,
        require_pkce: public,
        id_token_alg: "RS256".into(),
        backchannel_logout_uri: None,
        created_at: now,
        updated_at: now,
        last_token_at: None,
    }
}

/// What a new confidential client gets for every setting it does not name (the registration form starts here).
pub fn default_client() -> ClientRecord {
    defaults(false, clock::now_ms())
}

/// Applies `settings` over `client`, then checks the result as a whole.
fn apply(mut client: ClientRecord, settings: ClientSettings) -> Result<ClientRecord> {
    let mut problems = Vec::new();
    let mut problem = |field: &'static str, message: String| problems.push(FieldError { field, message });
    if let Some(name) = settings.name {
        client.name = name.trim().to_string();
    }
    if client.name.is_empty() || client.name.chars().count() > 100 {
        problem("name", "A client needs a name of 1 to 100 characters.".into());
    }
    let public = client.secret_hash.is_none();
    if settings.public.is_some_and(|p| p != public) {
        problem("public", "A client cannot change between public and confidential; make a new one.".into());
    }
    macro_rules! set {
        ($field:ident, $value:expr) => {
            if let Some(value) = $value {
                client.$field = value;
            }
        };
    }
    set!(redirect_uris, settings.redirect_uris);
    set!(post_logout_redirect_uris, settings.post_logout_redirect_uris);
    set!(grant_types, settings.grant_types);
    set!(scopes, settings.scopes);
    set!(consent, settings.consent);
    set!(require_mfa, settings.require_mfa);
    set!(require_pkce, settings.require_pkce);
    set!(id_token_alg, settings.id_token_signed_response_alg);
    if let Some(uri) = settings.backchannel_logout_uri {
        client.backchannel_logout_uri = (!uri.is_empty()).then_some(uri);
    }
    for (field, uris) in
        [("redirect_uris", &client.redirect_uris), ("post_logout_redirect_uris", &client.post_logout_redirect_uris)]
    {
        for uri in uris {
            if let Err(why) = oauth::redirect_uri_registrable(uri) {
                problem(field, format!("{uri} {why}."));
            }
        }
    }
    if let Some(uri) = &client.backchannel_logout_uri
        && let Err(why) = oauth::redirect_uri_registrable(uri)
    {
        problem("backchannel_logout_uri", format!("{uri} {why}."));
    }
    client.grant_types.dedup();
    for grant in &client.grant_types {
        if !GRANT_TYPES.contains(&grant.as_str()) {
            problem("grant_types", format!("{grant} is not a grant type this server offers."));
        }
    }
    if public && client.allows("client_credentials") {
        problem("grant_types", "A public client cannot use client_credentials: it has no secret.".into());
    }
    if client.allows("authorization_code") && client.redirect_uris.is_empty() {
        problem("redirect_uris", "The authorization_code grant needs at least one redirect URI.".into());
    }
    for scope in &client.scopes {
        if !SCOPES.contains(&scope.as_str()) {
            problem("scopes", format!("{scope} is not a scope this server offers."));
        }
    }
    if !CONSENTS.contains(&client.consent.as_str()) {
        problem("consent", "consent is required or implicit.".into());
    }
    if signing::parse_alg(&client.id_token_alg).is_none() {
        problem("id_token_signed_response_alg", "RS256, EdDSA or ES256.".into());
    }
    if public && client.consent == "implicit" {
        // RFC 8252 §8.6: anything can claim a public client's redirect; the person must see who asks.
        problem("consent", "A public client must ask for consent.".into());
    }
    if public && !client.require_pkce {
        problem("require_pkce", "A public client must use PKCE.".into());
    }
    if problems.is_empty() { Ok(client) } else { Err(Error::Validation(problems)) }
}

fn new_secret() -> (String, String) {
    let secret = random::opaque_token();
    let hash = random::token_digest(&secret);
    (secret, hash)
}

fn audited(action: &'static str, actor: Actor, client_id: &str) -> Event {
    let user_id = match actor {
        Actor::Admin(id) => Some(id),
        Actor::Operator => None,
    };
    Event::success_for(action, user_id).with("client_id", client_id).with("by", actor.name())
}

impl Services {
    pub async fn create_client(&self, actor: Actor, settings: ClientSettings, who: &Client) -> Result<IssuedClient> {
        let now = clock::now_ms();
        let public = settings.public.unwrap_or(false);
        let mut client = defaults(public, now);
        let (secret, hash) = new_secret();
        if !public {
            client.secret_hash = Some(hash);
        }
        let client = apply(client, settings)?;
        let mut tx = self.db.begin().await?;
        store::insert_client(&mut tx, &client).await?;
        audit::record(
            &mut tx,
            who,
            audited("oauth_client_created", actor, &client.client_id).with("name", client.name.as_str()),
        )
        .await?;
        tx.commit().await?;
        Ok(IssuedClient { secret: (!public).then_some(secret), client })
    }

    pub async fn list_clients(&self) -> Result<Vec<ClientRecord>> {
        store::list_clients(self.db.pool()).await
    }

    pub async fn find_client(&self, client_id: &str) -> Result<ClientRecord> {
        store::find_client(self.db.pool(), client_id).await?.ok_or(Error::NotFound)
    }

    pub async fn update_client(
        &self,
        actor: Actor,
        client_id: &str,
        settings: ClientSettings,
        who: &Client,
    ) -> Result<ClientRecord> {
        let mut tx = self.db.begin().await?;
        let current = store::find_client(&mut *tx, client_id).await?.ok_or(Error::NotFound)?;
        let mut client = apply(current, settings)?;
        client.updated_at = clock::now_ms();
        store::update_client(&mut tx, &client).await?;
        audit::record(&mut tx, who, audited("oauth_client_updated", actor, client_id)).await?;
        tx.commit().await?;
        self.clients.clear();
        Ok(client)
    }

    pub async fn delete_client(&self, actor: Actor, client_id: &str, who: &Client) -> Result<()> {
        let mut tx = self.db.begin().await?;
        let grants = store::live_grants_of_client(&mut tx, client_id).await?;
        store::delete_client(&mut tx, client_id).await?;
        audit::record(
            &mut tx,
            who,
            audited("oauth_client_deleted", actor, client_id).with("grants_ended", grants.len()),
        )
        .await?;
        tx.commit().await?;
        self.clients.clear();
        // The rows are gone with the client, so no sync brings these to other instances: there userinfo
        // refuses the tokens (it reads the client, at most 5 s old), introspection until they expire.
        self.revocations.add(grants, clock::now_ms());
        Ok(())
    }

    /// A new secret for a confidential client; the old one stops working at once.
    pub async fn rotate_client_secret(&self, actor: Actor, client_id: &str, who: &Client) -> Result<String> {
        let (secret, hash) = new_secret();
        let mut tx = self.db.begin().await?;
        store::set_client_secret(&mut tx, client_id, &hash, clock::now_ms()).await?;
        audit::record(&mut tx, who, audited("oauth_client_secret_rotated", actor, client_id)).await?;
        tx.commit().await?;
        self.clients.clear();
        Ok(secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(json: serde_json::Value) -> ClientSettings {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn defaults_and_checks() {
        let mut confidential = defaults(false, 0);
        confidential.secret_hash = Some("h".into());
        let ok = apply(
            confidential.clone(),
            settings(
                serde_json::json!({"name": "Grafana", "redirect_uris": ["https://g.example/login/generic_oauth"]}),
            ),
        )
        .unwrap();
        assert_eq!(ok.scopes, SCOPES);
        assert_eq!((ok.consent.as_str(), ok.require_pkce, ok.id_token_alg.as_str()), ("required", false, "RS256"));
        let fields = |json| match apply(confidential.clone(), settings(json)) {
            Err(Error::Validation(p)) => p.into_iter().map(|p| p.field).collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        assert_eq!(fields(serde_json::json!({"name": "x"})), ["redirect_uris"]);
        assert_eq!(
            fields(serde_json::json!({"name": "x", "redirect_uris": ["http://app.example/cb"]})),
            ["redirect_uris"]
        );
        assert_eq!(
            fields(serde_json::json!({"name": "x", "redirect_uris": ["https://a/cb"], "grant_types": ["password"]})),
            ["grant_types"]
        );
        assert_eq!(
            fields(serde_json::json!({"name": "x", "redirect_uris": ["https://a/cb"], "scopes": ["admin"]})),
            ["scopes"]
        );
        let public = defaults(true, 0);
        let refused = apply(
            public,
            settings(serde_json::json!({"name": "spa", "redirect_uris": ["https://a/cb"], "require_pkce": false})),
        );
        assert!(matches!(refused, Err(Error::Validation(_))));
    }
}
