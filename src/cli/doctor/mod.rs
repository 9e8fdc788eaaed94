//! `ctmr-skill doctor`: each prerequisite of a run with its status and the fix, as
//! text or JSON. The checks live by what they look at: `python` (interpreter, MONAI,
//! torch, CUDA), `bundle` (root, weights, label table, optional modes), `workers`
//! (GPU metrics, the warm workers on this machine); this file holds their shape and
//! the verdict (exit 0 when every required check passed, else 1).

mod bundle;
mod python;
mod workers;

use std::path::PathBuf;

use clap::Args;
use serde_json::{json, Value};

use super::exit_codes::ExitCode;
use super::out;
use crate::config::Config;

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[arg(long)]
    pub upstream_root: Option<PathBuf>,
    /// JSON on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

/// One line of `doctor`: a prerequisite, its status and the fix.
struct Check {
    name: &'static str,
    ok: bool,
    detail: String,
    fix: &'static str,
}

impl Check {
    fn new(name: &'static str, ok: bool, detail: impl Into<String>, fix: &'static str) -> Self {
        Check {
            name,
            ok,
            detail: detail.into(),
            fix,
        }
    }

    fn optional(&self) -> bool {
        OPTIONAL_CHECKS.contains(&self.name)
    }

    fn json(&self) -> Value {
        json!({"check": self.name, "ok": self.ok, "detail": self.detail,
               "fix": if self.ok { Value::Null } else { json!(self.fix) }})
    }
}

/// What `doctor` reports without failing: runs work without them.
const OPTIONAL_CHECKS: [&str; 6] = [
    "cuda",
    "batch_config",
    "cpu_postprocessing",
    "tensorrt",
    "gpu_metrics",
    "warm_workers",
];

/// Each prerequisite with its status and the fix; the verdict as the exit code.
pub(super) fn doctor(args: &DoctorArgs, config: &Config) -> ExitCode {
    let (mut checks, cuda) = python::python_checks(config);
    checks.extend(bundle::bundle_checks(args, config, cuda));
    let listing = crate::runner::workers::listing::dir_for(&config.runs_dir);
    let found = crate::runner::workers::listing::list(&listing);
    let gpu_memory = crate::upstream::gpu::memory_by_pid().unwrap_or_default();
    checks.push(workers::gpu_metrics_check());
    checks.push(workers::workers_check(&found, &gpu_memory));
    let ok = checks.iter().all(|c| c.ok || c.optional());
    if args.json {
        let checks: Vec<Value> = checks.iter().map(Check::json).collect();
        let found: Vec<Value> = found
            .iter()
            .map(|w| workers::worker_json(w, &gpu_memory))
            .collect();
        out::json(&json!({"ok": ok, "checks": checks, "workers": found,
                           "not_for_clinical_use": crate::NOT_FOR_CLINICAL_USE}));
    } else {
        print_text(&checks);
    }
    ExitCode::verdict(ok)
}

/// One line per check (`ok`, `note` for an optional one missing, `FAIL`), the fix below.
fn print_text(checks: &[Check]) {
    for c in checks {
        let mark = match (c.ok, c.optional()) {
            (true, _) => "ok  ",
            (false, true) => "note",
            (false, false) => "FAIL",
        };
        out::line(&format!("{mark} {:<18} {}", c.name, c.detail));
        if !c.ok {
            out::line(&format!("     fix: {}", c.fix));
        }
    }
}
