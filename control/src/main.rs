//! `keygate`: the control-plane command line.

use clap::{Parser, Subcommand};
use keygate_control::config::{Settings, SettingsArgs};
use keygate_control::http::auth::Role;
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
    /// Re-seal every sealed secret under KEYGATE_MASTER_KEY, opening what is still sealed under
    /// KEYGATE_MASTER_KEY_PREVIOUS. In batches, one transaction each; rerun to resume.
    RotateMasterKey {
        /// Rows per transaction.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        batch_size: u32,
        /// Stop after this many batches (a rerun continues where this one stopped).
        #[arg(long)]
        max_batches: Option<u64>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// Which operator keys are configured and in use.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Print the HTTP API's OpenAPI document (what `GET /openapi.json` serves) and exit.
    Openapi {
        /// Print the Markdown reference (`docs/http-api.md`) instead.
        #[arg(long)]
        markdown: bool,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Master key and edge secret ids (current and previous), and how many sealed values are
    /// under each master key id. Prints no secret.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        settings: SettingsArgs,
    },
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

/// The settings, logging and state of a one-shot command.
async fn command_state(args: SettingsArgs) -> Result<keygate_control::http::AppState, String> {
    let settings = Settings::resolve(args)?;
    init_logging(&settings.log_format);
    keygate_control::server::build_state(settings).await
}

async fn add_user(args: SettingsArgs, email: &str, role: &str) -> Result<(), String> {
    let role = Role::parse(role).ok_or("role must be owner, admin or member")?;
    let state = command_state(args).await?;
    let (id, _org) = keygate_control::http::members::add_member(&state.db, None, email, role)
        .await
        .map_err(|e| e.message)?;
    println!("added {email} (user {id}); they can now sign in with a code sent to that address");
    Ok(())
}

async fn add_org(args: SettingsArgs, name: &str, owner: &str) -> Result<(), String> {
    let state = command_state(args).await?;
    let (org, _) = keygate_control::http::members::create_organisation(&state.db, name, owner)
        .await
        .map_err(|e| e.message)?;
    println!("created organisation {name} ({org}); {owner} can sign in as its owner");
    Ok(())
}

async fn list_dead_letters(args: SettingsArgs, json: bool) -> Result<(), String> {
    let state = command_state(args).await?;
    let letters = keygate_control::store::outbox::dead_letters(&state.db)
        .await
        .map_err(|e| e.to_string())?;
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
    let state = command_state(args).await?;
    let n = keygate_control::store::outbox::retry_dead_letters(
        &state.db,
        digest.as_ref(),
        "keygate outbox retry (CLI)",
    )
    .await
    .map_err(|e| e.to_string())?;
    println!("{n} dead letter(s) queued for delivery again; a running control plane sends them within a second");
    Ok(())
}

async fn rotate_master_key(
    args: SettingsArgs,
    batch_size: u32,
    max_batches: Option<u64>,
    json: bool,
) -> Result<(), String> {
    let settings = Settings::resolve(args)?;
    init_logging(&settings.log_format);
    if settings.master_key.is_none() {
        return Err("set KEYGATE_MASTER_KEY to the new master key (and KEYGATE_MASTER_KEY_PREVIOUS to the old one)".into());
    }
    let state = keygate_control::server::build_state(settings).await?;
    let report =
        keygate_control::master_key::rotate(&state.db, &state.keys, batch_size, max_batches)
            .await
            .map_err(|e| format!("{e}; rerun to resume"))?;
    if json {
        println!(
            "{}",
            serde_json::to_string(&report).map_err(|e| e.to_string())?
        );
    } else {
        println!(
            "re-sealed {} value(s) under master key {} in {} batch(es); {} remaining",
            report.resealed,
            state.keys.key_id(),
            report.batches,
            report.remaining
        );
        if report.stopped_early {
            println!("stopped after --max-batches; run again to continue");
        }
        if report.raced > 0 {
            println!(
                "{} value(s) changed meanwhile; run again to cover them",
                report.raced
            );
        }
    }
    if report.unopenable > 0 {
        return Err(format!(
            "{} value(s) open under neither KEYGATE_MASTER_KEY nor KEYGATE_MASTER_KEY_PREVIOUS (see `keygate keys status` for their key ids); they were left untouched",
            report.unopenable
        ));
    }
    if report.remaining == 0 && state.keys.previous_key_id().is_some() {
        println!("every sealed value is under the new key: KEYGATE_MASTER_KEY_PREVIOUS can be removed once sign-in codes and sessions made before the rotation no longer matter (codes live 10 minutes)");
    }
    Ok(())
}

async fn keys_status(args: SettingsArgs, json: bool) -> Result<(), String> {
    let state = command_state(args).await?;
    let status = keygate_control::master_key::status(&state.db, &state.keys, Some(&state.settings))
        .await
        .map_err(|e| e.to_string())?;
    if json {
        println!(
            "{}",
            serde_json::to_string(&status).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    let or_unset = |o: &Option<String>| o.clone().unwrap_or_else(|| "(unset)".into());
    println!("master key           {}", status.master_key_id);
    println!(
        "master key previous  {}",
        or_unset(&status.master_key_previous_id)
    );
    println!("edge secret          {}", or_unset(&status.edge_secret_id));
    println!(
        "edge secret previous {}",
        or_unset(&status.edge_secret_previous_id)
    );
    println!("sealed values:");
    for c in &status.sealed {
        let kid = c.key_id.clone().unwrap_or_else(|| "(no key id)".into());
        let which = if Some(&kid) == Some(&status.master_key_id) {
            "current"
        } else if Some(&kid) == status.master_key_previous_id.as_ref() {
            "previous: run keygate rotate-master-key"
        } else {
            "not current: run keygate rotate-master-key"
        };
        println!("  {:<24} {:<16} {:>8}  {which}", c.column, kid, c.count);
    }
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
        Command::RotateMasterKey {
            batch_size,
            max_batches,
            json,
            settings,
        } => rotate_master_key(settings, batch_size, max_batches, json).await,
        Command::Keys(KeysCommand::Status { json, settings }) => keys_status(settings, json).await,
        Command::Openapi { markdown } => {
            if markdown {
                print!("{}", keygate_control::openapi::markdown());
            } else {
                println!("{:#}", keygate_control::openapi::document());
            }
            Ok(())
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keygate: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
