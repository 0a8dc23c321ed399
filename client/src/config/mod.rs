//! The client's configuration file (TOML; the format is documented in `docs/client.md`).
//!
//! [`Config::load`] reads the file, the key files and the game lists it names, checks every
//! value, and either returns a [`Config`] in which nothing is left to validate, or a
//! [`ConfigError`] listing every problem with its file, line and fix.

pub mod error;
mod fallback;
mod raw;
mod values;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use grelay_proto::crypto::keys::{PublicKey, StaticSecret};
use grelay_proto::router::IpPrefix;

pub use self::error::{ConfigError, Problem};
pub use self::fallback::Fallback;
pub use self::values::Endpoint;
use crate::cipher::CipherChoice;

/// TUN interface name when none is configured.
pub const DEFAULT_INTERFACE: &str = "grelay0";
/// TUN MTU when none is configured and the gateway is reached over IPv4: 1500 − 20 (IPv4) −
/// 8 (UDP) − 32 (grelay header and tag) − 4 (GRE) = 1436 would fit exactly; 1420 is
/// WireGuard's habit and leaves 16 bytes of room (e.g. for PPPoE's 8).
pub const DEFAULT_MTU: u16 = 1420;
/// TUN MTU when none is configured and the gateway is reached over IPv6: 1500 − 40 − 8 − 32 −
/// 4 = 1416.
pub const DEFAULT_MTU_IPV6: u16 = 1416;
/// Default firewall mark of grelay's own UDP socket, and default routing table number.
pub const DEFAULT_MARK: u32 = 4747;
/// Largest configuration file read.
const MAX_FILE_LEN: u64 = 1 << 20;

/// A checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from.
    pub file: PathBuf,
    /// `[interface]`.
    pub interface: Interface,
    /// `[gateway]`.
    pub gateway: Gateway,
    /// `[routes]`.
    pub routes: Routes,
    /// Things that work but are probably not what the user wanted; logged at `up`.
    pub warnings: Vec<String>,
}

/// `[interface]`: the local side.
#[derive(Debug, Clone)]
pub struct Interface {
    /// TUN device name.
    pub name: String,
    /// The client's private key.
    pub private_key: StaticSecret,
    /// TUN MTU as configured; `None` picks [`DEFAULT_MTU`] or [`DEFAULT_MTU_IPV6`] by the
    /// gateway's address family ([`Interface::mtu_for`]).
    pub mtu: Option<u16>,
    /// DNS servers reached through the tunnel (full-tunnel mode).
    pub dns: Vec<IpAddr>,
    /// Data AEAD.
    pub cipher: CipherChoice,
    /// Firewall mark set on grelay's own UDP socket; policy rules let only it bypass the
    /// tunnel.
    pub fwmark: u32,
    /// Routing table holding the tunnel's routes.
    pub table: u32,
    /// Whether to point `/etc/resolv.conf` at [`Interface::dns`] while up.
    pub write_resolv_conf: bool,
}

impl Interface {
    /// The TUN MTU for a gateway at `gateway`.
    pub fn mtu_for(&self, gateway: std::net::SocketAddr) -> u16 {
        self.mtu.unwrap_or(if gateway.is_ipv6() {
            DEFAULT_MTU_IPV6
        } else {
            DEFAULT_MTU
        })
    }
}

/// `[gateway]`: the remote side.
#[derive(Debug, Clone)]
pub struct Gateway {
    /// Where the gateway listens.
    pub endpoint: Endpoint,
    /// Its static public key.
    pub public_key: PublicKey,
    /// Optional pre-shared key.
    pub psk: Option<[u8; 32]>,
    /// The TLS and QUIC fallbacks.
    pub fallback: Fallback,
}

/// `[routes]`: what enters the tunnel.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    /// Everything enters the tunnel, with leak protection.
    pub full_tunnel: bool,
    /// Prefixes routed into the tunnel (split mode), each with where it was written.
    pub prefixes: Vec<RoutedPrefix>,
    /// Prefixes kept out of the tunnel.
    pub exclude: Vec<IpPrefix>,
}

/// A tunnelled prefix and its origin, for logs and `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutedPrefix {
    /// The prefix.
    pub prefix: IpPrefix,
    /// `file:line` where it was written.
    pub origin: String,
}

/// Collects problems while a file is checked.
pub(crate) struct Checker<'a> {
    file: &'a Path,
    source: &'a str,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    /// Records a problem at `span`.
    pub(crate) fn problem(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.problems
            .push(Problem::spanned(self.file, self.source, span, message));
    }

    /// The `file:line` of `span`.
    pub(crate) fn origin(&self, span: Range<usize>) -> String {
        format!(
            "{}:{}",
            self.file.display(),
            error::line_of(self.source, span.start)
        )
    }

    /// `path` as written in the file, relative to the file's directory unless absolute.
    pub(crate) fn resolve(&self, path: &str) -> PathBuf {
        let dir = self.file.parent().unwrap_or(Path::new(""));
        dir.join(path)
    }
}

impl Config {
    /// Reads and checks the configuration at `file`, and the files it names.
    pub fn load(file: &Path) -> Result<Config, ConfigError> {
        let source = crate::gamelist::read_limited(file, MAX_FILE_LEN)
            .map_err(|message| ConfigError::one(Problem::at(file, None, message)))?;
        Self::parse(&source, file)
    }

    /// Checks `source`, the text of `file`; relative paths in it are relative to `file`'s
    /// directory.
    pub fn parse(source: &str, file: &Path) -> Result<Config, ConfigError> {
        let raw: raw::RawConfig = toml::from_str(source).map_err(|e| {
            let line = e.span().map(|s| error::line_of(source, s.start));
            ConfigError::one(Problem::at(file, line, e.message().trim().to_owned()))
        })?;
        let mut check = Checker {
            file,
            source,
            problems: Vec::new(),
        };
        let interface = values::interface(&mut check, raw.interface);
        let gateway = values::gateway(&mut check, raw.gateway);
        let routes = raw
            .routes
            .map(|r| routes(&mut check, r.into_inner()))
            .unwrap_or_default();
        if let Some(error) = ConfigError::from_problems(check.problems) {
            return Err(error);
        }
        let (Some(interface), Some(gateway)) = (interface, gateway) else {
            // Every `None` above recorded a problem, so this is not reached; stay total anyway.
            return Err(ConfigError::one(Problem::at(file, None, "incomplete")));
        };
        let warnings = warnings(&interface, &routes);
        Ok(Config {
            file: file.to_owned(),
            interface,
            gateway,
            routes,
            warnings,
        })
    }
}

/// Checks `[routes]` and reads the game lists.
fn routes(check: &mut Checker<'_>, raw: raw::RawRoutes) -> Routes {
    let mut prefixes: BTreeMap<IpPrefix, String> = BTreeMap::new();
    for game in &raw.games {
        let path = check.resolve(game.get_ref());
        match crate::gamelist::load(&path) {
            Ok(entries) => {
                for entry in entries {
                    let origin = format!("{}:{}", path.display(), entry.line);
                    prefixes.entry(entry.prefix).or_insert(origin);
                }
            }
            Err(problems) if problems.iter().all(|p| p.line.is_none()) => {
                let why = problems.first().map_or("", |p| p.message.as_str());
                check.problem(
                    game.span(),
                    format!(
                        "game list \"{}\" ({}): {why}; paths are relative to this file",
                        game.get_ref(),
                        path.display()
                    ),
                );
            }
            Err(problems) => check.problems.extend(problems),
        }
    }
    for text in &raw.prefixes {
        match crate::gamelist::parse_prefix(text.get_ref().trim()) {
            Ok(prefix) => {
                let origin = check.origin(text.span());
                prefixes.entry(prefix).or_insert(origin);
            }
            Err(message) => check.problem(text.span(), message),
        }
    }
    let mut exclude = Vec::new();
    for text in &raw.exclude {
        match crate::gamelist::parse_prefix(text.get_ref().trim()) {
            Ok(prefix) => exclude.push(prefix),
            Err(message) => check.problem(text.span(), message),
        }
    }
    Routes {
        full_tunnel: raw.full_tunnel,
        prefixes: prefixes
            .into_iter()
            .map(|(prefix, origin)| RoutedPrefix { prefix, origin })
            .collect(),
        exclude,
    }
}

/// Settings that work but probably do not do what was meant.
fn warnings(interface: &Interface, routes: &Routes) -> Vec<String> {
    let mut out = Vec::new();
    if !routes.full_tunnel && routes.prefixes.is_empty() {
        out.push(
            "[routes] sends only the tunnel's own network through the tunnel: add games = [...] \
             or prefixes = [...], or set full_tunnel = true"
                .to_owned(),
        );
    }
    if !routes.full_tunnel && !interface.dns.is_empty() {
        out.push("dns is only used with full_tunnel = true; it is ignored".to_owned());
    }
    if !routes.full_tunnel && routes.prefixes.iter().any(|p| p.prefix.prefix_len() == 0) {
        out.push(
            "a /0 prefix routes everything into the tunnel without leak protection: use \
             full_tunnel = true instead"
                .to_owned(),
        );
    }
    if routes.full_tunnel && !routes.prefixes.is_empty() {
        out.push(
            "with full_tunnel = true every prefix is tunnelled; games/prefixes add nothing"
                .to_owned(),
        );
    }
    out
}

#[cfg(test)]
mod tests;
