//! Newline-delimited JSON-RPC over a byte stream, with the robustness rules this
//! server promises and the SDK's own stdio transport does not keep: unparsable
//! lines get a `-32700` reply (the SDK drops them silently), oversized lines get a
//! `-32600` reply (the SDK drops them silently) and a request whose parameters do
//! not fit its method gets an error *with its id* (the SDK answers without an id,
//! which leaves the client waiting forever).
//!
//! A dedicated reader task frames and classifies lines; the SDK's service loop
//! takes the good messages from a channel, so its `receive` is cancel-safe. Both
//! the reader and the SDK write through one shared, line-atomic writer.

use std::pin::Pin;
use std::sync::Arc;

use rmcp::model::{
    ClientJsonRpcMessage, ClientRequest, GetMeta, JsonRpcMessage, ProtocolVersion,
    ServerJsonRpcMessage,
};
use rmcp::service::RoleServer;
use rmcp::transport::Transport;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, Mutex};
use tokio_util::sync::CancellationToken;

/// JSON-RPC 2.0 error codes used by the framing layer.
pub(crate) const PARSE_ERROR: i64 = -32700;
pub(crate) const INVALID_REQUEST: i64 = -32600;
pub(crate) const INVALID_PARAMS: i64 = -32602;

/// The ids of requests forwarded to the SDK and not yet answered. JSON-RPC ids must
/// be unique among requests in flight; the SDK silently drops a second request that
/// reuses one, which leaves its client waiting forever, so the reader answers it.
#[derive(Clone, Default)]
pub(crate) struct InFlight(Arc<std::sync::Mutex<std::collections::HashSet<String>>>);

impl InFlight {
    fn key(id: &impl serde::Serialize) -> String {
        serde_json::to_string(id).unwrap_or_default()
    }

    /// Record `id`; false when a request with this id is still in flight.
    fn begin(&self, id: &impl serde::Serialize) -> bool {
        let mut set = self.0.lock().unwrap_or_else(|e| e.into_inner());
        set.insert(Self::key(id))
    }

    fn end(&self, id: &impl serde::Serialize) {
        let mut set = self.0.lock().unwrap_or_else(|e| e.into_inner());
        set.remove(&Self::key(id));
    }
}

/// The output stream; `None` once closed.
type SharedOutput = Arc<Mutex<Option<Pin<Box<dyn AsyncWrite + Send>>>>>;

/// Writes whole lines; one lock per line keeps concurrent writers from interleaving.
#[derive(Clone)]
pub(crate) struct LineWriter {
    inner: SharedOutput,
}

impl LineWriter {
    pub(crate) fn new<W: AsyncWrite + Send + 'static>(writer: W) -> Self {
        LineWriter {
            inner: Arc::new(Mutex::new(Some(Box::pin(writer)))),
        }
    }

    /// Write `line` (which must not contain a newline) followed by `\n`, then flush.
    pub(crate) async fn write_line(&self, line: &[u8]) -> std::io::Result<()> {
        let mut guard = self.inner.lock().await;
        let Some(writer) = guard.as_mut() else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "the MCP output stream is closed",
            ));
        };
        writer.write_all(line).await?;
        writer.write_all(b"\n").await?;
        writer.flush().await
    }

    async fn close(&self) -> std::io::Result<()> {
        let mut guard = self.inner.lock().await;
        if let Some(mut writer) = guard.take() {
            writer.flush().await?;
            writer.shutdown().await?;
        }
        Ok(())
    }
}

/// What to do with one input line.
#[derive(Debug)]
pub(super) enum Verdict {
    /// A well-formed MCP message for the SDK.
    Forward(Box<ClientJsonRpcMessage>),
    /// Protocol garbage: answer it directly with this JSON-RPC error object.
    Reply(Value),
    /// Nothing to do (blank line, malformed notification: JSON-RPC forbids replies).
    Ignore(&'static str),
}

/// A JSON-RPC error response; `id` is `null` when the request's id is unreadable.
pub(crate) fn error_response(id: Value, code: i64, message: impl Into<String>) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": { "code": code, "message": message.into() },
    })
}

/// Reply for a line longer than the limit (its content is never buffered).
pub(crate) fn oversized_reply(limit: usize) -> Value {
    error_response(
        Value::Null,
        INVALID_REQUEST,
        format!(
            "message exceeds the {limit}-byte line limit and was discarded; \
             send each JSON-RPC message on one line of at most {limit} bytes"
        ),
    )
}

/// Methods whose parameter shape the SDK knows; a mismatch is `-32602`, not `-32600`.
fn is_known_request_method(method: &str) -> bool {
    matches!(
        method,
        "initialize"
            | "ping"
            | "server/discover"
            | "tools/list"
            | "tools/call"
            | "prompts/list"
            | "prompts/get"
            | "resources/list"
            | "resources/read"
            | "resources/templates/list"
            | "resources/subscribe"
            | "resources/unsubscribe"
            | "subscriptions/listen"
            | "completion/complete"
            | "logging/setLevel"
    )
}

/// An id we may echo back: a string or an integer (JSON-RPC forbids fractions,
/// and `null` means "no id").
fn echoable_id(value: &serde_json::Map<String, Value>) -> Option<Value> {
    match value.get("id") {
        Some(id @ Value::String(_)) => Some(id.clone()),
        Some(Value::Number(n)) if n.is_i64() => Some(Value::Number(n.clone())),
        _ => None,
    }
}

/// A specific reason why `params` do not fit `method`, where we can name one.
fn params_problem(method: &str, params: Option<&Value>) -> String {
    let generic = "they do not match the method's schema".to_owned();
    match (method, params) {
        (_, Some(p)) if !p.is_object() => "`params` must be a JSON object".to_owned(),
        ("tools/call", None) => "`params` with a `name` is required".to_owned(),
        ("tools/call", Some(p)) => {
            if !p.get("name").is_some_and(Value::is_string) {
                "`name` must be the tool's name as a string".to_owned()
            } else if p
                .get("arguments")
                .is_some_and(|a| !a.is_object() && !a.is_null())
            {
                "`arguments` must be a JSON object of the tool's arguments".to_owned()
            } else {
                generic
            }
        }
        _ => generic,
    }
}

/// Classify one line (without its `\n`). Pure: no I/O. The common case costs
/// one parse; the generic JSON value is only built to explain a failure.
pub(crate) fn classify_line(line: &[u8]) -> Verdict {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return Verdict::Ignore("blank line");
    }
    let sdk_error = match serde_json::from_slice::<ClientJsonRpcMessage>(line) {
        // The SDK reads a known method whose params do not fit as a custom
        // request, which would be answered "method not found": say what is wrong.
        Ok(JsonRpcMessage::Request(request)) => match request.request {
            ClientRequest::CustomRequest(custom) if is_known_request_method(&custom.method) => {
                return Verdict::Reply(error_response(
                    serde_json::to_value(&request.id).unwrap_or(Value::Null),
                    INVALID_PARAMS,
                    format!(
                        "invalid params for `{}`: {}",
                        custom.method,
                        params_problem(&custom.method, custom.params.as_ref())
                    ),
                ));
            }
            other => {
                return Verdict::Forward(Box::new(JsonRpcMessage::Request(
                    rmcp::model::JsonRpcRequest {
                        request: other,
                        ..request
                    },
                )))
            }
        },
        Ok(message) => return Verdict::Forward(Box::new(message)),
        Err(e) => e,
    };
    explain_unusable(line, &sdk_error)
}

/// The reply (or silence) for a line the SDK cannot read.
fn explain_unusable(line: &[u8], sdk_error: &serde_json::Error) -> Verdict {
    let value: Value = match serde_json::from_slice(line) {
        Ok(value) => value,
        Err(e) => {
            return Verdict::Reply(error_response(
                Value::Null,
                PARSE_ERROR,
                format!("parse error: the line is not valid JSON ({e})"),
            ))
        }
    };
    let Value::Object(object) = &value else {
        let what = if value.is_array() {
            "JSON-RPC batches are not supported; send one message per line"
        } else {
            "a JSON-RPC message must be a JSON object"
        };
        return Verdict::Reply(error_response(Value::Null, INVALID_REQUEST, what));
    };
    if !object.contains_key("id") {
        // A notification (or an id-less response): JSON-RPC forbids a reply.
        return Verdict::Ignore("malformed notification");
    }
    let Some(id) = echoable_id(object) else {
        return Verdict::Reply(error_response(
            Value::Null,
            INVALID_REQUEST,
            "invalid request: `id` must be a string or an integer",
        ));
    };
    if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Verdict::Reply(error_response(
            id,
            INVALID_REQUEST,
            "invalid request: `jsonrpc` must be \"2.0\"",
        ));
    }
    let reply = match object.get("method").and_then(Value::as_str) {
        Some(method) if is_known_request_method(method) => error_response(
            id,
            INVALID_PARAMS,
            format!("invalid params for `{method}`: {sdk_error}"),
        ),
        Some(method) => error_response(
            id,
            INVALID_REQUEST,
            format!("invalid request `{method}`: {sdk_error}"),
        ),
        None => error_response(
            id,
            INVALID_REQUEST,
            format!("invalid request: no `method` and not a valid response ({sdk_error})"),
        ),
    };
    Verdict::Reply(reply)
}

/// Tracks whether the SDK has left its pre-lifecycle phase. Before that, the SDK
/// treats any notification or response as a fatal handshake error, so such
/// messages are dropped here instead (they are meaningless before a session).
pub(crate) struct LifecycleGate {
    started: bool,
    supported: Vec<ProtocolVersion>,
}

impl LifecycleGate {
    pub(crate) fn new(supported: Vec<ProtocolVersion>) -> Self {
        LifecycleGate {
            started: false,
            supported,
        }
    }

    /// Whether `message` may go to the SDK now; updates the phase. Mirrors the
    /// SDK's pre-lifecycle loop: `initialize`, or any request other than `ping`
    /// and `server/discover` that carries complete, supported 2026-07-28 metadata,
    /// opens the session.
    pub(crate) fn admit(&mut self, message: &ClientJsonRpcMessage) -> bool {
        if self.started {
            return true;
        }
        match message {
            JsonRpcMessage::Request(request) => {
                match &request.request {
                    ClientRequest::InitializeRequest(_) => self.started = true,
                    ClientRequest::PingRequest(_) | ClientRequest::DiscoverRequest(_) => {}
                    other => {
                        let meta = other.get_meta();
                        if let Some(version) = meta.protocol_version() {
                            if meta
                                .missing_required_keys(&ProtocolVersion::V_2026_07_28)
                                .is_empty()
                                && self.supported.contains(&version)
                            {
                                self.started = true;
                            }
                        }
                    }
                }
                true
            }
            _ => false,
        }
    }
}

/// Outcome of reading one bounded line.
enum LineRead {
    Line,
    Oversized,
    Eof,
}

/// Reads `\n`-terminated lines into `buf`, never buffering more than `limit`
/// bytes of one line: the remainder of an oversized line is skipped as it arrives.
async fn read_bounded_line<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    buf: &mut Vec<u8>,
    limit: usize,
) -> std::io::Result<LineRead> {
    buf.clear();
    let mut oversized = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            // EOF: a final unterminated line still counts as a message.
            return Ok(if oversized {
                LineRead::Oversized
            } else if buf.is_empty() {
                LineRead::Eof
            } else {
                LineRead::Line
            });
        }
        let newline = available.iter().position(|b| *b == b'\n');
        let chunk_end = newline.unwrap_or(available.len());
        if !oversized {
            if buf.len() + chunk_end > limit {
                oversized = true;
                buf.clear();
                buf.shrink_to(64 * 1024);
            } else {
                buf.extend_from_slice(&available[..chunk_end]);
            }
        }
        let consumed = newline.map_or(available.len(), |i| i + 1);
        reader.consume(consumed);
        if newline.is_some() {
            return Ok(if oversized {
                LineRead::Oversized
            } else {
                LineRead::Line
            });
        }
    }
}

/// Read lines until EOF, forwarding good messages and answering garbage.
/// Cancels `input_closed` when the input ends (EOF or a read error).
pub(crate) async fn pump_input<R: AsyncRead + Unpin>(
    reader: R,
    forward: mpsc::Sender<ClientJsonRpcMessage>,
    writer: LineWriter,
    in_flight: InFlight,
    mut gate: LifecycleGate,
    max_line_bytes: usize,
    input_closed: CancellationToken,
) {
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let mut line = Vec::new();
    loop {
        let read = match read_bounded_line(&mut reader, &mut line, max_line_bytes).await {
            Ok(read) => read,
            Err(e) => {
                tracing::error!(error = %e, "reading MCP input failed; treating it as end of input");
                break;
            }
        };
        let verdict = match read {
            LineRead::Eof => break,
            LineRead::Oversized => {
                tracing::warn!(max_line_bytes, "discarded an oversized input line");
                Verdict::Reply(oversized_reply(max_line_bytes))
            }
            LineRead::Line => classify_line(&line),
        };
        match verdict {
            Verdict::Forward(message) => {
                if !gate.admit(&message) {
                    tracing::debug!(
                        "dropping a notification/response sent before the session started"
                    );
                    continue;
                }
                if let JsonRpcMessage::Request(request) = &*message {
                    if !in_flight.begin(&request.id) {
                        let id = serde_json::to_value(&request.id).unwrap_or(Value::Null);
                        let reply = error_response(
                            id.clone(),
                            INVALID_REQUEST,
                            format!("request id {id} is already in use by a request in flight; send each request with a new id"),
                        );
                        let bytes = serde_json::to_vec(&reply).expect("a JSON value serializes");
                        if let Err(e) = writer.write_line(&bytes).await {
                            tracing::error!(error = %e, "writing an error reply failed");
                        }
                        continue;
                    }
                }
                if forward.send(*message).await.is_err() {
                    break; // the service loop is gone
                }
            }
            Verdict::Reply(reply) => {
                tracing::debug!(%reply, "answering a malformed input line");
                let bytes = serde_json::to_vec(&reply).expect("a JSON value serializes");
                if let Err(e) = writer.write_line(&bytes).await {
                    tracing::error!(error = %e, "writing an error reply failed");
                }
            }
            Verdict::Ignore(why) => tracing::debug!(why, "ignoring an input line"),
        }
        if line.capacity() > 1024 * 1024 {
            line = Vec::new(); // do not hold a huge buffer between messages
        }
    }
    tracing::info!("MCP input closed");
    input_closed.cancel();
}

/// The SDK-facing half: messages from the reader task, replies to the shared writer.
pub(crate) struct LineTransport {
    incoming: mpsc::Receiver<ClientJsonRpcMessage>,
    writer: LineWriter,
    in_flight: InFlight,
}

impl LineTransport {
    pub(crate) fn new(
        incoming: mpsc::Receiver<ClientJsonRpcMessage>,
        writer: LineWriter,
        in_flight: InFlight,
    ) -> Self {
        LineTransport {
            incoming,
            writer,
            in_flight,
        }
    }
}

impl Transport<RoleServer> for LineTransport {
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: ServerJsonRpcMessage,
    ) -> impl std::future::Future<Output = Result<(), Self::Error>> + Send + 'static {
        let writer = self.writer.clone();
        match &item {
            JsonRpcMessage::Response(r) => self.in_flight.end(&r.id),
            JsonRpcMessage::Error(e) => {
                if let Some(id) = &e.id {
                    self.in_flight.end(id);
                }
            }
            _ => {}
        }
        async move {
            let bytes = serde_json::to_vec(&item).map_err(std::io::Error::other)?;
            writer.write_line(&bytes).await
        }
    }

    async fn receive(&mut self) -> Option<ClientJsonRpcMessage> {
        self.incoming.recv().await
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.incoming.close();
        self.writer.close().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply_of(line: &str) -> Value {
        match classify_line(line.as_bytes()) {
            Verdict::Reply(v) => v,
            other => panic!("expected a reply for {line:?}, got {other:?}"),
        }
    }

    #[test]
    fn garbage_is_a_parse_error_with_null_id() {
        let r = reply_of("{not json");
        assert_eq!(r["error"]["code"], PARSE_ERROR);
        assert_eq!(r["id"], Value::Null);
    }

    #[test]
    fn invalid_utf8_is_a_parse_error() {
        match classify_line(b"\xff\xfe{}") {
            Verdict::Reply(r) => assert_eq!(r["error"]["code"], PARSE_ERROR),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn batches_and_scalars_are_invalid_requests() {
        assert_eq!(reply_of("[1,2]")["error"]["code"], INVALID_REQUEST);
        assert_eq!(reply_of("42")["error"]["code"], INVALID_REQUEST);
    }

    #[test]
    fn bad_params_keep_the_id() {
        let r = reply_of(
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":"x"}}"#,
        );
        assert_eq!(r["id"], 7);
        assert_eq!(r["error"]["code"], INVALID_PARAMS);
        let message = r["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("tools/call") && message.contains("`arguments`"),
            "{message}"
        );
        let r = reply_of(r#"{"jsonrpc":"2.0","id":"q","method":"tools/call","params":[1]}"#);
        assert_eq!(
            (r["id"].clone(), r["error"]["code"].clone()),
            (json!("q"), json!(INVALID_PARAMS))
        );
    }

    #[test]
    fn wrong_jsonrpc_version_is_invalid_request_with_id() {
        let r = reply_of(r#"{"jsonrpc":"1.0","id":"a","method":"ping"}"#);
        assert_eq!(r["id"], "a");
        assert_eq!(r["error"]["code"], INVALID_REQUEST);
    }

    #[test]
    fn well_formed_messages_are_forwarded_and_blank_lines_ignored() {
        assert!(matches!(
            classify_line(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#),
            Verdict::Forward(_)
        ));
        assert!(matches!(
            classify_line(br#"{"jsonrpc":"2.0","id":1,"method":"no/such/method"}"#),
            Verdict::Forward(_)
        ));
        assert!(matches!(classify_line(b"  \r"), Verdict::Ignore(_)));
        assert!(matches!(
            classify_line(br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":5}"#),
            Verdict::Ignore(_)
        ));
    }

    #[test]
    fn gate_drops_notifications_until_initialize() {
        let mut gate = LifecycleGate::new(ProtocolVersion::KNOWN_VERSIONS.to_vec());
        let parse = |s: &str| serde_json::from_str::<ClientJsonRpcMessage>(s).unwrap();
        assert!(!gate.admit(&parse(
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#
        )));
        assert!(gate.admit(&parse(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)));
        assert!(!gate.admit(&parse(
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#
        )));
        assert!(gate.admit(&parse(
            r#"{"jsonrpc":"2.0","id":2,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#
        )));
        assert!(gate.admit(&parse(
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#
        )));
    }

    #[tokio::test]
    async fn bounded_reader_skips_oversized_lines_and_keeps_going() {
        let input = format!("{}\nshort\n{}", "x".repeat(100), "tail");
        let mut reader = BufReader::with_capacity(8, input.as_bytes());
        let mut buf = Vec::new();
        assert!(matches!(
            read_bounded_line(&mut reader, &mut buf, 10).await.unwrap(),
            LineRead::Oversized
        ));
        assert!(matches!(
            read_bounded_line(&mut reader, &mut buf, 10).await.unwrap(),
            LineRead::Line
        ));
        assert_eq!(buf, b"short");
        assert!(matches!(
            read_bounded_line(&mut reader, &mut buf, 10).await.unwrap(),
            LineRead::Line
        ));
        assert_eq!(buf, b"tail");
        assert!(matches!(
            read_bounded_line(&mut reader, &mut buf, 10).await.unwrap(),
            LineRead::Eof
        ));
    }
}
