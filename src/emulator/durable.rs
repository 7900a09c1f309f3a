//! The Rust front door to durable executions: start one from a [`FunctionHandle`], then
//! read it, wait for it and drive its callbacks through a [`DurableExecution`]; move
//! the emulator's [`Clock`] to fire its timers.

use std::sync::Arc;

use bytes::Bytes;

use super::{Emulator, FunctionHandle};
use crate::durable::execution::Completion;
use crate::durable::model::{
    ErrorObject, ExecutionStatus, Operation, OperationStatus, OperationType,
};
use crate::durable::store::ListFilter;
use crate::durable::{Clock, DurableError, Event, ExecutionInfo};
use crate::invoke::{InvokeError, InvokeRequest};
use crate::service::Core;

/// A durable execution of this emulator (`DurableExecutionArn`).
///
/// Everything here reads or changes the same state the REST API serves
/// (`GetDurableExecution`, `GetDurableExecutionHistory`, `SendDurableExecutionCallback*`,
/// `StopDurableExecution`). Waits are event-driven: they wake on the change they wait
/// for, never by polling.
#[derive(Clone)]
pub struct DurableExecution {
    core: Arc<Core>,
    arn: String,
}

impl std::fmt::Debug for DurableExecution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableExecution")
            .field("arn", &self.arn)
            .finish()
    }
}

impl DurableExecution {
    /// `DurableExecutionArn`.
    pub fn arn(&self) -> &str {
        &self.arn
    }

    /// A snapshot (`GetDurableExecution`).
    pub fn info(&self) -> Result<ExecutionInfo, DurableError> {
        self.core.durable.describe(&self.arn)
    }

    /// The current status.
    pub fn status(&self) -> Result<ExecutionStatus, DurableError> {
        Ok(self.info()?.status)
    }

    /// Every operation recorded so far, in checkpoint order (the EXECUTION one first).
    pub fn operations(&self) -> Result<Vec<Operation>, DurableError> {
        self.core.durable.operations(&self.arn)
    }

    /// The operations of one type (every STEP, every WAIT, …), in checkpoint order. For
    /// the handler `a = context.step(add, name="add"); context.wait(..., name="nap")`
    /// on AWS's Python SDK, `operations_of(OperationType::Step)` is one operation with
    /// `name == Some("add")`, `status == SUCCEEDED` and `result() == Some("5")`.
    pub fn operations_of(&self, kind: OperationType) -> Result<Vec<Operation>, DurableError> {
        let mut operations = self.operations()?;
        operations.retain(|op| op.kind == kind);
        Ok(operations)
    }

    /// The first operation called `name` (the SDKs' `name=` of a step, wait, callback,
    /// chained invoke or child context), if it has been checkpointed.
    pub fn operation(&self, name: &str) -> Result<Option<Operation>, DurableError> {
        Ok(self
            .operations()?
            .into_iter()
            .find(|op| op.kind != OperationType::Execution && op.name.as_deref() == Some(name)))
    }

    /// `(name, status)` of each operation of `kind`, in checkpoint order (an unnamed
    /// operation's name is `""`): what a test compares, e.g. `[("add", SUCCEEDED),
    /// ("times", SUCCEEDED)]` for `OperationType::Step`.
    pub fn operation_summary(
        &self,
        kind: OperationType,
    ) -> Result<Vec<(String, OperationStatus)>, DurableError> {
        Ok(self
            .operations_of(kind)?
            .into_iter()
            .map(|op| (op.name.unwrap_or_default(), op.status))
            .collect())
    }

    /// How many times the handler has been invoked for this execution: the first
    /// invocation and every replay (after a wait, a retry delay, a callback, a chained
    /// invoke, or an invocation that crashed or timed out). A one-step handler that
    /// waits once takes 2.
    pub fn invocations(&self) -> Result<u32, DurableError> {
        Ok(self.info()?.invocations)
    }

    /// Invocations after the first one: [`DurableExecution::invocations`] minus one
    /// (0 before the first invocation too).
    pub fn replays(&self) -> Result<u32, DurableError> {
        Ok(self.invocations()?.saturating_sub(1))
    }

    /// The history (`GetDurableExecutionHistory`), oldest event first.
    pub fn history(&self) -> Result<Vec<Event>, DurableError> {
        self.core.durable.history(&self.arn)
    }

    /// Waits until the execution has ended (any status but RUNNING).
    pub async fn wait(&self) -> Result<ExecutionInfo, DurableError> {
        self.wait_until(ExecutionInfo::is_done).await
    }

    /// Waits until the execution's status is `status`; fails if it ends with another.
    pub async fn wait_for_status(
        &self,
        status: ExecutionStatus,
    ) -> Result<ExecutionInfo, DurableError> {
        let info = self
            .wait_until(|i| i.status == status || i.is_done())
            .await?;
        if info.status == status {
            Ok(info)
        } else {
            Err(DurableError::invalid(format!(
                "durable execution {} ended {} while waiting for {}",
                self.arn,
                info.status.as_str(),
                status.as_str()
            )))
        }
    }

    /// Waits until `done` holds for a snapshot of the execution.
    pub async fn wait_until(
        &self,
        done: impl Fn(&ExecutionInfo) -> bool,
    ) -> Result<ExecutionInfo, DurableError> {
        self.core.durable.wait_until(&self.arn, done).await
    }

    /// Waits until an operation satisfies `matches` (e.g. a WAIT has started), and
    /// returns it; fails if the execution ends first.
    pub async fn wait_for_operation(
        &self,
        matches: impl Fn(&Operation) -> bool,
    ) -> Result<Operation, DurableError> {
        let durable = &self.core.durable;
        let found = |_: &ExecutionInfo| {
            durable
                .operations(&self.arn)
                .is_ok_and(|ops| ops.iter().any(&matches))
        };
        let info = durable
            .wait_until(&self.arn, |i| found(i) || i.is_done())
            .await?;
        durable
            .operations(&self.arn)?
            .into_iter()
            .find(|op| matches(op))
            .ok_or_else(|| {
                DurableError::invalid(format!(
                    "durable execution {} ended {} first",
                    self.arn,
                    info.status.as_str()
                ))
            })
    }

    /// Waits for a started CALLBACK operation (named `name`, or any) and returns its
    /// `CallbackId`.
    pub async fn wait_for_callback(&self, name: Option<&str>) -> Result<String, DurableError> {
        let op = self
            .wait_for_operation(|op| {
                op.kind == OperationType::Callback
                    && op.status == OperationStatus::Started
                    && name.is_none_or(|n| op.name.as_deref() == Some(n))
            })
            .await?;
        op.callback_details
            .and_then(|d| d.callback_id)
            .ok_or_else(|| DurableError::invalid("a started callback has no CallbackId"))
    }

    /// `SendDurableExecutionCallbackSuccess` with `result` (the SDKs read it as JSON).
    pub fn send_callback_success(
        &self,
        callback_id: &str,
        result: impl Into<Bytes>,
    ) -> Result<(), DurableError> {
        let result = String::from_utf8_lossy(&result.into()).into_owned();
        self.core
            .durable
            .complete_callback(callback_id, Completion::Succeeded(Some(result)))
    }

    /// `SendDurableExecutionCallbackFailure`.
    pub fn send_callback_failure(
        &self,
        callback_id: &str,
        error: ErrorObject,
    ) -> Result<(), DurableError> {
        self.core
            .durable
            .complete_callback(callback_id, Completion::Failed(error))
    }

    /// `SendDurableExecutionCallbackHeartbeat`.
    pub fn send_callback_heartbeat(&self, callback_id: &str) -> Result<(), DurableError> {
        self.core.durable.heartbeat(callback_id)
    }

    /// `StopDurableExecution`: ends it STOPPED with `error`.
    pub fn stop(&self, error: Option<ErrorObject>) -> Result<(), DurableError> {
        self.core.durable.stop(&self.arn, error).map(|_| ())
    }
}

impl FunctionHandle {
    /// Starts a durable execution of this (durable) function with `payload`, as an
    /// `Event` invoke does, and returns its handle at once.
    /// [`InvokeError::Durable`] if the function is not durable.
    pub fn start_execution(
        &self,
        payload: impl Into<Bytes>,
    ) -> Result<DurableExecution, InvokeError> {
        self.start_execution_with(InvokeRequest::new(payload))
    }

    /// [`FunctionHandle::start_execution`] with a full request (e.g.
    /// [`InvokeRequest::durable_execution_name`], a qualifier).
    pub fn start_execution_with(
        &self,
        request: InvokeRequest,
    ) -> Result<DurableExecution, InvokeError> {
        match self.core.start_execution(&self.name, &request)? {
            Some(arn) => Ok(DurableExecution {
                core: self.core.clone(),
                arn,
            }),
            None => Err(DurableError::NotDurable(self.name.clone()).into()),
        }
    }

    /// This function's durable executions, oldest first.
    pub fn durable_executions(&self) -> Vec<ExecutionInfo> {
        self.core.durable.list(&ListFilter {
            function: self.name.clone(),
            ..Default::default()
        })
    }
}

impl Emulator {
    /// The clock durable timers run on (see [`crate::EmulatorBuilder::clock`]):
    /// `emu.clock().advance(Duration::from_secs(3600))` fires a one-hour wait now.
    pub fn clock(&self) -> &Clock {
        self.core.durable.clock()
    }

    /// A handle to the durable execution `arn` (e.g. from an invoke's
    /// `X-Amz-Durable-Execution-Arn`), if this emulator has it.
    pub fn durable_execution(&self, arn: &str) -> Option<DurableExecution> {
        self.core.durable.describe(arn).ok()?;
        Some(DurableExecution {
            core: self.core.clone(),
            arn: arn.to_string(),
        })
    }
}
