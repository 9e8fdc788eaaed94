//! The NIfTI reader against nibabel itself: `tests/py/nifti_cases.py` writes
//! small images with nibabel's header writer and records what `nib.load`
//! reports; every number here is compared with it, and every voxel streamed
//! slice by slice is compared with `get_fdata()` in order.

use crate::common;

use std::path::{Path, PathBuf};

use ctmr_skill::nifti::{read_header, AffineSource, NiftiError, NiftiVersion, VolumeReader};
use serde_json::Value;

struct Generated {
    _dir: tempfile::TempDir,
    root: PathBuf,
    cases: Vec<Value>,
}

fn generate() -> Generated {
    let dir = common::fresh_dir();
    let root = dir.path().to_path_buf();
    let script = common::repo_root().join("tests/py/nifti_cases.py");
    common::run_python(&script, &[root.to_str().unwrap()]);
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("cases.json")).unwrap()).unwrap();
    let cases = json["cases"].as_array().unwrap().clone();
    assert!(
        cases.len() > 50,
        "generator produced only {} cases",
        cases.len()
    );
    Generated {
        _dir: dir,
        root,
        cases,
    }
}

/// A float written by the generator as Python's round-trip repr (exact, unlike
/// a JSON number through a non-exact float parser).
fn num(v: &Value) -> f64 {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("not a float string: {v}"));
    s.parse().unwrap_or_else(|_| panic!("not a float: {s}"))
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= tol * (1.0 + b.abs())
}

fn assert_matrix(case: &str, what: &str, got: &[[f64; 4]; 4], want: &Value) {
    let rows = want
        .as_array()
        .unwrap_or_else(|| panic!("{case}: {what} missing"));
    for (r, row) in rows.iter().enumerate() {
        for (c, w) in row.as_array().unwrap().iter().enumerate() {
            // qform: nibabel works in long double; allow a few ulps.
            assert!(
                close(got[r][c], num(w), 1e-12),
                "{case}: {what}[{r}][{c}] = {} but nibabel says {}\n got {got:?}\nwant {want}",
                got[r][c],
                num(w)
            );
        }
    }
}

fn check_ok_case(root: &Path, case: &Value) {
    let name = case["name"].as_str().unwrap();
    let nib = &case["nibabel"];
    let path = root.join(case["file"].as_str().unwrap());

    let mut reader =
        VolumeReader::open(&path).unwrap_or_else(|e| panic!("{name}: open failed: {e}"));
    let h = reader.header().clone();
    // Debug form, because NaN fields (scl_slope) are never `==`.
    assert_eq!(
        format!("{:?}", read_header(&path).unwrap()),
        format!("{h:?}"),
        "{name}: read_header differs from open"
    );
    assert_eq!(reader.path(), path.as_path());

    let version = match h.version {
        NiftiVersion::Nifti1 => 1,
        NiftiVersion::Nifti2 => 2,
    };
    assert_eq!(version, nib["version"].as_i64().unwrap(), "{name}: version");
    assert_eq!(
        h.little_endian,
        nib["little_endian"].as_bool().unwrap(),
        "{name}: endianness"
    );
    assert_eq!(
        h.datatype.name(),
        nib["dtype"].as_str().unwrap(),
        "{name}: dtype"
    );
    let dim: Vec<usize> = serde_json::from_value(nib["dim"].clone()).unwrap();
    assert_eq!(h.dim, dim, "{name}: dim");
    let shape: Vec<usize> = serde_json::from_value(nib["shape"].clone()).unwrap();
    assert_eq!(&h.shape[..], &shape[..3], "{name}: shape");
    assert!(
        shape[3..].iter().all(|&d| d == 1),
        "{name}: nibabel shape {shape:?}"
    );
    assert_eq!(h.voxel_count(), (shape[0] * shape[1] * shape[2]) as u64);

    let zooms: Vec<f64> = nib["zooms"].as_array().unwrap().iter().map(num).collect();
    assert_eq!(h.zooms, zooms, "{name}: zooms");
    assert_eq!(&h.spacing[..], &zooms[..3], "{name}: spacing");
    assert!(close(
        h.voxel_volume_ml(),
        zooms[..3].iter().product::<f64>() / 1000.0,
        1e-15
    ));

    assert_matrix(name, "affine", &h.affine, &nib["affine"]);
    assert_eq!(
        h.sform_code as i64,
        nib["sform_code"].as_i64().unwrap(),
        "{name}: sform_code"
    );
    assert_eq!(
        h.qform_code as i64,
        nib["qform_code"].as_i64().unwrap(),
        "{name}: qform_code"
    );
    match (&h.sform, nib["sform"].is_null()) {
        (Some(s), false) => assert_matrix(name, "sform", s, &nib["sform"]),
        (None, true) => {}
        (got, _) => panic!("{name}: sform {got:?} vs nibabel {}", nib["sform"]),
    }
    match (&h.qform, nib["qform"].is_null()) {
        (Some(q), false) => assert_matrix(name, "qform", q, &nib["qform"]),
        (None, true) => {}
        (got, _) => panic!("{name}: qform {got:?} vs nibabel {}", nib["qform"]),
    }
    let expected_source = if h.sform_code > 0 {
        AffineSource::Sform
    } else if h.qform_code > 0 {
        AffineSource::Qform
    } else {
        AffineSource::Fallback
    };
    assert_eq!(h.affine_source, expected_source, "{name}: affine source");
    match (&h.sform, &h.qform) {
        (Some(s), Some(q)) => {
            let want = (0..4)
                .flat_map(|r| (0..4).map(move |c| (r, c)))
                .map(|(r, c)| (s[r][c] - q[r][c]).abs())
                .fold(0.0, f64::max);
            assert_eq!(
                h.sform_qform_max_abs_diff,
                Some(want),
                "{name}: sform/qform diff"
            );
        }
        _ => assert_eq!(
            h.sform_qform_max_abs_diff, None,
            "{name}: diff without both"
        ),
    }
    assert_eq!(
        h.sform_qform_disagree(),
        nib["sform_qform_disagree"].as_bool().unwrap(),
        "{name}: sform/qform disagreement flag ({:?})",
        h.sform_qform_max_abs_diff
    );
    if name == "sform_qform_disagree" {
        assert!(h.sform_qform_disagree(), "the sheared case must be flagged");
    }

    let axcodes: Vec<char> = nib["axcodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().chars().next().unwrap())
        .collect();
    let codes = h.orientation();
    if nib["axcodes_tie"].as_bool().unwrap() {
        // An exact tie (45 degrees in float32): nibabel's pick hangs on LAPACK's
        // last-bit rounding; any consistent pick is as right. Check consistency.
        let mut axes: Vec<usize> = codes
            .iter()
            .map(|c| match c {
                'L' | 'R' => 0,
                'P' | 'A' => 1,
                'I' | 'S' => 2,
                other => panic!("{name}: axis code {other}"),
            })
            .collect();
        axes.sort();
        assert_eq!(
            axes,
            [0, 1, 2],
            "{name}: codes {codes:?} reuse a world axis"
        );
    } else {
        assert_eq!(codes.to_vec(), axcodes, "{name}: orientation");
    }

    for (got, key) in [(h.scl_slope, "scl_slope"), (h.scl_inter, "scl_inter")] {
        let want = num(&nib[key]);
        assert!(
            close(got, want, 0.0),
            "{name}: {key} {got} vs nibabel {want}"
        );
    }
    let applied = nib["applied_slope_inter"].as_array().unwrap();
    let (slope, inter) = (num(&applied[0]), num(&applied[1]));
    match h.scaling {
        // Identity: nibabel's proxy holds (1, 0).
        None => assert_eq!(
            (slope, inter),
            (1.0, 0.0),
            "{name}: nibabel scales, we do not"
        ),
        Some(s) => assert_eq!(s, (slope, inter), "{name}: applied scaling"),
    }
    assert_eq!(
        h.vox_offset,
        nib["vox_offset"].as_u64().unwrap(),
        "{name}: vox_offset"
    );
    assert_eq!(
        h.descrip,
        nib["descrip"].as_str().unwrap(),
        "{name}: descrip"
    );

    // Stream every slice and compare with get_fdata(), x fastest, then y, then z.
    let expected: Vec<f64> = std::fs::read(root.join(format!("{name}.f64")))
        .unwrap()
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let [nx, ny, nz] = h.shape;
    assert_eq!(expected.len(), nx * ny * nz, "{name}: dump size");
    let mut slice = Vec::new();
    let (mut sum, mut min, mut max, mut nans) = (0.0f64, f64::INFINITY, f64::NEG_INFINITY, 0u64);
    let mut z = 0;
    let mut all = Vec::with_capacity(expected.len());
    while reader
        .read_slice(&mut slice)
        .unwrap_or_else(|e| panic!("{name}: slice {z}: {e}"))
    {
        assert_eq!(slice.len(), nx * ny, "{name}: slice {z} length");
        for (i, (&got, &want)) in slice.iter().zip(&expected[z * nx * ny..]).enumerate() {
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "{name}: voxel ({}, {}, {z}) = {got:e} but nibabel get_fdata gives {want:e}",
                i % nx,
                i / nx
            );
        }
        for &v in &slice {
            if v.is_nan() {
                nans += 1;
            } else {
                sum += v;
                min = min.min(v);
                max = max.max(v);
            }
        }
        all.extend_from_slice(&slice);
        z += 1;
    }
    assert_eq!(z, nz, "{name}: number of slices");
    assert!(slice.is_empty(), "{name}: buffer cleared after the end");
    assert!(
        !reader.read_slice(&mut slice).unwrap(),
        "{name}: stays at the end"
    );

    assert_eq!(
        nans,
        nib["nan_count"].as_u64().unwrap(),
        "{name}: NaN count"
    );
    if !nib["min"].is_null() {
        assert_eq!(min, num(&nib["min"]), "{name}: min");
        assert_eq!(max, num(&nib["max"]), "{name}: max");
    }
    // Summation order differs from numpy's pairwise sum: relative tolerance.
    let want_sum = num(&nib["sum"]);
    assert!(
        close(sum, want_sum, 1e-9) || (sum.is_infinite() && sum == want_sum),
        "{name}: sum {sum} vs {want_sum}"
    );
    for sample in nib["samples"].as_array().unwrap() {
        let ijk: Vec<usize> = serde_json::from_value(sample["ijk"].clone()).unwrap();
        let got = all[ijk[0] + nx * (ijk[1] + ny * ijk[2])];
        let want = num(&sample["value"]);
        assert!(
            close(got, want, 0.0),
            "{name}: voxel {ijk:?} = {got} vs {want}"
        );
    }
}

fn check_error_case(root: &Path, case: &Value) {
    let name = case["name"].as_str().unwrap();
    let file = case["file"].as_str().unwrap();
    let kind = case["kind"].as_str().unwrap();
    let path = root.join(file);
    let err: NiftiError = match VolumeReader::open(&path) {
        Err(e) => e,
        Ok(mut reader) => {
            // Some problems only show while streaming (truncated or corrupt data).
            let mut slice = Vec::new();
            loop {
                match reader.read_slice(&mut slice) {
                    Ok(true) => continue,
                    Ok(false) => panic!("{name}: read without error, expected {kind}"),
                    Err(e) => break e,
                }
            }
        }
    };
    assert_eq!(err.kind(), kind, "{name}: wrong error kind: {err}");
    assert_eq!(err.path(), path.as_path(), "{name}");
    let message = err.to_string();
    assert!(
        message.contains(file),
        "{name}: message does not name the file: {message}"
    );
    assert!(
        message.len() > file.len() + 20,
        "{name}: message too thin: {message}"
    );
}

#[test]
fn reader_agrees_with_nibabel_on_every_generated_case() {
    let g = generate();
    let (mut ok, mut errors) = (0, 0);
    let mut failures = Vec::new();
    for case in &g.cases {
        let expect = case["expect"].as_str().unwrap();
        // Check every case, then report all disagreements at once.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match expect {
            "ok" => check_ok_case(&g.root, case),
            "error" => check_error_case(&g.root, case),
            other => panic!("unknown expectation {other}"),
        }));
        match (outcome, expect) {
            (Err(panic), _) => failures.push(
                panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default(),
            ),
            (Ok(()), "ok") => ok += 1,
            (Ok(()), _) => errors += 1,
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n---\n")
    );
    assert!(ok > 40 && errors > 20, "ok {ok}, errors {errors}");
    check_failed_reader_stays_failed(&g);
}

#[test]
fn missing_file_and_directory_are_io_errors_naming_the_path() {
    let dir = common::fresh_dir();
    let missing = dir.path().join("no_such_scan.nii.gz");
    let err = VolumeReader::open(&missing).unwrap_err();
    assert_eq!(err.kind(), "io");
    assert!(err.to_string().contains("no_such_scan.nii.gz"), "{err}");
    let err = read_header(dir.path()).unwrap_err();
    assert_eq!(err.kind(), "io");
    assert!(err.to_string().contains("directory"), "{err}");
}

fn check_failed_reader_stays_failed(g: &Generated) {
    let path = g.root.join("truncated_gz_content.nii.gz");
    let mut reader = VolumeReader::open(&path).unwrap();
    let mut slice = Vec::new();
    let first_error = loop {
        match reader.read_slice(&mut slice) {
            Ok(true) => continue,
            Ok(false) => panic!("truncated file read to the end"),
            Err(e) => break e,
        }
    };
    assert_eq!(first_error.kind(), "truncated");
    assert!(slice.is_empty(), "no partial slice is handed out");
    let again = reader.read_slice(&mut slice).unwrap_err();
    assert!(again.to_string().contains("earlier read"), "{again}");
}

/// A NIfTI-2 header (little endian, 4x5x6 int16) with the pair magic `ni2` and
/// `vox_offset`, followed by `after` bytes (extensions, or nothing).
fn nifti2_pair_header(vox_offset: i64, after: usize) -> Vec<u8> {
    let mut h = vec![0u8; 540];
    h[0..4].copy_from_slice(&540i32.to_le_bytes());
    h[4..12].copy_from_slice(b"ni2\0\r\n\x1a\n");
    h[12..14].copy_from_slice(&4i16.to_le_bytes());
    h[14..16].copy_from_slice(&16i16.to_le_bytes());
    for (i, d) in [3i64, 4, 5, 6, 1, 1, 1, 1].iter().enumerate() {
        h[16 + 8 * i..24 + 8 * i].copy_from_slice(&d.to_le_bytes());
    }
    for (i, p) in [1.0f64, 1.0, 1.0, 1.0].iter().enumerate() {
        h[104 + 8 * i..112 + 8 * i].copy_from_slice(&p.to_le_bytes());
    }
    h[168..176].copy_from_slice(&vox_offset.to_le_bytes());
    h.resize(540 + after, 0);
    h
}

fn gzipped(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// Open and read every slice: the first error.
fn first_error(path: &Path) -> NiftiError {
    let mut reader = match VolumeReader::open(path) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let mut slice = Vec::new();
    loop {
        match reader.read_slice(&mut slice) {
            Ok(true) => continue,
            Ok(false) => panic!("{}: read to the end", path.display()),
            Err(e) => return e,
        }
    }
}

#[test]
fn a_nifti2_hdr_without_its_img_is_named_the_header_half_of_a_pair() {
    let dir = common::fresh_dir();
    // vox_offset 0 (nibabel's pairs), 544 (a single file's offset), or extensions
    // up to the voxels; plain and gzip: never "truncated".
    let cases = [
        ("zero.hdr", nifti2_pair_header(0, 0)),
        ("single_offset.hdr", nifti2_pair_header(544, 0)),
        ("with_extension.hdr", nifti2_pair_header(544, 4)),
        ("single_offset.hdr.gz", gzipped(&nifti2_pair_header(544, 0))),
        (
            "with_extension.hdr.gz",
            gzipped(&nifti2_pair_header(544, 4)),
        ),
        (
            "some_voxels.hdr.gz",
            gzipped(&nifti2_pair_header(544, 4 + 100)),
        ),
    ];
    for (name, bytes) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        for err in [read_header(&path).err(), Some(first_error(&path))]
            .into_iter()
            .flatten()
        {
            assert_eq!(err.kind(), "not_nifti", "{name}: {err}");
            assert!(
                err.to_string()
                    .contains("the header half of a NIfTI-2 .hdr/.img pair"),
                "{name}: {err}"
            );
        }
    }
    // A single-file NIfTI-2 image cut short is still a truncated file.
    let mut single = nifti2_pair_header(544, 4 + 100);
    single[4..8].copy_from_slice(b"n+2\0");
    let path = dir.path().join("cut.nii");
    std::fs::write(&path, single).unwrap();
    assert_eq!(first_error(&path).kind(), "truncated");
}
