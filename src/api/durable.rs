//! The durable-execution operations (API 2025-12-01): CheckpointDurableExecution,
//! GetDurableExecutionState, GetDurableExecution, GetDurableExecutionHistory,
//! ListDurableExecutionsByFunction, StopDurableExecution and
//! SendDurableExecutionCallbackSuccess / Failure / Heartbeat, with the model's shapes.
//!
//! `{DurableExecutionArn}` contains `/` and `{CallbackId}` is base64 (may contain `/`):
//! clients percent-encode both, and routes match the raw path, so each is one label.
//! Timestamps are epoch seconds in bodies and ISO-8601 in query strings (restJson1).

use std::time::SystemTime;

use axum::Router;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Api, ApiError, json, json_body, qualified_function};
use crate::durable::ExecutionInfo;
use crate::durable::execution::Completion;
use crate::durable::model::{ErrorObject, ExecutionStatus, OperationUpdate, epoch_seconds};
use crate::durable::paging;
use crate::durable::store::ListFilter;

pub(super) fn routes() -> Router<Api> {
    Router::new()
        .route(
            "/2025-12-01/durable-executions/{arn}",
            get(get_durable_execution),
        )
        .route(
            "/2025-12-01/durable-executions/{arn}/checkpoint",
            post(checkpoint),
        )
        .route("/2025-12-01/durable-executions/{arn}/state", get(state))
        .route("/2025-12-01/durable-executions/{arn}/history", get(history))
        .route("/2025-12-01/durable-executions/{arn}/stop", post(stop))
        .route(
            "/2025-12-01/functions/{name}/durable-executions",
            get(list_by_function),
        )
        .route(
            "/2025-12-01/durable-execution-callbacks/{id}/succeed",
            post(callback_success),
        )
        .route(
            "/2025-12-01/durable-execution-callbacks/{id}/fail",
            post(callback_failure),
        )
        .route(
            "/2025-12-01/durable-execution-callbacks/{id}/heartbeat",
            post(callback_heartbeat),
        )
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CheckpointIn {
    checkpoint_token: Option<String>,
    #[serde(default)]
    updates: Vec<OperationUpdate>,
    /// Idempotency of a retried call (botocore and aws-sdk-rust fill one in).
    client_token: Option<String>,
}

async fn checkpoint(
    State(api): State<Api>,
    Path(arn): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: CheckpointIn = json_body(&body)?;
    let token = request
        .checkpoint_token
        .ok_or_else(|| ApiError::invalid_parameter("CheckpointToken is required."))?;
    let result = api.core()?.checkpoint(
        &arn,
        &token,
        &request.updates,
        request.client_token.as_deref(),
    )?;
    let mut out = json!({"NewExecutionState": {"Operations": result.operations}});
    if let Some(token) = result.token {
        out["CheckpointToken"] = token.into();
    }
    Ok(json(StatusCode::OK, out))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct StateQuery {
    checkpoint_token: Option<String>,
    marker: Option<String>,
    max_items: Option<usize>,
}

async fn state(
    State(api): State<Api>,
    Path(arn): Path<String>,
    Query(query): Query<StateQuery>,
) -> Result<Response, ApiError> {
    let token = query
        .checkpoint_token
        .ok_or_else(|| ApiError::invalid_parameter("CheckpointToken is required."))?;
    let (operations, next) =
        api.core()?
            .durable
            .state(&arn, &token, query.marker.as_deref(), query.max_items)?;
    let mut out = json!({"Operations": operations});
    if let Some(next) = next {
        out["NextMarker"] = next.into();
    }
    Ok(json(StatusCode::OK, out))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct DataQuery {
    include_execution_data: Option<bool>,
    max_items: Option<usize>,
    marker: Option<String>,
    reverse_order: Option<bool>,
}

/// `GetDurableExecutionResponse`.
fn execution_shape(info: &ExecutionInfo, include_data: bool, config: Value) -> Value {
    let mut out = json!({
        "DurableExecutionArn": info.arn,
        "DurableExecutionName": info.name,
        "FunctionArn": info.function_arn,
        "Status": info.status,
        "StartTimestamp": epoch_seconds::to_f64(info.started),
        "Version": info.version,
        "ExecutionDataIncluded": include_data,
    });
    if let Some(ended) = info.ended {
        out["EndTimestamp"] = epoch_seconds::to_f64(ended).into();
    }
    if include_data {
        out["InputPayload"] = info.input.clone().into();
        if let Some(result) = &info.result {
            out["Result"] = result.clone().into();
        }
        if let Some(error) = &info.error {
            out["Error"] = json!(error);
        }
    }
    if !config.is_null() {
        out["DurableConfig"] = config;
    }
    out
}

async fn get_durable_execution(
    State(api): State<Api>,
    Path(arn): Path<String>,
    Query(query): Query<DataQuery>,
) -> Result<Response, ApiError> {
    let core = api.core()?;
    let info = core.durable.describe(&arn)?;
    let config = core
        .config_of(&info.function, Some(&info.version))
        .ok()
        .and_then(|c| c.durable)
        .map_or(Value::Null, |d| {
            json!({
                "ExecutionTimeout": d.execution_timeout().as_secs(),
                "RetentionPeriodInDays": d.retention_period_days(),
            })
        });
    let include = query.include_execution_data.unwrap_or(true);
    Ok(json(
        StatusCode::OK,
        execution_shape(&info, include, config),
    ))
}

async fn history(
    State(api): State<Api>,
    Path(arn): Path<String>,
    Query(query): Query<DataQuery>,
) -> Result<Response, ApiError> {
    let mut events = api.core()?.durable.history(&arn)?;
    if query.reverse_order.unwrap_or(false) {
        events.reverse();
    }
    let (page, next) = paging::page(&events, query.marker.as_deref(), query.max_items)?;
    let include = query.include_execution_data.unwrap_or(true);
    let mut out = json!({
        "Events": page.iter().map(|e| e.to_json(include)).collect::<Vec<_>>(),
    });
    if let Some(next) = next {
        out["NextMarker"] = next.into();
    }
    Ok(json(StatusCode::OK, out))
}

/// An optional `ErrorObject` body (the operation's payload member).
fn error_body(body: &Bytes) -> Result<Option<ErrorObject>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    json_body(body).map(Some)
}

async fn stop(
    State(api): State<Api>,
    Path(arn): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let error = error_body(&body)?;
    let when = api.core()?.durable.stop(&arn, error)?;
    Ok(json(
        StatusCode::OK,
        json!({"StopTimestamp": epoch_seconds::to_f64(when)}),
    ))
}

/// `ListDurableExecutionsByFunction`'s query: `Statuses` repeats, so it is read by hand.
fn list_filter(
    function: String,
    raw: Option<&str>,
) -> Result<(ListFilter, Option<String>, Option<usize>), ApiError> {
    let mut filter = ListFilter {
        function,
        ..Default::default()
    };
    let (mut marker, mut max_items) = (None, None);
    for (key, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        match key.as_ref() {
            "Qualifier" => filter.version = Some(value.into_owned()),
            "DurableExecutionName" => filter.name = Some(value.into_owned()),
            "Statuses" => filter
                .statuses
                .push(ExecutionStatus::parse(&value).ok_or_else(|| {
                    ApiError::invalid_parameter(format!("Invalid execution status: {value}"))
                })?),
            "StartedAfter" => filter.started_after = Some(timestamp(&value)?),
            "StartedBefore" => filter.started_before = Some(timestamp(&value)?),
            "ReverseOrder" => filter.reverse = value == "true",
            "Marker" => marker = Some(value.into_owned()),
            "MaxItems" => {
                max_items = Some(value.parse().map_err(|_| {
                    ApiError::invalid_parameter(format!("Invalid MaxItems: {value}"))
                })?)
            }
            _ => {}
        }
    }
    Ok((filter, marker, max_items))
}

/// A query-string timestamp: ISO-8601 (what the SDKs send), or epoch seconds.
fn timestamp(value: &str) -> Result<SystemTime, ApiError> {
    if let Ok(secs) = value.parse::<f64>() {
        return Ok(epoch_seconds::from_f64(secs));
    }
    time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
        .map(SystemTime::from)
        .map_err(|_| ApiError::invalid_parameter(format!("Invalid timestamp: {value}")))
}

async fn list_by_function(
    State(api): State<Api>,
    Path(label): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let core = api.core()?;
    let (mut filter, marker, max_items) = list_filter(String::new(), raw.as_deref())?;
    let (name, qualifier) = qualified_function(&core, &label, filter.version.as_deref())?;
    filter.function = name;
    filter.version = match qualifier {
        // An alias lists the executions of the version it points at.
        Some(q) => Some(core.config_of(&filter.function, Some(&q))?.version),
        None => None,
    };
    let executions = core.durable.list(&filter);
    let (page, next) = paging::page(&executions, marker.as_deref(), max_items)?;
    let items: Vec<Value> = page
        .iter()
        .map(|e| {
            let mut v = json!({
                "DurableExecutionArn": e.arn,
                "DurableExecutionName": e.name,
                "FunctionArn": e.function_arn,
                "Status": e.status,
                "StartTimestamp": epoch_seconds::to_f64(e.started),
            });
            if let Some(ended) = e.ended {
                v["EndTimestamp"] = epoch_seconds::to_f64(ended).into();
            }
            v
        })
        .collect();
    let mut out = json!({"DurableExecutions": items});
    if let Some(next) = next {
        out["NextMarker"] = next.into();
    }
    Ok(json(StatusCode::OK, out))
}

/// `SendDurableExecutionCallbackSuccess`: the body is the raw `Result` blob.
async fn callback_success(
    State(api): State<Api>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let result = (!body.is_empty()).then(|| String::from_utf8_lossy(&body).into_owned());
    api.core()?
        .durable
        .complete_callback(&id, Completion::Succeeded(result))?;
    Ok(json(StatusCode::OK, json!({})))
}

async fn callback_failure(
    State(api): State<Api>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let error = error_body(&body)?.unwrap_or_default();
    api.core()?
        .durable
        .complete_callback(&id, Completion::Failed(error))?;
    Ok(json(StatusCode::OK, json!({})))
}

async fn callback_heartbeat(
    State(api): State<Api>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    api.core()?.durable.heartbeat(&id)?;
    Ok(json(StatusCode::OK, json!({})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_queries_read_repeated_statuses_and_iso_timestamps() {
        let (filter, marker, max) = list_filter(
            "f".into(),
            Some("Statuses=RUNNING&Statuses=FAILED&StartedAfter=2026-12-01T17%3A00%3A00Z&MaxItems=5&Marker=2&ReverseOrder=true"),
        )
        .unwrap();
        assert_eq!(
            filter.statuses,
            [ExecutionStatus::Running, ExecutionStatus::Failed]
        );
        assert_eq!(
            epoch_seconds::to_f64(filter.started_after.unwrap()),
            1_796_144_400.0
        );
        assert!(filter.reverse);
        assert_eq!((marker.as_deref(), max), (Some("2"), Some(5)));
        assert!(list_filter("f".into(), Some("Statuses=DONE")).is_err());
        assert!(list_filter("f".into(), Some("StartedBefore=yesterday")).is_err());
    }
}
