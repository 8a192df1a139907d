//! `/admin/clients`: the applications that sign people in through Latchkey. List, register (the secret
//! shown once, on the answer to the POST), change, rotate the secret, delete after a confirmation. The
//! rules and the audit are `service::oauth_clients`'s; this face turns forms into `ClientSettings` and the
//! service's objections into the form, with what was typed kept.

use askama::Template;
use axum::{
    Router,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use serde::Deserialize;

mod form;

use form::{Choice, ClientForm, choices};

use super::{
    pages::render,
    readable::{When, when},
    session::{NoFields, PageError, SignedIn, SignedInForm},
};
use crate::{
    app::AppState,
    clock,
    domain::{oauth::SCOPES, roles::Permission, signing},
    edge::client::ClientInfo,
    error::{Error, FieldError},
    service::{
        Client,
        admin::Actor,
        oauth_clients::{CONSENTS, GRANT_TYPES, default_client},
        web::BrowserSession,
    },
    store::oauth::ClientRecord,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/clients", get(list).post(create))
        .route("/admin/clients/new", get(new_form))
        .route("/admin/clients/{client_id}", get(edit).post(save))
        .route("/admin/clients/{client_id}/secret", post(rotate))
        .route("/admin/clients/{client_id}/delete", post(remove))
}

/// The signed-in administrator, as the services' actor; anyone else is refused (and the refusal audited).
async fn admin(app: &AppState, session: &BrowserSession, who: &Client) -> Result<Actor, PageError> {
    let claims = super::admin::permitted(app, session, Permission::UsersWrite, "/admin/clients", who).await?;
    Ok(Actor::Admin(claims.sub))
}

/// A client as the list and the top of its page show it.
struct ClientRow {
    client_id: String,
    name: String,
    public: bool,
    grants: String,
    created: When,
    last_token: Option<When>,
}

impl ClientRow {
    fn new(client: &ClientRecord) -> Self {
        let now = clock::now_ms();
        Self {
            client_id: client.client_id.clone(),
            name: client.name.clone(),
            public: client.secret_hash.is_none(),
            grants: client.grant_types.join(", "),
            created: when(client.created_at, now),
            last_token: client.last_token_at.map(|at| when(at, now)),
        }
    }
}

#[derive(Template)]
#[template(path = "admin_clients.html")]
struct ListPage {
    csrf: String,
    is_admin: bool,
    clients: Vec<ClientRow>,
    notice: Option<&'static str>,
}

#[derive(Deserialize)]
struct Done {
    done: Option<String>,
}

async fn list(
    State(app): State<AppState>,
    SignedIn(session): SignedIn,
    ClientInfo(who): ClientInfo,
    Query(q): Query<Done>,
) -> Result<Response, PageError> {
    admin(&app, &session, &who).await?;
    let clients = app.list_clients().await?.iter().map(ClientRow::new).collect();
    let notice = (q.done.as_deref() == Some("deleted")).then_some("The client was deleted.");
    Ok(render(StatusCode::OK, &ListPage { csrf: session.csrf.clone(), is_admin: true, clients, notice }))
}

#[derive(Template)]
#[template(path = "admin_client.html")]
struct ClientPage {
    csrf: String,
    is_admin: bool,
    /// `None` on the registration form.
    client: Option<ClientRow>,
    form: ClientForm,
    grants: Vec<Choice>,
    scopes: Vec<Choice>,
    consents: Vec<Choice>,
    algs: Vec<Choice>,
    problems: Vec<FieldError>,
    notice: Option<&'static str>,
}

impl ClientPage {
    fn new(session: &BrowserSession, client: Option<&ClientRecord>, form: ClientForm) -> Self {
        let algs: Vec<&'static str> = signing::ALGORITHMS.into_iter().map(signing::alg_name).collect();
        Self {
            csrf: session.csrf.clone(),
            is_admin: true,
            client: client.map(ClientRow::new),
            grants: choices(&GRANT_TYPES, |g| form.grant_types.iter().any(|c| c == g)),
            scopes: choices(&SCOPES, |s| form.scopes.iter().any(|c| c == s)),
            consents: choices(&CONSENTS, |c| form.consent == c),
            algs: choices(&algs, |a| form.id_token_alg == a),
            form,
            problems: vec![],
            notice: None,
        }
    }

    /// The page of a registered client, its form filled from what is stored.
    fn of(session: &BrowserSession, client: &ClientRecord) -> Self {
        Self::new(session, Some(client), ClientForm::of(client))
    }

    /// What the service said about `field`, if anything.
    fn problem(&self, field: &str) -> Option<String> {
        let said: Vec<&str> = self.problems.iter().filter(|p| p.field == field).map(|p| p.message.as_str()).collect();
        (!said.is_empty()).then(|| said.join(" "))
    }

    /// The form again with the service's objections (422), or the error page for anything else.
    fn refused(mut self, error: Error) -> Result<Response, PageError> {
        let Error::Validation(problems) = error else { return Err(error.into()) };
        self.problems = problems;
        Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &self))
    }
}

async fn new_form(
    State(app): State<AppState>,
    SignedIn(session): SignedIn,
    ClientInfo(who): ClientInfo,
) -> Result<Response, PageError> {
    admin(&app, &session, &who).await?;
    Ok(render(StatusCode::OK, &ClientPage::new(&session, None, ClientForm::of(&default_client()))))
}

/// The answer to registering a client or rotating its secret: the secret, this once.
#[derive(Template)]
#[template(path = "admin_client_secret.html")]
struct SecretPage {
    csrf: String,
    is_admin: bool,
    client: ClientRow,
    secret: Option<String>,
    registered: bool,
}

impl SecretPage {
    fn new(session: &BrowserSession, client: &ClientRecord, secret: Option<String>, registered: bool) -> Self {
        Self { csrf: session.csrf.clone(), is_admin: true, client: ClientRow::new(client), secret, registered }
    }
}

async fn create(
    State(app): State<AppState>,
    ClientInfo(who): ClientInfo,
    SignedInForm(session, pairs): SignedInForm<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let actor = admin(&app, &session, &who).await?;
    let form = ClientForm::posted(pairs);
    match app.create_client(actor, form.settings(true), &who).await {
        Ok(issued) => Ok(render(StatusCode::CREATED, &SecretPage::new(&session, &issued.client, issued.secret, true))),
        Err(e) => ClientPage::new(&session, None, form).refused(e),
    }
}

async fn edit(
    State(app): State<AppState>,
    SignedIn(session): SignedIn,
    ClientInfo(who): ClientInfo,
    Path(client_id): Path<String>,
    Query(q): Query<Done>,
) -> Result<Response, PageError> {
    admin(&app, &session, &who).await?;
    let mut page = ClientPage::of(&session, &app.find_client(&client_id).await?);
    page.notice = (q.done.as_deref() == Some("saved")).then_some("Saved.");
    Ok(render(StatusCode::OK, &page))
}

async fn save(
    State(app): State<AppState>,
    ClientInfo(who): ClientInfo,
    Path(client_id): Path<String>,
    SignedInForm(session, pairs): SignedInForm<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let actor = admin(&app, &session, &who).await?;
    let form = ClientForm::posted(pairs);
    match app.update_client(actor, &client_id, form.settings(false), &who).await {
        Ok(client) => Ok(Redirect::to(&format!("/admin/clients/{}?done=saved", client.client_id)).into_response()),
        Err(e) => ClientPage::new(&session, Some(&app.find_client(&client_id).await?), form).refused(e),
    }
}

async fn rotate(
    State(app): State<AppState>,
    ClientInfo(who): ClientInfo,
    Path(client_id): Path<String>,
    SignedInForm(session, NoFields {}): SignedInForm<NoFields>,
) -> Result<Response, PageError> {
    let actor = admin(&app, &session, &who).await?;
    let secret = app.rotate_client_secret(actor, &client_id, &who).await?;
    let client = app.find_client(&client_id).await?;
    Ok(render(StatusCode::OK, &SecretPage::new(&session, &client, Some(secret), false)))
}

#[derive(Deserialize)]
struct DeleteForm {
    #[serde(default)]
    confirm: String,
}

async fn remove(
    State(app): State<AppState>,
    ClientInfo(who): ClientInfo,
    Path(client_id): Path<String>,
    SignedInForm(session, form): SignedInForm<DeleteForm>,
) -> Result<Response, PageError> {
    let actor = admin(&app, &session, &who).await?;
    if form.confirm != "yes" {
        let mut page = ClientPage::of(&session, &app.find_client(&client_id).await?);
        let message = "Tick “Yes, delete this client” to delete it. Nothing was deleted.".into();
        page.problems.push(FieldError { field: "confirm", message });
        return Ok(render(StatusCode::BAD_REQUEST, &page));
    }
    app.delete_client(actor, &client_id, &who).await?;
    Ok(Redirect::to("/admin/clients?done=deleted").into_response())
}
