//! `ctmr-skill verify`: the paired verifier on one evidence pack. Its exit code is the
//! verdict (0 pass, 1 fail) or 2 when no verdict can be formed; the report goes to
//! stdout with sorted keys, and a usage error also as `{"error": ...}` there, so a
//! script reading stdout always gets JSON.

use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::{json, Value};

use super::error::CliError;
use super::exit_codes::ExitCode;
use super::out;
use crate::config::Config;
use crate::verifier::{LabelSource, VerifierReport, VerifyOptions, VerifyUsageError};

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The evidence pack directory (holds output.json).
    pub pack_dir: PathBuf,
    /// Also draw the failing classes (volume bounds, fragments, unrequested) over the
    /// input as a PNG at this path (the largest classes when none fails).
    #[arg(long, value_name = "PNG")]
    pub render: Option<PathBuf>,
    /// Label table naming the ids: a labels.json sidecar, or an NV-Segment-CTMR bundle
    /// root (a directory with configs/). Default: the table the pack points at.
    #[arg(long, value_name = "PATH")]
    pub labels: Option<PathBuf>,
    /// Anatomy bounds JSON to check the classes against instead of the embedded
    /// verifiers/ct_segmentation_quality_v1/anatomy_bounds.json (same format).
    #[arg(long, value_name = "PATH")]
    pub bounds: Option<PathBuf>,
    /// Tolerance of the normalised surface Dice against a ground truth, in mm: a
    /// finite number greater than 0 [default: 1].
    #[arg(long, value_name = "MM", allow_negative_numbers = true, value_parser = parse_surface_tolerance)]
    pub surface_tolerance: Option<f64>,
}

/// `--surface-tolerance`: millimetres, finite and greater than 0 (at 0 the surface
/// Dice counts only coincident surfaces, which says nothing).
fn parse_surface_tolerance(text: &str) -> Result<f64, String> {
    let fix = "give a finite number of millimetres greater than 0, e.g. --surface-tolerance 1.0";
    match text.trim().parse::<f64>() {
        Ok(mm) if mm.is_finite() && mm > 0.0 => Ok(mm),
        Ok(mm) => Err(format!("{mm} mm is not a usable tolerance: {fix}")),
        Err(_) => Err(format!("{text:?} is not a number: {fix}")),
    }
}

const LABELS_FIX: &str = "pass a labels.json sidecar or an NV-Segment-CTMR bundle root";
const BOUNDS_FORMAT: &str = "verifiers/ct_segmentation_quality_v1/anatomy_bounds.json";

/// The report on stdout and the verdict; a usage error (exit 2) also as
/// `{"error": ...}` on stdout.
pub(super) fn verify(args: &VerifyArgs, config: &Config) -> Result<ExitCode, CliError> {
    let report = report(args, config).inspect_err(|e| {
        out::json(&json!({"error": e.to_string()}));
    })?;
    let value: Value = serde_json::to_value(&report).expect("report serialises");
    out::json(&value);
    eprintln!("{}", report.summary());
    if let Some(png) = &args.render {
        render_failing(&report, &config.absolute(png), config).map_err(|reason| {
            CliError::FlagFailed {
                flag: "render",
                reason,
            }
        })?;
    }
    Ok(ExitCode::verdict(report.passed()))
}

/// The verifier's report on the pack, or why none can be formed (each a usage error).
fn report(args: &VerifyArgs, config: &Config) -> Result<VerifierReport, CliError> {
    let labels = match args.labels.as_ref().map(|p| config.absolute(p)) {
        None => None,
        Some(dir) if dir.is_dir() => Some(LabelSource::Bundle(dir)),
        Some(file) if file.is_file() => Some(LabelSource::LabelsJson(file)),
        Some(missing) => {
            let reason = format!("no such file or directory ({LABELS_FIX})");
            return Err(CliError::flag_path("labels", missing, reason));
        }
    };
    let bounds_path = match args.bounds.as_ref().map(|p| config.absolute(p)) {
        Some(missing) if !missing.is_file() => {
            let reason = format!(
                "no such file (pass an anatomy bounds JSON in the format of {BOUNDS_FORMAT})"
            );
            return Err(CliError::flag_path("bounds", missing, reason));
        }
        bounds => bounds,
    };
    let options = VerifyOptions {
        labels,
        bounds_path,
        surface_tolerance_mm: args.surface_tolerance,
        cwd: Some(config.cwd.clone()),
        ..VerifyOptions::default()
    };
    crate::verifier::verify_pack(&config.absolute(&args.pack_dir), &options).map_err(|e| match e {
        e @ VerifyUsageError::Bounds(_) => CliError::flag(
            "bounds",
            format!("{e} (fix the file; {BOUNDS_FORMAT} shows the format)"),
        ),
        e @ VerifyUsageError::Labels { .. } if args.labels.is_some() => {
            CliError::flag("labels", format!("{e} ({LABELS_FIX})"))
        }
        e => CliError::Verify(e),
    })
}

/// `verify --render`: the classes the verifier failed, drawn over the pack's input.
fn render_failing(report: &VerifierReport, out: &Path, config: &Config) -> Result<(), String> {
    let mask = report
        .target
        .label_map_path
        .as_deref()
        .ok_or("the pack names no label map to draw")?;
    let failing = failing_classes(report);
    let table = crate::tools::inspect_label_map::load_table(None, config).ok();
    let options = crate::render::RenderOptions {
        structures: failing.clone(),
        ..crate::render::RenderOptions::default()
    };
    let image = report.target.input_image_path.as_deref().map(Path::new);
    let mask = Path::new(mask);
    let picture = crate::render::render_files(mask, image, table.as_ref(), &options)
        .or_else(|_| crate::render::render_files(mask, None, table.as_ref(), &options))
        .map_err(|e| e.to_string())?;
    crate::atomic::write(out, &picture.png)
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    let what = if failing.is_empty() {
        "no class failed: the largest classes".to_string()
    } else {
        format!("failing classes {failing:?}")
    };
    eprintln!("ctmr-skill verify: drew {what} in {}", out.display());
    Ok(())
}

/// Class ids the verifier failed: volume bounds, fragmentation, or present unrequested.
fn failing_classes(report: &VerifierReport) -> Vec<u32> {
    let mut ids: Vec<u32> = report
        .anatomy_plausibility
        .per_class
        .iter()
        .filter(|c| {
            [
                c.volume_bounds_ok,
                c.components_ok,
                c.largest_cc_fraction_ok,
            ]
            .contains(&Some(false))
        })
        .map(|c| c.label_id)
        .chain(report.label_set_subset.extras.iter().copied())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids.truncate(crate::render::MAX_SHOWN);
    ids
}
