//! What each command does: open the store, then serve or administer keys.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{watch, Notify};

use crate::alerts::dispatcher::{self, DispatcherSettings};
use crate::apikey;
use crate::config::{redact_url, Settings};
use crate::embed::EmbedderSettings;
use crate::http::{self, AppState};
use crate::store::{PoolSettings, Store};
use crate::worker::{self, EmbedderHandle, WorkerSettings};

pub fn init_tracing(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| "info".into());
    // Logs go to stderr so stdout stays clean for command output (`keys create`).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

async fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    let url = settings.effective_database_url();
    let pool = PoolSettings {
        max_connections: settings.db_max_connections,
        acquire_timeout: Duration::from_millis(settings.db_acquire_timeout_ms),
    };
    Store::open(&url, &pool).await.with_context(|| format!("cannot open database {}", redact_url(&url)))
}

pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let store = open_store(settings).await?;
    store.close().await;
    println!("database schema is up to date");
    Ok(())
}

async fn create_key(store: &Store, project: &str) -> anyhow::Result<String> {
    let project_id = store.ensure_project(project).await?;
    let key = apikey::generate();
    store.insert_api_key(project_id, &key.prefix, &key.hash).await?;
    Ok(key.plain)
}

pub async fn keys_create(settings: &Settings, project: &str) -> anyhow::Result<()> {
    let project = project.trim();
    anyhow::ensure!(!project.is_empty() && project.chars().count() <= 200, "--project must be 1 to 200 characters");
    let store = open_store(settings).await?;
    let key = create_key(&store, project).await?;
    store.close().await;
    println!("created an API key for project `{project}`; it is shown only once:");
    println!("{key}");
    Ok(())
}

pub async fn keys_list(settings: &Settings) -> anyhow::Result<()> {
    let store = open_store(settings).await?;
    let keys = store.list_api_keys().await?;
    store.close().await;
    println!("{:<16} {:<24} {:<15} REVOKED_AT_MS", "PREFIX", "PROJECT", "CREATED_AT_MS");
    for k in keys {
        let revoked = k.revoked_at.map(|t| t.to_string()).unwrap_or_else(|| "-".into());
        println!("{:<16} {:<24} {:<15} {revoked}", k.prefix, k.project_name, k.created_at);
    }
    Ok(())
}

pub async fn keys_revoke(settings: &Settings, prefix: &str) -> anyhow::Result<()> {
    let store = open_store(settings).await?;
    let revoked = store.revoke_api_keys(prefix.trim(), &apikey::hash(prefix.trim())).await?;
    store.close().await;
    anyhow::ensure!(revoked > 0, "no active key matches `{prefix}` (see `driftballoon keys list`)");
    println!("revoked {revoked} key(s)");
    Ok(())
}

/// On a database with no key at all, create project `default` and one key, shown once.
async fn bootstrap_first_key(store: &Store) -> anyhow::Result<()> {
    if store.count_api_keys().await? > 0 {
        return Ok(());
    }
    let key = create_key(store, "default").await?;
    tracing::warn!("FIRST START: created project `default` with API key {key} (shown only this once; create more with `driftballoon keys create --project NAME`)");
    Ok(())
}

pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    tracing::info!(settings = ?settings, "starting driftballoon {}", env!("CARGO_PKG_VERSION"));
    // Load the model before touching anything else: a server that cannot embed must not start.
    let embedder = if settings.worker_enabled {
        let embedder_settings =
            EmbedderSettings { model_dir: settings.model_dir.clone().into(), threads: settings.embed_threads };
        let handle = EmbedderHandle::start(embedder_settings, settings.embed_max_batch_tokens)
            .await
            .context("cannot load the embedding model (DRIFTBALLOON_MODEL_DIR)")?;
        tracing::info!(model = handle.model_id(), threads = settings.embed_threads, "embedding model loaded");
        Some(handle)
    } else {
        tracing::info!("embedding worker disabled (DRIFTBALLOON_WORKER_ENABLED=false): API only");
        None
    };
    let store = open_store(&settings).await?;
    bootstrap_first_key(&store).await?;

    let addr = settings.listen_addr();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (DRIFTBALLOON_LISTEN)"))?;
    let samples_arrived = Arc::new(Notify::new());
    // Stops the background tasks (embedding worker, alert dispatcher) after the HTTP server.
    let (stop_background, background_stopped) = watch::channel(false);
    let worker = embedder.map(|embedder| {
        let worker_settings = WorkerSettings {
            batch_size: settings.worker_batch_size as i64,
            claim_timeout: Duration::from_secs(settings.worker_claim_timeout_secs),
            poll_interval: Duration::from_millis(settings.worker_poll_interval_ms),
            max_attempts: settings.worker_max_attempts as i64,
        };
        worker::spawn(store.clone(), embedder, worker_settings, samples_arrived.clone(), background_stopped.clone())
    });
    let dispatcher = settings
        .alerts_enabled
        .then(|| dispatcher::spawn(store.clone(), dispatcher_settings(&settings), background_stopped));
    let state = AppState { store: store.clone(), settings: Arc::new(settings), samples_arrived };
    let shutdown = shutdown_signal()?;
    tracing::info!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, http::router(state)).with_graceful_shutdown(shutdown).await.context("HTTP server failed")?;
    tracing::info!("in-flight requests finished; stopping the worker");
    let _ = stop_background.send(true);
    if let Some(worker) = worker {
        // A batch in flight is finished or, if this takes too long, its claim expires and
        // another start redoes it: nothing is lost either way.
        let _ = tokio::time::timeout(Duration::from_secs(10), worker).await;
    }
    if let Some(dispatcher) = dispatcher {
        // Attempts in flight finish or time out; an unfinished one is claimed again later.
        let _ = tokio::time::timeout(Duration::from_secs(15), dispatcher).await;
    }
    store.close().await;
    Ok(())
}

fn dispatcher_settings(settings: &Settings) -> DispatcherSettings {
    DispatcherSettings {
        allow_private_networks: settings.alerts_allow_private_networks,
        timeout: Duration::from_millis(settings.alerts_timeout_ms),
        retry_base: Duration::from_millis(settings.alerts_retry_base_ms),
        max_attempts: settings.alerts_max_attempts as i64,
        disable_after: Duration::from_secs(settings.alerts_disable_after_secs),
        poll_interval: Duration::from_millis(settings.alerts_poll_interval_ms),
        concurrency: 8,
        public_url: settings.public_base_url(),
    }
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM; axum then stops accepting and lets in-flight
/// requests finish. The handlers are installed when this is called, not when the future is
/// first polled, so a signal that arrives right after "listening" is not lost.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
    Ok(async move {
        tokio::select! { _ = interrupt.recv() => {}, _ = terminate.recv() => {} }
        tracing::info!("shutdown signal received; finishing in-flight requests");
    })
}
