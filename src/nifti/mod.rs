//! Streaming NIfTI-1/NIfTI-2 reader with nibabel's semantics.
//!
//! Why our own reader: label maps from the upstream are ~400 MiB of float32 once
//! inflated, and the `nifti` crate materialises whole volumes, lacks NIfTI-2 and
//! multi-member gzip. This module reads the header, derives the affine exactly as
//! nibabel's `img.affine` does, and streams voxels one z-slice at a time so memory
//! stays flat whatever the volume size.
