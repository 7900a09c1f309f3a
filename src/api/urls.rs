//! Function URL operations: CreateFunctionUrlConfig, GetFunctionUrlConfig,
//! UpdateFunctionUrlConfig, DeleteFunctionUrlConfig and ListFunctionUrlConfigs
//! (`/2021-10-31/functions/{FunctionName}/url[s]`), over the same operations as
//! `FunctionHandle::create_url` ([`super::function_url`]).
//!
//! `FunctionUrl` in every answer is the loopback address the URL is served on
//! (`http://127.0.0.1:<port>/`), so a client can call what it got back; see
//! [`crate::urls::FunctionUrl`] for why it is not Lambda's `…lambda-url.<region>.on.aws`.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{Api, ApiError, QualifierQuery, function_url, json_body};
use crate::urls::{AuthType, Cors, FunctionUrl, FunctionUrlConfig, InvokeMode, UrlError};

/// `ListFunctionUrlConfigs` answers at most this many by default (and at most).
const MAX_LIST_ITEMS: usize = 50;

pub(super) fn routes() -> Router<Api> {
    Router::new()
        .route(
            "/2021-10-31/functions/{name}/url",
            get(get_url)
                .post(create_url)
                .put(update_url)
                .delete(delete_url),
        )
        .route("/2021-10-31/functions/{name}/urls", get(list_urls))
}

impl From<UrlError> for ApiError {
    fn from(error: UrlError) -> ApiError {
        let message = error.to_string();
        match error {
            UrlError::FunctionNotFound(_) => ApiError::not_found(message),
            UrlError::NotFound(_) => {
                ApiError::not_found("The resource you requested does not exist.")
            }
            UrlError::Exists(_) => {
                ApiError::new(StatusCode::CONFLICT, "ResourceConflictException", message)
            }
            UrlError::Validation(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "ValidationException", message)
            }
            UrlError::InvalidParameter(_) => ApiError::invalid_parameter(message),
            UrlError::Listener(_) | UrlError::ShutDown => ApiError::service(message),
        }
    }
}

/// The `Cors` shape, in and out.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct CorsShape {
    allow_credentials: Option<bool>,
    allow_headers: Option<Vec<String>>,
    allow_methods: Option<Vec<String>>,
    allow_origins: Option<Vec<String>>,
    expose_headers: Option<Vec<String>>,
    max_age: Option<u32>,
}

impl CorsShape {
    fn into_cors(self) -> Cors {
        let mut cors = Cors::new();
        cors.allow_credentials = self.allow_credentials;
        cors.allow_headers = self.allow_headers.unwrap_or_default();
        cors.allow_methods = self.allow_methods.unwrap_or_default();
        cors.allow_origins = self.allow_origins.unwrap_or_default();
        cors.expose_headers = self.expose_headers.unwrap_or_default();
        cors.max_age = self.max_age;
        cors
    }
}

/// The body of `CreateFunctionUrlConfig` / `UpdateFunctionUrlConfig`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct UrlConfigIn {
    auth_type: Option<String>,
    cors: Option<CorsShape>,
    invoke_mode: Option<String>,
}

impl UrlConfigIn {
    fn auth_type(&self) -> Result<Option<AuthType>, UrlError> {
        self.auth_type
            .as_deref()
            .map(|a| {
                AuthType::parse(a).ok_or_else(|| {
                    UrlError::validation(format!(
                        "Value '{a}' at 'authType' failed to satisfy constraint: Member must satisfy enum value set: [NONE, AWS_IAM]"
                    ))
                })
            })
            .transpose()
    }

    fn invoke_mode(&self) -> Result<Option<InvokeMode>, UrlError> {
        self.invoke_mode
            .as_deref()
            .map(|m| {
                InvokeMode::parse(m).ok_or_else(|| {
                    UrlError::validation(format!(
                        "Value '{m}' at 'invokeMode' failed to satisfy constraint: Member must satisfy enum value set: [BUFFERED, RESPONSE_STREAM]"
                    ))
                })
            })
            .transpose()
    }
}

fn cors_shape(cors: &Cors) -> Value {
    let mut shape = Map::new();
    if let Some(c) = cors.allow_credentials {
        shape.insert("AllowCredentials".into(), c.into());
    }
    for (key, list) in [
        ("AllowHeaders", &cors.allow_headers),
        ("AllowMethods", &cors.allow_methods),
        ("AllowOrigins", &cors.allow_origins),
        ("ExposeHeaders", &cors.expose_headers),
    ] {
        if !list.is_empty() {
            shape.insert(key.into(), json!(list));
        }
    }
    if let Some(age) = cors.max_age {
        shape.insert("MaxAge".into(), age.into());
    }
    Value::Object(shape)
}

/// `FunctionUrlConfig` (and the Create/Get/Update responses, which are its members;
/// Create's has no `LastModifiedTime`).
fn url_shape(url: &FunctionUrl, last_modified: bool) -> Value {
    let mut shape = json!({
        "FunctionUrl": url.function_url,
        "FunctionArn": url.function_arn,
        "AuthType": url.auth_type.as_str(),
        "CreationTime": url.creation_time,
        "InvokeMode": url.invoke_mode.as_str(),
    });
    if last_modified {
        shape["LastModifiedTime"] = url.last_modified_time.clone().into();
    }
    if let Some(cors) = &url.cors {
        shape["Cors"] = cors_shape(cors);
    }
    shape
}

fn json_response(status: StatusCode, value: Value) -> Response {
    (
        status,
        [("content-type", "application/json")],
        value.to_string(),
    )
        .into_response()
}

async fn create_url(
    State(api): State<Api>,
    Path(label): Path<String>,
    Query(query): Query<QualifierQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let input: UrlConfigIn = json_body(&body)?;
    let auth = input.auth_type()?.ok_or_else(|| {
        UrlError::validation(
            "Value null at 'authType' failed to satisfy constraint: Member must not be null",
        )
    })?;
    let mut config = FunctionUrlConfig::new()
        .auth(auth)
        .invoke_mode(input.invoke_mode()?.unwrap_or_default());
    if let Some(cors) = input.cors {
        config = config.cors(cors.into_cors());
    }
    if let Some(q) = query.qualifier {
        config = config.qualifier(q);
    }
    let url = function_url::create(&api.core()?, &label, config)?;
    Ok(json_response(StatusCode::CREATED, url_shape(&url, false)))
}

async fn get_url(
    State(api): State<Api>,
    Path(label): Path<String>,
    Query(query): Query<QualifierQuery>,
) -> Result<Response, ApiError> {
    let url = function_url::get(&*api.core()?, &label, query.qualifier.as_deref())?;
    Ok(json_response(StatusCode::OK, url_shape(&url, true)))
}

/// Changes only the members given.
async fn update_url(
    State(api): State<Api>,
    Path(label): Path<String>,
    Query(query): Query<QualifierQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let input: UrlConfigIn = json_body(&body)?;
    let (auth, mode) = (input.auth_type()?, input.invoke_mode()?);
    let cors = input.cors.map(CorsShape::into_cors);
    let url = function_url::update(&*api.core()?, &label, query.qualifier.as_deref(), |url| {
        if let Some(auth) = auth {
            url.auth_type = auth;
        }
        if let Some(mode) = mode {
            url.invoke_mode = mode;
        }
        if let Some(cors) = cors {
            url.cors = Some(cors);
        }
    })?;
    Ok(json_response(StatusCode::OK, url_shape(&url, true)))
}

async fn delete_url(
    State(api): State<Api>,
    Path(label): Path<String>,
    Query(query): Query<QualifierQuery>,
) -> Result<Response, ApiError> {
    function_url::delete(&*api.core()?, &label, query.qualifier.as_deref())?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    #[serde(rename = "Marker")]
    marker: Option<String>,
    #[serde(rename = "MaxItems")]
    max_items: Option<String>,
}

/// Pages of at most `MaxItems` (1–50); `NextMarker` is the position of the next page.
async fn list_urls(
    State(api): State<Api>,
    Path(label): Path<String>,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let max = match query.max_items.as_deref() {
        None => MAX_LIST_ITEMS,
        Some(m) => match m.parse::<usize>() {
            Ok(n) if (1..=MAX_LIST_ITEMS).contains(&n) => n,
            _ => {
                return Err(UrlError::validation(format!(
                    "Value '{m}' at 'maxItems' failed to satisfy constraint: Member must have value between 1 and {MAX_LIST_ITEMS}"
                ))
                .into());
            }
        },
    };
    let start = match query.marker.as_deref() {
        None | Some("") => 0,
        Some(m) => m
            .parse::<usize>()
            .map_err(|_| ApiError::invalid_parameter(format!("Invalid marker: {m}")))?,
    };
    let urls = function_url::list(&*api.core()?, &label)?;
    let page: Vec<Value> = urls
        .iter()
        .skip(start)
        .take(max)
        .map(|u| url_shape(u, true))
        .collect();
    let mut body = json!({ "FunctionUrlConfigs": page });
    if start + max < urls.len() {
        body["NextMarker"] = (start + max).to_string().into();
    }
    Ok(json_response(StatusCode::OK, body))
}
