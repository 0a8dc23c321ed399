//! `grelay-gateway`: the command line and logging; everything else is in the library.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use grelay_gateway::config::{Config, DEFAULT_METRICS_LISTEN, KeySource, LoadOptions};
use tracing_subscriber::EnvFilter;

/// grelay gateway: GRE-in-UDP tunnels with Noise for many clients on one port.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    /// Log level or filter (e.g. `debug`, `info,grelay_gateway=trace`); overrides RUST_LOG.
    /// Default: RUST_LOG, else `info`.
    #[arg(long, global = true, value_name = "FILTER")]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the gateway in the foreground (logs to stderr). SIGHUP reloads [[clients]];
    /// SIGINT/SIGTERM stop it cleanly. GRELAY_* variables override single settings
    /// (docs/gateway.md).
    Run {
        /// The configuration file (see docs/gateway.md).
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
        /// Create private_key_file with a new key if it does not exist yet (a container's
        /// first start); its public key is logged.
        #[arg(long)]
        generate_key: bool,
    },
    /// Ask a running gateway's /healthz; exit status 0 when it is healthy (for container
    /// health checks: the image has no shell or curl).
    Healthcheck {
        /// Read the endpoint's address from this configuration (and GRELAY_* overrides).
        #[arg(short, long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// The endpoint's address (default: GRELAY_METRICS_LISTEN, else 127.0.0.1:9477); an
        /// unspecified address such as 0.0.0.0 means loopback.
        #[arg(long, value_name = "IP:PORT")]
        address: Option<std::net::SocketAddr>,
    },
    /// Print a new private key (base64) on stdout. Keep it private:
    /// `umask 077; grelay-gateway genkey > gateway.key`.
    Genkey,
    /// Read a private key on stdin and print its public key:
    /// `grelay-gateway pubkey < gateway.key`.
    Pubkey,
    /// Validate the configuration, print the effective settings and the gateway's public key.
    Check {
        /// The configuration file.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let logging = matches!(cli.command, Cmd::Run { .. });
    let result = match cli.command {
        Cmd::Run {
            config,
            generate_key,
        } => {
            init_logging(cli.log_level.as_deref());
            run(config, generate_key)
        }
        Cmd::Healthcheck { config, address } => healthcheck(config, address),
        Cmd::Genkey => genkey(),
        Cmd::Pubkey => pubkey(),
        Cmd::Check { config } => check(config),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if logging => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("grelay-gateway: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(level: Option<&str>) {
    let filter = match level {
        Some(l) => EnvFilter::try_new(l).unwrap_or_else(|e| {
            eprintln!("grelay-gateway: --log-level {l:?}: {e}; using info");
            EnvFilter::new("info")
        }),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

fn run(path: PathBuf, generate_key: bool) -> Result<()> {
    let options = LoadOptions {
        generate_key,
        ..LoadOptions::from_env()
    };
    for (name, value) in &options.env {
        tracing::info!("{name}={value:?} overrides the configuration file");
    }
    let config = Config::load_with(&path, &options)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(async {
        let commands = grelay_gateway::signal_commands()?;
        grelay_gateway::run(config, commands).await
    })
}

fn healthcheck(config: Option<PathBuf>, address: Option<std::net::SocketAddr>) -> Result<()> {
    let address = match (address, config) {
        (Some(a), _) => a,
        (None, Some(path)) => Config::load(&path)?.metrics_listen.context(
            "the metrics endpoint is off in this configuration ([metrics] listen = \"\")",
        )?,
        (None, None) => {
            let text = std::env::var("GRELAY_METRICS_LISTEN")
                .unwrap_or_else(|_| DEFAULT_METRICS_LISTEN.to_owned());
            text.parse()
                .with_context(|| format!("GRELAY_METRICS_LISTEN {text:?} is not IP:PORT"))?
        }
    };
    let body = grelay_gateway::metrics::check(address, std::time::Duration::from_secs(3))?;
    println!("{body}");
    Ok(())
}

fn genkey() -> Result<()> {
    warn_if_stdout_is_shared();
    let key = grelay_io::keyfile::generate()?;
    println!("{}", key.to_base64());
    Ok(())
}

/// Like `wg genkey`: say so when the key is about to land in a file others can read.
fn warn_if_stdout_is_shared() {
    use std::os::unix::fs::MetadataExt;
    if let Ok(meta) = std::fs::metadata("/proc/self/fd/1") {
        if meta.is_file() && meta.mode() & 0o077 != 0 {
            eprintln!(
                "warning: writing a private key to a file group or others can access \
                 (mode {:04o}); run `chmod 600` on it",
                meta.mode() & 0o7777
            );
        }
    }
}

fn pubkey() -> Result<()> {
    let mut text = String::new();
    std::io::stdin()
        .take(1024)
        .read_to_string(&mut text)
        .context("reading a private key from stdin")?;
    let key = grelay_io::keyfile::parse(&text).map_err(anyhow::Error::msg)?;
    let mut out = std::io::stdout();
    writeln!(out, "{}", key.public_key()).context("writing to stdout")?;
    Ok(())
}

fn check(path: PathBuf) -> Result<()> {
    let config = Config::load(&path)?;
    print!("{config}");
    let key = match &config.key_source {
        KeySource::File(p) => format!(" (from {})", p.display()),
        KeySource::Inline => String::new(),
    };
    println!(
        "\n# gateway public key{key}, for the clients:\n# {}",
        config.private_key.public_key()
    );
    if let Some(pin) = grelay_gateway::transport::tls_pin(&config)? {
        println!("# TLS certificate pin, for the clients' [gateway] tls_pin:\n# {pin}");
    }
    println!("# {}: ok, {} clients", path.display(), config.clients.len());
    Ok(())
}
