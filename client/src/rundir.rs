//! The run directory (`/run/grelay`, root only) and the per-interface files in it.
//!
//! ```text
//! /run/grelay/                 0700 root
//!   grelay0.lock               held (flock) by the `grelay up` process while it runs
//!   grelay0.sock               control socket, 0600
//!   grelay0.state              what `up` installed, for cleanup after a crash (JSON)
//!   grelay0.resolv.conf        /etc/resolv.conf as it was, while grelay replaces it
//! ```
//!
//! The lock says whether an `up` process is alive without trusting pids: the kernel drops a
//! flock when its holder dies, even by SIGKILL. `down` takes the lock to learn that no process
//! runs and that it may clean leftovers itself; `up` takes it for its whole life.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The default run directory.
pub const DEFAULT_RUN_DIR: &str = "/run/grelay";

/// A run directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    dir: PathBuf,
}

/// The held lock of one interface; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

impl RunDir {
    /// The run directory at `dir` (not created yet).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Creates the directory with mode 0700, or checks that an existing one is ours and
    /// private (it is never loosened or tightened: `--run-dir /tmp` must fail, not chmod
    /// `/tmp`).
    pub fn ensure(&self) -> Result<()> {
        use std::os::unix::fs::MetadataExt as _;
        let dir = &self.dir;
        match std::fs::symlink_metadata(dir) {
            Ok(meta) => {
                // SAFETY: geteuid has no preconditions and cannot fail.
                let me = unsafe { libc::geteuid() };
                let mode = meta.mode() & 0o7777;
                if !meta.is_dir() || meta.uid() != me || mode & 0o077 != 0 {
                    bail!(
                        "run directory {} must be a directory owned by uid {me} with mode 0700 \
                         (it has owner {} and mode {mode:04o}); remove it or choose another \
                         --run-dir",
                        dir.display(),
                        meta.uid()
                    );
                }
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .with_context(|| format!("creating run directory {}", dir.display()))?;
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                    .with_context(|| format!("setting mode 0700 on {}", dir.display()))
            }
            Err(e) => Err(e).with_context(|| format!("inspecting {}", dir.display())),
        }
    }

    /// The control socket of `interface`.
    pub fn socket(&self, interface: &str) -> PathBuf {
        self.dir.join(format!("{interface}.sock"))
    }

    /// The state file of `interface`.
    pub fn state(&self, interface: &str) -> PathBuf {
        self.dir.join(format!("{interface}.state"))
    }

    /// The saved `/etc/resolv.conf` of `interface`.
    pub fn resolv_backup(&self, interface: &str) -> PathBuf {
        self.dir.join(format!("{interface}.resolv.conf"))
    }

    fn lock_path(&self, interface: &str) -> PathBuf {
        self.dir.join(format!("{interface}.lock"))
    }

    /// Takes the lock of `interface` without waiting; `Ok(None)` when another process holds
    /// it (an `up` is running).
    pub fn try_lock(&self, interface: &str) -> Result<Option<Lock>> {
        let path = self.lock_path(interface);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("opening lock file {}", path.display()))?;
        // SAFETY: the fd is open for the duration of the call; flock has no memory effects.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(Some(Lock { _file: file }));
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Ok(None);
        }
        Err(err).with_context(|| format!("locking {}", path.display()))
    }

    /// Takes the lock of `interface`, or fails saying that it is up already.
    pub fn lock(&self, interface: &str) -> Result<Lock> {
        match self.try_lock(interface)? {
            Some(lock) => Ok(lock),
            None => bail!(
                "{interface} is already up (another `grelay up` holds {}); run `grelay down \
                 --interface {interface}` first",
                self.lock_path(interface).display()
            ),
        }
    }
}

/// Writes `contents` to `path` atomically (a temporary file renamed over it) with mode 0600.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    use std::io::Write as _;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn directory_mode_and_paths() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::new(tmp.path().join("run"));
        run.ensure().unwrap();
        let mode = std::fs::metadata(run.path()).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
        run.ensure().unwrap();
        // An existing directory others can enter is refused, and left as it was.
        let open = RunDir::new(tmp.path().join("open"));
        std::fs::create_dir(open.path()).unwrap();
        std::fs::set_permissions(open.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = open.ensure().unwrap_err().to_string();
        assert!(err.contains("mode 0755"), "{err}");
        assert_eq!(
            std::fs::metadata(open.path()).unwrap().mode() & 0o777,
            0o755
        );
        assert!(run.socket("g0").ends_with("g0.sock"));
        assert!(run.state("g0").ends_with("g0.state"));
    }

    #[test]
    fn lock_is_exclusive_and_released_on_drop() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::new(tmp.path());
        let held = run.lock("g0").unwrap();
        assert!(run.try_lock("g0").unwrap().is_none());
        let err = run.lock("g0").unwrap_err().to_string();
        assert!(err.contains("g0 is already up"), "{err}");
        assert!(run.try_lock("g1").unwrap().is_some());
        drop(held);
        assert!(run.try_lock("g0").unwrap().is_some());
    }

    #[test]
    fn private_files_are_0600_and_replaced_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("f");
        write_private(&path, b"one").unwrap();
        write_private(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
    }
}
