//! `write_resolv_conf = true`: point `/etc/resolv.conf` at the tunnel's DNS servers while up.
//!
//! Off by default: most desktops manage the file (systemd-resolved, NetworkManager), and the
//! documented way there is `resolvectl dns grelay0 …; resolvectl domain grelay0 '~.'`. When
//! on, the original is saved in the run directory first — its contents, or, when it is a
//! symbolic link (systemd-resolved's stub), the link itself — and put back at `down` (or by
//! the cleanup after a crash).

use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::rundir::write_private;
use crate::state::remove_file;

/// glibc reads at most three `nameserver` lines.
const MAX_SERVERS: usize = 3;

/// The original file.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Saved {
    /// It was a symbolic link to this path.
    Symlink(PathBuf),
    /// It was a regular file with these contents.
    Contents(String),
    /// There was none.
    Missing,
}

/// The text written while grelay is up.
pub fn contents(interface: &str, servers: &[IpAddr]) -> String {
    let mut text = format!(
        "# Written by grelay for {interface} (full tunnel); `grelay down` restores the original.\n"
    );
    for server in servers.iter().take(MAX_SERVERS) {
        text.push_str(&format!("nameserver {server}\n"));
    }
    text
}

/// Saves `target` to `backup`, then replaces `target` with [`contents`].
pub fn install(target: &Path, backup: &Path, interface: &str, servers: &[IpAddr]) -> Result<()> {
    if backup.exists() {
        bail!(
            "{} exists: an earlier copy of {} was not restored; run `grelay down --interface \
             {interface}`",
            backup.display(),
            target.display()
        );
    }
    let saved = match std::fs::symlink_metadata(target) {
        Ok(meta) if meta.file_type().is_symlink() => Saved::Symlink(
            std::fs::read_link(target)
                .with_context(|| format!("reading link {}", target.display()))?,
        ),
        Ok(_) => Saved::Contents(
            std::fs::read_to_string(target)
                .with_context(|| format!("reading {}", target.display()))?,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Saved::Missing,
        Err(e) => return Err(e).with_context(|| format!("inspecting {}", target.display())),
    };
    write_private(backup, &serde_json::to_vec(&saved)?)?;
    replace(target, contents(interface, servers).as_bytes())
}

/// Puts back the original saved at `backup` and removes the backup; no backup, nothing to do.
pub fn restore(target: &Path, backup: &Path) -> Result<()> {
    let text = match std::fs::read(backup) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", backup.display())),
    };
    let saved: Saved = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not a saved resolv.conf", backup.display()))?;
    match saved {
        Saved::Symlink(link) => {
            let tmp = sibling(target, ".grelay-link");
            let _ = std::fs::remove_file(&tmp);
            std::os::unix::fs::symlink(&link, &tmp)
                .with_context(|| format!("creating link {}", tmp.display()))?;
            std::fs::rename(&tmp, target)
                .with_context(|| format!("restoring link {}", target.display()))?;
        }
        Saved::Contents(contents) => replace(target, contents.as_bytes())?,
        Saved::Missing => remove_file(target)?,
    }
    remove_file(backup)
}

fn sibling(target: &Path, suffix: &str) -> PathBuf {
    let mut name = target.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Replaces `target` atomically with a world-readable regular file holding `bytes`.
fn replace(target: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = sibling(target, ".grelay-tmp");
    write_private(&tmp, bytes)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))
        .with_context(|| format!("setting mode 0644 on {}", tmp.display()))?;
    std::fs::rename(&tmp, target).with_context(|| format!("replacing {}", target.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers() -> Vec<IpAddr> {
        ["10.77.0.1", "fd77::1", "10.77.0.2", "10.77.0.3"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect()
    }

    #[test]
    fn regular_file_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let (target, backup) = (tmp.path().join("resolv.conf"), tmp.path().join("bak"));
        std::fs::write(&target, "nameserver 192.0.2.53\n").unwrap();
        install(&target, &backup, "grelay0", &servers()).unwrap();
        let now = std::fs::read_to_string(&target).unwrap();
        assert_eq!(
            now.lines().filter(|l| l.starts_with("nameserver")).count(),
            3
        );
        assert!(
            now.contains("nameserver 10.77.0.1\nnameserver fd77::1\n"),
            "{now}"
        );
        // A second install must not overwrite the saved original.
        assert!(install(&target, &backup, "grelay0", &servers()).is_err());
        restore(&target, &backup).unwrap();
        assert_eq!(
            std::fs::read_to_string(&target).unwrap(),
            "nameserver 192.0.2.53\n"
        );
        assert!(!backup.exists());
        restore(&target, &backup).unwrap();
    }

    #[test]
    fn symlink_and_missing_are_restored_as_they_were() {
        let tmp = tempfile::tempdir().unwrap();
        let (target, backup) = (tmp.path().join("resolv.conf"), tmp.path().join("bak"));
        std::os::unix::fs::symlink("../run/stub-resolv.conf", &target).unwrap();
        install(&target, &backup, "g", &servers()[..1]).unwrap();
        assert!(!std::fs::symlink_metadata(&target).unwrap().is_symlink());
        restore(&target, &backup).unwrap();
        assert_eq!(
            std::fs::read_link(&target).unwrap(),
            PathBuf::from("../run/stub-resolv.conf")
        );
        std::fs::remove_file(&target).unwrap();
        install(&target, &backup, "g", &servers()[..1]).unwrap();
        assert!(target.exists());
        restore(&target, &backup).unwrap();
        assert!(!target.exists());
    }
}
