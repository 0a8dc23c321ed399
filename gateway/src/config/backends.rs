//! The `[[backends]]` tables: raw GRE back ends chosen by inner destination.
//!
//! ```toml
//! [[backends]]
//! name = "farm-a"
//! remote = "198.18.5.2"      # the far end's outer address
//! local = "198.18.1.2"       # this gateway's outer address towards it
//! key = 42                   # optional GRE key, both ends must agree
//! sequence = true            # optional, send sequence numbers (default false)
//! checksum = false           # optional, send checksums (default false)
//! priority = 10              # optional, lower wins among back ends of one prefix (default 100)
//! prefixes = ["10.50.0.0/16"]
//! ```

use std::collections::HashMap;
use std::net::IpAddr;

use grelay_proto::backend::BackendConfig;
use grelay_proto::router::IpPrefix;
use serde::Deserialize;
use toml::Spanned;

use super::ConfigError;
use super::parse::Source;
use crate::pool::Pool;

/// Priority of a back end that names none.
pub const DEFAULT_PRIORITY: u8 = 100;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBackend {
    name: Option<Spanned<String>>,
    remote: Option<Spanned<String>>,
    local: Option<Spanned<String>>,
    key: Option<Spanned<i64>>,
    #[serde(default)]
    sequence: bool,
    #[serde(default)]
    checksum: bool,
    priority: Option<Spanned<i64>>,
    #[serde(default)]
    prefixes: Vec<Spanned<String>>,
}

/// Validates the back ends; their prefixes must not overlap the client pools.
pub(super) fn parse_backends(
    src: &Source<'_>,
    raw: &[Spanned<RawBackend>],
    pools: &[Pool],
) -> Result<Vec<BackendConfig>, ConfigError> {
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::with_capacity(raw.len());
    for b in raw {
        let t = b.get_ref();
        let name = match &t.name {
            Some(n) if !n.get_ref().trim().is_empty() => n.get_ref().trim().to_owned(),
            _ => {
                return Err(src.at(
                    b,
                    "a [[backends]] entry needs a name (for logs and metrics)",
                ));
            }
        };
        if let Some(first) = names.insert(name.clone(), src.line(b.span())) {
            return Err(src.at(
                b,
                format!("back end name {name:?} is already used on line {first}"),
            ));
        }
        let remote = address(src, b, t.remote.as_ref(), "remote", "the far end's address")?;
        let local = address(
            src,
            b,
            t.local.as_ref(),
            "local",
            "this gateway's address towards it",
        )?;
        if remote.is_ipv4() != local.is_ipv4() {
            return Err(src.at(
                b,
                format!("back end {name:?}: remote and local must both be IPv4 or both IPv6"),
            ));
        }
        let key = match &t.key {
            None => None,
            Some(k) => Some(u32::try_from(*k.get_ref()).map_err(|_| {
                src.at(
                    k,
                    format!("key {} is out of range: use 0 to 4294967295", k.get_ref()),
                )
            })?),
        };
        let priority = match &t.priority {
            None => DEFAULT_PRIORITY,
            Some(p) => u8::try_from(*p.get_ref())
                .map_err(|_| src.at(p, "priority must be 0 to 255 (lower wins)"))?,
        };
        if t.prefixes.is_empty() {
            return Err(src.at(
                b,
                format!("back end {name:?} serves no prefixes: add prefixes = [\"10.50.0.0/16\"]"),
            ));
        }
        let mut prefixes = Vec::with_capacity(t.prefixes.len());
        for p in &t.prefixes {
            let text = p.get_ref().trim();
            let prefix: IpPrefix = text
                .parse()
                .map_err(|e| src.at(p, format!("{text:?} is not a prefix: {e}")))?;
            if let Some(pool) = pools.iter().find(|pool| overlaps(pool.prefix(), prefix)) {
                return Err(src.at(
                    p,
                    format!("{prefix} overlaps the client pool {}: clients' addresses cannot sit behind a back end", pool.prefix()),
                ));
            }
            prefixes.push((prefix, priority));
        }
        out.push(BackendConfig {
            name,
            remote,
            local,
            key,
            sequence: t.sequence,
            checksum: t.checksum,
            prefixes,
        });
    }
    Ok(out)
}

fn address<T>(
    src: &Source<'_>,
    table: &Spanned<T>,
    value: Option<&Spanned<String>>,
    field: &str,
    what: &str,
) -> Result<IpAddr, ConfigError> {
    let Some(v) = value else {
        return Err(src.at(
            table,
            format!("a [[backends]] entry needs {field} ({what})"),
        ));
    };
    v.get_ref()
        .trim()
        .parse()
        .map_err(|_| src.at(v, format!("{field} {:?} is not an IP address", v.get_ref())))
}

fn overlaps(a: IpPrefix, b: IpPrefix) -> bool {
    a.contains(b.addr()) || b.contains(a.addr())
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use std::path::Path;

    const BASE: &str = "private_key = \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"\n";

    fn parse(extra: &str) -> Result<Config, String> {
        Config::parse(Path::new("gw.toml"), &format!("{BASE}{extra}")).map_err(|e| e.to_string())
    }

    #[test]
    fn parses_backends_with_defaults() {
        let c = parse(
            "[[backends]]\nname = \"a\"\nremote = \"198.18.5.2\"\nlocal = \"198.18.1.2\"\nkey = 42\nprefixes = [\"10.50.0.0/16\"]\n",
        )
        .unwrap();
        let b = &c.backends[0];
        assert_eq!((b.key, b.sequence, b.checksum), (Some(42), false, false));
        assert_eq!(b.prefixes[0].1, super::DEFAULT_PRIORITY);
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("[[backends]]\nname = \"a\"\nremote = \"198.18.5.2\"\nlocal = \"198.18.1.2\"\nkey = -1\nprefixes = [\"10.50.0.0/16\"]\n").unwrap_err();
        assert!(e.starts_with("gw.toml:6: key -1 is out of range"), "{e}");
        let e = parse("[[backends]]\nname = \"a\"\nremote = \"198.18.5.2\"\nlocal = \"198.18.1.2\"\nprefixes = [\"10.77.5.0/24\"]\n").unwrap_err();
        assert!(e.contains("overlaps the client pool 10.77.0.0/16"), "{e}");
        let e = parse("[[backends]]\nname = \"a\"\nremote = \"198.18.5.2\"\nlocal = \"2001:db8::1\"\nprefixes = [\"10.50.0.0/16\"]\n").unwrap_err();
        assert!(e.contains("both be IPv4 or both IPv6"), "{e}");
        let e = parse(
            "[[backends]]\nname = \"a\"\nlocal = \"198.18.1.2\"\nprefixes = [\"10.50.0.0/16\"]\n",
        )
        .unwrap_err();
        assert!(e.contains("needs remote"), "{e}");
        let e = parse("[[backends]]\nname = \"a\"\nremote = \"198.18.5.2\"\nlocal = \"198.18.1.2\"\nprefixes = [\"10.50.0.0/33\"]\n").unwrap_err();
        assert!(e.starts_with("gw.toml:6:"), "{e}");
    }
}
