//! What an inspection computes besides the per-label counts ([`InspectOptions`]) and
//! why one failed ([`InspectError`], every variant naming the file), apart from the
//! pass so callers can build options and match errors without the accumulators.

use std::path::PathBuf;

use super::DEFAULT_GEOMETRY_TOLERANCE;
use crate::nifti::NiftiError;

/// What to compute besides the per-label counts.
#[derive(Debug, Clone, PartialEq)]
pub struct InspectOptions {
    /// Count 26-connected components per label.
    pub components: bool,
    /// An image on the mask's grid: intensity statistics per label, geometry check.
    pub reference: Option<PathBuf>,
    /// A ground-truth label map on the mask's grid: joint histogram, Dice and IoU.
    pub ground_truth: Option<PathBuf>,
    /// Affine / spacing tolerance of the geometry comparisons.
    pub geometry_tolerance: f64,
}

impl Default for InspectOptions {
    fn default() -> Self {
        InspectOptions {
            components: false,
            reference: None,
            ground_truth: None,
            geometry_tolerance: DEFAULT_GEOMETRY_TOLERANCE,
        }
    }
}

/// Why an inspection could not be done.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// A file could not be read as a NIfTI volume (the error names the file).
    #[error(transparent)]
    Nifti(#[from] NiftiError),
    /// A second image is not on the label map's voxel grid, so the two cannot be
    /// streamed voxel by voxel together.
    #[error(
        "{}: shape {other_shape:?} differs from the label map {} with shape {mask_shape:?}; \
         the {role} must be on the label map's voxel grid (resample it first, \
         nearest-neighbour for a label map)",
        other.display(),
        mask.display()
    )]
    ShapeMismatch {
        /// "reference image" or "ground truth".
        role: &'static str,
        mask: PathBuf,
        mask_shape: [usize; 3],
        other: PathBuf,
        other_shape: [usize; 3],
    },
    /// The operating system refused a read-ahead thread.
    #[error("{}: cannot start a reader thread: {source} (the system is out of threads or memory)", path.display())]
    Thread {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The reader delivered fewer slices (or shorter ones) than its header promises.
    #[error("{}: {detail} (the file is inconsistent; re-create it)", path.display())]
    ShortVolume { path: PathBuf, detail: String },
}
