//! The file-level glue of an inspection: open the mask, the reference image and the
//! ground truth, check they share one grid, feed their slices in lockstep to the one
//! pass, and build the report. The entry points [`inspect`] and
//! [`compare_label_maps`] live here; the accumulators know nothing of files.

use std::path::Path;

use super::pass::{InspectPass, PassPlan};
use super::stream::SliceStream;
use super::{
    confusion, geometry, report, Comparison, GeometryComparison, GeometryFacts, InspectError,
    InspectOptions, InspectReport, MaskInfo, DEFAULT_GEOMETRY_TOLERANCE, SCHEMA_VERSION,
};
use crate::nifti::{Header, VolumeReader};

/// Compare the geometry of two headers (a = the label map, b = the other image).
pub(crate) fn compare_geometry(a: &Header, b: &Header, tolerance: f64) -> GeometryComparison {
    geometry::compare_facts(&facts(a), &facts(b), tolerance)
}

fn facts(h: &Header) -> GeometryFacts {
    GeometryFacts {
        shape: h.shape,
        spacing: h.spacing,
        affine: h.affine,
        orientation: h.orientation(),
        sform_code: h.sform_code,
        qform_code: h.qform_code,
    }
}

/// The identity and geometry block of a report for `path` with header `h`.
pub(crate) fn mask_info(path: &Path, h: &Header) -> MaskInfo {
    MaskInfo {
        path: path.display().to_string(),
        shape: h.shape,
        spacing: h.spacing,
        affine: h.affine,
        sform_code: h.sform_code,
        qform_code: h.qform_code,
        orientation: h.orientation().iter().collect(),
        dtype: h.datatype.name().to_string(),
    }
}

/// Inspect a label map in one streamed pass, together with the optional reference
/// image and ground truth (read in lockstep, slice by slice).
pub fn inspect(mask: &Path, opts: &InspectOptions) -> Result<InspectReport, InspectError> {
    let mut mask_stream = start(VolumeReader::open(mask)?)?;
    let header = mask_stream.header().clone();
    let tolerance = opts.geometry_tolerance;
    // A second image off the label map's grid is an answer, not an error: every
    // geometry difference is reported, and only the figures that need voxel-for-voxel
    // correspondence (intensities, overlap) are skipped.
    let mut skipped = Vec::new();
    let (mut reference, reference_geometry) = match opts.reference.as_deref() {
        None => (None, None),
        Some(p) => {
            let (stream, geometry) = open_beside(p, &header, tolerance)?;
            if stream.is_none() {
                skipped.push(format!(
                    "per-label intensities under the reference image {}: not computed, it is not \
                     on the label map's voxel grid ({}); resample it onto the label map's grid \
                     to measure them",
                    p.display(),
                    geometry.differences.join("; ")
                ));
            }
            (stream, Some(geometry))
        }
    };
    let (mut ground_truth, gt_geometry) = match opts.ground_truth.as_deref() {
        None => (None, None),
        Some(p) => {
            let (stream, geometry) = open_beside(p, &header, tolerance)?;
            if stream.is_none() {
                skipped.push(format!(
                    "overlap with the ground truth {} (confusion, Dice, IoU): not computed, it is \
                     not on the label map's voxel grid ({}); resample it onto the label map's \
                     grid (nearest-neighbour) to compare",
                    p.display(),
                    geometry.differences.join("; ")
                ));
            }
            (stream, Some(geometry))
        }
    };

    let plan = PassPlan {
        components: opts.components,
        reference: reference.is_some(),
        ground_truth: ground_truth.is_some(),
    };
    let mut pass = InspectPass::new(header.shape, plan);
    let len = pass.slice_len();
    for z in 0..header.shape[2] {
        let mask_slice = next_slice(&mut mask_stream, z, len)?;
        let ref_slice = match &mut reference {
            Some(r) => Some(next_slice(r, z, len)?),
            None => None,
        };
        let gt_slice = match &mut ground_truth {
            Some(r) => Some(next_slice(r, z, len)?),
            None => None,
        };
        pass.push(mask_slice, ref_slice, gt_slice);
    }
    let result = pass.finish();

    let voxel_volume_ml = header.voxel_volume_ml();
    let labels = report::label_stats(
        &result.tally,
        voxel_volume_ml,
        &header.affine,
        result.components.as_ref(),
        result.intensity.as_ref(),
    );
    let (comparison, ground_truth_geometry) = match (ground_truth, result.confusion, gt_geometry) {
        (Some(gt), Some(tally), Some(geometry)) => (
            Some(Comparison::from_tally(
                mask.display().to_string(),
                gt.path().display().to_string(),
                geometry,
                tally,
            )),
            None,
        ),
        // Off the grid: the geometry alone, next to the reason in `skipped`.
        (_, _, geometry) => (None, geometry),
    };
    let t = result.tally;
    Ok(InspectReport {
        schema_version: SCHEMA_VERSION.to_string(),
        mask: mask_info(mask, &header),
        voxel_volume_ml,
        total_voxels: t.total_voxels,
        background_voxels: t.background_voxels,
        non_integer_voxels: t.non_integer_voxels,
        nan_voxels: t.nan_voxels,
        value_255_voxels: t.value_255_voxels,
        integer_valued: t.non_integer_voxels == 0 && t.nan_voxels == 0,
        labels,
        reference_path: opts.reference.as_ref().map(|p| p.display().to_string()),
        reference_geometry,
        ground_truth: comparison,
        ground_truth_geometry,
        skipped,
        not_for_clinical_use: crate::NOT_FOR_CLINICAL_USE.to_string(),
    })
}

/// Open a second image and compare its geometry with the label map's; start reading
/// it only when it has the label map's shape (voxel-for-voxel correspondence).
fn open_beside(
    path: &Path,
    mask_header: &Header,
    tolerance: f64,
) -> Result<(Option<SliceStream>, GeometryComparison), InspectError> {
    let reader = VolumeReader::open(path)?;
    let geometry = compare_geometry(mask_header, reader.header(), tolerance);
    if reader.header().shape != mask_header.shape {
        return Ok((None, geometry));
    }
    Ok((Some(start(reader)?), geometry))
}

/// Compare a predicted label map with a ground truth in one streamed pass over both:
/// joint histogram, per-label Dice and IoU, geometry (default tolerance).
pub fn compare_label_maps(pred: &Path, gt: &Path) -> Result<Comparison, InspectError> {
    let mut pred_stream = start(VolumeReader::open(pred)?)?;
    let header = pred_stream.header().clone();
    let mut gt_stream = open_on_grid(gt, "ground truth", pred, &header)?;
    let len = header.shape[0] * header.shape[1];
    let mut acc = confusion::ConfusionAccumulator::new(header.shape[0], header.shape[1]);
    for z in 0..header.shape[2] {
        let pred_slice = next_slice(&mut pred_stream, z, len)?;
        let gt_slice = next_slice(&mut gt_stream, z, len)?;
        acc.push_slice(pred_slice, gt_slice);
    }
    Ok(Comparison::from_tally(
        pred.display().to_string(),
        gt.display().to_string(),
        compare_geometry(&header, gt_stream.header(), DEFAULT_GEOMETRY_TOLERANCE),
        acc.finish(),
    ))
}

/// Start reading a volume ahead on its own thread.
fn start(reader: VolumeReader) -> Result<SliceStream, InspectError> {
    let path = reader.path().to_path_buf();
    SliceStream::spawn(reader).map_err(|source| InspectError::Thread { path, source })
}

/// Open a second image, insist it has the label map's shape, start reading it.
fn open_on_grid(
    path: &Path,
    role: &'static str,
    mask: &Path,
    mask_header: &Header,
) -> Result<SliceStream, InspectError> {
    let reader = VolumeReader::open(path)?;
    if reader.header().shape != mask_header.shape {
        return Err(InspectError::ShapeMismatch {
            role,
            mask: mask.to_path_buf(),
            mask_shape: mask_header.shape,
            other: path.to_path_buf(),
            other_shape: reader.header().shape,
        });
    }
    start(reader)
}

/// Read slice `z`, insisting it is there and has `len` values.
fn next_slice(stream: &mut SliceStream, z: usize, len: usize) -> Result<&[f64], InspectError> {
    let path = stream.path().to_path_buf();
    let short = |detail: String| InspectError::ShortVolume { path, detail };
    match stream.next_slice()? {
        None => Err(short(format!(
            "no z-slice {z} although the header promises it"
        ))),
        Some(slice) if slice.len() != len => Err(short(format!(
            "z-slice {z} holds {} values, expected {len}",
            slice.len()
        ))),
        Some(slice) => Ok(slice),
    }
}
