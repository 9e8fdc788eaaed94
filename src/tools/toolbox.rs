//! [`CtmrTools`]: the product's tools behind the [`ToolBox`] the server speaks to.

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use serde_json::{Map, Value};

use super::{inspect_label_map, list_labels, run_script, verify_evidence};
use super::{CallContext, ToolBox, ToolCallError, ToolOutcome, ToolSpec};
use crate::config::Config;
use crate::manifest::Manifest;

/// The product's tools, as declared in the manifest.
pub struct CtmrTools {
    config: Arc<Config>,
    manifest: Arc<Manifest>,
    specs: Vec<ToolSpec>,
    run_script: Arc<run_script::RunScript>,
}

impl CtmrTools {
    pub fn new(config: Config, manifest: Manifest) -> Self {
        let config = Arc::new(config);
        let manifest = Arc::new(manifest);
        CtmrTools {
            specs: crate::manifest::schema::tool_specs(&manifest),
            run_script: Arc::new(run_script::RunScript::new(config.clone(), manifest.clone())),
            config,
            manifest,
        }
    }

    pub fn run_script(&self) -> &run_script::RunScript {
        &self.run_script
    }
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
            "run_script" => {
                let tool = self.run_script.clone();
                async move { Ok(tool.call_tool(arguments, ctx).await.into_outcome()) }.boxed()
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
}
