//! The gateway's own TLS certificate: made once with rcgen on first start when none is
//! configured, and kept beside the address book so that its pin stays the same.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::tls::{Pin, read_certificates, read_private_key};

/// File name of the generated certificate (PEM), in the state directory.
pub const CERT_FILE: &str = "tls-cert.pem";
/// File name of its private key (PEM, mode 0600), in the state directory.
pub const KEY_FILE: &str = "tls-key.pem";

/// A certificate chain with its key, and where it came from.
#[derive(Debug)]
pub struct Identity {
    /// Leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    pub key: PrivateKeyDer<'static>,
    /// The leaf's pin, for clients.
    pub pin: Pin,
    /// The certificate file.
    pub cert_file: PathBuf,
    /// True if it was made just now.
    pub created: bool,
}

/// A self-signed certificate for `server_name` (ECDSA P-256), as PEM certificate and key.
pub fn self_signed(server_name: &str) -> Result<(String, String), String> {
    let key = rcgen::KeyPair::generate().map_err(|e| format!("making a key pair: {e}"))?;
    let mut params = rcgen::CertificateParams::new(vec![server_name.to_owned()])
        .map_err(|e| format!("certificate for {server_name:?}: {e}"))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, server_name);
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("signing the certificate: {e}"))?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Loads `cert_file`/`key_file`, or — when both are `None` — the generated pair in `dir`,
/// making it first if it does not exist (key mode 0600).
pub fn load_or_create(
    cert_file: Option<&Path>,
    key_file: Option<&Path>,
    dir: &Path,
    server_name: &str,
) -> Result<Identity, String> {
    let (cert_path, key_path, mut created) = match (cert_file, key_file) {
        (Some(c), Some(k)) => (c.to_owned(), k.to_owned(), false),
        (None, None) => (dir.join(CERT_FILE), dir.join(KEY_FILE), false),
        _ => return Err("set both cert_file and key_file, or neither".into()),
    };
    if cert_file.is_none() && !cert_path.exists() {
        let (cert, key) = self_signed(server_name)?;
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        write_new(&key_path, key.as_bytes(), 0o600)?;
        write_new(&cert_path, cert.as_bytes(), 0o644)?;
        created = true;
    }
    check_private(&key_path)?;
    let chain = read_certificates(&cert_path)?;
    let key = read_private_key(&key_path)?;
    let pin = Pin::of_certificate(&chain[0])?;
    Ok(Identity {
        chain,
        key,
        pin,
        cert_file: cert_path,
        created,
    })
}

/// Refuses a key file that group or others can access, as for the Noise key.
fn check_private(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "TLS key file {} has mode {mode:04o}: group and others must have no access \
             (run `chmod 600 {}`)",
            path.display(),
            path.display()
        ));
    }
    Ok(())
}

fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<(), String> {
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| format!("creating {}: {e}", path.display()))?;
    f.write_all(contents)
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("writing {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn creates_once_then_reuses_with_the_same_pin() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(None, None, dir.path(), "grelay").unwrap();
        assert!(first.created);
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = load_or_create(None, None, dir.path(), "grelay").unwrap();
        assert!(!again.created);
        assert_eq!(first.pin, again.pin);
        assert!(load_or_create(Some(&dir.path().join(CERT_FILE)), None, dir.path(), "x").is_err());
    }
}
