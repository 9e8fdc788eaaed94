//! The schema documents behind the tools' `outputSchema`s, by the paths
//! `skill_manifest.yaml` names, and the ones `ctmr-skill schema` writes.
//!
//! Two kinds: generated from Rust types ([`generated`]: the evidence, the cohort, the
//! run records and the "waited or started" unions of the run tools) and hand-written
//! documents checked in beside the code ([`HAND_WRITTEN`]: the inspection report, the
//! label list, the verifier's report), embedded so the binary does not depend on its
//! working directory.

use serde_json::{json, Value};

use super::registry::Registry;
use crate::json_schema::{schema_of, DIALECT};
use crate::manifest::Manifest;

/// Where the generated evidence schema is written.
pub(crate) const EVIDENCE_SCHEMA_PATH: &str = "schemas/evidence.schema.json";

/// Hand-written schema documents, by path.
pub(crate) const HAND_WRITTEN: &[(&str, &str)] = &[
    (
        "schemas/inspect_report.schema.json",
        include_str!("../../schemas/inspect_report.schema.json"),
    ),
    (
        "schemas/labels.schema.json",
        include_str!("../../schemas/labels.schema.json"),
    ),
    (
        "verifiers/ct_segmentation_quality_v1/report.schema.json",
        include_str!("../../verifiers/ct_segmentation_quality_v1/report.schema.json"),
    ),
];

/// A hand-written document, parsed.
pub(crate) fn hand_written(path: &str) -> Value {
    HAND_WRITTEN
        .iter()
        .find(|(p, _)| *p == path)
        .and_then(|(_, text)| serde_json::from_str(text).ok())
        .unwrap_or_else(|| panic!("{path} is embedded and parses (checked by a test)"))
}

/// `impl JsonSchema` for a type whose published schema is a hand-written document of
/// [`HAND_WRITTEN`] (the type's serialisation is checked against it by the tests of
/// the tool that answers with it).
macro_rules! hand_written_schema {
    ($ty:ty, $path:literal) => {
        impl schemars::JsonSchema for $ty {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($ty).into()
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::Schema::try_from($crate::tools::schemas::hand_written($path))
                    .expect("a hand-written schema is a JSON object")
            }
        }
    };
}
pub(crate) use hand_written_schema;

/// The output schema of a tool that answers either with `base` (waited) or with a
/// [`crate::jobs::RunRecord`] (`wait: false`).
pub(crate) fn waited_or_started(base: Value, what: &str) -> Value {
    let strip = |mut v: Value| {
        if let Some(o) = v.as_object_mut() {
            o.remove("$schema");
        }
        v
    };
    json!({
        "$schema": DIALECT,
        "title": format!("{what}, or the run record of a call made with wait: false"),
        "type": "object",
        "anyOf": [strip(base), strip(schema_of::<crate::jobs::RunRecord>())],
    })
}

/// The documents generated from Rust types, by path: the evidence and cohort schemas
/// plus every tool output schema that is not hand-written.
pub(crate) fn generated(registry: &Registry, manifest: &Manifest) -> Vec<(String, Value)> {
    let mut files = vec![
        (
            EVIDENCE_SCHEMA_PATH.to_string(),
            crate::evidence::evidence_schema(),
        ),
        (
            crate::evidence::cohort::COHORT_SCHEMA_PATH.to_string(),
            crate::evidence::cohort::cohort_schema(),
        ),
    ];
    for (path, schema) in registry.documents(manifest) {
        let hand = HAND_WRITTEN.iter().any(|(p, _)| *p == path);
        if !hand && !files.iter().any(|(p, _)| *p == path) {
            files.push((path, schema));
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_written_documents_parse() {
        for (path, _) in HAND_WRITTEN {
            assert!(hand_written(path).is_object(), "{path}");
        }
    }
}
