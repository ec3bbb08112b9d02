//! The integration tests: one binary (one build, one link, one copy of the harness) with a
//! module per area. Each test starts the real server binary against a fresh database and talks
//! to it over HTTP; `both_backends!` runs a scenario on SQLite and on Postgres.

#[macro_use]
mod common;

mod alerts;
mod api;
mod architecture;
mod bad_input;
mod behaviour;
mod connections;
mod contract;
mod cost;
mod drift;
mod durability;
mod error_shapes;
mod fallom_api;
mod instrumentations;
mod migrations;
mod monitoring;
mod numbers;
mod otlp_limits;
mod otlp_logs;
mod protection;
mod retention;
mod sampling;
mod scopes;
mod sdk;
mod ui;
mod unavailable;
mod worker;
