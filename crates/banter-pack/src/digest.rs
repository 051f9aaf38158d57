//! Content digests (`sha256:<hex>`), the identity of stored bytes.

use sha2::{Digest as _, Sha256};
use std::fmt;
use std::str::FromStr;

/// A sha256 content digest, rendered as `sha256:<64 lowercase hex>`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

/// Why a string is not a valid digest.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DigestError {
    /// Only sha256 is supported.
    #[error("unsupported digest algorithm {0:?}: only sha256 is supported")]
    Algorithm(String),
    /// The string has no `algorithm:` prefix.
    #[error("digest must look like sha256:<64 lowercase hex characters>")]
    Format,
    /// The hex part is not 64 lowercase hex characters.
    #[error("sha256 digest must have exactly 64 lowercase hex characters")]
    Hex,
}

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self {
            hex: hex::encode(Sha256::digest(bytes)),
        }
    }

    /// Parses the bare 64-character hex part (as found in `/v1/blobs/sha256:{hex}`).
    pub fn from_hex(hex: &str) -> Result<Self, DigestError> {
        let ok = hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok {
            Ok(Self { hex: hex.to_owned() })
        } else {
            Err(DigestError::Hex)
        }
    }

    /// The 64 hex characters, without the algorithm prefix.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// Whether `bytes` hash to this digest.
    pub fn matches(&self, bytes: &[u8]) -> bool {
        Self::of(bytes) == *self
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (algorithm, hex) = s.split_once(':').ok_or(DigestError::Format)?;
        if algorithm != "sha256" {
            return Err(DigestError::Algorithm(algorithm.to_owned()));
        }
        Self::from_hex(hex)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digest_of_empty_input() {
        assert_eq!(
            Digest::of(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn parse_round_trips_and_rejects_bad_forms() {
        let d = Digest::of(b"pack");
        assert_eq!(d.to_string().parse::<Digest>(), Ok(d.clone()));
        assert!(d.matches(b"pack"));
        assert!(!d.matches(b"pack!"));
        assert_eq!("md5:abc".parse::<Digest>(), Err(DigestError::Algorithm("md5".into())));
        assert_eq!("nocolon".parse::<Digest>(), Err(DigestError::Format));
        assert_eq!("sha256:ABC".parse::<Digest>(), Err(DigestError::Hex));
        let upper = d.hex().to_uppercase();
        assert_eq!(Digest::from_hex(&upper), Err(DigestError::Hex));
        assert_eq!(Digest::from_hex(&d.hex()[1..]), Err(DigestError::Hex));
    }
}
