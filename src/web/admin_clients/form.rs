//! The client form: what the pages show and what comes back, as `ClientSettings` for the service.

use crate::{service::oauth_clients::ClientSettings, store::oauth::ClientRecord};

/// The client form as typed. Checkboxes of one name arrive as repeated keys, so the body is read as pairs.
#[derive(Default)]
pub struct ClientForm {
    pub name: String,
    pub public: bool,
    pub redirect_uris: String,
    pub post_logout_redirect_uris: String,
    pub grant_types: Vec<String>,
    pub scopes: Vec<String>,
    pub consent: String,
    pub require_mfa: bool,
    pub require_pkce: bool,
    pub id_token_alg: String,
    pub backchannel_logout_uri: String,
}

impl ClientForm {
    pub fn posted(pairs: Vec<(String, String)>) -> Self {
        let mut form = Self::default();
        for (key, value) in pairs {
            match key.as_str() {
                "name" => form.name = value,
                "type" => form.public = value == "public",
                "redirect_uris" => form.redirect_uris = value,
                "post_logout_redirect_uris" => form.post_logout_redirect_uris = value,
                "grant_types" => form.grant_types.push(value),
                "scopes" => form.scopes.push(value),
                "consent" => form.consent = value,
                "require_mfa" => form.require_mfa = true,
                "require_pkce" => form.require_pkce = true,
                "id_token_alg" => form.id_token_alg = value,
                "backchannel_logout_uri" => form.backchannel_logout_uri = value,
                _ => {}
            }
        }
        form
    }

    pub fn of(client: &ClientRecord) -> Self {
        Self {
            name: client.name.clone(),
            public: client.secret_hash.is_none(),
            redirect_uris: client.redirect_uris.join("\n"),
            post_logout_redirect_uris: client.post_logout_redirect_uris.join("\n"),
            grant_types: client.grant_types.clone(),
            scopes: client.scopes.clone(),
            consent: client.consent.clone(),
            require_mfa: client.require_mfa,
            require_pkce: client.require_pkce,
            id_token_alg: client.id_token_alg.clone(),
            backchannel_logout_uri: client.backchannel_logout_uri.clone().unwrap_or_default(),
        }
    }

    /// Every setting as typed; `public` only when registering (it cannot change).
    pub fn settings(&self, registering: bool) -> ClientSettings {
        let lines = |text: &str| text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
        ClientSettings {
            name: Some(self.name.clone()),
            redirect_uris: Some(lines(&self.redirect_uris)),
            post_logout_redirect_uris: Some(lines(&self.post_logout_redirect_uris)),
            public: registering.then_some(self.public),
            grant_types: Some(self.grant_types.clone()),
            scopes: Some(self.scopes.clone()),
            consent: Some(self.consent.clone()),
            require_mfa: Some(self.require_mfa),
            require_pkce: Some(self.require_pkce),
            id_token_signed_response_alg: Some(self.id_token_alg.clone()),
            backchannel_logout_uri: Some(self.backchannel_logout_uri.trim().to_string()),
        }
    }
}

/// One checkbox or option of the form.
pub struct Choice {
    pub value: &'static str,
    pub on: bool,
}

pub fn choices(all: &[&'static str], chosen: impl Fn(&str) -> bool) -> Vec<Choice> {
    all.iter().map(|value| Choice { value, on: chosen(value) }).collect()
}
