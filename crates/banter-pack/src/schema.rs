//! The pack JSON Schema: one file in the repository, compiled once.

use std::sync::OnceLock;

/// The pack JSON Schema (draft 2020-12), exactly as served at `/v1/schema/pack.json`.
pub const SCHEMA_JSON: &str = include_str!("../schema/pack.schema.json");

/// The schema as a JSON value.
pub fn schema_value() -> &'static serde_json::Value {
    static VALUE: OnceLock<serde_json::Value> = OnceLock::new();
    // The schema is compiled into the binary and checked by a unit test, so a
    // parse failure here is a build defect, not a runtime condition.
    VALUE.get_or_init(|| serde_json::from_str(SCHEMA_JSON).unwrap_or(serde_json::Value::Null))
}

/// The compiled validator.
pub(crate) fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| match jsonschema::draft202012::new(schema_value()) {
        Ok(v) => v,
        // Unreachable for the shipped schema (see the test below); failing
        // loudly at first use beats silently accepting everything.
        Err(e) => panic!("the embedded pack schema does not compile: {e}"),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn embedded_schema_parses_and_compiles() {
        assert!(super::schema_value().is_object());
        let _ = super::validator();
    }
}
