//! Choosing the data AEAD: `cipher = "auto" | "chacha20-poly1305" | "aes-256-gcm"`.
//!
//! `auto` asks for AES-256-GCM when this CPU has AES instructions and carry-less multiply
//! (x86-64 AES-NI + PCLMULQDQ, AArch64 AES + PMULL), detected at run time, and
//! ChaCha20-Poly1305 otherwise: with hardware AES, ring's AES-GCM seals about 4× faster than
//! its ChaCha20-Poly1305 here (`DATAPATH.md`); without it, AES in software is slower and not
//! constant-time, while ChaCha stays fast and safe.

use std::fmt;
use std::str::FromStr;

use grelay_proto::crypto::aead::CipherSuite;

/// What the configuration asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CipherChoice {
    /// AES-256-GCM with hardware AES, else ChaCha20-Poly1305.
    #[default]
    Auto,
    /// Always this suite.
    Fixed(CipherSuite),
}

impl CipherChoice {
    /// The suite to ask the gateway for on this machine.
    pub fn resolve(self) -> CipherSuite {
        self.resolve_with(cpu_has_aes())
    }

    /// The suite for a CPU that has (or lacks) hardware AES.
    pub fn resolve_with(self, hardware_aes: bool) -> CipherSuite {
        match self {
            Self::Fixed(suite) => suite,
            Self::Auto if hardware_aes => CipherSuite::Aes256Gcm,
            Self::Auto => CipherSuite::ChaCha20Poly1305,
        }
    }
}

impl FromStr for CipherChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "chacha20-poly1305" => Ok(Self::Fixed(CipherSuite::ChaCha20Poly1305)),
            "aes-256-gcm" => Ok(Self::Fixed(CipherSuite::Aes256Gcm)),
            other => Err(format!(
                "cipher \"{other}\" is not known: write \"auto\", \"chacha20-poly1305\" or \
                 \"aes-256-gcm\""
            )),
        }
    }
}

impl fmt::Display for CipherChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Fixed(suite) => f.write_str(suite.name()),
        }
    }
}

/// Whether this CPU has the instructions that make AES-GCM fast and constant-time.
pub fn cpu_has_aes() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes")
            && std::arch::is_aarch64_feature_detected!("pmull")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_follows_the_cpu() {
        assert_eq!(
            CipherChoice::Auto.resolve_with(true),
            CipherSuite::Aes256Gcm
        );
        assert_eq!(
            CipherChoice::Auto.resolve_with(false),
            CipherSuite::ChaCha20Poly1305
        );
        let fixed = CipherChoice::Fixed(CipherSuite::ChaCha20Poly1305);
        assert_eq!(fixed.resolve_with(true), CipherSuite::ChaCha20Poly1305);
        let aes = CipherChoice::Fixed(CipherSuite::Aes256Gcm);
        assert_eq!(aes.resolve_with(false), CipherSuite::Aes256Gcm);
    }

    #[test]
    fn detection_matches_std() {
        #[cfg(target_arch = "x86_64")]
        assert_eq!(
            cpu_has_aes(),
            std::arch::is_x86_feature_detected!("aes")
                && std::arch::is_x86_feature_detected!("pclmulqdq")
        );
        let expected = if cpu_has_aes() {
            CipherSuite::Aes256Gcm
        } else {
            CipherSuite::ChaCha20Poly1305
        };
        assert_eq!(CipherChoice::Auto.resolve(), expected);
    }

    #[test]
    fn names_round_trip() {
        for name in ["auto", "chacha20-poly1305", "aes-256-gcm"] {
            let choice: CipherChoice = name.parse().unwrap();
            assert_eq!(choice.to_string(), name);
        }
        let err = "aes128".parse::<CipherChoice>().unwrap_err();
        assert!(err.contains("\"auto\""), "{err}");
    }
}
