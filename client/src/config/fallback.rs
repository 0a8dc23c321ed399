//! `[gateway]`'s fallback keys: `transports`, `tls_endpoint`, `quic_endpoint`, `tls_pin`,
//! `ca_file`, `server_name`.

use grelay_io::fallback::{DEFAULT_SERVER_NAME, Pin, Transport, Trust};
use toml::Spanned;

use super::Checker;
use super::values::Endpoint;

/// Port of the fallbacks when their endpoints are not written: the gateway's default.
pub const DEFAULT_FALLBACK_PORT: u16 = 443;

/// How the client reaches the gateway when UDP does not pass.
#[derive(Debug, Clone)]
pub struct Fallback {
    /// Transports to use, in order of preference; the first is tried alone, the others are
    /// raced when it gets no answer.
    pub transports: Vec<Transport>,
    /// Why fallbacks are off although `transports` was not written (for a log line).
    pub disabled_because: Option<String>,
    /// TCP endpoint of the TLS fallback.
    pub tls_endpoint: Endpoint,
    /// UDP endpoint of the QUIC fallback.
    pub quic_endpoint: Endpoint,
    /// How the gateway's certificate is checked.
    pub trust: Trust,
    /// Server name (SNI) to ask for.
    pub server_name: String,
}

/// The fallback keys as written.
#[derive(Debug, Default)]
pub(super) struct RawFallback {
    pub transports: Option<Spanned<Vec<Spanned<String>>>>,
    pub tls_endpoint: Option<Spanned<String>>,
    pub quic_endpoint: Option<Spanned<String>>,
    pub tls_pin: Option<Spanned<String>>,
    pub ca_file: Option<Spanned<String>>,
    pub server_name: Option<Spanned<String>>,
}

/// The gateway's host with port 443.
fn same_host(endpoint: &Endpoint) -> Endpoint {
    match endpoint {
        Endpoint::Addr(a) => {
            Endpoint::Addr(std::net::SocketAddr::new(a.ip(), DEFAULT_FALLBACK_PORT))
        }
        Endpoint::Name { host, .. } => Endpoint::Name {
            host: host.clone(),
            port: DEFAULT_FALLBACK_PORT,
        },
    }
}

fn endpoint(check: &mut Checker<'_>, raw: Option<Spanned<String>>, default: Endpoint) -> Endpoint {
    match raw {
        None => default,
        Some(text) => Endpoint::parse(text.get_ref().trim())
            .map_err(|m| check.problem(text.span(), m))
            .unwrap_or(default),
    }
}

/// Checks the fallback keys; `gateway` is the UDP endpoint (its host is the default).
pub(super) fn check(
    check: &mut Checker<'_>,
    raw: RawFallback,
    gateway: Option<&Endpoint>,
) -> Fallback {
    let base = gateway.map_or(
        Endpoint::Addr(([127, 0, 0, 1], DEFAULT_FALLBACK_PORT).into()),
        same_host,
    );
    let tls_endpoint = endpoint(check, raw.tls_endpoint, base.clone());
    let quic_endpoint = endpoint(check, raw.quic_endpoint, base);
    let pin = raw.tls_pin.and_then(|p| {
        p.get_ref()
            .parse::<Pin>()
            .map_err(|m| check.problem(p.span(), format!("tls_pin: {m}")))
            .ok()
    });
    let roots = raw
        .ca_file
        .map(|f| {
            let path = check.resolve(f.get_ref());
            grelay_io::fallback::tls::read_certificates(&path)
                .map_err(|m| check.problem(f.span(), format!("ca_file: {m}")))
                .unwrap_or_default()
        })
        .unwrap_or_default();
    let trust = Trust { pin, roots };
    let server_name = match raw.server_name {
        None => DEFAULT_SERVER_NAME.to_owned(),
        Some(n) => {
            let name = n.get_ref().trim().to_owned();
            if rustls::pki_types::ServerName::try_from(name.as_str()).is_err()
                || name.parse::<std::net::IpAddr>().is_ok()
            {
                check.problem(
                    n.span(),
                    format!("server_name {name:?} is not a DNS name (the gateway's is \"grelay\" unless its [tls] server_name says otherwise)"),
                );
            }
            name
        }
    };
    let (transports, disabled_because) = match raw.transports {
        None if trust.is_configured() => (Transport::ALL.to_vec(), None),
        None => (
            vec![Transport::Udp],
            Some(
                "the TLS and QUIC fallbacks are off: set [gateway] tls_pin (from \
                 `grelay-gateway check`) or ca_file to use them where UDP is blocked"
                    .to_owned(),
            ),
        ),
        Some(list) => {
            let span = list.span();
            let mut out: Vec<Transport> = Vec::new();
            for item in list.into_inner() {
                match Transport::from_name(item.get_ref().trim()) {
                    Some(t) if out.contains(&t) => {
                        check.problem(item.span(), format!("transport {t} is listed twice"))
                    }
                    Some(t) => out.push(t),
                    None => check.problem(
                        item.span(),
                        format!(
                            "{:?} is not a transport: use \"udp\", \"quic\" or \"tls\"",
                            item.get_ref()
                        ),
                    ),
                }
            }
            if out.is_empty() {
                check.problem(span.clone(), "transports is empty: list at least \"udp\"");
            }
            if out.iter().any(|t| *t != Transport::Udp) && !trust.is_configured() {
                check.problem(
                    span,
                    "the quic and tls transports need tls_pin (as `grelay-gateway check` prints \
                     it) or ca_file to check the gateway's certificate",
                );
            }
            (out, None)
        }
    };
    Fallback {
        transports,
        disabled_because,
        tls_endpoint,
        quic_endpoint,
        trust,
        server_name,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{Config, ConfigError};
    use super::*;

    const CLIENT_KEY: &str = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";
    const GATEWAY_KEY: &str = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=";
    const PIN: &str = "sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

    fn parse(gateway: &str) -> Result<Config, ConfigError> {
        let text = format!(
            "[interface]\nprivate_key = \"{CLIENT_KEY}\"\n\
             [gateway]\nendpoint = \"198.18.1.2:4747\"\npublic_key = \"{GATEWAY_KEY}\"\n{gateway}"
        );
        Config::parse(&text, Path::new("/etc/grelay/client.toml"))
    }

    fn problems(gateway: &str) -> String {
        parse(gateway)
            .unwrap_err()
            .problems()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn without_a_pin_only_udp_with_a_hint() {
        let f = parse("").unwrap().gateway.fallback;
        assert_eq!(f.transports, vec![Transport::Udp]);
        assert!(f.disabled_because.unwrap().contains("tls_pin"));
    }

    #[test]
    fn a_pin_turns_on_every_transport_towards_port_443() {
        let f = parse(&format!("tls_pin = \"{PIN}\"\n"))
            .unwrap()
            .gateway
            .fallback;
        assert_eq!(f.transports, Transport::ALL.to_vec());
        assert_eq!(f.tls_endpoint.to_string(), "198.18.1.2:443");
        assert_eq!(f.quic_endpoint.to_string(), "198.18.1.2:443");
        assert_eq!(f.server_name, "grelay");
        assert!(f.trust.pin.is_some() && f.disabled_because.is_none());
        let f = parse(&format!(
            "tls_pin = \"{PIN}\"\ntransports = [\"tls\"]\ntls_endpoint = \"gw.example:8443\"\n"
        ))
        .unwrap()
        .gateway
        .fallback;
        assert_eq!(f.transports, vec![Transport::Tls]);
        assert_eq!(f.tls_endpoint.to_string(), "gw.example:8443");
    }

    #[test]
    fn mistakes_name_the_line() {
        for (text, needle) in [
            ("tls_pin = \"sha1:abc\"\n", ":6: tls_pin"),
            ("transports = [\"udp\", \"tls\"]\n", "need tls_pin"),
            ("transports = [\"udp\", \"udp\"]\n", "listed twice"),
            ("transports = [\"wireguard\"]\n", "is not a transport"),
            ("transports = []\n", "is empty"),
            ("ca_file = \"/nonexistent.pem\"\n", "ca_file"),
            ("server_name = \"a b\"\n", "server_name"),
        ] {
            let p = problems(text);
            assert!(p.contains(needle), "{text:?}: {p}");
        }
    }
}
