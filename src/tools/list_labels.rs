//! `list_labels`: the upstream label table, filtered, and name → id resolution for
//! agents (exact, normalised, unique substring; never a guessed id).

use std::sync::Arc;

use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::registry::{blocking_heavy, Answer, Outcome, Summary, Tool, ToolFailure};
use crate::call::CallContext;
use crate::config::Config;
use crate::labels::{LabelTable, Modality};
use crate::manifest::args::ArgError;

/// The tool.
pub(crate) struct ListLabels(pub Arc<Config>);

/// `list_labels`' arguments after the manifest checked them.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct LabelsArgs {
    pub query: Option<String>,
    pub resolve: Option<Vec<String>>,
    pub modality: Option<Modality>,
    pub upstream_root: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct LabelsRequest {
    pub query: Option<String>,
    pub resolve: Vec<String>,
    pub modality: Option<Modality>,
    pub upstream_root: Option<std::path::PathBuf>,
}

/// `list_labels`' answer: the document of schemas/labels.schema.json.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub(crate) struct LabelList(pub Value);

super::schemas::hand_written_schema!(LabelList, "schemas/labels.schema.json");

impl Tool for ListLabels {
    const NAME: &'static str = "list_labels";
    type Args = LabelsArgs;
    type Request = LabelsRequest;
    type Output = LabelList;

    fn summary(output: &LabelList) -> Summary {
        Summary {
            head: head(&output.0),
            ..Summary::default()
        }
    }

    fn request(&self, args: LabelsArgs) -> Result<LabelsRequest, ArgError> {
        Ok(LabelsRequest {
            query: args.query,
            resolve: args.resolve.unwrap_or_default(),
            modality: args.modality,
            upstream_root: crate::tools::run_script::request::admit_root(
                &self.0,
                args.upstream_root.as_deref(),
            )?,
        })
    }

    fn execute(
        self: Arc<Self>,
        request: LabelsRequest,
        _ctx: CallContext,
    ) -> BoxFuture<'static, Outcome<Self>> {
        blocking_heavy(move || {
            execute(&request, &self.0)
                .map(|doc| Answer::new(LabelList(doc)))
                .map_err(ToolFailure::failed)
        })
    }
}

/// The `list_labels` document (schemas/labels.schema.json).
pub(crate) fn execute(request: &LabelsRequest, config: &Config) -> Result<Value, String> {
    let table = super::inspect_label_map::load_table(request.upstream_root.as_deref(), config)?;
    Ok(document(&table, request))
}

/// Pure: the document for a loaded table.
pub fn document(table: &LabelTable, request: &LabelsRequest) -> Value {
    let needle = request.query.as_deref().map(str::to_lowercase);
    let allowed = request.modality.and_then(|m| table.everything_set(m));
    let labels: Vec<Value> = table
        .iter()
        .filter(|c| {
            needle
                .as_deref()
                .is_none_or(|n| c.name.to_lowercase().contains(n))
        })
        .filter(|c| allowed.is_none_or(|set| set.contains(&c.id)))
        .map(|c| json!({"id": c.id, "name": c.name, "deprecated": c.deprecated}))
        .collect();
    let resolved: Vec<Value> = request
        .resolve
        .iter()
        .map(|q| match table.resolve(q) {
            Ok(id) => json!({"query": q, "id": id, "name": table.name(id), "error": null, "candidates": []}),
            Err(e) => json!({
                "query": q, "id": null, "name": null, "error": e.to_string(),
                "candidates": e.shown_candidates().iter().map(|(id, name)| json!({"id": id, "name": name})).collect::<Vec<_>>(),
            }),
        })
        .collect();
    json!({
        "schema_version": "ctmr-skill.labels/1",
        "upstream_root": table.sources().first().and_then(|s| s.path.parent()).and_then(|p| p.parent()).map(|p| p.display().to_string()),
        "sources": table.sources().iter().map(|s| json!({"path": s.path.display().to_string(), "sha256": s.sha256})).collect::<Vec<_>>(),
        "label_source": if table.is_built_in() { "built_in" } else { "bundle" },
        "warnings": table.differs_from_built_in().filter(|_| !table.is_built_in()).into_iter().collect::<Vec<_>>(),
        "total_classes": table.len(),
        "modality": request.modality.map(|m| m.as_str()),
        "query": request.query,
        "labels": labels,
        "resolved": resolved,
        "not_for_clinical_use": crate::NOT_FOR_CLINICAL_USE,
    })
}

/// The head line of a label list: how many were listed, and each name resolved.
fn head(doc: &Value) -> String {
    let listed = doc["labels"].as_array().map_or(0, Vec::len);
    let mut summary = format!("{listed} of {} classes listed.", doc["total_classes"]);
    for r in doc["resolved"].as_array().into_iter().flatten() {
        match r["id"].as_u64() {
            Some(id) => summary.push_str(&format!(
                " '{}' -> {id} ({}).",
                r["query"].as_str().unwrap_or(""),
                r["name"].as_str().unwrap_or("")
            )),
            None => summary.push_str(&format!(
                " {}.",
                r["error"].as_str().unwrap_or("unresolved")
            )),
        }
    }
    summary
}
