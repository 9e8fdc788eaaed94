//! `ctmr-skill labels`: its clap flags and its function, the `list_labels` tool
//! through the registry.

use std::path::PathBuf;

use clap::Args;
use serde_json::{json, Map, Value};

use super::call::{call_tool, path_arg};
use super::error::CliError;
use super::exit_codes::ExitCode;
use super::out;
use crate::config::Config;
use crate::manifest::Manifest;
use crate::tools::list_labels::ListLabels;

#[derive(Debug, Args)]
pub struct LabelsArgs {
    /// Case-insensitive substring filter.
    pub query: Option<String>,
    /// Resolve these names to ids (repeatable).
    #[arg(long)]
    pub resolve: Vec<String>,
    /// Restrict to a modality's everything-set.
    #[arg(long)]
    pub modality: Option<String>,
    #[arg(long)]
    pub upstream_root: Option<PathBuf>,
    /// JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `ctmr-skill labels`: the table (or JSON) on stdout; exit 2 when a name given to
/// `--resolve` does not resolve (the answer still printed).
pub(super) fn labels(
    args: &LabelsArgs,
    config: &Config,
    manifest: Manifest,
) -> Result<ExitCode, CliError> {
    let mut arguments = Map::new();
    if let Some(query) = &args.query {
        arguments.insert("query".into(), json!(query));
    }
    if !args.resolve.is_empty() {
        arguments.insert("resolve".into(), json!(args.resolve));
    }
    if let Some(modality) = &args.modality {
        arguments.insert("modality".into(), json!(modality));
    }
    if let Some(root) = &args.upstream_root {
        arguments.insert("upstream_root".into(), path_arg(root));
    }
    let doc = call_tool::<ListLabels>(config, manifest, arguments)?.0;
    if args.json {
        out::json(&doc);
    } else {
        print_table(&doc);
    }
    let unresolved = doc["resolved"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|r| r["id"].is_null());
    Ok(if unresolved {
        ExitCode::Usage
    } else {
        ExitCode::Success
    })
}

/// The labels, one a line, then each resolved name.
fn print_table(doc: &Value) {
    for label in doc["labels"].as_array().into_iter().flatten() {
        let deprecated = if label["deprecated"] == json!(true) {
            "  (deprecated)"
        } else {
            ""
        };
        out::line(&format!(
            "{:>4}  {}{deprecated}",
            label["id"],
            label["name"].as_str().unwrap_or("")
        ));
    }
    for r in doc["resolved"].as_array().into_iter().flatten() {
        match r["id"].as_u64() {
            Some(id) => out::line(&format!(
                "{} -> {id} {}",
                r["query"],
                r["name"].as_str().unwrap_or("")
            )),
            None => out::line(&format!(
                "{} -> {}",
                r["query"],
                r["error"].as_str().unwrap_or("unresolved")
            )),
        }
    }
}
