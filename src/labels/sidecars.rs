//! Viewer sidecars next to a mask. `labels.json` is the source of truth; the
//! 3D Slicer colour table and the ITK-SNAP label description are derived from
//! the same entries, so the three can never disagree. Only the ids present in
//! the mask (plus background) are listed, so a viewer's legend shows what is
//! there and nothing else.
//!
//! `labels.json`:
//! ```json
//! { "format": "ctmr-skill/labels/v1",
//!   "note": "<not for clinical use>",
//!   "source": { "files": [ { "path": "...", "sha256": "..." } ] },
//!   "mask": { "file": "<file name>", "sha256": "..." } | null,
//!   "labels": { "0": { "name": "background", "deprecated": false, "colour": [0, 0, 0], "in_vocabulary": true },
//!               "14": { "name": "left kidney", "deprecated": false, "colour": [r, g, b], "in_vocabulary": true,
//!                       "datasets": [...], "modalities": [...], "dataset_labels": [...] } } }
//! ```
//! An id in the mask that the vocabulary does not define is still listed (so a
//! viewer shows it) with `in_vocabulary: false`. Upstream post-processing writes
//! NaN voxels as 255, which in NV-Segment-CTMR is also a class
//! (`Left-AnG---angular-gyrus`, an MRI_BRAIN id): when 255 is present and defined,
//! a `warnings` entry says that such voxels may be either.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::load::read_json;
use super::{DatasetLabel, LabelClass, LabelError, LabelTable, SourceFile};

pub(crate) const LABELS_JSON_FILE: &str = "labels.json";
pub(crate) const SLICER_CTBL_FILE: &str = "labels.ctbl";
pub(crate) const ITKSNAP_FILE: &str = "labels_itksnap.txt";
/// The `format` field of `labels.json`.
pub(crate) const LABELS_JSON_FORMAT: &str = "ctmr-skill/labels/v1";

const BACKGROUND: &str = "background";
/// Upstream post-processing writes NaN voxels as 255.
const NAN_MARKER: u32 = 255;

/// The three files written by [`write_sidecars`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sidecars {
    pub labels_json: PathBuf,
    pub slicer_ctbl: PathBuf,
    pub itksnap_txt: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct LabelsJson {
    format: String,
    note: String,
    source: SourceSection,
    mask: Option<MaskSection>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
    labels: BTreeMap<u32, SidecarLabel>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SourceSection {
    files: Vec<SourceFile>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct MaskSection {
    file: String,
    sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SidecarLabel {
    name: String,
    deprecated: bool,
    colour: [u8; 3],
    #[serde(default = "in_vocabulary_default")]
    in_vocabulary: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    datasets: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    modalities: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    dataset_labels: Vec<DatasetLabel>,
}

fn in_vocabulary_default() -> bool {
    true
}

/// A deterministic, well-spread colour per id: golden-ratio hue steps with
/// saturation and value cycling, so neighbouring ids differ visibly. Id 0
/// (background) is black.
pub fn colour_for(id: u32) -> [u8; 3] {
    if id == 0 {
        return [0, 0, 0];
    }
    const GOLDEN: f64 = 0.618_033_988_749_895;
    let hue = (f64::from(id) * GOLDEN).fract();
    let saturation = [0.85, 0.65, 0.5][(id % 3) as usize];
    let value = [0.95, 0.8, 0.65][((id / 3) % 3) as usize];
    hsv_to_rgb(hue, saturation, value)
}

fn hsv_to_rgb(h: f64, s: f64, v: f64) -> [u8; 3] {
    let sector = (h * 6.0).floor();
    let f = h * 6.0 - sector;
    let (p, q, t) = (v * (1.0 - s), v * (1.0 - f * s), v * (1.0 - (1.0 - f) * s));
    let (r, g, b) = match sector as u8 % 6 {
        0 => (v, t, p),
        1 => (q, v, p),
        2 => (p, v, t),
        3 => (p, q, v),
        4 => (t, p, v),
        _ => (v, p, q),
    };
    let byte = |x: f64| (x * 255.0).round().clamp(0.0, 255.0) as u8;
    [byte(r), byte(g), byte(b)]
}

fn entry_for(table: &LabelTable, id: u32) -> SidecarLabel {
    if id == 0 {
        return SidecarLabel {
            name: BACKGROUND.into(),
            deprecated: false,
            colour: colour_for(0),
            in_vocabulary: true,
            datasets: Vec::new(),
            modalities: Vec::new(),
            dataset_labels: Vec::new(),
        };
    }
    match table.get(id) {
        Some(class) => SidecarLabel {
            name: class.name.clone(),
            deprecated: class.deprecated,
            colour: class.colour,
            in_vocabulary: true,
            datasets: class.datasets.clone(),
            modalities: class.modalities.clone(),
            dataset_labels: class.dataset_labels.clone(),
        },
        None => SidecarLabel {
            name: if id == NAN_MARKER {
                format!("NaN marker ({NAN_MARKER}, not a class)")
            } else {
                format!("unlisted id {id} (not in the vocabulary)")
            },
            deprecated: false,
            colour: colour_for(id),
            in_vocabulary: false,
            datasets: Vec::new(),
            modalities: Vec::new(),
            dataset_labels: Vec::new(),
        },
    }
}

/// Write `labels.json`, `labels.ctbl` and `labels_itksnap.txt` into `dir` for
/// `ids` (those present in a mask) plus background; `mask` is the mask's path
/// and sha256, recorded by file name. Each file is written atomically.
pub fn write_sidecars(
    table: &LabelTable,
    ids: &BTreeSet<u32>,
    mask: Option<(&Path, &str)>,
    dir: &Path,
) -> std::io::Result<Sidecars> {
    let labels: BTreeMap<u32, SidecarLabel> = std::iter::once(0)
        .chain(ids.iter().copied())
        .map(|id| (id, entry_for(table, id)))
        .collect();
    let mut warnings = Vec::new();
    if let (true, Some(name)) = (ids.contains(&NAN_MARKER), table.name(NAN_MARKER)) {
        warnings.push(format!(
            "id {NAN_MARKER} is the class '{name}' and also the value upstream post-processing \
             writes for NaN voxels: its voxels may be either"
        ));
    }
    let document = LabelsJson {
        format: LABELS_JSON_FORMAT.into(),
        note: crate::NOT_FOR_CLINICAL_USE.into(),
        source: SourceSection {
            files: table.sources().to_vec(),
        },
        mask: mask.map(|(path, sha256)| MaskSection {
            file: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| path.display().to_string()),
            sha256: sha256.to_string(),
        }),
        warnings,
        labels,
    };
    let sidecars = Sidecars {
        labels_json: dir.join(LABELS_JSON_FILE),
        slicer_ctbl: dir.join(SLICER_CTBL_FILE),
        itksnap_txt: dir.join(ITKSNAP_FILE),
    };
    crate::atomic::write_json(&sidecars.labels_json, &document)?;
    crate::atomic::write(&sidecars.slicer_ctbl, slicer_ctbl(&document).as_bytes())?;
    crate::atomic::write(&sidecars.itksnap_txt, itksnap(&document).as_bytes())?;
    Ok(sidecars)
}

fn mask_line(document: &LabelsJson) -> String {
    match &document.mask {
        Some(mask) => format!("for mask {} (sha256 {})", mask.file, mask.sha256),
        None => "for no particular mask".into(),
    }
}

/// 3D Slicer colour table: `# ` comment lines, then `id name R G B A` with
/// whitespace in names replaced by underscores.
fn slicer_ctbl(document: &LabelsJson) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# 3D Slicer color table written by ctmr-skill from {LABELS_JSON_FILE} {}",
        mask_line(document)
    );
    let _ = writeln!(out, "# {}", document.note);
    let _ = writeln!(out, "# {} values", document.labels.len());
    for (id, label) in &document.labels {
        let name: String = label
            .name
            .chars()
            .map(|c| if c.is_whitespace() { '_' } else { c })
            .collect();
        let [r, g, b] = label.colour;
        let alpha = if *id == 0 { 0 } else { 255 };
        let _ = writeln!(out, "{id} {name} {r} {g} {b} {alpha}");
    }
    out
}

/// ITK-SNAP label description: its usual header, then
/// `IDX -R- -G- -B- -A-- VIS MSH "LABEL"` rows, 0 being "Clear Label".
fn itksnap(document: &LabelsJson) -> String {
    let mut out = String::new();
    let rule = "################################################";
    let header = [
        rule.to_string(),
        "# ITK-SnAP Label Description File".into(),
        format!(
            "# Written by ctmr-skill from {LABELS_JSON_FILE} {}",
            mask_line(document)
        ),
        format!("# {}", document.note),
        "# File format: ".into(),
        "# IDX   -R-  -G-  -B-  -A--  VIS MSH  LABEL".into(),
        "# Fields: ".into(),
        "#    IDX:   Zero-based index ".into(),
        "#    -R-:   Red color component (0..255)".into(),
        "#    -G-:   Green color component (0..255)".into(),
        "#    -B-:   Blue color component (0..255)".into(),
        "#    -A-:   Label transparency (0.00 .. 1.00)".into(),
        "#    VIS:   Label visibility (0 or 1)".into(),
        "#    MSH:   Label mesh visibility (0 or 1)".into(),
        "#  LABEL:   Label description ".into(),
        rule.to_string(),
    ];
    for line in header {
        let _ = writeln!(out, "{line}");
    }
    for (id, label) in &document.labels {
        let (name, [r, g, b], visible) = if *id == 0 {
            ("Clear Label".to_string(), [0, 0, 0], 0)
        } else {
            (label.name.replace('"', "'"), label.colour, 1)
        };
        let _ = writeln!(
            out,
            "{id:>5} {r:>5} {g:>4} {b:>4} {visible:>8} {visible:>2} {visible:>2}    \"{name}\""
        );
    }
    out
}

/// Read a `labels.json` written by [`write_sidecars`]: its vocabulary entries
/// (not background, not ids outside the vocabulary) and its recorded sources.
pub(super) fn load_labels_json(path: &Path) -> Result<LabelTable, LabelError> {
    let (value, _) = read_json(path)?;
    let document: LabelsJson = serde_json::from_value(value).map_err(|e| LabelError::BadValue {
        path: path.to_path_buf(),
        key: "(document)".into(),
        reason: format!("not a {LABELS_JSON_FORMAT} labels.json: {e}"),
    })?;
    if document.format != LABELS_JSON_FORMAT {
        return Err(LabelError::BadValue {
            path: path.to_path_buf(),
            key: "format".into(),
            reason: format!("'{}' is not '{LABELS_JSON_FORMAT}'", document.format),
        });
    }
    let classes = document
        .labels
        .into_iter()
        .filter(|(id, label)| *id != 0 && label.in_vocabulary)
        .map(|(id, label)| LabelClass {
            id,
            name: label.name,
            deprecated: label.deprecated,
            datasets: label.datasets,
            modalities: label.modalities,
            dataset_labels: label.dataset_labels,
            colour: label.colour,
        })
        .collect();
    let mut table = LabelTable::from_classes(classes);
    table.sources = document.source.files;
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_are_deterministic_distinct_and_background_is_black() {
        assert_eq!(colour_for(0), [0, 0, 0]);
        assert_eq!(colour_for(14), colour_for(14));
        let colours: BTreeSet<[u8; 3]> = (1..=345).map(colour_for).collect();
        assert_eq!(colours.len(), 345, "every class gets its own colour");
        assert!((1..=345).all(|id| colour_for(id) != [0, 0, 0]));
    }

    #[test]
    fn hsv_primaries() {
        assert_eq!(hsv_to_rgb(0.0, 1.0, 1.0), [255, 0, 0]);
        assert_eq!(hsv_to_rgb(1.0 / 3.0, 1.0, 1.0), [0, 255, 0]);
        assert_eq!(hsv_to_rgb(2.0 / 3.0, 1.0, 1.0), [0, 0, 255]);
        assert_eq!(hsv_to_rgb(0.5, 0.0, 0.5), [128, 128, 128]);
    }
}
