//! Checks of `[interface]` and `[gateway]`, one value at a time, each problem with its fix.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;

use base64::Engine as _;
use grelay_proto::crypto::keys::{PublicKey, StaticSecret};
use toml::Spanned;

use super::raw::{RawGateway, RawInterface};
use super::{Checker, DEFAULT_INTERFACE, DEFAULT_MARK, DEFAULT_MTU, Gateway, Interface};
use crate::cipher::CipherChoice;

/// Smallest TUN MTU accepted: IPv6's minimum link MTU.
pub const MIN_MTU: u16 = 1280;
/// Largest TUN MTU accepted: a jumbo frame.
pub const MAX_MTU: u16 = 9000;
/// Where the gateway listens, as written: an address, or a host name resolved at `up`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `198.18.1.2:4747` or `[2001:db8::2]:4747`.
    Addr(SocketAddr),
    /// `gw.example.net:4747`.
    Name {
        /// Host name.
        host: String,
        /// UDP port.
        port: u16,
    },
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Addr(addr) => write!(f, "{addr}"),
            Self::Name { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

impl Endpoint {
    /// Parses `address:port` or `host:port`, with a message saying how to fix it.
    pub fn parse(text: &str) -> Result<Endpoint, String> {
        if let Ok(addr) = text.parse::<SocketAddr>() {
            if addr.port() == 0 || addr.ip().is_unspecified() {
                return Err(format!(
                    "\"{text}\" cannot be reached: write the gateway's address and port, e.g. \
                     \"198.18.1.2:4747\""
                ));
            }
            return Ok(Self::Addr(addr));
        }
        let fix = "write address:port, e.g. \"198.18.1.2:4747\", \"[2001:db8::2]:4747\" or \
                   \"gw.example.net:4747\"";
        if text.parse::<IpAddr>().is_ok_and(|ip| ip.is_ipv6()) {
            return Err(format!(
                "\"{text}\" is not an endpoint: put IPv6 addresses in brackets and add the port, \
                 e.g. \"[{text}]:4747\""
            ));
        }
        let Some((host, port)) = text.rsplit_once(':') else {
            return Err(format!("\"{text}\" is not an endpoint: {fix}"));
        };
        let port = match port.parse::<u16>() {
            Ok(p) if p != 0 && port.bytes().all(|b| b.is_ascii_digit()) => p,
            _ => {
                return Err(format!(
                    "\"{text}\" is not an endpoint: the port must be 1–65535"
                ));
            }
        };
        let host_ok = !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !host_ok {
            return Err(format!("\"{text}\" is not an endpoint: {fix}"));
        }
        Ok(Self::Name {
            host: host.to_owned(),
            port,
        })
    }
}

/// Checks `[interface]`; `None` when a required part is missing or wrong (problems recorded).
pub(super) fn interface(check: &mut Checker<'_>, raw: Spanned<RawInterface>) -> Option<Interface> {
    let section = raw.span();
    let raw = raw.into_inner();
    let name = match raw.name {
        Some(name) => match grelay_io::tun::check_name(name.get_ref()) {
            Ok(()) => name.into_inner(),
            Err(message) => {
                check.problem(name.span(), message);
                DEFAULT_INTERFACE.to_owned()
            }
        },
        None => DEFAULT_INTERFACE.to_owned(),
    };
    let private_key = private_key(check, section, raw.private_key, raw.private_key_file);
    let mtu = match raw.mtu {
        Some(mtu) => match u16::try_from(*mtu.get_ref()) {
            Ok(v) if (MIN_MTU..=MAX_MTU).contains(&v) => Some(v),
            _ => {
                check.problem(
                    mtu.span(),
                    format!(
                        "mtu = {} is out of range: use {MIN_MTU}–{MAX_MTU}, or leave it out \
                         ({DEFAULT_MTU} fits a 1500-byte path over IPv4, 1416 over IPv6)",
                        mtu.get_ref()
                    ),
                );
                None
            }
        },
        None => None,
    };
    let mut dns = Vec::new();
    for server in &raw.dns {
        match server.get_ref().trim().parse::<IpAddr>() {
            Ok(ip) if !ip.is_unspecified() => dns.push(ip),
            _ => check.problem(
                server.span(),
                format!(
                    "dns server \"{}\" is not an IP address: write e.g. \"10.77.0.1\"",
                    server.get_ref()
                ),
            ),
        }
    }
    let cipher = match raw.cipher {
        Some(c) => c.get_ref().parse().unwrap_or_else(|message: String| {
            check.problem(c.span(), message);
            CipherChoice::Auto
        }),
        None => CipherChoice::Auto,
    };
    let fwmark = number(check, raw.fwmark, "fwmark", &[]);
    let table = number(check, raw.table, "table", &[253, 254, 255]);
    Some(Interface {
        name,
        private_key: private_key?,
        mtu,
        dns,
        cipher,
        fwmark,
        table,
        write_resolv_conf: raw.write_resolv_conf,
    })
}

/// A mark or table number: 1 to 2³² − 1, not one of `reserved`.
fn number(check: &mut Checker<'_>, raw: Option<Spanned<i64>>, what: &str, reserved: &[u32]) -> u32 {
    let Some(raw) = raw else {
        return DEFAULT_MARK;
    };
    match u32::try_from(*raw.get_ref()) {
        Ok(v) if v != 0 && !reserved.contains(&v) => v,
        _ => {
            let also = if reserved.is_empty() {
                String::new()
            } else {
                " other than 253–255 (default, main, local)".to_owned()
            };
            check.problem(
                raw.span(),
                format!(
                    "{what} = {} is out of range: use a number from 1 to 4294967295{also}, \
                     e.g. {DEFAULT_MARK}",
                    raw.get_ref()
                ),
            );
            DEFAULT_MARK
        }
    }
}

/// The private key, inline or from a file; exactly one of the two.
fn private_key(
    check: &mut Checker<'_>,
    section: Range<usize>,
    inline: Option<Spanned<String>>,
    file: Option<Spanned<String>>,
) -> Option<StaticSecret> {
    match (inline, file) {
        (Some(_), Some(file)) => {
            check.problem(file.span(), "set private_key or private_key_file, not both");
            None
        }
        (None, None) => {
            check.problem(
                section,
                "[interface] needs a private key: add private_key_file = \
                 \"/etc/grelay/client.key\" (create it with `grelay genkey > \
                 /etc/grelay/client.key`) or private_key = \"<base64>\"",
            );
            None
        }
        (Some(key), None) => match grelay_io::keyfile::parse(key.get_ref()) {
            Ok(secret) => Some(secret),
            Err(message) => {
                check.problem(key.span(), format!("private_key is {message}"));
                None
            }
        },
        (None, Some(file)) => {
            let path = check.resolve(file.get_ref());
            match grelay_io::keyfile::read(&path) {
                Ok(secret) => Some(secret),
                Err(e) => {
                    check.problem(file.span(), format!("cannot use private_key_file: {e}"));
                    None
                }
            }
        }
    }
}

/// Checks `[gateway]`.
pub(super) fn gateway(check: &mut Checker<'_>, raw: Spanned<RawGateway>) -> Option<Gateway> {
    let raw = raw.into_inner();
    let endpoint = Endpoint::parse(raw.endpoint.get_ref().trim())
        .map_err(|message| check.problem(raw.endpoint.span(), message))
        .ok();
    let public_key = raw
        .public_key
        .get_ref()
        .parse::<PublicKey>()
        .map_err(|_| {
            check.problem(
                raw.public_key.span(),
                "public_key is not a key: paste the gateway's public key, 44 characters of \
                 base64 ending in '=' (the gateway operator gets it with `grelay-gateway pubkey`)",
            )
        })
        .ok();
    let psk = match (raw.psk, raw.psk_file) {
        (Some(_), Some(file)) => {
            check.problem(file.span(), "set psk or psk_file, not both");
            None
        }
        (Some(psk), None) => decode_psk(psk.get_ref())
            .map_err(|m| check.problem(psk.span(), format!("psk is {m}")))
            .ok(),
        (None, Some(file)) => {
            let path = check.resolve(file.get_ref());
            grelay_io::keyfile::read(&path)
                .map(|k| *k.as_bytes())
                .map_err(|e| check.problem(file.span(), format!("cannot use psk_file: {e}")))
                .ok()
        }
        (None, None) => None,
    };
    let fallback = super::fallback::check(
        check,
        super::fallback::RawFallback {
            transports: raw.transports,
            tls_endpoint: raw.tls_endpoint,
            quic_endpoint: raw.quic_endpoint,
            tls_pin: raw.tls_pin,
            ca_file: raw.ca_file,
            server_name: raw.server_name,
        },
        endpoint.as_ref(),
    );
    Some(Gateway {
        endpoint: endpoint?,
        public_key: public_key?,
        psk,
        fallback,
    })
}

/// A pre-shared key: 32 bytes in base64.
fn decode_psk(text: &str) -> Result<[u8; 32], String> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or_else(|| {
            "not a key: write 32 bytes in base64 (44 characters), e.g. from `grelay genkey`"
                .to_owned()
        })
}
