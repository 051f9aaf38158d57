//! One meaning per document: a JSON object with the same key twice is
//! refused, because parsers disagree on which occurrence wins (serde keeps
//! the last, many clients the first), so the bytes a registry stores and
//! serves could mean something it never validated.

use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The RFC 6901 pointer of the first repeated key in `bytes`, if any. Keys
/// compare after unescaping (`"a"` and `"\u0061"` are the same key).
pub fn first_duplicate_key(bytes: &[u8]) -> Result<Option<String>, serde_json::Error> {
    let mut path = Vec::new();
    let mut found = None;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    Walk {
        path: &mut path,
        found: &mut found,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok(found)
}

fn pointer(path: &[String]) -> String {
    path.iter()
        .map(|seg| format!("/{}", seg.replace('~', "~0").replace('/', "~1")))
        .collect()
}

struct Walk<'a> {
    path: &'a mut Vec<String>,
    found: &'a mut Option<String>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if self.found.is_some() {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            self.path.push(key.clone());
            if !seen.insert(key) {
                *self.found = Some(pointer(self.path));
                self.path.pop();
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            map.next_value_seed(Walk {
                path: self.path,
                found: self.found,
            })?;
            self.path.pop();
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0usize;
        loop {
            self.path.push(i.to_string());
            let more = seq
                .next_element_seed(Walk {
                    path: self.path,
                    found: self.found,
                })?
                .is_some();
            self.path.pop();
            if !more {
                return Ok(());
            }
            i += 1;
        }
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::first_duplicate_key;

    fn dup(s: &str) -> Option<String> {
        first_duplicate_key(s.as_bytes()).expect("valid JSON")
    }

    #[test]
    fn finds_the_second_occurrence_at_any_depth() {
        assert_eq!(
            dup(r#"{"name":"a","version":"9.9.9","version":"1.0.0"}"#),
            Some("/version".into())
        );
        assert_eq!(dup(r#"{"meta":{"x":1,"x":2}}"#), Some("/meta/x".into()));
        assert_eq!(
            dup(r#"{"lines":[{"id":"a"},{"id":"b","text":"t","text":"u"}]}"#),
            Some("/lines/1/text".into())
        );
        // Escapes are decoded before comparing; pointers are escaped.
        assert_eq!(dup(r#"{"a":1,"\u0061":2}"#), Some("/a".into()));
        assert_eq!(dup(r#"{"o":{"a/b~c":1,"a/b~c":2}}"#), Some("/o/a~1b~0c".into()));
        // The first duplicate in document order is reported.
        assert_eq!(dup(r#"{"a":{"b":1,"b":2},"a":3}"#), Some("/a/b".into()));
    }

    #[test]
    fn documents_without_repeats_pass() {
        assert_eq!(
            dup(r#"{"a":{"a":1},"b":[{"a":1},{"a":2}],"c":null,"d":1.5,"e":true}"#),
            None
        );
        assert_eq!(dup("[]"), None);
        assert!(first_duplicate_key(b"{\"a\":").is_err(), "malformed JSON is an error");
        assert!(first_duplicate_key(b"{} x").is_err(), "trailing garbage is an error");
    }
}
