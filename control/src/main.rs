//! `keygate`: the control-plane command line.

use clap::{Parser, Subcommand};
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
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keygate: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
