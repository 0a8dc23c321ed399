//! The address book: a stable tunnel address per client key, persisted across restarts.
//!
//! Every key the gateway has ever served keeps its addresses in `state_file` (JSON). A client
//! removed from the configuration stays in the book, marked inactive with the time of its
//! removal, so that it gets the same addresses back if it is added again (its peers' and
//! firewalls' notion of "alice is 10.77.0.5" survives an accidental removal). Reservations
//! are reclaimed only when a pool runs out: the address of the client removed longest ago is
//! given to the new one.
//!
//! The file is replaced atomically ([`write_atomically`]): a crash leaves either the old or
//! the new book, never a torn one. An unreadable or corrupt file stops the gateway with a
//! message instead of being silently replaced (that would renumber every client).

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use grelay_proto::crypto::keys::PublicKey;
use serde::{Deserialize, Serialize};

use crate::pool::Pool;

/// Format version written to the file.
const VERSION: u32 = 1;

/// One key's addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The client's name when last seen in the configuration (for people reading the file).
    #[serde(default)]
    pub name: String,
    /// Its IPv4 address, if the IPv4 pool is enabled.
    #[serde(default)]
    pub ipv4: Option<Ipv4Addr>,
    /// Its IPv6 address, if the IPv6 pool is enabled.
    #[serde(default)]
    pub ipv6: Option<Ipv6Addr>,
    /// Unix time (seconds) when it was removed from the configuration; `None` while active.
    #[serde(default)]
    pub removed_at: Option<u64>,
}

#[derive(Serialize, Deserialize)]
struct File {
    version: u32,
    /// Base64 public key → entry; a BTreeMap keeps the file's order stable.
    clients: BTreeMap<String, Entry>,
}

/// The address book in memory.
#[derive(Debug, Clone)]
pub struct AddressBook {
    v4: Option<Pool>,
    v6: Option<Pool>,
    entries: BTreeMap<PublicKey, Entry>,
    dirty: bool,
}

impl AddressBook {
    /// An empty book over these pools.
    pub fn new(v4: Option<Pool>, v6: Option<Pool>) -> Self {
        AddressBook {
            v4,
            v6,
            entries: BTreeMap::new(),
            dirty: false,
        }
    }

    /// Loads the book from `path` (a missing file is an empty book). Addresses outside the
    /// current pools (the pools were changed) and addresses held twice are dropped, with a
    /// warning, and handed out again on [`AddressBook::assign`].
    pub fn load(path: &Path, v4: Option<Pool>, v6: Option<Pool>) -> Result<Self> {
        let mut book = Self::new(v4, v6);
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(book),
            Err(e) => {
                return Err(e).with_context(|| format!("reading state file {}", path.display()));
            }
        };
        let file: File = serde_json::from_str(&text).with_context(|| {
            format!(
                "state file {} is corrupt (move it away to start afresh; clients may then \
                 get new addresses)",
                path.display()
            )
        })?;
        if file.version != VERSION {
            bail!(
                "state file {} has version {}, this gateway reads version {VERSION}",
                path.display(),
                file.version
            );
        }
        let mut taken: Vec<IpAddr> = Vec::new();
        for (key, mut entry) in file.clients {
            let Ok(key) = key.parse::<PublicKey>() else {
                tracing::warn!("state file: skipping entry with invalid key {key:?}");
                continue;
            };
            let name = entry.name.clone();
            let mut keep = |addr: Option<IpAddr>, pool: Option<Pool>| -> bool {
                let Some(addr) = addr else { return true };
                let ok = pool.is_some_and(|p| p.is_client_address(addr)) && !taken.contains(&addr);
                if ok {
                    taken.push(addr);
                } else {
                    tracing::warn!(
                        "state file: {name} loses address {addr} (outside the pool or taken twice)"
                    );
                }
                ok
            };
            if !keep(entry.ipv4.map(IpAddr::V4), book.v4) {
                entry.ipv4 = None;
                book.dirty = true;
            }
            if !keep(entry.ipv6.map(IpAddr::V6), book.v6) {
                entry.ipv6 = None;
                book.dirty = true;
            }
            book.entries.insert(key, entry);
        }
        Ok(book)
    }

    /// The addresses of `key` (active, with any missing family filled in), allocating the
    /// lowest free ones for a new key. Fails when a pool has no free address even after
    /// reclaiming removed clients' reservations.
    pub fn assign(
        &mut self,
        key: &PublicKey,
        name: &str,
    ) -> Result<(Option<Ipv4Addr>, Option<Ipv6Addr>)> {
        let mut entry = self.entries.remove(key).unwrap_or_else(|| Entry {
            name: name.to_owned(),
            ipv4: None,
            ipv6: None,
            removed_at: None,
        });
        let before = entry.clone();
        entry.name = name.to_owned();
        entry.removed_at = None;
        let result = self.fill(&mut entry, name);
        if result.is_err() {
            // Not authorized after all: keep what it got reserved, as for a removed client.
            entry.removed_at = Some(unix_now());
        }
        if entry != before {
            self.dirty = true;
        }
        let addrs = (entry.ipv4, entry.ipv6);
        self.entries.insert(*key, entry);
        result.map(|()| addrs)
    }

    fn fill(&mut self, entry: &mut Entry, name: &str) -> Result<()> {
        if let (Some(pool), None) = (self.v4, entry.ipv4) {
            match self.allocate(pool) {
                Some(IpAddr::V4(a)) => entry.ipv4 = Some(a),
                _ => bail!("ipv4_pool {} is full: no address for {name}", pool.prefix()),
            }
        }
        if let (Some(pool), None) = (self.v6, entry.ipv6) {
            match self.allocate(pool) {
                Some(IpAddr::V6(a)) => entry.ipv6 = Some(a),
                _ => bail!("ipv6_pool {} is full: no address for {name}", pool.prefix()),
            }
        }
        Ok(())
    }

    /// The lowest free address of `pool`, reclaiming the reservation of the client removed
    /// longest ago when none is free.
    fn allocate(&mut self, pool: Pool) -> Option<IpAddr> {
        let v6 = pool.prefix().addr().is_ipv6();
        let held = |e: &Entry| -> Option<IpAddr> {
            if v6 {
                e.ipv6.map(IpAddr::V6)
            } else {
                e.ipv4.map(IpAddr::V4)
            }
        };
        if let Some(free) = pool.lowest_free(self.entries.values().filter_map(held)) {
            return Some(free);
        }
        let (victim, _) = self
            .entries
            .iter()
            .filter(|(_, e)| held(e).is_some())
            .filter_map(|(k, e)| e.removed_at.map(|t| (*k, t)))
            .min_by_key(|&(_, t)| t)?;
        let entry = self.entries.get_mut(&victim)?;
        tracing::info!(
            "pool {} is full: reclaiming the address of removed client {}",
            pool.prefix(),
            entry.name
        );
        if v6 {
            entry.ipv6.take().map(IpAddr::V6)
        } else {
            entry.ipv4.take().map(IpAddr::V4)
        }
    }

    /// Marks `key` removed (its addresses stay reserved); true if it was active.
    pub fn release(&mut self, key: &PublicKey) -> bool {
        let now = unix_now();
        match self.entries.get_mut(key) {
            Some(e) if e.removed_at.is_none() => {
                e.removed_at = Some(now);
                self.dirty = true;
                true
            }
            _ => false,
        }
    }

    /// The entry of `key`.
    pub fn get(&self, key: &PublicKey) -> Option<&Entry> {
        self.entries.get(key)
    }

    /// Whether there are changes not yet saved.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Writes the book to `path` atomically and clears the dirty flag.
    pub fn save(&mut self, path: &Path) -> Result<()> {
        let file = File {
            version: VERSION,
            clients: self
                .entries
                .iter()
                .map(|(k, e)| (k.to_string(), e.clone()))
                .collect(),
        };
        let mut json = serde_json::to_vec_pretty(&file).context("encoding the address book")?;
        json.push(b'\n');
        write_atomically(path, &json)
            .with_context(|| format!("writing state file {}", path.display()))?;
        self.dirty = false;
        Ok(())
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Replaces `path` with `contents` so that a crash at any point leaves the old or the new
/// file: write a temporary file in the same directory, fsync it, rename it over `path`, fsync
/// the directory (making the rename durable). Creates the directory if missing.
pub fn write_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("the state file path names no file"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests;
