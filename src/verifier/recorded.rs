//! The files a pack records (mask, input image, ground truth): found, opened and
//! hashed here, and the mask scanned once, so every check reads the same bytes.
//!
//! Why apart: the pack's JSON only says *where* the files are; everything the
//! verifier judges starts from these headers and voxels, and a file that is absent
//! or unreadable becomes a reason here rather than a panic in a check.

use std::path::{Path, PathBuf};

use super::load::{self, MaskScan};
use super::pack::{self, resolve_recorded_path};
use super::report::Check;
use super::Context;
use crate::inspect::geometry::{compare_facts, GeometryComparison};
use crate::nifti::Header;

/// A file recorded in the pack, resolved, with its header when readable.
pub(super) struct Opened {
    pub(super) shown: Option<String>,
    pub(super) path: Option<PathBuf>,
    pub(super) header: Result<Header, String>,
}

pub(super) fn open_recorded(
    (pack_dir, cwd): (&Path, Option<&Path>),
    raw: Option<&str>,
    what: &str,
    field: &str,
) -> Opened {
    let Some(raw) = raw else {
        return Opened {
            shown: None,
            path: None,
            header: Err(format!("no {what} recorded ({field} is absent)")),
        };
    };
    let path = resolve_recorded_path(pack_dir, raw, cwd);
    let shown = Some(path.display().to_string());
    let header = if !path.exists() {
        Err(format!("{what} {} does not exist", path.display()))
    } else {
        crate::nifti::read_header(&path).map_err(|e| e.to_string())
    };
    Opened {
        shown,
        path: Some(path),
        header,
    }
}

/// Compare a file's SHA-256 with every hash the pack records for it; `None` when the
/// pack records none.
pub(super) fn hash_check<'c>(
    name: &str,
    path: &Path,
    claims: impl Iterator<Item = &'c pack::HashClaim>,
) -> Option<Check> {
    let claims: Vec<&pack::HashClaim> = claims.collect();
    if claims.is_empty() {
        return None;
    }
    Some(match load::sha256_file(path) {
        Err(e) => Check::new(name, false, format!("cannot hash {}: {e}", path.display())),
        Ok(sha) => {
            let wrong: Vec<String> = claims
                .iter()
                .filter(|c| c.sha256 != sha)
                .map(|c| format!("{} records {}", c.field, c.sha256))
                .collect();
            if wrong.is_empty() {
                Check::new(
                    name,
                    true,
                    format!("sha256 {sha} equals {} recorded hash(es)", claims.len()),
                )
            } else {
                Check::new(
                    name,
                    false,
                    format!(
                        "{} has sha256 {sha}, but {}",
                        path.display(),
                        wrong.join(", ")
                    ),
                )
            }
        }
    })
}

impl Context<'_> {
    /// The ground truth's geometry against the mask's, and the scan of the mask
    /// (together with the ground truth when it is aligned voxel for voxel).
    pub(super) fn scan_mask(
        &self,
        mask: &Opened,
        gt: Option<&Opened>,
    ) -> (Option<GeometryComparison>, Option<Result<MaskScan, String>>) {
        // GT usable for voxelwise comparison only when its geometry equals the mask's.
        let gt_geometry = match (&mask.header, gt.map(|g| &g.header)) {
            (Ok(m), Some(Ok(g))) => Some(compare_facts(
                &load::geometry_facts(m),
                &load::geometry_facts(g),
                self.geometry_tolerance,
            )),
            _ => None,
        };
        let gt_aligned = gt_geometry
            .as_ref()
            .is_some_and(|c| c.shape_match && c.spacing_match && c.affine_match);

        let scan: Option<Result<MaskScan, String>> = match (&mask.header, &mask.path) {
            (Ok(_), Some(p)) => {
                let gt_path = if gt_aligned {
                    gt.and_then(|g| g.path.as_deref())
                } else {
                    None
                };
                Some(load::scan(p, gt_path, true).map_err(|e| e.to_string()))
            }
            _ => None,
        };
        (gt_geometry, scan)
    }
}
