//! `inspect_label_map`: statistics and geometry of a label map, through the same
//! engine as `ctmr-skill inspect` and the evidence builder.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::registry::{blocking_heavy, into_outcome, Answer, Outcome, Summary, Tool, ToolFailure};
use crate::call::{Brief, CallContext, Image, ToolOutcome};
use crate::config::Config;
use crate::inspect::{inspect, InspectOptions, InspectReport};
use crate::labels::LabelTable;
use crate::manifest::args::ArgError;

/// The tool.
pub(crate) struct InspectLabelMap(pub Arc<Config>);

/// `inspect_label_map`'s arguments after the manifest checked them.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct InspectArgs {
    pub mask: String,
    pub reference: Option<String>,
    pub ground_truth: Option<String>,
    pub components: bool,
    pub upstream_root: Option<String>,
    pub preview: bool,
    /// `summary` (default) or `full`: how much of the result the server answers with
    /// (the server shapes the answer; the tool ignores it).
    pub detail: Option<String>,
}

/// Parsed arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct InspectRequest {
    pub mask: PathBuf,
    pub options: InspectOptions,
    pub upstream_root: Option<PathBuf>,
    /// Answer with an overlay picture too.
    pub preview: bool,
}

/// `inspect_label_map`'s answer: the report, and what its head line says beside it.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub(crate) struct Inspected {
    pub report: InspectReport,
    /// Why the ids are unnamed (no label table was found).
    #[serde(skip)]
    pub unnamed: Option<String>,
    /// Why no picture came with the answer, when one was asked for.
    #[serde(skip)]
    pub no_picture: Option<String>,
}

super::schemas::hand_written_schema!(Inspected, "schemas/inspect_report.schema.json");

/// Labels named in a summary text before "and N more".
const TEXT_LABELS: usize = 25;

impl Tool for InspectLabelMap {
    const NAME: &'static str = "inspect_label_map";
    type Args = InspectArgs;
    type Request = InspectRequest;
    type Output = Inspected;

    fn summary(output: &Inspected) -> Summary {
        let mut head = head(&output.report, output.unnamed.as_deref());
        if let Some(e) = &output.no_picture {
            head.push_str(&format!(" No picture: {e}."));
        }
        let document = serde_json::to_value(&output.report).expect("report serialises");
        Summary {
            head,
            brief: Brief {
                lines: label_lines(&document).into_iter().collect(),
                ..Brief::default()
            },
        }
    }

    fn request(&self, args: InspectArgs) -> Result<InspectRequest, ArgError> {
        let path = |p: Option<String>| p.map(|p| self.0.absolute(Path::new(&p)));
        Ok(InspectRequest {
            mask: self.0.absolute(Path::new(&args.mask)),
            options: InspectOptions {
                components: args.components,
                reference: path(args.reference),
                ground_truth: path(args.ground_truth),
                ..InspectOptions::default()
            },
            upstream_root: crate::tools::run_script::request::admit_root(
                &self.0,
                args.upstream_root.as_deref(),
            )?,
            preview: args.preview,
        })
    }

    fn execute(
        self: Arc<Self>,
        request: InspectRequest,
        _ctx: CallContext,
    ) -> BoxFuture<'static, Outcome<Self>> {
        blocking_heavy(move || {
            let (report, unnamed) = execute(&request, &self.0).map_err(ToolFailure::failed)?;
            let mut answer = Answer::new(Inspected {
                report,
                unnamed,
                no_picture: None,
            });
            if request.preview {
                match preview(&request, &answer.output.report, &self.0) {
                    Ok(png) => answer.images.push(Image { png }),
                    Err(e) => answer.output.no_picture = Some(e),
                }
            }
            Ok(answer)
        })
    }
}

/// Run an inspection and name the ids from the bundle's label table when one is found.
/// Returns the report and, when no table was found, why.
pub fn execute(
    request: &InspectRequest,
    config: &Config,
) -> Result<(InspectReport, Option<String>), String> {
    let mut report = inspect_any(&request.mask, &request.options)?;
    let table = load_table(request.upstream_root.as_deref(), config);
    let note = match &table {
        Ok(table) => {
            report.attach_names(|id| {
                u32::try_from(id)
                    .ok()
                    .and_then(|i| table.name(i))
                    .map(str::to_string)
            });
            None
        }
        Err(e) => Some(e.clone()),
    };
    Ok((report, note))
}

/// The overlay picture of an inspected mask (over the reference image when given),
/// from the report at hand: one more pass, over the planes drawn only.
fn preview(
    request: &InspectRequest,
    report: &InspectReport,
    config: &Config,
) -> Result<Vec<u8>, String> {
    let table = load_table(request.upstream_root.as_deref(), config).ok();
    // A DICOM reference is converted only for the statistics: the picture shows the mask.
    let reference = request
        .options
        .reference
        .as_deref()
        .filter(|p| !crate::dicom::is_source(p));
    crate::render::render(
        &request.mask,
        reference,
        report,
        table.as_ref(),
        &crate::render::RenderOptions::default(),
    )
    .map(|p| p.png)
    .map_err(|e| e.to_string())
}

/// [`inspect`], with a DICOM series (a directory or .zip of one series) accepted as
/// the reference image: it is converted, as `run_script` converts an input, to a
/// temporary NIfTI file in the temp dir (removed afterwards, so the tool still writes
/// nothing), and the report names the series, not the temporary file.
pub(crate) fn inspect_any(mask: &Path, options: &InspectOptions) -> Result<InspectReport, String> {
    let Some(source) = options
        .reference
        .as_deref()
        .filter(|p| crate::dicom::is_source(p))
    else {
        return inspect(mask, options).map_err(|e| e.to_string());
    };
    let temp = TempVolume(std::env::temp_dir().join(format!(
        "ctmr-skill-reference-{}.nii.gz",
        uuid::Uuid::new_v4().simple()
    )));
    crate::dicom::scan(source)
        .and_then(|scan| scan.choose(None))
        .and_then(crate::dicom::plan)
        .and_then(|plan| crate::dicom::convert(&plan, &temp.0))
        .map_err(|e| format!("reference: {e}"))?;
    let converted = InspectOptions {
        reference: Some(temp.0.clone()),
        ..options.clone()
    };
    let (from, to) = (temp.0.display().to_string(), source.display().to_string());
    let mut report = inspect(mask, &converted).map_err(|e| e.to_string().replace(&from, &to))?;
    report.reference_path = Some(to.clone());
    for line in &mut report.skipped {
        *line = line.replace(&from, &to);
    }
    Ok(report)
}

/// A temporary file removed when dropped.
struct TempVolume(PathBuf);

impl Drop for TempVolume {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The label table of the resolved bundle root (explicit, env, workbench); with no
/// root given and none found, the built-in upstream table. A root that was named
/// explicitly and cannot be read stays an error.
pub(crate) fn load_table(
    explicit: Option<&std::path::Path>,
    config: &Config,
) -> Result<LabelTable, String> {
    let resolution = crate::upstream::resolve_root(
        explicit,
        config.env_root.as_deref().map(std::ffi::OsStr::new),
        &config.cwd,
    );
    match resolution.require() {
        Ok(root) => LabelTable::load_bundle(root).map_err(|e| e.to_string()),
        Err(e) if explicit.is_none() => LabelTable::built_in().cloned().ok_or_else(|| {
            format!(
                "{e}; and this build has no built-in label table (built without the upstream \
                 label data, see data/upstream/README.md): pass upstream_root"
            )
        }),
        Err(e) => Err(e.to_string()),
    }
}

/// `[512, 512, 200]` as `512×512×200`.
fn shape_words(shape: &[usize]) -> String {
    shape
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join("×")
}

/// The labels of a report as a summary line: "name (id): N mL", at most
/// [`TEXT_LABELS`] and "and N more".
fn label_lines(doc: &Value) -> Option<String> {
    let labels = doc["labels"].as_array()?;
    let mut rows: Vec<String> = labels
        .iter()
        .take(TEXT_LABELS)
        .map(|l| {
            let id = l["id"]
                .as_i64()
                .or_else(|| l["label"].as_i64())
                .unwrap_or(-1);
            let name = l["name"].as_str().unwrap_or("");
            let ml = l["volume_ml"].as_f64().unwrap_or(0.0);
            format!("{name} ({id}): {ml:.1} mL")
        })
        .collect();
    if labels.len() > TEXT_LABELS {
        rows.push(format!("and {} more", labels.len() - TEXT_LABELS));
    }
    Some(format!("labels: {}", rows.join("; ")))
}

/// The head line of a report; `unnamed` says why the ids have no names.
fn head(report: &InspectReport, unnamed: Option<&str>) -> String {
    let mut summary = format!(
        "{} labels in a {} volume ({} voxels, {:.4} mL each); non-integer {}, NaN {}, value 255 {}.",
        report.labels.len(),
        shape_words(&report.mask.shape),
        report.total_voxels,
        report.voxel_volume_ml,
        report.non_integer_voxels,
        report.nan_voxels,
        report.value_255_voxels
    );
    if let Some(note) = unnamed {
        summary.push_str(&format!(" Ids are unnamed: {note}"));
    }
    if let Some(geometry) = report.geometry_note() {
        summary.push(' ');
        summary.push_str(&geometry);
    }
    summary.push_str(" Not for clinical use.");
    summary
}

/// An inspection's result as the server answers it (no picture).
pub fn outcome(result: Result<(InspectReport, Option<String>), String>) -> ToolOutcome {
    into_outcome::<InspectLabelMap>(
        result
            .map(|(report, unnamed)| {
                Answer::new(Inspected {
                    report,
                    unnamed,
                    no_picture: None,
                })
            })
            .map_err(ToolFailure::failed),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_summary_names_the_labels_and_counts_the_rest() {
        let labels: Vec<Value> = (1..=30)
            .map(|i| json!({"id": i, "name": format!("class_{i}"), "volume_ml": i as f64}))
            .collect();
        let line = label_lines(&json!({ "labels": labels })).unwrap();
        assert!(
            line.starts_with("labels: class_1 (1): 1.0 mL; class_2 (2): 2.0 mL;"),
            "{line}"
        );
        assert!(
            line.contains("class_25 (25): 25.0 mL; and 5 more"),
            "{line}"
        );
        assert!(!line.contains("class_26"), "{line}");
        assert_eq!(label_lines(&json!({})), None);
    }
}
