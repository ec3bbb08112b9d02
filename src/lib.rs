//! DriftBalloon server library: everything the `driftballoon` binary runs, exposed so tests and
//! benchmarks can drive the drift engine and the embedder directly.

pub mod alerts;
pub mod apikey;
pub mod config;
pub mod domain;
pub mod drift;
pub mod embed;
pub mod http;
pub mod observe;
pub mod resources;
pub mod retention;
pub mod server;
pub mod store;
pub mod traces;
pub mod ui;
pub mod validate;
pub mod worker;
