//! A snapshot of one durable execution, as `GetDurableExecution` describes it.

use std::time::SystemTime;

use super::execution::Execution;
use super::model::{ErrorObject, ExecutionStatus};

/// What `GetDurableExecution` reports about an execution, at one moment.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ExecutionInfo {
    /// `DurableExecutionArn`.
    pub arn: String,
    /// `DurableExecutionName`.
    pub name: String,
    /// `FunctionArn`: the function's ARN qualified with the version that runs it.
    pub function_arn: String,
    /// The function's name.
    pub function: String,
    /// `Version`: `$LATEST` or a version number.
    pub version: String,
    /// `Status`.
    pub status: ExecutionStatus,
    /// `InputPayload`.
    pub input: String,
    /// `Result` (SUCCEEDED).
    pub result: Option<String>,
    /// `Error` (FAILED, TIMED_OUT, STOPPED).
    pub error: Option<ErrorObject>,
    /// `StartTimestamp`, on the emulator's clock.
    pub started: SystemTime,
    /// `EndTimestamp`, on the emulator's clock.
    pub ended: Option<SystemTime>,
    /// `DurableConfig.ExecutionTimeout`, seconds.
    pub execution_timeout_secs: u64,
    /// Invocations of the handler so far: the first and each replay.
    pub invocations: u32,
}

impl ExecutionInfo {
    /// Whether the execution has ended (any status but RUNNING).
    pub fn is_done(&self) -> bool {
        self.status != ExecutionStatus::Running
    }
}

impl From<&Execution> for ExecutionInfo {
    fn from(e: &Execution) -> ExecutionInfo {
        ExecutionInfo {
            arn: e.start.arn.clone(),
            name: e.start.name.clone(),
            function_arn: format!("{}:{}", e.start.function_arn, e.start.version),
            function: e.start.function.clone(),
            version: e.start.version.clone(),
            status: e.status,
            input: e.start.input.clone(),
            result: e.result.clone(),
            error: e.error.clone(),
            started: e.started,
            ended: e.ended,
            execution_timeout_secs: e.start.timeout.as_secs(),
            invocations: e.invocations,
        }
    }
}
