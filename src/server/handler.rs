//! The `rmcp` [`ServerHandler`], written by hand: `tools/list` and `tools/call`
//! map onto [`ToolBox`]; everything else keeps the SDK's default answer
//! (`-32601` for unimplemented methods, `ping`, `server/discover`, version
//! negotiation).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CancelTaskParams, ContentBlock,
    CreateTaskResult, GetTaskParams, GetTaskResult, Implementation, ListResourcesResult,
    ListToolsResult, MetaObject, PaginatedRequestParams, ProtocolVersion,
    ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, ResourceContents,
    ResourcesCapability, ServerCapabilities, ServerConfig, Tool, ToolsCapability,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::detail::{self, Detail};
use super::progress;
use super::resources::{self, Packs};
use super::tasks;
use crate::jobs::RunState;
use crate::tools::{CallContext, Started, ToolBox, ToolCallError, ToolOutcome, ToolSpec};

/// The revisions this server speaks: three with the `initialize` handshake and
/// the stateless 2026-07-28 one (`server/discover`, per-request `_meta`).
pub(crate) const SUPPORTED_VERSIONS: &[ProtocolVersion] = &[
    ProtocolVersion::V_2025_03_26,
    ProtocolVersion::V_2025_06_18,
    ProtocolVersion::V_2025_11_25,
    ProtocolVersion::V_2026_07_28,
];

pub(crate) struct Handler {
    pub toolbox: Arc<dyn ToolBox>,
    pub name: String,
    pub version: String,
    pub instructions: String,
    /// Cancelled when the input ends: every running call's token descends from it.
    pub shutdown: CancellationToken,
    pub keepalive: Duration,
    /// The packs linked in results so far: what `resources/read` may serve.
    pub packs: Packs,
}

/// The instructions as sent: the caller's text, with the clinical-use statement
/// added when the caller's text does not already say it.
pub(crate) fn instructions_with_disclaimer(text: &str) -> String {
    if text.to_lowercase().contains("not for clinical use") {
        text.to_owned()
    } else if text.trim().is_empty() {
        crate::NOT_FOR_CLINICAL_USE.to_owned()
    } else {
        format!("{}\n\n{}", text.trim_end(), crate::NOT_FOR_CLINICAL_USE)
    }
}

/// `tools/list` entry for one spec. Built through serde so the wire shape is
/// the one the SDK (de)serializes, whatever its constructors look like.
pub(crate) fn tool_from_spec(spec: &ToolSpec) -> Result<Tool, String> {
    if !spec.input_schema.is_object() {
        return Err(format!(
            "tool '{}' has an input schema that is not a JSON object",
            spec.name
        ));
    }
    let mut tool = json!({
        "name": spec.name,
        "title": spec.title,
        "description": spec.description,
        "inputSchema": spec.input_schema,
        "annotations": {
            "title": spec.title,
            "readOnlyHint": spec.read_only,
        },
    });
    if let Some(schema) = &spec.output_schema {
        if !schema.is_object() {
            return Err(format!(
                "tool '{}' has an output schema that is not a JSON object",
                spec.name
            ));
        }
        tool["outputSchema"] = schema.clone();
    }
    serde_json::from_value(tool).map_err(|e| format!("tool '{}': {e}", spec.name))
}

/// The `tools/call` result for a tool's outcome. Structured content is also
/// serialized into a text block, as the spec asks for clients that predate
/// `structuredContent`.
pub(crate) fn result_from_outcome(outcome: ToolOutcome) -> CallToolResult {
    match outcome {
        ToolOutcome::Success {
            structured,
            summary,
            images,
            ..
        } => {
            let mut content = vec![
                ContentBlock::text(summary),
                ContentBlock::text(structured.to_string()),
            ];
            content.extend(images.iter().map(image_block));
            let mut result = CallToolResult::success(content);
            result.structured_content = Some(structured);
            result
        }
        ToolOutcome::Failure {
            message,
            structured,
            ..
        } => {
            let mut content = vec![ContentBlock::text(message)];
            if let Some(s) = &structured {
                content.push(ContentBlock::text(s.to_string()));
            }
            let mut result = CallToolResult::error(content);
            result.structured_content = structured;
            result
        }
    }
}

/// A picture as an MCP `image` content item (base64 PNG).
fn image_block(image: &crate::call::Image) -> ContentBlock {
    use base64::Engine as _;
    ContentBlock::image(
        base64::engine::general_purpose::STANDARD.encode(&image.png),
        "image/png",
    )
}

/// How a tool's call is answered: the detail it asked for (`None`: the tool takes no
/// `detail`, its answer is the full one), its output schema (to cut a summary by) and
/// the packs it links.
pub(crate) struct Shape<'a> {
    pub tool: &'a str,
    pub detail: Option<Detail>,
    pub output_schema: Option<&'a serde_json::Value>,
    pub packs: &'a Packs,
    /// When the call started, for a tool that writes: what it wrote into the packs
    /// its result names since then may be served.
    pub wrote_since: Option<std::time::SystemTime>,
    /// The runs index, for packs its runs wrote.
    pub jobs: Option<Arc<crate::jobs::JobTable>>,
}

/// [`result_from_outcome`] at the detail the call asked for, with a `resource_link`
/// for every file of the packs the result names. Summary: the summary text and the
/// cut `structuredContent` (what was cut in `_meta["ctmr/summary"]`), no JSON text.
pub(crate) fn shaped_result(outcome: ToolOutcome, shape: &Shape<'_>) -> CallToolResult {
    let document = match &outcome {
        ToolOutcome::Success { structured, .. } => Some(structured.clone()),
        ToolOutcome::Failure { structured, .. } => structured.clone(),
    };
    let indexed = || shape.jobs.as_ref().map(|j| j.served()).unwrap_or_default();
    let links = document
        .as_ref()
        .map(|d| resources::links(d, shape.packs, shape.wrote_since, &indexed))
        .unwrap_or_default();
    let mut result = match (shape.detail, outcome) {
        (
            Some(Detail::Summary),
            ToolOutcome::Success {
                structured,
                summary,
                images,
                brief,
            },
        ) => {
            let text = detail::text(shape.tool, &summary, &brief);
            let (kept, cuts) = detail::subset(&structured, shape.output_schema);
            let mut content = vec![ContentBlock::text(text)];
            content.extend(images.iter().map(image_block));
            let mut result = CallToolResult::success(content);
            result.structured_content = Some(kept);
            let mut meta = serde_json::Map::new();
            meta.insert("ctmr/summary".into(), cuts.to_meta());
            result.meta = Some(MetaObject(meta));
            result
        }
        (
            Some(Detail::Summary),
            ToolOutcome::Failure {
                message,
                structured: Some(structured),
                brief,
            },
        ) => {
            let text = detail::text(shape.tool, &message, &brief);
            let (kept, cuts) = detail::subset(&structured, shape.output_schema);
            let mut result =
                CallToolResult::error(vec![ContentBlock::text(message), ContentBlock::text(text)]);
            result.structured_content = Some(kept);
            let mut meta = serde_json::Map::new();
            meta.insert("ctmr/summary".into(), cuts.to_meta());
            result.meta = Some(MetaObject(meta));
            result
        }
        (_, outcome) => result_from_outcome(outcome),
    };
    result
        .content
        .extend(links.into_iter().map(ContentBlock::resource_link));
    result
}

fn unknown_task(id: &str, index: &std::path::Path) -> ErrorData {
    ErrorData::invalid_params(
        format!(
            "unknown task '{id}': no such run in the runs index {}. Fix: pass the taskId a tools/call answered with ({} lists every run)",
            index.display(),
            <crate::tools::runs::ListRuns as crate::tools::Tool>::NAME
        ),
        Some(json!({ "taskId": id })),
    )
}

impl Handler {
    fn unknown_tool(&self, name: &str) -> ErrorData {
        let known: Vec<String> = self.toolbox.list().into_iter().map(|t| t.name).collect();
        ErrorData::invalid_params(
            format!(
                "unknown tool '{name}'; this server has: {}",
                known.join(", ")
            ),
            Some(json!({ "tool": name, "available": known })),
        )
    }

    async fn run_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let name = request.name.to_string();
        let arguments = request.arguments.unwrap_or_default();
        let spec = self.toolbox.list().into_iter().find(|t| t.name == name);
        let detail = Detail::requested(
            spec.as_ref()
                .is_some_and(|t| t.input_schema.pointer("/properties/detail").is_some()),
            &arguments,
        );

        // The call's token: cancelled by `notifications/cancelled` for this
        // request (the SDK cancels `context.ct`) or by the end of the input.
        let cancel = self.shutdown.child_token();
        let link = {
            let request_ct = context.ct.clone();
            let cancel = cancel.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = request_ct.cancelled() => cancel.cancel(),
                    _ = cancel.cancelled() => {}
                }
            })
        };

        let (sink, pump) = progress::start(
            context.peer.clone(),
            context.meta.get_progress_token(),
            self.keepalive,
        );
        let started = std::time::SystemTime::now();
        let call = self
            .toolbox
            .call(&name, arguments, CallContext::new(sink, cancel));
        // A task of its own, so a panicking tool fails this request, not the server.
        let joined = tokio::spawn(call).await;
        if let Some(pump) = pump {
            pump.finish().await;
        }
        link.abort();

        let shape = Shape {
            tool: &name,
            detail,
            output_schema: spec.as_ref().and_then(|t| t.output_schema.as_ref()),
            packs: &self.packs,
            wrote_since: spec.as_ref().filter(|t| !t.read_only).map(|_| started),
            jobs: self.toolbox.jobs(),
        };
        self.map_joined(&name, joined)
            .map(|outcome| shaped_result(outcome, &shape))
    }

    /// A finished call as the protocol answers it.
    fn map_joined<T>(
        &self,
        name: &str,
        joined: Result<Result<T, ToolCallError>, tokio::task::JoinError>,
    ) -> Result<T, ErrorData> {
        match joined {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(ToolCallError::UnknownTool(other))) => Err(self.unknown_tool(&other)),
            Ok(Err(ToolCallError::Internal(message))) => {
                tracing::error!(tool = %name, detail = %message, "tool failed internally");
                Err(ErrorData::internal_error(
                    format!("tool '{name}' failed internally: {message}"),
                    None,
                ))
            }
            Err(join_error) => {
                tracing::error!(tool = %name, error = %join_error, "tool task panicked");
                Err(ErrorData::internal_error(
                    format!("tool '{name}' crashed: {join_error}"),
                    None,
                ))
            }
        }
    }
}

impl Handler {
    /// Whether this call runs as a task: the request declared the tasks extension,
    /// the toolbox has a job table, and the tool writes (a long run). Read-only tools
    /// answer at once anyway.
    fn runs_as_task(&self, name: &str, context: &RequestContext<RoleServer>) -> bool {
        context
            .client_capabilities()
            .is_some_and(|caps| caps.supports_tasks())
            && self.toolbox.jobs().is_some()
            && self
                .toolbox
                .list()
                .iter()
                .any(|t| t.name == name && !t.read_only)
    }

    /// Start the call in the background and answer with its task, or with the
    /// result when the tool answered at once (a refusal: nothing was started).
    async fn start_task(
        &self,
        request: CallToolRequestParams,
    ) -> Result<CallToolResponse, ErrorData> {
        let name = request.name.to_string();
        let arguments = request.arguments.unwrap_or_default();
        let spec = self.toolbox.list().into_iter().find(|t| t.name == name);
        let detail = Detail::requested(
            spec.as_ref()
                .is_some_and(|t| t.input_schema.pointer("/properties/detail").is_some()),
            &arguments,
        );
        let started = tokio::spawn(self.toolbox.start(&name, arguments)).await;
        Ok(match self.map_joined(&name, started)? {
            Started::Run(record) => {
                CallToolResponse::Task(CreateTaskResult::new(tasks::task_of(&record)))
            }
            Started::Answered(outcome) => shaped_result(
                outcome,
                &Shape {
                    tool: &name,
                    detail,
                    output_schema: spec.as_ref().and_then(|t| t.output_schema.as_ref()),
                    packs: &self.packs,
                    wrote_since: None,
                    jobs: self.toolbox.jobs(),
                },
            )
            .into(),
        })
    }

    fn jobs(&self) -> Result<std::sync::Arc<crate::jobs::JobTable>, ErrorData> {
        self.toolbox.jobs().ok_or_else(|| {
            ErrorData::invalid_params(
                "this server runs no tasks: every call is answered in full",
                None,
            )
        })
    }
}

impl ServerHandler for Handler {
    fn get_info(&self) -> ServerConfig {
        let mut capabilities = ServerCapabilities::default();
        let mut tools = ToolsCapability::default();
        tools.list_changed = Some(false);
        capabilities.tools = Some(tools);
        let mut resources = ResourcesCapability::default();
        resources.list_changed = Some(false);
        capabilities.resources = Some(resources);
        capabilities
            .extensions
            .get_or_insert_with(Default::default)
            .insert(
                rmcp::model::TASKS_EXTENSION_ID.to_string(),
                Default::default(),
            );
        ServerConfig::new(capabilities)
            .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
            .with_server_info(Implementation::new(&self.name, &self.version))
            .with_instructions(instructions_with_disclaimer(&self.instructions))
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(SUPPORTED_VERSIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let tools = self
            .toolbox
            .list()
            .iter()
            .map(tool_from_spec)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ErrorData::internal_error(e, None))?;
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let jobs = self.toolbox.jobs();
        let linked = self.packs.all();
        let listed = tokio::task::spawn_blocking(move || resources::listing(jobs, linked))
            .await
            .map_err(|e| ErrorData::internal_error(format!("resources/list failed: {e}"), None))?;
        Ok(ListResourcesResult::with_all_items(listed))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let jobs = self.toolbox.jobs();
        let mut all = self.packs.all();
        let uri = request.uri;
        let answer = tokio::task::spawn_blocking(move || {
            all.extend(jobs.map(|j| j.served()).unwrap_or_default());
            resources::read(&uri, &resources::known(all)).map(|(text, mime)| (uri, text, mime))
        })
        .await
        .map_err(|e| ErrorData::internal_error(format!("resources/read failed: {e}"), None))?;
        let (uri, text, mime) = answer.map_err(|why| ErrorData::resource_not_found(why, None))?;
        let contents: ResourceContents = serde_json::from_value(json!({
            "uri": uri, "mimeType": mime, "text": text,
        }))
        .map_err(|e| ErrorData::internal_error(format!("resources/read: {e}"), None))?;
        Ok(ReadResourceResult::new(vec![contents]).into())
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if self.runs_as_task(&request.name, &context) {
            return self.start_task(request).await;
        }
        self.run_tool(request, context).await.map(Into::into)
    }

    async fn get_task(
        &self,
        request: GetTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, ErrorData> {
        let jobs = self.jobs()?;
        let id = request.task_id;
        tokio::task::spawn_blocking(move || {
            jobs.get(&id)
                .map(|view| GetTaskResult::new(tasks::detailed(&view)))
                .ok_or_else(|| unknown_task(&id, jobs.index()))
        })
        .await
        .map_err(|e| ErrorData::internal_error(format!("tasks/get failed: {e}"), None))?
    }

    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let jobs = self.jobs()?;
        let id = request.task_id;
        if jobs.cancel(&id) {
            return Ok(());
        }
        let not_cancelled =
            |why: String| ErrorData::invalid_params(why, Some(json!({ "taskId": id })));
        match jobs.get(&id).map(|view| view.run) {
            None => Err(unknown_task(&id, jobs.index())),
            Some(run) if run.state == RunState::Running => Err(not_cancelled(format!(
                "task '{id}' runs in another server (pid {}); only that server can cancel it",
                run.pid
            ))),
            Some(run) => Err(not_cancelled(format!(
                "task '{id}' has already ended ({}); there is nothing to cancel",
                serde_json::to_value(run.state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn spec() -> ToolSpec {
        ToolSpec {
            name: "echo".into(),
            title: "Echo".into(),
            description: "Echoes.".into(),
            input_schema: json!({"type": "object", "properties": {}, "additionalProperties": false}),
            output_schema: Some(json!({"type": "object"})),
            read_only: true,
        }
    }

    #[test]
    fn tool_wire_shape() {
        let tool = serde_json::to_value(tool_from_spec(&spec()).unwrap()).unwrap();
        assert_eq!(tool["name"], "echo");
        assert_eq!(tool["title"], "Echo");
        assert_eq!(tool["description"], "Echoes.");
        assert_eq!(tool["inputSchema"]["type"], "object");
        assert_eq!(tool["outputSchema"]["type"], "object");
        assert_eq!(tool["annotations"]["readOnlyHint"], true);
    }

    #[test]
    fn non_object_schema_is_rejected_with_the_tool_name() {
        let mut s = spec();
        s.input_schema = json!(true);
        assert!(tool_from_spec(&s).unwrap_err().contains("'echo'"));
    }

    #[test]
    fn success_has_summary_json_text_and_structured() {
        let r = serde_json::to_value(result_from_outcome(ToolOutcome::Success {
            structured: json!({"a": 1}),
            summary: "did it".into(),
            images: Vec::new(),
            brief: Default::default(),
        }))
        .unwrap();
        assert_eq!(r["isError"], false);
        assert_eq!(r["content"][0]["text"], "did it");
        assert_eq!(
            serde_json::from_str::<Value>(r["content"][1]["text"].as_str().unwrap()).unwrap(),
            json!({"a": 1})
        );
        assert_eq!(r["structuredContent"], json!({"a": 1}));
    }

    #[test]
    fn failure_is_error_with_message() {
        let r = serde_json::to_value(result_from_outcome(ToolOutcome::Failure {
            message: "bad `x`".into(),
            structured: None,
            brief: Default::default(),
        }))
        .unwrap();
        assert_eq!(r["isError"], true);
        assert_eq!(r["content"][0]["text"], "bad `x`");
        assert!(r.get("structuredContent").is_none());
    }

    #[test]
    fn disclaimer_is_added_once() {
        assert!(instructions_with_disclaimer("Use run_script.")
            .to_lowercase()
            .contains("not for clinical use"));
        let already = "Research only. Not for clinical use.";
        assert_eq!(instructions_with_disclaimer(already), already);
    }
}
