//! What a summary answer says of an evidence document: the requested structures (or,
//! for an everything run, the classes present with volumes, at most [`TEXT_CLASSES`]
//! and "and N more"), gates and sanity checks only when one failed, and the verifier
//! verdict. Both this tool's answer and a finished background run's (the run tools)
//! say it.
//!
//! Why it reads the document as JSON: a finished run's result is read back from its
//! pack as a document (written by this or an earlier version), not as a typed value.

use serde_json::{json, Value};

/// Classes named in a summary text before "and N more".
pub(crate) const TEXT_CLASSES: usize = 25;

/// The summary lines of an evidence document (none for a document that is not one,
/// e.g. a cohort summary).
pub(crate) fn evidence_lines(ev: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if !ev.get("output").is_some_and(Value::is_object) {
        return out;
    }
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
    out
}

fn s<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let t = evidence_lines(&doc).join("\n");
        assert!(t.contains("structure_number_117 (117): 1170.0 mL"), "{t}");
        assert!(!t.contains("structure_number_1 (1):"), "{t}");
        assert!(t.contains("and 92 more"), "{t}");
        assert!(
            t.contains("sanity failed: output.shape: shape differs"),
            "{t}"
        );
        assert!(!t.contains("gates failed"), "{t}");
        // Well under 1 500 tokens (a token is at least ~2.5 characters of such text).
        assert!(t.len() < 3000, "{} chars", t.len());
    }
}
