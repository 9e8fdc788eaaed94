//! The artifact inventory: the mask against the input image, recomputed from the
//! NIfTI headers and voxels, and the pack's claims about them compared with that.
//!
//! Why apart: this is the part that trusts nothing the pack wrote; a claim that
//! differs from the files (stale, edited, or wrong) fails `pack_claims_match_files`.

use super::load::{self, MaskScan};
use super::pack::HashedFile;
use super::recorded::{hash_check, Opened};
use super::report::{ArtifactInventory, Check, Verdict};
use super::{Context, NAN_SENTINEL, SUPPORTED_MODALITY};
use crate::inspect::geometry::compare_facts;
use crate::nifti::Header;

impl Context<'_> {
    pub(super) fn artifact_inventory(
        &self,
        mask: &Opened,
        input: &Opened,
        scan: Option<&Result<MaskScan, String>>,
    ) -> ArtifactInventory {
        let facts = self.facts;
        let mut checks = Vec::new();
        let mut inv = ArtifactInventory {
            affine_match: false,
            affine_max_abs_diff: None,
            checks: Vec::new(),
            claimed: facts.claimed.clone(),
            geometry_tolerance: self.geometry_tolerance,
            input_image_path: input.shown.clone(),
            input_image_readable: input.header.is_ok(),
            input_shape: Vec::new(),
            input_spacing: Vec::new(),
            label_ids_present: Vec::new(),
            label_map_dtype: None,
            label_map_path: mask.shown.clone(),
            label_map_readable: false,
            label_map_sha256: None,
            label_map_shape: Vec::new(),
            label_map_spacing: Vec::new(),
            nan_sentinel_255_voxels: None,
            nan_voxels: None,
            non_integer_voxels: None,
            shape_match: false,
            spacing_match: false,
            verdict: Verdict::Fail,
            voxel_volume_ml: None,
        };
        if let Ok(h) = &input.header {
            inv.input_shape = h.shape.to_vec();
            inv.input_spacing = h.spacing.to_vec();
        }
        match &mask.header {
            Err(e) => checks.push(Check::new("label_map_readable", false, e.clone())),
            Ok(h) => self.mask_checks(h, mask, scan, &mut inv, &mut checks),
        }
        self.geometry_checks(mask, input, &mut inv, &mut checks);
        if let (Some(path), true) = (&input.path, input.header.is_ok()) {
            if let Some(c) = hash_check(
                "input_hash_matches_claims",
                path,
                facts.hashes_of(HashedFile::Input),
            ) {
                checks.push(c);
            }
        }
        if inv.label_map_readable {
            checks.push(self.claims_check(&inv));
        }
        inv.verdict = if !checks.is_empty() && checks.iter().all(Check::passed) {
            Verdict::Pass
        } else {
            Verdict::Fail
        };
        inv.checks = checks;
        inv
    }

    /// The readable mask: its header facts, its voxels (from the scan) and its hash.
    fn mask_checks(
        &self,
        h: &Header,
        mask: &Opened,
        scan: Option<&Result<MaskScan, String>>,
        inv: &mut ArtifactInventory,
        checks: &mut Vec<Check>,
    ) {
        inv.label_map_dtype = Some(h.datatype.name().to_string());
        inv.label_map_shape = h.shape.to_vec();
        inv.label_map_spacing = h.spacing.to_vec();
        inv.voxel_volume_ml = Some(h.voxel_volume_ml());
        match scan {
            Some(Ok(s)) => self.voxel_checks(s, mask, inv, checks),
            Some(Err(e)) => checks.push(Check::new(
                "label_map_readable",
                false,
                format!("header read, voxels not: {e}"),
            )),
            None => checks.push(Check::new(
                "label_map_readable",
                false,
                "label map not read",
            )),
        }
        match mask.path.as_deref().map(load::sha256_file) {
            Some(Ok(sha)) => inv.label_map_sha256 = Some(sha),
            Some(Err(e)) => checks.push(Check::new(
                "label_map_hashed",
                false,
                format!("cannot hash the label map: {e}"),
            )),
            None => {}
        }
    }

    /// What every voxel of the mask holds: ids present, integer ids only, no NaN sentinel.
    fn voxel_checks(
        &self,
        s: &MaskScan,
        mask: &Opened,
        inv: &mut ArtifactInventory,
        checks: &mut Vec<Check>,
    ) {
        inv.label_map_readable = true;
        checks.push(Check::new(
            "label_map_readable",
            true,
            format!(
                "read every voxel of {}",
                mask.shown.as_deref().unwrap_or("?")
            ),
        ));
        inv.label_ids_present = s
            .tally
            .labels
            .iter()
            .filter_map(|l| u32::try_from(l.id).ok())
            .collect();
        let negative: Vec<i64> = s
            .tally
            .labels
            .iter()
            .map(|l| l.id)
            .filter(|&id| id < 0)
            .collect();
        inv.non_integer_voxels = Some(s.tally.non_integer_voxels);
        inv.nan_voxels = Some(s.tally.nan_voxels);
        inv.nan_sentinel_255_voxels = Some(s.tally.value_255_voxels);
        let bad = s.tally.non_integer_voxels + s.tally.nan_voxels;
        checks.push(Check::new(
            "integer_labels",
            bad == 0 && negative.is_empty(),
            format!(
                "{} non-integer, {} NaN voxels, negative ids {negative:?} (a label map holds non-negative integer ids only)",
                s.tally.non_integer_voxels, s.tally.nan_voxels
            ),
        ));
        // 255 is a class only in MRI_BRAIN; in the body modalities it is the sentinel.
        let modality = self.facts.modality.as_deref();
        if modality.is_none_or(|m| m == SUPPORTED_MODALITY || m == "MRI_BODY") {
            checks.push(Check::new(
                "no_nan_sentinel",
                s.tally.value_255_voxels == 0,
                format!(
                    "{} voxels equal {NAN_SENTINEL}, the upstream's NaN sentinel (not a {} class)",
                    s.tally.value_255_voxels,
                    modality.unwrap_or(SUPPORTED_MODALITY)
                ),
            ));
        }
    }

    /// The mask's geometry against the input image's, from the headers.
    fn geometry_checks(
        &self,
        mask: &Opened,
        input: &Opened,
        inv: &mut ArtifactInventory,
        checks: &mut Vec<Check>,
    ) {
        match (&mask.header, &input.header) {
            (Ok(m), Ok(i)) => {
                let c = compare_facts(
                    &load::geometry_facts(m),
                    &load::geometry_facts(i),
                    self.geometry_tolerance,
                );
                inv.shape_match = c.shape_match;
                inv.spacing_match = c.spacing_match;
                inv.affine_match = c.affine_match;
                inv.affine_max_abs_diff = Some(c.affine_max_abs_diff);
                let why = if c.differences.is_empty() {
                    "equal within tolerance".to_string()
                } else {
                    c.differences.join("; ")
                };
                checks.push(Check::new(
                    "shape_match",
                    c.shape_match,
                    format!("mask {:?} vs input {:?}", m.shape, i.shape),
                ));
                checks.push(Check::new(
                    "spacing_match",
                    c.spacing_match,
                    format!("mask {:?} vs input {:?} mm", m.spacing, i.spacing),
                ));
                checks.push(Check::new(
                    "affine_match",
                    c.affine_match,
                    format!(
                        "max |mask − input| affine difference {} (tolerance {}): {why}",
                        c.affine_max_abs_diff, self.geometry_tolerance
                    ),
                ));
            }
            (_, Err(e)) => checks.push(Check::new(
                "input_image_readable",
                false,
                format!("cannot recompute geometry against the input: {e}"),
            )),
            (Err(_), Ok(_)) => {}
        }
    }

    /// The pack's claims must equal the recomputation; a disagreement means the pack
    /// does not describe these files (stale, edited, or wrong).
    fn claims_check(&self, inv: &ArtifactInventory) -> Check {
        let c = &self.facts.claimed;
        let mut diffs = Vec::new();
        if let Some(ids) = &c.label_ids_present {
            if ids != &inv.label_ids_present {
                diffs.push(format!(
                    "label_ids_present claimed {ids:?}, found {:?}",
                    inv.label_ids_present
                ));
            }
        }
        if let Some(shape) = &c.shape {
            let found: Vec<u64> = inv.label_map_shape.iter().map(|&v| v as u64).collect();
            if shape != &found {
                diffs.push(format!("shape claimed {shape:?}, found {found:?}"));
            }
        }
        for (name, claimed, found) in [
            ("shape_match", c.shape_match, inv.shape_match),
            ("spacing_match", c.spacing_match, inv.spacing_match),
            ("affine_match", c.affine_match, inv.affine_match),
        ] {
            if let Some(claimed) = claimed {
                if inv.input_image_readable && claimed != found {
                    diffs.push(format!(
                        "geometry.{name} claimed {claimed}, recomputed {found}"
                    ));
                }
            }
        }
        if let Some(found) = &inv.label_map_sha256 {
            for claim in self
                .facts
                .hashes_of(HashedFile::Mask)
                .filter(|c| &c.sha256 != found)
            {
                diffs.push(format!(
                    "mask sha256 claimed {} ({}), file has {found}",
                    claim.sha256, claim.field
                ));
            }
        }
        if let (Some(claimed), Some(found)) = (c.voxel_volume_ml, inv.voxel_volume_ml) {
            if (claimed - found).abs() > 1e-9 * found.abs().max(1.0) {
                diffs.push(format!(
                    "voxel_volume_ml claimed {claimed}, header gives {found}"
                ));
            }
        }
        Check::new(
            "pack_claims_match_files",
            diffs.is_empty(),
            if diffs.is_empty() {
                "every claim the pack makes about the mask matches the files".to_string()
            } else {
                diffs.join("; ")
            },
        )
    }
}
