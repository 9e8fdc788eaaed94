//! [`CtmrTools`]: the product's tools behind the [`ToolBox`] the server speaks to.

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use serde_json::{Map, Value};

use super::inspect_label_map::InspectLabelMap;
use super::list_labels::ListLabels;
use super::registry::{Disagreement, Outcome, Registry, Tool, ToolFailure};
use super::render_overlay::RenderOverlay;
use super::run_batch::RunBatch;
use super::run_script::RunScript;
use super::runs::{CancelRun, GetRun, ListRuns};
use super::verify_evidence::VerifyEvidence;
use super::{Started, ToolBox, ToolCallError};
use crate::call::{CallContext, ToolOutcome};
use crate::config::Config;
use crate::jobs::JobTable;
use crate::manifest::{Manifest, ToolSpec};
use crate::runner::workers::Workers;

/// The product's tools, as declared in the manifest.
pub struct CtmrTools {
    manifest: Arc<Manifest>,
    registry: Registry,
    specs: Vec<ToolSpec>,
    jobs: Arc<JobTable>,
    config: Arc<Config>,
    workers: Option<Arc<Workers>>,
}

/// Every tool of the product: the one place that lists them.
pub(super) fn registry(
    config: &Arc<Config>,
    manifest: &Arc<Manifest>,
    jobs: &Arc<JobTable>,
    workers: Option<Arc<Workers>>,
) -> Registry {
    let run_script = RunScript::with_workers(config.clone(), manifest.clone(), workers);
    let slots = run_script.slots();
    Registry::empty()
        .with(run_script)
        .with(RunBatch::new(config.clone(), manifest.clone(), slots))
        .with(GetRun(jobs.clone()))
        .with(CancelRun(jobs.clone()))
        .with(ListRuns(jobs.clone()))
        .with(InspectLabelMap(config.clone()))
        .with(ListLabels(config.clone()))
        .with(VerifyEvidence(config.clone()))
        .with(RenderOverlay(config.clone()))
}

impl CtmrTools {
    /// The tools over the runs index the config names (see [`crate::jobs`]). Fails when
    /// the manifest and the implementations disagree ([`Registry::check`]).
    pub fn new(config: Config, manifest: Manifest) -> Result<Self, Disagreement> {
        let jobs = JobTable::new(config.runs_dir.clone());
        Self::with_jobs(config, manifest, jobs)
    }

    /// With an explicit job table (tests).
    pub fn with_jobs(
        config: Config,
        manifest: Manifest,
        jobs: JobTable,
    ) -> Result<Self, Disagreement> {
        let config = Arc::new(config);
        let manifest = Arc::new(manifest);
        let jobs = Arc::new(jobs);
        let workers = Workers::for_config(&config);
        let registry = registry(&config, &manifest, &jobs, workers.clone());
        registry.check(&manifest)?;
        let specs = crate::manifest::schema::tool_specs(&manifest, &registry.documents(&manifest));
        Ok(CtmrTools {
            manifest,
            registry,
            specs,
            jobs,
            config,
            workers,
        })
    }

    /// The tools for in-process calls (the CLI): the runs index is not read, since
    /// such calls are always waited and run nothing in the background.
    pub(crate) fn in_process(config: Config, manifest: Manifest) -> Result<Self, Disagreement> {
        let jobs = JobTable::unopened(config.runs_dir.clone());
        Self::with_jobs(config, manifest, jobs)
    }

    /// Call `T` in process, typed: exactly the steps of a server call (see
    /// [`Registry::call_typed`]), always waited.
    pub(crate) fn call_typed<T: Tool>(
        &self,
        arguments: &Map<String, Value>,
        ctx: CallContext,
    ) -> BoxFuture<'static, Outcome<T>> {
        match self
            .registry
            .call_typed::<T>(&self.manifest, arguments, ctx)
        {
            Some(call) => call,
            None => {
                let e = ToolFailure::failed(format!("{} is not a tool of this build", T::NAME));
                async move { Err(e) }.boxed()
            }
        }
    }

    /// Start the default warm worker now (`serve --warm`); `None` when workers are off.
    pub(crate) fn prewarm(&self) -> Option<BoxFuture<'static, Result<String, String>>> {
        let workers = self.workers.clone()?;
        Some(super::run_script::prewarm(workers, self.config.clone()).boxed())
    }

    pub fn jobs(&self) -> &Arc<JobTable> {
        &self.jobs
    }

    /// The files `ctmr-skill schema` writes: (relative path, pretty JSON).
    pub fn schema_files(&self) -> Vec<(String, String)> {
        crate::manifest::schema::generated_files(
            &self.manifest,
            &super::schemas::generated(&self.registry, &self.manifest),
            &self.registry.documents(&self.manifest),
        )
    }
}

fn unknown(name: &str) -> ToolCallError {
    ToolCallError::UnknownTool(name.to_string())
}

impl ToolBox for CtmrTools {
    fn list(&self) -> Vec<ToolSpec> {
        self.specs.clone()
    }

    fn call(
        &self,
        name: &str,
        arguments: Map<String, Value>,
        ctx: CallContext,
    ) -> BoxFuture<'static, Result<ToolOutcome, ToolCallError>> {
        match self
            .registry
            .call(&self.manifest, name, &arguments, ctx, &self.jobs)
        {
            Some(call) => call.map(Ok).boxed(),
            None => {
                let e = unknown(name);
                async move { Err(e) }.boxed()
            }
        }
    }

    fn jobs(&self) -> Option<Arc<JobTable>> {
        Some(self.jobs.clone())
    }

    /// `run_script` and `run_batch` run in the background (a `wait` argument is
    /// ignored: a task never waits); the other tools answer in full.
    fn start(
        &self,
        name: &str,
        arguments: Map<String, Value>,
    ) -> BoxFuture<'static, Result<Started, ToolCallError>> {
        match self
            .registry
            .start(&self.manifest, name, &arguments, &self.jobs)
        {
            Some(started) => started.map(Ok).boxed(),
            None => {
                let e = unknown(name);
                async move { Err(e) }.boxed()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json_schema::DIALECT;
    use crate::manifest::schema::tool_specs;
    use crate::tools::Tool;

    fn world() -> (tempfile::TempDir, Arc<Config>, Arc<Manifest>, Arc<JobTable>) {
        let dir = tempfile::tempdir().unwrap();
        let config = Arc::new(Config::new(dir.path().to_path_buf(), vec![], None, None, 1));
        let manifest = Arc::new(crate::manifest::embedded().unwrap());
        let jobs = Arc::new(JobTable::new(dir.path().join("runs")));
        (dir, config, manifest, jobs)
    }

    #[test]
    fn the_typed_entry_takes_the_steps_of_a_server_call() {
        use super::super::registry::FailureKind;
        let dir = tempfile::tempdir().unwrap();
        let config = Config::new(dir.path().to_path_buf(), vec![], None, None, 1);
        let tools = CtmrTools::in_process(config, crate::manifest::embedded().unwrap()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        for args in [
            serde_json::json!({"run_id": "../etc/passwd"}),
            serde_json::json!({"run_id": "20261204T153000Z-1a2b3c4d", "bogus": 1}),
            serde_json::json!({}),
        ] {
            let args = args.as_object().unwrap().clone();
            let typed = rt
                .block_on(tools.call_typed::<GetRun>(&args, CallContext::detached()))
                .unwrap_err();
            assert_eq!(typed.kind, FailureKind::Refused, "{args:?}");
            let served = rt
                .block_on(tools.call(GetRun::NAME, args, CallContext::detached()))
                .unwrap();
            assert_eq!(served, ToolOutcome::failure(typed.message));
        }
        // A well-formed id of no run: the tool ran and failed, the same way.
        let args = serde_json::json!({"run_id": "20261204T153000Z-1a2b3c4d"});
        let args = args.as_object().unwrap().clone();
        let typed = rt
            .block_on(tools.call_typed::<GetRun>(&args, CallContext::detached()))
            .unwrap_err();
        assert_eq!(typed.kind, FailureKind::Failed);
        assert!(typed.message.contains("no run"), "{}", typed.message);
        // The typed answer of list_runs is the document a server call answers with.
        let list = rt
            .block_on(tools.call_typed::<ListRuns>(&Map::new(), CallContext::detached()))
            .unwrap()
            .output;
        let served = rt
            .block_on(tools.call(ListRuns::NAME, Map::new(), CallContext::detached()))
            .unwrap();
        let ToolOutcome::Success { structured, .. } = served else {
            panic!("list_runs failed: {served:?}");
        };
        assert_eq!(structured, serde_json::to_value(&list).unwrap());
    }

    #[test]
    fn every_declared_tool_has_exactly_one_implementation() {
        let (_dir, config, manifest, jobs) = world();
        registry(&config, &manifest, &jobs, None)
            .check(&manifest)
            .unwrap();
    }

    #[test]
    fn the_start_up_check_names_each_disagreement() {
        let (_dir, config, manifest, jobs) = world();
        // An implementation missing, another registered twice.
        let partial = Registry::empty()
            .with(GetRun(jobs.clone()))
            .with(GetRun(jobs.clone()))
            .with(ListLabels(config.clone()));
        let e = partial.check(&manifest).unwrap_err().to_string();
        assert!(e.contains("'get_run' is registered twice"), "{e}");
        assert!(
            e.contains("'run_script' is declared in skill_manifest.yaml but has no implementation"),
            "{e}"
        );
        // A tool the manifest does not declare, and arguments that disagree.
        let mut edited = (*manifest).clone();
        edited.interface.tools.retain(|t| t.name != "list_runs");
        let verify = edited
            .interface
            .tools
            .iter_mut()
            .find(|t| t.name == "verify_evidence")
            .unwrap();
        verify.arguments[0].name = "pack".into();
        let e = registry(&config, &manifest, &jobs, None)
            .check(&edited)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("'list_runs' is implemented but not declared"),
            "{e}"
        );
        assert!(
            e.contains("'verify_evidence': the manifest declares arguments {\"detail\", \"pack\"}"),
            "{e}"
        );
    }

    #[test]
    fn the_start_up_check_compares_each_argument_with_its_typed_field() {
        use crate::manifest::model::ArgSpec;
        use crate::manifest::model::ArgType;
        let (_dir, config, manifest, jobs) = world();
        let mut edited = (*manifest).clone();
        fn arg<'a>(m: &'a mut Manifest, tool: &str, name: &str) -> &'a mut ArgSpec {
            let decl = m.interface.tools.iter_mut().find(|t| t.name == tool);
            let args = &mut decl.unwrap().arguments;
            args.iter_mut().find(|a| a.name == name).unwrap()
        }
        arg(&mut edited, "verify_evidence", "pack_dir").value.ty = ArgType::Integer;
        arg(&mut edited, "run_batch", "label_prompts")
            .items
            .as_mut()
            .unwrap()
            .ty = ArgType::String;
        arg(&mut edited, "run_script", "device").value.allowed =
            Some(vec!["auto".into(), "tpu".into()]);
        arg(&mut edited, "list_labels", "modality").value.allowed = None;
        arg(&mut edited, "get_run", "run_id").required = false;
        arg(&mut edited, "inspect_label_map", "reference").required = true;
        arg(&mut edited, "run_script", "sw_batch_size")
            .value
            .minimum = None;
        let e = registry(&config, &manifest, &jobs, None)
            .check(&edited)
            .unwrap_err()
            .to_string();
        for expected in [
            "tool 'verify_evidence': argument 'pack_dir': type: manifest integer, Args string",
            "tool 'run_batch': argument 'label_prompts': item type: manifest string, Args integer",
            "tool 'run_script': argument 'device': enum: only the manifest accepts [\"tpu\"], only Args accepts [\"cpu\", \"cuda\"]",
            "tool 'list_labels': argument 'modality': enum: only the manifest accepts [\"*\"]",
            "tool 'get_run': argument 'run_id': required: Args requires it",
            "tool 'inspect_label_map': argument 'reference': required: the manifest requires it",
            "tool 'run_script': argument 'sw_batch_size': minimum: manifest states none, Args 0",
        ] {
            assert!(e.contains(expected), "{expected}\nnot in\n{e}");
        }
        assert_eq!(e.lines().count(), 8, "{e}");
    }

    #[test]
    fn every_tool_schema_is_flat_closed_and_object_rooted() {
        let (_dir, config, manifest, jobs) = world();
        let documents = registry(&config, &manifest, &jobs, None).documents(&manifest);
        for spec in tool_specs(&manifest, &documents) {
            let schema = &spec.input_schema;
            assert_eq!(schema["type"], "object", "{}", spec.name);
            assert_eq!(schema["$schema"], DIALECT);
            assert_eq!(schema["additionalProperties"], false);
            for key in ["oneOf", "anyOf", "allOf", "$ref"] {
                assert!(schema.get(key).is_none(), "{}: top-level {key}", spec.name);
            }
            let output = spec
                .output_schema
                .as_ref()
                .expect("every tool declares an output schema");
            assert_eq!(output["type"], "object", "{} output", spec.name);
            let text = serde_json::to_string(output).unwrap();
            assert!(
                !text.contains("$ref") && !text.contains("$defs"),
                "{}: references",
                spec.name
            );
            assert!(
                !text.contains("\"format\":\"uint"),
                "{}: Rust number formats",
                spec.name
            );
            for key in ["oneOf", "anyOf", "allOf"] {
                assert!(
                    output.get(key).is_none(),
                    "{}: top-level {key} in the output schema",
                    spec.name
                );
            }
        }
    }
}
