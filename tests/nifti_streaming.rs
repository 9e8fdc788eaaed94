//! Streaming check: a float32 label map read slice by slice gives nibabel's
//! per-label voxel counts, while the process's peak memory stays far below the
//! size of the volume (it is never materialised). Prints throughput figures.
//!
//! The default volume is small enough for CI; set
//! `CTMR_NIFTI_STREAM_SHAPE=512x512x400` for an upstream-sized run.

mod common;

use std::collections::BTreeMap;
use std::time::Instant;

use ctmr_skill::nifti::VolumeReader;

/// Resident-set figures from /proc (Linux); `None` elsewhere.
fn proc_status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn label_map_streams_with_flat_memory_and_nibabel_counts() {
    let shape: Vec<usize> = std::env::var("CTMR_NIFTI_STREAM_SHAPE")
        .unwrap_or_else(|_| "192x192x96".into())
        .split('x')
        .map(|d| d.parse().expect("CTMR_NIFTI_STREAM_SHAPE like 512x512x400"))
        .collect();
    let dir = common::fresh_dir();
    let path = dir.path().join("labels.nii.gz");
    let script = common::repo_root().join("tests/py/nifti_stream_volume.py");
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let expected: serde_json::Value = serde_json::from_str(&common::run_python(
        &script,
        &[path.to_str().unwrap(), &dims[0], &dims[1], &dims[2]],
    ))
    .unwrap();

    let rss_before = proc_status_kib("VmRSS:");
    let started = Instant::now();
    let mut reader = VolumeReader::open(&path).unwrap();
    assert_eq!(reader.header().shape.to_vec(), shape);
    assert_eq!(reader.header().orientation(), ['L', 'P', 'S']);
    // A handful of labels: a linear scan with a last-hit shortcut beats a map.
    let mut counts: Vec<(u64, u64)> = Vec::new();
    let mut last = usize::MAX;
    let mut sum = 0.0f64;
    let mut slice = Vec::new();
    let mut slices = 0;
    while reader.read_slice(&mut slice).unwrap() {
        for &v in &slice {
            let bits = v.to_bits();
            if last == usize::MAX || counts[last].0 != bits {
                last = match counts.iter().position(|&(b, _)| b == bits) {
                    Some(i) => i,
                    None => {
                        counts.push((bits, 0));
                        counts.len() - 1
                    }
                };
            }
            counts[last].1 += 1;
            sum += v;
        }
        slices += 1;
    }
    let elapsed = started.elapsed();
    let counts: BTreeMap<u64, u64> = counts.into_iter().collect();
    assert_eq!(slices, shape[2]);

    let want: BTreeMap<u64, u64> = expected["counts"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.parse::<f64>().unwrap().to_bits(), v.as_u64().unwrap()))
        .collect();
    assert_eq!(counts, want, "per-label voxel counts differ from nibabel");
    let want_sum: f64 = expected["sum"].as_str().unwrap().parse().unwrap();
    assert!(
        (sum - want_sum).abs() <= 1e-9 * want_sum.abs(),
        "{sum} vs {want_sum}"
    );

    let voxels = (shape[0] * shape[1] * shape[2]) as f64;
    let raw_mib = voxels * 4.0 / (1 << 20) as f64;
    eprintln!(
        "streamed {shape:?} float32 .nii.gz ({raw_mib:.0} MiB raw) in {:.2} s: {:.1} Mvoxel/s, {:.0} MiB/s inflated",
        elapsed.as_secs_f64(),
        voxels / elapsed.as_secs_f64() / 1e6,
        raw_mib / elapsed.as_secs_f64()
    );
    if let (Some(before), Some(peak)) = (rss_before, proc_status_kib("VmHWM:")) {
        let growth_mib = peak.saturating_sub(before) as f64 / 1024.0;
        eprintln!("peak resident memory grew by {growth_mib:.1} MiB while streaming");
        // Materialising the volume would take raw_mib (float32) or twice that (f64).
        assert!(
            growth_mib < 24.0 && growth_mib < raw_mib / 2.0,
            "memory grew by {growth_mib:.1} MiB for a {raw_mib:.0} MiB volume: not streaming"
        );
    }
}
