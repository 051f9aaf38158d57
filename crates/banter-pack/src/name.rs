//! Names, tags, versions and references: the identifiers that appear in URLs.

use std::fmt;
use std::sync::OnceLock;

use regex::Regex;

/// Why a pack name or tag is invalid.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    /// The pack name breaks the DNS-label rule.
    #[error(
        "invalid pack name {0:?}: 1-63 characters of lowercase a-z, 0-9 and '-', starting and ending with a letter or digit"
    )]
    Pack(String),
    /// The tag breaks the tag rule.
    #[error("invalid tag {0:?}: 1-128 characters of [a-zA-Z0-9_.-], not starting with '.' or '-'")]
    Tag(String),
    /// The tag would be ambiguous with a version or a version range.
    #[error("invalid tag {0:?}: a tag must not parse as a semantic version or version range")]
    TagLooksLikeVersion(String),
}

/// Why a version string is invalid.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid version {input:?}: {reason} (expected a semantic version such as 1.2.3 or 2.0.0-rc.1)")]
pub struct VersionError {
    input: String,
    reason: String,
}

fn pack_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$").unwrap_or_else(|e| panic!("{e}")))
}

fn tag_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$").unwrap_or_else(|e| panic!("{e}")))
}

/// A validated pack name (DNS label: at most 63 characters).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PackName(String);

impl PackName {
    /// Validates `s` as a pack name.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        // The regex alone admits 64 characters; a DNS label stops at 63.
        if s.len() <= 63 && pack_re().is_match(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(NameError::Pack(s.to_owned()))
        }
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PackName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A validated tag name, never ambiguous with a version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TagName(String);

impl TagName {
    /// The tag every pack has: the highest non-yanked release unless set explicitly.
    pub const LATEST: &'static str = "latest";

    /// Validates `s` as a tag.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if !tag_re().is_match(s) {
            return Err(NameError::Tag(s.to_owned()));
        }
        if semver::Version::parse(s).is_ok() || semver::VersionReq::parse(s).is_ok() {
            return Err(NameError::TagLooksLikeVersion(s.to_owned()));
        }
        Ok(Self(s.to_owned()))
    }

    /// The `latest` tag.
    pub fn latest() -> Self {
        Self(Self::LATEST.to_owned())
    }

    /// Whether this is the `latest` tag.
    pub fn is_latest(&self) -> bool {
        self.0 == Self::LATEST
    }

    /// The tag as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TagName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses a semantic version, with a message fit for a user.
pub fn parse_version(s: &str) -> Result<semver::Version, VersionError> {
    semver::Version::parse(s).map_err(|e| VersionError {
        input: s.to_owned(),
        reason: e.to_string(),
    })
}

/// The identity of a version for uniqueness: build metadata does not make a
/// new version (`1.0.0+a` and `1.0.0+b` are the same version number).
pub fn version_key(v: &semver::Version) -> String {
    let mut k = semver::Version::new(v.major, v.minor, v.patch);
    k.pre = v.pre.clone();
    k.to_string()
}

/// What a client asks for in `/versions/{ref}`: an exact version or a tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// An exact version.
    Version(semver::Version),
    /// A tag such as `latest`.
    Tag(TagName),
}

impl Reference {
    /// Parses a reference: a semantic version if it is one, otherwise a tag.
    /// Tags never parse as versions, so the two cannot be confused.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if let Ok(v) = semver::Version::parse(s) {
            return Ok(Self::Version(v));
        }
        TagName::parse(s).map(Self::Tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_names() {
        for ok in ["a", "a1", "banter-classics", "0", &"a".repeat(63)] {
            assert!(PackName::parse(ok).is_ok(), "{ok}");
        }
        let too_long = "a".repeat(64);
        for bad in [
            "",
            "..",
            ".",
            "-a",
            "a-",
            "A",
            "Banter",
            "a_b",
            "a.b",
            "a/b",
            "%2e%2e",
            "pack\u{0430}",
            "ｐack",
            too_long.as_str(),
            "a b",
        ] {
            assert!(PackName::parse(bad).is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn tags() {
        for ok in ["latest", "stable", "beta_2", "Release.Candidate", "_x", "v1"] {
            assert!(TagName::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".x", "-x", "a/b", &"a".repeat(129)] {
            assert!(matches!(TagName::parse(bad), Err(NameError::Tag(_))), "{bad:?}");
        }
        for versionish in ["1.2.3", "1", "1.2", "x", "1.x", "2.0.0-rc.1"] {
            assert!(
                TagName::parse(versionish).is_err(),
                "{versionish:?} parses as a version or range"
            );
        }
    }

    #[test]
    fn references_and_version_keys() {
        assert_eq!(Reference::parse("latest"), Ok(Reference::Tag(TagName::latest())));
        assert!(matches!(Reference::parse("1.2.3-beta.1"), Ok(Reference::Version(_))));
        assert!(Reference::parse("1.2").is_err());
        let v = parse_version("1.2.3-rc.1+build.5").expect("valid");
        assert_eq!(version_key(&v), "1.2.3-rc.1");
        assert!(parse_version("v1.2.3").is_err());
        assert!(parse_version("01.2.3").is_err());
    }
}
