//! Streaming NIfTI-1/NIfTI-2 reader with nibabel's semantics.
//!
//! Why our own reader: label maps from the upstream are ~400 MiB of float32 once
//! inflated, and the `nifti` crate materialises whole volumes, lacks NIfTI-2 and
//! multi-member gzip. This module reads the header, derives the affine exactly as
//! nibabel's `img.affine` does, and streams voxels one z-slice at a time so memory
//! stays flat whatever the volume size.
//!
//! * `header`: raw header → [`Header`] (shape, zooms, affine, scaling as nibabel);
//! * `orientation`: `aff2axcodes`;
//! * `reader`: gzip sniffing, skipping to `vox_offset`, slice decoding;
//! * `sniff`: what a file that is not NIfTI is instead (DICOM, MINC, MGH, PAR/REC, text...);
//! * `error`: [`NiftiError`], every variant naming the file;
//! * `writer`: the one NIfTI-1 writer (the volume converted from a DICOM series).
//!
//! Limits (hostile or corrupt headers are refused before anything is allocated):
//! one z-slice may hold at most [`MAX_SLICE_VOXELS`] voxels (the only buffer we
//! allocate is one slice, and it grows only as data arrives), a volume at most
//! [`MAX_TOTAL_VOXELS`], and the voxels must start within [`MAX_VOX_OFFSET`] bytes.

pub(crate) mod error;
mod gz;
pub(crate) mod header;
pub(crate) mod orientation;
pub(crate) mod reader;
mod sniff;
pub mod writer;

use std::path::Path;

pub use error::NiftiError;
pub use header::{AffineSource, Header, NiftiVersion};
pub use reader::VolumeReader;

/// A 4x4 voxel-to-world (RAS+ mm) matrix, row-major, as nibabel's `img.affine`.
pub(crate) type Affine = [[f64; 4]; 4];

/// Largest z-slice accepted: 2^28 voxels (e.g. 16384 x 16384), i.e. at most
/// 2 GiB of `f64` plus the raw bytes. Real CT/MR slices are ~2^18.
pub const MAX_SLICE_VOXELS: u64 = 1 << 28;

/// Largest volume accepted: 2^36 voxels (~69 G voxels, 512 GiB of float64).
/// Anything beyond is a corrupt or hostile header, not a scan.
pub const MAX_TOTAL_VOXELS: u64 = 1 << 36;

/// Largest `vox_offset` accepted: 1 GiB. Extensions beyond that are not a scan's
/// metadata but a way to make a small .nii.gz inflate gigabytes before its voxels.
pub const MAX_VOX_OFFSET: u64 = 1 << 30;

/// Decode the header of `path` (`.nii` or `.nii.gz`) without reading voxels
/// (for gzip, the stream is inflated up to `vox_offset`, which validates it that far).
pub fn read_header(path: &Path) -> Result<Header, NiftiError> {
    reader::read_header(path)
}
