//! Why a durable operation was refused, with the exception Lambda answers (the model's
//! errors of each durable operation).

use thiserror::Error;

/// A refused durable-execution request.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DurableError {
    /// No execution has this ARN (`ResourceNotFoundException`, 404).
    #[error("Durable execution not found: {0}")]
    ExecutionNotFound(String),
    /// No callback has this id (`ResourceNotFoundException`, 404).
    #[error("Callback not found: {0}")]
    CallbackNotFound(String),
    /// The callback already timed out (`CallbackTimeoutException`, 400).
    #[error("Callback {0} has timed out")]
    CallbackTimedOut(String),
    /// `X-Amz-Durable-Execution-Name` names an execution started with another input
    /// (`DurableExecutionAlreadyStartedException`, 409).
    #[error("Durable execution {name} already exists with a different input: {arn}")]
    AlreadyStarted {
        /// The execution name.
        name: String,
        /// The existing execution.
        arn: String,
    },
    /// A stale or unknown `CheckpointToken`, an update Lambda would refuse, a bad marker
    /// (`InvalidParameterValueException`, 400).
    #[error("{0}")]
    InvalidParameter(String),
    /// The function is not durable (no `DurableConfig`), so it has no executions
    /// (`InvalidParameterValueException`, 400).
    #[error("Function {0} is not a durable function (it has no DurableConfig)")]
    NotDurable(String),
}

impl DurableError {
    pub(crate) fn invalid(message: impl Into<String>) -> DurableError {
        DurableError::InvalidParameter(message.into())
    }
}
