//! `ctmr-skill run-batch`: its clap flags, their conversion to the `run_batch` tool's
//! arguments, and its function: the tool through the registry, with progress on
//! stderr and the cohort on stdout.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use serde_json::{json, Map, Value};

use super::call::in_process;
use super::error::CliError;
use super::exit_codes::ExitCode;
use super::out;
use super::progress::{batch_bar_label, run_interruptible, ProgressOutput};
use super::progress_bar::{ProgressMode, Units};
use crate::call::{Progress, ProgressSink};
use crate::config::Config;
use crate::manifest::Manifest;
use crate::tools::run_batch::RunBatch;
use crate::tools::run_script::argv::KnobArgs;

/// `ctmr-skill run-batch`: the flags of the `run_batch` tool (no defaults of their
/// own: the manifest's apply, and `--help` shows them, see [`super::command`]).
#[derive(Debug, Clone, Args)]
pub struct RunBatchArgs {
    /// The volumes: NIfTI files or DICOM series (directories or .zip); or use --input-dir.
    #[arg(value_name = "INPUT", required_unless_present = "input_dir")]
    pub inputs: Vec<PathBuf>,
    /// A directory searched recursively for inputs.
    #[arg(long, conflicts_with = "inputs")]
    pub input_dir: Option<PathBuf>,
    /// With --input-dir: the file-name ending that selects inputs.
    #[arg(long, requires = "input_dir")]
    pub suffix: Option<String>,
    /// CT_BODY | MRI_BODY | MRI_BRAIN.
    #[arg(long)]
    pub modality: Option<String>,
    /// Directory for the per-volume packs and the cohort summary.
    #[arg(long, short = 'o')]
    pub output_root: PathBuf,
    /// Comma-separated class ids for every volume, e.g. 3,14.
    #[arg(long, value_delimiter = ',')]
    pub label_prompts: Option<Vec<u32>>,
    /// Class names resolved from the label table (repeatable).
    #[arg(long = "structure")]
    pub structures: Vec<String>,
    /// auto | cuda | cpu.
    #[arg(long)]
    pub device: Option<String>,
    #[arg(long)]
    pub upstream_root: Option<PathBuf>,
    /// Wall-clock limit per volume, in seconds.
    #[arg(long)]
    pub timeout_seconds: Option<f64>,
    #[arg(long)]
    pub preprocessed_brain_input: bool,
    /// After the batch, run the paired verifier on every succeeded volume's pack.
    #[arg(long)]
    pub verify: bool,
    #[command(flatten)]
    pub knobs: KnobArgs,
    #[command(flatten)]
    pub slurm: Box<SlurmCliArgs>,
}

/// `run-batch --executor slurm` and its `--slurm-*` flags (the `slurm_*` arguments).
#[derive(Debug, Clone, Args, Default)]
pub struct SlurmCliArgs {
    /// local or slurm: submit the cohort as one Slurm job array.
    #[arg(long, value_name = "local|slurm")]
    pub executor: Option<String>,
    #[arg(long)]
    pub slurm_partition: Option<String>,
    /// GPUs per task (--gres=gpu:N).
    #[arg(long)]
    pub slurm_gpus_per_task: Option<u32>,
    #[arg(long)]
    pub slurm_cpus_per_task: Option<u32>,
    /// Memory per task, e.g. 16G.
    #[arg(long)]
    pub slurm_mem: Option<String>,
    /// Time limit per task, e.g. 02:00:00.
    #[arg(long)]
    pub slurm_time: Option<String>,
    #[arg(long)]
    pub slurm_account: Option<String>,
    #[arg(long)]
    pub slurm_qos: Option<String>,
    /// Array tasks running at once (--array=0-N%MAX).
    #[arg(long)]
    pub slurm_max_concurrent: Option<u32>,
    /// Volumes per array task (default 25).
    #[arg(long)]
    pub slurm_shard_size: Option<u32>,
    /// An extra sbatch flag (repeatable); must be on CTMR_SKILL_SLURM_ALLOW_FLAGS.
    #[arg(long = "slurm-flag", allow_hyphen_values = true)]
    pub slurm_flags: Vec<String>,
}

impl SlurmCliArgs {
    fn insert_into(&self, map: &mut Map<String, Value>) {
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                map.insert(k.into(), v);
            }
        };
        put("executor", self.executor.as_ref().map(|v| json!(v)));
        put(
            "slurm_partition",
            self.slurm_partition.as_ref().map(|v| json!(v)),
        );
        put(
            "slurm_gpus_per_task",
            self.slurm_gpus_per_task.map(|v| json!(v)),
        );
        put(
            "slurm_cpus_per_task",
            self.slurm_cpus_per_task.map(|v| json!(v)),
        );
        put("slurm_mem", self.slurm_mem.as_ref().map(|v| json!(v)));
        put("slurm_time", self.slurm_time.as_ref().map(|v| json!(v)));
        put(
            "slurm_account",
            self.slurm_account.as_ref().map(|v| json!(v)),
        );
        put("slurm_qos", self.slurm_qos.as_ref().map(|v| json!(v)));
        put(
            "slurm_max_concurrent",
            self.slurm_max_concurrent.map(|v| json!(v)),
        );
        put("slurm_shard_size", self.slurm_shard_size.map(|v| json!(v)));
        put(
            "slurm_flags",
            (!self.slurm_flags.is_empty()).then(|| json!(self.slurm_flags)),
        );
    }
}

impl RunBatchArgs {
    /// The flags as `run_batch` tool arguments (absent flags stay absent so the
    /// manifest's defaults apply).
    pub(crate) fn to_arguments(&self) -> Map<String, Value> {
        let mut map = Map::new();
        let path = |p: &Path| json!(p.to_string_lossy());
        if !self.inputs.is_empty() {
            map.insert(
                "inputs".into(),
                Value::Array(self.inputs.iter().map(|p| path(p)).collect()),
            );
        }
        if let Some(dir) = &self.input_dir {
            map.insert("input_dir".into(), path(dir));
        }
        if let Some(s) = &self.suffix {
            map.insert("suffix".into(), json!(s));
        }
        if let Some(modality) = &self.modality {
            map.insert("modality".into(), json!(modality));
        }
        map.insert("output_root".into(), path(&self.output_root));
        if let Some(p) = &self.label_prompts {
            map.insert("label_prompts".into(), json!(p));
        }
        if !self.structures.is_empty() {
            map.insert("structures".into(), json!(self.structures));
        }
        if let Some(device) = &self.device {
            map.insert("device".into(), json!(device));
        }
        if let Some(root) = &self.upstream_root {
            map.insert("upstream_root".into(), path(root));
        }
        if let Some(t) = self.timeout_seconds {
            map.insert("timeout_seconds".into(), json!(t));
        }
        if self.preprocessed_brain_input {
            map.insert("preprocessed_brain_input".into(), json!(true));
        }
        if self.verify {
            map.insert("verify".into(), json!(true));
        }
        self.knobs.insert_into(&mut map);
        self.slurm.insert_into(&mut map);
        map
    }
}

/// `ctmr-skill run-batch`: cohort JSON on stdout, the summary (and each failure or
/// trust verdict) on stderr; the exit code is [`ExitCode::of_call`]'s.
pub(super) fn run_batch(
    args: &RunBatchArgs,
    config: Config,
    manifest: Manifest,
    mode: ProgressMode,
) -> Result<ExitCode, CliError> {
    let tools = in_process(config, manifest)?;
    let arguments = args.to_arguments();
    let progress = ProgressOutput::new(mode, Units::Count, plain_lines(), batch_bar_label);
    let outcome = run_interruptible("run-batch", &progress, |ctx| {
        tools.call_typed::<RunBatch>(&arguments, ctx)
    });
    let code = ExitCode::of_call(&outcome);
    let output = outcome.map_err(CliError::Call)?.output;
    let cohort = &output.cohort;
    eprintln!("{}", cohort.summary);
    match &output.trust_summaries {
        Some(trust) => {
            for t in trust {
                eprintln!("  {}: {}", t.id, t.trust.summary);
            }
            out::json(&output);
        }
        None => {
            for f in &cohort.failures {
                eprintln!("  {} ({}): {}", f.id, f.status.as_str(), f.reason);
            }
            out::json(cohort);
        }
    }
    Ok(code)
}

/// Plain progress lines, `ctmr-skill run-batch: <news>`, one each time the count or
/// the volume in flight changes (status lines a log keeps, not errors).
fn plain_lines() -> ProgressSink {
    let last = std::sync::Mutex::new(String::new());
    Arc::new(move |p: Progress| {
        let Some(message) = p.message else { return };
        // Elapsed time and the estimate change every tick; the rest is the news.
        let key: Vec<&str> = message
            .split("; ")
            .filter(|part| !part.ends_with(" elapsed") && !part.ends_with(" left"))
            .collect();
        let key = key.join("; ");
        let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
        if *last != key {
            eprintln!("ctmr-skill run-batch: {message}");
            *last = key;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::Modality;
    use crate::tools::run_batch::request::parse_for_tests as from_tool_arguments;
    use crate::tools::run_batch::request::test_world as world;
    use crate::upstream::DeviceRequest;
    use std::time::Duration;

    #[test]
    fn cli_flags_map_to_the_same_request() {
        let (_d, config, tool) = world();
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            batch: RunBatchArgs,
        }
        let cli = Cli::try_parse_from([
            "run-batch",
            "/a.nii.gz",
            "--modality",
            "MRI_BODY",
            "-o",
            "/o",
            "--label-prompts",
            "3,14",
            "--device",
            "cpu",
            "--timeout-seconds",
            "60",
            "--patch-size",
            "64,64,64",
            "--cpu-postprocessing",
        ])
        .unwrap();
        let map = cli.batch.to_arguments();
        let r = from_tool_arguments(&tool, &map, &config).unwrap();
        assert_eq!(r.settings.modality, Modality::MriBody);
        assert_eq!(r.settings.device, DeviceRequest::Cpu);
        assert_eq!(r.settings.timeout, Duration::from_secs(60));
        assert_eq!(r.settings.patch_size, Some(vec![64, 64, 64]));
        assert!(r.settings.cpu_postprocessing && !r.settings.tensorrt);
    }
}
