//! The server as a process: the standard streams taken for the protocol (so nothing
//! else can write to stdout or read stdin), the signals that stop it, and logging to
//! stderr. Apart from the wiring so the unsafe descriptor work reads in one place.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{serve_until, ServerError, ServerOptions, Tuning};
use crate::tools::ToolBox;

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
