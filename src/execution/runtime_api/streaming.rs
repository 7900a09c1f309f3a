//! A streamed `/response`: `Lambda-Runtime-Function-Response-Mode: streaming` with a chunked
//! body, forwarded frame by frame as it arrives.
//!
//! How it ends (AWS "Implementing response streaming in a custom runtime"): success when
//! the body ends; an error when the runtime sends the trailers
//! `Lambda-Runtime-Function-Error-Type` / `Lambda-Runtime-Function-Error-Body` (base64).
//! `lambda_runtime` 1.x does not send real trailers: it writes the same two lines as one
//! last ordinary data chunk, so a final chunk that is exactly such a block is read as the
//! error too.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName};
use axum::response::Response;
use base64::Engine;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;

use super::super::lifecycle::Refusal;
use super::super::state::{EnvironmentState, Outcome};
use crate::invoke::stream::{
    HttpPrelude, MAX_STREAM_BYTES, PRELUDE_DELIMITER, StreamFrame, StreamSink, find_delimiter,
};
use crate::invoke::{FunctionError, MAX_PAYLOAD_BYTES};

// A `HeaderName` constant: looking a `&str` up parses it into a name on every call.
const RESPONSE_MODE: HeaderName = HeaderName::from_static("lambda-runtime-function-response-mode");
const HTTP_INTEGRATION: &[u8] = b"application/vnd.awslambda.http-integration-response";
const ERROR_TYPE: &str = "lambda-runtime-function-error-type";
const ERROR_BODY: &str = "lambda-runtime-function-error-body";
/// API Gateway's rule: the prelude must fit in the first 16 KB of the stream.
const MAX_PRELUDE_BYTES: usize = 16 * 1024;
/// Largest trailer block accepted in the data-chunk form.
const MAX_ERROR_BLOCK_BYTES: usize = 64 * 1024;

/// Whether a `/response` is streamed.
pub(super) fn is_streaming(headers: &HeaderMap) -> bool {
    headers
        .get(RESPONSE_MODE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"streaming"))
}

/// Reads a streamed response to its end, forwarding it, and answers the invocation.
pub(super) async fn receive(
    env: Arc<EnvironmentState>,
    id: String,
    headers: &HeaderMap,
    mut body: Body,
) -> Response {
    let sink = match env.take_stream(&id) {
        Ok(sink) => sink,
        Err(refusal) => return super::refused(refusal),
    };
    let http_integration = headers
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(HTTP_INTEGRATION));
    let mut reader = Reader::new(sink, http_integration);
    reader.send(StreamFrame::Start(id.clone())).await;
    // The headers are in: acknowledge them so the runtime sends its first chunk now.
    env.connections.acknowledge_now();
    loop {
        match body.frame().await {
            None => break,
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => reader.data(data).await,
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        reader.trailers(&trailers);
                    }
                }
            },
            // The runtime went away mid-stream: its exit (or the deadline) ends the
            // invocation with the right error; there is nobody left to answer.
            Some(Err(_)) => return super::refused(Refusal::Gone),
        }
        env.connections.acknowledge_now();
    }
    let outcome = reader.finish(&id).await;
    super::answer(&env, &id, outcome)
}

enum Prelude {
    /// Not an HTTP-integration response, or the prelude was already handled.
    Done,
    /// Collecting bytes until the 8-NUL delimiter.
    Pending(BytesMut),
}

/// Turns body frames into stream frames (or one collected payload).
struct Reader {
    /// `None`: a plain invoke; the body is collected as one payload, prelude included, as
    /// Lambda's `Invoke` returns it.
    sink: Option<StreamSink>,
    /// The invoker stopped reading; the rest is drained and dropped.
    detached: bool,
    collected: Vec<Bytes>,
    size: usize,
    limit: usize,
    too_large: bool,
    prelude: Prelude,
    /// A data chunk that may be the error block (held until we know it is the last).
    held: Option<BytesMut>,
    error_type: Option<String>,
    error_body: Option<Vec<u8>>,
}

impl Reader {
    fn new(sink: Option<StreamSink>, http_integration: bool) -> Reader {
        let streaming = sink.is_some();
        Reader {
            sink,
            detached: false,
            collected: Vec::new(),
            size: 0,
            limit: if streaming {
                MAX_STREAM_BYTES
            } else {
                MAX_PAYLOAD_BYTES
            },
            too_large: false,
            prelude: if streaming && http_integration {
                Prelude::Pending(BytesMut::new())
            } else {
                Prelude::Done
            },
            held: None,
            error_type: None,
            error_body: None,
        }
    }

    async fn data(&mut self, mut data: Bytes) {
        if data.is_empty() {
            return;
        }
        if let Prelude::Pending(buf) = &mut self.prelude {
            buf.extend_from_slice(&data);
            let Some(at) = find_delimiter(buf) else {
                if buf.len() > MAX_PRELUDE_BYTES {
                    // No prelude after all: everything so far is body.
                    let body = std::mem::take(buf).freeze();
                    self.prelude = Prelude::Done;
                    self.chunk(body).await;
                }
                return;
            };
            let mut buf = std::mem::take(buf);
            self.prelude = Prelude::Done;
            let end = at + PRELUDE_DELIMITER.len();
            let raw = buf.split_to(end).freeze();
            if serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&raw[..at])
                .is_ok()
            {
                self.send(StreamFrame::Prelude(HttpPrelude::parse(
                    &raw[..at],
                    raw.clone(),
                )))
                .await;
            } else {
                self.chunk(raw).await;
            }
            if buf.is_empty() {
                return;
            }
            data = buf.freeze();
        }
        if let Some(mut held) = self.held.take() {
            held.extend_from_slice(&data);
            if could_be_error_block(&held) {
                self.held = Some(held);
            } else {
                // It was ordinary data; what arrived with it follows it.
                let held = held.freeze();
                let split = held.len() - data.len();
                self.emit(held.slice(..split)).await;
                self.chunk(data).await;
            }
            return;
        }
        self.chunk(data).await;
    }

    /// One data chunk from the runtime, unless it may be the error block.
    async fn chunk(&mut self, data: Bytes) {
        if could_be_error_block(&data) {
            self.held = Some(BytesMut::from(&data[..]));
        } else {
            self.emit(data).await;
        }
    }

    async fn emit(&mut self, data: Bytes) {
        self.size += data.len();
        if self.size > self.limit {
            self.too_large = true;
        }
        if self.too_large {
            return;
        }
        if self.sink.is_some() {
            self.send(StreamFrame::Data(data)).await;
        } else {
            self.collected.push(data);
        }
    }

    async fn send(&mut self, frame: StreamFrame) {
        if self.detached {
            return;
        }
        if let Some(sink) = &self.sink
            && sink.send(frame).await.is_err()
        {
            self.detached = true;
        }
    }

    fn trailers(&mut self, trailers: &HeaderMap) {
        if let Some(t) = trailers.get(ERROR_TYPE).and_then(|v| v.to_str().ok()) {
            self.error_type = Some(t.to_string());
        }
        if let Some(b) = trailers.get(ERROR_BODY) {
            self.error_body = Some(b.as_bytes().to_vec());
        }
    }

    async fn finish(mut self, request_id: &str) -> Outcome {
        if let Prelude::Pending(buf) = std::mem::replace(&mut self.prelude, Prelude::Done)
            && !buf.is_empty()
        {
            self.chunk(buf.freeze()).await;
        }
        if let Some(held) = self.held.take() {
            match parse_error_block(&held) {
                Some((error_type, body)) if self.error_type.is_none() => {
                    self.error_type = Some(error_type);
                    self.error_body = body;
                }
                Some(_) => {}
                None => self.emit(held.freeze()).await,
            }
        }
        let outcome = if let Some(error_type) = &self.error_type {
            Outcome::Error(stream_error(
                error_type,
                self.error_body.as_deref(),
                request_id,
            ))
        } else if self.too_large {
            Outcome::Error(FunctionError::platform(
                "Function.ResponseSizeTooLarge",
                format!(
                    "Response payload size exceeded maximum allowed payload size ({} bytes).",
                    self.limit
                ),
                request_id,
            ))
        } else if self.sink.is_some() {
            Outcome::Response(Bytes::new())
        } else {
            Outcome::Response(concat(std::mem::take(&mut self.collected)))
        };
        self.send(StreamFrame::End(Instant::now())).await;
        outcome
    }
}

fn concat(chunks: Vec<Bytes>) -> Bytes {
    match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.into_iter().next().expect("one chunk"),
        _ => {
            let mut all = BytesMut::with_capacity(chunks.iter().map(Bytes::len).sum());
            for chunk in chunks {
                all.extend_from_slice(&chunk);
            }
            all.freeze()
        }
    }
}

const ERROR_NAMES: [&str; 2] = [ERROR_TYPE, ERROR_BODY];

/// Whether `data` is (the start of) `Lambda-Runtime-Function-Error-Type: …\r\n` followed by
/// more lines of the two error fields, and nothing else.
fn could_be_error_block(data: &[u8]) -> bool {
    if data.len() > MAX_ERROR_BLOCK_BYTES {
        return false;
    }
    let first = ERROR_TYPE.len().min(data.len());
    if !data[..first].eq_ignore_ascii_case(&ERROR_TYPE.as_bytes()[..first]) {
        return false;
    }
    let mut lines = data.split(|b| *b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let last = lines.peek().is_none();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            if last {
                return true;
            }
            continue;
        }
        let named = ERROR_NAMES.iter().any(|name| {
            let name = name.as_bytes();
            if line.len() > name.len() {
                line[..name.len()].eq_ignore_ascii_case(name) && line[name.len()] == b':'
            } else {
                // The last line may still be arriving.
                last && line.eq_ignore_ascii_case(&name[..line.len()])
            }
        });
        if !named {
            return false;
        }
    }
    true
}

/// The error type and (base64) body from a complete error block.
fn parse_error_block(data: &[u8]) -> Option<(String, Option<Vec<u8>>)> {
    if !could_be_error_block(data) {
        return None;
    }
    let mut error_type = None;
    let mut body = None;
    for line in data.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let value = line[colon + 1..].trim_ascii();
        let name = &line[..colon];
        if name.eq_ignore_ascii_case(ERROR_TYPE.as_bytes()) {
            error_type = Some(String::from_utf8_lossy(value).into_owned());
        } else if name.eq_ignore_ascii_case(ERROR_BODY.as_bytes()) {
            body = Some(value.to_vec());
        }
    }
    error_type.filter(|t| !t.is_empty()).map(|t| (t, body))
}

/// Decodes the error a runtime reports at the end of a stream: the type, and the body as
/// base64 of either a JSON error document or plain text.
fn stream_error(error_type: &str, body_base64: Option<&[u8]>, request_id: &str) -> FunctionError {
    let decoded = body_base64.and_then(|b| {
        let text = std::str::from_utf8(b).ok()?.trim();
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .ok()
            .or_else(|| Some(text.as_bytes().to_vec()))
    });
    FunctionError::from_runtime(
        error_type,
        Bytes::from(decoded.unwrap_or_default()),
        request_id,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_error_body_may_be_base64_text_or_a_document() {
        let text = base64::engine::general_purpose::STANDARD.encode("boom");
        let e = stream_error("Runtime.StreamError", Some(text.as_bytes()), "r");
        assert_eq!(
            (e.error_type.as_str(), e.error_message.as_str()),
            ("Runtime.StreamError", "boom")
        );
        let doc = base64::engine::general_purpose::STANDARD
            .encode(r#"{"errorType":"TypeError","errorMessage":"bad"}"#);
        let e = stream_error("Unhandled", Some(doc.as_bytes()), "r");
        assert_eq!(
            (e.error_type.as_str(), e.error_message.as_str()),
            ("TypeError", "bad")
        );
        let e = stream_error("Runtime.StreamError", None, "r");
        assert_eq!(e.error_type, "Runtime.StreamError");
    }

    const BLOCK: &[u8] =
        b"Lambda-Runtime-Function-Error-Type: Runtime.StreamError\r\nLambda-Runtime-Function-Error-Body: Ym9vbQ==\r\n";

    #[test]
    fn the_rust_runtime_error_chunk_is_an_error_block() {
        assert!(could_be_error_block(BLOCK));
        assert!(could_be_error_block(&BLOCK[..20]), "a block still arriving");
        let (t, body) = parse_error_block(BLOCK).unwrap();
        assert_eq!(
            (t.as_str(), body.as_deref()),
            ("Runtime.StreamError", Some(&b"Ym9vbQ=="[..]))
        );
    }

    #[test]
    fn ordinary_chunks_are_not_error_blocks() {
        assert!(!could_be_error_block(b"chunk-0\n"));
        assert!(!could_be_error_block(
            b"Lambda-Runtime-Function-Error-Type: X\r\nand then some text\r\n"
        ));
        assert!(parse_error_block(b"Lambda-Runtime").is_none());
    }

    fn channel() -> (Option<StreamSink>, tokio::sync::mpsc::Receiver<StreamFrame>) {
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        (Some(tx), rx)
    }

    fn drain(rx: &mut tokio::sync::mpsc::Receiver<StreamFrame>) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(frame) = rx.try_recv() {
            out.push(match frame {
                StreamFrame::Prelude(p) => format!("prelude {}", p.status_code),
                StreamFrame::Data(d) => String::from_utf8_lossy(&d).into_owned(),
                StreamFrame::End(_) => "end".to_string(),
                StreamFrame::Start(id) => format!("start {id}"),
                StreamFrame::Finished(_) => "finished".to_string(),
            });
        }
        out
    }

    #[tokio::test]
    async fn prelude_split_across_frames_is_stripped_and_chunks_keep_their_boundaries() {
        let (sink, mut rx) = channel();
        let mut r = Reader::new(sink, true);
        r.data(Bytes::from_static(b"{\"statusCode\":201}\0\0\0"))
            .await;
        r.data(Bytes::from_static(b"\0\0\0\0\0first")).await;
        r.data(Bytes::from_static(b"second")).await;
        let outcome = r.finish("r").await;
        assert!(matches!(outcome, Outcome::Response(ref b) if b.is_empty()));
        assert_eq!(drain(&mut rx), ["prelude 201", "first", "second", "end"]);
    }

    #[tokio::test]
    async fn final_error_chunk_becomes_the_outcome() {
        let (sink, mut rx) = channel();
        let mut r = Reader::new(sink, false);
        r.data(Bytes::from_static(b"a")).await;
        r.data(Bytes::from_static(BLOCK)).await;
        let Outcome::Error(e) = r.finish("r").await else {
            panic!("error expected")
        };
        assert_eq!(
            (e.error_type.as_str(), e.error_message.as_str()),
            ("Runtime.StreamError", "boom")
        );
        assert_eq!(drain(&mut rx), ["a", "end"]);
    }

    #[tokio::test]
    async fn a_chunk_that_only_looked_like_an_error_is_data() {
        let (sink, mut rx) = channel();
        let mut r = Reader::new(sink, false);
        r.data(Bytes::from_static(
            b"Lambda-Runtime-Function-Error-Type: X\r\n",
        ))
        .await;
        r.data(Bytes::from_static(b"more")).await;
        assert!(matches!(r.finish("r").await, Outcome::Response(_)));
        assert_eq!(
            drain(&mut rx),
            ["Lambda-Runtime-Function-Error-Type: X\r\n", "more", "end"]
        );
    }

    #[tokio::test]
    async fn plain_invoke_collects_everything_prelude_included() {
        let mut r = Reader::new(None, true);
        r.data(Bytes::from_static(b"{}\0\0\0\0\0\0\0\0")).await;
        r.data(Bytes::from_static(b"x")).await;
        let Outcome::Response(body) = r.finish("r").await else {
            panic!()
        };
        assert_eq!(&body[..], b"{}\0\0\0\0\0\0\0\0x");
    }

    #[tokio::test]
    async fn real_trailers_carry_the_error() {
        let mut r = Reader::new(None, false);
        let mut trailers = HeaderMap::new();
        trailers.insert(ERROR_TYPE, "Custom".parse().unwrap());
        r.trailers(&trailers);
        let Outcome::Error(e) = r.finish("r").await else {
            panic!()
        };
        assert_eq!(e.error_type, "Custom");
    }
}
