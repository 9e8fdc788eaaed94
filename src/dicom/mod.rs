//! DICOM series in: a directory or a `.zip` of DICOM files becomes the NIfTI volume
//! the upstream reads, converted the way the field's converters (dcm2niix,
//! dicom2nifti, SimpleITK) convert it, with every assumption checked and recorded.
//!
//! Why here: scanners and PACS deliver DICOM, and the upstream bundle reads NIfTI. A
//! silent conversion would be the weakest link of the evidence (a slice out of
//! order, a wrong spacing, a missed rescale all give a plausible-looking mask on the
//! wrong geometry), so the conversion refuses what it cannot do faithfully and says
//! which rule failed and how to fix it.
//!
//! * [`bounds`]: each file's raw bytes walked (iteratively) before dicom-rs parses
//!   it: nesting depth, declared lengths and element sizes bounded, pixel bytes measured;
//! * [`source`]: the files of a directory or the entries of a zip, read in memory
//!   with caps (never extracted to disk);
//! * [`series`]: each file's header (parsed by dicom-rs, up to the pixel data),
//!   grouped into series; choosing one;
//! * [`geometry`]: slices sorted along the slice normal, spacing from the positions,
//!   the checks (positions present and distinct, one orientation, no gantry tilt,
//!   uniform spacing) and the LPS→RAS affine;
//! * [`mod@convert`]: the pixels decoded by dicom-pixeldata (native syntaxes only),
//!   RescaleSlope/RescaleIntercept applied, the volume written atomically;
//! * [`info`]: what the evidence records (`input.dicom`).
//!
//! **No patient data.** Only the attributes listed in [`series::SliceMeta`] are ever
//! read; PatientName, PatientID, PatientBirthDate and every other identifying
//! attribute are never copied anywhere (evidence, logs, file names).

pub(crate) mod bounds;
pub(crate) mod convert;
pub(crate) mod geometry;
pub(crate) mod info;
pub(crate) mod series;
pub(crate) mod source;

use std::path::Path;

pub(crate) use convert::{convert, plan, Plan};
pub(crate) use info::{Check, DicomSeriesInfo};
pub(crate) use series::scan;

/// The file name of the converted volume inside the evidence pack.
pub(crate) const CONVERTED_NAME: &str = "input_converted.nii.gz";

/// Whether `path` is meant as a DICOM source: a directory, or a file named `*.zip`.
/// (A NIfTI input is a regular file with another name.)
pub(crate) fn is_source(path: &Path) -> bool {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => true,
        Ok(meta) if meta.is_file() => path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("zip")),
        _ => false,
    }
}

/// Why a DICOM source could not be converted. Every message names what was found,
/// the rule, and the fix.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DicomError {
    /// A file or the zip could not be read.
    #[error("{0}")]
    File(#[from] crate::files::FileError),
    /// The source holds more than the caps allow.
    #[error("{0}")]
    Limit(String),
    /// A file breaks the bounds checked before parsing (nesting, lengths, sizes), or
    /// holds fewer pixel bytes than its header promises.
    #[error("{0}")]
    Bounds(String),
    /// The zip is unreadable, or an entry uses something we do not read.
    #[error("{0}")]
    Zip(String),
    /// No DICOM image in the source.
    #[error("{0}")]
    NoSeries(String),
    /// Several series and no `series_uid`, or a `series_uid` that names none.
    #[error("{0}")]
    Choice(String),
    /// A conversion check failed: the series cannot be made into one volume faithfully.
    #[error("{detail} (check {}). Fix: {fix}", check.as_str())]
    Check {
        check: Check,
        detail: String,
        fix: String,
    },
    /// The output could not be written.
    #[error("{0}")]
    Write(String),
}

impl DicomError {
    fn check(check: Check, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        DicomError::Check {
            check,
            detail: detail.into(),
            fix: fix.into(),
        }
    }
}

/// The fix of last resort, for a series this converter refuses.
pub(crate) const CONVERT_ELSEWHERE: &str =
    "convert the series with dcm2niix (it handles this case and says how) and pass the NIfTI file";
