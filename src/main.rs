//! The `latchkey` command: `serve`, `migrate`, and `user create`.

use std::{io::BufRead, path::PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};
use latchkey::{
    app::Application,
    config::Config,
    domain::{
        access_rules::{AccessRules, Subject, Target},
        roles::Role,
    },
    edge::error::ApiError,
    http::clients::ClientView,
    service::{
        Client, Services,
        accounts::InitialPassword,
        admin::{Actor, UserChanges},
        oauth_clients::ClientSettings,
    },
    store::{Db, users::UserFilter},
};
use tracing_subscriber::EnvFilter;
use zeroize::Zeroizing;

/// glibc's allocator spent about a sixth of `GET /auth/me`'s CPU time in malloc/free under load (perf);
/// mimalloc's per-thread heaps cut that (README, Performance).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Check forward-authentication rules files (LATCHKEY_ACCESS_RULES).
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Manage the token signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Register the applications that sign users in through Latchkey (OpenID Connect clients).
    #[command(subcommand)]
    Client(ClientCommand),
}

#[derive(Subcommand)]
enum ClientCommand {
    /// Register a client; prints it as JSON, with its secret (shown this once) for a confidential one.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        #[arg(long = "post-logout-redirect-uri")]
        post_logout_redirect_uris: Vec<String>,
        /// A public client (single-page or native app): no secret, PKCE required.
        #[arg(long)]
        public: bool,
        /// authorization_code, refresh_token, client_credentials (default: the first two).
        #[arg(long = "grant")]
        grants: Vec<String>,
        /// Default: openid profile email offline_access roles.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// required (default) or implicit.
        #[arg(long)]
        consent: Option<String>,
        #[arg(long)]
        require_mfa: bool,
        #[arg(long)]
        require_pkce: bool,
        /// RS256 (default), EdDSA or ES256.
        #[arg(long)]
        id_token_alg: Option<String>,
        #[arg(long)]
        backchannel_logout_uri: Option<String>,
    },
    /// List the registered clients as JSON.
    List,
    /// Show one client as JSON.
    Show { client_id: String },
    /// Delete a client, with its grants and tokens.
    Delete { client_id: String },
    /// Make a new secret for a confidential client; the old one stops working.
    RotateSecret { client_id: String },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Make a new key of every algorithm current. The old public keys stay published until the tokens they
    /// signed have expired; running instances sign with the new keys within 30 seconds.
    Rotate,
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Validate a rules file: how many rules it has, or the line and the reason it cannot be used.
    Check { file: PathBuf },
    /// Which rule decides a request, and why.
    Explain {
        file: PathBuf,
        /// The original URL, e.g. https://app.example.com/admin
        url: String,
        #[arg(long, default_value = "GET")]
        method: String,
        /// Judge it for this account (email or username; read from the database); else anonymously.
        #[arg(long)]
        user: Option<String>,
        /// With --user: as a session that passed the second factor.
        #[arg(long)]
        mfa: bool,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// List accounts (email, username, role, state), optionally those matching a substring.
    List {
        #[arg(long, default_value = "")]
        query: String,
    },
    /// Change an account's role; its sessions end.
    SetRole {
        /// Email or username.
        user: String,
        #[arg(value_parser = parse_role)]
        role: Role,
    },
    /// Deactivate an account: its sessions end and it can no longer sign in.
    Deactivate { user: String },
    /// Reactivate a deactivated account.
    Reactivate { user: String },
    /// Lift the lockout of an account's email and username.
    Unlock { user: String },
    /// Turn off an account's two-factor authentication (a lost phone); its sessions end.
    ResetMfa { user: String },
    /// Print a one-time password-reset link for an account (to hand to its owner; it works for
    /// LATCHKEY_RESET_TTL_SECONDS, once, and keeps the second factor).
    ResetLink { user: String },
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
        Command::User(command) => user_command(config, command).await,
        Command::Rules(command) => rules_command(config, command).await,
        Command::Client(command) => client_command(config, command).await,
        Command::Keys(KeysCommand::Rotate) => {
            let services = Services::start(config).await?;
            let kids = latchkey::service::keys::rotate(&services.db, &services.sealer).await?;
            println!("{}", serde_json::json!({ "current": kids }));
            Ok(())
        }
    }
}

async fn client_command(config: Config, command: ClientCommand) -> anyhow::Result<()> {
    let services = Services::start(config).await?;
    let who = Client::default();
    let explain = |e: latchkey::error::Error| match e {
        latchkey::error::Error::Validation(problems) => anyhow::anyhow!(
            "{}",
            problems.iter().map(|p| format!("{}: {}", p.field, p.message)).collect::<Vec<_>>().join("; ")
        ),
        other => anyhow::anyhow!("{}", ApiError::from(other).body.message),
    };
    let output = match command {
        ClientCommand::Create {
            name,
            redirect_uris,
            post_logout_redirect_uris,
            public,
            grants,
            scopes,
            consent,
            require_mfa,
            require_pkce,
            id_token_alg,
            backchannel_logout_uri,
        } => {
            let settings = ClientSettings {
                name: Some(name),
                redirect_uris: Some(redirect_uris),
                post_logout_redirect_uris: Some(post_logout_redirect_uris),
                public: Some(public),
                grant_types: (!grants.is_empty()).then_some(grants),
                scopes: (!scopes.is_empty()).then_some(scopes),
                consent,
                require_mfa: Some(require_mfa),
                require_pkce: (require_pkce || public).then_some(true),
                id_token_signed_response_alg: id_token_alg,
                backchannel_logout_uri,
            };
            let issued = services.create_client(Actor::Operator, settings, &who).await.map_err(explain)?;
            serde_json::to_value(ClientView::from(issued))?
        }
        ClientCommand::List => {
            let clients = services.list_clients().await.map_err(explain)?;
            serde_json::to_value(clients.into_iter().map(|c| ClientView::new(c, None)).collect::<Vec<_>>())?
        }
        ClientCommand::Show { client_id } => {
            serde_json::to_value(ClientView::new(services.find_client(&client_id).await.map_err(explain)?, None))?
        }
        ClientCommand::Delete { client_id } => {
            services.delete_client(Actor::Operator, &client_id, &who).await.map_err(explain)?;
            serde_json::json!({ "deleted": client_id })
        }
        ClientCommand::RotateSecret { client_id } => {
            let secret = services.rotate_client_secret(Actor::Operator, &client_id, &who).await.map_err(explain)?;
            serde_json::json!({ "client_id": client_id, "client_secret": secret })
        }
    };
    println!("{}", serde_json::to_string_pretty(&output)?);
    Ok(())
}

async fn rules_command(config: Config, command: RulesCommand) -> anyhow::Result<()> {
    let read = |file: &PathBuf| -> anyhow::Result<AccessRules> {
        let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
        AccessRules::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))
    };
    match command {
        RulesCommand::Check { file } => {
            let rules = read(&file)?;
            println!(
                "{}: valid; rules: {}, default policy: {}",
                file.display(),
                rules.rule_count(),
                rules.default_policy().as_str()
            );
        }
        RulesCommand::Explain { file, url, method, user, mfa } => {
            let rules = read(&file)?;
            let uri: axum::http::Uri = url.parse().with_context(|| format!("{url:?} is not a URL"))?;
            let host = uri.host().context("the URL needs a host")?.to_ascii_lowercase();
            let target = Target { host: &host, path: uri.path(), method: &method };
            if !rules.names_host(&host) {
                println!("{host} is not named by any rule: the endpoints refuse it (403)");
            }
            let verdict = match user {
                None => rules.decide(&target, None),
                Some(user) => {
                    let services = Services::start(config).await?;
                    let account = services.find_user(&user).await.map_err(|e| anyhow::anyhow!("{user}: {e}"))?;
                    let view = services.user_view(account.profile.id).await?;
                    let orgs: Vec<_> = view.memberships.iter().map(|(org, role)| (org.slug.as_str(), *role)).collect();
                    rules.decide(&target, Some(&Subject { role: account.profile.role, mfa, orgs: &orgs }))
                }
            };
            let by =
                verdict.rule_line.map_or_else(|| "the default policy".to_string(), |l| format!("the rule at line {l}"));
            println!("{:?} by {by} (policy {}): {}", verdict.outcome, verdict.policy.as_str(), verdict.reason);
        }
    }
    Ok(())
}

async fn user_command(config: Config, command: UserCommand) -> anyhow::Result<()> {
    let services = Services::start(config).await?;
    let operator = Client::default();
    let explain = |e: latchkey::error::Error| anyhow::anyhow!("{}", ApiError::from(e).body.message);
    let target = |user: String| {
        let services = services.clone();
        async move {
            services.find_user(&user).await.map_err(|e| anyhow::anyhow!("{user}: {}", ApiError::from(e).body.message))
        }
    };

    match command {
        UserCommand::List { query } => {
            let (users, total) = services
                .admin_list_users(&UserFilter { q: &query, ..Default::default() }, 1000, 0)
                .await
                .map_err(explain)?;
            for u in users {
                let state = if u.profile.is_active { "active" } else { "deactivated" };
                let mfa = if u.profile.mfa_enabled { "mfa" } else { "-" };
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    u.profile.id,
                    u.profile.email,
                    u.profile.username.unwrap_or_default(),
                    u.profile.role.as_str(),
                    state,
                    mfa
                );
            }
            eprintln!("{total} account(s)");
        }
        UserCommand::SetRole { user, role } => {
            update(&services, &user, UserChanges { role: Some(role), is_active: None }).await?
        }
        UserCommand::Deactivate { user } => {
            update(&services, &user, UserChanges { role: None, is_active: Some(false) }).await?
        }
        UserCommand::Reactivate { user } => {
            update(&services, &user, UserChanges { role: None, is_active: Some(true) }).await?
        }
        UserCommand::Unlock { user } => {
            let id = target(user).await?.profile.id;
            services.admin_unlock(Actor::Operator, id, &operator).await.map_err(explain)?;
            println!("unlocked");
        }
        UserCommand::ResetMfa { user } => {
            let id = target(user).await?.profile.id;
            services.admin_reset_mfa(Actor::Operator, id, &operator).await.map_err(explain)?;
            println!("two-factor authentication turned off");
        }
        UserCommand::ResetLink { user } => {
            println!("{}", services.reset_link(&user, &operator).await.map_err(explain)?);
        }
        UserCommand::Create { email, username, role, password_hash } => {
            let secret = read_stdin_line()?;
            let initial = if password_hash { InitialPassword::Hash(&secret) } else { InitialPassword::Plain(&secret) };
            let user = services.create_user(&email, username.as_deref(), role, initial).await.map_err(explain)?;
            println!("created {} ({}) with role {}", user.profile.email, user.profile.id, user.profile.role.as_str());
        }
    }
    Ok(())
}

/// Changes role or active state as an operator; either change ends the user's sessions.
async fn update(services: &Services, user: &str, changes: UserChanges) -> anyhow::Result<()> {
    let explain = |e: latchkey::error::Error| anyhow::anyhow!("{user}: {}", ApiError::from(e).body.message);
    let id = services.find_user(user).await.map_err(explain)?.profile.id;
    let updated =
        services.admin_update_user(Actor::Operator, id, changes, &Client::default()).await.map_err(explain)?;
    let state = if updated.profile.is_active { "active" } else { "deactivated" };
    println!("{}: role {}, {state}", updated.profile.email, updated.profile.role.as_str());
    Ok(())
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

/// Logs go to standard error: standard output is the commands' answer (`client create` prints JSON).
fn init_tracing(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
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
