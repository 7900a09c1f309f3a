//! Versions and aliases: `PublishVersion`, `ListVersionsByFunction`, `CreateAlias`,
//! `GetAlias`, `UpdateAlias`, `DeleteAlias`, `ListAliases`, with the model's shapes
//! (`FunctionConfiguration`, `AliasConfiguration`).

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;

use super::{Api, ApiError, function_name, json, json_body, shapes};

pub(super) fn routes() -> Router<Api> {
    Router::new()
        .route(
            "/2015-03-31/functions/{name}/versions",
            get(list_versions).post(publish_version),
        )
        .route(
            "/2015-03-31/functions/{name}/aliases",
            get(list_aliases).post(create_alias),
        )
        .route(
            "/2015-03-31/functions/{name}/aliases/{alias}",
            get(get_alias).put(update_alias).delete(delete_alias),
        )
        .route(
            "/2019-09-30/functions/{name}/provisioned-concurrency",
            get(get_provisioned)
                .put(put_provisioned)
                .delete(delete_provisioned),
        )
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ProvisionedQuery {
    #[serde(rename = "Qualifier")]
    qualifier: Option<String>,
    /// `List=ALL`: `ListProvisionedConcurrencyConfigs`.
    #[serde(rename = "List")]
    list: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ProvisionedIn {
    provisioned_concurrent_executions: u32,
}

fn required_qualifier(query: &ProvisionedQuery) -> Result<&str, ApiError> {
    query
        .qualifier
        .as_deref()
        .ok_or_else(|| ApiError::invalid_parameter("Qualifier is required"))
}

/// `PutProvisionedConcurrencyConfig`: 202, `IN_PROGRESS` while the environments initialize
/// (in the background), as Lambda answers.
async fn put_provisioned(
    State(api): State<Api>,
    Path(label): Path<String>,
    Query(query): Query<ProvisionedQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let core = api.core()?;
    let name = function_name(&core, &label, None)?;
    let qualifier = required_qualifier(&query)?.to_string();
    let input: ProvisionedIn = json_body(&body)?;
    let n = input.provisioned_concurrent_executions;
    // Refusals answer now; the allocation runs on.
    let allocation = {
        let core = core.clone();
        let (name, qualifier) = (name.clone(), qualifier.clone());
        tokio::spawn(async move { core.provision(&name, &qualifier, n).await })
    };
    tokio::task::yield_now().await;
    let config = match core.provisioned(&name, &qualifier) {
        Ok(config) => config,
        Err(_) => allocation
            .await
            .map_err(|e| ApiError::invalid_parameter(e.to_string()))??,
    };
    Ok(json(
        StatusCode::ACCEPTED,
        shapes::provisioned(None, &config),
    ))
}

async fn get_provisioned(
    State(api): State<Api>,
    Path(label): Path<String>,
    Query(query): Query<ProvisionedQuery>,
) -> Result<Response, ApiError> {
    let core = api.core()?;
    let name = function_name(&core, &label, None)?;
    if query.list.as_deref() == Some("ALL") {
        let arn = core.registry.function_arn(&name);
        let configs: Vec<_> = core
            .provisioned_all(&name)?
            .iter()
            .map(|(q, c)| shapes::provisioned(Some(&format!("{arn}:{q}")), c))
            .collect();
        return Ok(json(
            StatusCode::OK,
            json!({ "ProvisionedConcurrencyConfigs": configs }),
        ));
    }
    let config = core.provisioned(&name, required_qualifier(&query)?)?;
    Ok(json(StatusCode::OK, shapes::provisioned(None, &config)))
}

async fn delete_provisioned(
    State(api): State<Api>,
    Path(label): Path<String>,
    Query(query): Query<ProvisionedQuery>,
) -> Result<Response, ApiError> {
    let core = api.core()?;
    let name = function_name(&core, &label, None)?;
    core.unprovision(&name, required_qualifier(&query)?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct PublishIn {
    code_sha256: Option<String>,
    description: Option<String>,
    revision_id: Option<String>,
}

async fn publish_version(
    State(api): State<Api>,
    Path(label): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let core = api.core()?;
    let name = function_name(&core, &label, None)?;
    let input: PublishIn = json_body(&body)?;
    let config = core
        .publish_version(
            &name,
            input.code_sha256.as_deref(),
            input.revision_id.as_deref(),
            input.description,
        )
        .await?;
    Ok(json(
        StatusCode::CREATED,
        shapes::function_configuration(&config),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PageQuery {
    #[serde(rename = "Marker")]
    marker: Option<String>,
    #[serde(rename = "MaxItems")]
    max_items: Option<usize>,
    #[serde(rename = "FunctionVersion")]
    function_version: Option<String>,
}

/// One page of `items` (in order) after the item keyed `marker`.
fn page<T>(
    items: Vec<T>,
    query: &PageQuery,
    key: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    let max = query.max_items.unwrap_or(50).clamp(1, 10_000);
    let start = match &query.marker {
        Some(marker) => items
            .iter()
            .position(|i| &key(i) == marker)
            .map_or(0, |p| p + 1),
        None => 0,
    };
    let rest: Vec<T> = items.into_iter().skip(start).collect();
    let more = rest.len() > max;
    let page: Vec<T> = rest.into_iter().take(max).collect();
    let next = more.then(|| page.last().map(&key)).flatten();
    (page, next)
}

async fn list_versions(
    State(api): State<Api>,
    Path(label): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let core = api.core()?;
    let name = function_name(&core, &label, None)?;
    let (page, next) = page(core.versions(&name)?, &query, |c| c.version.clone());
    let mut body = json!({
        "Versions": page.iter().map(shapes::function_configuration).collect::<Vec<_>>()
    });
    if let Some(next) = next {
        body["NextMarker"] = next.into();
    }
    Ok(json(StatusCode::OK, body))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct RoutingIn {
    additional_version_weights: BTreeMap<String, f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct AliasIn {
    name: String,
    function_version: Option<String>,
    description: Option<String>,
    routing_config: Option<RoutingIn>,
    revision_id: Option<String>,
}

/// `RoutingConfig.AdditionalVersionWeights`: at most one additional version.
fn routing(input: Option<RoutingIn>) -> Result<Option<(String, f64)>, ApiError> {
    let Some(weights) = input.map(|r| r.additional_version_weights) else {
        return Ok(None);
    };
    if weights.len() > 1 {
        return Err(ApiError::invalid_parameter(
            "Number of items in AdditionalVersionWeights cannot be greater than 1",
        ));
    }
    Ok(weights.into_iter().next())
}

async fn create_alias(
    State(api): State<Api>,
    Path(label): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let core = api.core()?;
    let name = function_name(&core, &label, None)?;
    let input: AliasIn = json_body(&body)?;
    let version = input.function_version.ok_or_else(|| {
        ApiError::invalid_parameter("FunctionVersion is required to create an alias")
    })?;
    let alias = core.create_alias(
        &name,
        &input.name,
        &version,
        input.description.unwrap_or_default(),
        routing(input.routing_config)?,
    )?;
    Ok(json(
        StatusCode::CREATED,
        shapes::alias_configuration(&alias),
    ))
}

async fn get_alias(
    State(api): State<Api>,
    Path((label, alias)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let core = api.core()?;
    let name = function_name(&core, &label, None)?;
    Ok(json(
        StatusCode::OK,
        shapes::alias_configuration(&core.alias(&name, &alias)?),
    ))
}

async fn update_alias(
    State(api): State<Api>,
    Path((label, alias)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let core = api.core()?;
    let name = function_name(&core, &label, None)?;
    let input: AliasIn = json_body(&body)?;
    let routing_given = input.routing_config.is_some();
    let routing = routing(input.routing_config)?;
    let updated = core.update_alias(&name, &alias, input.revision_id.as_deref(), |a| {
        if let Some(version) = input.function_version {
            a.function_version = version;
        }
        if let Some(description) = input.description {
            a.description = description;
        }
        if routing_given {
            a.routing = routing;
        }
    })?;
    Ok(json(StatusCode::OK, shapes::alias_configuration(&updated)))
}

async fn delete_alias(
    State(api): State<Api>,
    Path((label, alias)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let core = api.core()?;
    let name = function_name(&core, &label, None)?;
    core.delete_alias(&name, &alias)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_aliases(
    State(api): State<Api>,
    Path(label): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let core = api.core()?;
    let name = function_name(&core, &label, None)?;
    let aliases = core.aliases(&name, query.function_version.as_deref())?;
    let (page, next) = page(aliases, &query, |a| a.name.clone());
    let mut body = json!({
        "Aliases": page.iter().map(shapes::alias_configuration).collect::<Vec<_>>()
    });
    if let Some(next) = next {
        body["NextMarker"] = next.into();
    }
    Ok(json(StatusCode::OK, body))
}
