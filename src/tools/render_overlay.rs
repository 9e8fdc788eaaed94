//! `render_overlay`: a PNG montage of a label map over its image (see
//! [`crate::render`]), answered as an MCP image content item beside its description,
//! and written to `out` when asked. The CLI's `ctmr-skill render` runs the same code.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::Deserialize;

use super::registry::{blocking_heavy, Answer, Outcome, Summary, Tool, ToolFailure};
use super::write_gate::{self, Written};
use crate::call::{CallContext, Image};
use crate::config::Config;
use crate::labels::LabelTable;
use crate::manifest::args::ArgError;
use crate::render::{render_files, Picture, PictureInfo, RenderOptions, WindowChoice};

/// The tool.
pub(crate) struct RenderOverlay(pub Arc<Config>);

/// `render_overlay`'s arguments after the manifest checked them.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub(crate) struct RenderArgs {
    pub mask: String,
    pub image: Option<String>,
    pub structures: Option<Vec<String>>,
    pub window: Option<String>,
    pub out: Option<String>,
    pub upstream_root: Option<String>,
}

/// Parsed arguments.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RenderRequest {
    pub mask: PathBuf,
    pub image: Option<PathBuf>,
    /// Class names or ids, resolved against the label table at execution.
    pub structures: Vec<String>,
    pub window: WindowChoice,
    pub out: Option<PathBuf>,
    pub upstream_root: Option<PathBuf>,
}

impl Tool for RenderOverlay {
    const NAME: &'static str = "render_overlay";
    type Args = RenderArgs;
    type Request = RenderRequest;
    type Output = PictureInfo;

    fn summary(info: &PictureInfo) -> Summary {
        let names: Vec<String> = info
            .structures
            .iter()
            .map(|r| format!("{} ({:.1} mL)", r.structure.name, r.structure.volume_ml))
            .collect();
        Summary {
            head: format!(
                "Overlay {}x{} px of {} structure(s): {}. Axial, coronal and sagittal planes through each centroid, radiological orientation.{} Not for clinical use.",
                info.width,
                info.height,
                names.len(),
                names.join(", "),
                info.written_to
                    .as_deref()
                    .map(|p| format!(" Written to {p}."))
                    .unwrap_or_default()
            ),
            ..Summary::default()
        }
    }

    fn request(&self, args: RenderArgs) -> Result<RenderRequest, ArgError> {
        let path = |p: Option<String>| p.map(|p| self.0.absolute(Path::new(&p)));
        let window = match args.window.as_deref() {
            None => WindowChoice::Auto,
            Some(w) => w.parse().map_err(|_| {
                ArgError::new(
                    "window",
                    format!("'{w}' is not a window"),
                    format!("use one of {}", WindowChoice::NAMES),
                )
            })?,
        };
        let out = args
            .out
            .map(|p| write_gate::check(&self.0, Path::new(&p), Written::Picture))
            .transpose()
            .map_err(|refusal| refusal.for_argument("out"))?;
        Ok(RenderRequest {
            mask: self.0.absolute(Path::new(&args.mask)),
            image: path(args.image),
            structures: args.structures.unwrap_or_default(),
            window,
            out,
            upstream_root: crate::tools::run_script::request::admit_root(
                &self.0,
                args.upstream_root.as_deref(),
            )?,
        })
    }

    fn execute(
        self: Arc<Self>,
        request: RenderRequest,
        _ctx: CallContext,
    ) -> BoxFuture<'static, Outcome<Self>> {
        blocking_heavy(move || {
            let picture = execute(&request, &self.0).map_err(ToolFailure::failed)?;
            Ok(Answer {
                output: picture.info,
                images: vec![Image { png: picture.png }],
            })
        })
    }
}

/// Class names or ids → ids, from `table`; the error names `structures`.
pub(crate) fn resolve_structures(table: &LabelTable, names: &[String]) -> Result<Vec<u32>, String> {
    names
        .iter()
        .map(|q| {
            table.resolve(q).map_err(|e| {
                format!(
                    "structures: {e}; {} shows the class names",
                    super::list_labels::ListLabels::NAME
                )
            })
        })
        .collect()
}

/// Draw the picture (and write it to `out` when asked).
pub(crate) fn execute(request: &RenderRequest, config: &Config) -> Result<Picture, String> {
    let table = super::inspect_label_map::load_table(request.upstream_root.as_deref(), config)?;
    let options = RenderOptions {
        structures: resolve_structures(&table, &request.structures)?,
        window: request.window,
        ..RenderOptions::default()
    };
    let mut picture = render_files(
        &request.mask,
        request.image.as_deref(),
        Some(&table),
        &options,
    )
    .map_err(|e| e.to_string())?;
    if let Some(out) = &request.out {
        crate::atomic::write(out, &picture.png).map_err(|e| {
            format!(
                "out: cannot write {}: {e}; pass a writable path ending in .png",
                out.display()
            )
        })?;
        picture.info.written_to = Some(out.display().to_string());
    }
    Ok(picture)
}
