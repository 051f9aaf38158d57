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

/// A pack name: a DNS label of at most 63 characters.
pub const NAME_PATTERN: &str = r"^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$";

/// The characters and length of a tag (it must also not look like a version).
pub const TAG_CHARS_PATTERN: &str = r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$";

/// A semantic version as the registry accepts it: semver 2.0, with numeric
/// core parts of at most 19 digits (so every one fits in 64 bits).
pub const VERSION_PATTERN: &str = r"^(0|[1-9][0-9]{0,18})\.(0|[1-9][0-9]{0,18})\.(0|[1-9][0-9]{0,18})(-(0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)(\.(0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*))*)?(\+[0-9a-zA-Z-]+(\.[0-9a-zA-Z-]+)*)?$";

/// What a tag must not look like, within the tag characters: a version or
/// a version range (`1`, `1.2`, `1.x`, `x`, `1.2.3-rc.1`, digits of any length).
const VERSION_LIKE: &str = r"([0-9]+|[xX])(\.([0-9]+|[xX])(\.([0-9]+|[xX])(-[0-9a-zA-Z-]+(\.[0-9a-zA-Z-]+)*)?)?)?";

/// A tag as one ECMA-262 regular expression (with a lookahead, which
/// OpenAPI and JSON Schema allow): the tag characters, not version-like.
pub fn tag_pattern() -> String {
    format!("^(?!{VERSION_LIKE}$)[a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}}$")
}

/// A reference (`/versions/{ref}`): a version or a tag.
pub fn reference_pattern() -> String {
    let version = VERSION_PATTERN.trim_start_matches('^').trim_end_matches('$');
    let tag = tag_pattern();
    let tag = tag.trim_start_matches('^').trim_end_matches('$');
    format!("^(({version})|({tag}))$")
}

fn compiled(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    // The patterns are constants of this module, checked by its tests.
    cell.get_or_init(|| Regex::new(pattern).unwrap_or_else(|e| panic!("{e}")))
}

fn pack_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    compiled(&RE, NAME_PATTERN)
}

fn tag_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    compiled(&RE, TAG_CHARS_PATTERN)
}

fn version_like_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    static FULL: OnceLock<String> = OnceLock::new();
    compiled(&RE, FULL.get_or_init(|| format!("^{VERSION_LIKE}$")))
}

fn version_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    compiled(&RE, VERSION_PATTERN)
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
        // By syntax (what the published pattern says), and never anything
        // semver would read as a version or range.
        if version_like_re().is_match(s) || semver::Version::parse(s).is_ok() || semver::VersionReq::parse(s).is_ok() {
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
    let v = semver::Version::parse(s).map_err(|e| VersionError {
        input: s.to_owned(),
        reason: e.to_string(),
    })?;
    if !version_re().is_match(s) {
        return Err(VersionError {
            input: s.to_owned(),
            reason: "a major, minor or patch number has more than 19 digits".into(),
        });
    }
    Ok(v)
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
        if let Ok(v) = parse_version(s) {
            return Ok(Self::Version(v));
        }
        TagName::parse(s).map(Self::Tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every string over an alphabet that exercises versions and tags, up to
    /// `len` characters.
    fn strings(alphabet: &[char], len: usize) -> Vec<String> {
        let mut out = vec![String::new()];
        let mut layer = vec![String::new()];
        for _ in 0..len {
            layer = layer
                .iter()
                .flat_map(|p| alphabet.iter().map(move |c| format!("{p}{c}")))
                .collect();
            out.extend(layer.iter().cloned());
        }
        out
    }

    #[test]
    fn the_published_patterns_say_exactly_what_the_parsers_accept() {
        // The tag lookahead is emulated: the characters, and not version-like.
        let tag_by_pattern = |s: &str| tag_re().is_match(s) && !version_like_re().is_match(s);
        for s in strings(&['0', '1', '9', 'x', 'X', '.', '-', 'a', '+'], 6) {
            let by_semver = semver::Version::parse(&s).is_ok() || semver::VersionReq::parse(&s).is_ok();
            let is_tag = TagName::parse(&s).is_ok();
            assert_eq!(is_tag, tag_by_pattern(&s), "tag {s:?}");
            assert!(!(is_tag && by_semver), "{s:?} is a tag semver reads as a version");
            assert_eq!(parse_version(&s).is_ok(), version_re().is_match(&s), "version {s:?}");
        }
        assert!(parse_version("99999999999999999999.0.0").is_err());
        assert!(parse_version("9999999999999999999.0.0").is_ok());
        assert!(
            TagName::parse("99999999999999999999").is_err(),
            "digits look like a version"
        );
        assert!(TagName::parse("01").is_err() && TagName::parse("v1").is_ok() && TagName::parse("x1").is_ok());
        let reference = regex_lite_reference();
        for ok in ["1.2.3", "1.2.3-rc.1+b.5", "latest", "stable_2", "v1.2"] {
            assert!(reference(ok), "{ok}");
        }
        for bad in ["1.2", "x", "", "-a", "1.2.3 "] {
            assert!(!reference(bad), "{bad}");
        }
    }

    /// The reference pattern's meaning, checked without a lookahead engine.
    fn regex_lite_reference() -> impl Fn(&str) -> bool {
        |s: &str| version_re().is_match(s) || (tag_re().is_match(s) && !version_like_re().is_match(s))
    }

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
