//! One core per operation: each operation the API and the dashboard share (list, read, publish
//! or change a prompt, a project's settings, a model config, a template or A/B test, an alert
//! channel, a trace) is one plain function here, taking the state, the caller (`KeyOwner`) and
//! typed input, returning a typed result or the shared `ApiError`. `http/` and `ui/` both call
//! them and only shape the answer (JSON, or a page); neither imports the other.

pub mod alerts;
pub mod model_configs;
pub mod prices;
pub mod project;
pub mod prompts;
pub mod templates;
pub mod traces;
