//! The drafts service: analysts save drafts, and a reviewer who did not write one commits it, with a
//! session that passed a second factor. Every rule comes from the token, verified with `latchkey-verify`
//! and mapped through Latchkey's role table; Latchkey is never called per request.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use axum::{
    Json, Router,
    extract::{FromRef, Path, State, rejection::JsonRejection},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use latchkey_verify::{Denied, Verifier, axum::Verified, roles::Permission};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Clone)]
pub struct AppState {
    verifier: Verifier,
    drafts: Arc<Mutex<BTreeMap<Uuid, Draft>>>,
}

/// What `Verified` needs from the state.
impl FromRef<AppState> for Verifier {
    fn from_ref(state: &AppState) -> Self {
        state.verifier.clone()
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Draft {
    id: Uuid,
    title: String,
    body: String,
    /// The `sub` of the token that saved it.
    author: String,
    status: &'static str,
    committed_by: Option<String>,
}

#[derive(Deserialize)]
pub struct NewDraft {
    title: String,
    body: String,
}

const MAX_TITLE: usize = 200;
const MAX_BODY: usize = 100_000;

pub fn router(verifier: Verifier) -> Router {
    let state = AppState { verifier, drafts: Arc::default() };
    Router::new()
        .route("/drafts", get(list).post(save))
        .route("/drafts/{id}/commit", post(commit))
        .fallback(|| async { Failure::NotFound })
        .with_state(state)
}

/// Every refusal, in Latchkey's error shape.
pub enum Failure {
    Denied(Denied),
    NotFound,
    Invalid(&'static str, String),
    AlreadyCommitted,
}

impl From<Denied> for Failure {
    fn from(denied: Denied) -> Self {
        Failure::Denied(denied)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        use latchkey_verify::axum::error;
        match self {
            Failure::Denied(denied) => denied.into_response(),
            Failure::NotFound => error(StatusCode::NOT_FOUND, "not_found", "No such draft."),
            Failure::Invalid(field, message) => {
                let body = serde_json::json!({"error": "validation_failed", "message": "Check the fields.",
                    "details": [{"field": field, "message": message}]});
                (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
            }
            Failure::AlreadyCommitted => error(StatusCode::CONFLICT, "already_committed", "The draft is committed."),
        }
    }
}

async fn list(State(state): State<AppState>, Verified(_): Verified) -> Json<Vec<Draft>> {
    Json(state.drafts.lock().unwrap().values().cloned().collect())
}

async fn save(
    State(state): State<AppState>,
    Verified(claims): Verified,
    body: Result<Json<NewDraft>, JsonRejection>,
) -> Result<(StatusCode, Json<Draft>), Failure> {
    claims.require_permission(Permission::DraftsSave)?;
    let Json(new) = body.map_err(|e| Failure::Invalid("body", e.body_text()))?;
    let title = new.title.trim();
    if title.is_empty() || title.chars().count() > MAX_TITLE {
        return Err(Failure::Invalid("title", format!("A title has 1 to {MAX_TITLE} characters.")));
    }
    if new.body.len() > MAX_BODY {
        return Err(Failure::Invalid("body", format!("A body has at most {MAX_BODY} bytes.")));
    }
    let draft = Draft {
        id: Uuid::new_v4(),
        title: title.to_string(),
        body: new.body,
        author: claims.sub,
        status: "draft",
        committed_by: None,
    };
    state.drafts.lock().unwrap().insert(draft.id, draft.clone());
    Ok((StatusCode::CREATED, Json(draft)))
}

/// A second person's review: the author of a draft never commits it, whatever their role.
async fn commit(
    State(state): State<AppState>,
    Verified(claims): Verified,
    Path(id): Path<String>,
) -> Result<Json<Draft>, Failure> {
    claims.require_permission(Permission::DraftsCommit)?;
    claims.require_mfa()?;
    let id = id.parse::<Uuid>().map_err(|_| Failure::NotFound)?;
    let mut drafts = state.drafts.lock().unwrap();
    let draft = drafts.get_mut(&id).ok_or(Failure::NotFound)?;
    if draft.author == claims.sub {
        return Err(Denied::Forbidden.into());
    }
    if draft.committed_by.is_some() {
        return Err(Failure::AlreadyCommitted);
    }
    draft.status = "committed";
    draft.committed_by = Some(claims.sub);
    Ok(Json(draft.clone()))
}
