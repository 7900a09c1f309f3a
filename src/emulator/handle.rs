//! `FunctionHandle`: what a test holds to invoke one deployed function and inspect it.

use std::sync::Arc;

use bytes::Bytes;

use crate::deploy::{Alias, DeployError, Function, FunctionConfig};
use crate::invoke::stream::ResponseStream;
use crate::invoke::{InvokeError, InvokeOutput, InvokeRequest};
use crate::service::Core;
use crate::stats::{Event, Stats};

/// A deployed function. Cheap to clone; all clones refer to the same function.
///
/// Invokes go through the same pool and environments as REST invokes of the function.
#[derive(Clone)]
pub struct FunctionHandle {
    pub(crate) core: Arc<Core>,
    pub(crate) name: String,
}

impl std::fmt::Debug for FunctionHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FunctionHandle")
            .field("name", &self.name)
            .finish()
    }
}

impl FunctionHandle {
    /// The function's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The function's current configuration (as `GetFunctionConfiguration` reports it).
    /// `None` once the function was deleted.
    pub fn config(&self) -> Option<FunctionConfig> {
        self.core.config(&self.name)
    }

    /// Invokes with `payload` as raw bytes (RequestResponse). A function error is an `Ok`
    /// output with [`InvokeOutput::function_error`] set, as Lambda answers HTTP 200 with
    /// `X-Amz-Function-Error`.
    ///
    /// Errors: [`InvokeError::RequestTooLarge`] over 6 MB, [`InvokeError::Throttled`] at
    /// the reserved concurrency, [`InvokeError::Launch`] when no environment starts.
    pub async fn invoke(&self, payload: impl Into<Bytes>) -> Result<InvokeOutput, InvokeError> {
        self.invoke_request(InvokeRequest::new(payload)).await
    }

    /// Invokes with a full [`InvokeRequest`] (client context, trace id).
    pub async fn invoke_request(
        &self,
        request: InvokeRequest,
    ) -> Result<InvokeOutput, InvokeError> {
        self.core.invoke(&self.name, request).await
    }

    /// Invokes with response streaming (`InvokeWithResponseStream`): the handler's chunks
    /// arrive as it flushes them, each with its own boundaries, then a
    /// [`crate::stream::StreamCompletion`]. Returns once the response begins (or the invocation
    /// ended); throttling, an unknown function or an oversized request fail here.
    ///
    /// A buffered handler's response arrives as one chunk. An HTTP-integration prelude
    /// (`lambda_runtime`'s streaming `Response`, Node's `HttpResponseStream`) is stripped
    /// and available as [`ResponseStream::prelude`].
    ///
    /// ```no_run
    /// # async fn demo(f: lambda_testkit::FunctionHandle) -> anyhow::Result<()> {
    /// let collected = f.invoke_stream(r#"{"chunks": 3, "delay_ms": 100}"#).await?.collect_all().await;
    /// assert_eq!(collected.chunk_texts(), ["chunk-0\n", "chunk-1\n", "chunk-2\n"]);
    /// assert!(collected.first_chunk_before_finish());
    /// assert!(collected.completion.is_ok());
    /// # Ok(()) }
    /// ```
    pub async fn invoke_stream(
        &self,
        payload: impl Into<Bytes>,
    ) -> Result<ResponseStream, InvokeError> {
        self.invoke_stream_request(InvokeRequest::new(payload))
            .await
    }

    /// [`FunctionHandle::invoke_stream`] with a full [`InvokeRequest`].
    pub async fn invoke_stream_request(
        &self,
        request: InvokeRequest,
    ) -> Result<ResponseStream, InvokeError> {
        self.core.invoke_stream(&self.name, request).await
    }

    /// Invokes with `event` as JSON and parses the response as `R`. A function error is
    /// [`InvokeError::Function`] carrying `errorType`, `errorMessage` and `stackTrace` as
    /// the runtime sent them.
    pub async fn invoke_json<E, R>(&self, event: &E) -> Result<R, InvokeError>
    where
        E: serde::Serialize + ?Sized,
        R: serde::de::DeserializeOwned,
    {
        self.invoke_request(InvokeRequest::json(event)?)
            .await?
            .json()
    }

    /// Changes the function's code or configuration and redeploys it
    /// (`UpdateFunctionCode`, `UpdateFunctionConfiguration`, `PutFunctionConcurrency`):
    /// `change` gets the function as deployed now and returns the new definition. Idle
    /// environments of the old deploy retire at once, busy ones when their invocation ends.
    ///
    /// ```no_run
    /// # async fn demo(f: lambda_testkit::FunctionHandle) -> Result<(), lambda_testkit::DeployError> {
    /// use std::time::Duration;
    /// let config = f.update(|f| f.timeout(Duration::from_secs(10)).reserved_concurrency(2)).await?;
    /// assert_eq!(config.reserved_concurrency, Some(2));
    /// # Ok(()) }
    /// ```
    pub async fn update(
        &self,
        change: impl FnOnce(Function) -> Function,
    ) -> Result<FunctionConfig, DeployError> {
        self.core.update(&self.name, None, change).await
    }

    /// Invokes asynchronously (`InvocationType: Event`): returns once the request is
    /// accepted; the invocation runs in the background and shows in [`FunctionHandle::stats`].
    /// Payloads over 1 MB are refused with [`InvokeError::RequestTooLarge`].
    pub fn invoke_event(&self, payload: impl Into<Bytes>) -> Result<(), InvokeError> {
        self.core
            .invoke_event(&self.name, InvokeRequest::new(payload))
            .map(|_| ())
    }

    /// Counters for this function: invocations, cold starts, errors, timeouts, peak
    /// concurrency, environments, evictions.
    pub fn stats(&self) -> Stats {
        self.core.timeline.stats(Some(&self.name))
    }

    /// This function's Telemetry API stream, as an extension subscribed to every type
    /// would receive it (`platform.*`, `function` and `extension` records of all its
    /// execution environments; AWS "Telemetry API" schema 2022-12-13), without an
    /// extension: [`crate::telemetry::TelemetryFeed::records`] and an async
    /// [`crate::telemetry::TelemetryFeed::wait_for`]. Empty once the function is deleted.
    ///
    /// ```no_run
    /// # async fn demo(f: lambda_testkit::FunctionHandle) -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// let out = f.invoke("{}").await?;
    /// let report = f
    ///     .telemetry()
    ///     .wait_for(
    ///         |r| r.record_type == "platform.report" && r.request_id() == Some(&out.request_id),
    ///         Duration::from_secs(1),
    ///     )
    ///     .await?;
    /// assert_eq!(report.record["status"], "success");
    /// # Ok(()) }
    /// ```
    pub fn telemetry(&self) -> crate::telemetry::TelemetryFeed {
        self.core
            .function(&self.name)
            .map(|pool| pool.telemetry())
            .unwrap_or_else(|| crate::telemetry::TelemetryFeed::new(&self.name))
    }

    /// `PublishVersion`: a version (`1`, `2`, …) of the code and configuration as they are
    /// now, with environments and stats of its own ([`FunctionHandle::version_stats`]);
    /// the latest version again when nothing changed since it was published. Invoke it
    /// with [`crate::InvokeRequest::qualifier`].
    ///
    /// ```no_run
    /// # async fn demo(f: lambda_testkit::FunctionHandle) -> Result<(), Box<dyn std::error::Error>> {
    /// use lambda_testkit::InvokeRequest;
    /// let v1 = f.publish_version().await?;
    /// assert_eq!(v1.version, "1");
    /// f.create_alias("live", "1", None)?;
    /// let out = f.invoke_request(InvokeRequest::new("{}").qualifier("live")).await?;
    /// assert_eq!(out.executed_version, "1");
    /// # Ok(()) }
    /// ```
    pub async fn publish_version(&self) -> Result<FunctionConfig, DeployError> {
        self.core
            .publish_version(&self.name, None, None, None)
            .await
    }

    /// `CreateAlias` `alias` for `version` (a number or `$LATEST`); `routing` sends a
    /// share (0.0–1.0) of the alias's invokes to a second version, as
    /// `RoutingConfig.AdditionalVersionWeights` does (seed the split with
    /// [`crate::EmulatorBuilder::routing_seed`]). Errors: an unknown version, a taken or
    /// invalid name, routing with `$LATEST` (as Lambda refuses it).
    pub fn create_alias(
        &self,
        alias: &str,
        version: &str,
        routing: Option<(&str, f64)>,
    ) -> Result<Alias, DeployError> {
        self.core.create_alias(
            &self.name,
            alias,
            version,
            String::new(),
            routing.map(|(v, w)| (v.to_string(), w)),
        )
    }

    /// `UpdateAlias`: `change` edits the alias (its version, description, routing).
    pub fn update_alias(
        &self,
        alias: &str,
        change: impl FnOnce(&mut Alias),
    ) -> Result<Alias, DeployError> {
        self.core.update_alias(&self.name, alias, None, change)
    }

    /// `PutProvisionedConcurrencyConfig`: keeps `n` execution environments of `qualifier`
    /// (a version, or an alias without weights; not `$LATEST`, as in Lambda) initialized
    /// ahead of invokes; resolves once they are (`READY`). Their
    /// `AWS_LAMBDA_INITIALIZATION_TYPE` is `provisioned-concurrency`, the idle TTL spares
    /// them, and an invoke on one is not a cold start.
    pub async fn provision(
        &self,
        qualifier: &str,
        n: u32,
    ) -> Result<crate::function::ProvisionedConcurrency, DeployError> {
        self.core.provision(&self.name, qualifier, n).await
    }

    /// Counters of the published version `version` alone.
    pub fn version_stats(&self, version: &str) -> Stats {
        self.core
            .timeline
            .stats(Some(&format!("{}:{version}", self.name)))
    }

    /// This function's events, oldest first.
    pub fn timeline(&self) -> Vec<Event> {
        self.core.timeline.events(Some(&self.name))
    }

    /// This function's events as text, one per line (what assertion failures print).
    pub fn timeline_text(&self) -> String {
        self.core.timeline.render(Some(&self.name))
    }

    /// Retires every idle execution environment now (`EvictionReason::Explicit`); busy
    /// ones finish their invocation first and are retired when free. Returns how many
    /// were retired at once. The next invoke is a cold start.
    pub fn evict_all(&self) -> usize {
        self.core
            .function(&self.name)
            .map(|pool| pool.evict_all())
            .unwrap_or(0)
    }

    /// Acquires an execution environment from the pool and gives it back unused, without
    /// invoking: exposes the pool's own cost to the benchmarks (`benches/pool.rs`).
    #[doc(hidden)]
    pub async fn acquire_and_release(&self) -> Result<bool, InvokeError> {
        self.core.acquire_and_release(&self.name).await
    }

    /// OS process ids of this function's live execution environments (process backend).
    pub fn environment_pids(&self) -> Vec<u32> {
        self.core
            .function(&self.name)
            .map(|pool| pool.pids())
            .unwrap_or_default()
    }
}
