//! `[tls]` and `[quic]`: the TLS-over-TCP and QUIC fallback listeners.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::ConfigError;
use super::parse::Source;

/// The fallbacks' port when `listen` names none (HTTPS: passes where little else does).
pub const DEFAULT_FALLBACK_PORT: u16 = 443;
/// Default cap on open fallback connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default cap on open fallback connections from one source (IPv4 address or IPv6 /64).
pub const DEFAULT_MAX_PER_SOURCE: usize = 32;
/// Default time a connection has to complete TLS/QUIC and a valid Noise handshake.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// The fallbacks, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FallbackConfig {
    /// TCP address of the TLS listener (`None`: off).
    pub tls_listen: Option<SocketAddr>,
    /// UDP address of the QUIC listener (`None`: off).
    pub quic_listen: Option<SocketAddr>,
    /// PEM certificate chain; with `key_file`. `None`: the generated one in the state
    /// directory.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// The server name (SNI) clients must ask for; also the generated certificate's name.
    pub server_name: String,
    /// Cap on open connections (TLS and QUIC together).
    pub max_connections: usize,
    /// Cap on open connections from one source.
    pub max_per_source: usize,
    /// Time to complete the TLS/QUIC handshake and a valid Noise handshake.
    pub handshake_timeout: Duration,
}

impl FallbackConfig {
    /// Both listeners on `ip`:443 with the defaults.
    pub fn defaults(ip: std::net::IpAddr) -> Self {
        let addr = SocketAddr::new(ip, DEFAULT_FALLBACK_PORT);
        Self {
            tls_listen: Some(addr),
            quic_listen: Some(addr),
            cert_file: None,
            key_file: None,
            server_name: grelay_io::fallback::DEFAULT_SERVER_NAME.to_owned(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_per_source: DEFAULT_MAX_PER_SOURCE,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }
}

/// `[tls]` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    listen: Option<Spanned<String>>,
    cert_file: Option<Spanned<String>>,
    key_file: Option<Spanned<String>>,
    server_name: Option<Spanned<String>>,
    max_connections: Option<Spanned<i64>>,
    max_per_source: Option<Spanned<i64>>,
    handshake_timeout: Option<Spanned<i64>>,
}

/// `[quic]` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawQuic {
    listen: Option<Spanned<String>>,
}

fn listen(
    src: &Source<'_>,
    raw: Option<&Spanned<String>>,
    default: SocketAddr,
    what: &str,
) -> Result<Option<SocketAddr>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Some(default));
    };
    let text = raw.get_ref().trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse::<SocketAddr>()
        .ok()
        .or_else(|| {
            text.parse::<std::net::IpAddr>()
                .ok()
                .map(|ip| SocketAddr::new(ip, DEFAULT_FALLBACK_PORT))
        })
        .map(Some)
        .ok_or_else(|| {
            src.at(
                raw,
                format!(
                    "[{what}] listen {text:?} is not an address: write IP:PORT like \
                     \"0.0.0.0:443\" (an IP alone gets port 443), or \"\" to turn {what} off"
                ),
            )
        })
}

fn number(
    src: &Source<'_>,
    raw: Option<&Spanned<i64>>,
    default: usize,
    what: &str,
    range: std::ops::RangeInclusive<i64>,
) -> Result<usize, ConfigError> {
    match raw {
        None => Ok(default),
        Some(v) if range.contains(v.get_ref()) => Ok(*v.get_ref() as usize),
        Some(v) => Err(src.at(
            v,
            format!(
                "[tls] {what} = {} is out of range: use {}–{}",
                v.get_ref(),
                range.start(),
                range.end()
            ),
        )),
    }
}

/// Validates `[tls]` and `[quic]`; `udp` is the main listen address (its IP is the default
/// for the fallbacks, and QUIC must not take its port).
pub(super) fn parse(
    src: &Source<'_>,
    base: &Path,
    tls: &RawTls,
    quic: &RawQuic,
    udp: SocketAddr,
) -> Result<FallbackConfig, ConfigError> {
    let defaults = FallbackConfig::defaults(udp.ip());
    let default_addr = SocketAddr::new(udp.ip(), DEFAULT_FALLBACK_PORT);
    let tls_listen = listen(src, tls.listen.as_ref(), default_addr, "tls")?;
    // A gateway whose UDP port already is 443 gets no QUIC listener unless one is asked for.
    let quic_default = (udp != default_addr).then_some(default_addr);
    let quic_listen = match quic_default {
        Some(d) => listen(src, quic.listen.as_ref(), d, "quic")?,
        None if quic.listen.is_none() => None,
        None => listen(src, quic.listen.as_ref(), default_addr, "quic")?,
    };
    if let (Some(q), Some(raw)) = (quic_listen, quic.listen.as_ref()) {
        if q == udp {
            return Err(src.at(
                raw,
                format!("[quic] listen {q} is the UDP listen address: give QUIC its own port"),
            ));
        }
    }
    let path = |raw: &Option<Spanned<String>>| raw.as_ref().map(|p| base.join(p.get_ref()));
    let (cert_file, key_file) = (path(&tls.cert_file), path(&tls.key_file));
    match (&tls.cert_file, &tls.key_file) {
        (Some(c), None) => {
            return Err(src.at(c, "[tls] cert_file needs key_file too (or set neither)"));
        }
        (None, Some(k)) => {
            return Err(src.at(k, "[tls] key_file needs cert_file too (or set neither)"));
        }
        _ => {}
    }
    let server_name = match &tls.server_name {
        None => defaults.server_name,
        Some(n) => {
            let name = n.get_ref().trim();
            if rustls::pki_types::ServerName::try_from(name).is_err()
                || name.parse::<std::net::IpAddr>().is_ok()
            {
                return Err(src.at(
                    n,
                    format!("[tls] server_name {name:?} is not a DNS name (e.g. \"grelay\")"),
                ));
            }
            name.to_owned()
        }
    };
    let max_connections = number(
        src,
        tls.max_connections.as_ref(),
        DEFAULT_MAX_CONNECTIONS,
        "max_connections",
        1..=65536,
    )?;
    let max_per_source = number(
        src,
        tls.max_per_source.as_ref(),
        DEFAULT_MAX_PER_SOURCE,
        "max_per_source",
        1..=65536,
    )?;
    let handshake_timeout = Duration::from_secs(number(
        src,
        tls.handshake_timeout.as_ref(),
        DEFAULT_HANDSHAKE_TIMEOUT.as_secs() as usize,
        "handshake_timeout",
        1..=60,
    )? as u64);
    Ok(FallbackConfig {
        tls_listen,
        quic_listen,
        cert_file,
        key_file,
        server_name,
        max_connections,
        max_per_source,
        handshake_timeout,
    })
}

/// The `[tls]` and `[quic]` sections of the effective configuration.
pub(super) fn display(f: &mut std::fmt::Formatter<'_>, c: &FallbackConfig) -> std::fmt::Result {
    let addr = |a: Option<SocketAddr>| a.map_or(String::new(), |a| a.to_string());
    writeln!(f, "\n[tls]")?;
    writeln!(f, "listen = \"{}\"", addr(c.tls_listen))?;
    if let (Some(cert), Some(key)) = (&c.cert_file, &c.key_file) {
        writeln!(f, "cert_file = \"{}\"", cert.display())?;
        writeln!(f, "key_file = \"{}\"", key.display())?;
    }
    writeln!(f, "server_name = {:?}", c.server_name)?;
    writeln!(f, "max_connections = {}", c.max_connections)?;
    writeln!(f, "max_per_source = {}", c.max_per_source)?;
    writeln!(f, "handshake_timeout = {}", c.handshake_timeout.as_secs())?;
    writeln!(f, "\n[quic]")?;
    writeln!(f, "listen = \"{}\"", addr(c.quic_listen))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const SECRET: &str = "d3lE0LZ+uYXxrcyTQ7eSG0jk8kTxj3cmDyI5VWLAz2Y=";

    fn parse(rest: &str) -> Result<Config, ConfigError> {
        let text = format!("private_key = \"{SECRET}\"\n{rest}");
        Config::parse(Path::new("/etc/grelay/gateway.toml"), &text)
    }

    #[test]
    fn defaults_listen_on_443_with_the_udp_address() {
        let c = parse("listen = \"198.18.1.2:4747\"\n").unwrap().fallback;
        let addr: SocketAddr = "198.18.1.2:443".parse().unwrap();
        assert_eq!((c.tls_listen, c.quic_listen), (Some(addr), Some(addr)));
        assert_eq!(c.server_name, "grelay");
        assert_eq!(c.max_connections, DEFAULT_MAX_CONNECTIONS);
        assert_eq!(c.handshake_timeout, DEFAULT_HANDSHAKE_TIMEOUT);
        // The printed configuration parses back.
        let printed = parse("").unwrap().to_string();
        assert!(
            printed.contains("[tls]\nlisten = \"0.0.0.0:443\""),
            "{printed}"
        );
    }

    #[test]
    fn each_can_be_turned_off_and_tuned() {
        let c = parse(
            "[tls]\nlisten = \"\"\nmax_per_source = 4\nhandshake_timeout = 2\nserver_name = \"gw.example\"\n\
             [quic]\nlisten = \"0.0.0.0:8443\"\n",
        )
        .unwrap()
        .fallback;
        assert_eq!(c.tls_listen, None);
        assert_eq!(c.quic_listen, Some("0.0.0.0:8443".parse().unwrap()));
        assert_eq!(c.max_per_source, 4);
        assert_eq!(c.handshake_timeout, Duration::from_secs(2));
        assert_eq!(c.server_name, "gw.example");
        // A UDP port of 443 leaves QUIC off unless asked for.
        let c = parse("listen = \"0.0.0.0:443\"\n").unwrap().fallback;
        assert_eq!(c.quic_listen, None);
    }

    #[test]
    fn mistakes_name_the_line() {
        for (text, needle) in [
            ("[tls]\nlisten = \"nowhere\"\n", ":3: [tls] listen"),
            (
                "[tls]\nhandshake_timeout = 0\n",
                ":3: [tls] handshake_timeout = 0",
            ),
            (
                "[tls]\ncert_file = \"c.pem\"\n",
                ":3: [tls] cert_file needs key_file",
            ),
            (
                "[tls]\nserver_name = \"1.2.3.4\"\n",
                ":3: [tls] server_name",
            ),
            (
                "[quic]\nlisten = \"0.0.0.0:4747\"\n",
                ":3: [quic] listen 0.0.0.0:4747 is the UDP",
            ),
            ("[tls]\nbogus = 1\n", "unknown field"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }
}
