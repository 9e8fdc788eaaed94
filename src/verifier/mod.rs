//! The paired verifier `medagent.verifiers.ct_segmentation_quality_v1`: trusts nothing
//! in the evidence pack, recomputes everything from the files, and fails closed.

pub mod bounds;
pub mod surface;
