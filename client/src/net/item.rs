//! One thing `up` changes in the system, as recorded in the state file, and how it is put in
//! place and taken away again.
//!
//! Removing is idempotent: something already gone (the kernel answers `ENOENT`/`ESRCH`, the
//! nftables table does not exist) counts as removed. Routes and addresses on the TUN die with
//! it, so an item that names a device whose index now belongs to another name (or to none) is
//! skipped rather than removed from whatever reused the index.

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use grelay_proto::router::IpPrefix;
use serde::{Deserialize, Serialize};

/// A network device by index and by the name it had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
}

impl Device {
    /// Whether the device still exists with this index and name.
    pub fn exists(&self) -> bool {
        let Ok(name) = std::ffi::CString::new(self.name.as_str()) else {
            return false;
        };
        // SAFETY: `name` is a valid NUL-terminated string that outlives the call.
        unsafe { libc::if_nametoindex(name.as_ptr()) == self.index }
    }
}

/// Where a route in the tunnel's table sends packets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Into this device (the TUN).
    Device(Device),
    /// Nowhere: senders get `ENETUNREACH` (the kill switch's fallback).
    Unreachable,
    /// Continue with the next policy rule (the main table): an excluded prefix.
    Throw,
}

/// Something installed by `up`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Item {
    /// `ip [-6] rule add not fwmark MARK lookup TABLE priority PRIORITY`.
    Rule {
        /// IPv6 rule (else IPv4).
        ipv6: bool,
        /// Rule priority.
        priority: u32,
        /// Packets *without* this mark use the table.
        fwmark: u32,
        /// The tunnel's table.
        table: u32,
    },
    /// A route in the tunnel's table.
    Route {
        /// Destination prefix, as text.
        prefix: String,
        /// Routing table.
        table: u32,
        /// Metric; lower wins.
        metric: u32,
        /// Where it leads.
        target: Target,
    },
    /// An address on the TUN.
    Address {
        /// The TUN.
        device: Device,
        /// The address.
        address: IpAddr,
        /// Its prefix length.
        prefix_len: u8,
    },
    /// The kill switch: `table inet NAME` in nftables.
    Nftables {
        /// Table name.
        table: String,
    },
    /// A sysctl set by `up`, with the value to put back.
    Sysctl {
        /// Path under `/proc/sys`.
        path: PathBuf,
        /// The value before `up`.
        previous: String,
    },
    /// `/etc/resolv.conf` replaced; the original is saved at `backup`.
    ResolvConf {
        /// The file replaced.
        target: PathBuf,
        /// Where the original is kept.
        backup: PathBuf,
    },
}

impl Item {
    /// The prefix of a route item.
    pub fn route_prefix(&self) -> Option<IpPrefix> {
        match self {
            Self::Route { prefix, .. } => prefix.parse().ok(),
            _ => None,
        }
    }

    /// Whether the item lives on a device that no longer exists (so it is gone already).
    pub fn device_gone(&self) -> bool {
        match self {
            Self::Route {
                target: Target::Device(d),
                ..
            }
            | Self::Address { device: d, .. } => !d.exists(),
            _ => false,
        }
    }

    /// A short description for logs.
    pub fn describe(&self) -> String {
        match self {
            Self::Rule {
                ipv6,
                priority,
                fwmark,
                table,
            } => format!(
                "rule{} {priority}: not fwmark {fwmark:#x} lookup {table}",
                if *ipv6 { " (IPv6)" } else { "" }
            ),
            Self::Route {
                prefix,
                table,
                metric,
                target,
            } => {
                let to = match target {
                    Target::Device(d) => format!("dev {}", d.name),
                    Target::Unreachable => "unreachable".to_owned(),
                    Target::Throw => "throw".to_owned(),
                };
                format!("route {prefix} {to} table {table} metric {metric}")
            }
            Self::Address {
                device,
                address,
                prefix_len,
            } => format!("address {address}/{prefix_len} on {}", device.name),
            Self::Nftables { table } => format!("nftables table inet {table}"),
            Self::Sysctl { path, previous } => {
                format!("sysctl {} (was {previous})", path.display())
            }
            Self::ResolvConf { target, .. } => format!("{} rewritten", target.display()),
        }
    }
}

/// Puts a sysctl value, returning the previous one.
pub fn set_sysctl(path: &std::path::Path, value: &str) -> Result<String> {
    let previous = std::fs::read_to_string(path)
        .with_context(|| format!("reading {}", path.display()))?
        .trim()
        .to_owned();
    std::fs::write(path, format!("{value}\n"))
        .with_context(|| format!("writing {value} to {}", path.display()))?;
    Ok(previous)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_serialize_readably() {
        let items = vec![
            Item::Rule {
                ipv6: false,
                priority: 4747,
                fwmark: 4747,
                table: 4747,
            },
            Item::Route {
                prefix: "0.0.0.0/0".into(),
                table: 4747,
                metric: 0,
                target: Target::Device(Device {
                    index: 7,
                    name: "grelay0".into(),
                }),
            },
            Item::Route {
                prefix: "::/0".into(),
                table: 4747,
                metric: 1,
                target: Target::Unreachable,
            },
            Item::Nftables {
                table: "grelay_client_grelay0".into(),
            },
        ];
        let json = serde_json::to_string(&items).unwrap();
        assert!(json.contains(r#"{"kind":"rule","ipv6":false"#), "{json}");
        assert!(
            json.contains(r#""target":{"device":{"index":7,"name":"grelay0"}}"#),
            "{json}"
        );
        assert!(json.contains(r#""target":"unreachable""#), "{json}");
        let back: Vec<Item> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, items);
        assert_eq!(
            items[1].describe(),
            "route 0.0.0.0/0 dev grelay0 table 4747 metric 0"
        );
        assert_eq!(items[1].route_prefix().unwrap().to_string(), "0.0.0.0/0");
    }

    #[test]
    fn devices_that_vanished_are_recognised() {
        let lo = Device {
            index: 1,
            name: "lo".into(),
        };
        assert!(lo.exists());
        let gone = Device {
            index: 1,
            name: "grelay-gone9".into(),
        };
        assert!(!gone.exists());
        let renamed = Device {
            index: 999_999,
            name: "lo".into(),
        };
        assert!(!renamed.exists());
        let item = Item::Address {
            device: gone,
            address: "10.77.0.2".parse().unwrap(),
            prefix_len: 16,
        };
        assert!(item.device_gone());
    }
}
