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

pub(crate) mod detail;
mod handler;
mod progress;
pub(crate) mod resources;
mod tasks;
mod transport;

use std::sync::Arc;
use std::time::Duration;

use rmcp::service::{serve_server_with_ct, QuitReason, ServerInitializeError};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::tools::ToolBox;
use handler::{Handler, SUPPORTED_VERSIONS};
use transport::{pump_input, InFlight, LifecycleGate, LineTransport, LineWriter};

/// Who the server says it is.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerOptions {
    /// `serverInfo.name`.
    pub name: String,
    /// `serverInfo.version`.
    pub version: String,
    /// `instructions` for the model; the "not for clinical use" statement is
    /// appended unless the text already says it.
    pub instructions: String,
}

/// Limits and intervals; [`Tuning::default`] is what [`serve`] and
/// [`serve_stdio`] use. Tests shorten them.
#[derive(Debug, Clone, PartialEq)]
pub struct Tuning {
    /// Re-send the last progress this often while a call with a `progressToken`
    /// reports nothing (clients that reset their timeout on progress keep waiting).
    pub keepalive: Duration,
    /// Longest accepted input line (one JSON-RPC message); longer lines are
    /// skipped without being buffered and answered with `-32600`.
    pub max_line_bytes: usize,
    /// After end of input, the longest [`serve`] waits for calls to wind down.
    pub shutdown_grace: Duration,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            keepalive: Duration::from_secs(5),
            max_line_bytes: 16 * 1024 * 1024,
            shutdown_grace: Duration::from_secs(1),
        }
    }
}

/// Why serving stopped other than by a normal end of input.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The session could not be opened (e.g. the client's first message was unusable).
    #[error("MCP session setup failed: {0}")]
    Handshake(String),
    /// The SDK's service task died.
    #[error("MCP service task failed: {0}")]
    Service(String),
    /// stdin/stdout could not be reserved for the protocol.
    #[error(
        "cannot reserve stdin/stdout for the MCP protocol: {0}; run the server with both open"
    )]
    Stdio(#[source] std::io::Error),
}

/// Serve MCP over the process's stdin/stdout until stdin EOF; then cancel
/// in-flight calls and return within about [`Tuning::shutdown_grace`].
///
/// On Unix the protocol gets private copies of stdin and stdout; descriptor 0
/// then reads `/dev/null` and descriptor 1 writes to stderr, so a stray
/// `println!` or a child process that inherits the standard streams can neither
/// corrupt the protocol output nor consume protocol input.
pub async fn serve_stdio(
    toolbox: Arc<dyn ToolBox>,
    opts: ServerOptions,
) -> Result<(), ServerError> {
    let (input, output) = protocol_streams().map_err(ServerError::Stdio)?;
    let stop = CancellationToken::new();
    let watcher = tokio::spawn(stop_on_signals(stop.clone()));
    let served = serve_until(toolbox, opts, Tuning::default(), input, output, stop).await;
    watcher.abort();
    served
}

/// Cancel `stop` on the first SIGTERM, SIGINT or SIGHUP.
#[cfg(unix)]
async fn stop_on_signals(stop: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let kinds = [
        SignalKind::terminate(),
        SignalKind::interrupt(),
        SignalKind::hangup(),
    ];
    let mut streams = Vec::new();
    for kind in kinds {
        match signal(kind) {
            Ok(stream) => streams.push(stream),
            Err(e) => tracing::warn!("cannot watch signal {kind:?}: {e}"),
        }
    }
    if streams.is_empty() {
        return;
    }
    futures::future::select_all(streams.iter_mut().map(|s| Box::pin(s.recv()))).await;
    tracing::warn!("signal received: ending the session as at end of input");
    stop.cancel();
}

#[cfg(not(unix))]
async fn stop_on_signals(stop: CancellationToken) {
    if tokio::signal::ctrl_c().await.is_ok() {
        stop.cancel();
    }
}

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

/// Take the standard streams for the protocol: private copies of stdin and
/// stdout (close-on-exec, so child processes never inherit them), with
/// descriptor 0 pointed at `/dev/null` and descriptor 1 at stderr. A stray
/// `println!` or a child process that inherits the standard streams can then
/// neither corrupt the protocol output nor steal protocol input.
#[cfg(unix)]
fn protocol_streams() -> std::io::Result<(tokio::fs::File, tokio::fs::File)> {
    use std::io::Write;
    use std::os::fd::{AsRawFd, FromRawFd, RawFd};

    fn private_copy(fd: RawFd) -> std::io::Result<std::fs::File> {
        // SAFETY: duplicating a standard descriptor; the new descriptor is owned
        // by the returned File and by nothing else.
        let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
        if copy < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(unsafe { std::fs::File::from_raw_fd(copy) })
    }
    fn point(fd: RawFd, at: RawFd) -> std::io::Result<()> {
        // SAFETY: `at` is a valid open descriptor; dup2 atomically replaces `fd`.
        if unsafe { libc::dup2(at, fd) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    std::io::stdout().flush()?;
    let input = private_copy(libc::STDIN_FILENO)?;
    let output = private_copy(libc::STDOUT_FILENO)?;
    let null = std::fs::File::open("/dev/null")?;
    point(libc::STDIN_FILENO, null.as_raw_fd())?;
    point(libc::STDOUT_FILENO, libc::STDERR_FILENO)?;
    Ok((
        tokio::fs::File::from_std(input),
        tokio::fs::File::from_std(output),
    ))
}

#[cfg(not(unix))]
fn protocol_streams() -> std::io::Result<(tokio::io::Stdin, tokio::io::Stdout)> {
    Ok((tokio::io::stdin(), tokio::io::stdout()))
}

/// The `tracing` filter: `RUST_LOG`, else `warn,rmcp=error`, which keeps our warnings
/// and drops the SDK's one warning per error response (those are the client's
/// mistakes, already answered on the wire; internal tool failures are logged by us as
/// errors).
pub(crate) fn log_filter() -> tracing_subscriber::EnvFilter {
    use tracing_subscriber::EnvFilter;
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn,rmcp=error"))
}

/// Log to stderr through `tracing`, filtered by [`log_filter`].
/// Safe to call more than once; later calls do nothing.
pub fn init_stderr_logging() {
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(log_filter())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
