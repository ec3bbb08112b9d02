//! The HTTP listener: hyper's connection handling with the limits `axum::serve` does not set.
//! - A connection has `header_read_timeout` to send a request's headers, and the same time
//!   when idle between requests (hyper starts that timer as soon as it waits for the next
//!   request), so a half-sent header or an idle keep-alive connection cannot hold a socket and a
//!   task for ever.
//! - At most `max_connections` are open: beyond that the listener stops accepting until one
//!   closes (the kernel's backlog queues the rest), so a flood of connections cannot exhaust
//!   file descriptors or memory.
//! - On shutdown it stops accepting at once, closes idle connections, lets in-flight requests
//!   finish, and gives up on whatever is left after `shutdown_grace`, so no client can delay the
//!   exit past that deadline.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;

#[derive(Debug, Clone, Copy)]
pub struct ServeSettings {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
    pub shutdown_grace: Duration,
}

/// How long after the listener closes idle connections are left open: a client that just
/// connected has this long to send its request, which is then answered, instead of having the
/// connection closed under it.
const FIRST_REQUEST_WINDOW: Duration = Duration::from_millis(300);

/// Serves `app` on `listener` until `shutdown` resolves, then drains as described above.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    settings: ServeSettings,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(settings.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(settings.header_read_timeout)
        .keep_alive_timeout(settings.header_read_timeout);
    let connections = Connections { builder, graceful: GracefulShutdown::new(), app };
    let open = Arc::new(Semaphore::new(settings.max_connections));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = open.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // e.g. EMFILE: wait a little instead of spinning on the error
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        connections.serve(stream, peer, Some(permit));
    }
    // Connections the kernel already completed are served too: closing the listener would
    // reset them after their client saw the connection succeed.
    while let Ok(Ok((stream, peer))) = tokio::time::timeout(Duration::from_millis(1), listener.accept()).await {
        connections.serve(stream, peer, None);
    }
    drop(listener);
    tracing::info!("stopped accepting connections; finishing in-flight requests");
    let drained = async {
        tokio::time::sleep(FIRST_REQUEST_WINDOW.min(settings.shutdown_grace / 4)).await;
        connections.graceful.shutdown().await;
    };
    tokio::select! {
        () = drained => tracing::info!("all connections closed"),
        () = tokio::time::sleep(settings.shutdown_grace) => {
            tracing::warn!(grace_secs = settings.shutdown_grace.as_secs_f64(), "connections still open at the shutdown deadline: closing them");
        }
    }
    Ok(())
}

/// What every connection is served with.
struct Connections {
    builder: Builder<TokioExecutor>,
    graceful: GracefulShutdown,
    app: Router,
}

impl Connections {
    /// Serves one connection in its own task, holding `permit` (a place under
    /// `max_connections`) until it closes.
    fn serve(&self, stream: TcpStream, peer: SocketAddr, permit: Option<OwnedSemaphorePermit>) {
        let _ = stream.set_nodelay(true);
        let app = self.app.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            // handlers that limit by client address read it from here
            request.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
            let app = app.clone();
            async move { Ok::<_, Infallible>(app.oneshot(request.map(Body::new)).await.unwrap_or_else(|e| match e {})) }
        });
        let connection = self.builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
        let connection = self.graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
            drop(permit);
        });
    }
}
