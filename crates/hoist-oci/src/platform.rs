//! Platforms (`os/arch[/variant]`) and matching an index entry to one.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An OCI platform.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// Operating system, e.g. `linux`.
    pub os: String,
    /// CPU architecture in Go's naming, e.g. `amd64`.
    pub architecture: String,
    /// CPU variant, e.g. `v8`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// OS version (Windows).
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
}

impl Platform {
    /// The platform this binary runs on, in Go's naming.
    pub fn host() -> Self {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "arm" => "arm",
            "powerpc64" => "ppc64le",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            other => other,
        };
        Platform {
            os: std::env::consts::OS.to_owned(),
            architecture: architecture.to_owned(),
            variant: None,
            os_version: None,
        }
        .normalized()
    }

    /// Parses `os/arch[/variant]`.
    pub fn parse(s: &str) -> Option<Self> {
        let mut it = s.split('/');
        let os = it.next().filter(|x| !x.is_empty())?;
        let arch = it.next().filter(|x| !x.is_empty())?;
        let variant = it.next().map(str::to_owned);
        if it.next().is_some() {
            return None;
        }
        Some(
            Platform {
                os: os.to_owned(),
                architecture: arch.to_owned(),
                variant,
                os_version: None,
            }
            .normalized(),
        )
    }

    /// Applies the usual aliases: `aarch64`→`arm64`, `x86_64`→`amd64`, arm64's
    /// default variant `v8` and arm's `v7` dropped or filled consistently.
    pub fn normalized(mut self) -> Self {
        self.os = self.os.to_lowercase();
        self.architecture = match self.architecture.to_lowercase().as_str() {
            "x86_64" | "x86-64" => "amd64".into(),
            "aarch64" => "arm64".into(),
            "i386" => "386".into(),
            "armhf" => {
                self.variant.get_or_insert_with(|| "v7".into());
                "arm".into()
            }
            "armel" => {
                self.variant.get_or_insert_with(|| "v6".into());
                "arm".into()
            }
            other => other.into(),
        };
        match (self.architecture.as_str(), self.variant.as_deref()) {
            ("arm64", Some("v8")) | ("amd64", Some("v1")) => self.variant = None,
            ("arm", None) => self.variant = Some("v7".into()),
            _ => {}
        }
        self
    }

    /// True when an image for `candidate` runs on `self`.
    pub fn matches(&self, candidate: &Platform) -> bool {
        let want = self.clone().normalized();
        let have = candidate.clone().normalized();
        want.os == have.os
            && want.architecture == have.architecture
            && (want.variant.is_none() || want.variant == have.variant)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_and_default_variants_match() {
        let want = Platform::parse("linux/arm64").unwrap();
        assert!(want.matches(&Platform::parse("linux/aarch64/v8").unwrap()));
        assert!(!want.matches(&Platform::parse("linux/amd64").unwrap()));
        let arm = Platform::parse("linux/arm").unwrap();
        assert!(arm.matches(&Platform::parse("linux/arm/v7").unwrap()));
        assert!(!arm.matches(&Platform::parse("linux/arm/v6").unwrap()));
        assert!(Platform::parse("linux").is_none());
    }
}
