//! From a chosen series to the NIfTI volume the upstream reads.
//!
//! [`plan`] makes every check that needs only the headers (transfer syntax, frames,
//! grid, then [`super::geometry::layout`]); [`convert`] decodes the pixels with
//! dicom-pixeldata in the sorted order, applies RescaleSlope/RescaleIntercept (the
//! library's modality LUT), and writes `int16` when every value is an integer in
//! range (as CT in HU is) and `float32` otherwise, so the values are exactly
//! `stored × slope + intercept` either way.

use std::path::Path;
use std::time::Instant;

use dicom_object::OpenFileOptions;
use dicom_pixeldata::PixelDecoder;
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};
use sha2::{Digest, Sha256};

use super::geometry::{layout, Layout};
use super::info::{Check, ConversionCheck, DicomSeriesInfo, RescaleRange};
use super::series::{Chosen, SliceMeta};
use super::source::Source;
use super::{DicomError, CONVERT_ELSEWHERE};
use crate::nifti::writer::{nii_gz_bytes, Volume, Voxels};

/// Largest volume converted: 2^30 voxels (4 GiB as float32 in memory).
pub(crate) const MAX_VOXELS: u64 = 1 << 30;
/// Largest slice decoded: 2^26 pixels (8192 x 8192; CT slices are 512 x 512 to 2048 x
/// 2048). dicom-pixeldata decodes a slice to `f64` values without a fallible
/// allocation, so this bounds that allocation at 512 MiB.
pub(crate) const MAX_SLICE_PIXELS: u64 = 1 << 26;

/// A series that passed every header check, ready to convert.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub chosen: Chosen,
    pub layout: Layout,
    /// UID and name, e.g. `1.2.840.10008.1.2.1 (Explicit VR Little Endian)`.
    pub transfer_syntax: String,
}

impl Plan {
    fn slices_sorted(&self) -> impl Iterator<Item = &SliceMeta> {
        self.layout.order.iter().map(|&k| &self.chosen.slices[k])
    }

    /// (columns, rows, slices): the volume's shape.
    pub(crate) fn shape(&self) -> [usize; 3] {
        let first = &self.chosen.slices[0];
        [
            first.columns as usize,
            first.rows as usize,
            self.chosen.slices.len(),
        ]
    }
}

/// Every check the headers allow, before any pixel is decoded.
pub(crate) fn plan(chosen: Chosen) -> Result<Plan, DicomError> {
    let name = |k: usize| chosen.source.name(chosen.slices[k].entry).to_string();
    let mut checks = Vec::new();
    let transfer_syntax = decodable(&chosen.slices, &name)?;
    checks.push(passed(
        Check::TransferSyntaxDecodable,
        format!("every slice in {transfer_syntax}"),
    ));
    if let Some(k) = (0..chosen.slices.len()).find(|&k| chosen.slices[k].frames != 1) {
        return Err(DicomError::check(
            Check::SingleFrame,
            format!(
                "{} is a multi-frame object ({} frames); ctmr-skill converts series of \
                 single-frame slices",
                name(k),
                chosen.slices[k].frames
            ),
            CONVERT_ELSEWHERE,
        ));
    }
    checks.push(passed(
        Check::SingleFrame,
        format!("{} single-frame slices", chosen.slices.len()),
    ));
    checks.push(passed(Check::SameGrid, same_grid(&chosen.slices, &name)?));
    pixels_present(&chosen.slices, &name)?;
    let mut layout = layout(&chosen.slices, &name)?;
    checks.append(&mut layout.checks);
    layout.checks = checks;
    let plan = Plan {
        chosen,
        layout,
        transfer_syntax,
    };
    let voxels: u64 = plan.shape().iter().map(|&n| n as u64).product();
    if voxels > MAX_VOXELS {
        return Err(DicomError::Limit(format!(
            "the series has {voxels} voxels, more than the {MAX_VOXELS} ctmr-skill converts. \
             Fix: {CONVERT_ELSEWHERE}"
        )));
    }
    Ok(plan)
}

fn passed(check: Check, detail: String) -> ConversionCheck {
    ConversionCheck {
        check,
        passed: true,
        detail,
    }
}

/// The series' transfer syntax, if its pixel data can be decoded here.
fn decodable(slices: &[SliceMeta], name: &dyn Fn(usize) -> String) -> Result<String, DicomError> {
    let mut described = String::new();
    for (k, s) in slices.iter().enumerate() {
        let uid = s.transfer_syntax.as_str();
        let ts = TransferSyntaxRegistry.get(uid);
        let label = format!("{uid} ({})", ts.map_or("unknown", |t| t.name()));
        if !ts.is_some_and(|t| t.can_decode_all()) {
            return Err(DicomError::check(
                Check::TransferSyntaxDecodable,
                format!(
                    "{} is encoded in transfer syntax {label}, whose pixel data ctmr-skill \
                     cannot decode (it reads native, uncompressed or deflated, pixel data only)",
                    name(k)
                ),
                format!(
                    "decompress the series first (e.g. `gdcmconv --raw` or `dcmdjpeg`), or \
                     {CONVERT_ELSEWHERE}"
                ),
            ));
        }
        if k == 0 {
            described = label;
        }
    }
    Ok(described)
}

/// Every slice holds the pixel bytes its header promises, so no volume is reserved
/// (and no frame decoded) for a header without pixels; and a slice's decoding stays
/// bounded: 8, 16 or 32 bits a pixel, at most [`MAX_SLICE_PIXELS`].
fn pixels_present(slices: &[SliceMeta], name: &dyn Fn(usize) -> String) -> Result<(), DicomError> {
    let first = &slices[0];
    let pixels = u64::from(first.rows) * u64::from(first.columns);
    if !matches!(first.bits_allocated, 8 | 16 | 32) || pixels > MAX_SLICE_PIXELS {
        return Err(DicomError::Limit(format!(
            "{}: slices of {} x {} pixels of {} bits; ctmr-skill decodes slices of at most \
             {MAX_SLICE_PIXELS} pixels of 8, 16 or 32 bits (a CT or MR slice is 512 x 512 of \
             16 bits). Fix: {CONVERT_ELSEWHERE}",
            name(0),
            first.columns,
            first.rows,
            first.bits_allocated
        )));
    }
    match slices
        .iter()
        .position(|s| s.pixel_bytes < s.promised_pixel_bytes())
    {
        None => Ok(()),
        Some(k) => Err(short_pixels(&name(k), &slices[k], slices[k].pixel_bytes)),
    }
}

fn short_pixels(name: &str, s: &SliceMeta, present: u64) -> DicomError {
    DicomError::Bounds(format!(
        "{name}: holds {present} bytes of pixel data where its header ({} rows x {} columns x \
         {} frames x {} samples of {} bits) promises {}; a slice must hold every pixel its \
         header declares. Fix: the file is truncated or damaged: export the series again, or \
         {CONVERT_ELSEWHERE}",
        s.rows,
        s.columns,
        s.frames,
        s.samples_per_pixel,
        s.bits_allocated,
        s.promised_pixel_bytes()
    ))
}

/// Rows, columns, pixel spacing and sample format the same on every slice.
fn same_grid(slices: &[SliceMeta], name: &dyn Fn(usize) -> String) -> Result<String, DicomError> {
    let first = &slices[0];
    let refuse = |k: usize, what: String| {
        DicomError::check(
            Check::SameGrid,
            format!("{}: {what}", name(k)),
            format!("pass the slices of one volume only, or {CONVERT_ELSEWHERE}"),
        )
    };
    for (k, s) in slices.iter().enumerate() {
        if s.samples_per_pixel != 1 || !s.photometric.starts_with("MONOCHROME") {
            return Err(refuse(
                k,
                format!(
                    "photometric interpretation {} with {} samples per pixel; a CT or MR volume \
                     is greyscale (MONOCHROME1/2, one sample)",
                    s.photometric, s.samples_per_pixel
                ),
            ));
        }
        if (s.rows, s.columns) != (first.rows, first.columns) {
            return Err(refuse(
                k,
                format!(
                    "mixed sizes: {}x{} where {} is {}x{}",
                    s.columns,
                    s.rows,
                    name(0),
                    first.columns,
                    first.rows
                ),
            ));
        }
        let spacing_differs = match (s.pixel_spacing, first.pixel_spacing) {
            (Some(a), Some(b)) => (a[0] - b[0]).abs() > 1e-4 || (a[1] - b[1]).abs() > 1e-4,
            _ => false,
        };
        if spacing_differs || s.bits_allocated != first.bits_allocated {
            return Err(refuse(
                k,
                format!(
                    "PixelSpacing {:?} / BitsAllocated {} differ from {} ({:?} / {})",
                    s.pixel_spacing,
                    s.bits_allocated,
                    name(0),
                    first.pixel_spacing,
                    first.bits_allocated
                ),
            ));
        }
    }
    Ok(format!(
        "{} slices of {}x{}, {} bits, {}",
        slices.len(),
        first.columns,
        first.rows,
        first.bits_allocated,
        first.photometric
    ))
}

/// Decode the planned series and write it to `out` (atomically); what the evidence records.
pub(crate) fn convert(plan: &Plan, out: &Path) -> Result<DicomSeriesInfo, DicomError> {
    let t0 = Instant::now();
    let shape = plan.shape();
    let per_slice = shape[0] * shape[1];
    let source = &plan.chosen.source;
    let sorted: Vec<&SliceMeta> = plan.slices_sorted().collect();
    let entries: Vec<usize> = sorted.iter().map(|s| s.entry).collect();
    let mut values: Vec<f32> = reserved(per_slice * shape[2])?;
    let mut fits_int16 = true;
    let mut listing = Sha256::new();
    let mut k = 0;
    source.read_each(&entries, |entry, bytes| {
        let file_sha = hex(&Sha256::digest(&bytes));
        listing.update(format!("{file_sha}  {}\n", source.name(entry)).as_bytes());
        let slice = decode(&bytes, sorted[k], per_slice, source, entry)?;
        k += 1;
        for v in slice {
            fits_int16 &= v.fract() == 0.0 && (-32768.0..=32767.0).contains(&v);
            values.push(v as f32);
        }
        Ok(())
    })?;
    let voxels = if fits_int16 {
        let mut ints: Vec<i16> = reserved(values.len())?;
        ints.extend(values.iter().map(|&v| v as i16));
        Voxels::Int16(ints)
    } else {
        Voxels::Float32(values)
    };
    let volume = Volume {
        shape,
        affine: plan.layout.affine_ras(),
        voxels,
        description: "ctmr-skill: converted DICOM series; not for clinical use".into(),
    };
    let bytes = nii_gz_bytes(&volume).map_err(DicomError::Write)?;
    crate::atomic::write(out, &bytes)
        .map_err(|e| DicomError::Write(format!("{}: {e}", out.display())))?;
    Ok(info(
        plan,
        out,
        volume.voxels.dtype(),
        hex(&listing.finalize()),
        t0,
    ))
}

/// An empty vector with room for `n` values, or a failing call (never an abort)
/// when the memory cannot be had.
fn reserved<T>(n: usize) -> Result<Vec<T>, DicomError> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| {
        DicomError::Limit(format!(
            "the volume needs {} MiB of memory, which could not be reserved. Fix: free memory \
             (or raise the process's memory limit), or {CONVERT_ELSEWHERE}",
            (n as u64).saturating_mul(std::mem::size_of::<T>() as u64) >> 20
        ))
    })?;
    Ok(v)
}

/// One slice's values, rescaled (stored × slope + intercept), row by row. The bytes
/// are bounded again (they were read anew since the scan) and must hold the pixels
/// the planned slice promises before anything is decoded.
fn decode(
    bytes: &[u8],
    slice: &SliceMeta,
    expected: usize,
    source: &Source,
    entry: usize,
) -> Result<Vec<f64>, DicomError> {
    let name = source.name(entry);
    let present = super::bounds::check(bytes, &source.path, name)?
        .and_then(|w| w.pixel_bytes)
        .unwrap_or(0);
    if present < slice.promised_pixel_bytes() {
        return Err(short_pixels(name, slice, present));
    }
    let failed = |what: String| {
        DicomError::check(
            Check::TransferSyntaxDecodable,
            format!("{name}: the pixel data cannot be decoded: {what}"),
            format!("re-export the series, or {CONVERT_ELSEWHERE}"),
        )
    };
    let obj = OpenFileOptions::new()
        .from_reader(bytes)
        .map_err(|e| failed(e.to_string()))?;
    let pixels = obj.decode_pixel_data().map_err(|e| failed(e.to_string()))?;
    let values: Vec<f64> = pixels.to_vec_frame(0).map_err(|e| failed(e.to_string()))?;
    if values.len() != expected {
        return Err(failed(format!(
            "{} values where the slice has {expected}",
            values.len()
        )));
    }
    Ok(values)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

fn info(
    plan: &Plan,
    out: &Path,
    dtype: &str,
    files_sha256: String,
    t0: Instant,
) -> DicomSeriesInfo {
    let slices = &plan.chosen.slices;
    let first = &slices[0];
    let fold = |f: fn(&SliceMeta) -> f64, pick: fn(f64, f64) -> f64| {
        slices.iter().map(f).fold(f(first), pick)
    };
    let layout = &plan.layout;
    DicomSeriesInfo {
        source_path: plan.chosen.source.path.display().to_string(),
        container: plan.chosen.source.container,
        series_instance_uid: first.series_uid.clone(),
        study_instance_uid: first.study_uid.clone(),
        dicom_modality: first.modality.clone(),
        modality_warning: None,
        slice_count: slices.len(),
        rows: first.rows,
        columns: first.columns,
        spacing: layout.spacing.iter().copied().map(round6).collect(),
        image_orientation_patient: layout.orientation.to_vec(),
        slice_normal: layout.normal.iter().copied().map(round6).collect(),
        transfer_syntax: plan.transfer_syntax.clone(),
        rescale: RescaleRange {
            slope_min: fold(|s| s.slope, f64::min),
            slope_max: fold(|s| s.slope, f64::max),
            intercept_min: fold(|s| s.intercept, f64::min),
            intercept_max: fold(|s| s.intercept, f64::max),
        },
        output_dtype: dtype.into(),
        checks: layout.checks.clone(),
        files_sha256,
        other_series: plan.chosen.other_series,
        skipped_entries: plan.chosen.skipped_entries,
        converted_path: out.display().to_string(),
        conversion_seconds: (t0.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";

    fn chosen(n: usize, edit: impl Fn(usize, &mut SliceMeta)) -> Chosen {
        let names: Vec<String> = (0..n).map(|k| format!("IM{k}")).collect();
        let slices = (0..n)
            .map(|k| {
                let mut s = SliceMeta {
                    entry: k,
                    series_uid: "1.2.3".into(),
                    rows: 4,
                    columns: 5,
                    frames: 1,
                    samples_per_pixel: 1,
                    bits_allocated: 16,
                    photometric: "MONOCHROME2".into(),
                    pixel_spacing: Some([0.5, 0.5]),
                    orientation: Some([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]),
                    position: Some([0.0, 0.0, 2.0 * k as f64]),
                    slope: 1.0,
                    transfer_syntax: EXPLICIT_LE.into(),
                    pixel_bytes: 40,
                    ..SliceMeta::default()
                };
                edit(k, &mut s);
                s
            })
            .collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        Chosen {
            source: Source::listed(&refs),
            slices,
            other_series: 0,
            skipped_entries: 0,
        }
    }

    fn refusal(c: Chosen) -> String {
        plan(c).unwrap_err().to_string()
    }

    #[test]
    fn a_native_series_passes_every_check() {
        let p = plan(chosen(3, |_, _| {})).unwrap();
        assert_eq!(p.shape(), [5, 4, 3]);
        let names: Vec<&str> = p.layout.checks.iter().map(|c| c.check.as_str()).collect();
        assert_eq!(names.len(), 8, "{names:?}");
        assert!(p.transfer_syntax.contains("Explicit VR Little Endian"));
    }

    #[test]
    fn a_slice_without_the_pixels_its_header_promises_is_refused_before_decoding() {
        // The report's series: the header promises 40 bytes a slice, one holds 8.
        let e = refusal(chosen(3, |k, s| {
            if k == 1 {
                s.pixel_bytes = 8;
            }
        }));
        assert!(
            e.contains("IM1: holds 8 bytes of pixel data") && e.contains("promises 40"),
            "{e}"
        );
        assert!(e.contains("Fix: "), "{e}");
        // A lying header cannot overflow the promise.
        let e = refusal(chosen(1, |_, s| {
            (s.rows, s.columns) = (u32::MAX, u32::MAX);
        }));
        assert!(e.contains("at most 67108864 pixels"), "{e}");
        let e = refusal(chosen(1, |_, s| s.bits_allocated = 1));
        assert!(e.contains("pixels of 1 bits"), "{e}");
        let e = refusal(chosen(1, |_, s| (s.rows, s.columns) = (8193, 8192)));
        assert!(e.contains("slices of 8192 x 8193 pixels"), "{e}");
    }

    #[test]
    fn compressed_multi_frame_and_mixed_series_are_refused_by_name() {
        let e = refusal(chosen(3, |k, s| {
            if k == 1 {
                s.transfer_syntax = "1.2.840.10008.1.2.4.50".into();
            }
        }));
        assert!(
            e.contains("transfer_syntax_decodable") && e.contains("JPEG Baseline"),
            "{e}"
        );
        assert!(
            e.contains("IM1") && e.contains("1.2.840.10008.1.2.4.50"),
            "{e}"
        );
        let e = refusal(chosen(3, |k, s| s.frames = if k == 2 { 40 } else { 1 }));
        assert!(
            e.contains("single_frame") && e.contains("IM2") && e.contains("40 frames"),
            "{e}"
        );
        let e = refusal(chosen(3, |k, s| {
            if k == 1 {
                s.rows = 8;
            }
        }));
        assert!(
            e.contains("same_grid") && e.contains("mixed sizes") && e.contains("IM1"),
            "{e}"
        );
        let e = refusal(chosen(3, |_, s| {
            s.photometric = "RGB".into();
            s.samples_per_pixel = 3;
        }));
        assert!(e.contains("same_grid") && e.contains("RGB"), "{e}");
        let e = refusal(chosen(3, |k, s| {
            if k == 2 {
                s.pixel_spacing = Some([0.5, 0.6]);
            }
        }));
        assert!(e.contains("same_grid") && e.contains("PixelSpacing"), "{e}");
    }
}
