//! Pictures checked by their pixels: `ctmr-skill render` on phantoms written by
//! nibabel (tests/fixtures/render/make_phantom.py).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

struct Rendered {
    info: Value,
    width: u32,
    pixels: Vec<u8>,
}

impl Rendered {
    fn at(&self, x: u32, y: u32) -> [u8; 3] {
        let o = ((y * self.width + x) * 3) as usize;
        [self.pixels[o], self.pixels[o + 1], self.pixels[o + 2]]
    }

    /// The panel of `view` in the row of class `id`.
    fn panel(&self, id: u64, view: &str) -> &Value {
        let row = self.info["structures"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("no row for class {id}: {}", self.info));
        row["panels"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["view"] == view)
            .unwrap()
    }

    /// Pixels of `panel` that have exactly `colour`: (x, y) relative to the panel.
    fn pixels_of(&self, panel: &Value, colour: [u8; 3]) -> Vec<(u32, u32)> {
        let [x0, y0, w, h] =
            ["x", "y", "width", "height"].map(|k| panel[k].as_u64().unwrap() as u32);
        let mut out = Vec::new();
        for y in 0..h {
            for x in 0..w {
                if self.at(x0 + x, y0 + y) == colour {
                    out.push((x, y));
                }
            }
        }
        out
    }

    /// The pixels of a panel, row by row.
    fn panel_pixels(&self, panel: &Value) -> Vec<[u8; 3]> {
        let [x0, y0, w, h] =
            ["x", "y", "width", "height"].map(|k| panel[k].as_u64().unwrap() as u32);
        (0..h)
            .flat_map(|y| (0..w).map(move |x| (x, y)))
            .map(|(x, y)| self.at(x0 + x, y0 + y))
            .collect()
    }
}

fn colour_of(info: &Value, id: u64) -> [u8; 3] {
    let row = info["structures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .unwrap();
    let c: Vec<u8> = row["colour"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u8)
        .collect();
    [c[0], c[1], c[2]]
}

fn phantom(dir: &Path, extra: &[&str]) -> PathBuf {
    let mut args = vec![dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    common::run_python(
        &common::repo_root().join("tests/fixtures/render/make_phantom.py"),
        &args,
    );
    dir.to_path_buf()
}

fn render(dir: &Path, extra: &[&str]) -> Rendered {
    let out = dir.join("overlay.png");
    let output = Command::new(common::binary())
        .arg("render")
        .arg(dir.join("mask.nii.gz"))
        .arg("--out")
        .arg(&out)
        .args(extra)
        .env_remove("NV_SEGMENT_CTMR_ROOT")
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "render failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let info = common::stdout_json(&output);
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let frame = reader.next_frame(&mut pixels).unwrap();
    assert_eq!(frame.color_type, png::ColorType::Rgb);
    assert_eq!(
        (frame.width, frame.height),
        (
            info["width"].as_u64().unwrap() as u32,
            info["height"].as_u64().unwrap() as u32
        )
    );
    pixels.truncate(frame.buffer_size());
    Rendered {
        info,
        width: frame.width,
        pixels,
    }
}

#[test]
fn the_colour_at_each_structure_centroid_is_its_label_colour() {
    let tmp = common::fresh_dir();
    let dir = phantom(tmp.path(), &[]);
    let r = render(&dir, &[]);
    let rows = r.info["structures"].as_array().unwrap();
    assert_eq!(
        rows.iter()
            .map(|r| r["id"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        vec![1, 2, 3],
        "largest first"
    );
    for row in rows {
        let colour = colour_of(&r.info, row["id"].as_u64().unwrap());
        for panel in row["panels"].as_array().unwrap() {
            let [x, y] = [0, 1].map(|i| panel["centroid_px"][i].as_u64().unwrap() as u32);
            assert_eq!(
                r.at(x, y),
                colour,
                "class {} {} panel at ({x},{y})",
                row["id"],
                panel["view"]
            );
        }
    }
    // Named from the built-in upstream table (no bundle root): id 1 is the liver.
    assert_eq!(rows[0]["name"], "liver");
    assert_eq!(r.info["window"], Value::Null, "no image: no window");
}

#[test]
fn over_the_image_the_fill_is_blended_and_the_window_is_soft_tissue() {
    let tmp = common::fresh_dir();
    let dir = phantom(tmp.path(), &[]);
    let image = dir.join("image.nii.gz");
    let r = render(
        &dir,
        &["--image", image.to_str().unwrap(), "--structures", "1"],
    );
    assert_eq!(r.info["window"]["kind"], "soft_tissue");
    assert_eq!(r.info["structures"].as_array().unwrap().len(), 1);
    let colour = colour_of(&r.info, 1);
    let panel = r.panel(1, "axial");
    let [x, y] = [0, 1].map(|i| panel["centroid_px"][i].as_u64().unwrap() as u32);
    // 40 HU in W400/L40 is grey 128; the label colour is mixed over it at 0.45.
    let want = colour.map(|c| (128.0 + (f32::from(c) - 128.0) * 0.45).round() as i32);
    let got = r.at(x, y);
    for i in 0..3 {
        assert!(
            (i32::from(got[i]) - want[i]).abs() <= 1,
            "blend at centroid: got {got:?}, want {want:?}"
        );
    }
    // The outline is the pure colour.
    assert!(
        !r.pixels_of(panel, colour).is_empty(),
        "no outline pixels in the axial panel"
    );
    // Air (-1000 HU) is black outside the body.
    let [x0, y0] = ["x", "y"].map(|k| panel[k].as_u64().unwrap() as u32);
    assert_eq!(r.at(x0 + 2, y0 + 20), [0, 0, 0]);
}

#[test]
fn a_marker_on_the_patient_left_is_on_the_image_right_for_ras_and_lps() {
    let tmp = common::fresh_dir();
    let ras = render(
        &phantom(&tmp.path().join("ras"), &["--orientation", "RAS"]),
        &[],
    );
    let lps = render(
        &phantom(&tmp.path().join("lps"), &["--orientation", "LPS"]),
        &[],
    );
    assert_eq!(ras.info["orientation"], "RAS");
    assert_eq!(lps.info["orientation"], "LPS");
    for r in [&ras, &lps] {
        let panel = r.panel(2, "axial");
        let width = panel["width"].as_u64().unwrap() as u32;
        let height = panel["height"].as_u64().unwrap() as u32;
        let marker = r.pixels_of(panel, colour_of(&r.info, 2));
        assert!(
            marker.len() > 20,
            "marker barely visible: {} px",
            marker.len()
        );
        assert!(
            marker.iter().all(|(x, _)| *x > width / 2),
            "marker (patient's left) not on the image's right"
        );
        // It is also anterior: the upper half of the axial view.
        assert!(
            marker.iter().all(|(_, y)| *y < height / 2),
            "anterior marker not in the upper half"
        );
        // The front marker (class 3) is at the top, centred.
        let front = r.pixels_of(panel, colour_of(&r.info, 3));
        let mean_x = front.iter().map(|(x, _)| f64::from(*x)).sum::<f64>() / front.len() as f64;
        assert!((mean_x - f64::from(width) / 2.0).abs() < f64::from(width) / 10.0);
    }
    // The same patient gives the same pictures, whatever the storage order.
    for id in [1, 2, 3] {
        for view in ["axial", "coronal", "sagittal"] {
            let same =
                ras.panel_pixels(ras.panel(id, view)) == lps.panel_pixels(lps.panel(id, view));
            assert!(
                same,
                "class {id} {view} differs between RAS and LPS storage"
            );
        }
    }
}

#[test]
fn spacing_1x1x3_makes_a_coronal_slice_three_times_taller_than_wide() {
    let tmp = common::fresh_dir();
    let dir = phantom(tmp.path(), &["--spacing", "1,1,3", "--shape", "30,30,30"]);
    let r = render(&dir, &[]);
    let coronal = r.panel(1, "coronal");
    let (w, h) = (
        coronal["width"].as_u64().unwrap(),
        coronal["height"].as_u64().unwrap(),
    );
    // 30 mm wide, 90 mm tall, at one scale (rounded to whole pixels).
    assert!(
        h.abs_diff(3 * w) <= 2,
        "coronal panel {w}x{h} for a 30x30x30 volume of 1x1x3 mm"
    );
    let axial = r.panel(1, "axial");
    assert_eq!(axial["width"], axial["height"], "axial is square in mm");
    // The body spans 24 voxels along x and 24 along z (0.8 of each extent), so in
    // the coronal view it is three times taller than wide.
    let body = r.pixels_of(coronal, colour_of(&r.info, 1));
    let span = |f: fn(&(u32, u32)) -> u32| {
        let v: Vec<u32> = body.iter().map(f).collect();
        f64::from(v.iter().max().unwrap() - v.iter().min().unwrap() + 1)
    };
    let (bw, bh) = (span(|p| p.0), span(|p| p.1));
    let ratio = bh / bw;
    assert!(
        (ratio - 3.0).abs() < 0.1,
        "body {bw}x{bh} px, ratio {ratio}"
    );
}

#[test]
fn a_structure_that_is_not_in_the_mask_is_refused_naming_the_argument() {
    let tmp = common::fresh_dir();
    let dir = phantom(tmp.path(), &[]);
    let output = Command::new(common::binary())
        .args(["render", "mask.nii.gz", "--structures", "spleen,aorta"])
        .env_remove("NV_SEGMENT_CTMR_ROOT")
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("structures")
            && stderr.contains("no voxels")
            && stderr.contains("classes 1, 2, 3"),
        "{stderr}"
    );
    assert!(
        !dir.join("overlay.png").exists(),
        "nothing written on refusal"
    );
}
