//! Function URLs: a dedicated HTTP endpoint per function or alias, served for real by the
//! emulator (AWS "Lambda function URLs").
//!
//! [`crate::FunctionHandle::create_url`] (or `CreateFunctionUrlConfig` on the REST API)
//! starts a listener on `127.0.0.1:<port>` for the function. Every HTTP request to it
//! becomes a payload format 2.0 event (`version`, `rawPath`, `rawQueryString`, `cookies`,
//! `headers`, `queryStringParameters`, `requestContext`, `body` + `isBase64Encoded`), and the
//! handler's result becomes the HTTP response, as Lambda maps them:
//!
//! - a result object with `statusCode` gives the status, `headers`, `cookies` (one
//!   `set-cookie` each), `body` (base64-decoded when `isBase64Encoded`);
//! - any other JSON result (a string, an object without `statusCode`) is a 200 with
//!   `content-type: application/json` and the result as the body;
//! - a function error (or a result that is not JSON) is `502 Bad Gateway` with the body
//!   `Internal Server Error`; throttling is `429`.
//!
//! [`InvokeMode::ResponseStream`] streams the body as the handler flushes it: a
//! `lambda_runtime` streaming response or Node's `awslambda.HttpResponseStream` prelude
//! (status, headers, cookies) becomes the response head, the chunks follow. [`Cors`] is
//! applied by the URL itself (preflight `OPTIONS` answered without invoking; CORS headers
//! on every response, taking precedence over the handler's). [`AuthType::AwsIam`] refuses
//! requests without a valid SigV4 signature (service `lambda`, the emulator's region) by
//! one of the emulator's dummy credentials ([`DUMMY_ACCESS_KEY_ID`] /
//! [`DUMMY_SECRET_ACCESS_KEY`], which every runtime gets as its `AWS_*` variables) with
//! `403 {"Message":"Forbidden"}`.
//!
//! ```no_run
//! # async fn demo(f: lambda_testkit::FunctionHandle) -> anyhow::Result<()> {
//! use lambda_testkit::urls::{Cors, FunctionUrlConfig};
//! let url = f
//!     .create_url(FunctionUrlConfig::new().cors(Cors::new().allow_origins(["*"])))
//!     .await?;
//! println!("{}", url.url()); // http://127.0.0.1:<port>/
//! # Ok(()) }
//! ```

mod store;

pub(crate) use store::UrlStore;
#[cfg(feature = "api")]
pub(crate) use store::{new_url_id, now_iso8601};

/// The access key id of the emulator's dummy credentials: every runtime gets it as
/// `AWS_ACCESS_KEY_ID`, and an `AWS_IAM` function URL accepts requests it signed.
pub const DUMMY_ACCESS_KEY_ID: &str = "ASIAEMULATOREXAMPLE";
/// The secret access key of the emulator's dummy credentials (`AWS_SECRET_ACCESS_KEY` of
/// every runtime).
pub const DUMMY_SECRET_ACCESS_KEY: &str = "lambda-testkit-dummy-secret";
/// The credentials an `AWS_IAM` function URL accepts signatures of: the runtimes' dummy
/// pair, and the pair of `Emulator::lambda_config`'s SDK client.
pub(crate) const ACCEPTED_CREDENTIALS: &[(&str, &str)] = &[
    (DUMMY_ACCESS_KEY_ID, DUMMY_SECRET_ACCESS_KEY),
    ("lambda-testkit", "lambda-testkit"),
];

/// `AuthType`: who may call the URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
#[non_exhaustive]
pub enum AuthType {
    /// `NONE`: anyone (the default).
    #[default]
    None,
    /// `AWS_IAM`: only requests signed with SigV4.
    AwsIam,
}

impl AuthType {
    /// The API's name: `NONE` or `AWS_IAM`.
    pub fn as_str(&self) -> &'static str {
        match self {
            AuthType::None => "NONE",
            AuthType::AwsIam => "AWS_IAM",
        }
    }

    /// Parses the API's name.
    pub fn parse(value: &str) -> Option<AuthType> {
        match value {
            "NONE" => Some(AuthType::None),
            "AWS_IAM" => Some(AuthType::AwsIam),
            _ => None,
        }
    }
}

/// `InvokeMode`: whether the response is buffered or streamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
#[non_exhaustive]
pub enum InvokeMode {
    /// `BUFFERED` (the default): the function's whole result is mapped to the response.
    #[default]
    Buffered,
    /// `RESPONSE_STREAM`: the body is streamed as the handler flushes it.
    ResponseStream,
}

impl InvokeMode {
    /// The API's name: `BUFFERED` or `RESPONSE_STREAM`.
    pub fn as_str(&self) -> &'static str {
        match self {
            InvokeMode::Buffered => "BUFFERED",
            InvokeMode::ResponseStream => "RESPONSE_STREAM",
        }
    }

    /// Parses the API's name.
    pub fn parse(value: &str) -> Option<InvokeMode> {
        match value {
            "BUFFERED" => Some(InvokeMode::Buffered),
            "RESPONSE_STREAM" => Some(InvokeMode::ResponseStream),
            _ => None,
        }
    }
}

/// `Cors`: the cross-origin resource sharing settings of a URL. Empty lists are "not set".
///
/// ```
/// use lambda_testkit::urls::Cors;
/// let cors = Cors::new()
///     .allow_origins(["https://app.example.com"])
///     .allow_methods(["GET", "POST"])
///     .allow_headers(["content-type"])
///     .max_age(300);
/// assert_eq!(cors.allow_methods, ["GET", "POST"]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Cors {
    /// `AllowCredentials` (`Access-Control-Allow-Credentials`).
    pub allow_credentials: Option<bool>,
    /// `AllowHeaders` (`Access-Control-Allow-Headers`, on preflight answers).
    pub allow_headers: Vec<String>,
    /// `AllowMethods` (`Access-Control-Allow-Methods`, on preflight answers; `*` allows all).
    pub allow_methods: Vec<String>,
    /// `AllowOrigins` (`Access-Control-Allow-Origin`; `*` allows all).
    pub allow_origins: Vec<String>,
    /// `ExposeHeaders` (`Access-Control-Expose-Headers`).
    pub expose_headers: Vec<String>,
    /// `MaxAge` in seconds, 0–86400 (`Access-Control-Max-Age`, on preflight answers).
    pub max_age: Option<u32>,
}

fn strings<I: IntoIterator<Item = S>, S: Into<String>>(items: I) -> Vec<String> {
    items.into_iter().map(Into::into).collect()
}

impl Cors {
    /// No CORS header allowed yet.
    pub fn new() -> Cors {
        Cors::default()
    }

    /// `AllowCredentials`.
    pub fn allow_credentials(mut self, allow: bool) -> Self {
        self.allow_credentials = Some(allow);
        self
    }

    /// `AllowHeaders`.
    pub fn allow_headers<I: IntoIterator<Item = S>, S: Into<String>>(mut self, headers: I) -> Self {
        self.allow_headers = strings(headers);
        self
    }

    /// `AllowMethods` (at most 6; `*` for all).
    pub fn allow_methods<I: IntoIterator<Item = S>, S: Into<String>>(mut self, methods: I) -> Self {
        self.allow_methods = strings(methods);
        self
    }

    /// `AllowOrigins` (`*` for all).
    pub fn allow_origins<I: IntoIterator<Item = S>, S: Into<String>>(mut self, origins: I) -> Self {
        self.allow_origins = strings(origins);
        self
    }

    /// `ExposeHeaders`.
    pub fn expose_headers<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        headers: I,
    ) -> Self {
        self.expose_headers = strings(headers);
        self
    }

    /// `MaxAge` in seconds (0–86400).
    pub fn max_age(mut self, seconds: u32) -> Self {
        self.max_age = Some(seconds);
        self
    }

    /// The model's limits (lambda-service-2015-03-31 `Cors`), worded as Lambda's
    /// validation errors.
    pub(crate) fn validate(&self) -> Result<(), UrlError> {
        let lists = [
            ("cors.allowHeaders", &self.allow_headers, 100, 0, 1024),
            ("cors.allowMethods", &self.allow_methods, 6, 0, 6),
            ("cors.allowOrigins", &self.allow_origins, 100, 1, 253),
            ("cors.exposeHeaders", &self.expose_headers, 100, 0, 1024),
        ];
        for (member, list, max_items, min_len, max_len) in lists {
            if list.len() > max_items {
                return Err(UrlError::validation(format!(
                    "Value '{list:?}' at '{member}' failed to satisfy constraint: Member must have length less than or equal to {max_items}"
                )));
            }
            if let Some(item) = list.iter().find(|i| i.len() < min_len || i.len() > max_len) {
                return Err(UrlError::validation(format!(
                    "Value '{item}' at '{member}' failed to satisfy constraint: Member must have length between {min_len} and {max_len}"
                )));
            }
        }
        if let Some(age) = self.max_age.filter(|a| *a > MAX_CORS_MAX_AGE) {
            return Err(UrlError::validation(format!(
                "Value '{age}' at 'cors.maxAge' failed to satisfy constraint: Member must have value less than or equal to {MAX_CORS_MAX_AGE}"
            )));
        }
        Ok(())
    }
}

/// Largest `Cors.MaxAge`: one day.
const MAX_CORS_MAX_AGE: u32 = 86_400;

/// What to create (or replace) a function URL with: auth type, CORS, invoke mode, and
/// the alias it serves (none: the unqualified function, `$LATEST`).
///
/// ```
/// use lambda_testkit::urls::{AuthType, FunctionUrlConfig, InvokeMode};
/// let config = FunctionUrlConfig::new()
///     .auth(AuthType::AwsIam)
///     .invoke_mode(InvokeMode::ResponseStream);
/// assert_eq!(config.auth_type(), AuthType::AwsIam);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FunctionUrlConfig {
    pub(crate) auth: AuthType,
    pub(crate) cors: Option<Cors>,
    pub(crate) invoke_mode: InvokeMode,
    pub(crate) qualifier: Option<String>,
}

impl FunctionUrlConfig {
    /// `AuthType: NONE`, no CORS, `BUFFERED`, for the unqualified function.
    pub fn new() -> FunctionUrlConfig {
        FunctionUrlConfig::default()
    }

    /// `AuthType`.
    pub fn auth(mut self, auth: AuthType) -> Self {
        self.auth = auth;
        self
    }

    /// `Cors`.
    pub fn cors(mut self, cors: Cors) -> Self {
        self.cors = Some(cors);
        self
    }

    /// `InvokeMode`.
    pub fn invoke_mode(mut self, mode: InvokeMode) -> Self {
        self.invoke_mode = mode;
        self
    }

    /// `Qualifier`: the alias the URL invokes. Lambda refuses URLs for version numbers
    /// and `$LATEST` (the unqualified URL is `$LATEST`'s).
    pub fn qualifier(mut self, alias: impl Into<String>) -> Self {
        self.qualifier = Some(alias.into());
        self
    }

    /// The auth type set.
    pub fn auth_type(&self) -> AuthType {
        self.auth
    }
}

/// A function URL as `GetFunctionUrlConfig` reports it, plus where it is served.
///
/// `function_url` is what the REST API returns as `FunctionUrl`: the loopback address
/// `http://127.0.0.1:<port>/` the emulator serves the URL on, not Lambda's
/// `https://<url-id>.lambda-url.<region>.on.aws/`. A test's HTTP client (and boto3 or SDK
/// code that reads `FunctionUrl` and calls it) must be able to reach what the API
/// returns, and neither that name nor `<url-id>.lambda-url.<region>.localhost` resolves
/// to loopback everywhere (glibc's `files dns` lookup, as on this project's CI, does not
/// map `*.localhost`). Lambda's shape is kept where handlers see it:
/// `requestContext.domainName` is [`FunctionUrl::domain_name`] and `apiId` /
/// `domainPrefix` are [`FunctionUrl::url_id`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FunctionUrl {
    /// `FunctionUrl`: `http://127.0.0.1:<port>/`.
    pub function_url: String,
    /// `FunctionArn`: the function's ARN, with `:<alias>` for an alias's URL.
    pub function_arn: String,
    /// The function's name.
    pub function_name: String,
    /// The alias the URL invokes (`None`: the unqualified function).
    pub qualifier: Option<String>,
    /// The URL's id (32 lowercase letters and digits), as in Lambda's host name.
    pub url_id: String,
    /// `<url-id>.lambda-url.<region>.on.aws`, the host name Lambda would give the URL.
    pub domain_name: String,
    /// `AuthType`.
    pub auth_type: AuthType,
    /// `Cors`.
    pub cors: Option<Cors>,
    /// `InvokeMode`.
    pub invoke_mode: InvokeMode,
    /// `CreationTime`, ISO-8601 (`2024-05-01T12:00:00.123456Z`).
    pub creation_time: String,
    /// `LastModifiedTime`, ISO-8601.
    pub last_modified_time: String,
}

impl FunctionUrl {
    /// The base URL to send requests to, `http://127.0.0.1:<port>/` (ends with `/`).
    pub fn url(&self) -> &str {
        &self.function_url
    }
}

/// Why a function URL operation failed, with what Lambda would have answered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    /// The function (or the alias) does not exist (`ResourceNotFoundException`).
    #[error("Function not found: {0}")]
    FunctionNotFound(String),
    /// The function has no URL for this qualifier (`ResourceNotFoundException`).
    #[error("The resource you requested does not exist. (no function URL for {0})")]
    NotFound(String),
    /// The function already has a URL for this qualifier (`ResourceConflictException`).
    #[error(
        "Failed to create function url config for [functionArn = {0}]. Error message:  FunctionUrlConfig exists for this Lambda function"
    )]
    Exists(String),
    /// A parameter breaks the API model's constraints (`ValidationException`).
    #[error("1 validation error detected: {0}")]
    Validation(String),
    /// A parameter is not valid for this function (`InvalidParameterValueException`).
    #[error("{0}")]
    InvalidParameter(String),
    /// The URL's listener could not be bound on 127.0.0.1.
    #[error("could not bind the function URL listener on 127.0.0.1: {0}")]
    Listener(#[source] std::io::Error),
    /// The emulator was shut down.
    #[error("the emulator has been shut down")]
    ShutDown,
}

impl UrlError {
    pub(crate) fn validation(message: impl Into<String>) -> UrlError {
        UrlError::Validation(message.into())
    }
}

/// Checks a URL qualifier against the model's `FunctionUrlQualifier`
/// (`((?!^\d+$)^[0-9a-zA-Z-_]+$)`, 1–128 characters): an alias name, never a version
/// number or `$LATEST`.
pub(crate) fn validate_qualifier(qualifier: &str) -> Result<(), UrlError> {
    let valid = (1..=128).contains(&qualifier.len())
        && qualifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !qualifier.bytes().all(|b| b.is_ascii_digit());
    if valid {
        Ok(())
    } else {
        Err(UrlError::validation(format!(
            "Value '{qualifier}' at 'qualifier' failed to satisfy constraint: Member must satisfy regular expression pattern: ((?!^\\d+$)^[0-9a-zA-Z-_]+$)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_alias_names_qualify_a_url() {
        assert!(validate_qualifier("live").is_ok());
        assert!(validate_qualifier("blue_green-2").is_ok());
        for refused in ["1", "42", "$LATEST", "", "a:b"] {
            assert!(
                matches!(validate_qualifier(refused), Err(UrlError::Validation(_))),
                "{refused}"
            );
        }
    }

    #[test]
    fn cors_limits_are_the_models() {
        assert!(Cors::new().allow_origins(["*"]).validate().is_ok());
        assert!(Cors::new().max_age(86_401).validate().is_err());
        assert!(
            Cors::new()
                .allow_methods(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
                .validate()
                .is_err()
        );
        assert!(Cors::new().allow_origins([""]).validate().is_err());
    }

    #[test]
    fn enums_round_trip_through_their_api_names() {
        for a in [AuthType::None, AuthType::AwsIam] {
            assert_eq!(AuthType::parse(a.as_str()), Some(a));
        }
        for m in [InvokeMode::Buffered, InvokeMode::ResponseStream] {
            assert_eq!(InvokeMode::parse(m.as_str()), Some(m));
        }
        assert_eq!(AuthType::parse("none"), None);
    }
}
