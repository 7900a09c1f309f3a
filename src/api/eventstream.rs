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
}
