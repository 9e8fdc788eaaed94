//! Benchmark helper for `scripts/bench-inspect.sh`: runs `inspect()` and prints the
//! report (JSON by default, `--table` for the text table), like `ctmr-skill inspect`
//! (which the script times when it answers); also the only command-line face of
//! `compare_label_maps` (`--compare`) and of the bare reader (`--read-only`).
//!
//! Usage: inspect_bench MASK [--components] [--reference IMG] [--ground-truth GT]
//!        [--tolerance T] [--table | --json]
//!        inspect_bench --compare PRED GT
//!        inspect_bench --read-only MASK   (only stream the slices: the reader's share)

use std::path::PathBuf;
use std::process::ExitCode;

use ctmr_skill::inspect::{compare_label_maps, inspect, InspectOptions};

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("inspect_bench: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(args: Vec<String>) -> Result<String, String> {
    let mut opts = InspectOptions::default();
    let mut mask: Option<PathBuf> = None;
    let mut table = false;
    let mut compare = false;
    let mut read_only = false;
    let mut extra: Vec<PathBuf> = Vec::new();
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--components" => opts.components = true,
            "--table" => table = true,
            "--json" => table = false,
            "--compare" => compare = true,
            "--read-only" => read_only = true,
            "--reference" => opts.reference = Some(value("--reference")?.into()),
            "--ground-truth" => opts.ground_truth = Some(value("--ground-truth")?.into()),
            "--tolerance" => {
                let v = value("--tolerance")?;
                opts.geometry_tolerance = v.parse().map_err(|_| format!("bad --tolerance {v}"))?;
            }
            flag if flag.starts_with("--") => return Err(format!("unknown flag {flag}")),
            path if mask.is_none() => mask = Some(path.into()),
            path => extra.push(path.into()),
        }
    }
    let mask = mask.ok_or("usage: inspect_bench MASK [--components] [--reference IMG] [--ground-truth GT] [--table] | --compare PRED GT")?;
    if read_only {
        return read_all(&mask);
    }
    if compare {
        let gt = extra.first().ok_or("--compare needs PRED and GT")?;
        let c = compare_label_maps(&mask, gt).map_err(|e| e.to_string())?;
        return serde_json::to_string_pretty(&c).map_err(|e| e.to_string());
    }
    let report = inspect(&mask, &opts).map_err(|e| e.to_string())?;
    if table {
        Ok(report.render_table())
    } else {
        serde_json::to_string_pretty(&report).map_err(|e| e.to_string())
    }
}

/// Stream every slice and do nothing else: the NIfTI reader's share of a pass.
fn read_all(path: &std::path::Path) -> Result<String, String> {
    let mut reader = ctmr_skill::nifti::VolumeReader::open(path).map_err(|e| e.to_string())?;
    let mut slice = Vec::new();
    let mut sum = 0.0;
    while reader.read_slice(&mut slice).map_err(|e| e.to_string())? {
        sum += slice[0];
    }
    Ok(format!(
        "{{\"read_only\": true, \"first_voxel_sum\": {sum}}}"
    ))
}
