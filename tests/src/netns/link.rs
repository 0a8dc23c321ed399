//! Wiring namespaces together: veth pairs, addresses and routes.
//!
//! Both ends of a veth pair are created directly inside their namespaces (`ip link add A netns
//! X type veth peer name B netns Y`), so no interface ever appears in the root namespace, even
//! for a moment.

use std::process::Command;
use std::time::Duration;

use super::error::{Error, Result};
use super::exec;
use super::namespace::Namespace;

/// Longest interface name Linux accepts (`IFNAMSIZ - 1`).
pub const MAX_IFNAME: usize = 15;

const TIMEOUT: Duration = Duration::from_secs(10);

/// Joins `a` and `b` with a veth pair: `a_if` in `a` with address `a_cidr`, `b_if` in `b` with
/// `b_cidr` (IPv4 like `198.18.1.1/24` or IPv6 like `2001:db8:1::1/64`), and brings both up.
///
/// More addresses can be added with [`add_addr`].
pub fn connect(
    a: &Namespace,
    a_if: &str,
    a_cidr: &str,
    b: &Namespace,
    b_if: &str,
    b_cidr: &str,
) -> Result<()> {
    veth(a, a_if, b, b_if)?;
    add_addr(a, a_if, a_cidr)?;
    add_addr(b, b_if, b_cidr)
}

/// Creates a veth pair, `a_if` in `a` and `b_if` in `b`, both up and without addresses (for
/// bridge ports).
///
/// Interface names need only be unique inside their own namespace and at most
/// [`MAX_IFNAME`] bytes long.
pub fn veth(a: &Namespace, a_if: &str, b: &Namespace, b_if: &str) -> Result<()> {
    for name in [a_if, b_if] {
        if name.is_empty() || name.len() > MAX_IFNAME {
            return Err(Error::Invalid(format!(
                "interface name {name:?} must be 1..={MAX_IFNAME} bytes"
            )));
        }
    }
    let args = [
        "link",
        "add",
        a_if,
        "netns",
        a.name(),
        "type",
        "veth",
        "peer",
        "name",
        b_if,
        "netns",
        b.name(),
    ];
    exec::run(Command::new("ip").args(args), None, TIMEOUT)?;
    a.run(&["ip", "link", "set", a_if, "up"])?;
    b.run(&["ip", "link", "set", b_if, "up"])?;
    Ok(())
}

/// Adds address `cidr` to interface `iface` in `ns`; IPv6 addresses skip duplicate address
/// detection so they are usable at once.
pub fn add_addr(ns: &Namespace, iface: &str, cidr: &str) -> Result<()> {
    if is_v6(cidr) {
        ns.run(&["ip", "-6", "addr", "add", cidr, "dev", iface, "nodad"])
    } else {
        ns.run(&["ip", "addr", "add", cidr, "dev", iface])
    }
    .map(drop)
}

/// Adds a route in `ns` to `dest_cidr` (or `"default"`) via the next hop `via`.
///
/// The family follows `via`: an IPv6 next hop makes an IPv6 route.
pub fn route(ns: &Namespace, dest_cidr: &str, via: &str) -> Result<()> {
    let family = if is_v6(via) { "-6" } else { "-4" };
    ns.run(&["ip", family, "route", "add", dest_cidr, "via", via])
        .map(drop)
}

fn is_v6(addr: &str) -> bool {
    addr.contains(':')
}
