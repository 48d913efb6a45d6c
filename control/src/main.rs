//! `keygate`: the control-plane command line.

use clap::{Parser, Subcommand};
use keygate_control::auth::Role;
use keygate_control::config::{Settings, SettingsArgs};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "keygate",
    version,
    about = "keygate: issue, rotate and check keys"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane (REST API and dashboard); migrations run on start.
    Serve(SettingsArgs),
    /// Apply database migrations, then exit.
    Migrate(SettingsArgs),
    /// Manage the people who can sign in.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage organisations (tenants).
    #[command(subcommand)]
    Org(OrgCommand),
    /// Inspect and retry edge delivery.
    #[command(subcommand)]
    Outbox(OutboxCommand),
}

#[derive(Subcommand)]
enum OutboxCommand {
    /// List the records the edge refused and that were set aside (dead letters).
    DeadLetters {
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// Put dead letters back in the delivery queue (audited).
    Retry {
        /// Retry every dead letter.
        #[arg(long, conflicts_with = "digest")]
        all: bool,
        /// Retry the dead letters of one key, by its digest (64 hex characters).
        #[arg(required_unless_present = "all")]
        digest: Option<String>,
        #[command(flatten)]
        settings: SettingsArgs,
    },
}

#[derive(Subcommand)]
enum OrgCommand {
    /// Create another organisation with its first owner.
    Add {
        /// The organisation's name.
        #[arg(long)]
        name: String,
        /// Its first owner's email address.
        #[arg(long)]
        owner: String,
        #[command(flatten)]
        settings: SettingsArgs,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Invite an email address (the first user of an empty instance becomes its owner).
    Add {
        /// The address that may sign in.
        #[arg(long)]
        email: String,
        /// owner, admin or member.
        #[arg(long, default_value = "member")]
        role: String,
        #[command(flatten)]
        settings: SettingsArgs,
    },
}

fn init_logging(format: &str) {
    let filter = EnvFilter::try_from_env("KEYGATE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn add_user(args: SettingsArgs, email: &str, role: &str) -> Result<(), String> {
    let settings = Settings::resolve(args)?;
    init_logging(&settings.log_format);
    let role = Role::parse(role).ok_or("role must be owner, admin or member")?;
    let state = keygate_control::server::build_state(settings).await?;
    let (id, _org) = keygate_control::members::add_member(&state.db, None, email, role)
        .await
        .map_err(|e| e.message)?;
    println!("added {email} (user {id}); they can now sign in with a code sent to that address");
    Ok(())
}

async fn add_org(args: SettingsArgs, name: &str, owner: &str) -> Result<(), String> {
    let settings = Settings::resolve(args)?;
    init_logging(&settings.log_format);
    let state = keygate_control::server::build_state(settings).await?;
    let (org, _) = keygate_control::members::create_organisation(&state.db, name, owner)
        .await
        .map_err(|e| e.message)?;
    println!("created organisation {name} ({org}); {owner} can sign in as its owner");
    Ok(())
}

async fn list_dead_letters(args: SettingsArgs, json: bool) -> Result<(), String> {
    let settings = Settings::resolve(args)?;
    init_logging(&settings.log_format);
    let state = keygate_control::server::build_state(settings).await?;
    let letters = keygate_control::outbox::dead_letters(&state.db)
        .await
        .map_err(|e| format!("database: {e}"))?;
    if json {
        for l in &letters {
            println!("{}", serde_json::to_string(l).map_err(|e| e.to_string())?);
        }
    } else if letters.is_empty() {
        println!("no dead letters");
    } else {
        println!(
            "{:<64}  {:<36}  {:>16}  reason",
            "key digest", "workspace", "version"
        );
        for l in &letters {
            println!(
                "{:<64}  {:<36}  {:>16}  {}",
                l.key_digest, l.workspace_id, l.version, l.reason
            );
        }
    }
    Ok(())
}

async fn retry_dead_letters(args: SettingsArgs, digest: Option<String>) -> Result<(), String> {
    let digest = match digest {
        Some(hex) => Some(
            keygate_shared::key::KeyDigest::from_hex(&hex)
                .ok_or("a key digest is 64 hexadecimal characters")?,
        ),
        None => None,
    };
    let settings = Settings::resolve(args)?;
    init_logging(&settings.log_format);
    let state = keygate_control::server::build_state(settings).await?;
    let n = keygate_control::outbox::retry_dead_letters(
        &state.db,
        digest.as_ref(),
        "keygate outbox retry (CLI)",
    )
    .await
    .map_err(|e| format!("database: {e}"))?;
    println!("{n} dead letter(s) queued for delivery again; a running control plane sends them within a second");
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => match Settings::resolve(args) {
            Ok(settings) => {
                init_logging(&settings.log_format);
                keygate_control::server::serve(settings).await
            }
            Err(e) => Err(e),
        },
        Command::Migrate(args) => match Settings::resolve(args) {
            Ok(settings) => {
                init_logging(&settings.log_format);
                keygate_control::server::build_state(settings)
                    .await
                    .map(|_| {
                        println!("migrations applied");
                    })
            }
            Err(e) => Err(e),
        },
        Command::User(UserCommand::Add {
            email,
            role,
            settings,
        }) => add_user(settings, &email, &role).await,
        Command::Org(OrgCommand::Add {
            name,
            owner,
            settings,
        }) => add_org(settings, &name, &owner).await,
        Command::Outbox(OutboxCommand::DeadLetters { json, settings }) => {
            list_dead_letters(settings, json).await
        }
        Command::Outbox(OutboxCommand::Retry {
            all: _,
            digest,
            settings,
        }) => retry_dead_letters(settings, digest).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keygate: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
