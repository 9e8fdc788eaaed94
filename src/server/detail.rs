//! `detail: summary | full`: how much of a result goes into the model's context.
//!
//! `full` is the tool's whole document, as `structuredContent` and as JSON text.
//! `summary` (the default) is
//! - text: status and one-line summary, the requested structures (or, for an
//!   everything run, the classes present with volumes, at most [`TEXT_CLASSES`] and
//!   "and N more"), gates and sanity checks only when one failed, the verifier verdict
//!   with its failing checks, and where the pack is;
//! - `structuredContent`: a subset that still conforms to the tool's `outputSchema`:
//!   every required field is kept; every array and every map (an object whose schema
//!   has no `properties`) is cut to its first [`KEEP_ITEMS`] entries; an optional field
//!   whose value is still over [`KEEP_FIELD_BYTES`] bytes is left out. What was cut or
//!   left out is listed in the result's `_meta["ctmr/summary"]`
//!   (`{"trimmed": {path: total}, "omitted": [path, ...]}`), and the whole document is one
//!   step away: `detail: full`, the `resource_link`s, `resources/read`, the pack on disk.

use serde_json::{json, Map, Value};

/// Entries kept of each array and map in summary `structuredContent`.
pub const KEEP_ITEMS: usize = 8;
/// An optional field larger than this (as compact JSON, after trimming) is left out.
pub const KEEP_FIELD_BYTES: usize = 1500;
/// Classes named in a summary text before "and N more".
pub const TEXT_CLASSES: usize = 25;

/// The detail a call asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    Summary,
    Full,
}

impl Detail {
    /// The call's `detail` argument; `None` when the tool takes none (its answer is
    /// always the full one).
    pub fn requested(declares: bool, arguments: &Map<String, Value>) -> Option<Detail> {
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
pub struct Cuts {
    pub trimmed: Map<String, Value>,
    pub omitted: Vec<String>,
}

impl Cuts {
    pub fn to_meta(&self) -> Value {
        json!({ "detail": "summary", "trimmed": self.trimmed, "omitted": self.omitted })
    }
}

/// The summary subset of `value` under `schema` (the tool's output schema).
pub fn subset(value: &Value, schema: Option<&Value>) -> (Value, Cuts) {
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

fn s<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// The evidence document inside a result: run_script's result itself, or get_run's
/// `result`.
fn evidence(doc: &Value) -> Option<&Value> {
    if doc.get("output").is_some_and(Value::is_object) {
        Some(doc)
    } else {
        doc.get("result").filter(|r| r.is_object())
    }
}

/// Failed entries of a `[{id|name, passed|status, ...}]` list, as "id: message".
fn failed(list: Option<&Value>) -> Vec<String> {
    list.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|c| {
            c.get("passed") == Some(&json!(false))
                || c.get("ok") == Some(&json!(false))
                || matches!(
                    c.get("status").and_then(Value::as_str),
                    Some("fail" | "failed" | "refused" | "error")
                )
        })
        .map(|c| {
            let id = s(c, "/id")
                .or_else(|| s(c, "/name"))
                .or_else(|| s(c, "/path"))
                .unwrap_or("check");
            let why = s(c, "/message")
                .or_else(|| s(c, "/detail"))
                .or_else(|| s(c, "/reason"))
                .unwrap_or("");
            if why.is_empty() {
                id.to_string()
            } else {
                format!("{id}: {why}")
            }
        })
        .collect()
}

/// Classes of an evidence document as "name (id): N mL", the requested ones when
/// prompts were given, else all present; largest first.
fn class_lines(ev: &Value) -> (Vec<String>, bool) {
    let output = &ev["output"];
    let requested: Vec<u64> = output["label_prompts_requested"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    let mut rows: Vec<(String, u64, f64)> = Vec::new();
    if let Some(classes) = output["classes"].as_array() {
        for c in classes {
            let id = c["id"].as_u64().or_else(|| c["label_id"].as_u64());
            let Some(id) = id else { continue };
            let name = s(c, "/name").unwrap_or("").to_string();
            let ml = c["volume_ml"].as_f64().unwrap_or(0.0);
            rows.push((name, id, ml));
        }
    } else if let Some(vols) = output["class_volumes_ml"].as_object() {
        for (k, v) in vols {
            rows.push((
                String::new(),
                k.parse().unwrap_or(0),
                v.as_f64().unwrap_or(0.0),
            ));
        }
    }
    let some = !requested.is_empty();
    if some {
        rows.retain(|(_, id, _)| requested.contains(id));
    }
    rows.sort_by(|a, b| b.2.total_cmp(&a.2));
    let lines = rows
        .iter()
        .map(|(name, id, ml)| {
            if name.is_empty() {
                format!("{id}: {ml:.1} mL")
            } else {
                format!("{name} ({id}): {ml:.1} mL")
            }
        })
        .collect();
    (lines, some)
}

/// The summary text of a tool's result document.
pub fn text(tool: &str, doc: &Value, fallback: &str) -> String {
    let mut out = Vec::new();
    let status = s(doc, "/status")
        .or_else(|| s(doc, "/state"))
        .or_else(|| s(doc, "/run/state"))
        .or_else(|| s(doc, "/overall"));
    let head = fallback.lines().next().unwrap_or("").trim();
    match status {
        Some(st) if !head.to_lowercase().contains(&st.to_lowercase()) => {
            out.push(format!("{tool}: {st}. {head}"))
        }
        _ => out.push(format!("{tool}: {head}")),
    }
    if let Some(ev) = evidence(doc) {
        let (lines, requested) = class_lines(ev);
        if !lines.is_empty() {
            let label = if requested {
                "requested structures"
            } else {
                "classes present (largest first)"
            };
            let more = lines.len().saturating_sub(TEXT_CLASSES);
            let mut shown = lines
                .iter()
                .take(TEXT_CLASSES)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ");
            if more > 0 {
                shown.push_str(&format!("; and {more} more"));
            }
            out.push(format!("{label}: {shown}"));
        }
        for (what, list) in [("gates", &ev["gates"]), ("sanity", &ev["sanity_checks"])] {
            let bad = failed(Some(list));
            if !bad.is_empty() {
                out.push(format!("{what} failed: {}", bad.join("; ")));
            }
        }
        if let Some(v) = ev.get("verification").or_else(|| ev.get("verifier_report")) {
            if let Some(overall) = s(v, "/overall") {
                out.push(format!("verifier: {overall}"));
            }
        }
    }
    if tool == "verify_evidence" {
        if let Some(reasons) = doc["overall_reasons"].as_array() {
            let reasons: Vec<&str> = reasons.iter().filter_map(Value::as_str).take(10).collect();
            if !reasons.is_empty() {
                out.push(format!("reasons: {}", reasons.join("; ")));
            }
        }
    }
    if tool == "inspect_label_map" {
        if let Some(labels) = doc["labels"].as_array() {
            let mut rows: Vec<String> = labels
                .iter()
                .take(TEXT_CLASSES)
                .map(|l| {
                    let id = l["id"]
                        .as_i64()
                        .or_else(|| l["label"].as_i64())
                        .unwrap_or(-1);
                    let name = s(l, "/name").unwrap_or("");
                    let ml = l["volume_ml"].as_f64().unwrap_or(0.0);
                    format!("{name} ({id}): {ml:.1} mL")
                })
                .collect();
            if labels.len() > TEXT_CLASSES {
                rows.push(format!("and {} more", labels.len() - TEXT_CLASSES));
            }
            out.push(format!("labels: {}", rows.join("; ")));
        }
    }
    if tool == "run_batch" {
        if let Some(counts) = doc.get("counts").filter(|c| c.is_object()) {
            out.push(format!("counts: {counts}"));
        }
    }
    for pointer in ["/pack_dir", "/run/pack_dir", "/output_root"] {
        if let Some(dir) = s(doc, pointer) {
            out.push(format!("pack: {dir}"));
            break;
        }
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
    fn an_everything_run_names_the_largest_classes_and_counts_the_rest() {
        let classes: Vec<Value> = (1..=117)
            .map(|i| json!({"id": i, "name": format!("structure_number_{i}"), "volume_ml": i as f64 * 10.0}))
            .collect();
        let doc = json!({
            "status": "succeeded", "pack_dir": "/data/runs/case1",
            "output": {"classes": classes, "label_prompts_requested": []},
            "gates": [{"name": "input_exists", "status": "passed", "message": "ok"}],
            "sanity_checks": [{"path": "output.shape", "status": "failed", "reason": "shape differs"}],
        });
        let t = text("run_script", &doc, "CT_BODY everything run succeeded");
        assert!(t.contains("structure_number_117 (117): 1170.0 mL"), "{t}");
        assert!(!t.contains("structure_number_1 (1):"), "{t}");
        assert!(t.contains("and 92 more"), "{t}");
        assert!(
            t.contains("sanity failed: output.shape: shape differs"),
            "{t}"
        );
        assert!(!t.contains("gates failed"), "{t}");
        assert!(t.contains("pack: /data/runs/case1"), "{t}");
        // Well under 1 500 tokens (a token is at least ~2.5 characters of such text).
        assert!(t.len() < 3000, "{} chars", t.len());
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
