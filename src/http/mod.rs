//! The JSON API's handlers, one module per resource: each reads its request with the shared
//! extractors (`crate::web`), calls the operation (`crate::ops`) the dashboard calls too, and
//! answers JSON. The router that mounts them is `crate::app`.

pub mod alerts;
pub mod config;
pub mod health;
pub mod keys;
pub mod logs;
pub mod metrics;
pub mod model_configs;
pub mod monitoring;
pub mod openapi;
pub mod otlp;
pub mod otlp_logs;
pub mod otlp_traces;
pub mod prices;
pub mod project;
pub mod prompts;
pub mod templates;
pub mod traces;
