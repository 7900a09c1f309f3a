//! The Lambda REST API (`api` feature) driven through its real HTTP server: every route's
//! path labels (names, ARNs, qualifiers, percent-encoding), query strings, headers and JSON
//! bodies, arbitrary.
//!
//! Invariant: every request gets a complete HTTP answer (a handler that panicked would
//! drop the connection instead) carrying `x-amzn-RequestId`; an error (4xx/5xx) carries
//! `x-amzn-ErrorType` and a JSON body with a `message`/`Message`; a 5xx is never caused
//! by input alone (only `ServiceException`-type failures of the emulator itself would be,
//! and none are expected here). One emulator serves every input; a function `f` exists.

#![no_main]

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::OnceLock;
use std::time::Duration;

use arbitrary::Arbitrary;
use lambda_testkit::{Emulator, Function, Runtime};
use libfuzzer_sys::fuzz_target;

const ROUTES: &[&str] = &[
    "/2015-03-31/functions",
    "/2015-03-31/functions/{}",
    "/2015-03-31/functions/{}/code",
    "/2015-03-31/functions/{}/configuration",
    "/2015-03-31/functions/{}/invocations",
    "/2015-03-31/functions/{}/versions",
    "/2015-03-31/functions/{}/aliases",
    "/2015-03-31/functions/{}/aliases/{}",
    "/2014-11-13/functions/{}/invoke-async",
    "/2017-10-31/functions/{}/concurrency",
    "/2019-09-30/functions/{}/concurrency",
    "/2019-09-30/functions/{}/provisioned-concurrency",
    "/2018-10-31/layers",
    "/2018-10-31/layers/{}/versions",
    "/2018-10-31/layers/{}/versions/{}",
    "/2021-10-31/functions/{}/url",
    "/2021-10-31/functions/{}/urls",
    "/2021-11-15/functions/{}/response-streaming-invocations",
];

const LABELS: &[&str] = &[
    "f",
    "f%3A%24LATEST",
    "f%3A1",
    "f%3Alive",
    "arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Af",
    "arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Af%3A%24LATEST",
    "%24LATEST",
    "1",
    "0",
    "-1",
    "99999999999999999999",
    "%2F",
    "%",
    "%ZZ",
    "..",
    "%00",
    "a%20b",
];

#[derive(Arbitrary, Debug)]
enum Method {
    Get,
    Post,
    Put,
    Delete,
    Patch,
}

#[derive(Arbitrary, Debug)]
enum Label {
    Known(u8),
    Text(String),
}

#[derive(Arbitrary, Debug)]
enum Body {
    Empty,
    Raw(Vec<u8>),
    Object(Vec<(Key, Value)>),
}

#[derive(Arbitrary, Debug)]
enum Key {
    Known(u8),
    Text(String),
}

const KEYS: &[&str] = &[
    "FunctionName",
    "Runtime",
    "Role",
    "Handler",
    "Code",
    "ZipFile",
    "Timeout",
    "MemorySize",
    "Environment",
    "Variables",
    "Layers",
    "Description",
    "Publish",
    "PackageType",
    "ReservedConcurrentExecutions",
    "ProvisionedConcurrentExecutions",
    "FunctionVersion",
    "Name",
    "RoutingConfig",
    "AdditionalVersionWeights",
    "Content",
    "CompatibleRuntimes",
    "AuthType",
    "Cors",
    "InvokeMode",
    "RevisionId",
    "CodeSha256",
    "ImageUri",
];

#[derive(Arbitrary, Debug)]
enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    List(Vec<Value>),
    Object(Vec<(Key, Value)>),
}

#[derive(Arbitrary, Debug)]
struct Request {
    method: Method,
    route: u8,
    labels: Vec<Label>,
    query: Vec<(Key, String)>,
    invocation_type: Option<u8>,
    body: Body,
}

fn key(k: &Key) -> String {
    match k {
        Key::Known(i) => KEYS[usize::from(*i) % KEYS.len()].to_string(),
        Key::Text(t) => t.clone(),
    }
}

fn json(v: &Value, depth: u32) -> serde_json::Value {
    use serde_json::Value as J;
    if depth > 6 {
        return J::Null;
    }
    match v {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        Value::Text(t) => J::String(t.clone()),
        Value::List(l) => J::Array(l.iter().map(|v| json(v, depth + 1)).collect()),
        Value::Object(o) => J::Object(
            o.iter()
                .map(|(k, v)| (key(k), json(v, depth + 1)))
                .collect(),
        ),
    }
}

/// Percent-encodes what may not appear raw in a request target.
fn encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:$".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Request {
    fn target(&self) -> String {
        let template = ROUTES[usize::from(self.route) % ROUTES.len()];
        let mut labels = self.labels.iter();
        let mut path = String::new();
        for (i, part) in template.split("{}").enumerate() {
            if i > 0 {
                path.push_str(&match labels.next() {
                    Some(Label::Known(k)) => LABELS[usize::from(*k) % LABELS.len()].to_string(),
                    Some(Label::Text(t)) => encode(t),
                    None => "f".to_string(),
                });
            }
            path.push_str(part);
        }
        let query: Vec<String> = self
            .query
            .iter()
            .map(|(k, v)| format!("{}={}", encode(&key(k)), encode(v)))
            .collect();
        if !query.is_empty() {
            path.push('?');
            path.push_str(&query.join("&"));
        }
        path
    }

    fn bytes(&self) -> Vec<u8> {
        let method = match self.method {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Patch => "PATCH",
        };
        let body = match &self.body {
            Body::Empty => Vec::new(),
            Body::Raw(bytes) => bytes.clone(),
            Body::Object(o) => {
                serde_json::to_vec(&json(&Value::Object(o.clone_shallow()), 0)).unwrap_or_default()
            }
        };
        let mut out = format!(
            "{method} {} HTTP/1.1\r\nhost: fuzz\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
            self.target(),
            body.len()
        );
        if let Some(t) = self.invocation_type {
            let t = ["RequestResponse", "Event", "DryRun", "Bogus"][usize::from(t) % 4];
            out.push_str(&format!("x-amz-invocation-type: {t}\r\n"));
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&body);
        bytes
    }
}

trait CloneShallow {
    fn clone_shallow(&self) -> Vec<(Key, Value)>;
}

impl CloneShallow for Vec<(Key, Value)> {
    /// The object as a `Value::Object` can hold it (Key/Value are not Clone: rebuild).
    fn clone_shallow(&self) -> Vec<(Key, Value)> {
        fn v(x: &Value) -> Value {
            match x {
                Value::Null => Value::Null,
                Value::Bool(b) => Value::Bool(*b),
                Value::Int(i) => Value::Int(*i),
                Value::Float(f) => Value::Float(*f),
                Value::Text(t) => Value::Text(t.clone()),
                Value::List(l) => Value::List(l.iter().map(v).collect()),
                Value::Object(o) => Value::Object(o.clone_shallow()),
            }
        }
        fn k(x: &Key) -> Key {
            match x {
                Key::Known(i) => Key::Known(*i),
                Key::Text(t) => Key::Text(t.clone()),
            }
        }
        self.iter().map(|(a, b)| (k(a), v(b))).collect()
    }
}

struct Server {
    addr: SocketAddr,
    _emulator: Emulator,
    _runtime: tokio::runtime::Runtime,
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (emulator, url) = runtime.block_on(async {
            let emulator = Emulator::start().await.unwrap();
            emulator
                .deploy(
                    Function::new("f", Runtime::ProvidedAl2023)
                        .executable("bootstrap", "#!/bin/sh\nexit 3\n"),
                )
                .await
                .unwrap();
            let url = emulator.endpoint_url().to_string();
            (emulator, url)
        });
        let addr = url.trim_start_matches("http://").parse().unwrap();
        Server {
            addr,
            _emulator: emulator,
            _runtime: runtime,
        }
    })
}

fuzz_target!(|request: Request| {
    let server = server();
    let mut stream = TcpStream::connect(server.addr).expect("the REST listener is up");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let bytes = request.bytes();
    stream.write_all(&bytes).expect("request written");
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status: u16 = head
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer to {request:?}: {text:?}"));
    let lower = head.to_ascii_lowercase();
    if status == 400 && !lower.contains("x-amzn-requestid") {
        // hyper refused the request line or headers before routing: nothing to check.
        return;
    }
    assert!(lower.contains("\r\nx-amzn-requestid: "), "{head}");
    if status >= 400 {
        assert!(lower.contains("\r\nx-amzn-errortype: "), "{head}");
        let error: serde_json::Value = serde_json::from_str(body)
            .unwrap_or_else(|e| panic!("error body is not JSON ({e}): {body:?} for {request:?}"));
        assert!(
            error
                .get("message")
                .or_else(|| error.get("Message"))
                .is_some(),
            "{body}"
        );
    }
    assert!(
        status < 500 || lower.contains("x-amz-function-error"),
        "a {status} for input alone: {head}\n{body}\nrequest: {request:?}"
    );
});
