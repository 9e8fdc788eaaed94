//! Command-line interface: parse once into a typed command, dispatch, and map every
//! outcome to a documented exit code. This is the one choke point where errors meet
//! the user.
//!
//! Exit codes:
//! - 0: success (`verify`: the verdict is pass)
//! - 1: an internal or I/O error, including a result that cannot be written to stdout
//!   (a full disk; see `out`) (`verify`: the verdict is fail)
//! - 2: usage error, or a gate refused the arguments (nothing ran)
//! - 3: the upstream run failed (the evidence is still written)
//! - 4: the upstream run timed out (the evidence is still written)
//! - 5: the run was cancelled (the evidence is still written)

pub mod commands;
mod out;
pub mod progress_bar;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use serde_json::{json, Map, Value};

use crate::config::Config;
pub use crate::tools::run_script::argv::{KnobArgs, RunArgs};
use progress_bar::ProgressMode;

/// Run NV-Segment-CTMR through its documented MONAI entry point and return verifiable
/// evidence. Research and benchmarking only: not for clinical use.
#[derive(Debug, Parser)]
#[command(name = "ctmr-skill", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Python interpreter for the upstream bundle (default: $CTMR_SKILL_PYTHON, then
    /// ./.venv/bin/python, then the .venv beside the binary, then python3).
    #[arg(long, global = true, value_name = "PATH")]
    pub python: Option<PathBuf>,
    /// Progress of run and run-batch on stderr: auto (a bar redrawn in place when
    /// stderr is a terminal, plain lines otherwise), bar, plain, or none.
    #[arg(long, global = true, value_enum, value_name = "MODE", default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the tools over MCP on stdio (JSON-RPC 2.0, one message per line).
    Serve(ServeArgs),
    /// Run the upstream bundle on one volume; evidence JSON on stdout, pack in --output-dir.
    Run(RunArgs),
    /// Run the upstream's batch config once over a cohort; one evidence pack per volume
    /// and cohort.json / cohort_volumes.csv in --output-root (resumable).
    RunBatch(RunBatchArgs),
    /// Statistics and geometry of a label map (one streamed pass).
    Inspect(InspectArgs),
    /// List the upstream label table, or resolve names to ids.
    Labels(LabelsArgs),
    /// Draw a label map (over its image) as a PNG: axial, coronal and sagittal planes
    /// through each structure's centroid. The picture's description as JSON on stdout.
    Render(RenderArgs),
    /// Verify an evidence pack with ct_segmentation_quality_v1 (exit 0 pass, 1 fail, 2 usage).
    Verify(VerifyArgs),
    /// Write the JSON Schemas generated from skill_manifest.yaml (or check they are current).
    Schema(SchemaArgs),
    /// Report the Python runtime, MONAI, torch, CUDA, the bundle root and the model file.
    Doctor(DoctorArgs),
}

/// `ctmr-skill run-batch`: the flags of the `run_batch` tool (no defaults of their
/// own: the manifest's apply, and `--help` shows them, see [`command`]).
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

/// `ctmr-skill render`: the arguments of the `render_overlay` tool.
#[derive(Debug, Clone, Args)]
pub struct RenderArgs {
    /// The label map (.nii or .nii.gz).
    pub mask: PathBuf,
    /// The image the mask was segmented from (same voxel grid), drawn under it.
    #[arg(long)]
    pub image: Option<PathBuf>,
    /// Class names or ids to show, comma-separated (default: the largest, up to 6).
    #[arg(long, value_delimiter = ',')]
    pub structures: Vec<String>,
    /// auto | soft_tissue | bone | lung | percentile.
    #[arg(long, default_value = "auto")]
    pub window: String,
    /// Where to write the PNG.
    #[arg(long, short = 'o', default_value = "overlay.png")]
    pub out: PathBuf,
    /// Bundle whose label table names the classes (default: as for run; else built in).
    #[arg(long)]
    pub upstream_root: Option<PathBuf>,
}

/// `ctmr-skill serve`: what the operator decides for every client.
#[derive(Debug, Clone, Args, Default)]
pub struct ServeArgs {
    /// A bundle root clients may use (repeatable): `DIR` or `NAME=DIR`. The first is
    /// the default. Clients choose among these (and $NV_SEGMENT_CTMR_ROOT as `env`,
    /// the workbench root as `default`) by name or path, and cannot name another.
    #[arg(long = "bundle-root", value_name = "[NAME=]DIR")]
    pub bundle_roots: Vec<String>,
    /// Refuse to run the upstream where the Landlock sandbox cannot be applied
    /// (default: run unconfined and say so in the evidence).
    #[arg(long)]
    pub require_sandbox: bool,
    /// Run the documented command for every call instead of keeping a warm worker
    /// (a Python process with the model loaded) per bundle and device.
    #[arg(long, conflicts_with = "warm")]
    pub no_warm: bool,
    /// Start the default bundle's warm worker now (Python, torch, MONAI imported, CUDA
    /// initialised), not on the first call; the model itself loads on the first call.
    #[arg(long)]
    pub warm: bool,
    /// An sbatch flag clients may add to a Slurm cohort in `slurm_flags`, e.g.
    /// `--constraint` (repeatable; adds to CTMR_SKILL_SLURM_ALLOW_FLAGS).
    #[arg(
        long = "slurm-allow-flag",
        value_name = "--FLAG",
        allow_hyphen_values = true
    )]
    pub slurm_allow_flags: Vec<String>,
}

impl RunBatchArgs {
    /// The flags as `run_batch` tool arguments (absent flags stay absent so the
    /// manifest's defaults apply).
    pub fn to_arguments(&self) -> Map<String, Value> {
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

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The label map.
    pub mask: PathBuf,
    /// An image (NIfTI, or a DICOM series: directory or .zip): every geometry difference
    /// from the label map, and intensity statistics per label when it is on the label
    /// map's voxel grid (same shape).
    #[arg(long)]
    pub reference: Option<PathBuf>,
    /// A reference label map: per-label Dice and IoU.
    #[arg(long)]
    pub ground_truth: Option<PathBuf>,
    /// Bundle root whose label table names the ids.
    #[arg(long, conflicts_with = "labels")]
    pub upstream_root: Option<PathBuf>,
    /// A labels.json sidecar naming the ids.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Count 26-connected components per label.
    #[arg(long)]
    pub components: bool,
    /// JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

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

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Repository root to write schemas/ into.
    #[arg(long, default_value = ".")]
    pub root: PathBuf,
    /// Only check that the files on disk are current (exit 1 when they drifted).
    #[arg(long)]
    pub check: bool,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[arg(long)]
    pub upstream_root: Option<PathBuf>,
    /// JSON on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

/// A subcommand whose stdout is closed early (`ctmr-skill inspect ... | head`) ends
/// quietly, as command-line tools do, instead of panicking on the failed write. (The
/// server keeps Rust's default: a closed stdout is an error it handles, ending the
/// session and its children in order.)
fn quiet_on_broken_pipe() {
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// The command line, with every value flag of `run` and `run-batch` defaulting to its
/// argument's default in the manifest: the clap structs state none of their own, so
/// the manifest is the one place a default lives, and `--help` shows it.
pub fn command() -> clap::Command {
    let mut cmd = Cli::command();
    let Ok(manifest) = crate::manifest::embedded() else {
        return cmd; // a build defect the manifest's tests catch; the tools refuse later
    };
    use crate::tools::{run_batch::RunBatch, run_script::RunScript, Tool};
    for (sub, tool) in [("run", RunScript::NAME), ("run-batch", RunBatch::NAME)] {
        if let Some(decl) = manifest.tool(tool) {
            cmd = cmd.mut_subcommand(sub, |c| manifest_defaults(c, decl));
        }
    }
    cmd
}

/// `cmd` with each flag that takes a value defaulting to the manifest's default for
/// the argument of the same name (switches stay off unless given).
fn manifest_defaults(mut cmd: clap::Command, decl: &crate::manifest::ToolDecl) -> clap::Command {
    for arg in &decl.arguments {
        let takes_value = cmd
            .get_arguments()
            .any(|a| a.get_id() == arg.name.as_str() && a.get_action().takes_values());
        let Some(default) = arg.default_json().filter(|_| takes_value) else {
            continue;
        };
        let text = match default {
            Value::String(s) => s,
            other => other.to_string(),
        };
        // clap keeps defaults as `&'static str`; a few short strings, once per process.
        let text: &'static str = Box::leak(text.into_boxed_str());
        cmd = cmd.mut_arg(arg.name.as_str(), |a| a.default_value(text));
    }
    cmd
}

/// Parse the process arguments, run, and map the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = match command()
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m))
    {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return if err.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    if !matches!(cli.command, Command::Serve(_)) {
        quiet_on_broken_pipe();
    }
    let config = match Config::from_env() {
        Ok(mut config) => {
            if let Some(python) = &cli.python {
                config.python = Some(config.absolute(python));
            }
            config
        }
        Err(err) => {
            eprintln!("ctmr-skill: {err}");
            return ExitCode::from(2);
        }
    };
    let code = commands::dispatch(cli.command, config, cli.progress);
    ExitCode::from(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::Modality;
    use crate::manifest::ToolDecl;
    use crate::tools::run_batch::request::parse_for_tests as from_tool_arguments;
    use crate::upstream::DeviceRequest;
    use std::time::Duration;

    fn world() -> (tempfile::TempDir, Config, ToolDecl) {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::new(dir.path().to_path_buf(), vec![], None, None, 1);
        let tool = crate::manifest::embedded()
            .unwrap()
            .tool("run_batch")
            .unwrap()
            .clone();
        (dir, config, tool)
    }

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

    #[test]
    fn the_command_line_takes_its_defaults_from_the_manifest() {
        let (_d, config, tool) = world();
        let parse = |argv: &[&str]| {
            let matches = command().try_get_matches_from(argv).unwrap();
            Cli::from_arg_matches(&matches).unwrap().command
        };
        let Command::RunBatch(batch) = parse(&["ctmr-skill", "run-batch", "/a.nii.gz", "-o", "/o"])
        else {
            panic!("not run-batch");
        };
        assert_eq!(batch.modality.as_deref(), Some("CT_BODY"));
        assert_eq!(batch.device.as_deref(), Some("auto"));
        assert_eq!(batch.suffix.as_deref(), Some(".nii.gz"));
        let r = from_tool_arguments(&tool, &batch.to_arguments(), &config).unwrap();
        assert_eq!(r.settings.timeout, Duration::from_secs(3600));
        let Command::Run(run) = parse(&["ctmr-skill", "run", "/a.nii.gz"]) else {
            panic!("not run");
        };
        assert_eq!(run.modality.as_deref(), Some("CT_BODY"));
        assert_eq!(run.device.as_deref(), Some("auto"));
        assert_eq!(run.timeout_seconds, Some(3600.0));
        // The structs alone state none; --help shows the manifest's.
        let bare = <RunArgs as clap::Args>::augment_args(clap::Command::new("run"));
        let mut valued = bare
            .get_arguments()
            .filter(|a| a.get_action().takes_values());
        assert!(valued.all(|a| a.get_default_values().is_empty()));
        let help = command()
            .find_subcommand_mut("run")
            .unwrap()
            .render_help()
            .to_string();
        assert!(
            help.contains("[default: CT_BODY]") && help.contains("[default: 3600]"),
            "{help}"
        );
    }
}
