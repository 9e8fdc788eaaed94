//! What the evidence records of a DICOM input (`input.dicom`): identifiers of the
//! series (UIDs are not patient data), its geometry, the checks the conversion
//! passed, and hashes. Nothing here is read from an identifying attribute.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::source::Container;

/// A check the conversion makes before it writes a volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// The transfer syntax's pixel data can be decoded (native or deflated).
    TransferSyntaxDecodable,
    /// One frame per file (no multi-frame objects).
    SingleFrame,
    /// Every slice has the same rows, columns, pixel spacing and sample format.
    SameGrid,
    /// Every slice has ImagePositionPatient, ImageOrientationPatient and PixelSpacing.
    PositionsPresent,
    /// Every slice has the same ImageOrientationPatient.
    OneOrientation,
    /// No two slices share a position along the slice normal.
    PositionsDistinct,
    /// The positions advance along the slice normal (no gantry tilt or shear).
    NoGantryTilt,
    /// The gaps between consecutive slices are equal within the tolerance.
    UniformSpacing,
}

impl Check {
    pub fn as_str(self) -> &'static str {
        match self {
            Check::TransferSyntaxDecodable => "transfer_syntax_decodable",
            Check::SingleFrame => "single_frame",
            Check::SameGrid => "same_grid",
            Check::PositionsPresent => "positions_present",
            Check::OneOrientation => "one_orientation",
            Check::PositionsDistinct => "positions_distinct",
            Check::NoGantryTilt => "no_gantry_tilt",
            Check::UniformSpacing => "uniform_spacing",
        }
    }
}

/// One passed check and what it measured (a failed check refuses the input instead).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConversionCheck {
    pub check: Check,
    pub passed: bool,
    pub detail: String,
}

/// The range of RescaleSlope / RescaleIntercept over the slices (applied to every voxel).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RescaleRange {
    pub slope_min: f64,
    pub slope_max: f64,
    pub intercept_min: f64,
    pub intercept_max: f64,
}

/// `input.dicom`: the DICOM series the input volume was converted from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DicomSeriesInfo {
    /// The directory or .zip the caller named.
    pub source_path: String,
    /// `directory` or `zip`.
    pub container: Container,
    pub series_instance_uid: String,
    pub study_instance_uid: Option<String>,
    /// The DICOM Modality attribute (CT, MR, ...).
    pub dicom_modality: Option<String>,
    /// Set when the DICOM Modality disagrees with the requested modality.
    pub modality_warning: Option<String>,
    pub slice_count: usize,
    /// Rows and columns of every slice.
    pub rows: u32,
    pub columns: u32,
    /// mm along x (columns), y (rows), z (slices): in-plane from PixelSpacing, between
    /// slices from the positions (not SliceThickness).
    pub spacing: Vec<f64>,
    /// ImageOrientationPatient (row then column direction cosines, LPS).
    pub image_orientation_patient: Vec<f64>,
    /// The slice normal (row x column), LPS, along which slices were sorted.
    pub slice_normal: Vec<f64>,
    /// The transfer syntax UID and its name.
    pub transfer_syntax: String,
    pub rescale: RescaleRange,
    /// The converted volume's voxel type: `int16` when every rescaled value is an
    /// integer in range, else `float32`.
    pub output_dtype: String,
    pub checks: Vec<ConversionCheck>,
    /// sha256 over the slices in sorted order, one `<sha256 of the file>  <name>` line each.
    pub files_sha256: String,
    /// Other series in the same source (not converted).
    pub other_series: usize,
    /// Entries of the source that are not DICOM images (skipped).
    pub skipped_entries: usize,
    /// The converted volume in the evidence pack (what the upstream read).
    pub converted_path: String,
    pub conversion_seconds: f64,
}
