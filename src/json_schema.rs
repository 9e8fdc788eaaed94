//! The one JSON Schema generator: every schema the crate derives from its Rust types
//! (evidence, cohort, run records) comes from [`schema_of`], so they share one dialect,
//! one inlining rule and one cleanup.
//!
//! Why inlined and cleaned: MCP clients (and the models behind them) handle flat
//! schemas without `$ref` reliably, and schemars writes Rust number types (`uint64`,
//! `double`, ...) as `format`s that are not JSON Schema formats, which client-side
//! validators warn about on every call.

use schemars::JsonSchema;
use serde_json::Value;

/// The dialect every schema of this crate declares.
pub(crate) const DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";

/// A root schema of `T`: 2020-12, subschemas inlined, only standard formats kept.
pub(crate) fn schema_of<T: JsonSchema>() -> Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12()
        .with(|s| s.inline_subschemas = true)
        .into_generator();
    let mut schema =
        serde_json::to_value(generator.into_root_schema_for::<T>()).expect("schema serialises");
    strip_nonstandard_formats(&mut schema);
    schema
}

/// Remove every `format` that JSON Schema does not define (schemars' Rust number
/// types); standard ones (`date-time`, `uri`, ...) stay.
pub(crate) fn strip_nonstandard_formats(node: &mut Value) {
    const STANDARD: &[&str] = &[
        "date-time",
        "date",
        "time",
        "duration",
        "email",
        "uri",
        "uuid",
        "regex",
    ];
    match node {
        Value::Object(map) => {
            if map
                .get("format")
                .and_then(Value::as_str)
                .is_some_and(|f| !STANDARD.contains(&f))
            {
                map.remove("format");
            }
            map.values_mut().for_each(strip_nonstandard_formats);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nonstandard_formats),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(JsonSchema)]
    #[allow(dead_code)]
    struct Sample {
        count: u64,
        ratio: f64,
        nested: Vec<Inner>,
    }

    #[derive(JsonSchema)]
    #[allow(dead_code)]
    struct Inner {
        id: i32,
    }

    #[test]
    fn schemas_are_inlined_and_carry_no_rust_number_formats() {
        let schema = schema_of::<Sample>();
        let text = serde_json::to_string(&schema).unwrap();
        assert!(
            !text.contains("$ref") && !text.contains("\"format\""),
            "{text}"
        );
        assert_eq!(schema["$schema"], DIALECT);
        assert_eq!(
            schema["properties"]["nested"]["items"]["properties"]["id"]["type"],
            "integer"
        );
    }

    #[test]
    fn standard_formats_stay() {
        let mut v = serde_json::json!({"a": {"format": "date-time"}, "b": {"format": "uint8"}});
        strip_nonstandard_formats(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"a": {"format": "date-time"}, "b": {}})
        );
    }
}
