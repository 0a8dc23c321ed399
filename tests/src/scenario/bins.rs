//! Finding the binaries a scenario runs: `grelay`, `grelay-gateway` and the test tools
//! `grt-udp` and `grt-tcp` (this package's `src/bin/`).
//!
//! Cargo offers `CARGO_BIN_EXE_*` only to integration tests of the package that defines the
//! binaries, and a dev-dependency on `grelay-gateway` would build its library, not its binary.
//! So [`Binaries::get`] resolves them once per process:
//!
//! 1. **`GRELAY_BIN_DIR` set**: it must hold `grelay` and `grelay-gateway` (prebuilt, e.g. by
//!    CI or a packager); the test tools are taken from there too when present, else from next
//!    to the running executable (cargo builds a package's binaries into `target/debug` before
//!    it runs that package's integration tests from `target/debug/deps`).
//! 2. **Otherwise** one `cargo build --locked` builds all four (a no-op when they are up to
//!    date; cargo releases its build lock before it runs tests, so this does not deadlock under
//!    `cargo test`), bounded by [`BUILD_TIMEOUT`], and they are taken from
//!    `$CARGO_TARGET_DIR/debug` (default: the workspace's `target/debug`). The test thus never
//!    runs a missing or stale binary, whatever order cargo built the packages in.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::netns::{Error, Result};

/// How long building the binaries may take (a cold build on two cores).
pub const BUILD_TIMEOUT: Duration = Duration::from_secs(900);

/// Paths of every binary a scenario runs.
#[derive(Debug, Clone)]
pub struct Binaries {
    grelay: PathBuf,
    gateway: PathBuf,
    udp_tool: PathBuf,
    tcp_tool: PathBuf,
}

impl Binaries {
    /// The binaries, found or built on the first call (see the module doc); later calls
    /// return the same answer, errors included.
    pub fn get() -> Result<&'static Binaries> {
        static BINS: OnceLock<std::result::Result<Binaries, String>> = OnceLock::new();
        BINS.get_or_init(|| resolve().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| Error::Invalid(e.clone()))
    }

    /// The client, `grelay`.
    pub fn grelay(&self) -> &Path {
        &self.grelay
    }

    /// The gateway, `grelay-gateway`.
    pub fn gateway(&self) -> &Path {
        &self.gateway
    }

    /// The UDP reflector and prober, `grt-udp`.
    pub fn udp_tool(&self) -> &Path {
        &self.udp_tool
    }

    /// The TCP sink and sender, `grt-tcp`.
    pub fn tcp_tool(&self) -> &Path {
        &self.tcp_tool
    }
}

/// A path as the `&str` that [`Namespace::spawn`](crate::netns::Namespace::spawn) takes.
pub(crate) fn arg(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

const TOOLS: [&str; 2] = ["grt-udp", "grt-tcp"];

fn resolve() -> Result<Binaries> {
    if let Some(dir) = std::env::var_os("GRELAY_BIN_DIR") {
        let dir = PathBuf::from(dir);
        let exe_dirs = exe_dirs();
        let mut tool_dirs = vec![dir.clone()];
        tool_dirs.extend(exe_dirs);
        return Ok(Binaries {
            grelay: find("grelay", std::slice::from_ref(&dir))?,
            gateway: find("grelay-gateway", std::slice::from_ref(&dir))?,
            udp_tool: find(TOOLS[0], &tool_dirs)?,
            tcp_tool: find(TOOLS[1], &tool_dirs)?,
        });
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or_else(|| Error::Invalid("tests/ must lie in the workspace".into()))?;
    cargo_build(workspace)?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace.join("target"), |t| workspace.join(t));
    let dir = target.join("debug");
    Ok(Binaries {
        grelay: dir.join("grelay"),
        gateway: dir.join("grelay-gateway"),
        udp_tool: dir.join(TOOLS[0]),
        tcp_tool: dir.join(TOOLS[1]),
    })
}

/// The running executable's directory and its parent.
fn exe_dirs() -> Vec<PathBuf> {
    let Ok(exe) = std::env::current_exe() else {
        return Vec::new();
    };
    exe.ancestors()
        .skip(1)
        .take(2)
        .map(Path::to_path_buf)
        .collect()
}

fn find(name: &str, dirs: &[PathBuf]) -> Result<PathBuf> {
    dirs.iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::Invalid(format!(
                "no {name} in {dirs:?} (GRELAY_BIN_DIR must hold grelay and grelay-gateway; \
                 build the test tools with `cargo build -p grelay-tests --bins`)"
            ))
        })
}

/// `cargo build --locked` of the four binaries, bounded by [`BUILD_TIMEOUT`].
fn cargo_build(workspace: &Path) -> Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args(["build", "--locked"])
        .args(["-p", "grelay-client", "--bin", "grelay"])
        .args(["-p", "grelay-gateway", "--bin", "grelay-gateway"])
        .args(["-p", "grelay-tests", "--bin", TOOLS[0], "--bin", TOOLS[1]])
        .current_dir(workspace);
    // Cargo gives a test process its own package's variables; build scripts (ring's) watch
    // some of them, so passing them on would rebuild those crates here and again in the next
    // plain `cargo test`.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_MANIFEST_")
            || name.starts_with("CARGO_BIN_EXE_")
            || matches!(
                &*name,
                "CARGO_CRATE_NAME" | "CARGO_PRIMARY_PACKAGE" | "CARGO_TARGET_TMPDIR" | "OUT_DIR"
            )
        {
            command.env_remove(&*name);
        }
    }
    let mut child = command
        .spawn()
        .map_err(|e| Error::io("running cargo build", e))?;
    let deadline = Instant::now() + BUILD_TIMEOUT;
    let status = loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| Error::io("waiting for cargo build", e))?
        {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::WaitTimeout {
                what: "cargo build of grelay, grelay-gateway and the test tools".into(),
                timeout: BUILD_TIMEOUT,
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    if !status.success() {
        return Err(Error::Invalid(format!(
            "cargo build of grelay, grelay-gateway and the test tools failed ({status})"
        )));
    }
    Ok(())
}
