//! The gateway's TOML configuration: parsing, defaults, validation with file:line messages.
//!
//! Every value is read with its span, so a wrong value is reported as
//! `gateway.toml:7: public_key is not a valid key: … (make one with …)`: the file, the line,
//! what is wrong and what to do. Unknown keys are errors too (a typo must not silently fall
//! back to a default). The format is documented in `docs/gateway.md`.

mod backends;
mod fallback;
mod parse;

pub use fallback::FallbackConfig;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use grelay_proto::backend::BackendConfig;
use grelay_proto::crypto::keys::{PublicKey, StaticSecret};

use crate::pool::Pool;

/// The UDP port used when `listen` names none.
pub const DEFAULT_PORT: u16 = 4747;
/// Default TUN name.
pub const DEFAULT_INTERFACE: &str = "grelay-gw";
/// Default TUN MTU: a 1420-byte inner packet plus IPv4 (20) + UDP (8) + data header (16) +
/// GRE (4) + tag (16) = 1484 fits a 1500-byte path, with room to spare for IPv6 outer headers
/// (40 instead of 20: 1504 — use 1400 where the gateway is reached over IPv6 on a 1500 path).
pub const DEFAULT_MTU: u16 = 1420;
/// Default IPv4 pool.
pub const DEFAULT_IPV4_POOL: &str = "10.77.0.0/16";
/// Default IPv6 pool.
pub const DEFAULT_IPV6_POOL: &str = "fd77::/64";
/// Default state file.
pub const DEFAULT_STATE_FILE: &str = "/var/lib/grelay/state.json";
/// Default address of the metrics and health endpoint: loopback only.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9477";

/// Environment variables that override one key of the file each, named `GRELAY_<SECTION>_<KEY>`
/// (how a container is configured without editing the mounted file). `[[clients]]` and
/// `[[backends]]` come only from the file.
pub const ENV_OVERRIDES: [&str; 10] = [
    "GRELAY_LISTEN",
    "GRELAY_PRIVATE_KEY_FILE",
    "GRELAY_STATE_FILE",
    "GRELAY_TUNNEL_INTERFACE",
    "GRELAY_TUNNEL_MTU",
    "GRELAY_TUNNEL_IPV4_POOL",
    "GRELAY_TUNNEL_IPV6_POOL",
    "GRELAY_EGRESS_MODE",
    "GRELAY_EGRESS_OUT_INTERFACE",
    "GRELAY_METRICS_LISTEN",
];

/// How to load a configuration beyond the file itself.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Overrides as `(variable, value)`, variables from [`ENV_OVERRIDES`]; later ones win.
    pub env: Vec<(String, String)>,
    /// Create `private_key_file` with a new key when it does not exist (first start of a
    /// container whose volume is still empty).
    pub generate_key: bool,
}

impl LoadOptions {
    /// The overrides set in this process's environment (empty values count as set: `""`
    /// disables a pool or the metrics endpoint).
    pub fn from_env() -> Self {
        let env = ENV_OVERRIDES
            .iter()
            .filter_map(|name| std::env::var(name).ok().map(|v| ((*name).to_owned(), v)))
            .collect();
        LoadOptions {
            env,
            generate_key: false,
        }
    }
}

/// A configuration error: where (file and line, when known) and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, as given.
    pub file: String,
    /// 1-based line, when the error has a place.
    pub line: Option<usize>,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// What to do with traffic from clients to addresses outside the pools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EgressMode {
    /// Forward and masquerade the pools (nftables) out of the host's interfaces.
    Nat,
    /// Forward without NAT (the network routes the pools back to this host).
    Route,
    /// No forwarding: clients reach only each other and the gateway's own tunnel addresses.
    None,
}

impl EgressMode {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            EgressMode::Nat => "nat",
            EgressMode::Route => "route",
            EgressMode::None => "none",
        }
    }
}

/// Where the gateway's private key comes from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// A key file (mode 0600), path resolved against the config file's directory.
    File(PathBuf),
    /// Inline in the config file.
    Inline,
}

/// One authorized client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientEntry {
    /// Its name in logs.
    pub name: String,
    /// Its static public key.
    pub public_key: PublicKey,
    /// Optional pre-shared key.
    pub psk: Option<[u8; 32]>,
}

/// The validated configuration, defaults filled in.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    /// UDP address to listen on.
    pub listen: SocketAddr,
    /// Where the private key came from.
    pub key_source: KeySource,
    /// The private key.
    pub private_key: StaticSecret,
    /// Address book location.
    pub state_file: PathBuf,
    /// TUN name.
    pub interface: String,
    /// TUN MTU.
    pub mtu: u16,
    /// IPv4 pool, if enabled.
    pub ipv4_pool: Option<Pool>,
    /// IPv6 pool, if enabled.
    pub ipv6_pool: Option<Pool>,
    /// Egress mode.
    pub egress: EgressMode,
    /// Egress interface for NAT (`None`: any interface but the TUN).
    pub out_interface: Option<String>,
    /// Authorized clients, in file order.
    pub clients: Vec<ClientEntry>,
    /// Raw GRE back ends, in file order.
    pub backends: Vec<BackendConfig>,
    /// TCP address of the metrics and health endpoint (`None`: disabled).
    pub metrics_listen: Option<SocketAddr>,
    /// `[tls]` and `[quic]`: the fallback listeners.
    pub fallback: FallbackConfig,
}

impl Config {
    /// Reads and validates the file at `path` (and the key file it names), with the overrides
    /// of [`ENV_OVERRIDES`] found in the environment.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Self::load_with(path, &LoadOptions::from_env())
    }

    /// Reads and validates the file at `path` with explicit `options`.
    pub fn load_with(path: &Path, options: &LoadOptions) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.display().to_string(),
            line: None,
            message: format!("cannot read the configuration: {e}"),
        })?;
        Self::parse_with(path, &text, options)
    }

    /// Validates configuration `text` as if read from `path` (relative paths in it are
    /// resolved against `path`'s directory); no overrides.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        parse::parse(path, text, &LoadOptions::default())
    }

    /// Validates `text` with `options` (environment overrides, key generation).
    pub fn parse_with(
        path: &Path,
        text: &str,
        options: &LoadOptions,
    ) -> Result<Config, ConfigError> {
        parse::parse(path, text, options)
    }
}

impl fmt::Display for Config {
    /// The effective configuration as TOML (keys hidden), for `grelay-gateway check`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pool = |p: Option<Pool>| p.map_or(String::new(), |p| p.prefix().to_string());
        writeln!(f, "listen = \"{}\"", self.listen)?;
        match &self.key_source {
            KeySource::File(p) => writeln!(f, "private_key_file = \"{}\"", p.display())?,
            KeySource::Inline => writeln!(f, "private_key = \"(hidden)\"")?,
        }
        writeln!(f, "state_file = \"{}\"", self.state_file.display())?;
        writeln!(f, "\n[tunnel]")?;
        writeln!(f, "interface = \"{}\"", self.interface)?;
        writeln!(f, "mtu = {}", self.mtu)?;
        writeln!(f, "ipv4_pool = \"{}\"", pool(self.ipv4_pool))?;
        writeln!(f, "ipv6_pool = \"{}\"", pool(self.ipv6_pool))?;
        writeln!(f, "\n[egress]")?;
        writeln!(f, "mode = \"{}\"", self.egress.as_str())?;
        if let Some(o) = &self.out_interface {
            writeln!(f, "out_interface = \"{o}\"")?;
        }
        writeln!(f, "\n[metrics]")?;
        match self.metrics_listen {
            Some(a) => writeln!(f, "listen = \"{a}\"")?,
            None => writeln!(f, "listen = \"\"")?,
        }
        fallback::display(f, &self.fallback)?;
        for c in &self.clients {
            writeln!(f, "\n[[clients]]")?;
            writeln!(f, "name = {:?}", c.name)?;
            writeln!(f, "public_key = \"{}\"", c.public_key)?;
            if c.psk.is_some() {
                writeln!(f, "psk = \"(hidden)\"")?;
            }
        }
        for b in &self.backends {
            writeln!(f, "\n[[backends]]")?;
            writeln!(f, "name = {:?}", b.name)?;
            writeln!(f, "remote = \"{}\"", b.remote)?;
            writeln!(f, "local = \"{}\"", b.local)?;
            if let Some(k) = b.key {
                writeln!(f, "key = {k}")?;
            }
            writeln!(f, "sequence = {}\nchecksum = {}", b.sequence, b.checksum)?;
            let priority = b
                .prefixes
                .first()
                .map_or(backends::DEFAULT_PRIORITY, |p| p.1);
            let prefixes: Vec<String> = b.prefixes.iter().map(|p| format!("\"{}\"", p.0)).collect();
            writeln!(
                f,
                "priority = {priority}\nprefixes = [{}]",
                prefixes.join(", ")
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
