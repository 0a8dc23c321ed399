//! The system calls behind [`Item`]s: netlink (through `grelay-io`, plus what it lacks:
//! typed routes — `unreachable`, `throw` — in the tunnel's table, and the link MTU), the
//! socket mark, `nft -f -`, and sysctls.

use std::io::Write as _;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use grelay_io::netlink::{Netlink, Rule};
use grelay_proto::router::IpPrefix;
use rtnetlink::packet_route::route::{RouteMessage, RouteProtocol, RouteScope, RouteType};
use rtnetlink::{LinkUnspec, RouteMessageBuilder};

use super::item::{Item, Target};

/// How long `nft` may take.
const NFT_TIMEOUT: Duration = Duration::from_secs(10);

/// The errno of a netlink error, if the kernel gave one.
fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(msg) => msg.code.map(|c| -c.get()),
        _ => None,
    }
}

fn is_gone(code: Option<i32>) -> bool {
    matches!(
        code,
        Some(libc::ENOENT | libc::ESRCH | libc::EADDRNOTAVAIL | libc::ENODEV)
    )
}

/// Netlink handles for installing and removing items.
#[derive(Debug, Clone)]
pub struct System {
    netlink: Netlink,
    handle: rtnetlink::Handle,
}

impl System {
    /// Opens the netlink sockets (inside a tokio runtime).
    pub fn new() -> Result<Self> {
        let netlink = Netlink::new().context("opening netlink")?;
        let (connection, handle, _) =
            rtnetlink::new_connection().context("opening a netlink route socket")?;
        tokio::spawn(connection);
        Ok(Self { netlink, handle })
    }

    /// Installs a rule, route or address; one that exists already counts as installed.
    pub async fn apply(&self, item: &Item) -> Result<()> {
        let result = match item {
            Item::Rule { .. } => match self.netlink.add_rule(&rule(item)?).await {
                Err(e) if e.errno() == Some(libc::EAFNOSUPPORT) => {
                    tracing::warn!("IPv6 is disabled here; no IPv6 rule needed");
                    Ok(())
                }
                other => other.map_err(|e| (e.errno(), anyhow::Error::new(e))),
            },
            Item::Route { .. } => {
                let msg = route_message(item)?;
                self.handle
                    .route()
                    .add(msg)
                    .execute()
                    .await
                    .map_err(|e| (errno(&e), anyhow::Error::new(e)))
            }
            Item::Address {
                device,
                address,
                prefix_len,
            } => self
                .netlink
                .add_address(device.index, *address, *prefix_len)
                .await
                .map_err(|e| (e.errno(), anyhow::Error::new(e))),
            other => bail!("{} is not installed through netlink", other.describe()),
        };
        match result {
            Ok(()) => Ok(()),
            Err((Some(libc::EEXIST), _)) => Ok(()),
            Err((_, e)) => Err(e).with_context(|| format!("installing {}", item.describe())),
        }
    }

    /// Removes an item of any kind; what is already gone counts as removed.
    pub async fn undo(&self, item: &Item) -> Result<()> {
        if item.device_gone() {
            return Ok(());
        }
        let code = match item {
            Item::Rule { .. } => match self.netlink.del_rule(&rule(item)?).await {
                Ok(()) => None,
                Err(e) if e.errno() == Some(libc::EAFNOSUPPORT) => None,
                Err(e) => Some((e.errno(), anyhow::Error::new(e))),
            },
            Item::Route { .. } => {
                let mut msg = route_message(item)?;
                // Match whatever scope the kernel stored, as `ip route del` does.
                msg.header.scope = RouteScope::NoWhere;
                self.handle
                    .route()
                    .del(msg)
                    .execute()
                    .await
                    .err()
                    .map(|e| (errno(&e), anyhow::Error::new(e)))
            }
            Item::Address {
                device,
                address,
                prefix_len,
            } => self
                .netlink
                .del_address(device.index, *address, *prefix_len)
                .await
                .err()
                .map(|e| (e.errno(), anyhow::Error::new(e))),
            Item::Nftables { table } => return delete_nft_table(table),
            Item::Sysctl { path, previous } => {
                return std::fs::write(path, format!("{previous}\n"))
                    .with_context(|| format!("restoring {}", path.display()));
            }
            Item::ResolvConf { target, backup } => {
                return super::resolv::restore(target, backup);
            }
        };
        match code {
            None => Ok(()),
            Some((c, _)) if is_gone(c) => Ok(()),
            Some((_, e)) => Err(e).with_context(|| format!("removing {}", item.describe())),
        }
    }

    /// Sets the MTU of interface `index`.
    pub async fn set_mtu(&self, index: u32, mtu: u16) -> Result<()> {
        self.handle
            .link()
            .set(
                LinkUnspec::new_with_index(index)
                    .mtu(u32::from(mtu))
                    .build(),
            )
            .execute()
            .await
            .with_context(|| format!("setting the MTU of interface {index} to {mtu}"))
    }
}

fn rule(item: &Item) -> Result<Rule> {
    let Item::Rule {
        ipv6,
        priority,
        fwmark,
        table,
    } = *item
    else {
        bail!("not a rule: {}", item.describe());
    };
    Ok(Rule {
        ipv6,
        priority: Some(priority),
        fwmark: Some(fwmark),
        destination: None,
        invert: true,
        suppress_prefix_len: None,
        table,
    })
}

/// The netlink message that adds (or, with scope `NoWhere`, removes) a route item.
fn route_message(item: &Item) -> Result<RouteMessage> {
    let Item::Route {
        table,
        metric,
        target,
        ..
    } = item
    else {
        bail!("not a route: {}", item.describe());
    };
    let prefix: IpPrefix = item
        .route_prefix()
        .with_context(|| format!("bad prefix in {}", item.describe()))?;
    let builder = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(prefix.addr(), prefix.prefix_len())
        .with_context(|| format!("building {}", item.describe()))?
        .table_id(*table)
        .priority(*metric)
        .protocol(RouteProtocol::Static);
    let builder = match target {
        Target::Device(d) => builder.output_interface(d.index).scope(RouteScope::Link),
        Target::Unreachable => builder.kind(RouteType::Unreachable),
        Target::Throw => builder.kind(RouteType::Throw),
    };
    Ok(builder.build())
}

/// Marks every packet `socket` sends with `mark` (`SO_MARK`; needs `CAP_NET_ADMIN`).
pub fn set_socket_mark(socket: &impl AsRawFd, mark: u32) -> Result<()> {
    // SAFETY: the fd is open for the duration of the call; the value pointer and length
    // describe one u32 that lives on the stack across the call.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_MARK,
            (&mark as *const u32).cast(),
            std::mem::size_of::<u32>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("setting SO_MARK {mark:#x} on the UDP socket"));
    }
    Ok(())
}

/// Runs `nft -f -` with `ruleset` on its standard input.
pub fn run_nft(ruleset: &str) -> Result<()> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context(
            "running `nft` (full_tunnel's kill switch needs nftables: install the `nftables` \
             package)",
        )?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(ruleset.as_bytes())
            .context("writing the ruleset to nft")?;
    }
    let deadline = std::time::Instant::now() + NFT_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().context("waiting for nft")? {
            if status.success() {
                return Ok(());
            }
            let mut stderr = String::new();
            if let Some(mut err) = child.stderr.take() {
                use std::io::Read as _;
                let _ = err.read_to_string(&mut stderr);
            }
            bail!("nft failed ({status}): {}", stderr.trim());
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("nft did not finish within {NFT_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Deletes `table inet NAME`; a missing table is fine, and so is a missing `nft` (without
/// it the table was never created: `prepare` records the table before running `nft`).
fn delete_nft_table(table: &str) -> Result<()> {
    // `table X` first makes the delete succeed whether or not the table exists.
    match run_nft(&format!("table inet {table}\ndelete table inet {table}\n")) {
        Err(e) if is_not_installed(&e) => Ok(()),
        other => other.with_context(|| format!("removing nftables table inet {table}")),
    }
}

/// Whether `e` says that the `nft` program does not exist.
fn is_not_installed(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_nft_is_recognised() {
        let missing = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::NotFound))
            .context("running `nft`");
        assert!(is_not_installed(&missing));
        assert!(!is_not_installed(&anyhow::anyhow!(
            "nft failed: syntax error"
        )));
    }
}
