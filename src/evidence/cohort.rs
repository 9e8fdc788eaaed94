//! The cohort summary: `cohort.json` (the run_batch result) and `cohort_volumes.csv`
//! (one row per volume, one column per class volume in mL), built from the per-volume
//! evidence so the two can never disagree.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::document::{Evidence, RunStatus};

pub(crate) const COHORT_SCHEMA_VERSION: &str = "ctmr-skill.cohort/1";
/// Where the cohort schema is checked in (and embedded for `run_batch`'s outputSchema).
pub(crate) const COHORT_SCHEMA_PATH: &str = "schemas/cohort.schema.json";

/// What became of one volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum VolumeStatus {
    /// Segmented by this batch run.
    Succeeded,
    /// An earlier complete pack for the same input bytes, modality and prompts was kept.
    Reused,
    /// The upstream wrote no mask for it (it was in flight when the batch process stopped).
    UpstreamFailed,
    TimedOut,
    Cancelled,
    /// A gate refused this input; it was not run.
    Refused,
}

impl VolumeStatus {
    pub(crate) fn from_run(status: RunStatus) -> Self {
        match status {
            RunStatus::Succeeded => VolumeStatus::Succeeded,
            RunStatus::UpstreamFailed => VolumeStatus::UpstreamFailed,
            RunStatus::TimedOut => VolumeStatus::TimedOut,
            RunStatus::Cancelled => VolumeStatus::Cancelled,
            RunStatus::Refused => VolumeStatus::Refused,
        }
    }
    pub fn ok(self) -> bool {
        matches!(self, VolumeStatus::Succeeded | VolumeStatus::Reused)
    }
    /// The word the documents use (`upstream_failed`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            VolumeStatus::Succeeded => "succeeded",
            VolumeStatus::Reused => "reused",
            VolumeStatus::UpstreamFailed => "upstream_failed",
            VolumeStatus::TimedOut => "timed_out",
            VolumeStatus::Cancelled => "cancelled",
            VolumeStatus::Refused => "refused",
        }
    }
}

/// One volume's line in the cohort.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct VolumeRow {
    pub id: String,
    /// The input as the caller named it: a volume, or a DICOM series (directory or .zip).
    pub input: String,
    pub input_sha256: Option<String>,
    /// The volume's evidence pack (output.json ...); null when it was refused.
    pub pack_dir: Option<String>,
    pub status: VolumeStatus,
    /// Why it failed, was refused, or why an earlier pack was not reused.
    pub reason: Option<String>,
    /// Which attempt (1-based) produced it; null when reused or refused.
    pub attempt: Option<usize>,
    pub mask: Option<String>,
    /// Class name → volume in mL (empty unless it succeeded or was reused).
    pub class_volumes_ml: BTreeMap<String, f64>,
}

/// How one attempt (one upstream batch process) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    Exited,
    TimedOut,
    Cancelled,
    SpawnFailed,
}

/// How the cohort as a whole ended: `succeeded` when every volume succeeded or was
/// reused, `partial` when some did, `failed` when none did, `cancelled` / `timed_out`
/// when the batch was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CohortStatus {
    Succeeded,
    Partial,
    Failed,
    Cancelled,
    TimedOut,
}

impl CohortStatus {
    /// The word the documents use (`partial`, `timed_out`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            CohortStatus::Succeeded => "succeeded",
            CohortStatus::Partial => "partial",
            CohortStatus::Failed => "failed",
            CohortStatus::Cancelled => "cancelled",
            CohortStatus::TimedOut => "timed_out",
        }
    }
}

/// One `python -m monai.bundle run` of the batch config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Attempt {
    pub number: usize,
    /// The exact argv (no shell).
    pub command: Vec<String>,
    /// Volume ids given to this attempt, in order.
    pub volumes: Vec<String>,
    /// How it ended.
    pub outcome: AttemptOutcome,
    pub exit_code: Option<i32>,
    pub seconds: f64,
    /// Volumes whose masks this attempt wrote.
    pub written: Vec<String>,
    /// The volume in flight when it stopped, when it stopped early.
    pub stopped_at: Option<String>,
    pub stdout_log: String,
    pub stderr_log: String,
}

/// Across the cohort, for one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClassSummary {
    /// Volumes in which the class is present.
    pub volumes_present: usize,
    pub min_ml: f64,
    pub mean_ml: f64,
    pub max_ml: f64,
}

/// A failed or refused volume, with the reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Failure {
    pub id: String,
    pub input: String,
    pub status: VolumeStatus,
    pub reason: String,
}

/// `cohort.json`: the result of `run_batch`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Cohort {
    /// `ctmr-skill.cohort/1`.
    pub schema_version: String,
    pub run_id: String,
    /// `succeeded` when every volume succeeded or was reused; `partial` when some did;
    /// `failed` when none did; `cancelled` / `timed_out` when the batch was stopped.
    pub status: CohortStatus,
    pub summary: String,
    pub output_root: String,
    pub modality: String,
    pub label_prompts: Option<Vec<u32>>,
    pub upstream_root: String,
    pub created_at: String,
    pub finished_at: String,
    pub seconds: f64,
    pub counts: BTreeMap<String, usize>,
    pub volumes: Vec<VolumeRow>,
    pub attempts: Vec<Attempt>,
    /// Class name → min/mean/max volume across the volumes where it is present.
    pub classes: BTreeMap<String, ClassSummary>,
    pub failures: Vec<Failure>,
    /// The CSV table (one row per volume, one column per class, mL).
    pub volumes_csv: String,
    pub intended_use_disclaimer: String,
    /// The Slurm job array the volumes ran in (`executor: slurm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm: Option<crate::cluster::ArrayRecord>,
}

/// The row of a volume that has evidence.
pub(crate) fn row_from_evidence(
    id: &str,
    evidence: &Evidence,
    status: VolumeStatus,
    attempt: Option<usize>,
    reason: Option<String>,
) -> VolumeRow {
    VolumeRow {
        id: id.to_string(),
        // What the caller named: the volume, or the DICOM series it was converted from.
        input: match &evidence.input.dicom {
            Some(dicom) => dicom.source_path.clone(),
            None => evidence.input.path.clone(),
        },
        input_sha256: evidence.input.sha256.clone(),
        pack_dir: Some(evidence.pack_dir.clone()),
        status,
        reason: reason.or_else(|| (!status.ok()).then(|| evidence.summary.clone())),
        attempt,
        mask: evidence.output.path.clone(),
        class_volumes_ml: if status.ok() {
            evidence.output.class_volumes_ml.clone()
        } else {
            BTreeMap::new()
        },
    }
}

/// Per-class statistics over the volumes that succeeded or were reused.
pub(crate) fn class_summaries(rows: &[VolumeRow]) -> BTreeMap<String, ClassSummary> {
    let mut values: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for row in rows.iter().filter(|r| r.status.ok()) {
        for (name, ml) in &row.class_volumes_ml {
            values.entry(name).or_default().push(*ml);
        }
    }
    values
        .into_iter()
        .map(|(name, v)| {
            let n = v.len();
            let round = |x: f64| (x * 1e4).round() / 1e4;
            (
                name.to_string(),
                ClassSummary {
                    volumes_present: n,
                    min_ml: round(v.iter().copied().fold(f64::INFINITY, f64::min)),
                    mean_ml: round(v.iter().sum::<f64>() / n as f64),
                    max_ml: round(v.iter().copied().fold(f64::NEG_INFINITY, f64::max)),
                },
            )
        })
        .collect()
}

/// The CSV: `id,input,status,reason,<class>_ml...`; empty cells where a class is absent.
pub(crate) fn volumes_csv(rows: &[VolumeRow]) -> String {
    let classes: BTreeSet<&str> = rows
        .iter()
        .flat_map(|r| r.class_volumes_ml.keys().map(String::as_str))
        .collect();
    let mut out = String::from("id,input,status,reason");
    for class in &classes {
        out.push(',');
        out.push_str(&csv_field(&format!("{class}_ml")));
    }
    out.push('\n');
    for row in rows {
        let status = serde_json::to_value(row.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        out.push_str(&format!(
            "{},{},{},{}",
            csv_field(&row.id),
            csv_field(&row.input),
            status,
            csv_field(row.reason.as_deref().unwrap_or(""))
        ));
        for class in &classes {
            out.push(',');
            if let Some(ml) = row.class_volumes_ml.get(*class) {
                out.push_str(&ml.to_string());
            }
        }
        out.push('\n');
    }
    out
}

/// RFC 4180 quoting, only where needed.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Status and counts of the cohort from its rows.
pub fn overall(
    rows: &[VolumeRow],
    stopped: Option<VolumeStatus>,
) -> (CohortStatus, BTreeMap<String, usize>) {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for row in rows {
        *counts.entry(row.status.as_str().to_string()).or_default() += 1;
    }
    counts.insert("total".into(), rows.len());
    let ok = rows.iter().filter(|r| r.status.ok()).count();
    let status = match stopped {
        Some(VolumeStatus::Cancelled) => CohortStatus::Cancelled,
        Some(VolumeStatus::TimedOut) => CohortStatus::TimedOut,
        _ if ok == rows.len() => CohortStatus::Succeeded,
        _ if ok > 0 => CohortStatus::Partial,
        _ => CohortStatus::Failed,
    };
    (status, counts)
}

/// The JSON Schema of [`Cohort`] (2020-12, inlined, no Rust number formats).
pub(crate) fn cohort_schema() -> serde_json::Value {
    crate::json_schema::schema_of::<Cohort>()
}

/// A test that the words the code uses are the words serde writes.
#[cfg(test)]
mod words {
    use super::*;

    #[test]
    fn as_str_is_the_serialised_word() {
        for s in [
            VolumeStatus::Succeeded,
            VolumeStatus::Reused,
            VolumeStatus::UpstreamFailed,
            VolumeStatus::TimedOut,
            VolumeStatus::Cancelled,
            VolumeStatus::Refused,
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for s in [
            CohortStatus::Succeeded,
            CohortStatus::Partial,
            CohortStatus::Failed,
            CohortStatus::Cancelled,
            CohortStatus::TimedOut,
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }
}

/// Write `cohort.json` and `cohort_volumes.csv` atomically.
pub fn write(dir: &Path, cohort: &Cohort) -> std::io::Result<()> {
    crate::atomic::write(
        &dir.join("cohort_volumes.csv"),
        cohort.volumes_csv.as_bytes(),
    )?;
    crate::atomic::write_json(&dir.join("cohort.json"), cohort)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, status: VolumeStatus, classes: &[(&str, f64)]) -> VolumeRow {
        VolumeRow {
            id: id.into(),
            input: format!("/data/{id}.nii.gz"),
            input_sha256: None,
            pack_dir: None,
            status,
            reason: (!status.ok()).then(|| "no mask, \"in flight\"".to_string()),
            attempt: Some(1),
            mask: None,
            class_volumes_ml: classes.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        }
    }

    #[test]
    fn table_and_statistics() {
        let rows = vec![
            row(
                "a",
                VolumeStatus::Succeeded,
                &[("liver", 10.0), ("spleen", 2.0)],
            ),
            row("b", VolumeStatus::Reused, &[("liver", 20.0)]),
            row("c", VolumeStatus::UpstreamFailed, &[]),
        ];
        let csv = volumes_csv(&rows);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], "id,input,status,reason,liver_ml,spleen_ml");
        assert_eq!(lines[1], "a,/data/a.nii.gz,succeeded,,10,2");
        assert_eq!(lines[2], "b,/data/b.nii.gz,reused,,20,");
        assert_eq!(
            lines[3],
            "c,/data/c.nii.gz,upstream_failed,\"no mask, \"\"in flight\"\"\",,"
        );
        let stats = class_summaries(&rows);
        assert_eq!(stats["liver"].volumes_present, 2);
        assert_eq!(stats["liver"].mean_ml, 15.0);
        assert_eq!(stats["liver"].min_ml, 10.0);
        assert_eq!(stats["spleen"].max_ml, 2.0);
        let (status, counts) = overall(&rows, None);
        assert_eq!(status, CohortStatus::Partial);
        assert_eq!(counts["total"], 3);
        assert_eq!(counts["upstream_failed"], 1);
        assert_eq!(overall(&rows[..2], None).0, CohortStatus::Succeeded);
        assert_eq!(overall(&rows[2..], None).0, CohortStatus::Failed);
        assert_eq!(
            overall(&rows, Some(VolumeStatus::Cancelled)).0,
            CohortStatus::Cancelled
        );
    }
}
