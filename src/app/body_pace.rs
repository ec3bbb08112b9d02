//! Request bodies must keep arriving. A body has `body_read_timeout_secs` from the start of its
//! request, plus a second for every `body_min_bytes_per_sec` bytes received; a body slower than
//! that ends in an error for whoever reads it, and the request is answered `408 body_too_slow`,
//! which frees its slot and closes its connection.
//!
//! Why: a client can announce `Content-Length: 1000`, send five bytes and wait. Each such
//! request held a request slot until `request_timeout_secs` (30 s); 530 of them took every slot,
//! and through the sign-in form (which reads its body before any check) without a key. The
//! header read timeout does not cover bodies, and the request timeout is sized for slow work,
//! not slow clients.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::Frame;
use tokio::time::{Instant, Sleep};

use crate::web::error::ApiError;
use crate::web::AppState;

/// How fast a body must arrive.
#[derive(Debug, Clone, Copy)]
struct Pace {
    grace: Duration,
    min_bytes_per_sec: u64,
}

impl Pace {
    /// When a body that started at `started` and has `received` bytes so far is too slow.
    fn deadline(&self, started: Instant, received: u64) -> Instant {
        started + self.grace + Duration::from_secs_f64(received as f64 / self.min_bytes_per_sec as f64)
    }
}

/// A body that fails once it falls behind its [`Pace`], and says so in `too_slow`.
struct PacedBody {
    inner: Body,
    pace: Pace,
    started: Instant,
    received: u64,
    timer: Pin<Box<Sleep>>,
    too_slow: Arc<AtomicBool>,
}

impl http_body::Body for PacedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                    this.timer.as_mut().reset(this.pace.deadline(this.started, this.received));
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                if this.timer.as_mut().poll(cx).is_ready() {
                    this.too_slow.store(true, Ordering::Relaxed);
                    return Poll::Ready(Some(Err(axum::Error::new("the request body arrived too slowly"))));
                }
                Poll::Pending
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Middleware: every request body is paced; a request whose body fell behind is answered 408.
pub async fn pace_bodies(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let pace = Pace {
        grace: Duration::from_secs(state.settings.body_read_timeout_secs),
        min_bytes_per_sec: state.settings.body_min_bytes_per_sec,
    };
    let too_slow = Arc::new(AtomicBool::new(false));
    let (parts, inner) = request.into_parts();
    let started = Instant::now();
    let body = PacedBody {
        inner,
        pace,
        started,
        received: 0,
        timer: Box::pin(tokio::time::sleep_until(pace.deadline(started, 0))),
        too_slow: too_slow.clone(),
    };
    let response = next.run(Request::from_parts(parts, Body::new(body))).await;
    if !too_slow.load(Ordering::Relaxed) {
        return response;
    }
    crate::observe::body_too_slow();
    let mut response = ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "body_too_slow",
        format!(
            "the request body arrived too slowly: a body has {} s plus a second per {} bytes",
            pace.grace.as_secs(),
            pace.min_bytes_per_sec
        ),
    )
    .into_response();
    // the rest of the body is never read: the connection cannot carry another request
    response.headers_mut().insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allowance_grows_with_what_arrived() {
        let pace = Pace { grace: Duration::from_secs(10), min_bytes_per_sec: 1024 };
        let start = Instant::now();
        assert_eq!(pace.deadline(start, 0), start + Duration::from_secs(10));
        assert_eq!(pace.deadline(start, 2048), start + Duration::from_secs(12));
    }
}
