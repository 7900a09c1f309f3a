//! The Lambda Runtime API (2018-06-01) and the Extensions / Telemetry / Logs APIs of one
//! execution environment, driven through its real HTTP server over loopback TCP: the
//! fuzz target plays the runtime (and, when it registers one, an extension) against an
//! emulator whose backend starts no runtime (`EmulatorBuilder::without_runtimes`, feature
//! `fuzzing`). Everything else is the real emulator: pool, lifecycle, router, hyper.
//!
//! Each input is one invocation (buffered or streaming invoke): optional init-phase calls
//! on a fresh environment (`/init/error`, extension register, subscriptions, extension
//! errors), the runtime's `/next`, then a sequence of calls — buffered and streamed
//! `/response` (chunked, `Lambda-Runtime-Function-Response-Mode: streaming`, error
//! trailers or the Rust runtime's error chunk, HTTP-integration preludes), `/error`,
//! `/init/error`, `/next`, the extension routes, truncated bodies, raw bytes after a
//! request line, or raw bytes alone — for the invocation's id, a stale one or any text.
//! Then a legitimate `/response` (the probe) unless the invocation was answered.
//!
//! Invariants: every well-formed request gets a complete HTTP answer with a status from
//! the route's documented set and, for an error, a JSON body with `errorType`; an
//! invocation is accepted (202) at most once, and exactly once unless init failed; the
//! invoke returns (no hang, never `Sandbox.Timedout`: the harness always answers) with
//! what was accepted; the next input's invocation still completes (the emulator stays
//! usable).

#![no_main]

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Mutex;
use std::time::Duration;

use arbitrary::Arbitrary;
use lambda_testkit::fuzzing::RuntimeApis;
use lambda_testkit::{Emulator, Function, FunctionHandle, InvokeOutput, Runtime};
use libfuzzer_sys::fuzz_target;

const NEXT: &str = "/2018-06-01/runtime/invocation/next";
const LIMIT: Duration = Duration::from_secs(15);

#[derive(Arbitrary, Debug)]
struct Input {
    streaming_invoke: bool,
    payload: Vec<u8>,
    /// Before the runtime's first `/next` on a fresh environment.
    init: Vec<Op>,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
enum Id {
    Current,
    Stale,
    Text(String),
}

#[derive(Arbitrary, Debug)]
enum Framing {
    Length,
    Chunked(Vec<u16>),
}

#[derive(Arbitrary, Debug)]
enum StreamEnd {
    Ok,
    /// Real trailers: error type, and the body (base64 of it, or as is).
    Trailers(Option<Text>, Option<(bool, Vec<u8>)>),
    /// `lambda_runtime`'s form: the trailer lines as one last data chunk.
    ErrorChunk(Text, Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Op {
    Response {
        id: Id,
        body: Vec<u8>,
        framing: Framing,
        content_type: Option<Text>,
        expect_continue: bool,
    },
    Stream {
        id: Id,
        mode: Text,
        http_integration: bool,
        prelude: Option<Vec<u8>>,
        chunks: Vec<Vec<u8>>,
        end: StreamEnd,
    },
    Error {
        id: Id,
        error_type: Option<Text>,
        body: ErrorBody,
    },
    InitError {
        error_type: Option<Text>,
        body: ErrorBody,
    },
    Next,
    Register {
        name: Option<Text>,
        events: Vec<Text>,
        accept: Option<Text>,
        raw: Option<Vec<u8>>,
    },
    ExtensionNext {
        id: ExtId,
    },
    ExtensionError {
        init: bool,
        id: ExtId,
        error_type: Option<Text>,
        body: ErrorBody,
    },
    Subscribe {
        telemetry: bool,
        id: ExtId,
        body: Subscription,
    },
    /// A body shorter than its `content-length`, then the write side closed.
    Truncated {
        route: u8,
        id: Id,
        body: Vec<u8>,
        missing: u16,
    },
    /// A known request line, then arbitrary bytes (headers, framing, body).
    RawAfterLine {
        route: u8,
        id: Id,
        rest: Vec<u8>,
    },
    /// Arbitrary bytes as the whole request.
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum ExtId {
    Registered,
    Missing,
    Text(Text),
}

#[derive(Arbitrary, Debug)]
enum ErrorBody {
    Empty,
    Raw(Vec<u8>),
    Document {
        error_type: Option<String>,
        message: Option<String>,
        stack: Vec<String>,
    },
}

#[derive(Arbitrary, Debug)]
enum Subscription {
    Raw(Vec<u8>),
    Valid {
        types: Vec<u8>,
        port: u16,
        buffering: Option<(u32, u32, u32)>,
        schema: bool,
    },
}

/// Header-safe text: known words or arbitrary printable bytes.
#[derive(Arbitrary, Debug)]
enum Text {
    Known(u8),
    Printable(Vec<u8>),
}

const WORDS: &[&str] = &[
    "streaming",
    "STREAMING",
    "buffered",
    "Unhandled",
    "Runtime.StreamError",
    "Runtime.ExitError",
    "Function.ResponseSizeTooLarge",
    "application/json",
    "application/vnd.awslambda.http-integration-response",
    "INVOKE",
    "SHUTDOWN",
    "BOGUS",
    "accountId",
    "ext",
    "",
    "platform",
    "function",
    "extension",
];

impl Text {
    fn render(&self) -> String {
        match self {
            Text::Known(i) => WORDS[usize::from(*i) % WORDS.len()].to_string(),
            // Visible ASCII, space and tab: always a valid header value.
            Text::Printable(bytes) => bytes
                .iter()
                .map(|b| match b % 96 {
                    95 => '\t',
                    c => char::from(c + 32),
                })
                .collect(),
        }
    }
}

/// Percent-encodes what may not appear raw in a path segment.
fn encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

struct Answer {
    status: u16,
    headers: String,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Parses one HTTP/1.1 response (after any `100 Continue`); `None`: no complete answer.
fn parse(bytes: &[u8]) -> Option<Answer> {
    let mut rest = bytes;
    loop {
        let end = rest.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = std::str::from_utf8(&rest[..end]).ok()?;
        let status: u16 = head.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()?;
        let body = &rest[end + 4..];
        if (100..200).contains(&status) {
            rest = body;
            continue;
        }
        let answer = Answer {
            status,
            headers: head.to_string(),
            body: Vec::new(),
        };
        let body = if answer
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            dechunk(body)?
        } else {
            let length: usize = answer.header("content-length")?.parse().ok()?;
            body.get(..length)?.to_vec()
        };
        return Some(Answer { body, ..answer });
    }
}

fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = body.windows(2).position(|w| w == b"\r\n")?;
        let size =
            usize::from_str_radix(std::str::from_utf8(&body[..eol]).ok()?.trim(), 16).ok()?;
        body = &body[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(body.get(..size)?);
        body = body.get(size + 2..)?;
    }
}

/// Sends `request` on a fresh connection and reads until the server closes it.
fn exchange(addr: SocketAddr, request: &[u8], half_close: bool) -> Option<Vec<u8>> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    let _ = stream.set_nodelay(true);
    stream.write_all(request).ok()?;
    if half_close {
        let _ = stream.shutdown(Shutdown::Write);
    }
    let mut response = Vec::new();
    match stream.read_to_end(&mut response) {
        Ok(_) => Some(response),
        // Reset by the server after its answer (it did not read all we sent).
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Some(response),
        Err(e) => panic!(
            "no answer within {LIMIT:?} ({e}) to {:?}",
            String::from_utf8_lossy(request)
        ),
    }
}

fn request(
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
    chunked: Option<&[u16]>,
) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: fuzz\r\nconnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let mut out = match chunked {
        None => {
            head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
            let mut out = head.into_bytes();
            out.extend_from_slice(body);
            out
        }
        Some(cuts) => {
            head.push_str("transfer-encoding: chunked\r\n\r\n");
            let mut out = head.into_bytes();
            let mut rest = body;
            let mut cuts = cuts.iter();
            while !rest.is_empty() {
                let n = cuts
                    .next()
                    .map_or(rest.len(), |c| usize::from(*c) + 1)
                    .min(rest.len());
                out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
                out.extend_from_slice(&rest[..n]);
                out.extend_from_slice(b"\r\n");
                rest = &rest[n..];
            }
            out.extend_from_slice(b"0\r\n\r\n");
            out
        }
    };
    out.shrink_to_fit();
    out
}

fn error_body(body: &ErrorBody) -> Vec<u8> {
    match body {
        ErrorBody::Empty => Vec::new(),
        ErrorBody::Raw(bytes) => bytes.clone(),
        ErrorBody::Document {
            error_type,
            message,
            stack,
        } => {
            let mut doc = serde_json::Map::new();
            if let Some(t) = error_type {
                doc.insert("errorType".into(), t.clone().into());
            }
            if let Some(m) = message {
                doc.insert("errorMessage".into(), m.clone().into());
            }
            doc.insert("stackTrace".into(), stack.clone().into());
            serde_json::to_vec(&doc).unwrap()
        }
    }
}

/// What the harness knows between inputs.
struct Harness {
    runtime: tokio::runtime::Runtime,
    _emulator: Emulator,
    function: FunctionHandle,
    apis: RuntimeApis,
    /// The live environment's Runtime API, while it is known to be live.
    current: Option<SocketAddr>,
    /// The extension registered on the live environment (its calls are played).
    extension: Option<String>,
    last_id: String,
    probes: u64,
}

enum Invoked {
    Buffered(Result<InvokeOutput, lambda_testkit::InvokeError>),
    Streamed(Result<lambda_testkit::stream::CollectedStream, lambda_testkit::InvokeError>),
}

impl Invoked {
    /// The function error's type, if it failed.
    fn error_type(&self) -> Option<String> {
        match self {
            Invoked::Buffered(Ok(out)) => out.error().map(|e| e.error_type),
            Invoked::Streamed(Ok(c)) => c.completion.error.as_ref().map(|e| e.error_type.clone()),
            Invoked::Buffered(Err(e)) | Invoked::Streamed(Err(e)) => {
                panic!("the invoke failed: {e}")
            }
        }
    }

    /// The response bytes of a successful invocation.
    fn body(&self) -> Vec<u8> {
        match self {
            Invoked::Buffered(Ok(out)) => out.payload.to_vec(),
            Invoked::Streamed(Ok(c)) => c.body().to_vec(),
            _ => unreachable!(),
        }
    }
}

/// Per input: what was sent and accepted.
struct Run<'a> {
    addr: SocketAddr,
    id: String,
    stale: &'a str,
    extension: Option<String>,
    /// Answers (`/response`, `/error`, a completed stream) accepted for the invocation.
    accepted: Vec<Expected>,
    init_failed: bool,
    /// A raw or truncated request may have ended the invocation unseen.
    tainted: bool,
    delivered: bool,
}

#[derive(Debug)]
enum Expected {
    /// Success with these bytes (`None`: bytes not predictable from the input).
    Body(Option<Vec<u8>>),
    Error,
    /// Success or error: not predictable from the input.
    Unknown,
}

fn statuses(route: &str) -> &'static [u16] {
    match route {
        "next" => &[200, 403, 500],
        "response" => &[202, 400, 403, 413, 500],
        "error" | "init-error" => &[202, 400, 403, 500],
        "register" => &[200, 400, 403, 500],
        "extension-next" => &[200, 403, 500],
        "extension-error" => &[202, 400, 403, 500],
        "subscribe" => &[200, 202, 400, 403, 500],
        _ => unreachable!(),
    }
}

impl Run<'_> {
    fn new(
        addr: SocketAddr,
        id: String,
        stale: &str,
        extension: Option<String>,
        delivered: bool,
    ) -> Run<'_> {
        Run {
            addr,
            id,
            stale,
            extension,
            accepted: Vec::new(),
            init_failed: false,
            tainted: false,
            delivered,
        }
    }

    fn id(&self, id: &Id) -> String {
        match id {
            Id::Current => self.id.clone(),
            Id::Stale => self.stale.to_string(),
            Id::Text(t) => t.clone(),
        }
    }

    fn ext_id(&self, id: &ExtId) -> Option<String> {
        match id {
            ExtId::Registered => Some(self.extension.clone().unwrap_or_default()),
            ExtId::Missing => None,
            ExtId::Text(t) => Some(t.render()),
        }
    }

    /// Sends a well-formed request; checks the answer's status and error body.
    fn send(&self, route: &str, bytes: &[u8]) -> Answer {
        let response = exchange(self.addr, bytes, false).expect("the Runtime API is listening");
        let answer = parse(&response).unwrap_or_else(|| {
            panic!(
                "no complete HTTP answer to {:?}: {:?}",
                String::from_utf8_lossy(bytes),
                String::from_utf8_lossy(&response)
            )
        });
        assert!(
            statuses(route).contains(&answer.status),
            "{route}: status {} not documented\n{}\nrequest: {:?}",
            answer.status,
            answer.headers,
            String::from_utf8_lossy(bytes)
        );
        if answer.status >= 400 {
            let error: serde_json::Value =
                serde_json::from_slice(&answer.body).unwrap_or_else(|e| {
                    panic!(
                        "{route}: error body is not JSON ({e}): {:?}\nrequest: {:?}",
                        String::from_utf8_lossy(&answer.body),
                        String::from_utf8_lossy(bytes)
                    )
                });
            assert!(error["errorType"].is_string(), "{route}: {error}");
        }
        answer
    }

    fn answered(&mut self, id: &str, answer: &Answer, expected: Expected) {
        if answer.status == 202 && id == self.id {
            self.accepted.push(expected);
        }
        assert!(
            answer.status != 202 || id == self.id,
            "an answer for {id:?} accepted while {} is in flight",
            self.id
        );
    }

    fn op(&mut self, op: &Op) {
        let path =
            |id: &str, what: &str| format!("/2018-06-01/runtime/invocation/{}/{what}", encode(id));
        match op {
            Op::Response {
                id,
                body,
                framing,
                content_type,
                expect_continue,
            } => {
                let id = self.id(id);
                let mut headers = Vec::new();
                if let Some(t) = content_type {
                    headers.push(("content-type".to_string(), t.render()));
                }
                if *expect_continue {
                    headers.push(("expect".to_string(), "100-continue".to_string()));
                }
                let cuts = match framing {
                    Framing::Length => None,
                    Framing::Chunked(c) => Some(&c[..]),
                };
                let answer = self.send(
                    "response",
                    &request("POST", &path(&id, "response"), &headers, body, cuts),
                );
                self.answered(&id, &answer, Expected::Body(Some(body.clone())));
            }
            Op::Stream {
                id,
                mode,
                http_integration,
                prelude,
                chunks,
                end,
            } => {
                let id = self.id(id);
                let mode = mode.render();
                let streamed = mode.eq_ignore_ascii_case("streaming");
                let mut headers = vec![("lambda-runtime-function-response-mode".to_string(), mode)];
                if *http_integration {
                    headers.push((
                        "content-type".to_string(),
                        "application/vnd.awslambda.http-integration-response".to_string(),
                    ));
                }
                let mut wire = format!(
                    "POST {} HTTP/1.1\r\nhost: fuzz\r\nconnection: close\r\ntransfer-encoding: chunked\r\n",
                    path(&id, "response")
                );
                if matches!(end, StreamEnd::Trailers(..)) {
                    wire.push_str("trailer: lambda-runtime-function-error-type, lambda-runtime-function-error-body\r\n");
                }
                for (n, v) in &headers {
                    wire.push_str(&format!("{n}: {v}\r\n"));
                }
                wire.push_str("\r\n");
                let mut wire = wire.into_bytes();
                let mut data: Vec<Vec<u8>> = Vec::new();
                if let Some(p) = prelude {
                    let mut p = p.clone();
                    p.extend_from_slice(&[0; 8]);
                    data.push(p);
                }
                data.extend(chunks.iter().filter(|c| !c.is_empty()).cloned());
                let mut trailers_failed = false;
                let mut chunk_failed = None;
                if let StreamEnd::ErrorChunk(t, b) = end {
                    use base64::Engine as _;
                    let block = format!(
                        "Lambda-Runtime-Function-Error-Type: {}\r\nLambda-Runtime-Function-Error-Body: {}\r\n",
                        t.render(),
                        base64::engine::general_purpose::STANDARD.encode(b)
                    );
                    // An empty type is no error block; then it is data.
                    chunk_failed = Some(!t.render().trim().is_empty());
                    data.push(block.into_bytes());
                }
                for chunk in &data {
                    wire.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                    wire.extend_from_slice(chunk);
                    wire.extend_from_slice(b"\r\n");
                }
                wire.extend_from_slice(b"0\r\n");
                if let StreamEnd::Trailers(t, b) = end {
                    if let Some(t) = t {
                        wire.extend_from_slice(
                            format!("lambda-runtime-function-error-type: {}\r\n", t.render())
                                .as_bytes(),
                        );
                        trailers_failed = true;
                    }
                    if let Some((encode64, b)) = b {
                        use base64::Engine as _;
                        let value = if *encode64 {
                            base64::engine::general_purpose::STANDARD.encode(b)
                        } else {
                            b.iter().map(|c| char::from(c % 95 + 32)).collect()
                        };
                        wire.extend_from_slice(
                            format!("lambda-runtime-function-error-body: {value}\r\n").as_bytes(),
                        );
                    }
                }
                wire.extend_from_slice(b"\r\n");
                let plain = data.concat();
                let answer = self.send("response", &wire);
                // What the invoker sees, when it can be told from the input alone: no
                // prelude to strip (HTTP integration), and no data that a read boundary
                // could turn into `lambda_runtime`'s error block (its detection looks at
                // body frames as hyper reads them).
                const NAME: &[u8] = b"lambda-runtime-function-error-type";
                let ambiguous = *http_integration
                    || data[..data.len() - usize::from(chunk_failed.is_some())]
                        .iter()
                        .any(|c| {
                            (0..c.len()).any(|i| {
                                let n = (c.len() - i).min(NAME.len());
                                c[i..i + n].eq_ignore_ascii_case(&NAME[..n])
                            })
                        });
                let expected = if !streamed {
                    // A buffered response with chunked framing: every byte, as sent.
                    Expected::Body(Some(plain))
                } else if trailers_failed {
                    Expected::Error
                } else if ambiguous {
                    Expected::Unknown
                } else if chunk_failed == Some(true) {
                    Expected::Error
                } else {
                    Expected::Body(Some(plain))
                };
                self.answered(&id, &answer, expected);
            }
            Op::Error {
                id,
                error_type,
                body,
            } => {
                let id = self.id(id);
                let mut headers = Vec::new();
                if let Some(t) = error_type {
                    headers.push(("lambda-runtime-function-error-type".to_string(), t.render()));
                }
                let answer = self.send(
                    "error",
                    &request(
                        "POST",
                        &path(&id, "error"),
                        &headers,
                        &error_body(body),
                        None,
                    ),
                );
                self.answered(&id, &answer, Expected::Error);
            }
            Op::InitError { error_type, body } => {
                let mut headers = Vec::new();
                if let Some(t) = error_type {
                    headers.push(("lambda-runtime-function-error-type".to_string(), t.render()));
                }
                let answer = self.send(
                    "init-error",
                    &request(
                        "POST",
                        "/2018-06-01/runtime/init/error",
                        &headers,
                        &error_body(body),
                        None,
                    ),
                );
                if answer.status == 202 {
                    assert!(!self.delivered, "init/error accepted after init");
                    self.init_failed = true;
                }
            }
            Op::Next => {
                // Only while the invocation is in flight: otherwise a `/next` waits for
                // the next invocation.
                if !self.delivered || !self.accepted.is_empty() || self.tainted {
                    return;
                }
                let answer = self.send("next", &request("GET", NEXT, &[], b"", None));
                assert_eq!(answer.status, 403, "a second /next while {} runs", self.id);
            }
            Op::Register {
                name,
                events,
                accept,
                raw,
            } => {
                let mut headers = Vec::new();
                if let Some(n) = name {
                    headers.push(("lambda-extension-name".to_string(), n.render()));
                }
                if let Some(a) = accept {
                    headers.push(("lambda-extension-accept-feature".to_string(), a.render()));
                }
                let body = raw.clone().unwrap_or_else(|| {
                    let events: Vec<String> = events.iter().map(Text::render).collect();
                    serde_json::to_vec(&serde_json::json!({ "events": events })).unwrap()
                });
                let answer = self.send(
                    "register",
                    &request(
                        "POST",
                        "/2020-01-01/extension/register",
                        &headers,
                        &body,
                        None,
                    ),
                );
                if answer.status == 200 {
                    assert!(!self.delivered, "an extension registered after init");
                    let id = answer
                        .header("lambda-extension-identifier")
                        .expect("an identifier")
                        .to_string();
                    play_extension(self.addr, id.clone());
                    self.extension = Some(id);
                }
            }
            Op::ExtensionNext { id } => {
                // The registered extension's own next is played by its task.
                let Some(id) = self
                    .ext_id(id)
                    .filter(|id| Some(id) != self.extension.as_ref())
                else {
                    return;
                };
                let headers = vec![("lambda-extension-identifier".to_string(), id)];
                let answer = self.send(
                    "extension-next",
                    &request(
                        "GET",
                        "/2020-01-01/extension/event/next",
                        &headers,
                        b"",
                        None,
                    ),
                );
                assert_ne!(answer.status, 200, "event/next for an unknown extension");
            }
            Op::ExtensionError {
                init,
                id,
                error_type,
                body,
            } => {
                let mut headers = Vec::new();
                let ext = self.ext_id(id);
                if let Some(id) = &ext {
                    headers.push(("lambda-extension-identifier".to_string(), id.clone()));
                }
                if let Some(t) = error_type {
                    headers.push((
                        "lambda-extension-function-error-type".to_string(),
                        t.render(),
                    ));
                }
                let path = if *init {
                    "/2020-01-01/extension/init/error"
                } else {
                    "/2020-01-01/extension/exit/error"
                };
                let answer = self.send(
                    "extension-error",
                    &request("POST", path, &headers, &error_body(body), None),
                );
                if answer.status == 202 && *init {
                    assert!(!self.delivered, "extension init/error accepted after init");
                    self.init_failed = true;
                }
            }
            Op::Subscribe {
                telemetry,
                id,
                body,
            } => {
                let mut headers = Vec::new();
                if let Some(id) = self.ext_id(id) {
                    headers.push(("lambda-extension-identifier".to_string(), id));
                }
                let body = match body {
                    Subscription::Raw(b) => b.clone(),
                    Subscription::Valid {
                        types,
                        port,
                        buffering,
                        schema,
                    } => {
                        let names = ["platform", "function", "extension", "bogus"];
                        let types: Vec<&str> =
                            types.iter().map(|t| names[usize::from(*t) % 4]).collect();
                        let mut doc = serde_json::json!({
                            "destination": {"protocol": "HTTP", "URI": format!("http://sandbox.localdomain:{port}/t")},
                            "types": types,
                        });
                        if *schema {
                            doc["schemaVersion"] = "2022-12-13".into();
                        }
                        if let Some((items, bytes, ms)) = buffering {
                            doc["buffering"] = serde_json::json!({"maxItems": items, "maxBytes": bytes, "timeoutMs": ms});
                        }
                        serde_json::to_vec(&doc).unwrap()
                    }
                };
                let path = if *telemetry {
                    "/2022-07-01/telemetry"
                } else {
                    "/2020-08-15/logs"
                };
                self.send("subscribe", &request("PUT", path, &headers, &body, None));
            }
            Op::Truncated {
                route,
                id,
                body,
                missing,
            } => {
                let id = self.id(id);
                let (path, what) = match route % 3 {
                    0 => (path(&id, "response"), "response"),
                    1 => (path(&id, "error"), "error"),
                    _ => ("/2018-06-01/runtime/init/error".to_string(), "init-error"),
                };
                let mut bytes = format!(
                    "POST {path} HTTP/1.1\r\nhost: fuzz\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
                    body.len() + usize::from(*missing) + 1
                )
                .into_bytes();
                bytes.extend_from_slice(body);
                let response = exchange(self.addr, &bytes, true).unwrap_or_default();
                if let Some(answer) = parse(&response) {
                    assert!(
                        statuses(what).contains(&answer.status),
                        "{what}: {}",
                        answer.headers
                    );
                    assert_ne!(
                        answer.status, 413,
                        "a cut body is not too large: {}",
                        answer.headers
                    );
                    assert_ne!(answer.status, 202, "a cut {what} body was accepted");
                }
                // An `/error` or `/init/error` whose body was cut still reports the error.
                if what != "response" {
                    self.tainted = true;
                }
            }
            Op::RawAfterLine { route, id, rest } => {
                let id = self.id(id);
                let line = match route % 6 {
                    0 => format!("POST {} HTTP/1.1\r\n", path(&id, "response")),
                    1 => format!("POST {} HTTP/1.1\r\n", path(&id, "error")),
                    2 => "POST /2018-06-01/runtime/init/error HTTP/1.1\r\n".to_string(),
                    3 => "POST /2020-01-01/extension/register HTTP/1.1\r\n".to_string(),
                    4 => "PUT /2022-07-01/telemetry HTTP/1.1\r\n".to_string(),
                    _ => "POST /2020-01-01/extension/exit/error HTTP/1.1\r\n".to_string(),
                };
                let mut bytes = line.into_bytes();
                bytes.extend_from_slice(rest);
                self.raw(&bytes);
            }
            Op::Raw(bytes) => self.raw(bytes),
        }
    }

    /// Raw bytes: any answer, or none; the invocation may have been answered unseen.
    fn raw(&mut self, bytes: &[u8]) {
        // A raw `/next` would wait for the next invocation: not sent.
        if bytes.windows(4).any(|w| w.eq_ignore_ascii_case(b"next")) {
            return;
        }
        let response = exchange(self.addr, bytes, true).unwrap_or_default();
        if let Some(answer) = parse(&response) {
            assert!(
                answer.status < 500 || answer.status == 500 && answer.body.starts_with(b"{"),
                "a {} for raw bytes: {:?}",
                answer.status,
                String::from_utf8_lossy(&response)
            );
        }
        self.tainted = true;
    }
}

/// Plays a registered extension: calls `event/next` until the environment refuses it.
fn play_extension(addr: SocketAddr, id: String) {
    std::thread::spawn(move || {
        let request = request(
            "GET",
            "/2020-01-01/extension/event/next",
            &[("lambda-extension-identifier".to_string(), id)],
            b"",
            None,
        );
        loop {
            let Ok(mut stream) = TcpStream::connect(addr) else {
                return;
            };
            if stream.write_all(&request).is_err() {
                return;
            }
            let mut response = Vec::new();
            let _ = stream.read_to_end(&mut response);
            match parse(&response) {
                Some(answer) if answer.status == 200 => {
                    if String::from_utf8_lossy(&answer.body).contains("SHUTDOWN") {
                        return;
                    }
                }
                _ => return,
            }
        }
    });
}

fn harness() -> &'static Mutex<Harness> {
    static HARNESS: std::sync::OnceLock<Mutex<Harness>> = std::sync::OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (emulator, function, apis) = runtime.block_on(async {
            let (builder, apis) = Emulator::builder().max_environments(1).without_runtimes();
            let emulator = builder.start().await.unwrap();
            let function = emulator
                .deploy(
                    Function::new("f", Runtime::ProvidedAl2023)
                        .executable("bootstrap", "#!/bin/sh\nexit 3\n")
                        .timeout(Duration::from_secs(60)),
                )
                .await
                .unwrap();
            (emulator, function, apis)
        });
        Mutex::new(Harness {
            runtime,
            _emulator: emulator,
            function,
            apis,
            current: None,
            extension: None,
            last_id: String::new(),
            probes: 0,
        })
    })
}

/// How the runtime's `/next` went.
enum Taken {
    /// The invocation's address and request id.
    Delivered(SocketAddr, String),
    /// An init-phase call failed init on a fresh environment.
    InitFailed,
}

/// `/next` on the live environment (on a fresh one, after the input's init-phase calls,
/// when it was replaced).
fn next(h: &mut Harness, input: &Input) -> Taken {
    for _ in 0..4 {
        let addr = match h.current {
            Some(addr) => addr,
            None => {
                let addr = h
                    .runtime
                    .block_on(h.apis.next(LIMIT))
                    .expect("an environment launches");
                h.current = Some(addr);
                h.extension = None;
                let mut run = Run::new(addr, String::new(), &h.last_id, None, false);
                for op in &input.init {
                    run.op(op);
                    if run.init_failed {
                        h.current = None;
                        return Taken::InitFailed;
                    }
                }
                h.extension = run.extension;
                addr
            }
        };
        let answer =
            exchange(addr, &request("GET", NEXT, &[], b"", None), false).and_then(|r| parse(&r));
        match answer {
            Some(a) if a.status == 200 => {
                let id = a
                    .header("lambda-runtime-aws-request-id")
                    .expect("a request id")
                    .to_string();
                assert!(a.header("lambda-runtime-deadline-ms").is_some());
                return Taken::Delivered(addr, id);
            }
            // Refused or gone: the environment was replaced.
            _ => h.current = None,
        }
    }
    panic!("no environment took the invocation");
}

fuzz_target!(|input: Input| {
    let mut guard = harness().lock().unwrap_or_else(|e| e.into_inner());
    let h = &mut *guard;
    let function = h.function.clone();
    let payload = input.payload.clone();
    let invoke = if input.streaming_invoke {
        h.runtime.spawn(async move {
            match function.invoke_stream(payload).await {
                Ok(stream) => Invoked::Streamed(Ok(stream.collect_all().await)),
                Err(e) => Invoked::Streamed(Err(e)),
            }
        })
    } else {
        h.runtime
            .spawn(async move { Invoked::Buffered(function.invoke(payload).await) })
    };

    let invoked = |h: &Harness| {
        h.runtime
            .block_on(async { tokio::time::timeout(LIMIT, invoke).await })
            .expect("the invocation completes")
            .expect("the invoke task")
    };
    let (addr, id) = match next(h, &input) {
        Taken::Delivered(addr, id) => (addr, id),
        Taken::InitFailed => {
            let result = invoked(h);
            assert!(
                result.error_type().is_some(),
                "init failed: the invocation is an error"
            );
            return;
        }
    };
    let stale = h.last_id.clone();
    let mut run = Run::new(addr, id.clone(), &stale, h.extension.clone(), true);
    for op in &input.ops {
        run.op(op);
    }
    assert!(
        run.accepted.len() <= 1,
        "{} answers accepted for {id}: {:?}",
        run.accepted.len(),
        run.accepted
    );
    h.probes += 1;
    let probe = format!("probe-{}", h.probes).into_bytes();
    let answer = run.send(
        "response",
        &request(
            "POST",
            &format!("/2018-06-01/runtime/invocation/{id}/response"),
            &[],
            &probe,
            None,
        ),
    );
    match answer.status {
        202 => {
            assert!(
                run.accepted.is_empty(),
                "the probe was accepted after {:?}",
                run.accepted
            );
            run.accepted.push(Expected::Body(Some(probe.clone())));
        }
        400 => assert!(
            !run.accepted.is_empty() || run.tainted,
            "the probe was refused but nothing answered {id}: {:?}",
            String::from_utf8_lossy(&answer.body)
        ),
        other => panic!(
            "the probe got {other}: {:?}",
            String::from_utf8_lossy(&answer.body)
        ),
    }
    let result = invoked(h);
    h.last_id = id;
    let error = result.error_type();
    assert_ne!(
        error.as_deref(),
        Some("Sandbox.Timedout"),
        "the invocation was lost"
    );
    match run.accepted.first() {
        Some(Expected::Error) => assert!(error.is_some(), "an accepted error, then success"),
        Some(Expected::Body(body)) => {
            assert_eq!(error, None, "an accepted response, then an error");
            if let Some(body) = body
                && !(run.tainted && input.streaming_invoke)
            {
                assert_eq!(
                    result.body(),
                    *body,
                    "the invoker got other bytes than accepted"
                );
            }
        }
        Some(Expected::Unknown) => {}
        None => assert!(run.tainted),
    }
});
