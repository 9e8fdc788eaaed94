//! The one shape of a tool ([`Tool`]) and the registry that dispatches calls to it.
//!
//! Every call takes the same path: the manifest validates the arguments (types,
//! ranges, enums, defaults) → serde turns them into the tool's typed `Args` → the tool
//! makes its `Request` (path resolution, checks the manifest cannot express) → the
//! tool executes it, waited or (for tools that run in the background) under the job
//! table, and answers with its typed `Output`, serialised once here ([`into_outcome`]).
//! The CLI takes the same path in process ([`Registry::call_typed`]). Why a start-up check: the manifest, the typed arguments and the registry
//! are three statements of the same interface; [`Registry::check`] refuses to start
//! when they disagree, so a tool added to one and not the others fails its first test.

use std::any::Any;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use super::{runs, Started};
use crate::call::{Brief, CallContext, Image, ToolOutcome};
use crate::jobs::JobTable;
use crate::json_schema::schema_of;
use crate::manifest::agree::disagreements;
use crate::manifest::args::{validate, ArgError};
use crate::manifest::{Manifest, ToolDecl};

/// The start-up check's refusal ([`Registry::check`]): the manifest and the tool
/// implementations disagree; each problem names the tool, the argument and the rule.
/// A build defect, never the client's doing: the server refuses to start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("skill_manifest.yaml and the tool implementations disagree:\n- {}", .problems.join("\n- "))]
pub struct Disagreement {
    /// One line per disagreement.
    pub problems: Vec<String>,
}

/// Where a background run of a request keeps its record and result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Background {
    /// The evidence pack (run_script) or output root (run_batch).
    pub pack_dir: PathBuf,
    /// The result document in `pack_dir` (`output.json`, `cohort.json`).
    pub result_file: &'static str,
}

/// What a summary of a tool's output says: the one-line `head` (the text of a full
/// answer) and the [`Brief`] a summary answer adds.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Summary {
    pub head: String,
    pub brief: Brief,
}

/// A tool's answer: its typed output and the pictures shown beside it.
#[derive(Debug)]
pub struct Answer<O> {
    pub output: O,
    pub images: Vec<Image>,
}

impl<O> Answer<O> {
    /// An answer with no pictures.
    pub(crate) fn new(output: O) -> Self {
        Answer {
            output,
            images: Vec::new(),
        }
    }
}

/// Why a call failed, for a caller that acts on it (the CLI's exit code and document).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The arguments or a gate refused the call; nothing ran.
    Refused,
    /// The call could not start (no runtime, cancelled in the queue); nothing ran.
    NotStarted,
    /// The tool ran and failed (a failed run, an unreadable file).
    Failed,
}

/// A call that ended without the tool's document: `isError: true` with `message` (a
/// tool whose document says it failed, such as a failed upstream run, answers with
/// its output instead, see [`Tool::is_error`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ToolFailure {
    pub kind: FailureKind,
    pub message: String,
    /// What the CLI prints for a refusal (never sent to a client).
    pub document: Option<Value>,
}

impl ToolFailure {
    /// A failure of this kind with only a message.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        ToolFailure {
            kind,
            message: message.into(),
            document: None,
        }
    }

    /// The tool ran and failed: a message and nothing structured.
    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(FailureKind::Failed, message)
    }

    fn into_outcome(self) -> ToolOutcome {
        ToolOutcome::failure(self.message)
    }
}

/// What a call of `T` ends as, typed.
pub(crate) type Outcome<T> = Result<Answer<<T as Tool>::Output>, ToolFailure>;

/// One tool. `Args` mirrors the manifest's argument list (the start-up check compares
/// the two); `Request` is what execution needs; `Output` is its `structuredContent`,
/// whose schema is the tool's published output schema.
pub trait Tool: Send + Sync + Sized + 'static {
    /// The name declared in `skill_manifest.yaml`.
    const NAME: &'static str;
    /// For tools that run in the background on `wait: false`: the title of the waited
    /// document; their output schema is then "this, or the run record".
    const BACKGROUND_TITLE: Option<&'static str> = None;
    /// The arguments after manifest validation (defaults filled in), deserialised.
    type Args: DeserializeOwned + JsonSchema;
    /// A request ready to execute.
    type Request: Send + 'static;
    /// The result document.
    type Output: Serialize + JsonSchema + Send + 'static;

    /// The JSON Schema of the tool's `structuredContent`: `Output`'s, or with
    /// [`Tool::BACKGROUND_TITLE`] `Output`'s or the run record's.
    fn output_schema() -> Value {
        let base = schema_of::<Self::Output>();
        match Self::BACKGROUND_TITLE {
            Some(what) => super::schemas::waited_or_started(base, what),
            None => base,
        }
    }

    /// The text of an answer: its head line and what a summary answer adds.
    fn summary(output: &Self::Output) -> Summary;

    /// Whether `output` reports a failure (a run that did not succeed): then the answer
    /// is `isError: true`, with the head line as its message and `output` as its
    /// `structuredContent`.
    fn is_error(_output: &Self::Output) -> bool {
        false
    }

    /// Arguments as the client sent them → the form the manifest declares (e.g. the
    /// reference argv form → structured fields). Most tools take them as they are.
    fn normalise(&self, args: Map<String, Value>) -> Result<Map<String, Value>, ArgError> {
        Ok(args)
    }

    /// Arguments → request: what the manifest cannot check (paths, combinations).
    fn request(&self, args: Self::Args) -> Result<Self::Request, ArgError>;

    /// Run a request to its end.
    fn execute(
        self: Arc<Self>,
        request: Self::Request,
        ctx: CallContext,
    ) -> BoxFuture<'static, Outcome<Self>>;

    /// How a refused argument is answered.
    fn refusal(&self, error: ArgError) -> ToolFailure {
        ToolFailure::new(FailureKind::Refused, error.to_string())
    }

    /// Whether the call asked to wait for the result (`wait: false` says no).
    fn waits(_args: &Self::Args) -> bool {
        true
    }

    /// Where a background run of `request` lives; `None` for tools that always answer
    /// in full.
    fn background(&self, _request: &Self::Request) -> Option<Background> {
        None
    }

    /// Before a background run writes anything (its run record): the checks a waited
    /// call makes before it runs (the gates), so a refused call is answered at once,
    /// exactly as when waited, and writes nothing.
    fn admit(
        self: Arc<Self>,
        request: Self::Request,
    ) -> BoxFuture<'static, Result<Self::Request, ToolFailure>> {
        async move { Ok(request) }.boxed()
    }
}

/// A typed outcome as the server and the job table take it: serialised once.
pub(crate) fn into_outcome<T: Tool>(outcome: Outcome<T>) -> ToolOutcome {
    match outcome {
        Ok(answer) => {
            let Summary { head, brief } = T::summary(&answer.output);
            let structured =
                serde_json::to_value(&answer.output).expect("a tool's output serialises");
            if T::is_error(&answer.output) {
                return ToolOutcome::Failure {
                    message: head,
                    structured: Some(structured),
                    brief,
                };
            }
            ToolOutcome::Success {
                structured,
                summary: head,
                images: answer.images,
                brief,
            }
        }
        Err(failure) => failure.into_outcome(),
    }
}

/// [`Tool::admit`] for gates that read files: `check` runs on a copy of the request off
/// the async workers; the request comes back when it passes.
pub(crate) fn admit_blocking<R: Clone + Send + 'static>(
    request: R,
    check: impl FnOnce(R) -> Result<(), ToolFailure> + Send + 'static,
) -> BoxFuture<'static, Result<R, ToolFailure>> {
    async move {
        let checked = request.clone();
        match tokio::task::spawn_blocking(move || check(checked)).await {
            Ok(Ok(())) => Ok(request),
            Ok(Err(failure)) => Err(failure),
            Err(e) => Err(ToolFailure::new(
                FailureKind::NotStarted,
                format!("the gates could not run: {e}"),
            )),
        }
    }
    .boxed()
}

/// Blocking file work runs off the async workers, so the server keeps answering.
/// Short bookkeeping (the run records) takes this path; reading volumes and packs
/// takes [`blocking_heavy`].
pub(crate) fn blocking<A: Send + 'static>(
    f: impl FnOnce() -> Result<A, ToolFailure> + Send + 'static,
) -> BoxFuture<'static, Result<A, ToolFailure>> {
    async move {
        tokio::task::spawn_blocking(f)
            .await
            .unwrap_or_else(|e| Err(ToolFailure::failed(format!("tool task failed: {e}"))))
    }
    .boxed()
}

/// How many volume and pack reads run at once; more calls wait their turn without
/// holding a thread, so the blocking pool is never exhausted and `ping`, `tools/list`
/// and the run tools always answer.
pub(crate) const HEAVY_AT_ONCE: usize = 8;
/// How long a caller waits for one volume or pack read before it is answered with an
/// error (the read itself ends on its own; reads are bounded and never block).
pub(crate) const HEAVY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(600);

/// [`blocking`] for reads of client-named volumes and packs: at most
/// [`HEAVY_AT_ONCE`] at a time, each answered within [`HEAVY_DEADLINE`].
pub(crate) fn blocking_heavy<A: Send + 'static>(
    f: impl FnOnce() -> Result<A, ToolFailure> + Send + 'static,
) -> BoxFuture<'static, Result<A, ToolFailure>> {
    static PERMITS: std::sync::OnceLock<Arc<tokio::sync::Semaphore>> = std::sync::OnceLock::new();
    let permits = PERMITS
        .get_or_init(|| Arc::new(tokio::sync::Semaphore::new(HEAVY_AT_ONCE)))
        .clone();
    async move {
        let work = async move {
            let Ok(permit) = permits.acquire_owned().await else {
                return Err(ToolFailure::failed("the server is shutting down"));
            };
            // The permit lives as long as the thread, even past the deadline.
            blocking(move || {
                let _permit = permit;
                f()
            })
            .await
        };
        tokio::time::timeout(HEAVY_DEADLINE, work)
            .await
            .unwrap_or_else(|_| {
                Err(ToolFailure::failed(format!(
                    "the call did not finish within {} s and was abandoned; try a smaller input or call again later",
                    HEAVY_DEADLINE.as_secs()
                )))
            })
    }
    .boxed()
}

/// A parsed call: the request and whether to wait for it.
#[derive(Debug)]
pub struct Parsed<R> {
    pub request: R,
    pub waits: bool,
}

/// The one parse path of a call of `tool`: normalise → validate against its manifest
/// declaration `decl` → deserialise into `Args` → request. Every call takes it (the
/// server's, the CLI's through [`Registry::call_typed`]); tests call it directly.
pub fn parse<T: Tool>(
    tool: &T,
    decl: &ToolDecl,
    args: &Map<String, Value>,
) -> Result<Parsed<T::Request>, ArgError> {
    let args = tool.normalise(args.clone())?;
    let checked = validate(decl, &args)?;
    let typed: T::Args = serde_json::from_value(Value::Object(checked)).map_err(|e| {
        ArgError::new(
            "arguments",
            format!("do not match {}'s declaration: {e}", T::NAME),
            "this is a ctmr-skill defect (the manifest and the tool disagree); report it",
        )
    })?;
    let waits = T::waits(&typed);
    let request = tool.request(typed)?;
    Ok(Parsed { request, waits })
}

/// A [`Tool`] with its type erased, so the registry can hold them side by side.
trait DynTool: Send + Sync {
    fn name(&self) -> &'static str;
    fn output_schema(&self) -> Value;
    fn args_schema(&self) -> Value;
    /// The typed tool behind it, for [`Registry::call_typed`].
    fn as_any(&self) -> &dyn Any;
    fn call(
        &self,
        decl: &ToolDecl,
        args: &Map<String, Value>,
        ctx: CallContext,
        jobs: &Arc<JobTable>,
    ) -> BoxFuture<'static, ToolOutcome>;
    fn start(
        &self,
        decl: &ToolDecl,
        args: &Map<String, Value>,
        jobs: &Arc<JobTable>,
    ) -> BoxFuture<'static, Started>;
}

struct Registered<T: Tool>(Arc<T>);

impl<T: Tool> Registered<T> {
    /// [`parse`], a refused argument answered as the tool answers it.
    fn parse(
        &self,
        decl: &ToolDecl,
        args: &Map<String, Value>,
    ) -> Result<Parsed<T::Request>, ToolFailure> {
        parse(&*self.0, decl, args).map_err(|e| self.0.refusal(e))
    }

    /// Parse and run to the end, whatever `wait` says: the typed answer.
    fn waited(
        &self,
        decl: &ToolDecl,
        args: &Map<String, Value>,
        ctx: CallContext,
    ) -> BoxFuture<'static, Outcome<T>> {
        match self.parse(decl, args) {
            Ok(parsed) => self.0.clone().execute(parsed.request, ctx),
            Err(refusal) => async move { Err(refusal) }.boxed(),
        }
    }

    /// Admit the request (its gates), then start it under a run record.
    fn detach(
        &self,
        request: T::Request,
        place: Background,
        jobs: &Arc<JobTable>,
    ) -> BoxFuture<'static, Started> {
        let tool = self.0.clone();
        let jobs = jobs.clone();
        async move {
            let request = match tool.clone().admit(request).await {
                Ok(request) => request,
                Err(refusal) => return Started::Answered(refusal.into_outcome()),
            };
            runs::start_detached(
                jobs,
                T::NAME,
                place.pack_dir,
                place.result_file,
                move |ctx| tool.execute(request, ctx).map(into_outcome::<T>).boxed(),
            )
        }
        .boxed()
    }
}

impl<T: Tool> DynTool for Registered<T> {
    fn name(&self) -> &'static str {
        T::NAME
    }

    fn output_schema(&self) -> Value {
        T::output_schema()
    }

    fn args_schema(&self) -> Value {
        schema_of::<T::Args>()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn call(
        &self,
        decl: &ToolDecl,
        args: &Map<String, Value>,
        ctx: CallContext,
        jobs: &Arc<JobTable>,
    ) -> BoxFuture<'static, ToolOutcome> {
        let parsed = match self.parse(decl, args) {
            Ok(p) => p,
            Err(refusal) => return async move { refusal.into_outcome() }.boxed(),
        };
        match self.0.background(&parsed.request) {
            Some(place) if !parsed.waits => self
                .detach(parsed.request, place, jobs)
                .map(runs::started_outcome)
                .boxed(),
            _ => self
                .0
                .clone()
                .execute(parsed.request, ctx)
                .map(into_outcome::<T>)
                .boxed(),
        }
    }

    fn start(
        &self,
        decl: &ToolDecl,
        args: &Map<String, Value>,
        jobs: &Arc<JobTable>,
    ) -> BoxFuture<'static, Started> {
        let parsed = match self.parse(decl, args) {
            Ok(p) => p,
            Err(refusal) => {
                return async move { Started::Answered(refusal.into_outcome()) }.boxed()
            }
        };
        match self.0.background(&parsed.request) {
            Some(place) => self.detach(parsed.request, place, jobs),
            None => {
                let run = self
                    .0
                    .clone()
                    .execute(parsed.request, CallContext::detached());
                async move { Started::Answered(into_outcome::<T>(run.await)) }.boxed()
            }
        }
    }
}

/// Every tool of the product, by name.
pub(crate) struct Registry {
    tools: Vec<Arc<dyn DynTool>>,
}

impl Registry {
    /// An empty registry; [`Registry::with`] adds tools.
    pub(crate) fn empty() -> Self {
        Registry { tools: Vec::new() }
    }

    /// Add a tool.
    pub(crate) fn with<T: Tool>(mut self, tool: T) -> Self {
        self.tools.push(Arc::new(Registered(Arc::new(tool))));
        self
    }

    fn find(&self, name: &str) -> Option<&Arc<dyn DynTool>> {
        self.tools.iter().find(|t| t.name() == name)
    }

    /// The output schema documents by the paths the manifest names for them.
    pub(crate) fn documents(&self, manifest: &Manifest) -> Vec<(String, Value)> {
        manifest
            .interface
            .tools
            .iter()
            .filter_map(|decl| {
                let path = decl.output_schema.clone()?;
                Some((path, self.find(&decl.name)?.output_schema()))
            })
            .collect()
    }

    /// The start-up check: every tool in the manifest has exactly one implementation
    /// and vice versa, each declares an output schema, each implementation's typed
    /// arguments are exactly the manifest's argument names, and each argument's type,
    /// item type, enum values, bounds, requiredness and default agree with the
    /// manifest's ([`crate::manifest::agree`]).
    pub(crate) fn check(&self, manifest: &Manifest) -> Result<(), Disagreement> {
        let mut problems = Vec::new();
        let declared: BTreeSet<&str> = manifest
            .interface
            .tools
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        let mut implemented = BTreeSet::new();
        for tool in &self.tools {
            if !implemented.insert(tool.name()) {
                problems.push(format!("tool '{}' is registered twice", tool.name()));
            }
            if !declared.contains(tool.name()) {
                problems.push(format!(
                    "tool '{}' is implemented but not declared in skill_manifest.yaml",
                    tool.name()
                ));
            }
        }
        for decl in &manifest.interface.tools {
            let Some(tool) = self.find(&decl.name) else {
                problems.push(format!(
                    "tool '{}' is declared in skill_manifest.yaml but has no implementation",
                    decl.name
                ));
                continue;
            };
            if decl.output_schema.is_none() {
                problems.push(format!("tool '{}' declares no output_schema", decl.name));
            }
            for arg in &decl.arguments {
                let word = arg.writes.as_deref();
                if word.is_some_and(|w| super::write_gate::Written::parse(w).is_none()) {
                    problems.push(format!(
                        "tool '{}': argument '{}' declares writes: {:?} (use directory or picture)",
                        decl.name, arg.name, word
                    ));
                }
            }
            let manifest_args: BTreeSet<String> =
                decl.arguments.iter().map(|a| a.name.clone()).collect();
            let schema = tool.args_schema();
            let typed_args: BTreeSet<String> = schema["properties"]
                .as_object()
                .map(|p| p.keys().cloned().collect())
                .unwrap_or_default();
            if manifest_args != typed_args {
                problems.push(format!(
                    "tool '{}': the manifest declares arguments {:?} but the implementation takes {:?}",
                    decl.name, manifest_args, typed_args
                ));
            }
            problems.extend(disagreements(decl, &schema).iter().map(ToString::to_string));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Disagreement { problems })
        }
    }

    /// Call `name` (validated against `manifest`); `None` for an unknown tool.
    pub(crate) fn call(
        &self,
        manifest: &Manifest,
        name: &str,
        args: &Map<String, Value>,
        ctx: CallContext,
        jobs: &Arc<JobTable>,
    ) -> Option<BoxFuture<'static, ToolOutcome>> {
        let decl = manifest.tool(name)?;
        Some(self.find(name)?.call(decl, args, ctx, jobs))
    }

    /// Call `T` in process (the CLI): exactly the steps of a server call (normalise,
    /// validate against `manifest`, deserialise, request, execute), always waited, with
    /// the typed answer. `None` when `T` is not registered or not declared.
    pub(crate) fn call_typed<T: Tool>(
        &self,
        manifest: &Manifest,
        args: &Map<String, Value>,
        ctx: CallContext,
    ) -> Option<BoxFuture<'static, Outcome<T>>> {
        let decl = manifest.tool(T::NAME)?;
        let tool = self
            .find(T::NAME)?
            .as_any()
            .downcast_ref::<Registered<T>>()?;
        Some(tool.waited(decl, args, ctx))
    }

    /// Start `name` in the background where it can run there; `None` for an unknown tool.
    pub(crate) fn start(
        &self,
        manifest: &Manifest,
        name: &str,
        args: &Map<String, Value>,
        jobs: &Arc<JobTable>,
    ) -> Option<BoxFuture<'static, Started>> {
        let decl = manifest.tool(name)?;
        Some(self.find(name)?.start(decl, args, jobs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tool whose output says whether it failed.
    struct Probe;

    #[derive(Debug, Serialize, JsonSchema)]
    struct Reading {
        status: String,
    }

    impl Tool for Probe {
        const NAME: &'static str = "probe";
        type Args = Map<String, Value>;
        type Request = ();
        type Output = Reading;

        fn summary(output: &Reading) -> Summary {
            Summary {
                head: format!("the probe {}", output.status),
                brief: Brief {
                    status: Some(output.status.clone()),
                    lines: vec!["one line".into()],
                    pack: Some("/p".into()),
                },
            }
        }

        fn is_error(output: &Reading) -> bool {
            output.status != "ok"
        }

        fn request(&self, _args: Self::Args) -> Result<(), ArgError> {
            Ok(())
        }

        fn execute(self: Arc<Self>, _: (), _: CallContext) -> BoxFuture<'static, Outcome<Self>> {
            async move { Err(ToolFailure::failed("unused")) }.boxed()
        }
    }

    fn reading(status: &str) -> Outcome<Probe> {
        Ok(Answer::new(Reading {
            status: status.into(),
        }))
    }

    #[test]
    fn an_output_is_serialised_once_with_its_summary() {
        let brief = Probe::summary(&Reading {
            status: "ok".into(),
        })
        .brief;
        assert_eq!(
            into_outcome::<Probe>(reading("ok")),
            ToolOutcome::Success {
                structured: serde_json::json!({"status": "ok"}),
                summary: "the probe ok".into(),
                images: Vec::new(),
                brief,
            }
        );
        // An output that reports a failure is an error answer that keeps the document.
        let ToolOutcome::Failure {
            message,
            structured,
            brief,
        } = into_outcome::<Probe>(reading("broken"))
        else {
            panic!("not an error answer");
        };
        assert_eq!(message, "the probe broken");
        assert_eq!(structured, Some(serde_json::json!({"status": "broken"})));
        assert_eq!(brief.status.as_deref(), Some("broken"));
        // A failure without a document is its message alone.
        assert_eq!(
            into_outcome::<Probe>(Err(ToolFailure::new(FailureKind::Refused, "no"))),
            ToolOutcome::failure("no")
        );
    }

    #[test]
    fn the_output_schema_is_the_outputs_or_a_run_record() {
        assert_eq!(Probe::output_schema(), schema_of::<Reading>());
        // A tool that runs in the background: its output's schema, or the run record's.
        use super::super::run_script::RunScript;
        let schema = RunScript::output_schema();
        let options = schema["anyOf"].as_array().unwrap();
        let mut evidence = crate::evidence::evidence_schema();
        evidence.as_object_mut().unwrap().remove("$schema");
        assert_eq!(options[0], evidence);
        assert_eq!(options[1]["title"], "RunRecord");
    }
}
