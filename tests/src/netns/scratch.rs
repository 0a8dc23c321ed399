//! A per-test directory for logs, captures and configuration files.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use super::error::{Error, Result};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh directory `$TMPDIR/grt-<pid>-<n>-<label>`, removed on drop — unless the thread is
/// panicking (a failing test), in which case it is kept and its path printed, so the logs and
/// captures of a failure can be read.
#[derive(Debug)]
pub struct Scratch {
    path: PathBuf,
}

impl Scratch {
    /// Creates the directory.
    pub fn new(label: &str) -> Result<Scratch> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("grt-{}-{n}-{label}", std::process::id()));
        std::fs::create_dir_all(&path)
            .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
        Ok(Scratch { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of `name` inside the directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("netns: keeping {} for inspection", self.path.display());
        } else if let Err(e) = std::fs::remove_dir_all(&self.path) {
            eprintln!("netns: could not remove {}: {e}", self.path.display());
        }
    }
}
