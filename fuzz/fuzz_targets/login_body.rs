//! The login body, as JSON or as the OAuth password grant's form: every input is a login request or one
//! of the API's client errors, never a panic or a server error.
#![no_main]

use axum::{
    body::Body,
    extract::FromRequest,
    http::{Request, StatusCode, header},
};
use futures_util::FutureExt;
use latchkey::http::extract::LoginBody;
use libfuzzer_sys::fuzz_target;

// The first byte picks the content type (odd: the form), the rest is the body.
fuzz_target!(|input: &[u8]| {
    let Some((kind, body)) = input.split_first() else { return };
    let content_type = if kind % 2 == 1 { "application/x-www-form-urlencoded" } else { "application/json" };
    let request = Request::builder()
        .method("POST")
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body.to_vec()))
        .expect("a request");
    let parsed = LoginBody::from_request(request, &()).now_or_never().expect("a body in memory is read at once");
    if let Err(refused) = parsed {
        let status = axum::response::IntoResponse::into_response(refused).status();
        assert!(
            [StatusCode::BAD_REQUEST, StatusCode::UNPROCESSABLE_ENTITY, StatusCode::PAYLOAD_TOO_LARGE]
                .contains(&status),
            "login body {body:?} answered {status}"
        );
    }
});
