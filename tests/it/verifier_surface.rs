//! The verifier's derived surfel-area table against MONAI's copy of DeepMind's
//! hand-listed marching-cubes table, and surface metrics on hand-built volumes.

use crate::common;

use ctmr_skill::verifier::surface::{surface_metrics, surfel_area_table, BoolGrid, EmptyStatus};

#[test]
fn derived_area_table_equals_deepminds_at_several_spacings() {
    let spacings = [
        "1,1,1",
        "0.7,1.3,2.5",
        "3,0.5,1",
        "1,1,5",
        "0.78125,0.78125,1.5",
    ];
    let script = common::repo_root().join("tests/py/verifier_monai_area_table.py");
    let text = common::run_python(&script, &spacings);
    let tables: serde_json::Value = serde_json::from_str(&text).unwrap();
    for s in spacings {
        let spacing: Vec<f64> = s.split(',').map(|v| v.parse().unwrap()).collect();
        let ours = surfel_area_table([spacing[0], spacing[1], spacing[2]]);
        let theirs = tables[s].as_array().unwrap();
        assert_eq!(theirs.len(), 256);
        for (code, (a, b)) in ours.iter().zip(theirs).enumerate() {
            let b = b.as_f64().unwrap();
            // MONAI stores the table in float32: allow its rounding, nothing more.
            assert!(
                (a - b).abs() <= 1e-6 * b.abs().max(1.0),
                "spacing {s}, code {code}: ours {a}, DeepMind/MONAI {b}"
            );
        }
    }
}

#[test]
fn anisotropic_offset_slabs() {
    // Two 4×4×4 cubes at 1×1×3 mm, the second one voxel higher along axis 2: the
    // farthest surfels are one slice (3 mm) apart.
    let shape = [8, 8, 10];
    let cube = |z0: usize| {
        BoolGrid::from_fn(shape, move |x, y, z| {
            (2..6).contains(&x) && (2..6).contains(&y) && (z0..z0 + 4).contains(&z)
        })
    };
    let m = surface_metrics(&cube(2), &cube(3), [1.0, 1.0, 3.0], 1.0);
    assert_eq!(m.status, EmptyStatus::Ok);
    assert_eq!(m.hausdorff_mm, Some(3.0));
    // Within 1 mm only coinciding surfels count; they exist on the side faces.
    let nsd = m.nsd.unwrap();
    assert!(nsd > 0.3 && nsd < 0.9, "{nsd}");
}
