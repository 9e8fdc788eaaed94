//! Recognising a CUDA out-of-memory failure in the upstream's stderr, so the caller
//! gets the fixes (a smaller sliding-window patch, then CPU postprocessing) instead of a
//! raw traceback.

/// The fix we give for an out-of-memory failure.
pub(crate) const OOM_FIX: &str =
    "The GPU ran out of memory (CUDA out of memory). Fix: first run again \
with a smaller sliding-window patch, e.g. patch_size [64, 64, 64] (CLI: --patch-size 64,64,64), \
and/or sw_batch_size 1; if it still runs out of memory, also set cpu_postprocessing true (CLI: \
--cpu-postprocessing) to run the postprocessing on the CPU; or use device cpu (slow).";

/// Whether `stderr` shows a CUDA out-of-memory failure: PyTorch's
/// `torch.OutOfMemoryError` / `torch.cuda.OutOfMemoryError`, or the message
/// "CUDA out of memory" (older PyTorch raises it as a plain RuntimeError), or the
/// CUDA runtime's "CUDA error: out of memory".
pub(crate) fn is_cuda_oom(stderr: &str) -> bool {
    stderr.contains("CUDA out of memory")
        || stderr.contains("OutOfMemoryError")
        || stderr.contains("CUDA error: out of memory")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_the_torch_messages() {
        let torch2 = "Traceback (most recent call last):\n  File \"monai/inferers/utils.py\", line 229\n\
torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of \
15.77 GiB of which 1.02 GiB is free.";
        let torch1 = "RuntimeError: CUDA out of memory. Tried to allocate 512.00 MiB (GPU 0; 7.79 GiB total capacity)";
        let cuda_rt = "RuntimeError: CUDA error: out of memory\nCUDA kernel errors might be asynchronously reported";
        let class_only = "torch.cuda.OutOfMemoryError: Allocation on device";
        for text in [torch2, torch1, cuda_rt, class_only] {
            assert!(is_cuda_oom(text), "{text}");
        }
    }

    #[test]
    fn the_fix_names_patch_size_first_then_cpu_postprocessing() {
        let patch = OOM_FIX.find("patch_size").unwrap();
        let cpu_post = OOM_FIX.find("cpu_postprocessing").unwrap();
        assert!(patch < cpu_post, "{OOM_FIX}");
        assert!(OOM_FIX.contains("--cpu-postprocessing"));
    }

    #[test]
    fn other_failures_are_not_oom() {
        for text in [
            "",
            "RuntimeError: applying transform <monai.transforms.io.dictionary.LoadImaged object>",
            "MemoryError: Unable to allocate 3.2 GiB for an array",
            "RuntimeError: CUDA error: device-side assert triggered",
            "killed: out of memory (host)",
        ] {
            assert!(!is_cuda_oom(text), "{text}");
        }
    }
}
