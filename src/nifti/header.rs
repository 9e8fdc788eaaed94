//! Header decoding: the raw NIfTI-1 (348-byte) or NIfTI-2 (540-byte) header
//! turned into a [`Header`] whose derived values (shape, zooms, affine,
//! scaling) are the ones nibabel reports after `nib.load`.
//!
//! nibabel does not read headers verbatim: on load it runs its header checks
//! *with fixing on* (`check_fix`), so the values that `img.affine`,
//! `header.get_zooms()` and `get_fdata()` use are the fixed ones. We mirror the
//! checks that change numbers and the ones that refuse the file:
//!
//! * `pixdim[1..=3]` zero → 1, negative → absolute value;
//! * `pixdim[0]` (qfac) not exactly ±1 → 1;
//! * `qform_code`/`sform_code` outside 0..=5 → 0;
//! * unknown datatype, bad magic, `vox_offset` below the header size, a
//!   NIfTI-2 `eol_check` that is neither zero nor `0D 0A 1A 0A`: refused;
//! * a NaN or infinite `pixdim[1..=dim[0]]` (voxel size): refused, where nibabel
//!   loads it, because no voxel volume, spacing or affine can be derived from it.
//!
//! Every fix applied is recorded in [`Header::notes`] so nothing is silent.
//!
//! The decoding itself is in three parts: `layout` (where each field sits in either
//! version, in the file's byte order), `parse` (the header's sections in order, with
//! nibabel's fixes and our refusals) and `affine` (qform, sform and the fallback
//! affine as nibabel computes them).

mod affine;
mod layout;
mod parse;

use std::path::Path;

use super::{orientation, Affine, NiftiError};

/// Which NIfTI flavour the file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NiftiVersion {
    /// 348-byte header, 16-bit dims, 32-bit floats.
    Nifti1,
    /// 540-byte header, 64-bit dims, 64-bit floats.
    Nifti2,
}

impl std::fmt::Display for NiftiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NiftiVersion::Nifti1 => "NIfTI-1",
            NiftiVersion::Nifti2 => "NIfTI-2",
        })
    }
}

impl NiftiVersion {
    /// Size of the fixed header in bytes (`sizeof_hdr`).
    pub(crate) fn header_size(&self) -> usize {
        match self {
            NiftiVersion::Nifti1 => 348,
            NiftiVersion::Nifti2 => 540,
        }
    }
}

/// Where [`Header::affine`] comes from, in nibabel's order of preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AffineSource {
    /// `sform_code > 0`: the `srow_*` rows.
    Sform,
    /// `sform_code == 0`, `qform_code > 0`: the quaternion.
    Qform,
    /// Neither code set: nibabel's `get_base_affine` (centre origin, x flipped).
    Fallback,
}

/// The scalar voxel types this reader handles (serialised as numpy names, "float32").
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataType {
    UInt8,
    Int8,
    Int16,
    UInt16,
    Int32,
    UInt32,
    Int64,
    UInt64,
    Float32,
    Float64,
}

impl DataType {
    /// Decode a NIfTI `datatype` code; `Err` carries a description of why not.
    pub(crate) fn from_code(code: i32) -> Result<DataType, String> {
        Ok(match code {
            2 => DataType::UInt8,
            4 => DataType::Int16,
            8 => DataType::Int32,
            16 => DataType::Float32,
            64 => DataType::Float64,
            256 => DataType::Int8,
            512 => DataType::UInt16,
            768 => DataType::UInt32,
            1024 => DataType::Int64,
            1280 => DataType::UInt64,
            1 => return Err("datatype 1 (1-bit binary)".into()),
            32 => return Err("datatype 32 (complex64)".into()),
            128 => return Err("datatype 128 (RGB24)".into()),
            1536 => return Err("datatype 1536 (float128)".into()),
            1792 => return Err("datatype 1792 (complex128)".into()),
            2048 => return Err("datatype 2048 (complex256)".into()),
            2304 => return Err("datatype 2304 (RGBA32)".into()),
            other => return Err(format!("datatype code {other} (not a NIfTI datatype)")),
        })
    }

    /// The NIfTI `datatype` code.
    pub fn code(&self) -> i32 {
        match self {
            DataType::UInt8 => 2,
            DataType::Int16 => 4,
            DataType::Int32 => 8,
            DataType::Float32 => 16,
            DataType::Float64 => 64,
            DataType::Int8 => 256,
            DataType::UInt16 => 512,
            DataType::UInt32 => 768,
            DataType::Int64 => 1024,
            DataType::UInt64 => 1280,
        }
    }

    /// numpy-style name, as `str(img.get_data_dtype())` prints it.
    pub fn name(&self) -> &'static str {
        match self {
            DataType::UInt8 => "uint8",
            DataType::Int8 => "int8",
            DataType::Int16 => "int16",
            DataType::UInt16 => "uint16",
            DataType::Int32 => "int32",
            DataType::UInt32 => "uint32",
            DataType::Int64 => "int64",
            DataType::UInt64 => "uint64",
            DataType::Float32 => "float32",
            DataType::Float64 => "float64",
        }
    }

    /// Bytes per voxel.
    pub(crate) fn size_bytes(&self) -> usize {
        match self {
            DataType::UInt8 | DataType::Int8 => 1,
            DataType::Int16 | DataType::UInt16 => 2,
            DataType::Int32 | DataType::UInt32 | DataType::Float32 => 4,
            DataType::Int64 | DataType::UInt64 | DataType::Float64 => 8,
        }
    }
}

/// A decoded header with nibabel's derived values. Built only by [`super::read_header`] /
/// [`super::VolumeReader::open`] (or [`Header::parse`] on raw bytes).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Header {
    pub version: NiftiVersion,
    pub little_endian: bool,
    pub datatype: DataType,
    /// `dim[1..=dim[0]]` as stored.
    pub dim: Vec<usize>,
    /// Spatial shape after dropping trailing singleton dimensions.
    pub shape: [usize; 3],
    /// As nibabel's `header.get_zooms()`: `pixdim[1..=dim[0]]`, spatial ones fixed.
    pub zooms: Vec<f64>,
    /// The first three zooms (mm).
    pub spacing: [f64; 3],
    /// As nibabel's `img.affine`.
    pub affine: Affine,
    pub affine_source: AffineSource,
    /// Codes as nibabel holds them after its fixes (invalid codes become 0).
    pub sform_code: i32,
    pub qform_code: i32,
    /// The sform, when `sform_code > 0`.
    pub sform: Option<Affine>,
    /// The qform, when `qform_code > 0` and the quaternion is valid.
    pub qform: Option<Affine>,
    /// Largest absolute element difference between sform and qform when both are present.
    pub sform_qform_max_abs_diff: Option<f64>,
    /// Raw header values.
    pub scl_slope: f64,
    pub scl_inter: f64,
    /// What is actually applied to voxels (`raw * slope + inter`); `None` = identity.
    pub scaling: Option<(f64, f64)>,
    /// Byte offset of the voxel data in the (decompressed) stream.
    pub vox_offset: u64,
    pub descrip: String,
    /// Spatial unit from `xyzt_units`: "unknown", "meter", "mm" or "micron".
    /// Like nibabel, zooms and spacing are reported as stored, whatever the unit.
    pub xyz_units: &'static str,
    /// Fixes applied the way nibabel applies them on load, and other remarks.
    pub notes: Vec<String>,
    /// The magic of a .hdr/.img pair (`ni1`/`ni2`): a file that then lacks the voxels
    /// is the header half of a pair, not a truncated image.
    #[serde(skip)]
    pub pair_magic: bool,
}

/// sform and qform are said to disagree when an element differs by more than this (mm).
pub(crate) const SFORM_QFORM_TOLERANCE: f64 = 1e-4;

/// The size of the first read needed to decode any header: the NIfTI-2 header size.
pub(crate) const MAX_HEADER_BYTES: usize = 540;

/// Recognise the version and byte order from the first four bytes (`sizeof_hdr`).
pub(crate) fn detect_version(first4: [u8; 4]) -> Option<(NiftiVersion, bool)> {
    match (i32::from_le_bytes(first4), i32::from_be_bytes(first4)) {
        (348, _) => Some((NiftiVersion::Nifti1, true)),
        (540, _) => Some((NiftiVersion::Nifti2, true)),
        (_, 348) => Some((NiftiVersion::Nifti1, false)),
        (_, 540) => Some((NiftiVersion::Nifti2, false)),
        _ => None,
    }
}

impl Header {
    /// Number of voxels in the 3-D volume.
    pub fn voxel_count(&self) -> u64 {
        self.shape.iter().map(|&d| d as u64).product()
    }

    /// Volume of one voxel in millilitres (spacing in mm, 1 ml = 1000 mm³).
    pub fn voxel_volume_ml(&self) -> f64 {
        self.spacing.iter().product::<f64>() / 1000.0
    }

    /// Axis codes as nibabel's `aff2axcodes(img.affine)`, e.g. `['R','A','S']`;
    /// `'?'` for an axis nibabel reports as `None` (degenerate affine).
    pub fn orientation(&self) -> [char; 3] {
        orientation::axcodes(&self.affine)
    }

    /// Bytes of voxel data the header promises.
    pub(crate) fn data_bytes(&self) -> u64 {
        self.voxel_count() * self.datatype.size_bytes() as u64
    }

    /// True when both transforms are present and differ beyond [`SFORM_QFORM_TOLERANCE`].
    pub fn sform_qform_disagree(&self) -> bool {
        self.sform_qform_max_abs_diff
            .is_some_and(|d| d.is_nan() || d > SFORM_QFORM_TOLERANCE)
    }
}

/// The refusal of the header half of a .hdr/.img pair: pair magic, and the voxels
/// not in this file (`vox_offset` inside the header, or the file ends before them).
pub(crate) fn pair_header(path: &Path, version: NiftiVersion) -> NiftiError {
    NiftiError::NotNiftiFile {
        path: path.to_path_buf(),
        what: format!(
            "this is the header half of a {version} .hdr/.img pair (its voxels are in the matching .img file): pass the .img with it or convert to .nii (e.g. with nibabel); only single-file .nii/.nii.gz images are read"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_detection_both_byte_orders() {
        assert_eq!(
            detect_version(348i32.to_le_bytes()),
            Some((NiftiVersion::Nifti1, true))
        );
        assert_eq!(
            detect_version(348i32.to_be_bytes()),
            Some((NiftiVersion::Nifti1, false))
        );
        assert_eq!(
            detect_version(540i32.to_le_bytes()),
            Some((NiftiVersion::Nifti2, true))
        );
        assert_eq!(
            detect_version(540i32.to_be_bytes()),
            Some((NiftiVersion::Nifti2, false))
        );
        assert_eq!(detect_version(*b"\x1f\x8b\x08\x00"), None);
    }
}
