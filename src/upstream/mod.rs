//! Running the upstream bundle: root resolution, the documented argv
//! (`python -m monai.bundle run --config_file configs/inference.json ...`), and a
//! supervised child process (own process group, timeout, cancellation, logs).
