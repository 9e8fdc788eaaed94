//! `doctor`'s checks of the Python side: the interpreter the runs would use, and
//! whether it imports MONAI and torch and sees CUDA (one probe, as a run makes it).

use std::time::Duration;

use super::Check;
use crate::config::Config;

/// The interpreter and what it imports; whether CUDA is usable.
pub(super) fn python_checks(config: &Config) -> (Vec<Check>, bool) {
    let python = crate::tools::run_script::run::find_python(config);
    let choice = match python {
        Ok(choice) => choice,
        Err(e) => {
            let fix = "run scripts/setup-python.sh or set CTMR_SKILL_PYTHON";
            return (vec![Check::new("python", false, e.0, fix)], false);
        }
    };
    let mut checks = vec![Check::new(
        "python",
        true,
        format!("{} ({})", choice.path.display(), choice.source.describe()),
        "",
    )];
    let env = crate::upstream::child_env(
        config.child_env.clone(),
        &config.cwd,
        crate::upstream::DeviceRequest::Auto,
    );
    let probe = super::super::runtime().block_on(crate::upstream::probe_environment(
        &choice.path,
        &env,
        &config.cwd,
        Duration::from_secs(120),
    ));
    let p = match probe {
        Ok(p) => p,
        Err(e) => {
            checks.push(Check::new(
                "monai",
                false,
                e.to_string(),
                "run scripts/setup-python.sh",
            ));
            return (checks, false);
        }
    };
    checks.push(Check::new("monai", true, p.monai_version.clone(), ""));
    checks.push(Check::new("torch", true, p.torch_version.clone(), ""));
    checks.push(Check::new(
        "cuda",
        p.cuda_available,
        p.cuda_device_name
            .clone()
            .unwrap_or_else(|| "not available: runs use the CPU".into()),
        "optional: a CUDA GPU with a CUDA build of torch makes runs ~100x faster",
    ));
    (checks, p.cuda_available)
}
