//! Each entry's DICOM header (parsed by dicom-rs up to the pixel data), grouped into
//! series by SeriesInstanceUID, and the choice of one series.
//!
//! Only the attributes of [`SliceMeta`] are read. Identifying attributes (patient
//! name, id, birth date, ...) are never read, so they cannot leak.

use std::collections::BTreeMap;
use std::path::Path;

use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, OpenFileOptions};

use super::bounds;
use super::source::Source;
use super::DicomError;

/// What the conversion needs of one file.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct SliceMeta {
    /// Index of the entry in its [`Source`].
    pub entry: usize,
    pub series_uid: String,
    pub study_uid: Option<String>,
    pub modality: Option<String>,
    /// SeriesDescription: shown only when a series must be chosen, never recorded.
    pub description: Option<String>,
    pub instance_number: Option<i64>,
    pub rows: u32,
    pub columns: u32,
    pub frames: u32,
    pub samples_per_pixel: u16,
    pub bits_allocated: u16,
    pub photometric: String,
    /// (row spacing, column spacing), as DICOM orders PixelSpacing.
    pub pixel_spacing: Option<[f64; 2]>,
    pub orientation: Option<[f64; 6]>,
    pub position: Option<[f64; 3]>,
    pub slope: f64,
    pub intercept: f64,
    pub transfer_syntax: String,
    pub bytes: u64,
    /// Bytes of pixel data the file actually holds (measured by [`bounds`]).
    pub pixel_bytes: u64,
}

impl SliceMeta {
    /// Bytes of native pixel data the header promises: rows × columns × frames ×
    /// samples × bytes per sample (saturating: a lying header cannot overflow it).
    pub(crate) fn promised_pixel_bytes(&self) -> u64 {
        let samples = u64::from(self.rows)
            .saturating_mul(u64::from(self.columns))
            .saturating_mul(u64::from(self.frames))
            .saturating_mul(u64::from(self.samples_per_pixel));
        samples
            .saturating_mul(u64::from(self.bits_allocated))
            .div_ceil(8)
    }
}

/// A source, its series, and what was skipped.
#[derive(Debug, Clone)]
pub(crate) struct Scan {
    pub source: Source,
    /// Slices by SeriesInstanceUID.
    pub series: BTreeMap<String, Vec<SliceMeta>>,
    pub not_dicom: usize,
    pub not_image: usize,
}

/// One series, as a refusal lists it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SeriesSummary {
    pub uid: String,
    pub modality: Option<String>,
    pub description: Option<String>,
    pub slices: usize,
    pub rows: u32,
    pub columns: u32,
    pub bytes: u64,
}

impl std::fmt::Display for SeriesSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "series_uid {}: modality {}, description \"{}\", {} slices of {}x{} ({:.1} MB)",
            self.uid,
            self.modality.as_deref().unwrap_or("?"),
            self.description.as_deref().unwrap_or(""),
            self.slices,
            self.columns,
            self.rows,
            self.bytes as f64 / 1e6
        )
    }
}

/// The series chosen for conversion, with its source.
#[derive(Debug, Clone)]
pub(crate) struct Chosen {
    pub source: Source,
    pub slices: Vec<SliceMeta>,
    pub other_series: usize,
    pub skipped_entries: usize,
}

impl Chosen {
    /// The DICOM Modality of the series (of its first slice).
    pub(crate) fn modality(&self) -> Option<&str> {
        self.slices.first().and_then(|s| s.modality.as_deref())
    }
}

/// Read the header of every entry of `path` (a directory or a zip) and group the
/// images into series.
pub(crate) fn scan(path: &Path) -> Result<Scan, DicomError> {
    let source = Source::open(path)?;
    let mut series: BTreeMap<String, Vec<SliceMeta>> = BTreeMap::new();
    let (mut not_dicom, mut not_image) = (0, 0);
    let all: Vec<usize> = (0..source.len()).collect();
    source.read_each(&all, |i, bytes| {
        // Bounded before dicom-rs sees it: nesting, lengths and sizes (see bounds).
        let Some(walked) = bounds::check(&bytes, &source.path, source.name(i))? else {
            not_dicom += 1;
            return Ok(());
        };
        let parsed = OpenFileOptions::new()
            .read_until(tags::PIXEL_DATA)
            .from_reader(bytes.as_slice());
        match parsed {
            Err(_) => not_dicom += 1,
            Ok(obj) => match slice_meta(&obj, i, bytes.len() as u64) {
                Some(mut meta) => {
                    meta.pixel_bytes = walked.pixel_bytes.unwrap_or(0);
                    series
                        .entry(meta.series_uid.clone())
                        .or_default()
                        .push(meta)
                }
                None => not_image += 1,
            },
        }
        Ok(())
    })?;
    Ok(Scan {
        source,
        series,
        not_dicom,
        not_image,
    })
}

fn text(obj: &DefaultDicomObject, tag: dicom_object::Tag) -> Option<String> {
    let value = obj.get(tag)?.to_str().ok()?;
    let trimmed = value.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    (!trimmed.is_empty()).then(|| trimmed.to_string())
}

fn floats<const N: usize>(obj: &DefaultDicomObject, tag: dicom_object::Tag) -> Option<[f64; N]> {
    let values = obj.get(tag)?.to_multi_float64().ok()?;
    let array: [f64; N] = values.get(..N)?.try_into().ok()?;
    array.iter().all(|v| v.is_finite()).then_some(array)
}

fn float(obj: &DefaultDicomObject, tag: dicom_object::Tag) -> Option<f64> {
    obj.get(tag)?.to_float64().ok().filter(|v| v.is_finite())
}

fn int<T: TryFrom<i64>>(obj: &DefaultDicomObject, tag: dicom_object::Tag) -> Option<T> {
    T::try_from(obj.get(tag)?.to_int::<i64>().ok()?).ok()
}

/// The slice's metadata; `None` for a DICOM object that is no image of a series
/// (a DICOMDIR, a structured report, a presentation state).
fn slice_meta(obj: &DefaultDicomObject, entry: usize, bytes: u64) -> Option<SliceMeta> {
    let series_uid = text(obj, tags::SERIES_INSTANCE_UID)?;
    let rows: u32 = int(obj, tags::ROWS)?;
    let columns: u32 = int(obj, tags::COLUMNS)?;
    Some(SliceMeta {
        entry,
        series_uid,
        study_uid: text(obj, tags::STUDY_INSTANCE_UID),
        modality: text(obj, tags::MODALITY),
        description: text(obj, tags::SERIES_DESCRIPTION),
        instance_number: int(obj, tags::INSTANCE_NUMBER),
        rows,
        columns,
        frames: int(obj, tags::NUMBER_OF_FRAMES).unwrap_or(1),
        samples_per_pixel: int(obj, tags::SAMPLES_PER_PIXEL).unwrap_or(1),
        bits_allocated: int(obj, tags::BITS_ALLOCATED).unwrap_or(0),
        photometric: text(obj, tags::PHOTOMETRIC_INTERPRETATION).unwrap_or_default(),
        pixel_spacing: floats::<2>(obj, tags::PIXEL_SPACING),
        orientation: floats::<6>(obj, tags::IMAGE_ORIENTATION_PATIENT),
        position: floats::<3>(obj, tags::IMAGE_POSITION_PATIENT),
        slope: float(obj, tags::RESCALE_SLOPE).unwrap_or(1.0),
        intercept: float(obj, tags::RESCALE_INTERCEPT).unwrap_or(0.0),
        transfer_syntax: obj.meta().transfer_syntax().to_string(),
        bytes,
        pixel_bytes: 0,
    })
}

impl Scan {
    /// Every series, for a listing.
    pub(crate) fn summaries(&self) -> Vec<SeriesSummary> {
        self.series
            .iter()
            .map(|(uid, slices)| {
                let first = &slices[0];
                SeriesSummary {
                    uid: uid.clone(),
                    modality: first.modality.clone(),
                    description: first.description.clone(),
                    slices: slices.len(),
                    rows: first.rows,
                    columns: first.columns,
                    bytes: slices.iter().map(|s| s.bytes).sum(),
                }
            })
            .collect()
    }

    fn listing(&self) -> String {
        self.summaries()
            .iter()
            .map(|s| format!("\n  - {s}"))
            .collect()
    }

    /// The series to convert: the only one, or the one `series_uid` names.
    pub(crate) fn choose(mut self, series_uid: Option<&str>) -> Result<Chosen, DicomError> {
        let shown = self.source.path.display().to_string();
        if self.series.is_empty() {
            return Err(DicomError::NoSeries(format!(
                "{shown}: no DICOM image found ({} entries read: {} not DICOM, {} DICOM without \
                 an image). Fix: pass the directory or .zip that holds the series' DICOM files",
                self.source.len(),
                self.not_dicom,
                self.not_image
            )));
        }
        let uid = match series_uid {
            Some(uid) if self.series.contains_key(uid) => uid.to_string(),
            Some(uid) => {
                return Err(DicomError::Choice(format!(
                    "argument 'series_uid': {uid} is not a series of {shown}; it holds:{}\nFix: \
                     pass one of the series_uid values listed",
                    self.listing()
                )))
            }
            None if self.series.len() == 1 => self.series.keys().next().cloned().unwrap(),
            None => {
                return Err(DicomError::Choice(format!(
                    "{shown} holds {} DICOM series; ctmr-skill converts one:{}\nFix: pass \
                     series_uid naming the series to segment (CLI: --series-uid)",
                    self.series.len(),
                    self.listing()
                )))
            }
        };
        let slices = self.series.remove(&uid).expect("the uid was found above");
        Ok(Chosen {
            other_series: self.series.len(),
            skipped_entries: self.not_dicom + self.not_image,
            source: self.source,
            slices,
        })
    }
}
