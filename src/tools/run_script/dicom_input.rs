//! The gates of a DICOM input (a directory or a `.zip`): choose the series, check its
//! headers ([`crate::dicom::plan`]) with the other gates, and, once every gate has
//! passed, convert it into the pack as `input_converted.nii.gz`, which the upstream
//! then reads unchanged. A refused call writes nothing: the conversion is the last
//! step of the gates.

use std::path::{Path, PathBuf};

use super::gates::Recorder;
use super::request::RunRequest;
use crate::dicom::{self, DicomSeriesInfo, Plan};
use crate::labels::Modality;
use crate::nifti::{read_header, Header};

const GATE: &str = "dicom_series_convertible";

/// What the input is, as far as the gates are concerned.
#[derive(Debug)]
pub(super) enum DicomInput {
    /// A NIfTI file (or something the NIfTI gates will refuse).
    NotDicom,
    /// A DICOM source whose series passed every header check.
    Planned(Box<Plan>),
    /// A DICOM source that was refused (the gate says why).
    Refused,
}

impl DicomInput {
    /// The file the upstream reads: the converted volume in the pack for DICOM.
    pub(super) fn upstream_input(&self, request: &RunRequest) -> PathBuf {
        match self {
            DicomInput::NotDicom => request.input.clone(),
            _ => request.output_dir.join(dicom::CONVERTED_NAME),
        }
    }

    /// The DICOM Modality attribute of the planned series.
    pub(super) fn modality(&self) -> Option<&str> {
        match self {
            DicomInput::Planned(plan) => plan.chosen.modality(),
            _ => None,
        }
    }
}

/// Scan and check a DICOM input (recording `input_exists`, `input_is_nifti`,
/// `input_is_3d` and `dicom_series_convertible`); `NotDicom` records nothing but a
/// misplaced `series_uid`.
pub(super) fn plan(rec: &mut Recorder, request: &RunRequest) -> DicomInput {
    let input = &request.input;
    if !dicom::is_source(input) {
        match &request.series_uid {
            Some(_) => rec.fail(
                GATE,
                "series_uid",
                format!(
                    "series_uid applies to a DICOM input (a directory or .zip), and {} is not one",
                    input.display()
                ),
            ),
            None => rec.skip(GATE, "not a DICOM input"),
        }
        return DicomInput::NotDicom;
    }
    let kind = if input.is_dir() { "directory" } else { ".zip" };
    rec.pass("input_exists", format!("DICOM {kind} {}", input.display()));
    rec.skip(
        "input_is_nifti",
        "a DICOM series: converted to NIfTI after the gates",
    );
    rec.skip(
        "input_is_3d",
        "a DICOM series: see dicom_series_convertible",
    );
    let planned = dicom::scan(input)
        .and_then(|scan| scan.choose(request.series_uid.as_deref()))
        .and_then(dicom::plan);
    match planned {
        Ok(plan) => {
            let [x, y, z] = plan.shape();
            rec.pass(
                GATE,
                format!(
                    "series {}: {z} slices of {x}x{y}, spacing {:?} mm; every header check passed",
                    plan.chosen.slices[0].series_uid, plan.layout.spacing
                ),
            );
            DicomInput::Planned(Box::new(plan))
        }
        Err(e) => {
            let argument = match e {
                dicom::DicomError::Choice(_) if request.series_uid.is_some() => "series_uid",
                _ => "input",
            };
            rec.fail(GATE, argument, e.to_string());
            DicomInput::Refused
        }
    }
}

/// Write the converted volume to `out` and read its header back; on failure the
/// gate is failed (nothing was written: the write is atomic and last).
pub(super) fn convert(
    rec: &mut Recorder,
    plan: &Plan,
    out: &Path,
    modality: Modality,
) -> Option<(Header, DicomSeriesInfo)> {
    let converted = dicom::convert(plan, out).map_err(|e| e.to_string());
    let read = converted.and_then(|info| {
        read_header(out)
            .map(|header| (header, info))
            .map_err(|e| format!("the converted volume cannot be read back: {e}"))
    });
    match read {
        Ok((header, mut info)) => {
            info.modality_warning = plan
                .chosen
                .modality()
                .and_then(|m| modality_warning(m, modality));
            Some((header, info))
        }
        Err(problem) => {
            rec.results.retain(|g| g.name != GATE);
            rec.fail(GATE, "input", problem);
            None
        }
    }
}

/// A warning when the DICOM Modality disagrees with the requested modality.
pub(super) fn modality_warning(dicom_modality: &str, requested: Modality) -> Option<String> {
    let agrees = match dicom_modality {
        "CT" => requested == Modality::CtBody,
        "MR" => matches!(requested, Modality::MriBody | Modality::MriBrain),
        _ => false,
    };
    (!agrees).then(|| {
        let suggestion = match dicom_modality {
            "CT" => "CT_BODY",
            "MR" => "MRI_BODY (or MRI_BRAIN)",
            _ => "a CT or MR series",
        };
        format!(
            "the DICOM series has Modality {dicom_modality}, which disagrees with the requested \
             modality {requested}; check it (expected: {suggestion})"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_modality_warning_says_what_disagrees() {
        assert_eq!(modality_warning("CT", Modality::CtBody), None);
        assert_eq!(modality_warning("MR", Modality::MriBrain), None);
        let w = modality_warning("MR", Modality::CtBody).unwrap();
        assert!(w.contains("Modality MR") && w.contains("CT_BODY") && w.contains("MRI_BODY"));
        let w = modality_warning("PT", Modality::CtBody).unwrap();
        assert!(w.contains("Modality PT"), "{w}");
    }
}
