//! NAT routers made of nftables `masquerade`, with the RFC 4787 behaviours the project needs.
//!
//! # What Linux masquerade does (checked on this kernel, see the self-test)
//!
//! - **Mapping.** Plain `masquerade` keeps the source port when the resulting 5-tuple is still
//!   unique (`nf_nat` only picks another port on a clash). The same inside `addr:port` sent to
//!   several destinations therefore shows up with the *same* public `addr:port` everywhere:
//!   endpoint-independent mapping in practice, even port-preserving, which is what home routers
//!   do. The exception: when two inside hosts use the same source port towards the same
//!   destination, the second is given another port *for that destination only*, so for that
//!   host the mapping turns destination-dependent.
//! - **`fully-random`** draws a fresh random port for every new conntrack entry (every
//!   destination address and port): endpoint-dependent ("symmetric") mapping.
//! - **Filtering** is address-and-port-dependent in both kinds: inbound packets pass only when
//!   they match a conntrack entry that an outbound packet created (the `forward` chain below
//!   drops everything else from the WAN, like a home router's stateful firewall).
//! - **Mapping lifetime** is the conntrack UDP timeout of the router's namespace
//!   (`net.netfilter.nf_conntrack_udp_timeout`, 30 s unreplied, longer once replied);
//!   [`Nat::flush_conntrack`] forgets every mapping at once.
//!
//! IPv6 gets the same treatment (NAT66 masquerade in the same `inet` table) so that laptops on
//! the LAN have IPv6 reachability without routed prefixes.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::error::{Error, Result};
use super::link::{add_addr, route, veth};
use super::namespace::Namespace;
use super::world::{HOST_IF, Host, Site};

/// The NAT router's interface towards the internet.
pub const WAN_IF: &str = "wan";
/// The NAT router's interface towards its LAN.
pub const LAN_IF: &str = "lan";

/// Which RFC 4787 mapping behaviour a NAT router has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NatKind {
    /// `masquerade`: endpoint-independent, port-preserving mapping; what home routers do.
    EndpointIndependent,
    /// `masquerade fully-random`: a new random port per destination (symmetric NAT).
    Symmetric,
}

impl NatKind {
    fn masquerade(self) -> &'static str {
        match self {
            NatKind::EndpointIndependent => "masquerade",
            NatKind::Symmetric => "masquerade fully-random",
        }
    }
}

/// A NAT router namespace between the internet and a private LAN (`10.200.M.0/24`,
/// `fd00:200:M::/64`), made by [`World::add_nat`](super::World::add_nat).
#[derive(Debug)]
pub struct Nat {
    router: Namespace,
    kind: NatKind,
    site: Site,
    public_v4: Ipv4Addr,
    lan: u8,
    next_host: u8,
}

impl Nat {
    /// Builds the router on internet site `site` with LAN number `lan`.
    pub(crate) fn build(internet: &Namespace, site: Site, lan: u8, kind: NatKind) -> Result<Nat> {
        let router = Namespace::new(&format!("nat{lan}"))?;
        site.attach(internet, &router, WAN_IF)?;
        // The LAN is a bridge (the home router's switch); each host hangs off a port.
        router.run(&["ip", "link", "add", LAN_IF, "type", "bridge"])?;
        router.run(&["ip", "link", "set", LAN_IF, "up"])?;
        add_addr(&router, LAN_IF, &format!("{}/24", lan_v4(lan, 1)))?;
        add_addr(&router, LAN_IF, &format!("{}/64", lan_v6(lan, 1)))?;
        router.enable_forwarding()?;
        let masquerade = kind.masquerade();
        router.nft(&format!(
            "table inet grt_nat {{
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    oifname \"{WAN_IF}\" {masquerade}
  }}
  chain forward {{
    type filter hook forward priority filter; policy accept;
    iifname \"{WAN_IF}\" ct state established,related accept
    iifname \"{WAN_IF}\" drop
  }}
}}
"
        ))?;
        Ok(Nat {
            public_v4: site.v4(2),
            router,
            kind,
            site,
            lan,
            next_host: 2,
        })
    }

    /// Adds a host (a laptop) on the LAN at `10.200.M.x` / `fd00:200:M::x`, default routes via
    /// the router.
    pub fn add_host(&mut self, role: &str) -> Result<Host> {
        let x = self.next_host;
        if x == u8::MAX {
            return Err(Error::Invalid("NAT LAN is full".into()));
        }
        self.next_host += 1;
        let ns = Namespace::new(role)?;
        let (v4, v6) = (lan_v4(self.lan, x), lan_v6(self.lan, x));
        let port = format!("h{x}");
        veth(&self.router, &port, &ns, HOST_IF)?;
        self.router
            .run(&["ip", "link", "set", &port, "master", LAN_IF])?;
        add_addr(&ns, HOST_IF, &format!("{v4}/24"))?;
        add_addr(&ns, HOST_IF, &format!("{v6}/64"))?;
        route(&ns, "default", &lan_v4(self.lan, 1).to_string())?;
        route(&ns, "default", &lan_v6(self.lan, 1).to_string())?;
        Ok(Host::new(
            ns,
            HOST_IF,
            v4,
            v6,
            lan_v4(self.lan, 1),
            lan_v6(self.lan, 1),
        ))
    }

    /// The router's namespace (for captures, [`block_udp`](Namespace::block_udp),
    /// [`set_loss`](Namespace::set_loss) on [`WAN_IF`] …).
    pub fn router(&self) -> &Namespace {
        &self.router
    }

    /// The mapping behaviour this router was built with.
    pub fn kind(&self) -> NatKind {
        self.kind
    }

    /// The router's current public IPv4 address (`198.18.N.2` until rebound).
    pub fn public_v4(&self) -> Ipv4Addr {
        self.public_v4
    }

    /// The router's public IPv6 address, `2001:db8:N::2`.
    pub fn public_v6(&self) -> Ipv6Addr {
        self.site.v6(2)
    }

    /// Forgets every NAT mapping (`conntrack -F`): the next packet of each flow gets a new one,
    /// as after a router reboot.
    pub fn flush_conntrack(&self) -> Result<()> {
        self.router.run(&["conntrack", "-F"]).map(drop)
    }

    /// Moves the router's public IPv4 address to `198.18.N.<host>` and flushes its mappings,
    /// so every flow reappears from a new address (NAT rebinding, like a DSL reconnect).
    pub fn set_public_v4(&mut self, host: u8) -> Result<Ipv4Addr> {
        if host < 2 || host == u8::MAX {
            return Err(Error::Invalid(format!(
                "public host number {host} not in 2..=254"
            )));
        }
        let new = self.site.v4(host);
        let old = format!("{}/24", self.public_v4);
        self.router
            .run(&["ip", "addr", "del", &old, "dev", WAN_IF])?;
        add_addr(&self.router, WAN_IF, &format!("{new}/24"))?;
        let gw = self.site.v4(1).to_string();
        self.router
            .run(&["ip", "-4", "route", "replace", "default", "via", &gw])?;
        self.public_v4 = new;
        self.flush_conntrack()?;
        Ok(new)
    }
}

fn lan_v4(lan: u8, host: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 200, lan, host)
}

fn lan_v6(lan: u8, host: u8) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 0x200, lan.into(), 0, 0, 0, 0, host.into())
}
