//! One-pass label-map statistics over the streaming NIfTI reader: per-label counts,
//! volumes, bounding boxes, centroids, border contact, components, intensities under
//! each label, two-map confusion (Dice/IoU) and geometry comparison.
//!
//! Why one pass: upstream label maps are ~400 MiB of float32 once inflated. Every
//! statistic here is an accumulator fed one z-slice at a time (split into runs of
//! equal values along x), so the mask, the reference image and the ground truth are
//! read once, in lockstep, and memory stays flat whatever the volume size (each
//! input is inflated on its own read-ahead thread, see [`stream`]).
//!
//! Layout: [`runs`] (classification, runs), the accumulators [`stats`],
//! [`components`], [`intensity`], [`confusion`], the pure pass driver [`pass`],
//! [`geometry`], the serialisable [`report`]; [`entry`] holds the file-level glue
//! (opening the mask and its companions, the entry points [`inspect`] and
//! [`compare_label_maps`]) and [`options`] what to compute and why it failed.
//! The report's JSON Schema is `schemas/inspect_report.schema.json`.
//!
//! Value semantics: 0 is background; any other integer is a label id; NaN and
//! non-integer values are counted apart and never attributed to a label; 255 is
//! counted both as label 255 and in `value_255_voxels`, because the upstream writes
//! NaN as 255 while 255 is also a real MRI-brain class id.

pub(crate) mod components;
pub(crate) mod confusion;
mod entry;
pub(crate) mod geometry;
pub(crate) mod intensity;
mod options;
pub(crate) mod pass;
pub(crate) mod report;
pub(crate) mod runs;
pub(crate) mod stats;
pub(crate) mod stream;

pub use confusion::OverlapStatus;
pub(crate) use entry::compare_geometry;
pub use entry::{compare_label_maps, inspect};
pub(crate) use geometry::{GeometryComparison, GeometryFacts, DEFAULT_GEOMETRY_TOLERANCE};
pub use options::{InspectError, InspectOptions};
pub use report::InspectReport;
pub(crate) use report::{Comparison, MaskInfo, SCHEMA_VERSION};
