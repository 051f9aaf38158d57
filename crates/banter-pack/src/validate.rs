//! Accepting a pack: JSON syntax, the schema, then the rules a schema cannot
//! express (unique ids, persona references, URL agreement, size limits).

use std::collections::HashSet;

use serde::Serialize;

use crate::model::Pack;
use crate::schema::validator;

/// Size limits applied to every pack (configurable per registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum bytes of one pack document.
    pub max_pack_bytes: usize,
    /// Maximum number of lines in one pack.
    pub max_lines: usize,
    /// Maximum characters (Unicode scalar values) of one line's text.
    pub max_line_chars: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_pack_bytes: 1024 * 1024,
            max_lines: 10_000,
            max_line_chars: 500,
        }
    }
}

/// One reason a pack is invalid, located by a JSON pointer into the document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Violation {
    /// RFC 6901 pointer to the offending value (`""` is the whole document).
    pub pointer: String,
    /// What is wrong there.
    pub message: String,
}

/// Why a pack was not accepted.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PackError {
    /// The body is larger than `max_pack_bytes`.
    #[error("pack is {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// Bytes received.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The body is not JSON at all.
    #[error("malformed JSON: {0}")]
    Malformed(String),
    /// An object repeats a key: the document has more than one meaning.
    #[error("duplicate key at {0}: every key may occur once per object")]
    DuplicateKey(String),
    /// The body is JSON but not a valid pack; every violation is listed.
    #[error("invalid pack: {} violation(s)", .0.len())]
    Invalid(Vec<Violation>),
}

/// Longest excerpt of an offending value quoted back in a message.
const MAX_MESSAGE: usize = 240;

/// Validates `bytes` as a pack. With `expected`, the document's `name` and
/// `version` must equal those (the publish URL's).
pub fn validate_pack(bytes: &[u8], limits: &Limits, expected: Option<(&str, &str)>) -> Result<Pack, PackError> {
    if bytes.len() > limits.max_pack_bytes {
        return Err(PackError::TooLarge {
            size: bytes.len(),
            limit: limits.max_pack_bytes,
        });
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(PackError::Malformed(
            "the body is empty; expected a JSON pack document".into(),
        ));
    }
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| PackError::Malformed(e.to_string()))?;
    // The parse above kept the last occurrence of a repeated key; the bytes
    // stored and served keep both, so such a document is refused outright.
    if let Some(pointer) =
        crate::duplicate::first_duplicate_key(bytes).map_err(|e| PackError::Malformed(e.to_string()))?
    {
        return Err(PackError::DuplicateKey(pointer));
    }

    let mut violations: Vec<Violation> = validator()
        .iter_errors(&value)
        .flat_map(|e| {
            let at = e.instance_path().as_str().to_owned();
            let message = truncate(e.to_string());
            // Point at the member that is missing or not allowed, not at the
            // object holding it: a client can then highlight the field.
            let members: Vec<String> = match e.kind() {
                jsonschema::error::ValidationErrorKind::Required { property } => {
                    vec![
                        property
                            .as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| property.to_string()),
                    ]
                }
                jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected } => unexpected.clone(),
                _ => Vec::new(),
            };
            if members.is_empty() {
                vec![Violation { pointer: at, message }]
            } else {
                members
                    .into_iter()
                    .map(|m| Violation {
                        pointer: format!("{at}/{}", escape_pointer(&m)),
                        message: message.clone(),
                    })
                    .collect()
            }
        })
        .collect();
    // Cross-field rules read the raw value, so they are reported together with
    // schema violations even when the document is far from the typed shape.
    check_semantics(&value, limits, expected, &mut violations);
    if !violations.is_empty() {
        return Err(PackError::Invalid(violations));
    }
    // The schema admits only what the model reads, so this fails only if
    // the two drift apart; the error still names where.
    serde_path_to_error::deserialize(value).map_err(|e| {
        let pointer = e
            .path()
            .iter()
            .map(|segment| match segment {
                serde_path_to_error::Segment::Seq { index } => format!("/{index}"),
                serde_path_to_error::Segment::Map { key } => format!("/{}", escape_pointer(key)),
                serde_path_to_error::Segment::Enum { variant } => format!("/{}", escape_pointer(variant)),
                serde_path_to_error::Segment::Unknown => "/?".to_string(),
            })
            .collect();
        PackError::Invalid(vec![Violation {
            pointer,
            message: truncate(e.into_inner().to_string()),
        }])
    })
}

/// `token` escaped for use in an RFC 6901 JSON pointer.
fn escape_pointer(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

fn str_at<'a>(v: &'a serde_json::Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(serde_json::Value::as_str)
}

fn check_semantics(doc: &serde_json::Value, limits: &Limits, expected: Option<(&str, &str)>, out: &mut Vec<Violation>) {
    let mut push = |pointer: String, message: String| out.push(Violation { pointer, message });
    let empty = Vec::new();
    let array = |key: &str| doc.get(key).and_then(serde_json::Value::as_array).unwrap_or(&empty);

    if let Some((name, version)) = expected {
        let (got_name, got_version) = (str_at(doc, "name"), str_at(doc, "version"));
        if got_name.is_some_and(|n| n != name) {
            push(
                "/name".into(),
                format!(
                    "pack name {:?} does not match the URL's {name:?}",
                    got_name.unwrap_or("")
                ),
            );
        }
        if got_version.is_some_and(|v| v != version) {
            push(
                "/version".into(),
                format!(
                    "pack version {:?} does not match the URL's {version:?}",
                    got_version.unwrap_or("")
                ),
            );
        }
    }
    let mut personas = HashSet::new();
    for (i, p) in array("personas").iter().enumerate() {
        if let Some(id) = str_at(p, "id")
            && !personas.insert(id)
        {
            push(format!("/personas/{i}/id"), format!("duplicate persona id {id:?}"));
        }
    }
    let lines = array("lines");
    if lines.len() > limits.max_lines {
        push(
            "/lines".into(),
            format!(
                "{} lines, over the limit of {} lines per pack",
                lines.len(),
                limits.max_lines
            ),
        );
    }
    let mut line_ids = HashSet::new();
    for (i, line) in lines.iter().enumerate() {
        if let Some(id) = str_at(line, "id")
            && !line_ids.insert(id)
        {
            push(format!("/lines/{i}/id"), format!("duplicate line id {id:?}"));
        }
        if let Some(persona) = str_at(line, "persona")
            && !personas.contains(persona)
        {
            push(
                format!("/lines/{i}/persona"),
                format!("persona {persona:?} is not declared in /personas"),
            );
        }
        if let Some(text) = str_at(line, "text") {
            let chars = text.chars().count();
            if chars > limits.max_line_chars {
                push(
                    format!("/lines/{i}/text"),
                    format!(
                        "text is {chars} characters, over the limit of {} per line",
                        limits.max_line_chars
                    ),
                );
            }
        }
    }
}

fn truncate(mut s: String) -> String {
    if s.chars().count() > MAX_MESSAGE {
        s = s.chars().take(MAX_MESSAGE).collect::<String>() + "…";
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pack() -> serde_json::Value {
        json!({
            "name": "demo",
            "version": "1.0.0",
            "personas": [{"id": "host", "display_name": "Host"}, {"id": "cc", "display_name": "Co-caster"}],
            "lines": [
                {"id": "l1", "event": "match.goal", "persona": "host", "text": "Well, that happened."},
                {"id": "l2", "event": "stream.raid", "persona": "cc", "text": "RAID!", "weight": 2, "cooldown_ms": 1000}
            ]
        })
    }

    fn check(v: &serde_json::Value) -> Result<Pack, PackError> {
        validate_pack(
            &serde_json::to_vec(v).expect("json"),
            &Limits::default(),
            Some(("demo", "1.0.0")),
        )
    }

    fn pointers(r: Result<Pack, PackError>) -> Vec<String> {
        match r {
            Err(PackError::Invalid(v)) => v.into_iter().map(|v| v.pointer).collect(),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn a_repeated_key_is_refused_before_anything_else() {
        // What serde would accept (last occurrence valid), and import reads
        // through this same function.
        let body = br#"{"name":"demo","version":"9.9.9","version":"1.0.0","personas":[{"id":"host","display_name":"Host"}],"lines":[{"id":"l1","event":"e","persona":"host","text":"t"}]}"#;
        assert_eq!(
            validate_pack(body, &Limits::default(), Some(("demo", "1.0.0"))),
            Err(PackError::DuplicateKey("/version".into()))
        );
    }

    #[test]
    fn accepts_a_valid_pack() {
        let p = check(&pack()).expect("valid");
        assert_eq!(p.lines.len(), 2);
    }

    #[test]
    fn rejects_empty_and_malformed() {
        assert!(matches!(
            validate_pack(b"", &Limits::default(), None),
            Err(PackError::Malformed(_))
        ));
        assert!(matches!(
            validate_pack(b"  \n", &Limits::default(), None),
            Err(PackError::Malformed(_))
        ));
        assert!(matches!(
            validate_pack(b"{\"name\":", &Limits::default(), None),
            Err(PackError::Malformed(_))
        ));
    }

    #[test]
    fn lists_every_schema_violation() {
        let mut v = pack();
        v["name"] = json!("Bad Name");
        v["lines"][0]["event"] = json!("goal");
        v["lines"][1]["cooldown_ms"] = json!(-1);
        v["extra"] = json!(true);
        v["lines"][1]["persona"] = json!("ghost");
        let ptrs = pointers(check(&v));
        // Schema violations and cross-field violations are reported together.
        for want in [
            "/name",
            "/lines/0/event",
            "/lines/1/cooldown_ms",
            // The property that is not allowed, not the object holding it.
            "/extra",
            "/lines/1/persona",
        ] {
            assert!(ptrs.iter().any(|p| p == want), "{want:?} missing from {ptrs:?}");
        }
    }

    #[test]
    fn integers_as_json_schema_counts_them() {
        for (cooldown, ok) in [
            (json!(5), true),
            (json!(5.0), true),
            (json!(5e3), true),
            (json!(5.5), false),
        ] {
            let mut v = pack();
            v["lines"][1]["cooldown_ms"] = cooldown.clone();
            let got = validate_pack(v.to_string().as_bytes(), &Limits::default(), None);
            assert_eq!(got.is_ok(), ok, "{cooldown}: {got:?}");
            if let Err(PackError::Invalid(violations)) = got {
                assert!(
                    violations.iter().all(|x| x.pointer == "/lines/1/cooldown_ms"),
                    "{violations:?}"
                );
            }
        }
        let mut v = pack();
        v["lines"][1]["cooldown_ms"] = json!(5.0);
        let parsed = validate_pack(v.to_string().as_bytes(), &Limits::default(), None).expect("valid");
        assert_eq!(parsed.lines[1].cooldown_ms, Some(5));
    }

    #[test]
    fn missing_members_are_pointed_at() {
        let mut v = pack();
        if let Some(o) = v.as_object_mut() {
            o.remove("version");
        }
        if let Some(o) = v["lines"][0].as_object_mut() {
            o.remove("text");
        }
        let ptrs = pointers(check(&v));
        assert!(ptrs.contains(&"/version".to_owned()), "{ptrs:?}");
        assert!(ptrs.contains(&"/lines/0/text".to_owned()), "{ptrs:?}");
    }

    #[test]
    fn semantic_rules() {
        let mut v = pack();
        v["lines"][1]["id"] = json!("l1");
        v["lines"][0]["persona"] = json!("ghost");
        v["personas"][1]["id"] = json!("host");
        let ptrs = pointers(check(&v));
        assert!(ptrs.contains(&"/lines/1/id".to_owned()), "{ptrs:?}");
        assert!(ptrs.contains(&"/lines/0/persona".to_owned()), "{ptrs:?}");
        assert!(ptrs.contains(&"/personas/1/id".to_owned()), "{ptrs:?}");
    }

    #[test]
    fn url_mismatch() {
        let bytes = serde_json::to_vec(&pack()).expect("json");
        let r = validate_pack(&bytes, &Limits::default(), Some(("other", "2.0.0")));
        assert_eq!(pointers(r), vec!["/name", "/version"]);
    }

    #[test]
    fn limits() {
        let bytes = serde_json::to_vec(&pack()).expect("json");
        let tight = Limits {
            max_pack_bytes: 10,
            ..Limits::default()
        };
        assert!(matches!(
            validate_pack(&bytes, &tight, None),
            Err(PackError::TooLarge { limit: 10, .. })
        ));
        let few = Limits {
            max_lines: 1,
            max_line_chars: 5,
            ..Limits::default()
        };
        let ptrs = pointers(validate_pack(&bytes, &few, None));
        assert_eq!(ptrs, vec!["/lines", "/lines/0/text"]);
    }
}
