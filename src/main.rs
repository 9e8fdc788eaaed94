//! Thin entry point: all behaviour lives in the library (`ctmr_skill::cli`).
fn main() -> std::process::ExitCode {
    ctmr_skill::cli::main()
}
