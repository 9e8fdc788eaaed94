//! Errors of the upstream layer. Each names what is missing or wrong (with its path)
//! and how to fix it, because the reader is often an agent that must act on it.

use std::path::PathBuf;

use super::python::CheckedPython;
use super::root::CheckedRoot;

/// How to obtain the bundle; appended to "root not found" errors (with [`weights_hint`]).
pub(crate) fn install_hint() -> &'static str {
    "Install the upstream bundle: `git clone https://github.com/NVIDIA-Medtech/NV-Segment-CTMR` and \
`export NV_SEGMENT_CTMR_ROOT=<clone>/NV-Segment-CTMR` (the nested bundle directory), or pass the \
bundle root explicitly, or place the clone at .workbench_data/upstreams/NV-Segment-CTMR."
}

/// How to obtain weights for the bundle.
pub(crate) fn weights_hint() -> &'static str {
    "Weights: `hf download nvidia/NV-Segment-CTMR --local-dir $NV_SEGMENT_CTMR_ROOT/models/`, then move \
models/vista3d_pretrained_model/model.pt to models/model.pt; or run scripts/make-standin-weights.py \
for random stand-in weights (engineering checks only, the segmentation is meaningless)."
}

fn roots_list(checked: &[CheckedRoot]) -> String {
    if checked.is_empty() {
        return "none".into();
    }
    checked
        .iter()
        .map(|c| {
            format!(
                "{} ({}: {})",
                c.path.display(),
                c.source.describe(),
                c.status_text()
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn pythons_list(checked: &[CheckedPython]) -> String {
    if checked.is_empty() {
        return "none".into();
    }
    checked
        .iter()
        .map(|c| {
            format!(
                "{} ({}: {})",
                c.path.display(),
                c.source.describe(),
                c.rejected.as_deref().unwrap_or("accepted")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Everything that stops an upstream run before or around the child process.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No candidate directory exists at all.
    #[error(
        "NV-Segment-CTMR bundle root not found; checked: {}. {} {}",
        roots_list(checked),
        install_hint(),
        weights_hint()
    )]
    RootNotFound { checked: Vec<CheckedRoot> },

    /// A candidate directory exists but is not a bundle root.
    #[error(
        "no configs/inference.json in any checked NV-Segment-CTMR root ({}): the bundle root is the nested \
NV-Segment-CTMR directory of the clone, the one that holds configs/inference.json. {} {}",
        roots_list(checked),
        install_hint(),
        weights_hint()
    )]
    ConfigMissing { checked: Vec<CheckedRoot> },

    /// The bundle has no `models/model.pt`.
    #[error("model weights missing: {} does not exist. {}", model_path.display(), weights_hint())]
    ModelMissing { model_path: PathBuf },

    /// A path that must be passed to Python as text is not valid UTF-8.
    #[error("{what} path {} is not valid UTF-8; rename it or use a UTF-8 path", path.display())]
    NonUtf8Path { what: &'static str, path: PathBuf },

    /// A path that must be absolute (the child runs in the bundle root) is relative.
    #[error("{what} path {} must be absolute (the upstream runs with the bundle root as its working directory)", path.display())]
    NotAbsolute { what: &'static str, path: PathBuf },

    /// The modality is not one the bundle knows.
    #[error("modality '{modality}' is not supported; use one of CT_BODY, MRI_BODY, MRI_BRAIN")]
    UnsupportedModality { modality: String },

    /// An override key is not a plain config id, or would replace an argument we own.
    #[error("override key '{key}' is not allowed: {reason}")]
    BadOverride { key: String, reason: &'static str },

    /// The output directory lies inside the upstream checkout, which is never written into.
    #[error(
        "output directory {} is inside the upstream bundle root {}; choose an output directory outside the checkout",
        output_dir.display(),
        root.display()
    )]
    OutputInsideBundle { output_dir: PathBuf, root: PathBuf },

    /// The expected mask path is the input file itself: the run would overwrite its input.
    #[error(
        "the upstream would write its mask to {}, which is the input file itself; choose another output directory",
        path.display()
    )]
    MaskWouldOverwriteInput { path: PathBuf },

    /// No usable interpreter.
    #[error(
        "no Python interpreter found; checked: {}. Run scripts/setup-python.sh to create .venv, or pass \
--python / set CTMR_SKILL_PYTHON to an interpreter with monai installed",
        pythons_list(checked)
    )]
    PythonNotFound { checked: Vec<CheckedPython> },

    /// The interpreter runs but lacks the runtime (monai/torch).
    #[error(
        "{} cannot import the upstream runtime ({detail}); run scripts/setup-python.sh (or point --python / \
CTMR_SKILL_PYTHON at an interpreter with monai and torch installed)",
        python.display()
    )]
    RuntimeMissing { python: PathBuf, detail: String },

    /// The probe could not run or its answer could not be read.
    #[error(
        "environment probe with {} failed: {detail}; run scripts/setup-python.sh or check the interpreter. stderr: {stderr_tail}",
        python.display()
    )]
    ProbeFailed {
        python: PathBuf,
        detail: String,
        stderr_tail: String,
    },

    /// `device=cuda` was requested but torch sees no CUDA device under the run's environment.
    #[error(
        "device 'cuda' requested but torch {torch_version} with {} reports CUDA unavailable; use device 'cpu' or 'auto', or run on a machine with a CUDA GPU and a CUDA build of torch",
        python.display()
    )]
    CudaUnavailable {
        python: PathBuf,
        torch_version: String,
    },

    /// `tensorrt` was requested but the run would have no CUDA device.
    #[error(
        "argument 'tensorrt': TensorRT needs CUDA, but torch {torch_version} with {} reports CUDA unavailable under this run's settings; nothing ran. Fix: run on a machine with an NVIDIA GPU (device 'cuda' or 'auto'), or drop tensorrt",
        python.display()
    )]
    TensorRtNeedsCuda {
        python: PathBuf,
        torch_version: String,
    },

    /// The caller required the Landlock sandbox and it cannot be applied here.
    #[error(
        "the Landlock sandbox is required (require_sandbox) but cannot be applied: {reason}. Nothing ran. \
Fix: run on a Linux kernel with Landlock enabled (5.13 or later, 'landlock' in the lsm= boot list), or \
allow running without the sandbox"
    )]
    SandboxUnavailable { reason: super::SandboxError },

    /// Moving a stale mask aside failed.
    #[error("could not move the stale mask {} aside to {}: {source}", from.display(), to.display())]
    MoveAside {
        from: PathBuf,
        to: PathBuf,
        source: std::io::Error,
    },

    /// Any other file-system failure, with the path involved.
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}
