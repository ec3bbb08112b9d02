//! The dashboard, served by the binary at `/`: server-rendered HTML (maud) with embedded
//! assets. Signing in exchanges an API key for a session cookie ([`session`]); a session sees
//! only its key's project.

mod assets;
mod pages;
mod session;

use std::collections::HashMap;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use crate::apikey;
use crate::http::AppState;
use crate::store::now_ms;
use session::{redirect, SignedIn};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(prompts))
        .route("/ui/sign-in", get(sign_in_form).post(sign_in))
        .route("/ui/sign-out", post(sign_out))
        .route(assets::STYLESHEET_URL, get(assets::stylesheet))
        .route("/favicon.ico", get(assets::favicon))
}

fn html_page(status: StatusCode, markup: maud::Markup) -> Response {
    // Pages show project data: never cached by the browser or a proxy.
    (status, [(header::CACHE_CONTROL, "no-store")], markup).into_response()
}

async fn sign_in_form() -> Response {
    html_page(StatusCode::OK, pages::sign_in(None))
}

#[derive(Deserialize)]
struct SignInForm {
    #[serde(default)]
    api_key: String,
}

async fn sign_in(State(state): State<AppState>, headers: HeaderMap, Form(form): Form<SignInForm>) -> Response {
    if !session::same_origin(&headers) {
        return pages::error_page(StatusCode::FORBIDDEN, "This form must be sent from this server's own page.");
    }
    let key_hash = apikey::hash(form.api_key.trim());
    match state.store.find_active_key(&key_hash).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return html_page(
                StatusCode::UNAUTHORIZED,
                pages::sign_in(Some("That API key is not valid or was revoked.")),
            )
        }
        Err(e) => return pages::error_page(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
    let token = session::new_token();
    let expires = now_ms() + session::SESSION_HOURS * 3_600_000;
    if let Err(e) =
        state.store.create_ui_session(&session::token_hash(&token), &key_hash, &session::new_token(), expires).await
    {
        return pages::error_page(StatusCode::SERVICE_UNAVAILABLE, &e.to_string());
    }
    let mut response = redirect("/");
    if let Ok(value) = session::cookie(Some(&token), &headers, &state).parse() {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf_token: String,
}

async fn sign_out(
    State(state): State<AppState>,
    signed_in: SignedIn,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !session::same_origin(&headers) || !session::csrf_ok(&signed_in.session, &form.csrf_token) {
        return pages::error_page(
            StatusCode::FORBIDDEN,
            "This form has expired or did not come from this page; reload and try again.",
        );
    }
    if let Err(e) = state.store.delete_ui_session(&signed_in.token_hash).await {
        return pages::error_page(StatusCode::SERVICE_UNAVAILABLE, &e.to_string());
    }
    let mut response = redirect("/ui/sign-in");
    if let Ok(value) = session::cookie(None, &headers, &state).parse() {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

async fn prompts(State(state): State<AppState>, signed_in: SignedIn) -> Response {
    let project = signed_in.session.project_id;
    let (rows, baselines) =
        match tokio::try_join!(state.store.prompt_configs(project), state.store.baselines(project, None)) {
            Ok(found) => found,
            Err(e) => return pages::error_page(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
        };
    let mut scores: HashMap<(i64, crate::domain::PromptVersion), (Option<f64>, Option<f64>)> = HashMap::new();
    for b in &baselines {
        scores.insert((b.prompt_id, b.version), (b.semantic_score, b.length_score));
    }
    let active: HashMap<i64, crate::domain::PromptVersion> =
        rows.iter().map(|r| (r.prompt.id, r.prompt.active_prompt)).collect();
    let latest = |id: i64| active.get(&id).and_then(|v| scores.get(&(id, *v))).copied().unwrap_or((None, None));
    html_page(StatusCode::OK, pages::prompts(&signed_in.session, &rows, &latest))
}
