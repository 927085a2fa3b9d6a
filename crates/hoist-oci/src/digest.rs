//! Content digests (`sha256:<hex>`, `sha512:<hex>`), strictly validated so that
//! a digest can safely become a file name.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Digest as _;
use std::fmt;
use std::str::FromStr;

/// A digest algorithm hoist accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-256, the default everywhere.
    Sha256,
    /// SHA-512, allowed by the OCI image-spec.
    Sha512,
}

impl Algorithm {
    /// The algorithm's name as written in a digest.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// How many lowercase hex characters the encoded part has.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

/// Why a string is not a digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// No `algorithm:` prefix.
    #[error("invalid digest {0:?}: expected ALGORITHM:HEX such as sha256:<64 hex characters>")]
    MissingAlgorithm(String),
    /// An algorithm other than sha256/sha512.
    #[error("invalid digest {0:?}: unsupported algorithm {1:?} (hoist accepts sha256 and sha512)")]
    UnsupportedAlgorithm(String, String),
    /// Wrong length or non-lowercase-hex characters.
    #[error("invalid digest {0:?}: {1} needs exactly {2} lowercase hex characters")]
    BadEncoded(String, &'static str, usize),
}

/// A validated content digest.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    /// Builds a digest from an algorithm and its hex, validating the hex.
    pub fn new(algorithm: Algorithm, hex: &str) -> Result<Self, DigestError> {
        if hex.len() != algorithm.hex_len()
            || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(DigestError::BadEncoded(
                format!("{}:{hex}", algorithm.as_str()),
                algorithm.as_str(),
                algorithm.hex_len(),
            ));
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_owned(),
        })
    }

    /// The sha256 digest of `bytes`.
    pub fn sha256(bytes: &[u8]) -> Self {
        let mut d = Digester::new(Algorithm::Sha256);
        d.update(bytes);
        d.finish()
    }

    /// The algorithm part.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The encoded (hex) part.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The first 12 hex characters, as Docker shows image IDs.
    pub fn short(&self) -> &str {
        &self.hex[..12]
    }

    /// `blobs/<alg>/<hex>`: where an OCI image layout, a `docker save`
    /// archive and the local store keep this blob, relative to their root.
    pub fn layout_path(&self) -> String {
        format!("blobs/{}/{}", self.algorithm.as_str(), self.hex)
    }

    /// The digest a layout path `blobs/<alg>/<hex>` names, if it is one.
    pub fn from_layout_path(path: &str) -> Option<Digest> {
        let (alg, hex) = path.strip_prefix("blobs/")?.split_once('/')?;
        format!("{alg}:{hex}").parse().ok()
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((alg, hex)) = s.split_once(':') else {
            return Err(DigestError::MissingAlgorithm(s.to_owned()));
        };
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            other => {
                return Err(DigestError::UnsupportedAlgorithm(
                    s.to_owned(),
                    other.to_owned(),
                ))
            }
        };
        Digest::new(algorithm, hex).map_err(|_| {
            DigestError::BadEncoded(s.to_owned(), algorithm.as_str(), algorithm.hex_len())
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.as_str(), self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A streaming hasher that yields a [`Digest`].
#[derive(Clone)]
pub enum Digester {
    /// SHA-256 state.
    Sha256(sha2::Sha256),
    /// SHA-512 state.
    Sha512(sha2::Sha512),
}

impl Digester {
    /// A fresh hasher for `algorithm`.
    pub fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Sha256 => Digester::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => Digester::Sha512(sha2::Sha512::new()),
        }
    }

    /// Feeds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Digester::Sha256(h) => h.update(bytes),
            Digester::Sha512(h) => h.update(bytes),
        }
    }

    /// Ends the hash.
    pub fn finish(self) -> Digest {
        let (algorithm, hex) = match self {
            Digester::Sha256(h) => (Algorithm::Sha256, hex::encode(h.finalize())),
            Digester::Sha512(h) => (Algorithm::Sha512, hex::encode(h.finalize())),
        };
        Digest { algorithm, hex }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_valid_sha256_and_sha512() {
        let h = "a".repeat(64);
        let d: Digest = format!("sha256:{h}").parse().unwrap();
        assert_eq!(d.hex(), h);
        assert_eq!(d.to_string(), format!("sha256:{h}"));
        let d: Digest = format!("sha512:{}", "0".repeat(128)).parse().unwrap();
        assert_eq!(d.algorithm(), Algorithm::Sha512);
    }

    #[test]
    fn layout_path_round_trips_and_refuses_other_paths() {
        let d: Digest = format!("sha512:{}", "0".repeat(128)).parse().unwrap();
        assert_eq!(d.layout_path(), format!("blobs/sha512/{}", "0".repeat(128)));
        assert_eq!(Digest::from_layout_path(&d.layout_path()), Some(d));
        for other in [
            "index.json",
            "blobs/sha256",
            &format!("blobs/sha256/../{}", "a".repeat(61)),
            &format!("blobs/sha256/{}/x", "a".repeat(64)),
            &format!("x/blobs/sha256/{}", "a".repeat(64)),
        ] {
            assert_eq!(Digest::from_layout_path(other), None, "{other}");
        }
    }

    #[test]
    fn rejects_malformed_digests() {
        for bad in [
            "",
            "sha256",
            "sha256:",
            "sha256:abc",
            &format!("sha256:{}", "A".repeat(64)),
            &format!("sha256:{}", "g".repeat(64)),
            &format!("sha256:../../{}", "a".repeat(58)),
            &format!("md5:{}", "a".repeat(32)),
            &format!("sha384:{}", "a".repeat(96)),
            &format!("sha256:{}/", "a".repeat(64)),
            &format!("sha512:{}", "a".repeat(64)),
        ] {
            assert!(bad.parse::<Digest>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn sha256_of_empty_is_known() {
        assert_eq!(
            Digest::sha256(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
