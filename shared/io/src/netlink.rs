//! Interfaces, addresses, routes and policy rules through rtnetlink (no `ip` subprocesses).
//!
//! [`Netlink::new`] opens one `NETLINK_ROUTE` socket and spawns its connection task on the
//! current tokio runtime; the task ends when the [`Netlink`] (and its clones) are dropped.
//! Each call sends one request and waits for the kernel's acknowledgement, so when it returns
//! the change is in place. Kernel refusals come back as [`Error::Netlink`] with the errno
//! ([`Error::errno`], [`Error::is_already_exists`], [`Error::is_not_found`]).
//!
//! Adds are exclusive (`NLM_F_EXCL`): adding what already exists fails with `EEXIST` rather
//! than silently replacing someone else's route. Removing takes the same description that
//! added, so keep the [`Route`] / [`Rule`] values you added to remove them at exit.
//!
//! Routes made here carry protocol `static`; a route with no gateway gets scope `link` (what
//! `ip route add … dev X` does), one with a gateway scope `universe`.

use std::net::IpAddr;

use futures_util::TryStreamExt;
use rtnetlink::packet_route::route::{RouteProtocol, RouteScope};
use rtnetlink::packet_route::rule::{RuleAction, RuleAttribute, RuleFlags, RuleMessage};
use rtnetlink::packet_route::{AddressFamily, route::RouteMessage};
use rtnetlink::{Handle, LinkUnspec, RouteMessageBuilder};

use grelay_proto::router::IpPrefix;

use crate::{Error, Result};

/// The main routing table's id.
pub const MAIN_TABLE: u32 = 254;

/// A route to add or remove: `destination` via an interface and/or a gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Route {
    /// Where the route leads (`0.0.0.0/0` or `::/0` for a default route).
    pub destination: IpPrefix,
    /// Output interface index ([`Netlink::link_index`], [`crate::tun::Tun::index`]).
    pub interface: Option<u32>,
    /// Next hop; must be of the destination's family. `None`: directly on the interface.
    pub gateway: Option<IpAddr>,
    /// Route metric (priority); lower wins. `None`: the kernel's default (0 for IPv4,
    /// 1024 for IPv6).
    pub metric: Option<u32>,
    /// Routing table; `None` is the main table.
    pub table: Option<u32>,
}

impl Route {
    /// A route to `destination` with nothing else set yet.
    pub fn to(destination: IpPrefix) -> Self {
        Route {
            destination,
            interface: None,
            gateway: None,
            metric: None,
            table: None,
        }
    }

    /// Sets the output interface.
    pub fn dev(mut self, index: u32) -> Self {
        self.interface = Some(index);
        self
    }

    /// Sets the next hop.
    pub fn via(mut self, gateway: IpAddr) -> Self {
        self.gateway = Some(gateway);
        self
    }

    /// Sets the metric.
    pub fn metric(mut self, metric: u32) -> Self {
        self.metric = Some(metric);
        self
    }

    /// Sets the routing table.
    pub fn table(mut self, table: u32) -> Self {
        self.table = Some(table);
        self
    }

    fn message(&self) -> Result<RouteMessage> {
        let mut b = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(self.destination.addr(), self.destination.prefix_len())
            .map_err(|e| Error::Invalid(format!("{self:?}: {e}")))?
            .protocol(RouteProtocol::Static);
        if let Some(gateway) = self.gateway {
            if gateway.is_ipv4() != self.destination.addr().is_ipv4() {
                return Err(Error::Invalid(format!(
                    "gateway {gateway} is not of the family of {}",
                    self.destination
                )));
            }
            b = b
                .gateway(gateway)
                .map_err(|e| Error::Invalid(format!("{self:?}: {e}")))?;
        } else {
            b = b.scope(RouteScope::Link);
        }
        if let Some(index) = self.interface {
            b = b.output_interface(index);
        }
        if let Some(metric) = self.metric {
            b = b.priority(metric);
        }
        if let Some(table) = self.table {
            b = b.table_id(table);
        }
        Ok(b.build())
    }
}

/// A policy routing rule (`ip rule`): packets of one family that match the selectors are
/// looked up in `table`; with `invert`, packets that do *not* match are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rule {
    /// `false` for IPv4, `true` for IPv6.
    pub ipv6: bool,
    /// Rule priority (order); `None` lets the kernel pick one below the last rule.
    pub priority: Option<u32>,
    /// Selects packets with this firewall mark (`fwmark`).
    pub fwmark: Option<u32>,
    /// Selects packets to this destination prefix.
    pub destination: Option<IpPrefix>,
    /// Matches packets the selectors do *not* select (`ip rule add not …`).
    pub invert: bool,
    /// `suppress_prefixlength`: ignore a lookup result whose prefix is this long or shorter
    /// (`0` skips default routes, as WireGuard's full-tunnel setup does).
    pub suppress_prefix_len: Option<u32>,
    /// The table to look up.
    pub table: u32,
}

impl Rule {
    fn message(&self) -> Result<RuleMessage> {
        let mut m = RuleMessage::default();
        m.header.family = if self.ipv6 {
            AddressFamily::Inet6
        } else {
            AddressFamily::Inet
        };
        m.header.action = RuleAction::ToTable;
        if self.table > 255 {
            m.attributes.push(RuleAttribute::Table(self.table));
        } else {
            m.header.table = self.table as u8;
        }
        if self.invert {
            m.header.flags |= RuleFlags::Invert;
        }
        if let Some(p) = self.priority {
            m.attributes.push(RuleAttribute::Priority(p));
        }
        if let Some(mark) = self.fwmark {
            m.attributes.push(RuleAttribute::FwMark(mark));
        }
        if let Some(len) = self.suppress_prefix_len {
            m.attributes.push(RuleAttribute::SuppressPrefixLen(len));
        }
        if let Some(dst) = self.destination {
            if dst.addr().is_ipv6() != self.ipv6 {
                return Err(Error::Invalid(format!(
                    "rule destination {dst} is not of the rule's family"
                )));
            }
            m.header.dst_len = dst.prefix_len();
            m.attributes.push(RuleAttribute::Destination(dst.addr()));
        }
        Ok(m)
    }
}

/// A netlink route socket. Cheap to clone (clones share the socket).
#[derive(Debug, Clone)]
pub struct Netlink {
    handle: Handle,
}

impl Netlink {
    /// Opens the socket and spawns its connection task on the current tokio runtime (call
    /// inside one).
    pub fn new() -> Result<Netlink> {
        let (connection, handle, _) = rtnetlink::new_connection()
            .map_err(|e| Error::io("opening a netlink route socket", e))?;
        tokio::spawn(connection);
        Ok(Netlink { handle })
    }

    /// The index of interface `name`; [`Error::NoSuchInterface`] if there is none.
    pub async fn link_index(&self, name: &str) -> Result<u32> {
        crate::tun::check_name(name).map_err(crate::Error::Invalid)?;
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_owned())
            .execute();
        match links.try_next().await {
            Ok(Some(link)) => Ok(link.header.index),
            Ok(None) => Err(Error::NoSuchInterface(name.to_owned())),
            Err(source) => {
                let e = Error::Netlink {
                    what: format!("looking up interface {name}"),
                    source,
                };
                if e.is_not_found() {
                    Err(Error::NoSuchInterface(name.to_owned()))
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Sets interface `index` up.
    pub async fn set_link_up(&self, index: u32) -> Result<()> {
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(|source| Error::Netlink {
                what: format!("setting interface {index} up"),
                source,
            })
    }

    /// Adds `address/prefix_len` to interface `index` (`ip addr add`). For a prefix shorter
    /// than the host length the kernel also adds the on-link route to the prefix via the
    /// interface (once the link is up). Fails with `EEXIST` if the address is there.
    pub async fn add_address(&self, index: u32, address: IpAddr, prefix_len: u8) -> Result<()> {
        check_prefix_len(address, prefix_len)?;
        self.handle
            .address()
            .add(index, address, prefix_len)
            .execute()
            .await
            .map_err(|source| Error::Netlink {
                what: format!("adding address {address}/{prefix_len} to interface {index}"),
                source,
            })
    }

    /// Removes `address/prefix_len` from interface `index` (`ip addr del`).
    pub async fn del_address(&self, index: u32, address: IpAddr, prefix_len: u8) -> Result<()> {
        check_prefix_len(address, prefix_len)?;
        let message = match address {
            IpAddr::V4(a) => rtnetlink::AddressMessageBuilder::<std::net::Ipv4Addr>::new()
                .index(index)
                .address(a, prefix_len)
                .build(),
            IpAddr::V6(a) => rtnetlink::AddressMessageBuilder::<std::net::Ipv6Addr>::new()
                .index(index)
                .address(a, prefix_len)
                .build(),
        };
        self.handle
            .address()
            .del(message)
            .execute()
            .await
            .map_err(|source| Error::Netlink {
                what: format!("removing address {address}/{prefix_len} from interface {index}"),
                source,
            })
    }

    /// Adds `route` (`ip route add`); `EEXIST` if an identical one exists.
    pub async fn add_route(&self, route: &Route) -> Result<()> {
        let message = route.message()?;
        self.handle
            .route()
            .add(message)
            .execute()
            .await
            .map_err(|source| Error::Netlink {
                what: format!("adding route {}", describe(route)),
                source,
            })
    }

    /// Removes `route` (`ip route del`), described as it was added.
    pub async fn del_route(&self, route: &Route) -> Result<()> {
        let message = route.message()?;
        self.handle
            .route()
            .del(message)
            .execute()
            .await
            .map_err(|source| Error::Netlink {
                what: format!("removing route {}", describe(route)),
                source,
            })
    }

    /// Adds a policy rule (`ip rule add`); `EEXIST` if an identical one exists.
    pub async fn add_rule(&self, rule: &Rule) -> Result<()> {
        let message = rule.message()?;
        let mut request = self.handle.rule().add();
        *request.message_mut() = message;
        request.execute().await.map_err(|source| Error::Netlink {
            what: format!("adding rule {rule:?}"),
            source,
        })
    }

    /// Removes a policy rule (`ip rule del`), described as it was added.
    pub async fn del_rule(&self, rule: &Rule) -> Result<()> {
        let message = rule.message()?;
        self.handle
            .rule()
            .del(message)
            .execute()
            .await
            .map_err(|source| Error::Netlink {
                what: format!("removing rule {rule:?}"),
                source,
            })
    }
}

fn check_prefix_len(address: IpAddr, prefix_len: u8) -> Result<()> {
    IpPrefix::new(address, prefix_len)
        .map(drop)
        .map_err(|e| Error::Invalid(format!("{address}/{prefix_len}: {e}")))
}

/// `dest [via gw] [dev N] [metric M] [table T]`, for messages.
fn describe(route: &Route) -> String {
    let mut s = route.destination.to_string();
    if let Some(gw) = route.gateway {
        s.push_str(&format!(" via {gw}"));
    }
    if let Some(dev) = route.interface {
        s.push_str(&format!(" dev #{dev}"));
    }
    if let Some(metric) = route.metric {
        s.push_str(&format!(" metric {metric}"));
    }
    if let Some(table) = route.table {
        s.push_str(&format!(" table {table}"));
    }
    s
}

#[cfg(test)]
mod tests;
