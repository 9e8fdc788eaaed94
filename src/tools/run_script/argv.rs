//! The reference skill's command line (`scripts/run_ctmr.py IMAGE --modality M
//! --output-dir DIR ...`): the grammar of `run_script`'s argv form, owned by the tool.
//! `ctmr-skill run` reuses it, so the CLI and the argv form cannot drift apart.

use std::path::PathBuf;

use clap::Args;
use serde_json::{json, Map, Value};

/// The flags of the reference `scripts/run_ctmr.py`; `run_script`'s argv form parses
/// its `args` with this same grammar. No flag states a default of its own: an absent
/// flag stays absent and the manifest's default applies (`ctmr-skill run --help` shows
/// the manifest's, see `cli::command`).
#[derive(Debug, Clone, Args, Default)]
pub struct RunArgs {
    /// The CT or MRI NIfTI volume, or a DICOM series (directory or .zip).
    #[arg(value_name = "IMAGE")]
    pub input: PathBuf,
    /// DICOM input with several series: the SeriesInstanceUID to segment.
    #[arg(long)]
    pub series_uid: Option<String>,
    /// CT_BODY | MRI_BODY | MRI_BRAIN.
    #[arg(long)]
    pub modality: Option<String>,
    /// Directory for the mask and the evidence pack.
    #[arg(long, short = 'o')]
    pub output_dir: Option<PathBuf>,
    /// Comma-separated class ids, e.g. 3,14.
    #[arg(long, value_delimiter = ',')]
    pub label_prompts: Option<Vec<u32>>,
    /// Class names resolved from the label table (repeatable), e.g. --structure liver.
    #[arg(long = "structure")]
    pub structures: Vec<String>,
    /// Reference label map, recorded for the paired verifier.
    #[arg(long)]
    pub ground_truth: Option<PathBuf>,
    /// auto | cuda | cpu.
    #[arg(long)]
    pub device: Option<String>,
    /// Bundle root (default: $NV_SEGMENT_CTMR_ROOT, then .workbench_data/...).
    #[arg(long)]
    pub upstream_root: Option<PathBuf>,
    /// Wall-clock limit for the upstream run, in seconds.
    #[arg(long)]
    pub timeout_seconds: Option<f64>,
    /// Acknowledge that an MRI_BRAIN input is already preprocessed.
    #[arg(long)]
    pub preprocessed_brain_input: bool,
    /// After a successful run, run the paired verifier on the pack (trust_summary.json).
    #[arg(long)]
    pub verify: bool,
    #[command(flatten)]
    pub knobs: KnobArgs,
}

/// The upstream's documented memory/speed switches, the same for `run` and `run-batch`.
#[derive(Debug, Clone, Args, Default)]
pub struct KnobArgs {
    /// Sliding-window patch size, e.g. 64,64,64.
    #[arg(long, value_delimiter = ',')]
    pub patch_size: Option<Vec<u32>>,
    /// Sliding-window batch size.
    #[arg(long)]
    pub sw_batch_size: Option<u32>,
    /// Run the postprocessing on the CPU (less GPU memory; try after a smaller --patch-size).
    #[arg(long)]
    pub cpu_postprocessing: bool,
    /// Use the bundle's TensorRT config (configs/inference_trt.json; NVIDIA GPU only).
    #[arg(long)]
    pub tensorrt: bool,
}

impl KnobArgs {
    /// The switches that are set, as tool arguments (absent ones stay absent so the
    /// manifest's defaults apply).
    pub(crate) fn insert_into(&self, map: &mut Map<String, Value>) {
        if let Some(patch) = &self.patch_size {
            map.insert("patch_size".into(), json!(patch));
        }
        if let Some(n) = self.sw_batch_size {
            map.insert("sw_batch_size".into(), json!(n));
        }
        if self.cpu_postprocessing {
            map.insert("cpu_postprocessing".into(), json!(true));
        }
        if self.tensorrt {
            map.insert("tensorrt".into(), json!(true));
        }
    }
}

impl RunArgs {
    /// The grammar's result as structured `run_script` arguments (absent flags stay
    /// absent, so the manifest's defaults apply uniformly).
    pub(crate) fn to_arguments(&self) -> Map<String, Value> {
        let mut map = Map::new();
        let path = |p: &PathBuf| json!(p.to_string_lossy());
        map.insert("input".into(), path(&self.input));
        if let Some(uid) = &self.series_uid {
            map.insert("series_uid".into(), json!(uid));
        }
        if let Some(modality) = &self.modality {
            map.insert("modality".into(), json!(modality));
        }
        if let Some(dir) = &self.output_dir {
            map.insert("output_dir".into(), path(dir));
        }
        if let Some(prompts) = &self.label_prompts {
            map.insert("label_prompts".into(), json!(prompts));
        }
        if !self.structures.is_empty() {
            map.insert("structures".into(), json!(self.structures));
        }
        if let Some(gt) = &self.ground_truth {
            map.insert("ground_truth".into(), path(gt));
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
        map
    }
}
