//! Submitting the array: the pending volumes cut into shards, their inputs lists,
//! the job script and the task command, then one `sbatch`. Apart from following and
//! summing up because it is the only part that writes files and builds commands.

use std::path::{Path, PathBuf};

use super::options::SlurmOptions;
use crate::cluster::{self, ScriptParts};
use crate::tools::run_batch::request::BatchRunRequest;
use crate::tools::run_batch::{plan, Entry, RunBatch};
use crate::tools::run_script::run::{self as single, StartFailure};

/// One shard: a task id and the entries it runs.
pub(super) struct Shard {
    pub(super) task_id: u32,
    pub(super) members: Vec<usize>,
}

/// What the submission decided, for following and summing up.
pub(super) struct Submitted {
    pub(super) job_id: String,
    pub(super) dir: PathBuf,
    pub(super) sbatch: Vec<String>,
    pub(super) script: PathBuf,
    pub(super) script_text: String,
    pub(super) command: Vec<String>,
    pub(super) shards: Vec<Shard>,
}

/// Shards, inputs lists, the script; then `sbatch`.
pub(super) async fn submit(
    batch: &RunBatch,
    entries: &[Entry],
    pending: &[usize],
    options: &SlurmOptions,
    request: &BatchRunRequest,
    run_id: &str,
) -> Result<Submitted, String> {
    let config = &batch.config;
    let exe = config.exe.clone().ok_or(
        "the Slurm executor needs this program's own path (to run it in each task), and it is unknown",
    )?;
    let python = single::find_python(config).map_err(|StartFailure(m)| m)?;
    let dir = request.output_root.join(".slurm").join(run_id);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let shards: Vec<Shard> = pending
        .chunks(options.shard_size.max(1))
        .enumerate()
        .map(|(k, c)| Shard {
            task_id: k as u32,
            members: c.to_vec(),
        })
        .collect();
    for shard in &shards {
        write_shard(&dir, shard, entries).map_err(|e| format!("cannot write a shard list: {e}"))?;
    }
    let command = task_command(&exe, &python.path, request, &entries[pending[0]]);
    let parts = ScriptParts {
        env: script_env(config, &entries[pending[0]].gated.root),
        prologue: config.slurm_prologue.clone(),
        shard_dir: dir.clone(),
        command: command.clone(),
    };
    let script_text = cluster::job_script(&parts);
    let script = dir.join("job.sh");
    crate::atomic::write(&script, script_text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", script.display()))?;
    let mut sbatch = vec![
        format!("--array={}", options.array_spec(shards.len())),
        format!("--job-name=ctmr-{}", short(run_id)),
        format!("--output={}", dir.join("task-%a.log").display()),
        format!("--chdir={}", dir.display()),
    ];
    sbatch.extend(options.sbatch_args());
    let job_id = cluster::sbatch(&sbatch, &script)
        .await
        .map_err(|e| format!("the Slurm array could not be submitted: {e}"))?;
    let submission = serde_json::json!({
        "job_id": job_id, "run_id": run_id, "sbatch": sbatch,
        "shards": shards.iter().map(|s| s.members.iter().map(|i| entries[*i].volume.id.clone()).collect::<Vec<_>>()).collect::<Vec<_>>(),
    });
    let _ = crate::atomic::write_json(&dir.join("submission.json"), &submission);
    tracing::info!(
        "run_batch {run_id}: Slurm array job {job_id}, {} task(s)",
        shards.len()
    );
    Ok(Submitted {
        job_id,
        dir,
        sbatch,
        script,
        script_text,
        command,
        shards,
    })
}

fn short(run_id: &str) -> String {
    run_id.chars().take(12).collect()
}

/// `shard-<K>.inputs`: the shard's input paths, NUL-separated. An input goes by its
/// own path when the task's `run-batch` gives it the same id as the cohort did;
/// otherwise (same stems across shards) by a link `inputs/<id>.nii[.gz]` to it.
fn write_shard(dir: &Path, shard: &Shard, entries: &[Entry]) -> std::io::Result<()> {
    let originals: Vec<PathBuf> = shard
        .members
        .iter()
        .map(|i| entries[*i].volume.input.clone())
        .collect();
    let same_ids = plan::assign_ids(&originals)
        .iter()
        .zip(&shard.members)
        .all(|(v, i)| v.id == entries[*i].volume.id);
    let mut list = Vec::new();
    for (i, original) in shard.members.iter().zip(&originals) {
        let path = if same_ids {
            original.clone()
        } else {
            let links = dir.join("inputs");
            std::fs::create_dir_all(&links)?;
            let link = links.join(entries[*i].volume.staged_name());
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(original, &link)?;
            link
        };
        list.extend_from_slice(path.as_os_str().as_encoded_bytes());
        list.push(0);
    }
    crate::atomic::write(&dir.join(format!("shard-{}.inputs", shard.task_id)), &list)
}

/// `ctmr-skill --python PY --progress plain run-batch ...` with the request's settings
/// (prompts already resolved to ids), without inputs.
fn task_command(
    exe: &Path,
    python: &Path,
    request: &BatchRunRequest,
    first: &Entry,
) -> Vec<String> {
    let s = &request.settings;
    let mut c: Vec<String> = vec![
        exe.display().to_string(),
        "--python".into(),
        python.display().to_string(),
        "--progress".into(),
        "plain".into(),
        "run-batch".into(),
        "--output-root".into(),
        request.output_root.display().to_string(),
        "--modality".into(),
        s.modality.as_str().into(),
        "--device".into(),
        s.device.as_str().into(),
        "--upstream-root".into(),
        first.gated.root.display().to_string(),
        "--timeout-seconds".into(),
        s.timeout.as_secs_f64().to_string(),
    ];
    let mut flag = |name: &str, value: Option<String>| {
        if let Some(v) = value {
            c.push(format!("--{name}"));
            c.push(v);
        }
    };
    let join = |v: &[u32]| v.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
    let prompts = first.gated.prompts.clone().filter(|p| !p.is_empty());
    flag("label-prompts", prompts.as_deref().map(join));
    flag("patch-size", s.patch_size.as_deref().map(join));
    flag("sw-batch-size", s.sw_batch_size.map(|n| n.to_string()));
    for (on, name) in [
        (s.preprocessed_brain_input, "--preprocessed-brain-input"),
        (s.cpu_postprocessing, "--cpu-postprocessing"),
        (s.tensorrt, "--tensorrt"),
    ] {
        if on {
            c.push(name.into());
        }
    }
    c
}

/// The operator configuration every task starts with.
fn script_env(config: &crate::config::Config, root: &Path) -> Vec<(String, String)> {
    let dirs: Vec<String> = config
        .allowed_dirs
        .iter()
        .map(|d| d.display().to_string())
        .collect();
    let mut env = vec![
        (
            crate::config::RUNS_DIR_ENV.to_string(),
            config.runs_dir.display().to_string(),
        ),
        (crate::config::ALLOWED_DIRS_ENV.to_string(), dirs.join(":")),
        (
            crate::config::BUNDLE_ROOTS_ENV.to_string(),
            root.display().to_string(),
        ),
    ];
    if config.require_sandbox {
        env.push((crate::config::REQUIRE_SANDBOX_ENV.to_string(), "1".into()));
    }
    env
}
