//! Anatomy bounds as data: per-class volume ranges, component caps, Dice floors and
//! the cross-class rules, keyed by NV-Segment-CTMR label id.
//!
//! Why data and not code: the numbers are population assumptions that reviewers
//! should read and change without touching the verdict logic. The published file
//! (`verifiers/ct_segmentation_quality_v1/anatomy_bounds.json`) is compiled into the
//! binary so a verifier run never depends on the working directory; a caller may
//! point [`super::VerifyOptions::bounds_path`] at another file.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The published bounds file, embedded at build time.
pub const EMBEDDED_BOUNDS_JSON: &str =
    include_str!("../../verifiers/ct_segmentation_quality_v1/anatomy_bounds.json");

/// Where the embedded bounds live in the repository (reported as their source).
pub(crate) const EMBEDDED_BOUNDS_SOURCE: &str =
    "verifiers/ct_segmentation_quality_v1/anatomy_bounds.json (embedded)";

/// Bounds for one label id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassBounds {
    /// Label id of the bilateral partner (right/left organ), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bilateral_partner_id: Option<u32>,
    /// Minimum Dice against a ground truth, if the class is floored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dice_floor: Option<f64>,
    /// Minimum share of the class's voxels in its largest 26-connected component.
    pub largest_cc_fraction_min: f64,
    /// Maximum number of 26-connected components.
    pub max_components: u64,
    /// Class name as the upstream label table spells it (checked by a test).
    pub name: String,
    /// Largest plausible volume in mL (inclusive).
    pub volume_ml_max: f64,
    /// Smallest plausible volume in mL (inclusive).
    pub volume_ml_min: f64,
}

/// The liver-larger-than-spleen rule, by id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LargerThanRule {
    pub larger_id: u32,
    pub smaller_id: u32,
}

/// Rules across classes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrossClassRules {
    /// |a−b| / ((a+b)/2) above which a bilateral pair fails.
    pub bilateral_symmetry_max_relative_diff: f64,
    pub liver_gt_spleen: LargerThanRule,
}

/// The whole bounds document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnatomyBounds {
    pub schema_version: String,
    pub description: String,
    /// Keyed by the label id as a decimal string (JSON object keys are strings).
    pub classes: BTreeMap<String, ClassBounds>,
    pub cross_class: CrossClassRules,
    /// The modalities the bounds apply to (organ volumes do not depend on the
    /// modality). For a modality other than `CT_BODY` only the classes of that
    /// modality's everything-set are bounded; the others are reported, not bounded.
    /// Absent in older files: `["CT_BODY"]`.
    #[serde(default = "ct_body_only")]
    pub modalities: Vec<String>,
}

fn ct_body_only() -> Vec<String> {
    vec!["CT_BODY".to_string()]
}

/// Why a bounds file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum BoundsError {
    #[error("cannot read anatomy bounds {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("anatomy bounds {path} are not valid: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

impl AnatomyBounds {
    /// The bounds published with this verifier.
    pub fn embedded() -> AnatomyBounds {
        // The embedded file is validated by a unit test, so this cannot fail in a build
        // that passed its tests; fall back to an explicit panic message otherwise.
        Self::parse(EMBEDDED_BOUNDS_JSON, Path::new(EMBEDDED_BOUNDS_SOURCE))
            .unwrap_or_else(|e| panic!("embedded anatomy bounds are invalid: {e}"))
    }

    /// Load and validate a bounds file.
    pub fn load(path: &Path) -> Result<AnatomyBounds, BoundsError> {
        let text =
            crate::files::read_to_string_capped(path, crate::files::JSON_CAP).map_err(|e| {
                BoundsError::Read {
                    path: path.to_path_buf(),
                    source: e.into_io_without_path(),
                }
            })?;
        Self::parse(&text, path)
    }

    /// Parse and validate bounds text; `path` names the source in errors.
    pub fn parse(text: &str, path: &Path) -> Result<AnatomyBounds, BoundsError> {
        let invalid = |reason: String| BoundsError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        let bounds: AnatomyBounds =
            serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
        for (key, class) in &bounds.classes {
            let id: u32 = key
                .parse()
                .map_err(|_| invalid(format!("class key {key:?} is not a label id")))?;
            let ok_range = class.volume_ml_min.is_finite()
                && class.volume_ml_max.is_finite()
                && class.volume_ml_min >= 0.0
                && class.volume_ml_min <= class.volume_ml_max;
            if !ok_range {
                return Err(invalid(format!(
                    "class {id}: volume range {}..{} is not a finite, ordered, non-negative range",
                    class.volume_ml_min, class.volume_ml_max
                )));
            }
            if !(0.0..=1.0).contains(&class.largest_cc_fraction_min) {
                return Err(invalid(format!(
                    "class {id}: largest_cc_fraction_min must lie in [0, 1]"
                )));
            }
            if class.max_components == 0 {
                return Err(invalid(format!(
                    "class {id}: max_components must be at least 1"
                )));
            }
            if let Some(floor) = class.dice_floor {
                if !(0.0..=1.0).contains(&floor) {
                    return Err(invalid(format!(
                        "class {id}: dice_floor must lie in [0, 1]"
                    )));
                }
            }
            if let Some(partner) = class.bilateral_partner_id {
                let back = bounds
                    .classes
                    .get(&partner.to_string())
                    .and_then(|p| p.bilateral_partner_id);
                if back != Some(id) {
                    return Err(invalid(format!(
                        "class {id}: bilateral partner {partner} does not name {id} back"
                    )));
                }
            }
        }
        let max_diff = bounds.cross_class.bilateral_symmetry_max_relative_diff;
        if !(max_diff.is_finite() && max_diff >= 0.0) {
            return Err(invalid(
                "bilateral_symmetry_max_relative_diff must be finite and non-negative".into(),
            ));
        }
        Ok(bounds)
    }

    /// Bounds of one class, if it is bounded.
    pub fn class(&self, id: u32) -> Option<&ClassBounds> {
        self.classes.get(&id.to_string())
    }

    /// Whether the bounds cover `modality`.
    pub fn covers(&self, modality: &str) -> bool {
        self.modalities.iter().any(|m| m == modality)
    }

    /// The bounds restricted to the classes in `ids` (a modality's class set); the
    /// dropped ids, ascending, are returned beside them.
    pub(crate) fn restricted_to(
        &self,
        ids: &std::collections::BTreeSet<u32>,
    ) -> (AnatomyBounds, Vec<u32>) {
        let mut kept = self.clone();
        let mut dropped = Vec::new();
        kept.classes.retain(|key, _| match key.parse::<u32>() {
            Ok(id) if ids.contains(&id) => true,
            Ok(id) => {
                dropped.push(id);
                false
            }
            Err(_) => false,
        });
        dropped.sort_unstable();
        (kept, dropped)
    }

    /// Bounded ids, ascending.
    pub fn ids(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = self.classes.keys().filter_map(|k| k.parse().ok()).collect();
        ids.sort_unstable();
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_bounds_match_the_brief() {
        let b = AnatomyBounds::embedded();
        assert_eq!(b.ids(), vec![1, 3, 4, 5, 14]);
        let liver = b.class(1).unwrap();
        assert_eq!(
            (
                liver.volume_ml_min,
                liver.volume_ml_max,
                liver.max_components
            ),
            (800.0, 2500.0, 1)
        );
        assert_eq!(
            (liver.largest_cc_fraction_min, liver.dice_floor),
            (0.85, Some(0.85))
        );
        let pancreas = b.class(4).unwrap();
        assert_eq!(
            (pancreas.volume_ml_min, pancreas.volume_ml_max),
            (30.0, 200.0)
        );
        assert_eq!(
            (pancreas.largest_cc_fraction_min, pancreas.dice_floor),
            (0.70, Some(0.55))
        );
        assert_eq!(b.class(5).unwrap().bilateral_partner_id, Some(14));
        assert_eq!(b.class(14).unwrap().bilateral_partner_id, Some(5));
        assert_eq!(b.class(14).unwrap().dice_floor, Some(0.80));
        assert_eq!(b.cross_class.bilateral_symmetry_max_relative_diff, 0.5);
        assert_eq!(
            b.cross_class.liver_gt_spleen,
            LargerThanRule {
                larger_id: 1,
                smaller_id: 3
            }
        );
        assert!(b.class(2).is_none());
    }

    #[test]
    fn invalid_bounds_are_rejected_with_the_reason() {
        let mut v: serde_json::Value = serde_json::from_str(EMBEDDED_BOUNDS_JSON).unwrap();
        v["classes"]["5"]["bilateral_partner_id"] = serde_json::json!(4);
        let err = AnatomyBounds::parse(&v.to_string(), Path::new("x.json"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("x.json") && err.contains("does not name"),
            "{err}"
        );

        let mut v: serde_json::Value = serde_json::from_str(EMBEDDED_BOUNDS_JSON).unwrap();
        v["classes"]["1"]["volume_ml_min"] = serde_json::json!(3000.0);
        let err = AnatomyBounds::parse(&v.to_string(), Path::new("x.json"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("class 1"), "{err}");

        let err = AnatomyBounds::parse("{}", Path::new("y.json"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("y.json"), "{err}");
    }
}
