//! Preconditions: root and the external tools, each named with its Debian package.

use std::path::Path;

use super::error::{Error, Result};

/// Every executable the harness runs, with the Debian package that ships it.
pub const REQUIRED_TOOLS: &[(&str, &str)] = &[
    ("ip", "iproute2"),
    ("nft", "nftables"),
    ("conntrack", "conntrack"),
    ("tshark", "tshark"),
    ("ping", "iputils-ping"),
];

/// Checks that the process is root and that every tool in [`REQUIRED_TOOLS`] is on `PATH`.
///
/// Tests that build namespaces must fail, not skip, when this fails: CI runs as root with the
/// packages installed, so a missing precondition is a broken setup. The error names the Debian
/// package to install. [`Namespace::new`](super::Namespace::new) calls this itself.
pub fn require_root() -> Result<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        return Err(Error::NotRoot { euid });
    }
    for &(tool, package) in REQUIRED_TOOLS {
        if !on_path(tool) {
            return Err(Error::MissingTool { tool, package });
        }
    }
    Ok(())
}

fn on_path(tool: &str) -> bool {
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| is_executable(&dir.join(tool)))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}
