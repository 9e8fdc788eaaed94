//! The I/O edge: headers, file hashes, and one streamed pass over the mask (and the
//! ground truth, in lockstep) through the project's NIfTI reader and the inspect
//! accumulators. Label ids are kept in memory only when surface metrics need them.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::inspect::components::ComponentStats;
use crate::inspect::confusion::ConfusionTally;
use crate::inspect::pass::{InspectPass, PassPlan};
use crate::inspect::runs::{classify, VoxelClass};
use crate::inspect::stats::VolumeTally;
use crate::inspect::GeometryFacts;
use crate::nifti::{Header, NiftiError, VolumeReader};

/// Why a streamed pass failed.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("label map: {0}")]
    Mask(NiftiError),
    #[error("ground truth: {0}")]
    GroundTruth(NiftiError),
    #[error("{path}: ended after {got} of {expected} z-slices", path = path.display())]
    ShortVolume {
        path: PathBuf,
        got: usize,
        expected: usize,
    },
}

/// Geometry facts of a header, for the inspect comparison.
pub(crate) fn geometry_facts(h: &Header) -> GeometryFacts {
    GeometryFacts {
        shape: h.shape,
        spacing: h.spacing,
        affine: h.affine,
        orientation: h.orientation(),
        sform_code: h.sform_code,
        qform_code: h.qform_code,
    }
}

/// SHA-256 of a file's bytes, hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    // A FIFO or device is refused at once instead of blocking or hashing without end.
    let mut file = crate::files::open_regular(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Label ids of a whole volume, `x` fastest. Ids above `u16::MAX`, non-integer and
/// NaN voxels are stored as 0: they are counted separately and fail the verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelVoxels {
    pub shape: [usize; 3],
    pub ids: Vec<u16>,
}

impl LabelVoxels {
    fn with_capacity(shape: [usize; 3]) -> LabelVoxels {
        // Grow with the data actually read, so a header that lies about its size
        // cannot reserve memory up front.
        let n = shape[0].saturating_mul(shape[1]).saturating_mul(shape[2]);
        LabelVoxels {
            shape,
            ids: Vec::with_capacity(n.min(1 << 24)),
        }
    }

    fn push_slice(&mut self, values: &[f64]) {
        self.ids.extend(values.iter().map(|&v| match classify(v) {
            VoxelClass::Label(id) => u16::try_from(id).unwrap_or(0),
            _ => 0,
        }));
    }
}

/// What one pass over the mask (and ground truth) found.
#[derive(Debug, Clone, PartialEq)]
pub struct MaskScan {
    pub tally: VolumeTally,
    pub components: BTreeMap<i64, ComponentStats>,
    pub confusion: Option<ConfusionTally>,
    /// Kept only when `keep_voxels` was asked for.
    pub pred_voxels: Option<LabelVoxels>,
    pub gt_voxels: Option<LabelVoxels>,
}

/// Largest volume whose label ids are kept for surface metrics (2 bytes a voxel per
/// map); beyond it the surfaces are not measured and the verdict says so.
pub(crate) const MAX_SURFACE_VOXELS: usize = 1 << 30;

/// Stream the mask once (components on), with the ground truth in lockstep when
/// given (its shape must already be known to equal the mask's).
pub fn scan(
    mask: &Path,
    ground_truth: Option<&Path>,
    keep_voxels: bool,
) -> Result<MaskScan, ScanError> {
    let mut reader = VolumeReader::open(mask).map_err(ScanError::Mask)?;
    let shape = reader.header().shape;
    let mut gt_reader = match ground_truth {
        Some(p) => Some(VolumeReader::open(p).map_err(ScanError::GroundTruth)?),
        None => None,
    };
    let plan = PassPlan {
        components: true,
        reference: false,
        ground_truth: gt_reader.is_some(),
    };
    let mut pass = InspectPass::new(shape, plan);
    let voxels = shape[0].saturating_mul(shape[1]).saturating_mul(shape[2]);
    let keep = keep_voxels && gt_reader.is_some() && voxels <= MAX_SURFACE_VOXELS;
    let mut pred_keep = keep.then(|| LabelVoxels::with_capacity(shape));
    let mut gt_keep = pred_keep
        .as_ref()
        .map(|_| LabelVoxels::with_capacity(shape));
    let (mut slice, mut gt_slice) = (Vec::new(), Vec::new());
    let mut z = 0;
    while reader.read_slice(&mut slice).map_err(ScanError::Mask)? {
        let gt = match gt_reader.as_mut() {
            Some(r) => {
                let path = r.path().to_path_buf();
                if !r
                    .read_slice(&mut gt_slice)
                    .map_err(ScanError::GroundTruth)?
                {
                    return Err(ScanError::ShortVolume {
                        path,
                        got: z,
                        expected: shape[2],
                    });
                }
                Some(gt_slice.as_slice())
            }
            None => None,
        };
        pass.push(&slice, None, gt);
        if let (Some(k), Some(g)) = (pred_keep.as_mut(), gt_keep.as_mut()) {
            k.push_slice(&slice);
            g.push_slice(gt.unwrap_or_default());
        }
        z += 1;
    }
    if z != shape[2] {
        return Err(ScanError::ShortVolume {
            path: mask.to_path_buf(),
            got: z,
            expected: shape[2],
        });
    }
    let result = pass.finish();
    Ok(MaskScan {
        tally: result.tally,
        components: result.components.unwrap_or_default(),
        confusion: result.confusion,
        pred_voxels: pred_keep,
        gt_voxels: gt_keep,
    })
}
