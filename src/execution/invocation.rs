//! One synchronous invocation, end to end: an environment from the pool, the run, the
//! environment back, and the outcome as Lambda reports it (`X-Amz-Function-Error`, the
//! `Sandbox.Timedout` text). An environment that dies before its runtime took the
//! invocation is replaced and the invocation retried: the handler provably never ran.

use std::sync::Arc;

use super::pool::{AcquireError, LaunchContext, Lease, Pool};
use super::state::Outcome;
use crate::error::BackendError;
use crate::invoke::{FunctionError, InvokeError, InvokeOutput, InvokeRequest};
use crate::stats::EvictionReason;

/// Attempts for one invoke when an environment dies before the runtime took the
/// invocation: the first try plus two fail-overs.
const DELIVERY_ATTEMPTS: usize = 3;

/// Where an invocation runs: the function's pool and the limits that apply to it.
pub(crate) struct Target<'a> {
    pub(crate) pool: Arc<Pool>,
    /// Most live environments.
    pub(crate) cap: usize,
    /// Reserved concurrency, if set.
    pub(crate) reserved: Option<u32>,
    pub(crate) launch: &'a LaunchContext,
    /// `invokedFunctionArn` when it is not the version's own ARN (an alias was invoked).
    pub(crate) invoked_arn: Option<String>,
}

impl Target<'_> {
    async fn acquire(&self) -> Result<Lease, InvokeError> {
        let function = || self.pool.function().to_string();
        self.pool
            .acquire(self.cap, self.reserved, self.launch)
            .await
            .map_err(|e| match e {
                AcquireError::Throttled { limit } => InvokeError::Throttled {
                    function: function(),
                    limit,
                },
                AcquireError::Launch(source) => InvokeError::Launch {
                    function: function(),
                    source: Box::new(source),
                },
                AcquireError::ShutDown => InvokeError::ShutDown,
            })
    }

    /// Runs `request` (RequestResponse) to its end.
    pub(crate) async fn invoke(
        &self,
        request: &InvokeRequest,
    ) -> Result<InvokeOutput, InvokeError> {
        for _ in 0..DELIVERY_ATTEMPTS {
            let mut lease = match self.acquire().await {
                Ok(lease) => lease,
                // Lambda accepts such code and fails each invoke as a function error.
                Err(InvokeError::Launch { source, .. })
                    if matches!(*source, BackendError::NoBootstrap { .. }) =>
                {
                    return Ok(self.invalid_entrypoint());
                }
                Err(e) => return Err(e),
            };
            let env = lease.env();
            let request_id = uuid::Uuid::new_v4().to_string();
            let done = env
                .invoke(request, request_id.clone(), self.invoked_arn.as_deref())
                .await;
            if matches!(done.outcome, Outcome::NotDelivered) {
                lease.release(Some(EvictionReason::Unreachable));
                continue;
            }
            match done.extension_phase {
                // The caller has its answer now; the environment serves again once the
                // extensions are done with the invocation.
                Some(phase) => {
                    tokio::spawn(async move { lease.release(phase.end().await) });
                }
                None => lease.release(done.evict),
            }
            let (payload, function_error) = match done.outcome {
                Outcome::Response(bytes) => (bytes, None),
                Outcome::Error(error) => (error.body, Some("Unhandled".to_string())),
                Outcome::Timeout => {
                    let message = format!(
                        "RequestId: {request_id} Error: Task timed out after {:.2} seconds",
                        env.deployment.config.timeout.as_secs_f64()
                    );
                    (
                        FunctionError::platform("Sandbox.Timedout", message, &request_id).body,
                        Some("Unhandled".to_string()),
                    )
                }
                Outcome::NotDelivered => unreachable!("retried above"),
            };
            return Ok(InvokeOutput {
                payload,
                function_error,
                request_id,
                executed_version: env.deployment.config.version.clone(),
                log: done.log,
                cold_start: done.cold_start,
                duration: done.duration,
                environment_id: env.id().to_string(),
                durable_execution_arn: None,
            });
        }
        Err(InvokeError::Launch {
            function: self.pool.function().to_string(),
            source: Box::new(BackendError::Other(format!(
                "{DELIVERY_ATTEMPTS} execution environments died before taking the invocation"
            ))),
        })
    }

    /// A `provided.*` function whose code and layers have no `bootstrap`: Lambda's
    /// `Runtime.InvalidEntrypoint`, a function error of the invocation.
    fn invalid_entrypoint(&self) -> InvokeOutput {
        let request_id = uuid::Uuid::new_v4().to_string();
        let error = FunctionError::platform(
            "Runtime.InvalidEntrypoint",
            format!(
                "RequestId: {request_id} Error: Couldn't find valid bootstrap(s): [/var/task/bootstrap /opt/bootstrap]"
            ),
            &request_id,
        );
        self.pool.record_unstarted(&request_id, &error.error_type);
        InvokeOutput {
            log: format!(
                "START RequestId: {request_id} Version: $LATEST\n{}\nEND RequestId: {request_id}\n",
                error.error_message
            ),
            payload: error.body,
            function_error: Some("Unhandled".to_string()),
            request_id,
            executed_version: "$LATEST".to_string(),
            cold_start: true,
            duration: std::time::Duration::ZERO,
            environment_id: String::new(),
            durable_execution_arn: None,
        }
    }

    /// Acquires and releases an environment without invoking (benchmarks the pool);
    /// returns whether it was warm.
    pub(crate) async fn acquire_and_release(&self) -> Result<bool, InvokeError> {
        let lease = self.acquire().await?;
        let warm = !lease.cold_start;
        lease.release(None);
        Ok(warm)
    }
}
