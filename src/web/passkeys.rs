//! `/account/passkeys*`: adding a passkey (the script runs the ceremony), renaming and removing one.

use axum::{
    Router,
    extract::State,
    response::{IntoResponse, Redirect, Response},
    routing::post,
};
use serde::Deserialize;
use uuid::Uuid;

use super::{
    account::{done, parts, show_codes},
    session::{NoFields, PageError, SignedInForm},
    sign_in::PasskeyForm,
};
use crate::{
    app::AppState,
    edge::{client::ClientInfo, error::ApiError},
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/account/passkeys/options", post(options))
        .route("/account/passkeys", post(add))
        .route("/account/passkeys/rename", post(rename))
        .route("/account/passkeys/remove", post(remove))
}

/// The registration ceremony's first step (the script asks for it; JSON).
async fn options(
    State(app): State<AppState>,
    SignedInForm(session, NoFields {}): SignedInForm<NoFields>,
) -> Result<Response, ApiError> {
    let (_, claims) = parts(&session).map_err(|_| crate::error::Error::InvalidToken)?;
    Ok(axum::Json(app.passkey_register_start(claims).await?).into_response())
}

#[derive(Deserialize)]
struct AddForm {
    #[serde(default)]
    name: String,
    #[serde(flatten)]
    passkey: PasskeyForm,
}

/// The first second factor shows the new backup codes; later passkeys go back to the account page.
async fn add(
    State(app): State<AppState>,
    ClientInfo(client): ClientInfo,
    SignedInForm(session, form): SignedInForm<AddForm>,
) -> Result<Response, PageError> {
    let (_, claims) = parts(&session)?;
    let result = match form.passkey.credential() {
        Ok(credential) => {
            app.passkey_register_finish(claims, &form.passkey.challenge_id, &form.name, &credential, &client).await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(registered) => match registered.backup_codes {
            Some(codes) => show_codes(&app, &session, Ok(codes)).await,
            None => Ok(Redirect::to("/account?done=passkey_added#passkeys").into_response()),
        },
        Err(e) => done(&app, &session, Err(e), "/account").await,
    }
}

#[derive(Deserialize)]
struct RenameForm {
    id: Uuid,
    name: String,
}

async fn rename(
    State(app): State<AppState>,
    SignedInForm(session, form): SignedInForm<RenameForm>,
) -> Result<Response, PageError> {
    let (_, claims) = parts(&session)?;
    let result = app.passkey_rename(claims, form.id, &form.name).await.map(|_| ());
    done(&app, &session, result, "/account?done=passkey_renamed#passkeys").await
}

#[derive(Deserialize)]
struct RemoveForm {
    id: Uuid,
    /// Asked for when it is the account's last second factor.
    password: Option<String>,
}

async fn remove(
    State(app): State<AppState>,
    ClientInfo(client): ClientInfo,
    SignedInForm(session, form): SignedInForm<RemoveForm>,
) -> Result<Response, PageError> {
    let (_, claims) = parts(&session)?;
    let result = app.passkey_remove(claims, form.id, form.password.as_deref(), &client).await;
    done(&app, &session, result, "/account?done=passkey_removed#passkeys").await
}
