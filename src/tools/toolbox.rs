//! [`CtmrTools`]: the product's tools behind the [`ToolBox`] the server speaks to.

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use serde_json::{Map, Value};

use super::{inspect_label_map, list_labels, run_batch, run_script, runs, verify_evidence};
use super::{CallContext, Started, ToolBox, ToolCallError, ToolOutcome, ToolSpec};
use crate::config::Config;
use crate::jobs::JobTable;
use crate::manifest::Manifest;

/// The product's tools, as declared in the manifest.
pub struct CtmrTools {
    config: Arc<Config>,
    manifest: Arc<Manifest>,
    specs: Vec<ToolSpec>,
    run_script: Arc<run_script::RunScript>,
    run_batch: Arc<run_batch::RunBatch>,
    jobs: Arc<JobTable>,
}

impl CtmrTools {
    /// The runs index comes from `CTMR_SKILL_RUNS_DIR`, `XDG_STATE_HOME` or `HOME`
    /// (see [`crate::jobs`]).
    pub fn new(config: Config, manifest: Manifest) -> Self {
        let var = |k: &str| std::env::var(k).ok();
        let index = crate::jobs::index_dir(
            var(crate::jobs::RUNS_DIR_ENV).as_deref(),
            var("XDG_STATE_HOME").as_deref(),
            var("HOME").as_deref(),
            &config.cwd,
        );
        Self::with_jobs(config, manifest, JobTable::new(index))
    }

    /// With an explicit job table (tests).
    pub fn with_jobs(config: Config, manifest: Manifest, jobs: JobTable) -> Self {
        let config = Arc::new(config);
        let manifest = Arc::new(manifest);
        let run_script = Arc::new(run_script::RunScript::new(config.clone(), manifest.clone()));
        let run_batch = Arc::new(run_batch::RunBatch::new(
            config.clone(),
            manifest.clone(),
            run_script.slots(),
        ));
        CtmrTools {
            specs: crate::manifest::schema::tool_specs(&manifest),
            run_script,
            run_batch,
            jobs: Arc::new(jobs),
            config,
            manifest,
        }
    }

    pub fn run_script(&self) -> &run_script::RunScript {
        &self.run_script
    }

    pub fn run_batch(&self) -> &run_batch::RunBatch {
        &self.run_batch
    }

    pub fn jobs(&self) -> &Arc<JobTable> {
        &self.jobs
    }
}

impl CtmrTools {
    /// `run_script` / `run_batch`: waited (the default), or with `wait: false` started in
    /// the background (see [`CtmrTools::start_run`]).
    fn call_run(
        &self,
        name: &str,
        mut arguments: Map<String, Value>,
        ctx: CallContext,
    ) -> BoxFuture<'static, Result<ToolOutcome, ToolCallError>> {
        match runs::take_wait(&mut arguments) {
            Ok(true) => {
                let run = self.runner(name);
                async move { Ok(run(arguments, ctx).await) }.boxed()
            }
            Ok(false) => {
                let started = self.start_run(name, arguments);
                async move { Ok(runs::started_outcome(started.await)) }.boxed()
            }
            Err(message) => refusal(message),
        }
    }

    /// The run tool `name`, waited.
    fn runner(
        &self,
        name: &str,
    ) -> impl FnOnce(Map<String, Value>, CallContext) -> BoxFuture<'static, ToolOutcome> + Send + 'static
    {
        let script = self.run_script.clone();
        let batch = self.run_batch.clone();
        let is_batch = name == "run_batch";
        move |arguments, ctx| {
            if is_batch {
                async move { batch.call_tool(arguments, ctx).await.into_outcome() }.boxed()
            } else {
                async move { script.call_tool(arguments, ctx).await.into_outcome() }.boxed()
            }
        }
    }

    /// Start a run tool in the background under a run record, once its arguments
    /// parse; a call that does not parse is answered at once with the waited call's
    /// precise refusal (nothing runs).
    fn start_run(&self, name: &str, arguments: Map<String, Value>) -> BoxFuture<'static, Started> {
        let run = self.runner(name);
        let tool = self
            .manifest
            .tool(name)
            .expect("manifest declares the run tools");
        let place = if name == "run_batch" {
            run_batch::request::from_tool_arguments(tool, &arguments, &self.config)
                .map(|r| (r.output_root, "cohort.json"))
        } else {
            run_script::request::from_tool_arguments(tool, &arguments, &self.config)
                .map(|r| (r.output_dir, "output.json"))
        };
        let Ok((pack_dir, result_file)) = place else {
            let ctx = CallContext::detached();
            return async move { Started::Answered(run(arguments, ctx).await) }.boxed();
        };
        let jobs = self.jobs.clone();
        let name = name.to_string();
        async move {
            runs::start_detached(jobs, &name, pack_dir, result_file, move |ctx| {
                run(arguments, ctx)
            })
        }
        .boxed()
    }
}

fn refusal(message: String) -> BoxFuture<'static, Result<ToolOutcome, ToolCallError>> {
    async move {
        Ok(ToolOutcome::Failure {
            message,
            structured: None,
        })
    }
    .boxed()
}

/// Blocking file work runs off the async workers, so the server keeps answering.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ToolCallError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ToolCallError::Internal(format!("tool task failed: {e}")))
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
        let config = self.config.clone();
        let manifest = self.manifest.clone();
        match name {
            "run_script" | "run_batch" => self.call_run(name, arguments, ctx),
            "get_run" => {
                let jobs = self.jobs.clone();
                async move { blocking(move || runs::get_run(&jobs, &arguments)).await }.boxed()
            }
            "cancel_run" => {
                let jobs = self.jobs.clone();
                async move { blocking(move || runs::cancel_run(&jobs, &arguments)).await }.boxed()
            }
            "list_runs" => {
                let jobs = self.jobs.clone();
                async move { blocking(move || runs::list_runs(&jobs)).await }.boxed()
            }
            "inspect_label_map" => async move {
                blocking(move || {
                    let request = inspect_label_map::parse(&manifest, &arguments, &config);
                    inspect_label_map::outcome(
                        request.and_then(|r| inspect_label_map::execute(&r, &config)),
                    )
                })
                .await
            }
            .boxed(),
            "list_labels" => async move {
                blocking(move || {
                    let request = list_labels::parse(&manifest, &arguments, &config);
                    list_labels::outcome(request.and_then(|r| list_labels::execute(&r, &config)))
                })
                .await
            }
            .boxed(),
            "verify_evidence" => async move {
                blocking(
                    move || match verify_evidence::parse(&manifest, &arguments, &config) {
                        Ok(dir) => verify_evidence::execute(&dir),
                        Err(message) => ToolOutcome::Failure {
                            message,
                            structured: None,
                        },
                    },
                )
                .await
            }
            .boxed(),
            other => {
                let other = other.to_string();
                async move { Err(ToolCallError::UnknownTool(other)) }.boxed()
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
        mut arguments: Map<String, Value>,
    ) -> BoxFuture<'static, Result<Started, ToolCallError>> {
        let answered = |call: BoxFuture<'static, Result<ToolOutcome, ToolCallError>>| {
            async move { call.await.map(Started::Answered) }.boxed()
        };
        if !matches!(name, "run_script" | "run_batch") {
            return answered(self.call(name, arguments, CallContext::detached()));
        }
        if let Err(message) = runs::take_wait(&mut arguments) {
            return answered(refusal(message));
        }
        let started = self.start_run(name, arguments);
        async move { Ok(started.await) }.boxed()
    }
}
