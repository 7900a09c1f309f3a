//! Streamed responses: the chunks a handler flushed, in order and with their boundaries,
//! then how the invocation ended.
//!
//! A runtime streams by posting `/response` with `Lambda-Runtime-Function-Response-Mode:
//! streaming` and a chunked body (AWS "Implementing response streaming in a custom
//! runtime"). The Runtime API forwards each body frame to the invoker as it arrives; a
//! handler that answers in one piece (buffered) is delivered as a single chunk.
//!
//! Function URL style responses (`Content-Type:
//! application/vnd.awslambda.http-integration-response`) start with a JSON metadata prelude
//! followed by 8 NUL bytes. [`ResponseStream`] strips it and exposes it as [`HttpPrelude`];
//! the REST `InvokeWithResponseStream` passes it through as its own first `PayloadChunk`,
//! as Lambda does (only function URLs interpret it).

use std::collections::BTreeMap;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::invoke::{FunctionError, InvokeError, InvokeOutput, log_tail};

/// Largest streamed response: 200 MB (Lambda quotas, response streaming).
pub const MAX_STREAM_BYTES: usize = 200 * 1024 * 1024;

/// Frames buffered between the runtime and a slow reader before the runtime is held back.
pub(crate) const STREAM_BUFFER_FRAMES: usize = 64;

/// What the Runtime API hands a streaming invoker, in order.
#[derive(Debug)]
pub(crate) enum StreamFrame {
    /// The runtime began a streamed response to this invocation (always the first frame).
    Start(String),
    /// The HTTP-integration metadata (first after `Start` when present).
    Prelude(HttpPrelude),
    /// One chunk as the runtime flushed it.
    Data(Bytes),
    /// The runtime ended the body at this instant (before the invocation is answered).
    End(Instant),
    /// The invocation is over (sent by the invoker, after every frame above).
    Finished(Result<InvokeOutput, InvokeError>),
}

/// Where a streaming invocation's frames go.
pub(crate) type StreamSink = mpsc::Sender<StreamFrame>;

/// The metadata prelude of a Function URL style streamed response:
/// `{"statusCode":200,"headers":{...},"cookies":[]}` followed by 8 NUL bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpPrelude {
    /// `statusCode` (200 when absent).
    pub status_code: u16,
    /// `headers`, with non-string values rendered as JSON.
    pub headers: BTreeMap<String, String>,
    /// `cookies`.
    pub cookies: Vec<String>,
    raw: Bytes,
}

/// The delimiter between the prelude and the body.
pub(crate) const PRELUDE_DELIMITER: [u8; 8] = [0; 8];

impl HttpPrelude {
    /// Parses the JSON part of a prelude; `raw` is the prelude as sent, delimiter included.
    pub(crate) fn parse(json: &[u8], raw: Bytes) -> HttpPrelude {
        let value: serde_json::Value = serde_json::from_slice(json).unwrap_or_default();
        let text = |v: &serde_json::Value| {
            v.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string())
        };
        HttpPrelude {
            status_code: value["statusCode"]
                .as_u64()
                .and_then(|c| u16::try_from(c).ok())
                .unwrap_or(200),
            headers: value["headers"]
                .as_object()
                .map(|h| h.iter().map(|(k, v)| (k.clone(), text(v))).collect())
                .unwrap_or_default(),
            cookies: value["cookies"]
                .as_array()
                .map(|c| c.iter().map(text).collect())
                .unwrap_or_default(),
            raw,
        }
    }

    /// Splits a complete HTTP-integration payload (as a plain `Invoke` returns it) into its
    /// prelude and body; `None` when it does not start with a prelude.
    ///
    /// ```
    /// use lambda_testkit::stream::HttpPrelude;
    ///
    /// let payload = b"{\"statusCode\":201,\"headers\":{\"a\":\"b\"}}\0\0\0\0\0\0\0\0hello";
    /// let (prelude, body) = HttpPrelude::split(payload).unwrap();
    /// assert_eq!((prelude.status_code, &body[..]), (201, &b"hello"[..]));
    /// ```
    pub fn split(payload: &[u8]) -> Option<(HttpPrelude, Bytes)> {
        let at = find_delimiter(payload)?;
        let json = &payload[..at];
        serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(json).ok()?;
        let end = at + PRELUDE_DELIMITER.len();
        let prelude = HttpPrelude::parse(json, Bytes::copy_from_slice(&payload[..end]));
        Some((prelude, Bytes::copy_from_slice(&payload[end..])))
    }

    /// The prelude exactly as the runtime sent it: the JSON and the 8 NUL bytes.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }
}

/// Where the 8-NUL delimiter starts, if present.
pub(crate) fn find_delimiter(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(PRELUDE_DELIMITER.len())
        .position(|w| w == PRELUDE_DELIMITER)
}

/// How a streamed invocation ended, with its log.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StreamCompletion {
    /// The function error, when the handler failed (before or during the stream), the
    /// stream was cut by the timeout (`Sandbox.Timedout`) or the runtime exited.
    /// Mid-stream errors from `lambda_runtime` have type `Runtime.StreamError`.
    pub error: Option<FunctionError>,
    /// The invocation's request id.
    pub request_id: String,
    /// This invocation's log, framed by `START`, `END` and `REPORT`.
    pub log: String,
    /// Whether this invocation started a new execution environment.
    pub cold_start: bool,
    /// Time from delivery to the runtime until the end, as in `REPORT Duration`.
    pub duration: Duration,
    /// The execution environment that ran it.
    pub environment_id: String,
    /// When the handler finished: the runtime ended its response body (or answered, for a
    /// buffered handler).
    pub finished_at: Instant,
}

impl StreamCompletion {
    /// True when the invocation succeeded.
    pub fn is_ok(&self) -> bool {
        self.error.is_none()
    }

    /// The last 4 KB of the log, base64-encoded (`InvokeComplete.LogResult`).
    pub fn log_tail(&self) -> String {
        log_tail(&self.log)
    }
}

/// One chunk with the time the reader received it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StreamChunk {
    /// The bytes, exactly as the handler flushed them.
    pub bytes: Bytes,
    /// When [`ResponseStream`] handed it to the reader.
    pub received_at: Instant,
}

/// A whole streamed response, read to the end by [`ResponseStream::collect_all`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CollectedStream {
    /// The chunks in order, with their boundaries.
    pub chunks: Vec<StreamChunk>,
    /// The HTTP-integration prelude, when the runtime sent one.
    pub prelude: Option<HttpPrelude>,
    /// How the invocation ended.
    pub completion: StreamCompletion,
}

impl CollectedStream {
    /// All chunks concatenated.
    pub fn body(&self) -> Bytes {
        let mut body = Vec::with_capacity(self.chunks.iter().map(|c| c.bytes.len()).sum());
        for chunk in &self.chunks {
            body.extend_from_slice(&chunk.bytes);
        }
        Bytes::from(body)
    }

    /// Each chunk as text (lossy UTF-8), for assertions on chunk boundaries.
    pub fn chunk_texts(&self) -> Vec<String> {
        self.chunks
            .iter()
            .map(|c| String::from_utf8_lossy(&c.bytes).into_owned())
            .collect()
    }

    /// True when the first chunk reached the reader before the handler finished: the
    /// response was streamed, not buffered.
    pub fn first_chunk_before_finish(&self) -> bool {
        self.chunks
            .first()
            .is_some_and(|c| c.received_at < self.completion.finished_at)
    }

    /// How long before the handler finished the first chunk arrived (zero when it did not).
    pub fn first_chunk_lead(&self) -> Duration {
        self.chunks
            .first()
            .map(|c| {
                self.completion
                    .finished_at
                    .saturating_duration_since(c.received_at)
            })
            .unwrap_or_default()
    }
}

/// A streamed invocation in progress: a [`futures::Stream`] of the handler's chunks
/// ([`Bytes`], one item per chunk the handler flushed), then a [`StreamCompletion`].
///
/// Obtained from [`crate::FunctionHandle::invoke_stream`]. The invocation runs on its own:
/// dropping the stream only stops reading (the handler's further chunks are discarded and
/// the environment stays warm), as when a Lambda client disconnects.
/// The function timeout applies while streaming: a stream cut by it ends with
/// `Sandbox.Timedout`, after the chunks sent before the deadline.
///
/// ```no_run
/// use futures::StreamExt;
///
/// # async fn demo(f: lambda_testkit::FunctionHandle) -> anyhow::Result<()> {
/// let mut stream = f.invoke_stream(r#"{"chunks": 3}"#).await?;
/// while let Some(chunk) = stream.next().await {
///     println!("got {} bytes", chunk.len());
/// }
/// assert!(stream.completion().unwrap().is_ok());
/// # Ok(()) }
/// ```
pub struct ResponseStream {
    /// The runtime's frames, then (last) the invocation's result.
    frames: mpsc::Receiver<StreamFrame>,
    prelude: Option<HttpPrelude>,
    request_id: Option<String>,
    ended_at: Option<Instant>,
    /// An event received while the stream was starting.
    first: Option<StreamEvent>,
    /// A buffered handler's whole response, yielded as the one chunk.
    tail: Option<Bytes>,
    completion: Option<StreamCompletion>,
    done: bool,
}

impl std::fmt::Debug for ResponseStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseStream")
            .field("prelude", &self.prelude)
            .field("completion", &self.completion)
            .finish_non_exhaustive()
    }
}

impl ResponseStream {
    /// Waits until the response begins (its first frame) or the invocation ends; errors
    /// that prevent the invocation (unknown function, throttling, oversized request) are
    /// returned here. `frames` carries what the Runtime API forwards and, last, the
    /// invocation's result ([`StreamFrame::Finished`]).
    pub(crate) async fn start(
        mut frames: mpsc::Receiver<StreamFrame>,
    ) -> Result<ResponseStream, InvokeError> {
        let first = match frames.recv().await {
            Some(StreamFrame::Finished(Err(error))) => return Err(error),
            Some(frame) => frame,
            None => return Err(InvokeError::ShutDown),
        };
        let mut stream = ResponseStream {
            frames,
            prelude: None,
            request_id: None,
            ended_at: None,
            first: None,
            tail: None,
            completion: None,
            done: false,
        };
        stream.first = stream.take(first);
        Ok(stream)
    }

    /// Turns a frame into the event it carries, if any (the rest is recorded).
    fn take(&mut self, frame: StreamFrame) -> Option<StreamEvent> {
        match frame {
            StreamFrame::Data(bytes) => return Some(StreamEvent::Chunk(bytes)),
            StreamFrame::Prelude(prelude) => {
                self.prelude = Some(prelude);
                return Some(StreamEvent::Prelude);
            }
            StreamFrame::Start(request_id) => self.request_id = Some(request_id),
            StreamFrame::End(at) => self.ended_at = Some(at),
            StreamFrame::Finished(Ok(output)) => self.finish(output),
            // Errors before the response began are returned by `start`; one after it
            // (the emulator shut down) ends the stream with it.
            StreamFrame::Finished(Err(error)) => self.fail(error),
        }
        None
    }

    fn finish(&mut self, output: InvokeOutput) {
        let finished_at = self.ended_at.unwrap_or_else(Instant::now);
        // A buffered handler's whole response is one chunk; a streamed one has none left.
        if output.function_error.is_none() && !output.payload.is_empty() {
            self.tail = Some(output.payload.clone());
        }
        self.completion = Some(StreamCompletion {
            error: output.error(),
            request_id: output.request_id,
            log: output.log,
            cold_start: output.cold_start,
            duration: output.duration,
            environment_id: output.environment_id,
            finished_at,
        });
    }

    fn fail(&mut self, error: InvokeError) {
        self.completion = Some(StreamCompletion {
            error: Some(FunctionError::platform(
                "ServiceException",
                error.to_string(),
                "",
            )),
            request_id: self.request_id.clone().unwrap_or_default(),
            log: String::new(),
            cold_start: false,
            duration: Duration::ZERO,
            environment_id: String::new(),
            finished_at: Instant::now(),
        });
    }

    /// The invocation's request id, once known (from the start of a streamed response, or
    /// at the end for a buffered one).
    pub fn request_id(&self) -> Option<&str> {
        self.request_id
            .as_deref()
            .or(self.completion.as_ref().map(|c| c.request_id.as_str()))
    }

    /// The HTTP-integration prelude, once received (`None` for plain streams).
    pub fn prelude(&self) -> Option<&HttpPrelude> {
        self.prelude.as_ref()
    }

    /// How the invocation ended; `Some` once the stream has yielded its last chunk.
    pub fn completion(&self) -> Option<&StreamCompletion> {
        if self.done {
            self.completion.as_ref()
        } else {
            None
        }
    }

    /// Reads the stream to its end, stamping each chunk with its arrival time.
    pub async fn collect_all(mut self) -> CollectedStream {
        use futures::StreamExt;
        let mut chunks = Vec::new();
        while let Some(bytes) = self.next().await {
            chunks.push(StreamChunk {
                bytes,
                received_at: Instant::now(),
            });
        }
        let completion = self
            .completion
            .take()
            .expect("a finished stream has a completion");
        CollectedStream {
            chunks,
            prelude: self.prelude.take(),
            completion,
        }
    }

    /// Reads the stream to its end and returns the body, or the function error.
    pub async fn into_body(self) -> Result<Bytes, InvokeError> {
        let collected = self.collect_all().await;
        match collected.completion.error {
            Some(error) => Err(InvokeError::Function(Box::new(error))),
            None => Ok(collected.body()),
        }
    }

    /// The next event: the prelude when it arrives, each chunk, then (once) the buffered
    /// response of a buffered handler; `None` at the end, when the completion is set.
    pub(crate) fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<StreamEvent>> {
        if let Some(event) = self.first.take() {
            return Poll::Ready(Some(event));
        }
        loop {
            if self.completion.is_some() {
                // Over: anything the runtime sends later (one cut off by the timeout) is
                // not part of this response.
                self.frames.close();
                let tail = self.tail.take();
                self.done = tail.is_none();
                return Poll::Ready(tail.map(StreamEvent::Chunk));
            }
            match std::task::ready!(self.frames.poll_recv(cx)) {
                Some(frame) => {
                    if let Some(event) = self.take(frame) {
                        return Poll::Ready(Some(event));
                    }
                }
                // The invocation's task went away without a result (runtime shutdown).
                None => self.fail(InvokeError::ShutDown),
            }
        }
    }
}

/// What a stream yields internally: the prelude as it arrives, then chunks.
#[derive(Debug)]
pub(crate) enum StreamEvent {
    /// The HTTP-integration prelude arrived (see [`ResponseStream::prelude`]).
    Prelude,
    /// A chunk, as the handler flushed it.
    Chunk(Bytes),
}

impl futures::Stream for ResponseStream {
    type Item = Bytes;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let this = self.get_mut();
        loop {
            return match this.poll_event(cx) {
                Poll::Ready(Some(StreamEvent::Prelude)) => continue,
                Poll::Ready(Some(StreamEvent::Chunk(bytes))) => Poll::Ready(Some(bytes)),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prelude_is_split_from_the_body_with_defaults() {
        let (p, body) = HttpPrelude::split(b"{}\0\0\0\0\0\0\0\0x").unwrap();
        assert_eq!(
            (p.status_code, p.headers.len(), &body[..]),
            (200, 0, &b"x"[..])
        );
        assert_eq!(p.raw().as_ref(), b"{}\0\0\0\0\0\0\0\0");
        assert!(HttpPrelude::split(b"no prelude here").is_none());
        assert!(HttpPrelude::split(b"not json\0\0\0\0\0\0\0\0").is_none());
    }
}
