//! The `latchkey` command: `serve`, `migrate`, and `user create`.

use std::io::BufRead;

use anyhow::Context;
use clap::{Parser, Subcommand};
use latchkey::{
    app::Application,
    config::Config,
    domain::roles::Role,
    service::{Services, accounts::InitialPassword},
    store::Db,
};
use tracing_subscriber::EnvFilter;
use zeroize::Zeroizing;

#[derive(Parser)]
#[command(
    name = "latchkey",
    version,
    about = "A self-hosted authentication server. Settings come from LATCHKEY_* environment variables."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default when no command is given).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage accounts.
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an account. The password is read from standard input (one line).
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        username: Option<String>,
        #[arg(long, default_value = "viewer", value_parser = parse_role)]
        role: Role,
        /// Read an existing hash (Argon2id, bcrypt `$2b$`, Django `pbkdf2_sha256$`) from standard input
        /// instead of a password; it is upgraded to Argon2id at the user's first login.
        #[arg(long)]
        password_hash: bool,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::from_env()?;
    init_tracing(config.log_json);
    for name in Config::unknown_env_names() {
        tracing::warn!(%name, "unknown setting ignored; check its spelling");
    }
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config).await,
        Command::Migrate => {
            Db::connect(&config.database_url).await?.migrate().await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::User(UserCommand::Create { email, username, role, password_hash }) => {
            let services = Services::start(config).await?;
            let secret = read_stdin_line()?;
            let initial = if password_hash { InitialPassword::Hash(&secret) } else { InitialPassword::Plain(&secret) };
            let user = services
                .create_user(&email, username.as_deref(), role, initial)
                .await
                .map_err(|e| anyhow::anyhow!("{}", latchkey::http::error::ApiError::from(e).body.message))?;
            println!("created {} ({}) with role {}", user.email, user.id, user.role.as_str());
            Ok(())
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let app = Application::build(config).await?;
    tracing::info!(address = %app.local_addr()?, "latchkey is listening");
    app.run_until(shutdown_signal()).await.context("server error")
}

fn read_stdin_line() -> anyhow::Result<Zeroizing<String>> {
    let mut line = Zeroizing::new(String::new());
    std::io::stdin().lock().read_line(&mut line).context("cannot read standard input")?;
    let trimmed = Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_string());
    anyhow::ensure!(!trimmed.is_empty(), "expected the password on standard input");
    Ok(trimmed)
}

fn init_tracing(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if json { builder.json().init() } else { builder.init() }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut sig) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            sig.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = terminate => {} }
    tracing::info!("shutting down");
}
