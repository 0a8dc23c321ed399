//! `grelay`: the command line and logging; the work is in the library.

use std::io::{Read as _, Write as _};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser as _;
use grelay_client::cli::{Cli, Command, describe};
use grelay_client::config::{Config, ConfigError};
use grelay_client::rundir::RunDir;
use grelay_client::{status, up};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(config) = e.downcast_ref::<ConfigError>() {
                // One `file:line: message` per line, the form editors jump to.
                for problem in config.problems() {
                    eprintln!("{problem}");
                }
                let n = config.problems().len();
                eprintln!(
                    "grelay: {n} problem{} in the configuration",
                    if n == 1 { "" } else { "s" }
                );
            } else {
                eprintln!("grelay: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Logs to standard error: `--log-level`, else `RUST_LOG`, else the verb's default.
fn init_logging(cli: &Cli) {
    let filter = match &cli.log_level {
        Some(level) => EnvFilter::try_new(level).ok(),
        None => EnvFilter::try_from_default_env().ok(),
    }
    .unwrap_or_else(|| EnvFilter::new(cli.command.default_log_level()));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")
}

fn run(cli: Cli) -> Result<()> {
    let run_dir = RunDir::new(&cli.run_dir);
    match cli.command {
        Command::Genkey => {
            let key = grelay_io::keyfile::generate()?;
            println!("{}", key.to_base64());
            Ok(())
        }
        Command::Pubkey => {
            let mut text = String::new();
            std::io::stdin()
                .take(1024)
                .read_to_string(&mut text)
                .context("reading the private key from standard input")?;
            let key = grelay_io::keyfile::parse(&text)
                .map_err(|e| anyhow::anyhow!("standard input is {e}"))?;
            println!("{}", key.public_key());
            Ok(())
        }
        Command::Check { config } => {
            let config = Config::load(&config)?;
            print!("{}", describe(&config));
            std::io::stdout()
                .flush()
                .context("writing to standard output")
        }
        Command::Up { config } => {
            let config = Config::load(&config)?;
            runtime()?.block_on(up::up(config, run_dir))
        }
        Command::Down { interface } => {
            let message = runtime()?.block_on(up::down(&run_dir, &interface))?;
            println!("{message}");
            Ok(())
        }
        Command::Status { interface, json } => {
            let report = runtime()?.block_on(up::status(&run_dir, &interface))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", status::render(&report));
            }
            Ok(())
        }
    }
}
