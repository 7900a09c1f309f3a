//! The `InvokeWithResponseStream` body (`application/vnd.amazon.eventstream`): a streamed
//! invocation's prelude, chunks, buffered payload and ending, written by the REST API's
//! encoder (`lambda_testkit::fuzzing::event_stream`, the real `EventStreamBody` over a
//! real `ResponseStream`), then decoded by aws-smithy-eventstream's streaming decoder —
//! the 0.60 line aws-sdk-lambda decodes with, and the 0.61 line the crate encodes with —
//! fed in arbitrary network segments.
//!
//! Invariant: the decoders see exactly one message per body frame, in order:
//! `PayloadChunk` (`:content-type: application/octet-stream`) for the prelude, each chunk
//! and a buffered payload, byte for byte, then one `InvokeComplete`
//! (`application/json`) whose JSON carries `ErrorCode` / `ErrorDetails` exactly as the
//! error had them and `LogResult` when asked; every message has `:message-type: event`
//! and no other headers; no byte is left over.

#![no_main]

use arbitrary::Arbitrary;
use bytes::{Buf as _, Bytes, BytesMut};
use lambda_testkit::fuzzing::{StreamedInvocation, event_stream};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    prelude: Option<Vec<u8>>,
    chunks: Vec<Vec<u8>>,
    payload: Vec<u8>,
    error: Option<(String, String)>,
    log: String,
    tail: bool,
    /// Where the body is cut into the segments the decoder is fed.
    segments: Vec<u16>,
}

type Decoded = (String, String, Bytes);

macro_rules! decode_with {
    ($crate_:ident, $body:expr, $segments:expr) => {{
        use $crate_::frame::{DecodedFrame, MessageFrameDecoder};
        let body: &[u8] = $body;
        let mut decoder = MessageFrameDecoder::new();
        let mut buf = BytesMut::new();
        let mut out: Vec<Decoded> = Vec::new();
        let mut at = 0;
        let mut cuts = $segments.iter().map(|s: &u16| usize::from(*s) + 1);
        while at < body.len() {
            let take = cuts.next().unwrap_or(body.len()).min(body.len() - at);
            buf.extend_from_slice(&body[at..at + take]);
            at += take;
            // Every message the buffer now holds.
            while let DecodedFrame::Complete(message) = decoder
                .decode_frame(&mut buf)
                .unwrap_or_else(|e| panic!("our frame does not decode: {e}"))
            {
                out.push(describe(&message));
            }
        }
        // A partial message left over shows as a missing one (counted by the caller).
        assert!(
            buf.is_empty(),
            "{} bytes after the last message",
            buf.remaining()
        );
        out
    }};
}

fn describe(message: &aws_smithy_types::event_stream::Message) -> Decoded {
    let header = |name: &str| {
        let found: Vec<_> = message
            .headers()
            .iter()
            .filter(|h| h.name().as_str() == name)
            .collect();
        assert_eq!(found.len(), 1, "{name} exactly once in {message:?}");
        found[0]
            .value()
            .as_string()
            .unwrap_or_else(|_| panic!("{name} is a string"))
            .as_str()
            .to_string()
    };
    assert_eq!(message.headers().len(), 3, "{message:?}");
    assert_eq!(header(":message-type"), "event");
    (
        header(":event-type"),
        header(":content-type"),
        message.payload().clone(),
    )
}

fn chunk(bytes: &[u8]) -> Decoded {
    (
        "PayloadChunk".into(),
        "application/octet-stream".into(),
        Bytes::copy_from_slice(bytes),
    )
}

fuzz_target!(|input: Input| {
    let invocation = StreamedInvocation {
        prelude: input.prelude.clone().map(Bytes::from),
        chunks: input.chunks.iter().cloned().map(Bytes::from).collect(),
        payload: Bytes::from(input.payload.clone()),
        error: input.error.clone(),
        log: input.log.clone(),
        tail: input.tail,
    };
    let frames = futures::executor::block_on(event_stream(invocation));

    let mut expected: Vec<Decoded> = Vec::new();
    if let Some(prelude) = &input.prelude {
        expected.push(chunk(prelude));
    }
    expected.extend(input.chunks.iter().map(|c| chunk(c)));
    if input.error.is_none() && !input.payload.is_empty() {
        expected.push(chunk(&input.payload));
    }
    assert_eq!(frames.len(), expected.len() + 1, "one frame per message");

    let body: Vec<u8> = frames.iter().flat_map(|f| f.iter().copied()).collect();
    for decoded in [
        decode_with!(aws_smithy_eventstream, &body, input.segments),
        decode_with!(sdk_eventstream, &body, input.segments),
    ] {
        assert_eq!(decoded.len(), expected.len() + 1, "{decoded:?}");
        assert_eq!(decoded[..expected.len()], expected[..]);
        let (event_type, content_type, payload) = decoded.last().unwrap();
        assert_eq!(
            (event_type.as_str(), content_type.as_str()),
            ("InvokeComplete", "application/json")
        );
        let complete: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(payload).expect("InvokeComplete is a JSON object");
        let mut want = serde_json::Map::new();
        if let Some((error_type, message)) = &input.error {
            want.insert("ErrorCode".into(), error_type.clone().into());
            want.insert("ErrorDetails".into(), message.clone().into());
        }
        if input.tail {
            use base64::Engine as _;
            let log = input.log.as_bytes();
            let tail = &log[log.len().saturating_sub(4096)..];
            want.insert(
                "LogResult".into(),
                base64::engine::general_purpose::STANDARD
                    .encode(tail)
                    .into(),
            );
        }
        assert_eq!(complete, want);
    }
});
