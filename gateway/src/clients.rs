//! The authorized clients: configuration entries matched to the core's peers and to their
//! addresses in the address book, and the diff applied on reload (SIGHUP).
//!
//! Added keys are authorized at once (and get their addresses), removed keys lose their
//! sessions at once ([`Gateway::remove_peer`]) and keep their reservation in the book, changed
//! entries (name, psk) are updated in place without touching their session, and the rest is
//! left alone.

use std::collections::HashMap;

use grelay_proto::crypto::keys::PublicKey;
use grelay_proto::tunnel::gateway::{Gateway, PeerConfig, PeerId};
use grelay_proto::wire::control::AddressAssignment;

use crate::config::ClientEntry;
use crate::pool::Pool;
use crate::state::AddressBook;

/// What the tunnel hands every client besides its addresses.
#[derive(Debug, Clone, Copy)]
pub struct Assigner {
    /// IPv4 pool, if enabled.
    pub v4: Option<Pool>,
    /// IPv6 pool, if enabled.
    pub v6: Option<Pool>,
    /// The tunnel MTU told to clients.
    pub mtu: u16,
}

/// One change made by [`Clients::apply`], for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A new client, with its addresses.
    Added {
        /// Its name.
        name: String,
        /// Its addresses.
        assignment: AddressAssignment,
    },
    /// A client no longer in the configuration.
    Removed {
        /// Its name.
        name: String,
        /// The core's handle it had (now invalid; may be reused by an addition).
        id: PeerId,
    },
    /// A client whose name or psk changed.
    Updated {
        /// Its (new) name.
        name: String,
    },
    /// A new client that could not be added (its pool is full).
    Failed {
        /// Its name.
        name: String,
        /// Why.
        reason: String,
    },
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::Added { name, assignment } => {
                write!(f, "client {name} added: {}", describe(assignment))
            }
            Change::Removed { name, .. } => write!(f, "client {name} removed: its sessions ended"),
            Change::Updated { name } => write!(f, "client {name} updated (name or psk)"),
            Change::Failed { name, reason } => write!(f, "client {name} not added: {reason}"),
        }
    }
}

/// The tunnel addresses as text, e.g. `10.77.0.2/16 fd77::2/64`.
pub fn describe(a: &AddressAssignment) -> String {
    let v4 = a.ipv4.map(|(ip, len)| format!("{ip}/{len}"));
    let v6 = a.ipv6.map(|(ip, len)| format!("{ip}/{len}"));
    [v4, v6].into_iter().flatten().collect::<Vec<_>>().join(" ")
}

#[derive(Debug)]
struct Known {
    id: PeerId,
    entry: ClientEntry,
}

/// The clients the gateway serves now.
#[derive(Debug, Default)]
pub struct Clients {
    by_key: HashMap<PublicKey, Known>,
    names: HashMap<PeerId, String>,
}

impl Clients {
    /// Makes `gateway` serve exactly `wanted`, allocating addresses in `book`; returns what
    /// changed, in order (removals first, so their addresses are settled before additions).
    pub fn apply(
        &mut self,
        gateway: &mut Gateway,
        book: &mut AddressBook,
        assigner: Assigner,
        wanted: &[ClientEntry],
    ) -> Vec<Change> {
        let mut changes = Vec::new();
        let wanted_keys: HashMap<PublicKey, &ClientEntry> =
            wanted.iter().map(|c| (c.public_key, c)).collect();
        let gone: Vec<PublicKey> = self
            .by_key
            .keys()
            .filter(|k| !wanted_keys.contains_key(k))
            .copied()
            .collect();
        for key in gone {
            if let Some(known) = self.by_key.remove(&key) {
                gateway.remove_peer(&key);
                book.release(&key);
                self.names.remove(&known.id);
                changes.push(Change::Removed {
                    name: known.entry.name,
                    id: known.id,
                });
            }
        }
        for entry in wanted {
            if self
                .by_key
                .get(&entry.public_key)
                .is_some_and(|k| k.entry == *entry)
            {
                continue;
            }
            let updating = self.by_key.contains_key(&entry.public_key);
            let (ipv4, ipv6) = match book.assign(&entry.public_key, &entry.name) {
                Ok(addrs) => addrs,
                Err(e) => {
                    changes.push(Change::Failed {
                        name: entry.name.clone(),
                        reason: format!("{e:#}"),
                    });
                    continue;
                }
            };
            let assignment = AddressAssignment {
                ipv4: ipv4.zip(assigner.v4.map(|p| p.prefix().prefix_len())),
                ipv6: ipv6.zip(assigner.v6.map(|p| p.prefix().prefix_len())),
                mtu: assigner.mtu,
            };
            let id = gateway.add_peer(PeerConfig {
                public_key: entry.public_key,
                psk: entry.psk,
                name: Some(entry.name.clone()),
                assignment,
            });
            self.names.insert(id, entry.name.clone());
            self.by_key.insert(
                entry.public_key,
                Known {
                    id,
                    entry: entry.clone(),
                },
            );
            changes.push(if updating {
                Change::Updated {
                    name: entry.name.clone(),
                }
            } else {
                Change::Added {
                    name: entry.name.clone(),
                    assignment,
                }
            });
        }
        changes
    }

    /// The name of peer `id` (or `?` for a peer no longer configured).
    pub fn name(&self, id: PeerId) -> &str {
        self.names.get(&id).map_or("?", String::as_str)
    }

    /// How many clients are configured.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether no client is configured.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use grelay_proto::crypto::keys::StaticSecret;
    use grelay_proto::tunnel::gateway::GatewayConfig;

    use super::*;

    fn entry(n: u8, name: &str) -> ClientEntry {
        ClientEntry {
            name: name.into(),
            public_key: StaticSecret::from_bytes([n; 32]).public_key(),
            psk: None,
        }
    }

    #[test]
    fn reload_diff_adds_removes_updates_and_keeps() {
        let v4 = Some(Pool::new("10.77.0.0/16".parse().unwrap()).unwrap());
        let assigner = Assigner {
            v4,
            v6: None,
            mtu: 1420,
        };
        let mut gw = Gateway::new(
            GatewayConfig::new(StaticSecret::from_bytes([9; 32])),
            Instant::now(),
            [0; 32],
        );
        let mut book = AddressBook::new(v4, None);
        let mut clients = Clients::default();
        let (a, b, c) = (entry(1, "alice"), entry(2, "bob"), entry(3, "carol"));
        let changes = clients.apply(&mut gw, &mut book, assigner, &[a.clone(), b.clone()]);
        assert_eq!(changes.len(), 2);
        assert_eq!(changes[0].to_string(), "client alice added: 10.77.0.2/16");
        let alice = gw.peer_by_key(&a.public_key).unwrap();
        assert_eq!(clients.name(alice), "alice");
        assert_eq!(
            gw.route("10.77.0.3".parse().unwrap()),
            gw.peer_by_key(&b.public_key)
        );

        // Nothing changed: nothing to do.
        assert!(
            clients
                .apply(&mut gw, &mut book, assigner, &[a.clone(), b.clone()])
                .is_empty()
        );

        // bob removed, carol added, alice renamed.
        let renamed = ClientEntry {
            name: "alice2".into(),
            ..a.clone()
        };
        let changes = clients.apply(&mut gw, &mut book, assigner, &[renamed, c.clone()]);
        let text: Vec<String> = changes.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "client bob removed: its sessions ended",
                "client alice2 updated (name or psk)",
                "client carol added: 10.77.0.4/16",
            ]
        );
        assert_eq!(gw.peer_by_key(&b.public_key), None);
        assert_eq!(gw.route("10.77.0.3".parse().unwrap()), None);
        assert_eq!(gw.peer_by_key(&a.public_key), Some(alice));
        assert_eq!(clients.name(alice), "alice2");
        assert_eq!(clients.len(), 2);

        // bob comes back with his old address.
        let changes = clients.apply(&mut gw, &mut book, assigner, &[a, b, c]);
        assert!(
            changes
                .iter()
                .any(|c| c.to_string() == "client bob added: 10.77.0.3/16")
        );
    }
}
