//! The body of a subscribe request (`PUT /2022-07-01/telemetry`, `PUT /2020-08-15/logs`):
//! parsed and validated as Lambda validates it (telemetry-api-reference.html,
//! runtimes-logs-api.html). Pure: no I/O.

use std::net::IpAddr;
use std::time::Duration;

use serde_json::Value;

use super::Api;

/// Telemetry API schema versions Lambda accepts.
const TELEMETRY_SCHEMAS: [&str; 3] = ["2022-07-01", "2022-12-13", "2025-01-29"];
/// Logs API schema versions; 2021-03-18 adds `platform.runtimeDone`.
const LOGS_SCHEMAS: [&str; 2] = ["2020-08-15", "2021-03-18"];
/// The Logs API default when `schemaVersion` is absent.
const LOGS_DEFAULT_SCHEMA: &str = "2020-08-15";

/// `buffering` limits: (minimum, maximum, default) — the same for both APIs.
const MAX_ITEMS: (u64, u64, u64) = (1_000, 10_000, 10_000);
const MAX_BYTES: (u64, u64, u64) = (262_144, 1_048_576, 262_144);
const TIMEOUT_MS: (u64, u64, u64) = (25, 30_000, 1_000);

/// The host a destination names to mean "this execution environment".
pub(crate) const SANDBOX_HOST: &str = "sandbox.localdomain";

/// A telemetry stream, as named in `types`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Category {
    Platform,
    Function,
    Extension,
}

impl Category {
    fn parse(name: &str) -> Option<Category> {
        match name {
            "platform" => Some(Category::Platform),
            "function" => Some(Category::Function),
            "extension" => Some(Category::Extension),
            _ => None,
        }
    }

    fn bit(self) -> u8 {
        match self {
            Category::Platform => 1,
            Category::Function => 2,
            Category::Extension => 4,
        }
    }
}

/// The streams subscribed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Types(u8);

impl Types {
    pub(crate) fn contains(self, category: Category) -> bool {
        self.0 & category.bit() != 0
    }
}

/// When a subscriber's buffer is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Buffering {
    pub(crate) max_items: usize,
    pub(crate) max_bytes: usize,
    pub(crate) timeout: Duration,
}

impl Default for Buffering {
    fn default() -> Self {
        Buffering {
            max_items: MAX_ITEMS.2 as usize,
            max_bytes: MAX_BYTES.2 as usize,
            timeout: Duration::from_millis(TIMEOUT_MS.2),
        }
    }
}

/// Where batches go: `http://sandbox.localdomain:<port><path>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Destination {
    pub(crate) port: u16,
    /// Path and query, `/` at least.
    pub(crate) path: String,
    /// `POST`, or `PUT` where the Logs API was asked for it.
    pub(crate) method: &'static str,
}

impl Destination {
    /// The URL with `sandbox.localdomain` resolved to `sandbox`.
    pub(crate) fn url(&self, sandbox: IpAddr) -> String {
        let host = match sandbox {
            IpAddr::V4(ip) => ip.to_string(),
            IpAddr::V6(ip) => format!("[{ip}]"),
        };
        format!("http://{host}:{}{}", self.port, self.path)
    }
}

/// A valid subscription request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Subscription {
    pub(crate) api: Api,
    pub(crate) schema_version: String,
    pub(crate) types: Types,
    /// `types` as requested (deduplicated), for `platform.telemetrySubscription`.
    pub(crate) type_names: Vec<&'static str>,
    pub(crate) buffering: Buffering,
    pub(crate) destination: Destination,
}

impl Subscription {
    /// Logs API 2021-03-18 and later deliver `platform.runtimeDone`.
    pub(crate) fn logs_runtime_done(&self) -> bool {
        self.schema_version.as_str() >= "2021-03-18"
    }
}

/// Parses and validates a subscribe body; `Err` is the `errorMessage` of the 400.
pub(crate) fn parse(api: Api, body: &[u8]) -> Result<Subscription, String> {
    let body: Value =
        serde_json::from_slice(body).map_err(|e| format!("request body is not valid JSON: {e}"))?;
    let Some(body) = body.as_object() else {
        return Err("request body must be a JSON object".to_string());
    };

    let schemas: &[&str] = match api {
        Api::Telemetry => &TELEMETRY_SCHEMAS,
        Api::Logs => &LOGS_SCHEMAS,
    };
    let schema_version = match (body.get("schemaVersion"), api) {
        (None | Some(Value::Null), Api::Logs) => LOGS_DEFAULT_SCHEMA.to_string(),
        (None | Some(Value::Null), Api::Telemetry) => {
            return Err("schemaVersion is required".to_string());
        }
        (Some(Value::String(v)), _) if schemas.contains(&v.as_str()) => v.clone(),
        (Some(v), _) => {
            return Err(format!(
                "schemaVersion {v} is not supported; valid values: {}",
                schemas.join(", ")
            ));
        }
    };

    let types = parse_types(body.get("types"))?;
    let buffering = parse_buffering(body.get("buffering"))?;
    let destination = parse_destination(api, body.get("destination"))?;
    let (types, type_names) = types;
    Ok(Subscription {
        api,
        schema_version,
        types,
        type_names,
        buffering,
        destination,
    })
}

fn parse_types(types: Option<&Value>) -> Result<(Types, Vec<&'static str>), String> {
    let Some(Value::Array(types)) = types else {
        return Err("types is required: a list of platform, function, extension".to_string());
    };
    if types.is_empty() {
        return Err("types should not be empty".to_string());
    }
    let mut set = Types::default();
    let mut names = Vec::new();
    for t in types {
        let category = t.as_str().and_then(Category::parse).ok_or_else(|| {
            format!("types: {t} is not a valid type; valid values: platform, function, extension")
        })?;
        if !set.contains(category) {
            set.0 |= category.bit();
            names.push(match category {
                Category::Platform => "platform",
                Category::Function => "function",
                Category::Extension => "extension",
            });
        }
    }
    Ok((set, names))
}

fn parse_buffering(buffering: Option<&Value>) -> Result<Buffering, String> {
    let buffering = match buffering {
        None | Some(Value::Null) => return Ok(Buffering::default()),
        Some(Value::Object(b)) => b,
        Some(other) => return Err(format!("buffering must be an object, got {other}")),
    };
    let limit = |key: &str, (min, max, default): (u64, u64, u64)| -> Result<u64, String> {
        match buffering.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => match v.as_u64() {
                Some(n) if (min..=max).contains(&n) => Ok(n),
                _ => Err(format!(
                    "buffering.{key} must be an integer between {min} and {max}, got {v}"
                )),
            },
        }
    };
    Ok(Buffering {
        max_items: limit("maxItems", MAX_ITEMS)? as usize,
        max_bytes: limit("maxBytes", MAX_BYTES)? as usize,
        timeout: Duration::from_millis(limit("timeoutMs", TIMEOUT_MS)?),
    })
}

fn parse_destination(api: Api, destination: Option<&Value>) -> Result<Destination, String> {
    let Some(Value::Object(destination)) = destination else {
        return Err("destination is required: {\"protocol\": \"HTTP\", \"URI\": ...}".to_string());
    };
    match destination.get("protocol").and_then(Value::as_str) {
        Some("HTTP") => {}
        Some("TCP") => {
            return Err(
                "destination.protocol TCP is not supported by lambda-testkit; use HTTP".to_string(),
            );
        }
        Some(other) => {
            return Err(format!(
                "destination.protocol {other} is not valid; valid values: HTTP, TCP"
            ));
        }
        None => return Err("destination.protocol is required".to_string()),
    }
    let Some(uri) = destination.get("URI").and_then(Value::as_str) else {
        return Err("destination.URI is required".to_string());
    };
    let url = reqwest::Url::parse(uri)
        .map_err(|e| format!("destination.URI {uri} is not a valid URI: {e}"))?;
    if url.scheme() != "http" {
        return Err(format!(
            "destination.URI {uri}: only http is supported, not {}",
            url.scheme()
        ));
    }
    // Lambda delivers only inside the execution environment; loopback names it too.
    match url.host_str() {
        Some(SANDBOX_HOST | "localhost" | "127.0.0.1") => {}
        _ => {
            return Err(format!(
                "destination.URI {uri} must be inside the execution environment: http://{SANDBOX_HOST}:PORT[/PATH]"
            ));
        }
    }
    let Some(port) = url.port() else {
        return Err(format!("destination.URI {uri}: URI port is not provided"));
    };
    let mut path = url.path().to_string();
    if let Some(query) = url.query() {
        path = format!("{path}?{query}");
    }
    // The Logs API lets the subscriber choose PUT or POST; the Telemetry API always POSTs.
    let method = match (api, destination.get("method").and_then(Value::as_str)) {
        (Api::Logs, Some(m)) if m.eq_ignore_ascii_case("PUT") => "PUT",
        (Api::Logs, Some(m)) if !m.eq_ignore_ascii_case("POST") => {
            return Err(format!(
                "destination.method {m} is not valid; valid values: POST, PUT"
            ));
        }
        _ => "POST",
    };
    Ok(Destination { port, path, method })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn telemetry(body: Value) -> Result<Subscription, String> {
        parse(Api::Telemetry, body.to_string().as_bytes())
    }

    fn with_buffering(buffering: Value) -> Result<Subscription, String> {
        telemetry(json!({
            "schemaVersion": "2022-07-01",
            "types": ["platform"],
            "buffering": buffering,
            "destination": {"protocol": "HTTP", "URI": "http://sandbox.localdomain:9003"},
        }))
    }

    /// The request `lambda-extension` 1.x sends.
    fn lambda_extension_body() -> Value {
        json!({
            "buffering": {"maxBytes": 262144, "maxItems": 10000, "timeoutMs": 1000},
            "destination": {"URI": "http://sandbox.localdomain:9003", "protocol": "HTTP"},
            "schemaVersion": "2022-07-01",
            "types": ["platform", "function", "extension"],
        })
    }

    #[test]
    fn the_lambda_extension_crate_request_is_valid() {
        let s = telemetry(lambda_extension_body()).unwrap();
        assert_eq!(s.schema_version, "2022-07-01");
        assert_eq!(s.type_names, ["platform", "function", "extension"]);
        assert!(s.types.contains(Category::Extension));
        assert_eq!(s.buffering, Buffering::default());
        assert_eq!(
            s.destination,
            Destination {
                port: 9003,
                path: "/".into(),
                method: "POST"
            }
        );
        assert_eq!(
            s.destination.url("10.0.0.7".parse().unwrap()),
            "http://10.0.0.7:9003/"
        );
    }

    #[test]
    fn absent_buffering_fields_take_the_defaults() {
        let s = with_buffering(json!({"maxItems": 1000})).unwrap();
        assert_eq!(s.buffering.max_items, 1000);
        assert_eq!(s.buffering.max_bytes, 262_144);
        assert_eq!(s.buffering.timeout, Duration::from_millis(1000));
        let mut body = lambda_extension_body();
        body.as_object_mut().unwrap().remove("buffering");
        assert_eq!(telemetry(body).unwrap().buffering, Buffering::default());
        assert_eq!(
            Buffering::default(),
            Buffering {
                max_items: 10_000,
                max_bytes: 262_144,
                timeout: Duration::from_millis(1_000)
            }
        );
    }

    #[test]
    fn each_buffering_limit_is_inclusive_at_both_ends() {
        for (key, min, max) in [
            ("maxItems", 1_000, 10_000),
            ("maxBytes", 262_144, 1_048_576),
            ("timeoutMs", 25, 30_000),
        ] {
            assert!(with_buffering(json!({ key: min })).is_ok(), "{key}={min}");
            assert!(with_buffering(json!({ key: max })).is_ok(), "{key}={max}");
            for bad in [
                json!(min - 1),
                json!(max + 1),
                json!(-1),
                json!("100"),
                json!(1.5),
            ] {
                let err = with_buffering(json!({ key: bad })).unwrap_err();
                assert!(
                    err.contains(&format!("buffering.{key}")),
                    "{key}={bad}: {err}"
                );
            }
        }
        let s = with_buffering(json!({"maxItems": 1000, "maxBytes": 1048576, "timeoutMs": 25}))
            .unwrap();
        assert_eq!(
            s.buffering,
            Buffering {
                max_items: 1000,
                max_bytes: 1_048_576,
                timeout: Duration::from_millis(25)
            }
        );
    }

    #[test]
    fn telemetry_schema_versions_are_the_three_lambda_knows() {
        for v in ["2022-07-01", "2022-12-13", "2025-01-29"] {
            let mut body = lambda_extension_body();
            body["schemaVersion"] = json!(v);
            assert_eq!(telemetry(body).unwrap().schema_version, v);
        }
        for bad in [json!("2020-08-15"), json!("2023-01-01"), json!(20220701)] {
            let mut body = lambda_extension_body();
            body["schemaVersion"] = bad.clone();
            assert!(
                telemetry(body).unwrap_err().contains("schemaVersion"),
                "{bad}"
            );
        }
        let mut body = lambda_extension_body();
        body.as_object_mut().unwrap().remove("schemaVersion");
        assert_eq!(telemetry(body).unwrap_err(), "schemaVersion is required");
    }

    #[test]
    fn logs_schema_is_optional_and_2021_03_18_adds_runtime_done() {
        let body = |schema: Option<&str>| {
            let mut b = json!({
                "types": ["platform", "function"],
                "destination": {"protocol": "HTTP", "URI": "http://sandbox.localdomain:8080/lambda_logs"},
            });
            if let Some(s) = schema {
                b["schemaVersion"] = json!(s);
            }
            parse(Api::Logs, b.to_string().as_bytes())
        };
        let default = body(None).unwrap();
        assert_eq!(default.schema_version, "2020-08-15");
        assert!(!default.logs_runtime_done());
        assert!(body(Some("2021-03-18")).unwrap().logs_runtime_done());
        assert_eq!(default.destination.path, "/lambda_logs");
        assert!(body(Some("2022-07-01")).is_err());
    }

    #[test]
    fn the_destination_must_be_http_inside_the_environment_with_a_port() {
        let dest = |d: Value| {
            let mut body = lambda_extension_body();
            body["destination"] = d;
            telemetry(body)
        };
        let err = |d: Value| dest(d).unwrap_err();
        assert!(
            err(json!({"protocol": "TCP", "URI": "http://sandbox.localdomain:9003"}))
                .contains("TCP")
        );
        assert!(
            err(json!({"protocol": "HTTPS", "URI": "http://sandbox.localdomain:9003"}))
                .contains("protocol")
        );
        assert!(
            err(json!({"URI": "http://sandbox.localdomain:9003"})).contains("protocol is required")
        );
        assert!(err(json!({"protocol": "HTTP"})).contains("URI is required"));
        assert!(
            err(json!({"protocol": "HTTP", "URI": "https://sandbox.localdomain:9003"}))
                .contains("only http")
        );
        assert!(
            err(json!({"protocol": "HTTP", "URI": "http://example.com:9003"}))
                .contains("inside the execution environment")
        );
        assert!(
            err(json!({"protocol": "HTTP", "URI": "http://sandbox.localdomain"}))
                .contains("port is not provided")
        );
        assert!(err(json!({"protocol": "HTTP", "URI": "not a uri"})).contains("not a valid URI"));
        assert!(err(json!("http://sandbox.localdomain:9003")).contains("destination is required"));

        let d = dest(json!({"protocol": "HTTP", "URI": "http://localhost:4243/telemetry?x=1"}))
            .unwrap()
            .destination;
        assert_eq!((d.port, d.path.as_str()), (4243, "/telemetry?x=1"));
        assert_eq!(
            d.url("::1".parse().unwrap()),
            "http://[::1]:4243/telemetry?x=1"
        );
    }

    #[test]
    fn types_are_required_known_and_deduplicated() {
        let types = |t: Value| {
            let mut body = lambda_extension_body();
            body["types"] = t;
            telemetry(body)
        };
        assert_eq!(types(json!([])).unwrap_err(), "types should not be empty");
        assert!(
            types(json!(["platform", "logs"]))
                .unwrap_err()
                .contains("\"logs\"")
        );
        assert!(
            types(json!("platform"))
                .unwrap_err()
                .contains("types is required")
        );
        let s = types(json!(["function", "function", "platform"])).unwrap();
        assert_eq!(s.type_names, ["function", "platform"]);
        assert!(!s.types.contains(Category::Extension));
    }

    #[test]
    fn a_body_that_is_not_a_json_object_is_rejected() {
        assert!(
            parse(Api::Telemetry, b"{")
                .unwrap_err()
                .contains("not valid JSON")
        );
        assert!(
            parse(Api::Telemetry, b"[]")
                .unwrap_err()
                .contains("JSON object")
        );
    }

    #[test]
    fn only_the_logs_api_may_ask_for_put() {
        let body = json!({
            "types": ["function"],
            "destination": {"protocol": "HTTP", "URI": "http://sandbox.localdomain:8080", "method": "PUT"},
        });
        let logs = parse(Api::Logs, body.to_string().as_bytes()).unwrap();
        assert_eq!(logs.destination.method, "PUT");
        let mut body = body;
        body["schemaVersion"] = json!("2022-07-01");
        let telemetry = parse(Api::Telemetry, body.to_string().as_bytes()).unwrap();
        assert_eq!(telemetry.destination.method, "POST");
    }
}
