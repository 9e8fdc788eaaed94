//! The MCP stdio server. Everything that touches the `rmcp` SDK lives here, so an SDK
//! change touches one module. stdout belongs to the protocol; logs go to stderr.
//!
//! ## Shape
//! - `transport`: our own line framing in front of the SDK. The SDK's stdio
//!   transport silently drops unparsable and oversized lines and answers
//!   ill-shaped requests without their id; we answer each with a JSON-RPC error
//!   (`-32700`, `-32600`, `-32602`) and keep serving.
//! - `handler`: a hand-written `rmcp::ServerHandler` that maps `tools/list` and
//!   `tools/call` onto [`crate::tools::ToolBox`]; the SDK does version
//!   negotiation (`initialize` for 2025-03-26/2025-06-18/2025-11-25, `server/discover`
//!   and per-request `_meta` for 2026-07-28), `ping`, cancellation bookkeeping and
//!   concurrency (each request runs in its own task).
//! - `progress`: progress notifications that strictly increase, with a heartbeat
//!   every few seconds while a tool is quiet.
//! - `tasks`: the MCP tasks extension as a view of the toolbox's job table (a task
//!   id is a run id, so tasks survive a restart of the server).
//!
//! ## Shutdown
//! End of input means the client is done (MCP stdio lifecycle). The input reader
//! then cancels every running call's token at once; the SDK writes the responses
//! that are ready, and [`serve`] returns as soon as the SDK loop ends or at most
//! [`Tuning::shutdown_grace`] after end of input, whichever comes first, so a tool
//! that ignores cancellation cannot keep the process alive. A client that pipes
//! requests in must therefore read their responses before closing stdin.
//!
//! ## The map
//! [`serve_until`] (here) wires the input reader, the transport and the handler
//! together; [`options`] holds who the server says it is, its limits
//! ([`Tuning`]) and why serving stopped ([`ServerError`]); [`stdio`] takes the
//! process's standard streams for the protocol, stops on signals and sets up logging.
//! `detail` and `resources` shape tool results and the runs' files for the wire.

pub(crate) mod detail;
mod handler;
mod options;
mod progress;
pub(crate) mod resources;
mod stdio;
mod tasks;
mod transport;

use std::sync::Arc;

use rmcp::service::{serve_server_with_ct, QuitReason, ServerInitializeError};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::tools::ToolBox;
use handler::{Handler, SUPPORTED_VERSIONS};
pub use options::{ServerError, ServerOptions, Tuning};
pub(crate) use stdio::log_filter;
pub use stdio::{init_stderr_logging, serve_stdio};
use transport::{pump_input, InFlight, LifecycleGate, LineTransport, LineWriter};

/// [`serve_stdio`] over any byte streams (tests use `tokio::io::duplex` or pipes).
pub async fn serve<R, W>(
    toolbox: Arc<dyn ToolBox>,
    opts: ServerOptions,
    reader: R,
    writer: W,
) -> Result<(), ServerError>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    serve_tuned(toolbox, opts, Tuning::default(), reader, writer).await
}

/// [`serve`] with explicit [`Tuning`].
pub async fn serve_tuned<R, W>(
    toolbox: Arc<dyn ToolBox>,
    opts: ServerOptions,
    tuning: Tuning,
    reader: R,
    writer: W,
) -> Result<(), ServerError>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    serve_until(
        toolbox,
        opts,
        tuning,
        reader,
        writer,
        CancellationToken::new(),
    )
    .await
}

/// [`serve_tuned`] that also ends, as at end of input, when `stop` is cancelled.
pub(crate) async fn serve_until<R, W>(
    toolbox: Arc<dyn ToolBox>,
    opts: ServerOptions,
    tuning: Tuning,
    reader: R,
    writer: W,
    stop: CancellationToken,
) -> Result<(), ServerError>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let writer = LineWriter::new(writer);
    let input_closed = CancellationToken::new();
    let stopper = {
        let input_closed = input_closed.clone();
        tokio::spawn(async move {
            stop.cancelled().await;
            input_closed.cancel();
        })
    };
    let (forward, incoming) = mpsc::channel(64);
    let in_flight = InFlight::default();
    let reader_task = tokio::spawn(pump_input(
        reader,
        forward,
        writer.clone(),
        in_flight.clone(),
        LifecycleGate::new(SUPPORTED_VERSIONS.to_vec()),
        tuning.max_line_bytes,
        input_closed.clone(),
    ));
    let handler = Handler {
        toolbox,
        name: opts.name,
        version: opts.version,
        instructions: opts.instructions,
        shutdown: input_closed.clone(),
        keepalive: tuning.keepalive,
        packs: Default::default(),
    };
    let transport = LineTransport::new(incoming, writer, in_flight);

    let outcome = match serve_server_with_ct(handler, transport, CancellationToken::new()).await {
        Ok(running) => {
            let grace_after_eof = async {
                input_closed.cancelled().await;
                tokio::time::sleep(tuning.shutdown_grace).await;
            };
            tokio::select! {
                quit = running.waiting() => match quit {
                    Ok(QuitReason::JoinError(e)) => Err(ServerError::Service(e.to_string())),
                    Ok(reason) => {
                        tracing::info!(?reason, "MCP service stopped");
                        Ok(())
                    }
                    Err(e) => Err(ServerError::Service(e.to_string())),
                },
                _ = grace_after_eof => {
                    tracing::warn!(
                        grace = ?tuning.shutdown_grace,
                        "calls still running after end of input; leaving them behind"
                    );
                    Ok(())
                }
            }
        }
        // The client left before opening a session: a normal end.
        Err(ServerInitializeError::ConnectionClosed(_)) => Ok(()),
        Err(e) => Err(ServerError::Handshake(e.to_string())),
    };
    // Whatever ended the session, no tool keeps running on our account.
    input_closed.cancel();
    reader_task.abort();
    stopper.abort();
    outcome
}
