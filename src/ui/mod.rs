//! The dashboard, served by the binary at `/`: server-rendered HTML (maud) with embedded
//! assets. Signing in exchanges an API key for a session cookie ([`session`]); a session sees
//! only its key's project.

mod alerts;
mod assets;
mod charts;
mod cost;
mod forms;
mod layout;
mod model_configs;
mod project;
mod prompt_detail;
mod prompts;
mod session;
mod templates;
mod traces;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use serde::Deserialize;

use crate::apikey;
use crate::domain::KeyScope;
use crate::store::{now_ms, KeyOwner};
use crate::web::AppState;
use session::{redirect, PostedForm, SignedIn};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(prompts::overview))
        .route("/ui/prompts/{name}", get(prompt_detail::detail))
        .route("/ui/prompts/{name}/settings", post(prompt_detail::save_settings))
        .route("/ui/prompts/{name}/reset", get(prompt_detail::confirm_reset).post(prompt_detail::reset))
        .route("/ui/model-configs", get(model_configs::list).post(model_configs::publish))
        .route("/ui/model-configs/{key}", get(model_configs::detail))
        .route("/ui/templates", get(templates::index).post(templates::publish_template))
        .route("/ui/templates/{key}", get(templates::template_detail))
        .route("/ui/ab-tests", post(templates::publish_ab_test))
        .route("/ui/ab-tests/{key}", get(templates::ab_test_detail))
        .route("/ui/traces", get(traces::list))
        .route("/ui/traces/{trace_id}", get(traces::detail))
        .route("/ui/alerts", get(alerts::list).post(alerts::create))
        .route("/ui/alerts/{id}", get(alerts::detail))
        .route("/ui/alerts/{id}/{action}", post(alerts::act))
        .route("/ui/project", get(project::show).post(project::save))
        .route("/ui/sign-in", get(sign_in_form).post(sign_in))
        .route("/ui/sign-out", post(sign_out))
        .route(assets::STYLESHEET_URL, get(assets::stylesheet))
        .route(assets::SCRIPT_URL, get(assets::script))
        .route("/favicon.ico", get(assets::favicon))
        .route("/ui/{*rest}", get(page_not_found))
}

/// A dashboard address that names no page: an HTML answer, not the API's JSON one.
async fn page_not_found() -> Response {
    layout::error_page(StatusCode::NOT_FOUND, "There is no such page.")
}

/// Everything but RFC 3986's unreserved characters is encoded, so a name stays readable in
/// the address bar (`support-bot`, not `support%2Dbot`) and nothing in it can end a path
/// segment or a query value.
const NOT_UNRESERVED: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Percent-encodes a path segment or query value.
pub fn encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, NOT_UNRESERVED).to_string()
}

/// The page of a prompt (also the link alerts send).
pub fn prompt_href(name: &str) -> String {
    format!("/ui/prompts/{}", encode(name))
}

/// What the REST handlers the dashboard calls see: the session's project, as a key would.
/// The session's rights for the REST handlers: only admin keys can sign in (see [`sign_in`]).
/// The caller an operation sees for a signed-in dashboard user: the session's project, as
/// its admin (signing in takes an admin key).
fn owner(signed_in: &SignedIn) -> KeyOwner {
    KeyOwner {
        project_id: signed_in.session.project_id,
        capture_content: signed_in.session.capture_content,
        scope: KeyScope::Admin,
    }
}

async fn sign_in_form() -> Response {
    layout::page(StatusCode::OK, layout::sign_in(None))
}

#[derive(Deserialize)]
struct SignInForm {
    #[serde(default)]
    api_key: String,
}

async fn sign_in(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    if !session::same_origin(&headers) {
        return layout::error_page(StatusCode::FORBIDDEN, "This form must be sent from this server's own page.");
    }
    // the API's failed-key budget per address applies to the form too
    let ip = peer.map(|Extension(ConnectInfo(addr))| addr.ip());
    let key_hash = apikey::hash(form.api_key.trim());
    let Ok(check) = state.guards.admit_key_check(ip, &key_hash) else {
        return layout::page(
            StatusCode::TOO_MANY_REQUESTS,
            layout::sign_in(Some("Too many invalid keys from this address: wait a minute and try again.")),
        );
    };
    let found = state.store.find_active_key(&key_hash).await;
    if let Ok(Some(_)) = found {
        state.guards.key_check_passed(check);
    }
    match found {
        Ok(Some(owner)) if owner.scope == KeyScope::Admin => {}
        Ok(Some(_)) => {
            // an ingest key is embedded in apps; the dashboard can change everything
            return layout::page(
                StatusCode::FORBIDDEN,
                layout::sign_in(Some(
                    "That is an ingest key, for SDKs and exporters. The dashboard needs an admin key \
                     (driftballoon keys create --project NAME --scope admin).",
                )),
            );
        }
        Ok(None) => {
            state.guards.key_check_failed();
            return layout::page(
                StatusCode::UNAUTHORIZED,
                layout::sign_in(Some("That API key is not valid or was revoked.")),
            );
        }
        Err(e) => return layout::error_page(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
    let token = session::new_token();
    let expires = now_ms() + session::SESSION_HOURS * 3_600_000;
    if let Err(e) =
        state.store.create_ui_session(&session::token_hash(&token), &key_hash, &session::new_token(), expires).await
    {
        return layout::error_page(StatusCode::SERVICE_UNAVAILABLE, &e.to_string());
    }
    let mut response = redirect("/");
    if let Ok(value) = session::cookie(Some(&token), &headers, &state).parse() {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

async fn sign_out(State(state): State<AppState>, posted: PostedForm) -> Response {
    let PostedForm { signed_in, headers, .. } = posted;
    if let Err(e) = state.store.delete_ui_session(&signed_in.token_hash).await {
        return layout::error_page(StatusCode::SERVICE_UNAVAILABLE, &e.to_string());
    }
    let mut response = redirect("/ui/sign-in");
    if let Ok(value) = session::cookie(None, &headers, &state).parse() {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}
