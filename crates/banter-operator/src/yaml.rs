//! YAML output that every Kubernetes tool reads the same way.
//!
//! The serializer writes YAML 1.2, where `yes`, `no`, `on`, `off`, `y` and `n`
//! are plain strings. kubectl, Helm and Argo CD read YAML 1.1, where they are
//! booleans — so `args: [--appendonly, yes]` would be rejected. Such scalars
//! are single-quoted here, which both versions read as strings.

use serde::Serialize;

/// Plain scalars that YAML 1.1 readers take for booleans (`true`/`false` are
/// already quoted by the YAML 1.2 serializer).
const YAML11_BOOLEANS: &[&str] = &[
    "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF",
];

/// Serializes `value` as YAML that YAML 1.1 and 1.2 readers agree on.
pub fn to_string<T: Serialize>(value: &T) -> Result<String, serde_norway::Error> {
    Ok(quote_yaml11_booleans(&serde_norway::to_string(value)?))
}

fn quote_yaml11_booleans(yaml: &str) -> String {
    let mut out = String::with_capacity(yaml.len() + 16);
    // Indent of the line that opened a block scalar (`|`, `>`): deeper lines are its text.
    let mut block_parent: Option<usize> = None;
    for line in yaml.split_inclusive('\n') {
        let content = line.trim_end_matches('\n');
        let indent = content.len() - content.trim_start().len();
        if let Some(parent) = block_parent {
            if content.trim().is_empty() || indent > parent {
                out.push_str(line);
                continue;
            }
            block_parent = None;
        }
        if opens_block_scalar(content) {
            block_parent = Some(indent);
        }
        out.push_str(&quote_value(content));
        if line.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// Quotes the value of a `key: value` or `- value` line when it is ambiguous.
fn quote_value(line: &str) -> String {
    for word in YAML11_BOOLEANS {
        for marker in [": ", "- "] {
            let suffix = format!("{marker}{word}");
            if let Some(head) = line.strip_suffix(&suffix) {
                let is_item = marker == "- " && head.trim().is_empty();
                let is_value = marker == ": " && !head.trim().is_empty();
                if is_item || is_value {
                    return format!("{head}{marker}'{word}'");
                }
            }
        }
    }
    line.to_owned()
}

fn opens_block_scalar(line: &str) -> bool {
    let Some(last) = line.trim_end().rsplit(' ').next() else {
        return false;
    };
    let indicator = last.trim_end_matches(|c: char| c.is_ascii_digit() || c == '-' || c == '+');
    (indicator == "|" || indicator == ">") && (line.contains(": ") || line.trim_start().starts_with("- "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_yaml11_booleans_in_lists_and_maps() {
        let v = serde_json::json!({
            "args": ["--appendonly", "yes", "--protected-mode", "no", "on-call", "y"],
            "mode": "off",
            "flag": true,
            "sentence": "turn it on",
        });
        let yaml = to_string(&v).expect("yaml");
        assert!(yaml.contains("- 'yes'\n"), "{yaml}");
        assert!(yaml.contains("- 'no'\n"), "{yaml}");
        assert!(yaml.contains("- 'y'\n"), "{yaml}");
        assert!(yaml.contains("mode: 'off'\n"), "{yaml}");
        assert!(yaml.contains("flag: true\n"), "{yaml}");
        assert!(yaml.contains("sentence: turn it on\n"), "{yaml}");
        assert!(yaml.contains("- on-call\n"), "{yaml}");
        let back: serde_json::Value = serde_norway::from_str(&yaml).expect("parse");
        assert_eq!(back, v, "the YAML 1.2 reading is unchanged");
    }

    #[test]
    fn leaves_block_scalar_text_alone() {
        let v = serde_json::json!({ "data": { "notes": "first\n- yes\nkey: no\n", "after": "no" } });
        let yaml = to_string(&v).expect("yaml");
        assert!(yaml.contains("  - yes\n") && yaml.contains("  key: no\n"), "{yaml}");
        assert!(yaml.contains("after: 'no'"), "{yaml}");
        let back: serde_json::Value = serde_norway::from_str(&yaml).expect("parse");
        assert_eq!(back, v);
    }
}
