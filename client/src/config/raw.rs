//! The configuration file as TOML gives it: every value that needs checking keeps its span,
//! so that a problem found later still points at its line.

use serde::Deserialize;
use toml::Spanned;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub interface: Spanned<RawInterface>,
    pub gateway: Spanned<RawGateway>,
    #[serde(default)]
    pub routes: Option<Spanned<RawRoutes>>,
}

/// `[interface]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInterface {
    pub name: Option<Spanned<String>>,
    pub private_key_file: Option<Spanned<String>>,
    pub private_key: Option<Spanned<String>>,
    pub mtu: Option<Spanned<i64>>,
    #[serde(default)]
    pub dns: Vec<Spanned<String>>,
    pub cipher: Option<Spanned<String>>,
    pub fwmark: Option<Spanned<i64>>,
    pub table: Option<Spanned<i64>>,
    #[serde(default)]
    pub write_resolv_conf: bool,
}

/// `[gateway]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGateway {
    pub endpoint: Spanned<String>,
    pub public_key: Spanned<String>,
    pub psk_file: Option<Spanned<String>>,
    pub psk: Option<Spanned<String>>,
    pub transports: Option<Spanned<Vec<Spanned<String>>>>,
    pub tls_endpoint: Option<Spanned<String>>,
    pub quic_endpoint: Option<Spanned<String>>,
    pub tls_pin: Option<Spanned<String>>,
    pub ca_file: Option<Spanned<String>>,
    pub server_name: Option<Spanned<String>>,
}

/// `[routes]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoutes {
    #[serde(default)]
    pub full_tunnel: bool,
    #[serde(default)]
    pub games: Vec<Spanned<String>>,
    #[serde(default)]
    pub prefixes: Vec<Spanned<String>>,
    #[serde(default)]
    pub exclude: Vec<Spanned<String>>,
}
