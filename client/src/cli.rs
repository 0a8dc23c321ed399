//! The command line, in the style of `wg`, `wg-quick` and `tailscale`.
//!
//! ```text
//! grelay genkey                          print a new private key
//! grelay pubkey < client.key             print its public key
//! grelay check client.toml               check a configuration, show what it would do
//! grelay up client.toml                  bring the tunnel up (foreground, logs to stderr)
//! grelay down [--interface grelay0]      take it down, or clean up after a crash
//! grelay status [--interface grelay0] [--json]
//! ```

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{Config, DEFAULT_INTERFACE};
use crate::rundir::DEFAULT_RUN_DIR;

/// grelay: game-acceleration tunnel client (GRE in UDP, authenticated with Noise).
#[derive(Debug, Parser)]
#[command(name = "grelay", version, propagate_version = true)]
pub struct Cli {
    /// Directory for the control socket, lock and state files (root only).
    #[arg(long, global = true, env = "GRELAY_RUN_DIR", default_value = DEFAULT_RUN_DIR)]
    pub run_dir: PathBuf,
    /// Log filter, e.g. `info`, `debug` or `grelay_client=trace` (default: RUST_LOG, else
    /// `info` for `up` and `warn` otherwise).
    #[arg(long, global = true, value_name = "FILTER")]
    pub log_level: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a new private key (base64) on standard output.
    ///
    /// Keep it private: `umask 077; grelay genkey > /etc/grelay/client.key`.
    Genkey,
    /// Read a private key on standard input and print its public key.
    ///
    /// Give the public key to the gateway's operator: `grelay pubkey < /etc/grelay/client.key`.
    Pubkey,
    /// Check a configuration file and show what `up` would do with it.
    Check {
        /// The configuration file (TOML).
        config: PathBuf,
    },
    /// Bring the tunnel up and run it in the foreground.
    ///
    /// Runs until SIGINT, SIGTERM or `grelay down`; then removes every route, rule, address
    /// and firewall table it installed. Logs go to standard error (journald under systemd).
    Up {
        /// The configuration file (TOML).
        config: PathBuf,
    },
    /// Take the tunnel down.
    ///
    /// Asks the running `grelay up` to stop and waits until it has removed everything; when
    /// none runs, removes what a crashed one left installed (routes, rules, kill switch).
    Down {
        /// The TUN interface.
        #[arg(short, long, default_value = DEFAULT_INTERFACE)]
        interface: String,
    },
    /// Show the tunnel's status: gateway, session, addresses, traffic, RTT, jitter, loss.
    Status {
        /// The TUN interface.
        #[arg(short, long, default_value = DEFAULT_INTERFACE)]
        interface: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

impl Command {
    /// The log filter when neither `--log-level` nor `RUST_LOG` gives one.
    pub fn default_log_level(&self) -> &'static str {
        match self {
            Command::Up { .. } | Command::Down { .. } => "info",
            _ => "warn",
        }
    }
}

/// What `grelay check` prints for a valid configuration.
pub fn describe(config: &Config) -> String {
    let i = &config.interface;
    let mut out = format!("{}: valid\n", config.file.display());
    let _ = writeln!(
        out,
        "  interface:   {} (mtu {}, fwmark {:#x}, table {})",
        i.name,
        i.mtu.map_or_else(
            || "auto: 1420, 1416 over IPv6".to_owned(),
            |m| m.to_string()
        ),
        i.fwmark,
        i.table
    );
    let _ = writeln!(out, "  public key:  {}", i.private_key.public_key());
    let _ = writeln!(
        out,
        "  cipher:      {} ({} on this CPU)",
        i.cipher,
        i.cipher.resolve().name()
    );
    let _ = writeln!(
        out,
        "  gateway:     {} (key {}{})",
        config.gateway.endpoint,
        config.gateway.public_key,
        if config.gateway.psk.is_some() {
            ", with psk"
        } else {
            ""
        }
    );
    let routes = &config.routes;
    if routes.full_tunnel {
        let dns: Vec<String> = i.dns.iter().map(ToString::to_string).collect();
        let _ = writeln!(
            out,
            "  mode:        full tunnel with kill switch; dns {}{}",
            if dns.is_empty() {
                "unchanged".to_owned()
            } else {
                dns.join(", ")
            },
            if i.write_resolv_conf {
                " (written to /etc/resolv.conf)"
            } else {
                ""
            }
        );
    } else {
        let _ = writeln!(
            out,
            "  mode:        split tunnel, {} prefix{}",
            routes.prefixes.len(),
            if routes.prefixes.len() == 1 { "" } else { "es" }
        );
        for p in &routes.prefixes {
            let _ = writeln!(out, "    {:<40} {}", p.prefix.to_string(), p.origin);
        }
    }
    for prefix in &routes.exclude {
        let _ = writeln!(out, "  excluded:    {prefix}");
    }
    for warning in &config.warnings {
        let _ = writeln!(out, "  warning:     {warning}");
    }
    out
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_the_verbs() {
        let cli = Cli::try_parse_from(["grelay", "status", "--json", "-i", "gr1"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Status { ref interface, json: true } if interface == "gr1"
        ));
        let cli = Cli::try_parse_from(["grelay", "--run-dir", "/tmp/x", "down"]).unwrap();
        assert_eq!(cli.run_dir, PathBuf::from("/tmp/x"));
        assert!(matches!(cli.command, Command::Down { ref interface } if interface == "grelay0"));
        let cli = Cli::try_parse_from(["grelay", "up", "c.toml", "--log-level", "debug"]).unwrap();
        assert_eq!(cli.log_level.as_deref(), Some("debug"));
        assert_eq!(cli.command.default_log_level(), "info");
        assert!(Cli::try_parse_from(["grelay", "up"]).is_err());
    }

    #[test]
    fn check_output() {
        let text = "[interface]\nprivate_key = \"yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\"\n\
                    [gateway]\nendpoint = \"198.18.1.2:4747\"\n\
                    public_key = \"HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=\"\n\
                    [routes]\nprefixes = [\"203.0.113.0/24\"]\n";
        let config = Config::parse(text, std::path::Path::new("c.toml")).unwrap();
        let shown = describe(&config);
        assert!(shown.starts_with("c.toml: valid\n"), "{shown}");
        assert!(shown.contains("split tunnel, 1 prefix\n"), "{shown}");
        assert!(shown.contains("203.0.113.0/24"), "{shown}");
        assert!(shown.contains("c.toml:7"), "{shown}");
    }
}
