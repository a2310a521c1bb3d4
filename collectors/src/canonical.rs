//! Canonical JSON: UTF-8, object keys sorted by their bytes, no insignificant whitespace.
//!
//! Structured evidence and signed statements are serialized this way so that the same facts
//! always give the same bytes, and so the same digest. The sort is done here explicitly rather
//! than relied on from `serde_json`'s map type, whose order changes with a cargo feature that any
//! crate in the build may switch on.

use serde::Serialize;
use serde_json::Value;

/// Serialize `value` as canonical JSON bytes.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let value = serde_json::to_value(value)?;
    let mut out = Vec::new();
    write_value(&value, &mut out)?;
    Ok(out)
}

fn write_value(value: &Value, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, key)?;
                out.push(b':');
                write_value(item, out)?;
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out)?;
            }
            out.push(b']');
        }
        scalar => serde_json::to_writer(&mut *out, scalar)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_sorted_at_every_depth_and_whitespace_is_gone() {
        let value = json!({"b": [ {"z": 1, "a": "x"} ], "a": null, "é": true, "Z": 2});
        assert_eq!(
            String::from_utf8(to_vec(&value).unwrap()).unwrap(),
            r#"{"Z":2,"a":null,"b":[{"a":"x","z":1}],"é":true}"#
        );
    }

    #[test]
    fn strings_are_escaped_as_json() {
        let value = json!({"k": "line\n\"quoted\"\u{1}"});
        assert_eq!(
            String::from_utf8(to_vec(&value).unwrap()).unwrap(),
            r#"{"k":"line\n\"quoted\"\u0001"}"#
        );
    }
}
