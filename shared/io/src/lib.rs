//! grelay's I/O glue, shared by the client (`grelay`) and the gateway (`grelay-gateway`).
//!
//! The protocol core ([`grelay_proto`]) has no sockets, no clock and no OS randomness; this
//! crate is the runtime side that both binaries need around it, the way `quinn` sits beside
//! `quinn-proto`. Everything here is Linux and tokio:
//!
//! | module | what |
//! |---|---|
//! | [`tun`] | a TUN device by name and MTU, up, as an async device (`recv` / `send`) |
//! | [`netlink`] | interface index, IPv4/IPv6 addresses, routes and policy rules via rtnetlink |
//! | [`udp`] | a nonblocking tokio UDP socket with 8 MB kernel buffers |
//! | [`fallback`] | the TLS/TCP and QUIC fallbacks: configurations, pins, the self-signed certificate, link drivers |
//! | [`keyfile`] | base64 private key files (mode 0600, refused when group/others can read) |
//! | [`seed`] / [`keyfile::generate`] | bytes from the OS RNG for the core's `new(…, seed)` |
//!
//! One error type, [`Error`], for the whole crate; each variant says what was being done.

pub mod fallback;
pub mod keyfile;
pub mod netlink;
pub mod tun;
pub mod udp;

#[cfg(test)]
mod test_netns;

use std::path::PathBuf;

/// Everything that can fail in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A system call or file operation failed; `what` says which, in words.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, e.g. "opening TUN device grelay0".
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A netlink request was refused by the kernel or could not be sent.
    #[error("{what}: {source}")]
    Netlink {
        /// What was being done, e.g. "adding address 10.77.0.1/16 to interface 7".
        what: String,
        /// The rtnetlink error (for kernel refusals, it carries the errno).
        #[source]
        source: rtnetlink::Error,
    },
    /// No network interface has this name.
    #[error("no network interface named {0:?}")]
    NoSuchInterface(String),
    /// An argument cannot be expressed (a prefix of the wrong family, a bad interface name).
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// A private key file is readable or writable by group or others.
    #[error(
        "private key file {} has mode {mode:04o}: group and others must have no access \
         (run `chmod 600 {}`)",
        path.display(),
        path.display()
    )]
    KeyFilePermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A key file's contents are not a key.
    #[error("{}: {reason}", path.display())]
    KeyFileContents {
        /// The file.
        path: PathBuf,
        /// What is wrong, from the core's key parser.
        reason: String,
    },
    /// The OS random number generator failed.
    #[error("reading the OS random number generator: {0}")]
    Random(String),
}

impl Error {
    /// The errno behind this error, when the OS or the kernel's netlink answer gave one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Io { source, .. } => source.raw_os_error(),
            Error::Netlink {
                source: rtnetlink::Error::NetlinkError(msg),
                ..
            } => msg.code.map(|c| -c.get()),
            _ => None,
        }
    }

    /// True when the kernel said the object exists already (`EEXIST`).
    pub fn is_already_exists(&self) -> bool {
        self.errno() == Some(libc::EEXIST)
    }

    /// True when the kernel said there is no such object (`ENOENT`, `ESRCH`, `EADDRNOTAVAIL`):
    /// what removing something already gone answers.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self.errno(),
            Some(libc::ENOENT | libc::ESRCH | libc::EADDRNOTAVAIL | libc::ENODEV)
        )
    }

    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// 32 bytes from the OS random number generator, for the core's `Gateway::new` /
/// `Client::new` seed (the core itself never reads OS randomness).
pub fn seed() -> Result<[u8; 32]> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| Error::Random(e.to_string()))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_differ() {
        let a = seed().unwrap();
        let b = seed().unwrap();
        assert_ne!(a, b);
        assert_ne!(a, [0; 32]);
    }

    #[test]
    fn errno_classification() {
        let e = Error::io("x", std::io::Error::from_raw_os_error(libc::EEXIST));
        assert!(e.is_already_exists());
        assert!(!e.is_not_found());
        let e = Error::io("x", std::io::Error::from_raw_os_error(libc::ESRCH));
        assert!(e.is_not_found());
        assert_eq!(Error::Invalid("y".into()).errno(), None);
    }
}
