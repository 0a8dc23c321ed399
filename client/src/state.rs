//! The state file: what `up` has installed, written *before* each change is made.
//!
//! Recording ahead of acting means that after a crash (even SIGKILL between the two) the file
//! lists everything that might be in place; removal tolerates what is missing. The next `up`
//! or a `down` with no process running reads the file and removes the leftovers in reverse
//! order.
//!
//! ```json
//! {"version":1,"pid":4242,"interface":"grelay0","items":[
//!   {"kind":"rule","ipv6":false,"priority":4747,"fwmark":4747,"table":4747}, …]}
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::net::item::Item;
use crate::rundir::write_private;

/// Format version written in the file.
const VERSION: u32 = 1;

/// The file's contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Format version.
    pub version: u32,
    /// The `up` process that wrote it.
    pub pid: u32,
    /// The interface.
    pub interface: String,
    /// What was installed, oldest first.
    pub items: Vec<Item>,
}

/// The state file of a running `up`.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    state: State,
}

impl StateFile {
    /// Starts a new, empty state file at `path` (replacing any old one, whose leftovers must
    /// have been removed first).
    pub fn create(path: &Path, interface: &str) -> Result<Self> {
        let file = Self {
            path: path.to_owned(),
            state: State {
                version: VERSION,
                pid: std::process::id(),
                interface: interface.to_owned(),
                items: Vec::new(),
            },
        };
        file.save()?;
        Ok(file)
    }

    /// Reads the state file at `path`; `None` if there is none.
    pub fn load(path: &Path) -> Result<Option<State>> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let state: State = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a grelay state file; remove it by hand after checking `ip rule`, \
                 `ip route show table all` and `nft list tables`",
                path.display()
            )
        })?;
        if state.version != VERSION {
            bail!(
                "{} has format version {}, this grelay understands {VERSION}",
                path.display(),
                state.version
            );
        }
        Ok(Some(state))
    }

    /// What is recorded, oldest first.
    pub fn items(&self) -> &[Item] {
        &self.state.items
    }

    /// Records `item` (once) before it is installed.
    pub fn record(&mut self, item: &Item) -> Result<()> {
        if !self.state.items.contains(item) {
            self.state.items.push(item.clone());
            self.save()?;
        }
        Ok(())
    }

    /// Forgets `item` after it was removed.
    pub fn forget(&mut self, item: &Item) -> Result<()> {
        let before = self.state.items.len();
        self.state.items.retain(|i| i != item);
        if self.state.items.len() != before {
            self.save()?;
        }
        Ok(())
    }

    /// Deletes the file (everything was removed).
    pub fn delete(self) -> Result<()> {
        remove_file(&self.path)
    }

    fn save(&self) -> Result<()> {
        let json = serde_json::to_vec(&self.state).context("encoding the state file")?;
        write_private(&self.path, &json)
    }
}

/// Removes `path`; a missing file is fine.
pub fn remove_file(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(priority: u32) -> Item {
        Item::Rule {
            ipv6: false,
            priority,
            fwmark: 1,
            table: 2,
        }
    }

    #[test]
    fn record_forget_reload() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("g.state");
        assert_eq!(StateFile::load(&path).unwrap(), None);
        let mut file = StateFile::create(&path, "g").unwrap();
        file.record(&rule(1)).unwrap();
        file.record(&rule(2)).unwrap();
        file.record(&rule(1)).unwrap();
        let loaded = StateFile::load(&path).unwrap().unwrap();
        assert_eq!(loaded.items, vec![rule(1), rule(2)]);
        assert_eq!(loaded.pid, std::process::id());
        file.forget(&rule(1)).unwrap();
        assert_eq!(
            StateFile::load(&path).unwrap().unwrap().items,
            vec![rule(2)]
        );
        file.delete().unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("g.state");
        std::fs::write(&path, "{not json").unwrap();
        let err = format!("{:#}", StateFile::load(&path).unwrap_err());
        assert!(err.contains("is not a grelay state file"), "{err}");
        std::fs::write(&path, r#"{"version":9,"pid":1,"interface":"g","items":[]}"#).unwrap();
        assert!(StateFile::load(&path).is_err());
    }
}
