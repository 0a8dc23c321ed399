//! Private key files: one line of base64 (44 characters for 32 bytes), as `wg genkey` writes.
//!
//! A key file must be private: [`read()`] refuses a file that group or others may read, write
//! or execute (any of mode `0o077`), naming the `chmod` that fixes it — stricter than `wg`,
//! which only warns, because a leaked gateway key lets anyone impersonate the gateway to every
//! client. [`write()`] creates the file with mode `0600` and refuses to overwrite one that
//! exists (a lost key means every peer must be reconfigured).
//!
//! New keys come from the OS random number generator ([`generate`]); the protocol core never
//! reads OS randomness itself.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use grelay_proto::crypto::keys::{KEY_LEN, StaticSecret};

use crate::{Error, Result};

/// Permission bits that must be clear on a key file.
pub const FORBIDDEN_MODE: u32 = 0o077;
/// Largest key file read (a key plus generous whitespace); anything longer is not a key file.
const MAX_FILE_LEN: u64 = 1024;

/// A fresh private key: 32 bytes from the OS random number generator.
pub fn generate() -> Result<StaticSecret> {
    let mut bytes = [0u8; KEY_LEN];
    getrandom::fill(&mut bytes).map_err(|e| Error::Random(e.to_string()))?;
    Ok(StaticSecret::from_bytes(bytes))
}

/// Parses a private key from base64 text (surrounding whitespace ignored); the error says
/// what a key looks like and how to make one.
pub fn parse(text: &str) -> std::result::Result<StaticSecret, String> {
    text.trim().parse::<StaticSecret>().map_err(|e| {
        format!(
            "not a valid private key: {e}, got {} characters (make one with `genkey`)",
            text.trim().len()
        )
    })
}

/// Reads a private key from `path`, refusing a file that group or others can access
/// ([`Error::KeyFilePermissions`]) or whose contents are not one base64 key
/// ([`Error::KeyFileContents`]).
pub fn read(path: &Path) -> Result<StaticSecret> {
    let file = File::open(path)
        .map_err(|e| Error::io(format!("opening private key file {}", path.display()), e))?;
    let meta = file
        .metadata()
        .map_err(|e| Error::io(format!("reading the mode of {}", path.display()), e))?;
    let mode = meta.mode() & 0o7777;
    if mode & FORBIDDEN_MODE != 0 {
        return Err(Error::KeyFilePermissions {
            path: path.to_owned(),
            mode,
        });
    }
    let mut text = String::new();
    file.take(MAX_FILE_LEN)
        .read_to_string(&mut text)
        .map_err(|e| Error::io(format!("reading private key file {}", path.display()), e))?;
    parse(&text).map_err(|reason| Error::KeyFileContents {
        path: path.to_owned(),
        reason,
    })
}

/// Writes `secret` as one base64 line to a new file at `path` with mode `0600` and syncs it.
/// Fails if the file exists.
pub fn write(path: &Path, secret: &StaticSecret) -> Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(format!("creating private key file {}", path.display()), e))?;
    file.write_all(format!("{}\n", secret.to_base64()).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io(format!("writing private key file {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn write_then_read_round_trips_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let key = generate().unwrap();
        write(&path, &key).unwrap();
        let mode = std::fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let back = read(&path).unwrap();
        assert_eq!(back.as_bytes(), key.as_bytes());
        // No overwrite.
        assert!(write(&path, &key).unwrap_err().is_already_exists());
    }

    #[test]
    fn group_readable_file_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        write(&path, &generate().unwrap()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = read(&path).unwrap_err();
        assert!(matches!(err, Error::KeyFilePermissions { mode: 0o640, .. }));
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    #[test]
    fn garbage_is_refused_without_panicking() {
        let dir = tempfile::tempdir().unwrap();
        for (i, contents) in ["", "hello", "AAAA", &"A".repeat(5000)].iter().enumerate() {
            let path = dir.path().join(format!("k{i}"));
            std::fs::write(&path, contents).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            let err = read(&path).unwrap_err();
            assert!(matches!(err, Error::KeyFileContents { .. }), "{err}");
        }
        assert!(read(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn generated_keys_differ() {
        assert_ne!(
            generate().unwrap().as_bytes(),
            generate().unwrap().as_bytes()
        );
    }
}
