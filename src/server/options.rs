//! Who the server says it is ([`ServerOptions`]), its limits and intervals
//! ([`Tuning`]), and why serving stopped ([`ServerError`]): the server's settings and
//! outcome, apart from the wiring that uses them.

use std::time::Duration;

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

/// Limits and intervals; [`Tuning::default`] is what [`serve`](super::serve) and
/// [`serve_stdio`](super::serve_stdio) use. Tests shorten them.
#[derive(Debug, Clone, PartialEq)]
pub struct Tuning {
    /// Re-send the last progress this often while a call with a `progressToken`
    /// reports nothing (clients that reset their timeout on progress keep waiting).
    pub keepalive: Duration,
    /// Longest accepted input line (one JSON-RPC message); longer lines are
    /// skipped without being buffered and answered with `-32600`.
    pub max_line_bytes: usize,
    /// After end of input, the longest [`serve`](super::serve) waits for calls to wind down.
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
