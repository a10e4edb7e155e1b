//! The `spgate` command: parses arguments and calls into the library.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use spgate::logging;

#[derive(Parser)]
#[command(
    name = "spgate",
    version,
    about = "SFTP and FTP/FTPS gateway in front of Microsoft SharePoint"
)]
struct Cli {
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value_t = logging::Format::Text)]
    log_format: logging::Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the offline Microsoft Graph (SharePoint) simulator.
    Sim {
        /// Address to listen on (port 0 picks a free port; the bound address is printed).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Base of the absolute URLs the simulator hands out (when behind a proxy).
        #[arg(long)]
        public_url: Option<String>,
        /// Seed file (TOML) with tenants, apps, sites, drives and initial content.
        #[arg(long)]
        seed: Option<PathBuf>,
        /// Directory for file content (default: a temporary directory).
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Check a gateway configuration file and print a summary.
    Check {
        /// The configuration file (TOML); SPGATE_... environment variables override it.
        #[arg(long, short)]
        config: PathBuf,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Sim {
            listen,
            public_url,
            seed,
            data,
        } => {
            logging::init(cli.log_format, "info");
            let options = spgate::sim::Options {
                listen,
                public_url,
                seed,
                data,
            };
            spgate::sim::serve(options, shutdown_signal())
                .await
                .context("spgate sim")?;
        }
        Command::Check { config } => {
            logging::init(cli.log_format, "warn");
            let config =
                spgate::config::load(&config).with_context(|| format!("{}", config.display()))?;
            println!("configuration OK\n{config:#?}");
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
