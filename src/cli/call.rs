//! How a subcommand calls a tool: in process, through the same registry the server
//! uses ([`CtmrTools::call_typed`]), with its arguments as a client would send them.
//! What the call ends as reaches the user through [`CliError`] (printed by
//! [`super::main`]) or the subcommand's document on stdout.

use serde_json::{json, Map, Value};

use super::error::CliError;
use super::runtime;
use crate::call::CallContext;
use crate::config::Config;
use crate::manifest::Manifest;
use crate::tools::{CtmrTools, Tool};

/// The tools for an in-process call; an error when the manifest and the
/// implementations disagree (a build defect).
pub(super) fn in_process(config: Config, manifest: Manifest) -> Result<CtmrTools, CliError> {
    CtmrTools::in_process(config, manifest).map_err(|e| CliError::Tools(e.to_string()))
}

/// A path argument as a tool takes it.
pub(super) fn path_arg(path: &std::path::Path) -> Value {
    json!(path.to_string_lossy())
}

/// Call `T` in process with `arguments` and wait for its output; any failure is the
/// input's (exit 2): these tools only read files.
pub(super) fn call_tool<T: Tool>(
    config: &Config,
    manifest: Manifest,
    arguments: Map<String, Value>,
) -> Result<T::Output, CliError> {
    let tools = in_process(config.clone(), manifest)?;
    runtime()
        .block_on(tools.call_typed::<T>(&arguments, CallContext::detached()))
        .map(|answer| answer.output)
        .map_err(|failure| CliError::Input(failure.message))
}
