//! DriftBalloon server library: everything the `driftballoon` binary runs, exposed so tests and
//! benchmarks can drive the drift engine and the embedder directly.

pub mod alerts;
pub mod apikey;
pub mod app;
pub mod config;
pub mod cost;
pub mod decode;
pub mod domain;
pub mod drift;
pub mod embed;
pub mod http;
pub mod ingest;
pub mod observe;
pub mod ops;
pub mod resources;
pub mod retention;
pub mod server;
pub mod store;
pub mod ui;
pub mod validate;
pub mod web;
pub mod worker;
