//! Layer operations: PublishLayerVersion, GetLayerVersion, GetLayerVersionByArn,
//! ListLayerVersions, ListLayers, DeleteLayerVersion.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;

use super::{Api, ApiError, json, json_body, shapes};
use crate::deploy::{DeployError, Layer, Runtime, arn};
use crate::package::DeploymentPackage;

pub(super) fn routes() -> Router<Api> {
    Router::new()
        .route("/2018-10-31/layers", get(list_layers_or_find))
        .route(
            "/2018-10-31/layers/{layer}/versions",
            get(list_versions).post(publish),
        )
        .route(
            "/2018-10-31/layers/{layer}/versions/{version}",
            get(get_version).delete(delete_version),
        )
        .route("/lambda-testkit/layers/{layer}/{version}", get(download))
}

/// A `{LayerName}` label: a name or a layer ARN (`arn:aws:lambda:<r>:<a>:layer:<name>`).
fn layer_name(label: &str) -> &str {
    label.rsplit_once(":layer:").map_or(label, |(_, name)| name)
}

fn version_number(label: &str) -> Result<u64, ApiError> {
    label
        .parse()
        .map_err(|_| ApiError::invalid_parameter(format!("Invalid layer version number: {label}")))
}

fn location(api: &Api, name: &str, version: u64) -> String {
    format!("{}/lambda-testkit/layers/{name}/{version}", api.url)
}

fn not_found() -> ApiError {
    ApiError::not_found("The resource you requested does not exist.")
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ContentIn {
    zip_file: Option<String>,
    s3_bucket: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct PublishIn {
    content: ContentIn,
    description: Option<String>,
    compatible_runtimes: Vec<String>,
}

async fn publish(
    State(api): State<Api>,
    Path(label): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let core = api.core()?;
    let request: PublishIn = json_body(&body)?;
    if request.content.s3_bucket.is_some() {
        return Err(ApiError::invalid_parameter(
            "Layer content from S3 is not emulated: pass ZipFile inline.",
        ));
    }
    let encoded = request.content.zip_file.ok_or_else(|| {
        ApiError::invalid_parameter("Please provide a source for layer content (ZipFile).")
    })?;
    let zip = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|e| ApiError::invalid_parameter(format!("ZipFile is not valid base64: {e}")))?;
    let name = layer_name(&label);
    let mut layer =
        Layer::new(name).package(DeploymentPackage::from_zip(zip).map_err(DeployError::from)?);
    if let Some(description) = request.description {
        layer = layer.description(description);
    }
    // Informational in Lambda; runtimes this crate does not run are not recorded.
    for runtime in request
        .compatible_runtimes
        .iter()
        .filter_map(|r| r.parse::<Runtime>().ok())
    {
        layer = layer.compatible_runtime(runtime);
    }
    let version = core.publish_layer(layer).await?;
    let location = location(&api, &version.layer_name, version.version);
    Ok(json(
        StatusCode::CREATED,
        shapes::layer_version(&version, location),
    ))
}

async fn get_version(
    State(api): State<Api>,
    Path((label, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let core = api.core()?;
    let name = layer_name(&label);
    let published = core
        .registry
        .layer(name, version_number(&version)?)
        .ok_or_else(not_found)?;
    let location = location(&api, name, published.version);
    Ok(json(
        StatusCode::OK,
        shapes::layer_version(&published, location),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LayersQuery {
    find: Option<String>,
    #[serde(rename = "Arn")]
    arn: Option<String>,
    #[serde(rename = "CompatibleRuntime")]
    compatible_runtime: Option<String>,
    #[serde(rename = "Marker")]
    marker: Option<String>,
    #[serde(rename = "MaxItems")]
    max_items: Option<usize>,
}

/// `GET /2018-10-31/layers`: GetLayerVersionByArn with `?find=LayerVersion&Arn=…`,
/// ListLayers otherwise.
async fn list_layers_or_find(
    State(api): State<Api>,
    Query(query): Query<LayersQuery>,
) -> Result<Response, ApiError> {
    let core = api.core()?;
    if query.find.as_deref() == Some("LayerVersion") {
        let arn = query
            .arn
            .ok_or_else(|| ApiError::invalid_parameter("Arn is required."))?;
        let (name, version) = arn::parse_layer_version(&arn).ok_or_else(|| {
            ApiError::invalid_parameter(format!("Invalid layer version ARN: {arn}"))
        })?;
        let published = core.registry.layer(name, version).ok_or_else(not_found)?;
        return Ok(json(
            StatusCode::OK,
            shapes::layer_version(&published, location(&api, name, version)),
        ));
    }
    let layers: Vec<_> = core
        .registry
        .latest_layers()
        .iter()
        .filter(|l| compatible(&l.compatible_runtimes, query.compatible_runtime.as_deref()))
        .map(|l| {
            json!({
                "LayerName": l.layer_name,
                "LayerArn": l.layer_arn,
                "LatestMatchingVersion": shapes::layer_versions_list_item(l),
            })
        })
        .collect();
    Ok(json(StatusCode::OK, json!({ "Layers": layers })))
}

fn compatible(runtimes: &[Runtime], wanted: Option<&str>) -> bool {
    wanted.is_none_or(|w| runtimes.iter().any(|r| r.as_str() == w))
}

/// Newest first; the marker is the last version number of the previous page.
async fn list_versions(
    State(api): State<Api>,
    Path(label): Path<String>,
    Query(query): Query<LayersQuery>,
) -> Result<Response, ApiError> {
    let core = api.core()?;
    let after: Option<u64> = query.marker.as_deref().and_then(|m| m.parse().ok());
    let max = query.max_items.unwrap_or(50).clamp(1, 50);
    let versions: Vec<_> = core
        .registry
        .layer_versions(layer_name(&label))
        .into_iter()
        .filter(|v| after.is_none_or(|a| v.version < a))
        .filter(|v| compatible(&v.compatible_runtimes, query.compatible_runtime.as_deref()))
        .collect();
    let page = &versions[..versions.len().min(max)];
    let mut body = json!({ "LayerVersions": page.iter().map(shapes::layer_versions_list_item).collect::<Vec<_>>() });
    if versions.len() > max {
        body["NextMarker"] = page.last().map(|v| v.version.to_string()).into();
    }
    Ok(json(StatusCode::OK, body))
}

/// Idempotent, as in Lambda: deleting a missing version is not an error.
async fn delete_version(
    State(api): State<Api>,
    Path((label, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let core = api.core()?;
    core.registry
        .delete_layer_version(layer_name(&label), version_number(&version)?);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `Content.Location`: the layer zip, byte for byte.
async fn download(
    State(api): State<Api>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let core = api.core()?;
    let published = core
        .registry
        .layer(&name, version_number(&version)?)
        .ok_or_else(not_found)?;
    Ok((
        [("content-type", "application/zip")],
        published.package.zip_bytes().clone(),
    )
        .into_response())
}
