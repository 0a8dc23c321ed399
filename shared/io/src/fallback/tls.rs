//! TLS 1.3 settings for the fallbacks (rustls with ring): the gateway's server configuration,
//! the client's, and certificate pins.
//!
//! The TLS layer only carries bytes past networks that pass nothing else; who is who is
//! decided by the Noise handshake inside. Still, the client authenticates the gateway's
//! certificate, by a **pin** (`sha256:` and the base64 of the SHA-256 of the certificate's
//! SubjectPublicKeyInfo, as HPKP did) and/or a **CA** it trusts, so that a middlebox cannot
//! pose as the gateway at the TLS layer either. Only TLS 1.3 is offered, with ALPN
//! [`ALPN`] on both sides and a server name ([`DEFAULT_SERVER_NAME`] by default) that the
//! gateway checks.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

/// ALPN protocol id of grelay's fallbacks (TLS and QUIC).
pub const ALPN: &[u8] = b"grelay/1";
/// Server name (SNI) used when none is configured.
pub const DEFAULT_SERVER_NAME: &str = "grelay";

/// The crypto provider: ring, as for the rest of grelay.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate pin: SHA-256 of the certificate's SubjectPublicKeyInfo.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pin(pub [u8; 32]);

impl Pin {
    /// The pin of a DER certificate.
    pub fn of_certificate(cert: &CertificateDer<'_>) -> Result<Pin, String> {
        let parsed = webpki::EndEntityCert::try_from(cert)
            .map_err(|e| format!("not a usable X.509 certificate: {e}"))?;
        let spki = parsed.subject_public_key_info();
        let digest = ring::digest::digest(&ring::digest::SHA256, spki.as_ref());
        let mut pin = [0u8; 32];
        pin.copy_from_slice(digest.as_ref());
        Ok(Pin(pin))
    }
}

impl fmt::Display for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", STANDARD.encode(self.0))
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Pin {
    type Err = String;

    fn from_str(text: &str) -> Result<Pin, String> {
        let hint =
            "write \"sha256:\" and 44 characters of base64, as `grelay-gateway check` prints it";
        let Some(b64) = text.trim().strip_prefix("sha256:") else {
            return Err(format!("{text:?} is not a pin: {hint}"));
        };
        let bytes = STANDARD
            .decode(b64)
            .map_err(|_| format!("{text:?} is not a pin: {hint}"))?;
        let pin: [u8; 32] = bytes
            .try_into()
            .map_err(|_| format!("{text:?} is not a pin: {hint}"))?;
        Ok(Pin(pin))
    }
}

/// How the client authenticates the gateway's certificate.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// Accept only a certificate with this pin.
    pub pin: Option<Pin>,
    /// Accept only a certificate chain to one of these roots, valid for the server name.
    pub roots: Vec<CertificateDer<'static>>,
}

impl Trust {
    /// Whether anything is configured (without, fallbacks cannot be used).
    pub fn is_configured(&self) -> bool {
        self.pin.is_some() || !self.roots.is_empty()
    }
}

/// Reads every certificate of a PEM file.
pub fn read_certificates(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject as _;
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("reading {}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("reading {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

/// Reads a PEM private key (PKCS#8, SEC1 or PKCS#1).
pub fn read_private_key(path: &std::path::Path) -> Result<PrivateKeyDer<'static>, String> {
    use rustls::pki_types::pem::PemObject as _;
    PrivateKeyDer::from_pem_file(path).map_err(|e| format!("reading {}: {e}", path.display()))
}

/// Checks the pin and/or the chain; TLS 1.3 signatures with ring.
#[derive(Debug)]
struct GatewayVerifier {
    pin: Option<Pin>,
    webpki: Option<Arc<WebPkiServerVerifier>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for GatewayVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(pin) = self.pin {
            let got = Pin::of_certificate(end_entity).map_err(|_| {
                rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
            })?;
            if got != pin {
                return Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::ApplicationVerificationFailure,
                ));
            }
        }
        if let Some(webpki) = &self.webpki {
            webpki.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            )?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // Only TLS 1.3 is offered; a TLS 1.2 signature is never acceptable.
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The client's TLS configuration: TLS 1.3 only, ALPN [`ALPN`], the gateway checked by
/// `trust` (which must be configured).
pub fn client_config(trust: &Trust) -> Result<rustls::ClientConfig, String> {
    if !trust.is_configured() {
        return Err("no tls_pin or ca_file: the gateway's certificate cannot be checked".into());
    }
    let provider = provider();
    let webpki = if trust.roots.is_empty() {
        None
    } else {
        let mut roots = RootCertStore::empty();
        for cert in &trust.roots {
            roots
                .add(cert.clone())
                .map_err(|e| format!("a CA certificate is not usable: {e}"))?;
        }
        Some(
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| format!("CA certificates: {e}"))?,
        )
    };
    let verifier = GatewayVerifier {
        pin: trust.pin,
        webpki,
        algorithms: provider.signature_verification_algorithms,
    };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| format!("TLS 1.3 with ring: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN.to_vec()];
    // No session resumption: every connection is a fresh full handshake with the pin checked.
    config.resumption = rustls::client::Resumption::disabled();
    Ok(config)
}

/// The gateway's TLS configuration: TLS 1.3 only, ALPN [`ALPN`], the given chain and key.
/// The server name is checked by the caller on the ClientHello (to log a wrong one).
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<rustls::ServerConfig, String> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| format!("TLS 1.3 with ring: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("the certificate and key do not fit together: {e}"))?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    // Nothing to resume: keep no session cache (memory bounded by connections only).
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_round_trips_and_rejects_junk() {
        let pin = Pin([7; 32]);
        let text = pin.to_string();
        assert!(
            text.starts_with("sha256:") && text.len() == 7 + 44,
            "{text}"
        );
        assert_eq!(text.parse::<Pin>(), Ok(pin));
        for bad in ["", "sha256:", "sha1:AAAA", "sha256:!!!!", "sha256:AAAA"] {
            assert!(bad.parse::<Pin>().is_err(), "{bad}");
        }
    }

    #[test]
    fn client_config_needs_trust() {
        assert!(client_config(&Trust::default()).is_err());
        let trust = Trust {
            pin: Some(Pin([1; 32])),
            roots: Vec::new(),
        };
        let config = client_config(&trust).unwrap();
        assert_eq!(config.alpn_protocols, vec![ALPN.to_vec()]);
    }
}
