//! Reading the TOML with spans and turning it into a validated [`Config`].

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};

use grelay_proto::crypto::keys::{PublicKey, StaticSecret};
use grelay_proto::router::IpPrefix;
use serde::Deserialize;
use toml::Spanned;

use super::backends::{RawBackend, parse_backends};
use super::{
    ClientEntry, Config, ConfigError, DEFAULT_INTERFACE, DEFAULT_IPV4_POOL, DEFAULT_IPV6_POOL,
    DEFAULT_METRICS_LISTEN, DEFAULT_MTU, DEFAULT_PORT, DEFAULT_STATE_FILE, EgressMode, KeySource,
    LoadOptions,
};
use crate::pool::Pool;

const KEY_HINT: &str = "expected 44 characters of base64";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    listen: Option<Spanned<String>>,
    private_key_file: Option<Spanned<String>>,
    private_key: Option<Spanned<String>>,
    state_file: Option<Spanned<String>>,
    #[serde(default)]
    tunnel: RawTunnel,
    #[serde(default)]
    egress: RawEgress,
    #[serde(default)]
    metrics: RawMetrics,
    #[serde(default)]
    tls: super::fallback::RawTls,
    #[serde(default)]
    quic: super::fallback::RawQuic,
    #[serde(default)]
    clients: Vec<Spanned<RawClient>>,
    #[serde(default)]
    backends: Vec<Spanned<RawBackend>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTunnel {
    interface: Option<Spanned<String>>,
    mtu: Option<Spanned<i64>>,
    ipv4_pool: Option<Spanned<String>>,
    ipv6_pool: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawEgress {
    mode: Option<Spanned<String>>,
    out_interface: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    listen: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    name: Option<Spanned<String>>,
    public_key: Option<Spanned<String>>,
    psk: Option<Spanned<String>>,
}

/// Spans at or above this mark stand for environment overrides (index = span start − mark),
/// not for places in the file.
const ENV_SPAN: usize = usize::MAX / 2;

/// Turns byte spans into line numbers and builds errors.
pub(super) struct Source<'a> {
    file: String,
    text: &'a str,
    env: &'a [(String, String)],
}

impl Source<'_> {
    pub(super) fn line(&self, span: Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    pub(super) fn at<T>(&self, value: &Spanned<T>, message: impl Into<String>) -> ConfigError {
        if let Some((name, _)) = value
            .span()
            .start
            .checked_sub(ENV_SPAN)
            .and_then(|i| self.env.get(i))
        {
            return ConfigError {
                file: format!("${name} (environment)"),
                line: None,
                message: message.into(),
            };
        }
        ConfigError {
            file: self.file.clone(),
            line: Some(self.line(value.span())),
            message: message.into(),
        }
    }

    fn nowhere(&self, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            line: None,
            message: message.into(),
        }
    }
}

/// Validates configuration `text` as if read from `path` (relative paths in it are
/// resolved against `path`'s directory).
pub(super) fn parse(path: &Path, text: &str, options: &LoadOptions) -> Result<Config, ConfigError> {
    let src = Source {
        file: path.display().to_string(),
        text,
        env: &options.env,
    };
    let mut raw: Raw = toml::from_str(text).map_err(|e| ConfigError {
        file: src.file.clone(),
        line: e.span().map(|s| src.line(s)),
        message: e.message().trim_end().to_owned(),
    })?;
    apply_env(&mut raw, &options.env)?;
    let base = path.parent().unwrap_or(Path::new("."));
    let listen = match &raw.listen {
        None => SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), DEFAULT_PORT),
        Some(l) => parse_listen(l.get_ref()).ok_or_else(|| {
            src.at(
                l,
                format!(
                    "listen {:?} is not an address: write IP:PORT like \"0.0.0.0:4747\" \
                     or \"[::]:4747\" (or an IP alone for port {DEFAULT_PORT})",
                    l.get_ref()
                ),
            )
        })?,
    };
    let (key_source, private_key) = match (&raw.private_key_file, &raw.private_key) {
        (Some(_), Some(k)) => {
            return Err(src.at(k, "set private_key_file or private_key, not both"));
        }
        (None, None) => {
            return Err(src.nowhere(
                "no private key: set private_key_file = \"/etc/grelay/gateway.key\" \
                 (make one with `grelay-gateway genkey > FILE`, mode 0600)",
            ));
        }
        (Some(f), None) => {
            let file = base.join(f.get_ref());
            if options.generate_key {
                generate_key(&file).map_err(|e| src.at(f, format!("private_key_file: {e:#}")))?;
            }
            let key = grelay_io::keyfile::read(&file)
                .map_err(|e| src.at(f, format!("private_key_file: {e}")))?;
            (KeySource::File(file), key)
        }
        (None, Some(k)) => {
            let key = k.get_ref().trim().parse::<StaticSecret>().map_err(|_| {
                src.at(
                    k,
                    format!(
                        "private_key is not a valid key: {KEY_HINT} \
                         (make one with grelay-gateway genkey)"
                    ),
                )
            })?;
            (KeySource::Inline, key)
        }
    };
    let state_file = raw
        .state_file
        .as_ref()
        .map_or(PathBuf::from(DEFAULT_STATE_FILE), |s| {
            base.join(s.get_ref())
        });

    let t = &raw.tunnel;
    let interface = match &t.interface {
        None => DEFAULT_INTERFACE.to_owned(),
        Some(i) => {
            grelay_io::tun::check_name(i.get_ref())
                .map_err(|e| src.at(i, format!("interface {e}")))?;
            i.get_ref().clone()
        }
    };
    let ipv4_pool = parse_pool(&src, t.ipv4_pool.as_ref(), DEFAULT_IPV4_POOL, false)?;
    let ipv6_pool = parse_pool(&src, t.ipv6_pool.as_ref(), DEFAULT_IPV6_POOL, true)?;
    if ipv4_pool.is_none() && ipv6_pool.is_none() {
        return Err(src.nowhere("both pools are disabled: set ipv4_pool or ipv6_pool in [tunnel]"));
    }
    let min_mtu = if ipv6_pool.is_some() { 1280 } else { 576 };
    let mtu = match &t.mtu {
        None => DEFAULT_MTU,
        Some(m) => u16::try_from(*m.get_ref())
            .ok()
            .filter(|&v| v >= min_mtu)
            .ok_or_else(|| {
                src.at(
                    m,
                    format!(
                        "mtu {} is out of range: use {min_mtu} to 65535 ({} with IPv6 in \
                         the tunnel; {DEFAULT_MTU} fits a 1500-byte path)",
                        m.get_ref(),
                        if ipv6_pool.is_some() {
                            "1280 minimum"
                        } else {
                            "576 minimum"
                        }
                    ),
                )
            })?,
    };
    for (pool, name) in [(ipv4_pool, "ipv4_pool"), (ipv6_pool, "ipv6_pool")] {
        if let Some(p) = pool.filter(|p| p.prefix().contains(listen.ip())) {
            return Err(src.nowhere(format!(
                "{name} {} contains the listen address {}: the tunnel pool must not \
                 overlap the network clients reach the gateway through",
                p.prefix(),
                listen.ip()
            )));
        }
    }

    let egress = match &raw.egress.mode {
        None => EgressMode::Nat,
        Some(m) => match m.get_ref().as_str() {
            "nat" => EgressMode::Nat,
            "route" => EgressMode::Route,
            "none" => EgressMode::None,
            other => {
                return Err(src.at(
                    m,
                    format!("egress mode {other:?} is unknown: use \"nat\", \"route\" or \"none\""),
                ));
            }
        },
    };
    let out_interface = match &raw.egress.out_interface {
        None => None,
        Some(o) => {
            grelay_io::tun::check_name(o.get_ref())
                .map_err(|e| src.at(o, format!("out_interface {e}")))?;
            if *o.get_ref() == interface {
                return Err(src.at(o, "out_interface is the tunnel interface itself"));
            }
            Some(o.get_ref().clone())
        }
    };
    let clients = parse_clients(&src, &raw.clients)?;
    let pools: Vec<Pool> = ipv4_pool.into_iter().chain(ipv6_pool).collect();
    let backends = parse_backends(&src, &raw.backends, &pools)?;
    for (pool, name) in [(ipv4_pool, "ipv4_pool"), (ipv6_pool, "ipv6_pool")] {
        if let Some(p) = pool.filter(|p| p.capacity() < clients.len() as u128) {
            return Err(src.nowhere(format!(
                "{name} {} has room for {} clients but {} are configured: use a shorter \
                 prefix",
                p.prefix(),
                p.capacity(),
                clients.len()
            )));
        }
    }
    let metrics_listen = match &raw.metrics.listen {
        None => DEFAULT_METRICS_LISTEN.parse().ok(),
        Some(l) if l.get_ref().trim().is_empty() => None,
        Some(l) => Some(l.get_ref().trim().parse::<SocketAddr>().map_err(|_| {
            src.at(
                l,
                format!(
                    "[metrics] listen {:?} is not an address: write IP:PORT like \
                     \"{DEFAULT_METRICS_LISTEN}\" (loopback only) or \"0.0.0.0:9477\", or \"\" to \
                     turn the endpoint off",
                    l.get_ref()
                ),
            )
        })?),
    };
    let fallback = super::fallback::parse(&src, base, &raw.tls, &raw.quic, listen)?;
    Ok(Config {
        path: path.to_owned(),
        listen,
        key_source,
        private_key,
        state_file,
        interface,
        mtu,
        ipv4_pool,
        ipv6_pool,
        egress,
        out_interface,
        clients,
        backends,
        metrics_listen,
        fallback,
    })
}

/// Replaces the file's values by the environment's (see [`super::ENV_OVERRIDES`]); each value
/// gets a span that [`Source::at`] reports as the variable, not as a line of the file.
fn apply_env(raw: &mut Raw, env: &[(String, String)]) -> Result<(), ConfigError> {
    for (i, (name, value)) in env.iter().enumerate() {
        let span = ENV_SPAN + i..ENV_SPAN + i + 1;
        let text = || Some(Spanned::new(span.clone(), value.clone()));
        match name.as_str() {
            "GRELAY_LISTEN" => raw.listen = text(),
            "GRELAY_PRIVATE_KEY_FILE" => {
                raw.private_key_file = text();
                raw.private_key = None;
            }
            "GRELAY_STATE_FILE" => raw.state_file = text(),
            "GRELAY_TUNNEL_INTERFACE" => raw.tunnel.interface = text(),
            "GRELAY_TUNNEL_MTU" => {
                let mtu = value.trim().parse::<i64>().map_err(|_| ConfigError {
                    file: format!("${name} (environment)"),
                    line: None,
                    message: format!("mtu {value:?} is not a number (e.g. 1420)"),
                })?;
                raw.tunnel.mtu = Some(Spanned::new(span, mtu));
            }
            "GRELAY_TUNNEL_IPV4_POOL" => raw.tunnel.ipv4_pool = text(),
            "GRELAY_TUNNEL_IPV6_POOL" => raw.tunnel.ipv6_pool = text(),
            "GRELAY_EGRESS_MODE" => raw.egress.mode = text(),
            "GRELAY_EGRESS_OUT_INTERFACE" => raw.egress.out_interface = text(),
            "GRELAY_METRICS_LISTEN" => raw.metrics.listen = text(),
            _ => {
                return Err(ConfigError {
                    file: format!("${name} (environment)"),
                    line: None,
                    message: format!(
                        "not a setting; the overrides are {}",
                        super::ENV_OVERRIDES.join(", ")
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Writes a new private key (mode 0600) at `file` unless one is there, and logs its public
/// key: what a container does on its first start with an empty volume.
fn generate_key(file: &Path) -> anyhow::Result<()> {
    if file.exists() {
        return Ok(());
    }
    let key = grelay_io::keyfile::generate()?;
    match grelay_io::keyfile::write(file, &key) {
        Ok(()) => {
            tracing::info!(
                "generated a new private key in {}; the gateway's public key, for the \
                 clients: {}",
                file.display(),
                key.public_key()
            );
            Ok(())
        }
        // Another process made it first: use that one.
        Err(e) if e.is_already_exists() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn parse_listen(s: &str) -> Option<SocketAddr> {
    s.parse::<SocketAddr>().ok().or_else(|| {
        s.parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, DEFAULT_PORT))
    })
}

fn parse_pool(
    src: &Source<'_>,
    value: Option<&Spanned<String>>,
    default: &str,
    ipv6: bool,
) -> Result<Option<Pool>, ConfigError> {
    let (name, example) = if ipv6 {
        ("ipv6_pool", DEFAULT_IPV6_POOL)
    } else {
        ("ipv4_pool", DEFAULT_IPV4_POOL)
    };
    let Some(v) = value else {
        // The defaults are valid prefixes of the right family and size.
        return Ok(default.parse().ok().and_then(|p| Pool::new(p).ok()));
    };
    let text = v.get_ref().trim();
    if text.is_empty() {
        return Ok(None);
    }
    let family = if ipv6 { "IPv6" } else { "IPv4" };
    let bad = |why: String| {
        src.at(
            v,
            format!("{name} {text:?} {why} (write it like \"{example}\", or \"\" to disable)"),
        )
    };
    let (addr, len) = text
        .split_once('/')
        .ok_or_else(|| bad("has no prefix length".into()))?;
    let prefix: IpPrefix = text
        .parse()
        .map_err(|e| bad(format!("is not an {family} prefix: {e}")))?;
    if prefix.addr().is_ipv6() != ipv6 {
        return Err(bad(format!("is not an {family} prefix")));
    }
    if addr.parse::<IpAddr>().ok() != Some(prefix.addr()) {
        return Err(bad(format!(
            "has host bits set (did you mean {}/{len}?)",
            prefix.addr()
        )));
    }
    Pool::new(prefix)
        .map(Some)
        .map_err(|e| src.at(v, format!("{name} {e}")))
}

fn parse_clients(
    src: &Source<'_>,
    raw: &[Spanned<RawClient>],
) -> Result<Vec<ClientEntry>, ConfigError> {
    let mut clients: Vec<ClientEntry> = Vec::with_capacity(raw.len());
    let mut lines_by_key: HashMap<PublicKey, (usize, String)> = HashMap::new();
    let mut lines_by_name: HashMap<String, usize> = HashMap::new();
    for c in raw {
        let table = c.get_ref();
        let Some(key) = &table.public_key else {
            return Err(src.at(
                c,
                "a [[clients]] entry has no public_key (get it from the client: \
                 grelay-gateway pubkey < client.key)",
            ));
        };
        let public_key: PublicKey = key.get_ref().trim().parse().map_err(|_| {
            src.at(
                key,
                format!(
                    "public_key is not a valid key: {KEY_HINT} \
                     (make one with grelay-gateway genkey | grelay-gateway pubkey)"
                ),
            )
        })?;
        let line = src.line(key.span());
        let name = match &table.name {
            Some(n) if n.get_ref().trim().is_empty() => {
                return Err(src.at(n, "name is empty: give the client a name for the logs"));
            }
            Some(n) => n.get_ref().trim().to_owned(),
            None => public_key.to_string().chars().take(8).collect(),
        };
        if let Some((first, first_name)) = lines_by_key.get(&public_key) {
            return Err(src.at(
                key,
                format!(
                    "public_key is the same as client {first_name:?} (line {first}): each \
                     client needs its own key"
                ),
            ));
        }
        if let Some(first) = lines_by_name.get(&name) {
            let at = table.name.as_ref().map_or(line, |n| src.line(n.span()));
            return Err(ConfigError {
                file: src.file.clone(),
                line: Some(at),
                message: format!(
                    "client name {name:?} is already used on line {first}: names must be unique"
                ),
            });
        }
        let psk = match &table.psk {
            None => None,
            Some(p) => Some(p.get_ref().trim().parse::<PublicKey>().map(|k| k.0).map_err(
                |_| {
                    src.at(
                        p,
                        format!("psk is not a valid key: {KEY_HINT} (make one with grelay-gateway genkey)"),
                    )
                },
            )?),
        };
        lines_by_key.insert(public_key, (line, name.clone()));
        lines_by_name.insert(name.clone(), line);
        clients.push(ClientEntry {
            name,
            public_key,
            psk,
        });
    }
    Ok(clients)
}
