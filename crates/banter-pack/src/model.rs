//! The typed shape of a banter pack, as the schema describes it.

use serde::{Deserialize, Serialize};

/// A banter pack document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pack {
    /// DNS-label style pack name.
    pub name: String,
    /// Semantic version.
    pub version: String,
    /// Human-readable title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// What the pack is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Who wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// SPDX license expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// Overall tone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tone: Option<String>,
    /// Search tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The cast.
    pub personas: Vec<Persona>,
    /// The lines.
    pub lines: Vec<Line>,
}

/// Someone who speaks lines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Persona {
    /// Id referenced by lines.
    pub id: String,
    /// Name shown on the overlay.
    pub display_name: String,
    /// Style hint for the overlay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub style: Option<String>,
}

/// One commentary line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Line {
    /// Unique id within the pack.
    pub id: String,
    /// Dotted event type, e.g. `match.goal`.
    pub event: String,
    /// Id of the speaking persona.
    pub persona: String,
    /// What is said.
    pub text: String,
    /// Relative pick weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
    /// Minimum time before the line repeats.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "integral_millis"
    )]
    pub cooldown_ms: Option<u64>,
}

/// An integer as JSON Schema counts one: any number without a fractional
/// part, so `5.0` and `5e3` are integers as much as `5` is (every validator
/// of the published schema accepts them).
fn integral_millis<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    use serde::de::Error;
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    if let Some(u) = n.as_u64() {
        return Ok(Some(u));
    }
    match n.as_f64() {
        // Exact below 2^53, far above the schema's maximum.
        Some(f) if f.fract() == 0.0 && (0.0..9_007_199_254_740_992.0).contains(&f) => Ok(Some(f as u64)),
        _ => Err(D::Error::custom(format!(
            "cooldown_ms must be a non-negative integer, got {n}"
        ))),
    }
}
