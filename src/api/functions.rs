//! Function operations: CreateFunction, GetFunction, GetFunctionConfiguration,
//! ListFunctions, DeleteFunction, UpdateFunctionCode, UpdateFunctionConfiguration, and
//! Put / Get / DeleteFunctionConcurrency.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use base64::Engine;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;

use super::{
    Api, ApiError, QualifierQuery, function_name, json, json_body, qualified_function, shapes,
};
use crate::deploy::{
    DeployError, DurableConfig, Function, FunctionConfig, ImageConfig, LayerVersion, Runtime,
};
use crate::package::DeploymentPackage;
use crate::service::Core;

pub(super) fn routes() -> Router<Api> {
    Router::new()
        .route(
            "/2015-03-31/functions",
            get(list_functions).post(create_function),
        )
        .route(
            "/2015-03-31/functions/",
            get(list_functions).post(create_function),
        )
        .route(
            "/2015-03-31/functions/{name}",
            get(get_function).delete(delete_function),
        )
        .route(
            "/2015-03-31/functions/{name}/configuration",
            get(get_configuration).put(update_configuration),
        )
        .route("/2015-03-31/functions/{name}/code", put(update_code))
        .route(
            "/2017-10-31/functions/{name}/concurrency",
            put(put_concurrency).delete(delete_concurrency),
        )
        .route(
            "/2019-09-30/functions/{name}/concurrency",
            get(get_concurrency),
        )
        .route("/lambda-testkit/code/{name}", get(download_code))
}

/// `FunctionCode` / the code members of `UpdateFunctionCodeRequest`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct CodeIn {
    zip_file: Option<String>,
    s3_bucket: Option<String>,
    s3_key: Option<String>,
    image_uri: Option<String>,
}

/// A function's code as given: a zip, or a container image.
enum Source {
    Zip(DeploymentPackage),
    Image(String),
}

impl CodeIn {
    /// The code for `package_type` (`Zip` when not given): inline `ZipFile`, or
    /// `ImageUri` (whether the backend runs images is checked at deploy).
    fn source(&self, package_type: Option<&str>) -> Result<Source, ApiError> {
        match (package_type, &self.image_uri) {
            (Some("Image"), Some(uri)) | (None, Some(uri)) => Ok(Source::Image(uri.clone())),
            (Some("Image"), None) => Err(ApiError::invalid_parameter(
                "Please provide a source for function code (ImageUri) for PackageType Image.",
            )),
            (Some("Zip"), Some(_)) => Err(ApiError::invalid_parameter(
                "ImageUri is only for PackageType Image: pass a .zip archive as ZipFile.",
            )),
            (Some(other), _) if other != "Zip" => Err(ApiError::invalid_parameter(format!(
                "Value {other} at 'packageType' failed to satisfy constraint: Member must satisfy enum value set: [Zip, Image]"
            ))),
            _ => self.package().map(Source::Zip),
        }
    }

    /// The zip: only inline `ZipFile` code exists here.
    fn package(&self) -> Result<DeploymentPackage, ApiError> {
        if self.s3_bucket.is_some() || self.s3_key.is_some() {
            return Err(ApiError::invalid_parameter(
                "Code from S3 (S3Bucket/S3Key) is not emulated: pass the .zip archive inline as ZipFile.",
            ));
        }
        let encoded = self.zip_file.as_deref().ok_or_else(|| {
            ApiError::invalid_parameter("Please provide a source for function code (ZipFile).")
        })?;
        let zip = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|e| {
                ApiError::invalid_parameter(format!("ZipFile is not valid base64: {e}"))
            })?;
        Ok(DeploymentPackage::from_zip(zip).map_err(DeployError::from)?)
    }
}

/// `ImageConfig`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ImageConfigIn {
    entry_point: Option<Vec<String>>,
    command: Option<Vec<String>>,
    working_directory: Option<String>,
}

impl From<ImageConfigIn> for ImageConfig {
    fn from(c: ImageConfigIn) -> ImageConfig {
        ImageConfig {
            entry_point: c.entry_point,
            command: c.command,
            working_directory: c.working_directory,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct EnvironmentIn {
    variables: BTreeMap<String, String>,
}

/// The configurable members shared by `CreateFunctionRequest` and
/// `UpdateFunctionConfigurationRequest`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct SettingsIn {
    runtime: Option<String>,
    role: Option<String>,
    handler: Option<String>,
    description: Option<String>,
    timeout: Option<u64>,
    memory_size: Option<u32>,
    environment: Option<EnvironmentIn>,
    layers: Option<Vec<String>>,
    image_config: Option<ImageConfigIn>,
    durable_config: Option<DurableConfigIn>,
}

/// `DurableConfig` (`KMSKeyArn` is accepted and not used: nothing is encrypted here).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct DurableConfigIn {
    execution_timeout: Option<u64>,
    retention_period_in_days: Option<u32>,
}

impl DurableConfigIn {
    /// The settings this gives over `current` (an update changes only what it names).
    fn resolve(&self, current: Option<DurableConfig>) -> Result<DurableConfig, ApiError> {
        let timeout = self
            .execution_timeout
            .map(Duration::from_secs)
            .or(current.map(|c| c.execution_timeout()))
            .ok_or_else(|| {
                ApiError::invalid_parameter("DurableConfig.ExecutionTimeout is required.")
            })?;
        let days = self
            .retention_period_in_days
            .or(current.map(|c| c.retention_period_days()))
            .unwrap_or(crate::deploy::DEFAULT_RETENTION_DAYS);
        Ok(DurableConfig::new(timeout).retention_days(days))
    }
}

impl SettingsIn {
    fn runtime(&self) -> Result<Option<Runtime>, ApiError> {
        Ok(self.runtime.as_deref().map(str::parse).transpose()?)
    }

    /// Resolves the layer ARNs now (the update itself is synchronous); versions the
    /// function already has stay valid even if deleted since.
    fn layers(
        &self,
        core: &Core,
        current: Option<&FunctionConfig>,
    ) -> Result<Option<Vec<LayerVersion>>, ApiError> {
        let Some(arns) = &self.layers else {
            return Ok(None);
        };
        let mut versions = Vec::with_capacity(arns.len());
        for arn in arns {
            let version = core
                .registry
                .layer_by_arn(arn)
                .map(|l| LayerVersion::clone(&l))
                .or_else(|| {
                    current?
                        .layers
                        .iter()
                        .find(|l| &l.layer_version_arn == arn)
                        .cloned()
                })
                .ok_or_else(|| DeployError::LayerNotFound(arn.clone()))?;
            versions.push(version);
        }
        Ok(Some(versions))
    }

    /// Applies every member that was given.
    fn apply(
        self,
        mut f: Function,
        runtime: Option<Runtime>,
        layers: Option<Vec<LayerVersion>>,
        durable: Option<DurableConfig>,
    ) -> Function {
        if let Some(runtime) = runtime {
            f.runtime = Some(runtime);
        }
        if let Some(handler) = self.handler {
            f = f.handler(handler);
        }
        if let Some(role) = self.role {
            f = f.role(role);
        }
        if let Some(description) = self.description {
            f = f.description(description);
        }
        if let Some(seconds) = self.timeout {
            f = f.timeout(Duration::from_secs(seconds));
        }
        if let Some(memory) = self.memory_size {
            f = f.memory_mb(memory);
        }
        if let Some(environment) = self.environment {
            f = f.clear_env();
            for (key, value) in environment.variables {
                f = f.env(key, value);
            }
        }
        if let Some(layers) = layers {
            f = f.clear_layers();
            for layer in layers {
                f = f.layer(layer);
            }
        }
        if let Some(image_config) = self.image_config {
            f = f.image_config(image_config.into());
        }
        if let Some(durable) = durable {
            f = f.durable(durable);
        }
        f
    }

    /// The `DurableConfig` to deploy: on create anything valid; on an update only for a
    /// function that is durable already (Lambda enables durability only at creation).
    fn durable(&self, current: Option<&FunctionConfig>) -> Result<Option<DurableConfig>, ApiError> {
        let Some(given) = &self.durable_config else {
            return Ok(None);
        };
        match current {
            Some(c) if c.durable.is_none() => Err(DeployError::NotDurable(c.name.clone()).into()),
            _ => given.resolve(current.and_then(|c| c.durable)).map(Some),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct CreateFunctionIn {
    function_name: String,
    code: CodeIn,
    package_type: Option<String>,
    #[serde(flatten)]
    settings: SettingsIn,
}

async fn create_function(State(api): State<Api>, body: Bytes) -> Result<Response, ApiError> {
    let core = api.core()?;
    let request: CreateFunctionIn = json_body(&body)?;
    // `Role` is required by the model; AWS answers its absence before anything else.
    if request.settings.role.as_deref().is_none_or(str::is_empty) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "1 validation error detected: Value null at 'role' failed to satisfy constraint: Member must not be null",
        ));
    }
    let source = request.code.source(request.package_type.as_deref())?;
    let layers = request.settings.layers(&core, None)?;
    let durable = request.settings.durable(None)?;
    let (name, _) = crate::deploy::arn::split_function_name(&request.function_name);
    let function = match source {
        // The image brings its runtime; a Runtime given anyway is not used.
        Source::Image(uri) => Function::image(name, uri),
        Source::Zip(package) => {
            let runtime = request.settings.runtime()?.ok_or_else(|| {
                ApiError::invalid_parameter(
                    "Runtime and Handler are mandatory parameters for functions created with .zip archives.",
                )
            })?;
            Function::new(name, runtime).package(package)
        }
    };
    let config = core
        .create(request.settings.apply(function, None, layers, durable))
        .await?;
    Ok(json(
        StatusCode::CREATED,
        shapes::function_configuration(&config),
    ))
}

fn config_of(core: &Core, name: &str) -> Result<FunctionConfig, ApiError> {
    core.config(name)
        .ok_or_else(|| DeployError::FunctionNotFound(name.to_string()).into())
}

async fn get_function(
    State(api): State<Api>,
    Path(label): Path<String>,
    Query(query): Query<QualifierQuery>,
) -> Result<Response, ApiError> {
    let core = api.core()?;
    let (name, qualifier) = qualified_function(&core, &label, query.qualifier.as_deref())?;
    let config = core.config_of(&name, qualifier.as_deref())?;
    let location = format!("{}/lambda-testkit/code/{name}", api.url);
    Ok(json(
        StatusCode::OK,
        shapes::get_function(&config, location),
    ))
}

async fn get_configuration(
    State(api): State<Api>,
    Path(label): Path<String>,
    Query(query): Query<QualifierQuery>,
) -> Result<Response, ApiError> {
    let core = api.core()?;
    let (name, qualifier) = qualified_function(&core, &label, query.qualifier.as_deref())?;
    Ok(json(
        StatusCode::OK,
        shapes::function_configuration(&core.config_of(&name, qualifier.as_deref())?),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ListQuery {
    #[serde(rename = "Marker")]
    marker: Option<String>,
    #[serde(rename = "MaxItems")]
    max_items: Option<usize>,
}

/// Pages by name: the marker is the last name of the previous page.
async fn list_functions(
    State(api): State<Api>,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let core = api.core()?;
    let max = query.max_items.unwrap_or(50).clamp(1, 10_000);
    let configs: Vec<_> = core
        .configs()
        .into_iter()
        .filter(|c| {
            query
                .marker
                .as_ref()
                .is_none_or(|m| c.name.as_str() > m.as_str())
        })
        .collect();
    let more = configs.len() > max;
    let page = &configs[..configs.len().min(max)];
    let mut body =
        json!({ "Functions": page.iter().map(shapes::function_configuration).collect::<Vec<_>>() });
    if more {
        body["NextMarker"] = page.last().map(|c| c.name.clone()).into();
    }
    Ok(json(StatusCode::OK, body))
}

async fn delete_function(
    State(api): State<Api>,
    Path(label): Path<String>,
    Query(query): Query<QualifierQuery>,
) -> Result<Response, ApiError> {
    let core = api.core()?;
    let (name, qualifier) = qualified_function(&core, &label, query.qualifier.as_deref())?;
    match qualifier.as_deref() {
        None => core.delete_function(&name)?,
        Some(crate::deploy::LATEST) => {
            return Err(ApiError::invalid_parameter(
                "$LATEST version cannot be deleted without deleting the function.",
            ));
        }
        Some(version) => core.delete_version(&name, version)?,
    }
    // The model's code since 2025-11 (it was 204 before; clients accept both).
    Ok(StatusCode::OK.into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct UpdateCodeIn {
    #[serde(flatten)]
    code: CodeIn,
    revision_id: Option<String>,
    dry_run: bool,
}

async fn update_code(
    State(api): State<Api>,
    Path(label): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let core = api.core()?;
    let name = function_name(&core, &label, None)?;
    let request: UpdateCodeIn = json_body(&body)?;
    let current = config_of(&core, &name)?;
    let package_type = current.package_type.as_str();
    // Lambda keeps a function's package type: new code must be of the same kind.
    let source = match (&request.code.image_uri, &request.code.zip_file) {
        (Some(_), _) if package_type == "Zip" => {
            return Err(ApiError::invalid_parameter(
                "Please provide ZipFile: this function's PackageType is Zip, and ImageUri is only for PackageType Image.",
            ));
        }
        (None, Some(_)) if package_type == "Image" => {
            return Err(ApiError::invalid_parameter(
                "Please provide ImageUri: this function's PackageType is Image, and ZipFile is only for PackageType Zip.",
            ));
        }
        _ => request.code.source(Some(package_type))?,
    };
    if request.dry_run {
        return Ok(json(
            StatusCode::OK,
            shapes::function_configuration(&current),
        ));
    }
    let config = core
        .update(
            &name,
            request.revision_id.as_deref(),
            move |f| match source {
                Source::Zip(package) => f.package(package),
                Source::Image(uri) => f.with_image_uri(uri),
            },
        )
        .await?;
    Ok(json(
        StatusCode::OK,
        shapes::function_configuration(&config),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct UpdateConfigurationIn {
    #[serde(flatten)]
    settings: SettingsIn,
    revision_id: Option<String>,
}

async fn update_configuration(
    State(api): State<Api>,
    Path(label): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let core = api.core()?;
    let name = function_name(&core, &label, None)?;
    let request: UpdateConfigurationIn = json_body(&body)?;
    let current = config_of(&core, &name)?;
    let runtime = request.settings.runtime()?;
    let layers = request.settings.layers(&core, Some(&current))?;
    let durable = request.settings.durable(Some(&current))?;
    let settings = request.settings;
    let config = core
        .update(&name, request.revision_id.as_deref(), move |f| {
            settings.apply(f, runtime, layers, durable)
        })
        .await?;
    Ok(json(
        StatusCode::OK,
        shapes::function_configuration(&config),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ConcurrencyIn {
    reserved_concurrent_executions: Option<u32>,
}

async fn put_concurrency(
    State(api): State<Api>,
    Path(label): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let core = api.core()?;
    let name = function_name(&core, &label, None)?;
    let request: ConcurrencyIn = json_body(&body)?;
    let limit = request
        .reserved_concurrent_executions
        .ok_or_else(|| ApiError::invalid_parameter("ReservedConcurrentExecutions is required."))?;
    let config = core
        .update(&name, None, move |f| f.reserved_concurrency(limit))
        .await?;
    Ok(json(
        StatusCode::OK,
        shapes::concurrency(config.reserved_concurrency),
    ))
}

async fn get_concurrency(
    State(api): State<Api>,
    Path(label): Path<String>,
) -> Result<Response, ApiError> {
    let core = api.core()?;
    let name = function_name(&core, &label, None)?;
    Ok(json(
        StatusCode::OK,
        shapes::concurrency(config_of(&core, &name)?.reserved_concurrency),
    ))
}

async fn delete_concurrency(
    State(api): State<Api>,
    Path(label): Path<String>,
) -> Result<Response, ApiError> {
    let core = api.core()?;
    let name = function_name(&core, &label, None)?;
    core.update(&name, None, Function::no_reserved_concurrency)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GetFunction`'s `Code.Location`: the deployed zip, byte for byte (empty for an image
/// function, whose `Code` names its image instead).
async fn download_code(
    State(api): State<Api>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let core = api.core()?;
    let entry = core
        .function(&name)
        .ok_or_else(|| DeployError::FunctionNotFound(name.clone()))?;
    let zip = entry.deployment().code.zip_bytes().clone();
    Ok(([("content-type", "application/zip")], zip).into_response())
}
