//! Verdict logic as pure functions over plain numbers: per-class plausibility,
//! cross-class rules, the label-set subset relation, Dice floors and the overall
//! verdict. No I/O here, so every rule is unit-tested directly.

use std::collections::BTreeSet;

use super::bounds::AnatomyBounds;
use super::report::*;
use super::surface::{EmptyStatus, SurfaceMetrics};

/// What the files say about one class present in the mask.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ClassObservation {
    pub label_id: u32,
    pub name: String,
    pub voxels: u64,
    pub volume_ml: f64,
    pub components: u64,
    pub largest_fraction: f64,
}

/// Per-class bounds, component caps, and the cross-class rules.
pub(crate) fn anatomy_plausibility(
    observed: &[ClassObservation],
    bounds: &AnatomyBounds,
) -> AnatomyPlausibility {
    let per_class: Vec<ClassPlausibility> = observed
        .iter()
        .map(|o| class_plausibility(o, bounds))
        .collect();
    let failing_volume: Vec<String> = per_class
        .iter()
        .filter(|r| r.volume_bounds_ok == Some(false))
        .map(|r| r.name.clone())
        .collect();
    let fragmented: Vec<String> = per_class
        .iter()
        .filter(|r| r.components_ok == Some(false) || r.largest_cc_fraction_ok == Some(false))
        .map(|r| r.name.clone())
        .collect();
    let cross_class = cross_class(&per_class, bounds);
    let checks = anatomy_checks(&per_class, &failing_volume, &fragmented, &cross_class);
    let verdict = if checks.iter().all(Check::passed) {
        Verdict::Pass
    } else {
        Verdict::Fail
    };
    let reason = failed_reasons(&checks)
        .unwrap_or_else(|| "all anatomy plausibility checks pass".to_string());
    AnatomyPlausibility {
        checks,
        classes_failing_volume_bounds: failing_volume,
        classes_overfragmented: fragmented,
        cross_class,
        per_class,
        reason,
        verdict,
    }
}

/// One class against its bounds (all `None` when it has none).
fn class_plausibility(o: &ClassObservation, bounds: &AnatomyBounds) -> ClassPlausibility {
    let b = bounds.class(o.label_id).cloned();
    let (volume_ok, components_ok, fraction_ok) = match &b {
        Some(b) => (
            Some(o.volume_ml >= b.volume_ml_min && o.volume_ml <= b.volume_ml_max),
            Some(o.components <= b.max_components),
            Some(o.largest_fraction >= b.largest_cc_fraction_min),
        ),
        None => (None, None, None),
    };
    ClassPlausibility {
        bounds: b,
        component_count: o.components,
        components_ok,
        label_id: o.label_id,
        largest_cc_fraction: o.largest_fraction,
        largest_cc_fraction_ok: fraction_ok,
        name: o.name.clone(),
        volume_bounds_ok: volume_ok,
        volume_ml: o.volume_ml,
        voxel_count: o.voxels,
    }
}

/// The anatomy checks, with the failing classes' numbers in their reasons.
fn anatomy_checks(
    per_class: &[ClassPlausibility],
    failing_volume: &[String],
    fragmented: &[String],
    cross_class: &CrossClass,
) -> Vec<Check> {
    let present_ids: Vec<u32> = per_class.iter().map(|r| r.label_id).collect();
    vec![
        Check::new(
            "any_class_present",
            !per_class.is_empty(),
            format!("label ids present in the mask: {present_ids:?}"),
        ),
        Check::new(
            "all_classes_within_volume_bounds",
            failing_volume.is_empty(),
            if failing_volume.is_empty() {
                "every bounded class lies within its volume bounds".to_string()
            } else {
                format!(
                    "outside volume bounds: {}",
                    volume_detail(per_class, failing_volume)
                )
            },
        ),
        Check::new(
            "no_fragmented_classes",
            fragmented.is_empty(),
            if fragmented.is_empty() {
                "no bounded class exceeds its component cap or falls below its largest-component share".to_string()
            } else {
                format!("fragmented: {}", fragment_detail(per_class, fragmented))
            },
        ),
        Check::new(
            "liver_gt_spleen",
            cross_class.liver_gt_spleen.status != RuleStatus::Fail,
            cross_class.liver_gt_spleen.reason.clone(),
        ),
        Check::new(
            "bilateral_symmetry",
            cross_class.bilateral_symmetry.status != RuleStatus::Fail,
            cross_class.bilateral_symmetry.reason.clone(),
        ),
    ]
}

/// "name 12.3 mL (bounds a–b mL)" for each named class.
fn volume_detail(per_class: &[ClassPlausibility], names: &[String]) -> String {
    per_class
        .iter()
        .filter(|r| names.contains(&r.name))
        .map(|r| {
            let b = r
                .bounds
                .as_ref()
                .map(|b| format!("{}–{} mL", b.volume_ml_min, b.volume_ml_max))
                .unwrap_or_default();
            format!("{} {:.1} mL (bounds {b})", r.name, r.volume_ml)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Components and largest-component share against the caps, for each fragmented class.
fn fragment_detail(per_class: &[ClassPlausibility], fragmented: &[String]) -> String {
    per_class
        .iter()
        .filter(|r| fragmented.contains(&r.name))
        .map(|r| {
            let b = r
                .bounds
                .as_ref()
                .expect("only bounded classes can be fragmented");
            format!(
                "{}: {} components (max {}), largest {:.3} of voxels (min {})",
                r.name,
                r.component_count,
                b.max_components,
                r.largest_cc_fraction,
                b.largest_cc_fraction_min
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The block for a pack whose mask could not be judged (unreadable, or a modality
/// no verifier covers): its verdict and one check saying why.
pub(crate) fn anatomy_not_judged(
    verdict: Verdict,
    check_name: &str,
    reason: &str,
    bounds: &AnatomyBounds,
) -> AnatomyPlausibility {
    let skipped = |what: &str| format!("{what} not evaluated: {reason}");
    AnatomyPlausibility {
        checks: vec![Check::new(check_name, false, reason)],
        classes_failing_volume_bounds: Vec::new(),
        classes_overfragmented: Vec::new(),
        cross_class: CrossClass {
            bilateral_symmetry: BilateralSymmetry {
                max_relative_diff: bounds.cross_class.bilateral_symmetry_max_relative_diff,
                pairs: Vec::new(),
                reason: skipped("bilateral symmetry"),
                relative_diff: None,
                status: RuleStatus::Skipped,
            },
            liver_gt_spleen: LiverGtSpleen {
                liver_volume_ml: None,
                reason: skipped("liver > spleen"),
                spleen_volume_ml: None,
                status: RuleStatus::Skipped,
            },
        },
        per_class: Vec::new(),
        reason: reason.to_string(),
        verdict,
    }
}

/// Liver larger than spleen; bilateral pairs within the relative-difference cap.
pub(crate) fn cross_class(rows: &[ClassPlausibility], bounds: &AnatomyBounds) -> CrossClass {
    let find = |id: u32| rows.iter().find(|r| r.label_id == id);
    let rule = &bounds.cross_class.liver_gt_spleen;
    let (liver, spleen) = (find(rule.larger_id), find(rule.smaller_id));
    let liver_gt_spleen = match (liver, spleen) {
        (Some(l), Some(s)) => {
            let ok = l.volume_ml > s.volume_ml;
            LiverGtSpleen {
                liver_volume_ml: Some(l.volume_ml),
                reason: format!(
                    "{}={:.1} mL {} {}={:.1} mL",
                    l.name,
                    l.volume_ml,
                    if ok { ">" } else { "<=" },
                    s.name,
                    s.volume_ml
                ),
                spleen_volume_ml: Some(s.volume_ml),
                status: if ok {
                    RuleStatus::Pass
                } else {
                    RuleStatus::Fail
                },
            }
        }
        _ => LiverGtSpleen {
            liver_volume_ml: liver.map(|r| r.volume_ml),
            reason: format!(
                "skipped: ids {} and {} are not both present",
                rule.larger_id, rule.smaller_id
            ),
            spleen_volume_ml: spleen.map(|r| r.volume_ml),
            status: RuleStatus::Skipped,
        },
    };

    let max_diff = bounds.cross_class.bilateral_symmetry_max_relative_diff;
    let mut pairs = Vec::new();
    let mut seen = BTreeSet::new();
    for row in rows {
        let Some(partner_id) = row.bounds.as_ref().and_then(|b| b.bilateral_partner_id) else {
            continue;
        };
        let key = (row.label_id.min(partner_id), row.label_id.max(partner_id));
        if !seen.insert(key) {
            continue;
        }
        let Some(partner) = find(partner_id) else {
            continue;
        };
        let (a, b) = (row.volume_ml, partner.volume_ml);
        let mean = (a + b) / 2.0;
        let rel = if mean > 0.0 {
            (a - b).abs() / mean
        } else {
            0.0
        };
        pairs.push(BilateralPair {
            label_ids: [row.label_id, partner_id],
            names: [row.name.clone(), partner.name.clone()],
            ok: rel <= max_diff,
            relative_diff: rel,
            volumes_ml: [a, b],
        });
    }
    let worst = pairs
        .iter()
        .map(|p| p.relative_diff)
        .fold(None, |acc: Option<f64>, v| {
            Some(acc.map_or(v, |a| a.max(v)))
        });
    let bilateral_symmetry = match worst {
        None => BilateralSymmetry {
            max_relative_diff: max_diff,
            pairs,
            reason: "skipped: no bilateral pair present".to_string(),
            relative_diff: None,
            status: RuleStatus::Skipped,
        },
        Some(w) => {
            let ok = pairs.iter().all(|p| p.ok);
            let detail = pairs
                .iter()
                .map(|p| format!("{}/{} {:.3}", p.names[0], p.names[1], p.relative_diff))
                .collect::<Vec<_>>()
                .join(", ");
            BilateralSymmetry {
                max_relative_diff: max_diff,
                pairs,
                reason: format!(
                    "worst relative difference |a−b|/((a+b)/2) = {w:.3} {} {max_diff} ({detail})",
                    if ok { "<=" } else { ">" }
                ),
                relative_diff: Some(w),
                status: if ok {
                    RuleStatus::Pass
                } else {
                    RuleStatus::Fail
                },
            }
        }
    };
    CrossClass {
        bilateral_symmetry,
        liver_gt_spleen,
    }
}

/// The set the mask is allowed to contain, and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ExpectedSet {
    /// `prompts` or `everything_set`.
    pub basis: String,
    pub ids: BTreeSet<u32>,
    pub source: Option<String>,
}

/// Present labels must be a subset of the expected set (within `tolerance` extras).
pub(crate) fn label_set_subset(
    present: &[u32],
    prompts: &[u32],
    expected: Option<&ExpectedSet>,
    tolerance: u32,
) -> LabelSetSubset {
    let present_set: BTreeSet<u32> = present.iter().copied().collect();
    let Some(expected) = expected else {
        return LabelSetSubset {
            basis: "none".to_string(),
            basis_source: None,
            extras: Vec::new(),
            missing: Vec::new(),
            present: present_set.into_iter().collect(),
            prompts: prompts.to_vec(),
            reason: "skipped: no prompts recorded and no label table to give the modality's everything-set".to_string(),
            requested: Vec::new(),
            tolerance,
            verdict: Verdict::Skipped,
        };
    };
    let extras: Vec<u32> = present_set.difference(&expected.ids).copied().collect();
    let missing: Vec<u32> = if expected.basis == "prompts" {
        expected.ids.difference(&present_set).copied().collect()
    } else {
        // Nobody expects every class of the everything-set in one image.
        Vec::new()
    };
    let ok = extras.len() as u64 <= u64::from(tolerance);
    let reason = if extras.is_empty() {
        format!(
            "every present label is in the expected set ({})",
            expected.basis
        )
    } else {
        let shown: Vec<u32> = extras.iter().take(20).copied().collect();
        format!(
            "{} label id(s) outside the expected set ({}; tolerance {tolerance}): {shown:?}{}",
            extras.len(),
            expected.basis,
            if extras.len() > 20 { " ..." } else { "" }
        )
    };
    LabelSetSubset {
        basis: expected.basis.clone(),
        basis_source: expected.source.clone(),
        extras,
        missing,
        present: present_set.into_iter().collect(),
        prompts: prompts.to_vec(),
        reason,
        requested: expected.ids.iter().copied().collect(),
        tolerance,
        verdict: if ok { Verdict::Pass } else { Verdict::Fail },
    }
}

/// Counts of one class in prediction and ground truth, with its surface metrics.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ClassOverlap {
    pub label_id: u32,
    pub name: String,
    pub pred_voxels: u64,
    pub gt_voxels: u64,
    pub intersection: u64,
    /// `None` when surfaces were not computed (one side empty).
    pub surface: Option<SurfaceMetrics>,
}

/// Dice and IoU with the empty-mask convention: both empty → undefined (`None`);
/// exactly one empty → 0.
pub(crate) fn dice_iou(pred: u64, gt: u64, intersection: u64) -> (Option<f64>, Option<f64>) {
    if pred + gt == 0 {
        return (None, None);
    }
    let union = pred + gt - intersection;
    (
        Some(2.0 * intersection as f64 / (pred + gt) as f64),
        Some(intersection as f64 / union as f64),
    )
}

/// The conventions every gt_metrics block names.
pub(crate) fn conventions(tolerance_mm: f64) -> MetricConventions {
    MetricConventions {
        dice_iou: "Dice = 2|P∩G|/(|P|+|G|), IoU = |P∩G|/|P∪G| over voxels of one label id".to_string(),
        empty_masks: "status ok: both non-empty, every metric defined; pred_empty / gt_empty: Dice = IoU = NSD = 0, \
                      HD95, Hausdorff and ASSD are infinite and reported as null; both_empty: every metric null"
            .to_string(),
        hd95: "95th percentile of surfel-area-weighted surface distances, max of both directions (DeepMind \
               surface-distance compute_robust_hausdorff)"
            .to_string(),
        nsd: format!(
            "normalised surface Dice at tolerance {tolerance_mm} mm: surfel area within tolerance of the other \
             surface, both directions, over total surfel area (DeepMind compute_surface_dice_at_tolerance)"
        ),
        scoring_scope: "scored: ground-truth classes inside the expected set (expanded prompts or the modality's \
                        everything-set; all ground-truth classes when no set is known). Predicted classes absent \
                        from the ground truth (gt_empty) are reported, not scored: partial annotation is assumed. \
                        A scored class the model missed (pred_empty) fails."
            .to_string(),
        surface: "surfaces on the voxel-corner grid with neighbour-code surfel areas; exact Euclidean distances in \
                  mm using the header spacing"
            .to_string(),
    }
}

/// Per-class ground-truth rows and the verdict checks over them.
pub(crate) fn gt_rows(
    overlaps: &[ClassOverlap],
    scope: Option<&BTreeSet<u32>>,
    bounds: &AnatomyBounds,
) -> (Vec<GtClassMetrics>, Vec<Check>) {
    let mut rows = Vec::with_capacity(overlaps.len());
    for o in overlaps {
        let status = EmptyStatus::of(o.pred_voxels, o.gt_voxels);
        let (dice, iou) = dice_iou(o.pred_voxels, o.gt_voxels, o.intersection);
        let scored = o.gt_voxels > 0 && scope.is_none_or(|s| s.contains(&o.label_id));
        let dice_floor = bounds.class(o.label_id).and_then(|b| b.dice_floor);
        let dice_ok = match (scored, dice_floor, dice) {
            (true, Some(floor), Some(d)) => Some(d >= floor),
            _ => None,
        };
        let one_empty = matches!(status, EmptyStatus::PredEmpty | EmptyStatus::GtEmpty);
        let s = o.surface.as_ref();
        rows.push(GtClassMetrics {
            assd_mm: s.and_then(|m| m.assd_mm),
            dice,
            dice_floor,
            dice_ok,
            gt_voxels: o.gt_voxels,
            hausdorff_mm: s.and_then(|m| m.hausdorff_mm),
            hd95_mm: s.and_then(|m| m.hd95_mm),
            iou,
            label_id: o.label_id,
            name: o.name.clone(),
            nsd: if one_empty {
                Some(0.0)
            } else {
                s.and_then(|m| m.nsd)
            },
            pred_voxels: o.pred_voxels,
            scored,
            status,
        });
    }
    let scored: Vec<&GtClassMetrics> = rows.iter().filter(|r| r.scored).collect();
    let below: Vec<String> = scored
        .iter()
        .filter(|r| r.dice_ok == Some(false))
        .map(|r| {
            format!(
                "{} Dice {:.4} < {}",
                r.name,
                r.dice.unwrap_or(0.0),
                r.dice_floor.unwrap_or(0.0)
            )
        })
        .collect();
    let missed: Vec<String> = scored
        .iter()
        .filter(|r| r.status == EmptyStatus::PredEmpty)
        .map(|r| format!("{} ({} GT voxels)", r.name, r.gt_voxels))
        .collect();
    let checks = vec![
        Check::new(
            "all_scored_classes_meet_dice_floor",
            below.is_empty(),
            if below.is_empty() {
                format!(
                    "{} scored class(es); every floored class meets its Dice floor",
                    scored.len()
                )
            } else {
                format!("below Dice floor: {}", below.join(", "))
            },
        ),
        Check::new(
            "no_scored_class_missed",
            missed.is_empty(),
            if missed.is_empty() {
                "every scored ground-truth class is present in the prediction".to_string()
            } else {
                format!(
                    "ground-truth classes with no predicted voxel: {}",
                    missed.join(", ")
                )
            },
        ),
    ];
    (rows, checks)
}

/// First failing check reasons joined, or `None` when all pass.
pub(crate) fn failed_reasons(checks: &[Check]) -> Option<String> {
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| !c.passed())
        .map(|c| format!("{}: {}", c.name, c.reason))
        .collect();
    (!failed.is_empty()).then(|| failed.join("; "))
}

/// Combine the blocks: pass only when every block passes (label set may be skipped,
/// ground truth must be acceptable). Returns the verdict and the reasons for a fail.
pub(crate) fn overall(
    target: &Target,
    artifacts: &ArtifactInventory,
    anatomy: &AnatomyPlausibility,
    subset: &LabelSetSubset,
    gt: &GtMetrics,
) -> (Overall, Vec<String>) {
    let mut reasons = Vec::new();
    for c in target.checks.iter().filter(|c| !c.passed()) {
        reasons.push(format!("target.{}: {}", c.name, c.reason));
    }
    if artifacts.verdict != Verdict::Pass {
        for c in artifacts.checks.iter().filter(|c| !c.passed()) {
            reasons.push(format!("artifact_inventory.{}: {}", c.name, c.reason));
        }
        if artifacts.checks.iter().all(Check::passed) {
            reasons.push("artifact_inventory: not verified".to_string());
        }
    }
    if anatomy.verdict != Verdict::Pass {
        reasons.push(format!(
            "anatomy_plausibility ({}): {}",
            verdict_str(anatomy.verdict),
            anatomy.reason
        ));
    }
    if !matches!(subset.verdict, Verdict::Pass | Verdict::Skipped) {
        reasons.push(format!(
            "label_set_subset ({}): {}",
            verdict_str(subset.verdict),
            subset.reason
        ));
    }
    if !gt.acceptable {
        reasons.push(format!(
            "gt_metrics ({}): {}",
            verdict_str(gt.verdict),
            gt.reason
        ));
    }
    (
        if reasons.is_empty() {
            Overall::Pass
        } else {
            Overall::Fail
        },
        reasons,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(id: u32, name: &str, volume: f64, components: u64, largest: f64) -> ClassObservation {
        ClassObservation {
            label_id: id,
            name: name.to_string(),
            voxels: volume as u64,
            volume_ml: volume,
            components,
            largest_fraction: largest,
        }
    }

    fn plausible() -> Vec<ClassObservation> {
        vec![
            obs(1, "liver", 900.0, 1, 1.0),
            obs(3, "spleen", 120.0, 1, 1.0),
            obs(5, "right kidney", 120.0, 1, 1.0),
            obs(14, "left kidney", 110.0, 1, 1.0),
        ]
    }

    #[test]
    fn plausible_organs_pass() {
        let a = anatomy_plausibility(&plausible(), &AnatomyBounds::embedded());
        assert_eq!(a.verdict, Verdict::Pass, "{}", a.reason);
        assert_eq!(a.cross_class.liver_gt_spleen.status, RuleStatus::Pass);
        assert_eq!(a.cross_class.bilateral_symmetry.status, RuleStatus::Pass);
        assert_eq!(a.cross_class.bilateral_symmetry.pairs.len(), 1);
        let r = a.cross_class.bilateral_symmetry.relative_diff.unwrap();
        assert!((r - 10.0 / 115.0).abs() < 1e-12);
    }

    #[test]
    fn volume_bounds_are_inclusive_and_unbounded_classes_are_reported_only() {
        let mut o = plausible();
        o[0].volume_ml = 800.0;
        o.push(obs(62, "some class", 1e6, 40, 0.01));
        let a = anatomy_plausibility(&o, &AnatomyBounds::embedded());
        assert_eq!(a.verdict, Verdict::Pass, "{}", a.reason);
        let unbounded = a.per_class.iter().find(|r| r.label_id == 62).unwrap();
        assert_eq!(
            (
                unbounded.volume_bounds_ok,
                unbounded.components_ok,
                unbounded.bounds.as_ref()
            ),
            (None, None, None)
        );

        o[0].volume_ml = 799.9;
        let a = anatomy_plausibility(&o, &AnatomyBounds::embedded());
        assert_eq!(a.verdict, Verdict::Fail);
        assert_eq!(a.classes_failing_volume_bounds, vec!["liver"]);
        assert!(a.reason.contains("liver 799.9 mL"), "{}", a.reason);
    }

    #[test]
    fn fragmentation_fails_on_count_or_share() {
        let mut o = plausible();
        o[1].components = 2;
        o[1].largest_fraction = 0.9;
        let a = anatomy_plausibility(&o, &AnatomyBounds::embedded());
        assert_eq!(a.classes_overfragmented, vec!["spleen"]);
        assert!(
            a.reason.contains("spleen: 2 components (max 1)"),
            "{}",
            a.reason
        );
        // Pancreas allows a largest share down to 0.70 but still one component.
        let mut o = plausible();
        o.push(obs(4, "pancreas", 60.0, 1, 1.0));
        assert_eq!(
            anatomy_plausibility(&o, &AnatomyBounds::embedded()).verdict,
            Verdict::Pass
        );
    }

    #[test]
    fn cross_class_rules_fail_and_skip() {
        let mut o = plausible();
        o[1].volume_ml = 900.0; // spleen == liver, out of spleen bounds too
        let a = anatomy_plausibility(&o, &AnatomyBounds::embedded());
        assert_eq!(a.cross_class.liver_gt_spleen.status, RuleStatus::Fail);
        let mut o = plausible();
        o[3].volume_ml = 290.0;
        o[2].volume_ml = 85.0; // |290-85| / 187.5 = 1.09 > 0.5
        let a = anatomy_plausibility(&o, &AnatomyBounds::embedded());
        assert_eq!(a.cross_class.bilateral_symmetry.status, RuleStatus::Fail);
        assert!(a
            .checks
            .iter()
            .any(|c| c.name == "bilateral_symmetry" && !c.passed()));
        let a = anatomy_plausibility(&o[..1], &AnatomyBounds::embedded());
        assert_eq!(a.cross_class.liver_gt_spleen.status, RuleStatus::Skipped);
        assert_eq!(a.cross_class.bilateral_symmetry.status, RuleStatus::Skipped);
        assert_eq!(a.verdict, Verdict::Pass);
        let a = anatomy_plausibility(&[], &AnatomyBounds::embedded());
        assert_eq!(a.verdict, Verdict::Fail, "an empty mask is not plausible");
    }

    #[test]
    fn label_subset_relation() {
        let expected = ExpectedSet {
            basis: "prompts".into(),
            ids: [3, 5, 14].into_iter().collect(),
            source: None,
        };
        let s = label_set_subset(&[3, 5], &[3, 2], Some(&expected), 0);
        assert_eq!(
            (s.verdict, s.extras.clone(), s.missing.clone()),
            (Verdict::Pass, vec![], vec![14])
        );
        let s = label_set_subset(&[1, 3, 5], &[3, 2], Some(&expected), 0);
        assert_eq!((s.verdict, s.extras.clone()), (Verdict::Fail, vec![1]));
        assert_eq!(
            label_set_subset(&[1, 3, 5], &[3, 2], Some(&expected), 1).verdict,
            Verdict::Pass
        );
        let s = label_set_subset(&[1], &[], None, 0);
        assert_eq!(s.verdict, Verdict::Skipped);
    }

    #[test]
    fn dice_convention() {
        assert_eq!(dice_iou(0, 0, 0), (None, None));
        assert_eq!(dice_iou(0, 10, 0), (Some(0.0), Some(0.0)));
        assert_eq!(dice_iou(10, 10, 10), (Some(1.0), Some(1.0)));
        assert_eq!(dice_iou(10, 30, 10), (Some(0.5), Some(1.0 / 3.0)));
    }

    #[test]
    fn gt_rows_score_missed_classes_and_not_unannotated_ones() {
        let overlaps = vec![
            ClassOverlap {
                label_id: 1,
                name: "liver".into(),
                pred_voxels: 100,
                gt_voxels: 100,
                intersection: 95,
                surface: None,
            },
            ClassOverlap {
                label_id: 3,
                name: "spleen".into(),
                pred_voxels: 0,
                gt_voxels: 50,
                intersection: 0,
                surface: None,
            },
            ClassOverlap {
                label_id: 6,
                name: "aorta".into(),
                pred_voxels: 40,
                gt_voxels: 0,
                intersection: 0,
                surface: None,
            },
        ];
        let (rows, checks) = gt_rows(&overlaps, None, &AnatomyBounds::embedded());
        assert_eq!(rows[0].dice_ok, Some(true));
        assert_eq!(
            (
                rows[1].status,
                rows[1].dice,
                rows[1].dice_ok,
                rows[1].scored
            ),
            (EmptyStatus::PredEmpty, Some(0.0), Some(false), true)
        );
        assert_eq!(
            (rows[2].status, rows[2].scored, rows[2].dice_ok),
            (EmptyStatus::GtEmpty, false, None)
        );
        assert_eq!(rows[1].nsd, Some(0.0));
        assert!(checks.iter().all(|c| !c.passed()));
        // Outside the expected set, a GT class is not scored.
        let scope: BTreeSet<u32> = [1].into_iter().collect();
        let (rows, checks) = gt_rows(&overlaps, Some(&scope), &AnatomyBounds::embedded());
        assert!(!rows[1].scored);
        assert!(checks.iter().all(Check::passed), "{checks:?}");
    }
}
