//! One-pass label-map statistics over the streaming NIfTI reader: per-label counts,
//! volumes, bounding boxes, centroids, border contact, components, intensities under
//! each label, two-map confusion (Dice/IoU) and geometry comparison.
//!
//! Why one pass: upstream label maps are ~400 MiB of float32 once inflated. Every
//! statistic here is an accumulator fed one z-slice at a time (split into runs of
//! equal values along x), so the mask, the reference image and the ground truth are
//! read once, in lockstep, and memory stays flat whatever the volume size.
//!
//! Value semantics: 0 is background; any other integer is a label id; NaN and
//! non-integer values are counted apart and never attributed to a label; 255 is
//! counted both as label 255 and in `value_255_voxels`, because the upstream writes
//! NaN as 255 while 255 is also a real MRI-brain class id.

pub mod components;
pub mod confusion;
pub mod geometry;
pub mod intensity;
pub mod pass;
pub mod report;
pub mod runs;
pub mod stats;

pub use components::ComponentStats;
pub use confusion::{ConfusionEntry, LabelOverlap, OverlapStatus};
pub use geometry::{GeometryComparison, GeometryFacts, DEFAULT_GEOMETRY_TOLERANCE};
pub use intensity::IntensityStats;
pub use report::{Comparison, InspectReport, LabelStats, MaskInfo, SCHEMA_VERSION};
