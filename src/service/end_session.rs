//! OpenID Connect RP-Initiated Logout 1.0: an application sends the browser to the end-session endpoint to
//! sign the person out of Latchkey too, and names where to come back. The decision is here; `web::end_session`
//! turns it into a redirect or a page.
//!
//! A valid `id_token_hint` (an ID token this server issued to that client, expired or not) for the person
//! signed in is the application's proof: the session ends without a question. Without one the person is
//! asked. The browser only ever returns to a `post_logout_redirect_uri` registered for the client, which
//! needs the client to be known from `client_id` or from the hint.

use super::{Client, Services};
use crate::{
    domain::oauth::{EndSessionRequest, post_logout_target},
    error::Result,
    service::web::{BrowserSession, BrowserState},
    store::oauth::{self as store, ClientRecord},
};

pub enum EndSession {
    /// A request that cannot be followed (an unknown client, an unregistered address): shown, not followed.
    Refuse(&'static str),
    /// Ask the person whether to sign out; the form sends these back.
    Confirm {
        client_name: Option<String>,
        client_id: Option<String>,
        /// Registered for the client: checked before asking.
        post_logout_redirect_uri: Option<String>,
        state: Option<String>,
    },
    /// Signed out (or was not signed in): to this address, or to the signed-out page.
    SignedOut { return_to: Option<String> },
}

impl Services {
    /// The end-session endpoint (GET or POST).
    pub async fn rp_logout(
        &self,
        request: &EndSessionRequest,
        browser: Option<&BrowserSession>,
        who: &Client,
    ) -> Result<EndSession> {
        if request.repeated.is_some() {
            return Ok(EndSession::Refuse("The sign-out request names a parameter twice."));
        }
        let hint = request.id_token_hint.as_deref().map(|hint| self.keys.load().verify_id_token_hint(hint).ok());
        let hinted = hint.flatten();
        let client_id = match (&request.client_id, &hinted) {
            (Some(id), Some(hint)) if *id != hint.aud => {
                return Ok(EndSession::Refuse("The sign-out request names another application than its ID token."));
            }
            (Some(id), _) => Some(id.clone()),
            (None, hint) => hint.as_ref().map(|h| h.aud.clone()),
        };
        let client = match &client_id {
            Some(id) => store::find_client(self.db.pool(), id).await?,
            None => None,
        };
        if request.client_id.is_some() && client.is_none() {
            return Ok(EndSession::Refuse("The application that sent you here is not registered."));
        }
        let return_to = match returning_to(client.as_ref(), request) {
            Ok(target) => target,
            Err(why) => return Ok(EndSession::Refuse(why)),
        };
        let signed_in_as = match browser.map(|b| &b.state) {
            Some(BrowserState::SignedIn { user, .. }) => Some(user.profile.id),
            _ => None,
        };
        let proven = client.is_some() && hinted.as_ref().is_some_and(|hint| Some(hint.sub) == signed_in_as);
        match browser {
            Some(_) if signed_in_as.is_some() && !proven => Ok(EndSession::Confirm {
                client_name: client.map(|c| c.name),
                client_id,
                post_logout_redirect_uri: request.post_logout_redirect_uri.clone(),
                state: request.state.clone(),
            }),
            _ => {
                if let Some(browser) = browser {
                    self.web_sign_out(browser, who).await?;
                }
                Ok(EndSession::SignedOut { return_to })
            }
        }
    }

    /// The person confirmed on the page (its CSRF token checked): sign out, and return where the request
    /// asked if that address is registered for the client.
    pub async fn confirm_rp_logout(
        &self,
        request: &EndSessionRequest,
        browser: &BrowserSession,
        who: &Client,
    ) -> Result<EndSession> {
        let client = match &request.client_id {
            Some(id) => store::find_client(self.db.pool(), id).await?,
            None => None,
        };
        let return_to = match returning_to(client.as_ref(), request) {
            Ok(target) => target,
            Err(why) => return Ok(EndSession::Refuse(why)),
        };
        self.web_sign_out(browser, who).await?;
        Ok(EndSession::SignedOut { return_to })
    }
}

/// The address to return to, with `state`: none asked, or one registered exactly for the client.
fn returning_to(client: Option<&ClientRecord>, request: &EndSessionRequest) -> Result<Option<String>, &'static str> {
    let Some(uri) = &request.post_logout_redirect_uri else { return Ok(None) };
    let registered = client.is_some_and(|c| c.post_logout_redirect_uris.iter().any(|r| r == uri));
    if !registered {
        return Err("The address to return to after signing out is not registered for this application.");
    }
    Ok(Some(post_logout_target(uri, request.state.as_deref())))
}
