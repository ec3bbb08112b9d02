//! What each command does: open the store, then serve or administer keys.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{watch, Notify};

use crate::alerts::dispatcher::{self, DispatcherSettings};
use crate::apikey;
use crate::app;
use crate::app::serve::ServeSettings;
use crate::config::{redact_url, Settings};
use crate::domain::KeyScope;
use crate::embed::EmbedderSettings;
use crate::retention::PrunerSettings;
use crate::store::{PoolSettings, Store};
use crate::web::AppState;
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

async fn create_key(store: &Store, project: &str, scope: KeyScope) -> anyhow::Result<String> {
    let project_id = store.ensure_project(project).await?;
    let key = apikey::generate();
    store.insert_api_key(project_id, &key.prefix, &key.hash, scope).await?;
    Ok(key.plain)
}

pub async fn keys_create(settings: &Settings, project: &str, scope: KeyScope) -> anyhow::Result<()> {
    let project = project.trim();
    anyhow::ensure!(!project.is_empty() && project.chars().count() <= 200, "--project must be 1 to 200 characters");
    let store = open_store(settings).await?;
    let key = create_key(&store, project, scope).await?;
    store.close().await;
    println!("created an {scope} API key for project `{project}`; it is shown only once:");
    println!("{key}");
    Ok(())
}

pub async fn keys_list(settings: &Settings) -> anyhow::Result<()> {
    let store = open_store(settings).await?;
    let keys = store.list_api_keys().await?;
    store.close().await;
    println!("{:<16} {:<7} {:<24} {:<15} REVOKED_AT_MS", "PREFIX", "SCOPE", "PROJECT", "CREATED_AT_MS");
    for k in keys {
        let revoked = k.revoked_at.map(|t| t.to_string()).unwrap_or_else(|| "-".into());
        println!("{:<16} {:<7} {:<24} {:<15} {revoked}", k.prefix, k.scope.as_str(), k.project_name, k.created_at);
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

/// Serves `/metrics` on `metrics_listen_addr` when one is set, until the background stops.
async fn start_metrics_listener(
    state: &AppState,
    settings: &Settings,
    mut stopped: watch::Receiver<bool>,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    if settings.metrics_listen_addr.is_empty() {
        return Ok(None);
    }
    let addr = &settings.metrics_listen_addr;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (DRIFTBALLOON_METRICS_LISTEN_ADDR)"))?;
    tracing::info!("metrics on http://{}/metrics", listener.local_addr()?);
    let serve_settings = ServeSettings {
        header_read_timeout: Duration::from_secs(settings.header_read_timeout_secs),
        max_connections: 16,
        shutdown_grace: Duration::from_secs(1),
    };
    let router = app::metrics_router(state.clone());
    Ok(Some(tokio::spawn(async move {
        let stop = async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        if let Err(e) = app::serve::serve(listener, router, serve_settings, stop).await {
            tracing::error!(error = %e, "the metrics listener failed");
        }
    })))
}

/// Writes a secret to a file only this user can read (mode 0600), creating its folder.
fn write_secret_file(path: &Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    // `mode` applies only to a new file; an old one gets the same rights
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(format!("{secret}\n").as_bytes())?;
    file.sync_all()
}

/// On a database with no key at all, create project `default` and one admin key. The key is
/// never logged (logs are collected and kept): it goes to `first_key_file`, readable only by
/// this user, and to stdout when that is a terminal; the log says where it is.
async fn bootstrap_first_key(store: &Store, path: &Path) -> anyhow::Result<()> {
    if store.count_api_keys().await? > 0 {
        return Ok(());
    }
    let key = apikey::generate();
    // written before the key exists, so a key is never created that nobody can read
    write_secret_file(path, &key.plain).with_context(|| {
        format!("cannot write the first API key to {} (DRIFTBALLOON_FIRST_KEY_FILE)", path.display())
    })?;
    let project_id = store.ensure_project("default").await?;
    if let Err(e) = store.insert_api_key(project_id, &key.prefix, &key.hash, KeyScope::Admin).await {
        let _ = std::fs::remove_file(path);
        return Err(e.into());
    }
    tracing::warn!(
        "FIRST START: created project `default` and an admin API key ({}...); the key is in {} (readable only \
         by this user): keep it somewhere safe and delete the file",
        key.prefix,
        path.display()
    );
    if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        println!("first API key (admin, project `default`), shown once: {}", key.plain);
    }
    Ok(())
}

pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    tracing::info!(settings = ?settings, "starting driftballoon {}", env!("CARGO_PKG_VERSION"));
    // Load the model before touching anything else: a server that cannot embed must not start.
    let embedder = if settings.worker_enabled {
        let threads = crate::resources::embed_threads(settings.embed_threads);
        let embedder_settings = EmbedderSettings {
            model_dir: settings.model_dir.clone().into(),
            threads,
            float_weights: settings.embed_float_weights,
        };
        let handle = EmbedderHandle::start(
            embedder_settings,
            settings.embed_max_batch_tokens,
            settings.embed_speed_up_on_backlog,
        )
        .await
        .context("cannot load the embedding model (DRIFTBALLOON_MODEL_DIR)")?;
        tracing::info!(model = handle.model_id(), threads, "embedding model loaded");
        Some(handle)
    } else {
        tracing::info!("embedding worker disabled (DRIFTBALLOON_WORKER_ENABLED=false): API only");
        None
    };
    let store = open_store(&settings).await?;
    bootstrap_first_key(&store, Path::new(&settings.first_key_file)).await?;

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
            sampling: worker::SamplingSettings {
                max_delay: Duration::from_secs(settings.worker_max_scoring_delay_secs),
                min_per_prompt: settings.worker_batch_size,
            },
        };
        worker::spawn(store.clone(), embedder, worker_settings, samples_arrived.clone(), background_stopped.clone())
    });
    let dispatcher = settings
        .alerts_enabled
        .then(|| dispatcher::spawn(store.clone(), dispatcher_settings(&settings), background_stopped.clone()));
    let pruner = crate::retention::spawn(store.clone(), PrunerSettings::from(&settings), background_stopped.clone());
    let serve_settings = settings.clone();
    let mut state = AppState::new(store.clone(), settings, samples_arrived);
    state.prometheus = Some(crate::observe::install()?);
    let metrics_listener = start_metrics_listener(&state, &serve_settings, background_stopped.clone()).await?;
    // On the signal the background tasks are told to stop too (the worker finishes its batch
    // while the HTTP server drains), and the grace period starts for everything.
    let signal = shutdown_signal()?;
    let stop_background = Arc::new(stop_background);
    let stopping_since = Arc::new(std::sync::OnceLock::new());
    let shutdown = {
        let (stop_background, stopping_since) = (stop_background.clone(), stopping_since.clone());
        async move {
            signal.await;
            let _ = stopping_since.set(tokio::time::Instant::now());
            let _ = stop_background.send(true);
        }
    };
    tracing::info!("listening on http://{}", listener.local_addr()?);
    let grace = Duration::from_secs(serve_settings.shutdown_grace_secs);
    let serve_settings = ServeSettings {
        header_read_timeout: Duration::from_secs(serve_settings.header_read_timeout_secs),
        max_connections: serve_settings.max_connections as usize,
        shutdown_grace: grace,
    };
    app::serve::serve(listener, app::router(state), serve_settings, shutdown).await.context("HTTP server failed")?;
    tracing::info!("HTTP server stopped; waiting for the worker and the alert dispatcher");
    let _ = stop_background.send(true);
    // The grace period bounds the background tasks too. A batch in flight is finished or, if
    // this takes too long, its claim expires and another start redoes it; an unfinished alert
    // attempt is claimed again later: nothing is lost either way.
    let deadline = stopping_since.get().copied().unwrap_or_else(tokio::time::Instant::now) + grace;
    if let Some(worker) = worker {
        let _ = tokio::time::timeout_at(deadline, worker).await;
    }
    if let Some(dispatcher) = dispatcher {
        let _ = tokio::time::timeout_at(deadline, dispatcher).await;
    }
    let _ = tokio::time::timeout_at(deadline, pruner).await;
    if let Some(listener) = metrics_listener {
        let _ = tokio::time::timeout_at(deadline, listener).await;
    }
    tokio::time::timeout_at(deadline, store.close()).await.ok();
    tracing::info!("stopped");
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
