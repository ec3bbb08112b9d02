//! `driftballoon`: the self-hosted LLM drift-detection server and its admin commands.

use clap::{Parser, Subcommand};
use driftballoon::config::Settings;
use driftballoon::domain::KeyScope;
use driftballoon::server;

#[derive(Parser)]
#[command(name = "driftballoon", version, about = "Self-hosted LLM drift-detection server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (brings the schema up to date first).
    Serve,
    /// Bring the database schema up to date and exit.
    Migrate,
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key for a project (created if needed); prints the key as the last line.
    Create {
        #[arg(long)]
        project: String,
        /// `ingest`: send logs, traces, sessions and metrics and read configs and prompts (give
        /// this to apps); `admin`: everything, including the dashboard.
        #[arg(long, default_value = "admin", value_parser = parse_scope)]
        scope: KeyScope,
    },
    /// List keys: prefix, project, created, revoked.
    List,
    /// Revoke the key with this prefix (as `keys list` shows it) or this full key.
    Revoke { prefix: String },
}

fn parse_scope(raw: &str) -> Result<KeyScope, String> {
    raw.parse().map_err(|_| format!("`{raw}` is not a scope: use `ingest` or `admin`"))
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load() {
        Ok(s) => s,
        Err(message) => {
            eprintln!("driftballoon: {message}");
            return std::process::ExitCode::from(2);
        }
    };
    server::init_tracing(&settings.log);
    driftballoon::resources::tune_malloc();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("driftballoon: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve => server::serve(settings).await,
            Command::Migrate => server::migrate(&settings).await,
            Command::Keys { command } => match command {
                KeysCommand::Create { project, scope } => server::keys_create(&settings, &project, scope).await,
                KeysCommand::List => server::keys_list(&settings).await,
                KeysCommand::Revoke { prefix } => server::keys_revoke(&settings, &prefix).await,
            },
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("driftballoon: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
