//! The harness's one error type.

use std::process::ExitStatus;
use std::time::Duration;

/// Result alias used throughout the harness.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong while building or driving a namespace topology.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The tests are not running as root (they need `CAP_NET_ADMIN` and `CAP_SYS_ADMIN`).
    #[error("namespace tests must run as root (CI does); effective uid is {euid}")]
    NotRoot {
        /// The effective uid found.
        euid: u32,
    },
    /// A tool the harness needs is not on `PATH`.
    #[error("`{tool}` not found on PATH: install the Debian package `{package}`")]
    MissingTool {
        /// The executable looked for.
        tool: &'static str,
        /// The Debian package that ships it.
        package: &'static str,
    },
    /// A command ran but exited unsuccessfully.
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Command {
        /// The command line, space-joined.
        cmd: String,
        /// How it exited.
        status: ExitStatus,
        /// Its standard error, trimmed.
        stderr: String,
    },
    /// A command did not finish in time and was killed.
    #[error("`{cmd}` did not finish within {timeout:?} and was killed; stderr: {stderr}")]
    CommandTimeout {
        /// The command line, space-joined.
        cmd: String,
        /// The limit it exceeded.
        timeout: Duration,
        /// Whatever it wrote to standard error before being killed.
        stderr: String,
    },
    /// A condition did not become true within its bound.
    #[error("gave up after {timeout:?} waiting for {what}")]
    WaitTimeout {
        /// What was awaited.
        what: String,
        /// How long the harness waited.
        timeout: Duration,
    },
    /// An operating-system call failed.
    #[error("{what}: {source}")]
    Io {
        /// What the harness was doing.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The caller asked for something the harness cannot build (bad argument, topology full).
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// Wraps an I/O error with a description of what was being done.
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}
