//! Dashboard sign-in state: an API key is exchanged for a random session token kept in a
//! cookie (HttpOnly, SameSite=Strict, Secure behind https); only its hash is stored. Forms that
//! change state carry the session's CSRF token, and every dashboard POST must come from this
//! origin.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{COOKIE, HOST, LOCATION, ORIGIN};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use rand::RngCore;

use crate::apikey;
use crate::store::UiSession;
use crate::web::AppState;

pub const COOKIE_NAME: &str = "db_session";
/// How long a sign-in lasts.
pub const SESSION_HOURS: i64 = 12;

/// A fresh random token (session or CSRF).
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Session tokens are stored hashed, like API keys: a leaked database holds no live session.
pub fn token_hash(token: &str) -> String {
    apikey::hash(token)
}

fn session_token(headers: &HeaderMap) -> Option<String> {
    headers.get_all(COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == COOKIE_NAME && !value.is_empty()).then(|| value.to_string())
    })
}

/// Whether the browser reached us over https (directly or through a proxy that says so).
fn is_https(headers: &HeaderMap, state: &AppState) -> bool {
    let forwarded = headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|v| v == "https");
    forwarded || state.settings.public_url.trim().starts_with("https://")
}

/// The `Set-Cookie` value that starts (or, with no token, ends) a session.
pub fn cookie(token: Option<&str>, headers: &HeaderMap, state: &AppState) -> String {
    let secure = if is_https(headers, state) { "; Secure" } else { "" };
    match token {
        Some(t) => {
            format!("{COOKIE_NAME}={t}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}", SESSION_HOURS * 3600)
        }
        None => format!("{COOKIE_NAME}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    }
}

/// A request from a signed-in browser. Pages that take it send everyone else to sign in.
pub struct SignedIn {
    pub session: UiSession,
    pub token_hash: String,
}

pub fn redirect(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(LOCATION, to.to_string())]).into_response()
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Some(token) = session_token(&parts.headers) else { return Err(redirect("/ui/sign-in")) };
        let hash = token_hash(&token);
        match state.store.ui_session(&hash).await {
            Ok(Some(session)) => Ok(SignedIn { session, token_hash: hash }),
            Ok(None) => Err(redirect("/ui/sign-in")),
            Err(e) => Err(super::layout::error_page(StatusCode::SERVICE_UNAVAILABLE, &e.to_string())),
        }
    }
}

/// A form posted by a signed-in browser, accepted only from this origin with the session's
/// CSRF token: every state-changing dashboard handler takes one, so none can forget the check.
/// The fields are kept as posted (repeated names and numbered rows included).
pub struct PostedForm {
    pub signed_in: SignedIn,
    pub fields: Vec<(String, String)>,
    /// The request's headers (the sign-out cookie needs to know whether it came over https).
    pub headers: HeaderMap,
}

impl FromRequest<AppState> for PostedForm {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let signed_in = SignedIn::from_request_parts(&mut parts, state).await?;
        let headers = parts.headers.clone();
        let request = Request::from_parts(parts, body);
        let Form(fields) = Form::<Vec<(String, String)>>::from_request(request, state).await.map_err(|e| {
            super::layout::error_page(StatusCode::BAD_REQUEST, &format!("This form could not be read: {e}"))
        })?;
        let token = super::forms::field(&fields, "csrf_token");
        if !same_origin(&headers) || !csrf_ok(&signed_in.session, token) {
            return Err(super::layout::error_page(
                StatusCode::FORBIDDEN,
                "This form has expired or did not come from this page; reload and try again.",
            ));
        }
        Ok(PostedForm { signed_in, fields, headers })
    }
}

/// Compares secrets in time independent of where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A state-changing form is accepted only with the session's CSRF token.
pub fn csrf_ok(session: &UiSession, presented: &str) -> bool {
    same_secret(&session.csrf_token, presented)
}

/// A POST must not come from another site: when the browser names its origin, its host must
/// be ours (SameSite=Strict already keeps the cookie off cross-site requests; this also covers
/// the sign-in form, which has no session yet).
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) else { return true };
    let host = headers.get(HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    let origin_host = origin.split_once("://").map(|(_, rest)| rest).unwrap_or(origin);
    !host.is_empty() && origin_host.eq_ignore_ascii_case(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn reads_the_session_cookie_among_others() {
        let mut h = HeaderMap::new();
        h.insert(COOKIE, HeaderValue::from_static("a=1; db_session=abc; b=2"));
        assert_eq!(session_token(&h).as_deref(), Some("abc"));
        h.insert(COOKIE, HeaderValue::from_static("db_session="));
        assert_eq!(session_token(&h), None);
    }

    #[test]
    fn origin_must_match_host() {
        let mut h = HeaderMap::new();
        h.insert(HOST, HeaderValue::from_static("localhost:8080"));
        assert!(same_origin(&h), "no Origin header: a same-origin form of an older browser");
        h.insert(ORIGIN, HeaderValue::from_static("http://localhost:8080"));
        assert!(same_origin(&h));
        h.insert(ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert!(!same_origin(&h));
        assert!(same_secret("abc", "abc") && !same_secret("abc", "abd") && !same_secret("abc", "ab"));
    }
}
