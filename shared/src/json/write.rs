//! The two text forms sd-json produces: compact canonical text (what signatures cover) and the
//! tab-indented form homed writes to `.identity` files.

use std::fmt::Write as _;

use serde_json::{Map, Value};

/// Compact text with object keys sorted bytewise, as `sd_json_variant_normalize` followed by
/// `sd_json_variant_format(v, 0)` produces it.
pub fn to_canonical_string(value: &Value) -> String {
    let mut out = String::new();
    write_compact(&mut out, value);
    out
}

/// Tab-indented text with `" : "` separators and sorted keys, as homed writes host records and
/// `~/.identity` (`SD_JSON_FORMAT_PRETTY`). No trailing newline.
pub fn to_pretty_string(value: &Value) -> String {
    let mut out = String::new();
    write_pretty(&mut out, value, 0);
    out
}

fn sorted_entries(map: &Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut entries: Vec<_> = map.iter().collect();
    // Explicit sort: serde_json's Map keeps insertion order when another crate in the build
    // enables `preserve_order`. String ordering is bytewise, like strcmp on UTF-8.
    entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    entries
}

fn write_compact(out: &mut String, value: &Value) {
    match value {
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_compact(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in sorted_entries(map).into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, key);
                out.push(':');
                write_compact(out, item);
            }
            out.push('}');
        }
        scalar => write_scalar(out, scalar),
    }
}

fn indent(out: &mut String, level: usize) {
    for _ in 0..level {
        out.push('\t');
    }
}

fn write_pretty(out: &mut String, value: &Value, level: usize) {
    match value {
        Value::Array(items) if items.is_empty() => out.push_str("[]"),
        Value::Object(map) if map.is_empty() => out.push_str("{}"),
        Value::Array(items) => {
            out.push_str("[\n");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(",\n");
                }
                indent(out, level + 1);
                write_pretty(out, item, level + 1);
            }
            out.push('\n');
            indent(out, level);
            out.push(']');
        }
        Value::Object(map) => {
            out.push_str("{\n");
            for (i, (key, item)) in sorted_entries(map).into_iter().enumerate() {
                if i > 0 {
                    out.push_str(",\n");
                }
                indent(out, level + 1);
                write_string(out, key);
                out.push_str(" : ");
                write_pretty(out, item, level + 1);
            }
            out.push('\n');
            indent(out, level);
            out.push('}');
        }
        scalar => write_scalar(out, scalar),
    }
}

fn write_scalar(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        // Integers print as plain decimal. Records parsed by `parse_strict` hold no reals.
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => write_string(out, s),
        Value::Array(_) | Value::Object(_) => write_compact(out, value),
    }
}

/// sd-json escapes only the quote, the backslash and control characters below 0x20 (short
/// forms where C has them, `\u00xx` in lowercase hex otherwise); everything else is raw UTF-8.
pub fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::parse_strict;

    #[test]
    fn canonical_escapes_like_sd_json() {
        let v = parse_strict(
            br#"{"z":"a/b\u007f\u001f\n\t\"\\","a":["\u00e9\ud83d\ude00"],"m":{"y":1,"b":-2}}"#,
        )
        .unwrap();
        assert_eq!(
            to_canonical_string(&v),
            "{\"a\":[\"é😀\"],\"m\":{\"b\":-2,\"y\":1},\"z\":\"a/b\u{7f}\\u001f\\n\\t\\\"\\\\\"}"
        );
    }

    #[test]
    fn keys_sort_bytewise() {
        let v = parse_strict(r#"{"b":1,"B":2,"é":3,"a":4,"_":5}"#.as_bytes()).unwrap();
        assert_eq!(
            to_canonical_string(&v),
            r#"{"B":2,"_":5,"a":4,"b":1,"é":3}"#
        );
    }

    #[test]
    fn pretty_matches_homed_layout() {
        let v = parse_strict(br#"{"b":[1,{"x":true}],"a":{},"c":[]}"#).unwrap();
        assert_eq!(
            to_pretty_string(&v),
            "{\n\t\"a\" : {},\n\t\"b\" : [\n\t\t1,\n\t\t{\n\t\t\t\"x\" : true\n\t\t}\n\t],\n\t\"c\" : []\n}"
        );
    }
}
