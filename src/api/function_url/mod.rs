//! The function URL data plane, and the URL operations both front doors call
//! (`CreateFunctionUrlConfig` and friends on the REST API, `FunctionHandle::create_url`
//! and friends in Rust).
//!
//! Each URL config gets its own listener on `127.0.0.1:<ephemeral>` (an axum server whose
//! one handler takes every method and path), so a URL is addressed by its port alone and
//! any `Host` header works. The listener looks its config up on every request, so an
//! update applies at once and a deleted URL answers 404 even on a kept-alive connection;
//! removing the config (delete, function deleted, emulator shut down or dropped) aborts the
//! listener.
//!
//! ```text
//! serve      one request: CORS preflight -> body -> SigV4 (AWS_IAM) -> 2.0 event ->
//!            Core::invoke / Core::invoke_stream -> HTTP response (+ CORS headers)
//! event      the payload format 2.0 event (pure)
//! response   the handler's result as the HTTP response; the data plane's error answers
//! cors       preflight answers and CORS response headers (pure)
//! sigv4      checking an AWS_IAM request's signature (aws-sigv4 computes the expected one)
//! ```

mod cors;
mod event;
mod response;
mod serve;
mod sigv4;

use std::net::SocketAddr;
use std::sync::{Arc, Weak};

use axum::serve::ListenerExt;
use tokio::task::AbortHandle;

use crate::deploy::arn;
use crate::service::Core;
use crate::urls::{
    FunctionUrl, FunctionUrlConfig, UrlError, new_url_id, now_iso8601, validate_qualifier,
};

/// Resolves a `FunctionName` (name, partial or full ARN, optionally `:alias`) and a
/// `Qualifier` to the function's name and the URL's qualifier, once both exist.
pub(crate) fn resolve(
    core: &Core,
    function: &str,
    qualifier: Option<&str>,
) -> Result<(String, Option<String>), UrlError> {
    let (name, label_qualifier) = arn::split_function_name(function);
    if let (Some(a), Some(b)) = (label_qualifier, qualifier)
        && a != b
    {
        return Err(UrlError::InvalidParameter(
            "The derived qualifier from the function name does not match the specified qualifier."
                .to_string(),
        ));
    }
    let qualifier = label_qualifier.or(qualifier).filter(|q| !q.is_empty());
    if let Some(q) = qualifier {
        validate_qualifier(q)?;
    }
    if !core.qualifier_exists(name, qualifier) {
        return Err(UrlError::FunctionNotFound(qualified_arn(
            core, name, qualifier,
        )));
    }
    Ok((name.to_string(), qualifier.map(str::to_string)))
}

fn qualified_arn(core: &Core, name: &str, qualifier: Option<&str>) -> String {
    let arn = core.registry.function_arn(name);
    match qualifier {
        Some(q) => format!("{arn}:{q}"),
        None => arn,
    }
}

/// Creates the URL `config` describes for `function` and starts serving it.
pub(crate) fn create(
    core: &Arc<Core>,
    function: &str,
    config: FunctionUrlConfig,
) -> Result<FunctionUrl, UrlError> {
    let (name, qualifier) = resolve(core, function, config.qualifier.as_deref())?;
    if let Some(cors) = &config.cors {
        cors.validate()?;
    }
    let function_arn = qualified_arn(core, &name, qualifier.as_deref());
    if core.urls.get(&name, qualifier.as_deref()).is_some() {
        return Err(UrlError::Exists(function_arn));
    }
    let url_id = new_url_id();
    let (port, server) =
        listen(Arc::downgrade(core), url_id.clone()).map_err(UrlError::Listener)?;
    let now = now_iso8601();
    let url = FunctionUrl {
        function_url: format!("http://127.0.0.1:{port}/"),
        function_arn,
        function_name: name,
        qualifier,
        domain_name: format!("{url_id}.lambda-url.{}.on.aws", core.registry.region()),
        url_id,
        auth_type: config.auth,
        cors: config.cors,
        invoke_mode: config.invoke_mode,
        creation_time: now.clone(),
        last_modified_time: now,
    };
    core.urls.insert(url.clone(), server)?;
    Ok(url)
}

/// The URL of `function` for `qualifier`.
pub(crate) fn get(
    core: &Core,
    function: &str,
    qualifier: Option<&str>,
) -> Result<FunctionUrl, UrlError> {
    let (name, qualifier) = resolve(core, function, qualifier)?;
    core.urls
        .get(&name, qualifier.as_deref())
        .ok_or_else(|| UrlError::NotFound(qualified_arn(core, &name, qualifier.as_deref())))
}

/// Changes the URL of `function` for `qualifier` (its address stays).
pub(crate) fn update(
    core: &Core,
    function: &str,
    qualifier: Option<&str>,
    change: impl FnOnce(&mut FunctionUrl),
) -> Result<FunctionUrl, UrlError> {
    let (name, qualifier) = resolve(core, function, qualifier)?;
    let mut changed = get(core, &name, qualifier.as_deref())?;
    change(&mut changed);
    if let Some(cors) = &changed.cors {
        cors.validate()?;
    }
    core.urls
        .update(&name, qualifier.as_deref(), |url| {
            url.auth_type = changed.auth_type;
            url.cors = changed.cors;
            url.invoke_mode = changed.invoke_mode;
        })
        .ok_or_else(|| UrlError::NotFound(qualified_arn(core, &name, qualifier.as_deref())))
}

/// Deletes the URL of `function` for `qualifier`; it stops answering at once.
pub(crate) fn delete(core: &Core, function: &str, qualifier: Option<&str>) -> Result<(), UrlError> {
    let (name, qualifier) = resolve(core, function, qualifier)?;
    core.urls
        .remove(&name, qualifier.as_deref())
        .map(|_| ())
        .ok_or_else(|| UrlError::NotFound(qualified_arn(core, &name, qualifier.as_deref())))
}

/// Every URL of `function`, unqualified first.
pub(crate) fn list(core: &Core, function: &str) -> Result<Vec<FunctionUrl>, UrlError> {
    let (name, _) = arn::split_function_name(function);
    let (name, _) = resolve(core, name, None)?;
    Ok(core.urls.list(&name))
}

/// Binds `127.0.0.1:<any>` and serves the URL `url_id` on it; returns the port and the
/// serving task (aborted when the config is removed).
fn listen(core: Weak<Core>, url_id: String) -> std::io::Result<(u16, AbortHandle)> {
    let listener = std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    listener.set_nonblocking(true)?;
    let port = listener.local_addr()?.port();
    // Streamed bodies are written chunk by chunk and must not wait for an ACK.
    let listener = tokio::net::TcpListener::from_std(listener)?.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let app = serve::router(serve::UrlState {
        core,
        url_id: url_id.into(),
        port,
    });
    let task = tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    Ok((port, task.abort_handle()))
}
