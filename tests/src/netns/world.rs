//! The standard test world: an internet router, public hosts, NAT sites and private back ends.
//!
//! Address plan (all inside namespaces the test made; see the module doc for the drawing):
//!
//! | what | IPv4 | IPv6 | interface |
//! |---|---|---|---|
//! | internet side of site N | `198.18.N.1/24` | `2001:db8:N::1/64` | `s<N>` in `internet` |
//! | public host / NAT WAN on site N | `198.18.N.2/24` | `2001:db8:N::2/64` | `wan` |
//! | NAT M's LAN (bridge on the router) | `10.200.M.1/24` | `fd00:200:M::1/64` | `lan` |
//! | host x behind NAT M | `10.200.M.x/24` | `fd00:200:M::x/64` | `eth0` |
//! | private link K, near side | `10.99.K.1/24` | `fd00:99:K::1/64` | `b<K>` |
//! | private link K, back end | `10.99.K.2/24` | `fd00:99:K::2/64` | `eth0` |
//!
//! N, M and K count from 1 per world (N and M in IPv6 are written as hex groups). The internet
//! router only knows the `198.18.N.0/24` and `2001:db8:N::/64` segments, so private LANs and
//! back-end links are unreachable from everywhere but their own router or near host.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::error::{Error, Result};
use super::link::{add_addr, connect, route};
use super::namespace::Namespace;
use super::nat::{Nat, NatKind};

/// The interface name of a host's only link (LAN hosts and back ends).
pub const HOST_IF: &str = "eth0";
/// The interface name of a public host's link to the internet.
pub const PUBLIC_IF: &str = "wan";

/// One internet segment, `198.18.N.0/24` and `2001:db8:N::/64`; the internet router is `.1`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Site(u8);

impl Site {
    /// Address `198.18.N.host`.
    pub(crate) fn v4(self, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, self.0, host)
    }

    /// Address `2001:db8:N::host`.
    pub(crate) fn v6(self, host: u8) -> Ipv6Addr {
        Ipv6Addr::new(0x2001, 0xdb8, self.0.into(), 0, 0, 0, 0, host.into())
    }

    /// Links `ns` (as `.2` on `iface`) to the internet router (as `.1` on `s<N>`), with
    /// default routes in `ns` towards the internet.
    pub(crate) fn attach(self, internet: &Namespace, ns: &Namespace, iface: &str) -> Result<()> {
        let inet_if = format!("s{}", self.0);
        connect(
            internet,
            &inet_if,
            &format!("{}/24", self.v4(1)),
            ns,
            iface,
            &format!("{}/24", self.v4(2)),
        )?;
        add_addr(internet, &inet_if, &format!("{}/64", self.v6(1)))?;
        add_addr(ns, iface, &format!("{}/64", self.v6(2)))?;
        route(ns, "default", &self.v4(1).to_string())?;
        route(ns, "default", &self.v6(1).to_string())
    }
}

/// An end host: its namespace, its one interface and addresses, and its default router.
#[derive(Debug)]
pub struct Host {
    ns: Namespace,
    iface: String,
    v4: Ipv4Addr,
    v6: Ipv6Addr,
    router_v4: Ipv4Addr,
    router_v6: Ipv6Addr,
}

impl Host {
    pub(crate) fn new(
        ns: Namespace,
        iface: &str,
        v4: Ipv4Addr,
        v6: Ipv6Addr,
        router_v4: Ipv4Addr,
        router_v6: Ipv6Addr,
    ) -> Host {
        Host {
            ns,
            iface: iface.to_owned(),
            v4,
            v6,
            router_v4,
            router_v6,
        }
    }

    /// The host's namespace, to run, spawn, ping or capture in.
    pub fn ns(&self) -> &Namespace {
        &self.ns
    }

    /// The host's interface ([`PUBLIC_IF`] for public hosts, [`HOST_IF`] otherwise).
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// The host's IPv4 address.
    pub fn v4(&self) -> Ipv4Addr {
        self.v4
    }

    /// The host's IPv6 address.
    pub fn v6(&self) -> Ipv6Addr {
        self.v6
    }

    /// The IPv4 next hop of the host's default route (for a back end: the near host's
    /// address on the private link).
    pub fn router_v4(&self) -> Ipv4Addr {
        self.router_v4
    }

    /// The IPv6 next hop of the host's default route.
    pub fn router_v6(&self) -> Ipv6Addr {
        self.router_v6
    }
}

/// The standard topology under construction; keep it alive as long as its hosts are used
/// (dropping it deletes the internet router and so cuts every site off).
#[derive(Debug)]
pub struct World {
    internet: Namespace,
    sites: u8,
    lans: u8,
    private_links: u8,
}

impl World {
    /// Creates the `internet` router namespace, with no site attached yet.
    pub fn new() -> Result<World> {
        let internet = Namespace::new("internet")?;
        internet.enable_forwarding()?;
        Ok(World {
            internet,
            sites: 0,
            lans: 0,
            private_links: 0,
        })
    }

    /// The internet router's namespace (to capture on `s<N>` or add loss there).
    pub fn internet(&self) -> &Namespace {
        &self.internet
    }

    /// Adds a host directly on the internet (e.g. the gateway) at `198.18.N.2` /
    /// `2001:db8:N::2` on [`PUBLIC_IF`], default routes via the internet router.
    pub fn add_public_host(&mut self, role: &str) -> Result<Host> {
        let site = Site(bump(&mut self.sites, "internet sites")?);
        let ns = Namespace::new(role)?;
        site.attach(&self.internet, &ns, PUBLIC_IF)?;
        Ok(Host::new(
            ns,
            PUBLIC_IF,
            site.v4(2),
            site.v6(2),
            site.v4(1),
            site.v6(1),
        ))
    }

    /// Adds a NAT router of `kind` with public address `198.18.N.2` and an empty LAN
    /// `10.200.M.0/24`; put laptops behind it with [`Nat::add_host`].
    pub fn add_nat(&mut self, kind: NatKind) -> Result<Nat> {
        let site = Site(bump(&mut self.sites, "internet sites")?);
        let lan = bump(&mut self.lans, "NAT LANs")?;
        Nat::build(&self.internet, site, lan, kind)
    }

    /// Adds a back-end host (e.g. a game server) on a private link `10.99.K.0/24` reachable
    /// only through `via`: the back end is `10.99.K.2` with default routes via `via` at
    /// `10.99.K.1` (interface `b<K>`), and `via` gets forwarding enabled. Nothing else learns a
    /// route to the link.
    pub fn add_private_link(&mut self, via: &Host, role: &str) -> Result<Host> {
        let k = bump(&mut self.private_links, "private links")?;
        let ns = Namespace::new(role)?;
        let near_v4 = Ipv4Addr::new(10, 99, k, 1);
        let near_v6 = Ipv6Addr::new(0xfd00, 0x99, k.into(), 0, 0, 0, 0, 1);
        let (v4, v6) = (
            Ipv4Addr::new(10, 99, k, 2),
            Ipv6Addr::new(0xfd00, 0x99, k.into(), 0, 0, 0, 0, 2),
        );
        let near_if = format!("b{k}");
        connect(
            via.ns(),
            &near_if,
            &format!("{near_v4}/24"),
            &ns,
            HOST_IF,
            &format!("{v4}/24"),
        )?;
        add_addr(via.ns(), &near_if, &format!("{near_v6}/64"))?;
        add_addr(&ns, HOST_IF, &format!("{v6}/64"))?;
        via.ns().enable_forwarding()?;
        route(&ns, "default", &near_v4.to_string())?;
        route(&ns, "default", &near_v6.to_string())?;
        Ok(Host::new(ns, HOST_IF, v4, v6, near_v4, near_v6))
    }
}

/// Takes the next number from `counter` (1, 2, …, 254).
fn bump(counter: &mut u8, what: &str) -> Result<u8> {
    if *counter >= 254 {
        return Err(Error::Invalid(format!("no more {what} in this world")));
    }
    *counter += 1;
    Ok(*counter)
}
