//! `application/vnd.amazon.eventstream` frames for `InvokeWithResponseStream`, encoded by
//! `aws-smithy-eventstream` (the framing the AWS SDKs decode with).
//!
//! Each chunk is a `PayloadChunk` event whose payload is the raw bytes; aws-sdk-rust
//! rejects a `PayloadChunk` without `:content-type: application/octet-stream`. The stream
//! ends with one `InvokeComplete` event whose payload is JSON: `{}` on success, or
//! `{"ErrorCode", "ErrorDetails", "LogResult"}`.

use std::pin::Pin;
use std::task::{Context, Poll};

use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use bytes::{Bytes, BytesMut};

use crate::invoke::stream::{ResponseStream, StreamCompletion, StreamEvent};

fn event(buf: &mut BytesMut, event_type: &'static str, content_type: &'static str, payload: Bytes) {
    let message = Message::new_from_parts(
        vec![
            Header::new(":event-type", HeaderValue::String(event_type.into())),
            Header::new(":content-type", HeaderValue::String(content_type.into())),
            Header::new(":message-type", HeaderValue::String("event".into())),
        ],
        payload,
    );
    // Only fails for headers or payloads over the format's limits (16 MB payload per
    // frame); chunks come from an HTTP body frame and stay far below.
    aws_smithy_eventstream::frame::write_message_to(&message, buf)
        .expect("event stream frame within limits");
}

/// A `PayloadChunk` event carrying `payload`.
pub(crate) fn payload_chunk(buf: &mut BytesMut, payload: Bytes) {
    event(buf, "PayloadChunk", "application/octet-stream", payload);
}

/// The final `InvokeComplete` event; `log_result` is the base64 log tail when asked for.
pub(crate) fn invoke_complete(buf: &mut BytesMut, completion: &StreamCompletion, tail: bool) {
    let mut body = serde_json::Map::new();
    if let Some(error) = &completion.error {
        body.insert("ErrorCode".into(), error.error_type.clone().into());
        body.insert("ErrorDetails".into(), error.error_message.clone().into());
    }
    if tail {
        body.insert("LogResult".into(), completion.log_tail().into());
    }
    event(
        buf,
        "InvokeComplete",
        "application/json",
        Bytes::from(serde_json::Value::Object(body).to_string()),
    );
}

/// A streamed invocation as an event-stream HTTP body: each chunk is written as a frame
/// the moment it arrives. The HTTP-integration prelude is passed through as its own first
/// `PayloadChunk`, as Lambda does (only function URLs interpret it).
pub(crate) struct EventStreamBody {
    stream: ResponseStream,
    tail: bool,
    done: bool,
}

impl EventStreamBody {
    pub(crate) fn new(stream: ResponseStream, tail: bool) -> EventStreamBody {
        EventStreamBody {
            stream,
            tail,
            done: false,
        }
    }
}

impl futures::Stream for EventStreamBody {
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let mut buf = BytesMut::new();
        match this.stream.poll_event(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Some(StreamEvent::Prelude)) => {
                let raw = this
                    .stream
                    .prelude()
                    .map(|p| p.raw().clone())
                    .unwrap_or_default();
                payload_chunk(&mut buf, raw);
            }
            Poll::Ready(Some(StreamEvent::Chunk(bytes))) => payload_chunk(&mut buf, bytes),
            Poll::Ready(None) => {
                this.done = true;
                let completion = this
                    .stream
                    .completion()
                    .expect("an ended stream has a completion");
                invoke_complete(&mut buf, completion, this.tail);
            }
        }
        Poll::Ready(Some(Ok(buf.freeze())))
    }
}

/// One streamed invocation as a `ResponseStream` yields it: the HTTP-integration prelude
/// (its raw bytes), the chunks, the buffered payload of a handler that did not stream,
/// and how it ended.
#[cfg(any(test, feature = "fuzzing"))]
#[derive(Debug, Clone, Default)]
pub struct StreamedInvocation {
    /// The prelude's raw bytes (JSON and the 8-NUL delimiter), when there is one.
    pub prelude: Option<bytes::Bytes>,
    /// The chunks, in order.
    pub chunks: Vec<bytes::Bytes>,
    /// A buffered handler's whole response (ignored when `error` is set).
    pub payload: bytes::Bytes,
    /// The function error it ended with: type and message.
    pub error: Option<(String, String)>,
    /// The invocation's log.
    pub log: String,
    /// Whether `LogType=Tail` was asked for (`InvokeComplete.LogResult`).
    pub tail: bool,
}

/// The `application/vnd.amazon.eventstream` body `InvokeWithResponseStream` writes for
/// `invocation`, one item per HTTP body frame.
#[cfg(any(test, feature = "fuzzing"))]
pub async fn event_stream(invocation: StreamedInvocation) -> Vec<bytes::Bytes> {
    use futures::StreamExt as _;

    use crate::invoke::stream::{HttpPrelude, ResponseStream, StreamFrame, find_delimiter};
    use crate::invoke::{FunctionError, InvokeOutput};

    let (tx, rx) = tokio::sync::mpsc::channel(invocation.chunks.len() + 4);
    let request_id = "fuzz-request".to_string();
    let _ = tx.try_send(StreamFrame::Start(request_id.clone()));
    if let Some(raw) = invocation.prelude {
        let json = find_delimiter(&raw).map_or(&raw[..], |at| &raw[..at]);
        let prelude = HttpPrelude::parse(json, raw.clone());
        let _ = tx.try_send(StreamFrame::Prelude(prelude));
    }
    for chunk in invocation.chunks {
        let _ = tx.try_send(StreamFrame::Data(chunk));
    }
    let _ = tx.try_send(StreamFrame::End(std::time::Instant::now()));
    let (payload, function_error) = match &invocation.error {
        Some((error_type, message)) => (
            FunctionError::platform(error_type, message.clone(), &request_id).body,
            Some("Unhandled".to_string()),
        ),
        None => (invocation.payload, None),
    };
    let _ = tx.try_send(StreamFrame::Finished(Ok(InvokeOutput {
        payload,
        function_error,
        request_id,
        executed_version: "$LATEST".to_string(),
        log: invocation.log,
        cold_start: false,
        duration: std::time::Duration::ZERO,
        environment_id: "fuzz-env-1".to_string(),
        durable_execution_arn: None,
    })));
    drop(tx);
    let Ok(stream) = ResponseStream::start(rx).await else {
        return Vec::new();
    };
    EventStreamBody::new(stream, invocation.tail)
        .map(|frame| match frame {
            Ok(bytes) => bytes,
            Err(never) => match never {},
        })
        .collect()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_chunk_matches_the_frame_botocore_decodes() {
        // The reference frame for "hello" (notes-lambda-invoke-api.md §4), headers in the
        // order :event-type, :content-type, :message-type.
        let expected = "0000006f0000005af5fe871f0b3a6576656e742d747970650700\
                        0c5061796c6f61644368756e6b0d3a636f6e74656e742d74797065070018\
                        6170706c69636174696f6e2f6f637465742d73747265616d0d3a6d657373\
                        6167652d747970650700056576656e7468656c6c6f29e71260";
        let mut buf = BytesMut::new();
        payload_chunk(&mut buf, Bytes::from_static(b"hello"));
        let hex: String = buf.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, expected);
    }

    #[test]
    fn frames_decode_back_with_their_headers() {
        let mut buf = BytesMut::new();
        payload_chunk(&mut buf, Bytes::from_static(b"abc"));
        let message = aws_smithy_eventstream::frame::read_message_from(buf.freeze()).unwrap();
        assert_eq!(message.payload().as_ref(), b"abc");
        let content_type = message
            .headers()
            .iter()
            .find(|h| h.name().as_str() == ":content-type")
            .unwrap();
        assert_eq!(
            content_type.value().as_string().unwrap().as_str(),
            "application/octet-stream"
        );
    }

    /// Every message of `body`, decoded by aws-smithy-eventstream's streaming decoder fed
    /// one byte at a time (the worst network split), as (event type, content type,
    /// payload); checks the other headers on the way.
    fn decode(body: &[Bytes]) -> Vec<(String, String, Bytes)> {
        use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
        let mut decoder = MessageFrameDecoder::new();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for byte in body.iter().flat_map(|frame| frame.iter()) {
            buf.extend_from_slice(&[*byte]);
            if let DecodedFrame::Complete(message) = decoder.decode_frame(&mut buf).unwrap() {
                let header = |name: &str| {
                    let found: Vec<_> = message
                        .headers()
                        .iter()
                        .filter(|h| h.name().as_str() == name)
                        .collect();
                    assert_eq!(found.len(), 1, "{name} once");
                    found[0].value().as_string().unwrap().as_str().to_string()
                };
                assert_eq!(message.headers().len(), 3);
                assert_eq!(header(":message-type"), "event");
                out.push((
                    header(":event-type"),
                    header(":content-type"),
                    message.payload().clone(),
                ));
            }
        }
        assert!(buf.is_empty(), "no bytes after the last message");
        out
    }

    fn chunk(payload: &[u8]) -> (String, String, Bytes) {
        let octets = "application/octet-stream".to_string();
        (
            "PayloadChunk".into(),
            octets,
            Bytes::copy_from_slice(payload),
        )
    }

    fn complete(json: serde_json::Value) -> (String, String, Bytes) {
        let json = Bytes::from(json.to_string());
        ("InvokeComplete".into(), "application/json".into(), json)
    }

    fn run(invocation: StreamedInvocation) -> Vec<(String, String, Bytes)> {
        let body = futures::executor::block_on(event_stream(invocation));
        decode(&body)
    }

    #[test]
    fn a_streamed_invocation_round_trips_through_the_smithy_decoder() {
        let chunks = vec![
            Bytes::from_static(b"first"),
            Bytes::new(),
            Bytes::from(vec![0u8; 70_000]),
            Bytes::from_static(b"\x00\xff:event-type"),
        ];
        let invocation = StreamedInvocation {
            chunks: chunks.clone(),
            ..Default::default()
        };
        let mut expected: Vec<_> = chunks.iter().map(|c| chunk(c)).collect();
        expected.push(complete(serde_json::json!({})));
        assert_eq!(run(invocation), expected);
    }

    #[test]
    fn the_prelude_and_a_buffered_payload_are_chunks_of_their_own() {
        let prelude = Bytes::from_static(b"{\"statusCode\":201}\0\0\0\0\0\0\0\0");
        let invocation = StreamedInvocation {
            prelude: Some(prelude.clone()),
            payload: Bytes::from_static(b"buffered"),
            ..Default::default()
        };
        assert_eq!(
            run(invocation),
            [
                chunk(&prelude),
                chunk(b"buffered"),
                complete(serde_json::json!({}))
            ]
        );
    }

    #[test]
    fn an_error_and_the_log_tail_end_the_stream_in_invoke_complete() {
        let log = format!("START\n{}\nEND \u{e9}\n", "x".repeat(5000));
        let invocation = StreamedInvocation {
            chunks: vec![Bytes::from_static(b"partial")],
            payload: Bytes::from_static(b"not sent: the invocation failed"),
            error: Some(("Runtime.StreamError".into(), "boom \"quoted\"\n".into())),
            log: log.clone(),
            tail: true,
            ..Default::default()
        };
        let tail = crate::invoke::log_tail(&log);
        assert_eq!(
            run(invocation),
            [
                chunk(b"partial"),
                complete(serde_json::json!({
                    "ErrorCode": "Runtime.StreamError",
                    "ErrorDetails": "boom \"quoted\"\n",
                    "LogResult": tail,
                }))
            ]
        );
    }
}
