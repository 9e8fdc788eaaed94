//! `detail: summary | full`: how much of a result goes into the model's context.
//!
//! `full` is the tool's whole document, as `structuredContent` and as JSON text.
//! `summary` (the default) is
//! - text: status and one-line summary, then the lines the tool says of its result (a
//!   [`Brief`], built by each tool from its typed output: e.g. `run_script`'s requested
//!   structures or largest classes, failed gates and sanity checks, the verifier
//!   verdict), and where the pack is;
//! - `structuredContent`: a subset that still conforms to the tool's `outputSchema`:
//!   every required field is kept; every array and every map (an object whose schema
//!   has no `properties`) is cut to its first [`KEEP_ITEMS`] entries; an optional field
//!   whose value is still over [`KEEP_FIELD_BYTES`] bytes is left out. What was cut or
//!   left out is listed in the result's `_meta["ctmr/summary"]`
//!   (`{"trimmed": {path: total}, "omitted": [path, ...]}`), and the whole document is one
//!   step away: `detail: full`, the `resource_link`s, `resources/read`, the pack on disk.

use serde_json::{json, Map, Value};

use crate::call::Brief;

/// Entries kept of each array and map in summary `structuredContent`.
pub(crate) const KEEP_ITEMS: usize = 8;
/// An optional field larger than this (as compact JSON, after trimming) is left out.
pub(crate) const KEEP_FIELD_BYTES: usize = 1500;

/// The detail a call asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Detail {
    Summary,
    Full,
}

impl Detail {
    /// The call's `detail` argument; `None` when the tool takes none (its answer is
    /// always the full one).
    pub(crate) fn requested(declares: bool, arguments: &Map<String, Value>) -> Option<Detail> {
        if !declares {
            return None;
        }
        Some(match arguments.get("detail").and_then(Value::as_str) {
            Some("full") => Detail::Full,
            _ => Detail::Summary,
        })
    }
}

/// What was trimmed and left out, by JSON path.
#[derive(Debug, Default)]
pub(crate) struct Cuts {
    pub trimmed: Map<String, Value>,
    pub omitted: Vec<String>,
}

impl Cuts {
    pub(crate) fn to_meta(&self) -> Value {
        json!({ "detail": "summary", "trimmed": self.trimmed, "omitted": self.omitted })
    }
}

/// The summary subset of `value` under `schema` (the tool's output schema).
pub(crate) fn subset(value: &Value, schema: Option<&Value>) -> (Value, Cuts) {
    let mut cuts = Cuts::default();
    let kept = walk(value, schema, "$", &mut cuts);
    (kept, cuts)
}

/// The schema `value` falls under: the node itself, or the `anyOf` option of the
/// value's JSON type.
fn pick<'a>(schema: Option<&'a Value>, value: &Value) -> Option<&'a Value> {
    let schema = schema?;
    let Some(options) = schema.get("anyOf").and_then(Value::as_array) else {
        return Some(schema);
    };
    let kind = match value {
        Value::Object(_) => "object",
        Value::Array(_) => "array",
        _ => return None,
    };
    options.iter().find(|o| {
        o.get("type") == Some(&json!(kind))
            || o.get("properties").is_some() && kind == "object"
            || o.get("items").is_some() && kind == "array"
    })
}

fn walk(value: &Value, schema: Option<&Value>, path: &str, cuts: &mut Cuts) -> Value {
    let schema = pick(schema, value);
    match value {
        Value::Array(items) => {
            let min = schema
                .and_then(|s| s.get("minItems"))
                .and_then(Value::as_u64)
                .unwrap_or(0) as usize;
            let keep = KEEP_ITEMS.max(min);
            if items.len() > keep {
                cuts.trimmed.insert(path.to_string(), json!(items.len()));
            }
            let inner = schema.and_then(|s| s.get("items"));
            Value::Array(
                items
                    .iter()
                    .take(keep)
                    .enumerate()
                    .map(|(i, v)| walk(v, inner, &format!("{path}[{i}]"), cuts))
                    .collect(),
            )
        }
        Value::Object(map) => {
            let properties = schema.and_then(|s| s.get("properties"));
            let required: Vec<&str> = schema
                .and_then(|s| s.get("required"))
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let is_map = schema.is_some_and(|s| {
                properties.is_none() && s.get("additionalProperties").is_some_and(Value::is_object)
            });
            let mut out = Map::new();
            if is_map {
                let inner = schema.and_then(|s| s.get("additionalProperties"));
                if map.len() > KEEP_ITEMS {
                    cuts.trimmed.insert(path.to_string(), json!(map.len()));
                }
                for (k, v) in map.iter().take(KEEP_ITEMS) {
                    out.insert(k.clone(), walk(v, inner, &format!("{path}.{k}"), cuts));
                }
                return Value::Object(out);
            }
            for (k, v) in map {
                let inner = properties.and_then(|p| p.get(k));
                let child_path = format!("{path}.{k}");
                let mut child_cuts = Cuts::default();
                let kept = walk(v, inner, &child_path, &mut child_cuts);
                let size = kept.to_string().len();
                if !required.contains(&k.as_str()) && size > KEEP_FIELD_BYTES {
                    cuts.omitted.push(child_path);
                    continue;
                }
                cuts.trimmed.extend(child_cuts.trimmed);
                cuts.omitted.extend(child_cuts.omitted);
                out.insert(k.clone(), kept);
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

/// The summary text of a tool's answer: its head line (with the result's state word
/// when the head does not already say it), the lines the tool's [`Brief`] adds, where
/// the pack is, and where the full document is.
pub(crate) fn text(tool: &str, head: &str, brief: &Brief) -> String {
    let mut out = Vec::new();
    let head = head.lines().next().unwrap_or("").trim();
    match &brief.status {
        Some(st) if !head.to_lowercase().contains(&st.to_lowercase()) => {
            out.push(format!("{tool}: {st}. {head}"))
        }
        _ => out.push(format!("{tool}: {head}")),
    }
    out.extend(brief.lines.iter().cloned());
    if let Some(dir) = &brief.pack {
        out.push(format!("pack: {dir}"));
    }
    out.push(
        "Full document: call again with detail \"full\", or read the linked resources.".into(),
    );
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_and_maps_are_cut_and_required_fields_stay() {
        let schema = json!({
            "type": "object",
            "required": ["big"],
            "properties": {
                "big": {"type": "array", "items": {"type": "integer"}},
                "map": {"type": "object", "additionalProperties": {"type": "number"}},
                "blob": {"type": "string"},
            }
        });
        let doc = json!({
            "big": (0..100).collect::<Vec<_>>(),
            "map": (0..20).map(|i| (format!("k{i:02}"), json!(i))).collect::<Map<_, _>>(),
            "blob": "x".repeat(5000),
        });
        let (kept, cuts) = subset(&doc, Some(&schema));
        assert_eq!(kept["big"].as_array().unwrap().len(), KEEP_ITEMS);
        assert_eq!(kept["map"].as_object().unwrap().len(), KEEP_ITEMS);
        assert!(kept.get("blob").is_none());
        assert_eq!(cuts.trimmed["$.big"], 100);
        assert_eq!(cuts.trimmed["$.map"], 20);
        assert_eq!(cuts.omitted, vec!["$.blob".to_string()]);
    }

    #[test]
    fn the_text_lays_out_a_brief() {
        let brief = Brief {
            status: Some("failed".into()),
            lines: vec!["gates failed: input: missing".into()],
            pack: Some("/data/runs/case1".into()),
        };
        let t = text("a_tool", "The run stopped.\nmore", &brief);
        assert_eq!(
            t,
            "a_tool: failed. The run stopped.\ngates failed: input: missing\npack: /data/runs/case1\n\
             Full document: call again with detail \"full\", or read the linked resources."
        );
        let said = Brief {
            status: Some("succeeded".into()),
            ..Brief::default()
        };
        assert!(text("a_tool", "Run succeeded.", &said).starts_with("a_tool: Run succeeded.\n"));
    }

    #[test]
    fn requested_detail_defaults_to_summary() {
        let mut args = Map::new();
        assert_eq!(Detail::requested(false, &args), None);
        assert_eq!(Detail::requested(true, &args), Some(Detail::Summary));
        args.insert("detail".into(), json!("full"));
        assert_eq!(Detail::requested(true, &args), Some(Detail::Full));
    }
}
