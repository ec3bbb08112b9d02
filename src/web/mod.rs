//! What every handler shares, API and dashboard alike: the state a handler reaches
//! ([`AppState`]), the one error type and its JSON shape ([`error`]), the extractors that
//! authenticate a caller and read a body, a path or a query ([`auth`], [`body`], [`query`]),
//! and the guards that limit and admit requests ([`limits`], [`admission`]).

pub mod admission;
pub mod auth;
pub mod body;
pub mod error;
pub mod limits;
pub mod query;

use std::sync::Arc;

use tokio::sync::Notify;

pub use error::{ApiError, ApiResult};

use crate::config::Settings;
use crate::store::Store;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub settings: Arc<Settings>,
    /// Woken after every committed ingest so the embedding worker starts at once.
    pub samples_arrived: Arc<Notify>,
    /// Rate limits, load shedding and the key cache (see [`limits`]).
    pub guards: Arc<limits::Guards>,
    /// Renders `/metrics`; none when no recorder is installed (in-process tests).
    pub prometheus: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

impl AppState {
    pub fn new(store: Store, settings: Settings, samples_arrived: Arc<Notify>) -> Self {
        let guards = Arc::new(limits::Guards::new(&settings));
        AppState { store, settings: Arc::new(settings), samples_arrived, guards, prometheus: None }
    }
}
