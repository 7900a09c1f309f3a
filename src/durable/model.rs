//! The wire shapes of durable executions, as the Lambda API model (2025-12-01 operations
//! in lambda-service-2015-03-31) names them: `Operation`, `OperationUpdate`,
//! `ErrorObject` and the enums. restJson1 members are PascalCase; `timestamp` shapes
//! travel as epoch seconds (numbers) in JSON bodies.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// `OperationType`: what an operation of a durable execution is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OperationType {
    /// The execution itself; its id is the last segment of the execution ARN.
    Execution,
    /// A child context grouping other operations.
    Context,
    /// A step: code run at most/at least once per attempt, its result checkpointed.
    Step,
    /// A timer (`WaitOptions.WaitSeconds`).
    Wait,
    /// Waits for an external `SendDurableExecutionCallback*` call.
    Callback,
    /// An invocation of another function, run by the service.
    ChainedInvoke,
}

impl OperationType {
    /// The name on the wire (`STEP`, `CHAINED_INVOKE`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Execution => "EXECUTION",
            Self::Context => "CONTEXT",
            Self::Step => "STEP",
            Self::Wait => "WAIT",
            Self::Callback => "CALLBACK",
            Self::ChainedInvoke => "CHAINED_INVOKE",
        }
    }
}

/// `OperationAction`: what a checkpoint update asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OperationAction {
    /// Start the operation.
    Start,
    /// Record its result.
    Succeed,
    /// Record its error.
    Fail,
    /// Schedule another attempt of a step after `StepOptions.NextAttemptDelaySeconds`.
    Retry,
    /// Cancel it (a wait, a callback, a chained invoke).
    Cancel,
}

/// `OperationStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OperationStatus {
    /// Running, or waiting for the service (a wait's timer, a callback, a chained invoke).
    Started,
    /// A step waiting for its retry delay.
    Pending,
    /// A step whose retry delay has passed: the next invocation runs it again.
    Ready,
    /// Finished with a result.
    Succeeded,
    /// Finished with an error.
    Failed,
    /// Cancelled by the handler.
    Cancelled,
    /// A callback or chained invoke that ran out of time.
    TimedOut,
    /// Ended by `StopDurableExecution`.
    Stopped,
}

impl OperationStatus {
    /// The name on the wire (`STARTED`, `TIMED_OUT`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "STARTED",
            Self::Pending => "PENDING",
            Self::Ready => "READY",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
            Self::Cancelled => "CANCELLED",
            Self::TimedOut => "TIMED_OUT",
            Self::Stopped => "STOPPED",
        }
    }

    /// Whether the operation is over (nothing will change it any more).
    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::Started | Self::Pending | Self::Ready)
    }
}

/// `ExecutionStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionStatus {
    /// Started and not finished.
    Running,
    /// The handler returned (or checkpointed) a result.
    Succeeded,
    /// The handler returned (or checkpointed) an error.
    Failed,
    /// `DurableConfig.ExecutionTimeout` passed first.
    TimedOut,
    /// `StopDurableExecution`.
    Stopped,
}

impl ExecutionStatus {
    /// The name on the wire (`RUNNING`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "RUNNING",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
            Self::TimedOut => "TIMED_OUT",
            Self::Stopped => "STOPPED",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Running,
            Self::Succeeded,
            Self::Failed,
            Self::TimedOut,
            Self::Stopped,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

/// `ErrorObject`: an error as the durable APIs carry it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ErrorObject {
    /// `ErrorMessage`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// `ErrorType`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    /// `ErrorData`: free-form (the SDKs put serialised error data here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_data: Option<String>,
    /// `StackTrace`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack_trace: Option<Vec<String>>,
}

impl ErrorObject {
    /// An error of `error_type` with `message`.
    pub fn new(error_type: impl Into<String>, message: impl Into<String>) -> Self {
        ErrorObject {
            error_type: Some(error_type.into()),
            error_message: Some(message.into()),
            ..Default::default()
        }
    }
}

/// `StepOptions`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct StepOptions {
    /// Seconds before the next attempt (1..=31,622,400).
    pub next_attempt_delay_seconds: Option<u64>,
}

/// `WaitOptions`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct WaitOptions {
    /// Seconds to wait (1..=31,622,400).
    pub wait_seconds: Option<u64>,
}

/// `CallbackOptions`; 0 (or absent) means no timeout.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CallbackOptions {
    /// Seconds until the callback times out.
    pub timeout_seconds: Option<u64>,
    /// Seconds allowed between heartbeats.
    pub heartbeat_timeout_seconds: Option<u64>,
}

/// `ChainedInvokeOptions`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ChainedInvokeOptions {
    /// The function to invoke (name or ARN, optionally qualified).
    pub function_name: String,
    /// `TenantId`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
}

/// `ContextOptions`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContextOptions {
    /// `ReplayChildren`.
    pub replay_children: Option<bool>,
}

/// `OperationUpdate`: one change a `CheckpointDurableExecution` call asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OperationUpdate {
    /// `Id` (1-64 characters of `[a-zA-Z0-9-_]`).
    pub id: String,
    /// `ParentId`.
    #[serde(default)]
    pub parent_id: Option<String>,
    /// `Name`.
    #[serde(default)]
    pub name: Option<String>,
    /// `Type`.
    #[serde(rename = "Type")]
    pub kind: OperationType,
    /// `SubType` (SDK-defined, e.g. `Step`, `Wait`, `RunInChildContext`).
    #[serde(default)]
    pub sub_type: Option<String>,
    /// `Action`.
    pub action: OperationAction,
    /// `Payload`: a result (SUCCEED) or an input (START of a chained invoke).
    #[serde(default)]
    pub payload: Option<String>,
    /// `Error` (FAIL, RETRY).
    #[serde(default)]
    pub error: Option<ErrorObject>,
    /// `ContextOptions`.
    #[serde(default)]
    pub context_options: Option<ContextOptions>,
    /// `StepOptions`.
    #[serde(default)]
    pub step_options: Option<StepOptions>,
    /// `WaitOptions`.
    #[serde(default)]
    pub wait_options: Option<WaitOptions>,
    /// `CallbackOptions`.
    #[serde(default)]
    pub callback_options: Option<CallbackOptions>,
    /// `ChainedInvokeOptions`.
    #[serde(default)]
    pub chained_invoke_options: Option<ChainedInvokeOptions>,
}

impl OperationUpdate {
    /// An update of operation `id` of type `kind` with `action` (the rest empty).
    pub fn new(id: impl Into<String>, kind: OperationType, action: OperationAction) -> Self {
        OperationUpdate {
            id: id.into(),
            parent_id: None,
            name: None,
            kind,
            sub_type: None,
            action,
            payload: None,
            error: None,
            context_options: None,
            step_options: None,
            wait_options: None,
            callback_options: None,
            chained_invoke_options: None,
        }
    }
}

/// `ExecutionDetails`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExecutionDetails {
    /// `InputPayload`: the payload the execution was started with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_payload: Option<String>,
}

/// `ContextDetails`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContextDetails {
    /// `ReplayChildren`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay_children: Option<bool>,
    /// `Result`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// `Error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorObject>,
}

/// `StepDetails`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StepDetails {
    /// `Attempt`: retries scheduled so far (0 before the first RETRY).
    pub attempt: u32,
    /// `NextAttemptTimestamp`, while a retry is pending.
    #[serde(
        with = "epoch_seconds::option",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub next_attempt_timestamp: Option<SystemTime>,
    /// `Result`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// `Error`: the last attempt's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorObject>,
}

/// `WaitDetails`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WaitDetails {
    /// `ScheduledEndTimestamp`: when the timer fires.
    #[serde(
        with = "epoch_seconds::option",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub scheduled_end_timestamp: Option<SystemTime>,
}

/// `CallbackDetails`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CallbackDetails {
    /// `CallbackId`: what `SendDurableExecutionCallback*` is called with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_id: Option<String>,
    /// `Result`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// `Error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorObject>,
}

/// `ChainedInvokeDetails`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ChainedInvokeDetails {
    /// `Result`: the target's response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// `Error`: the target's error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorObject>,
}

/// `Operation`: one recorded operation of a durable execution, as
/// `GetDurableExecutionState`, the checkpoint response and the invocation envelope carry
/// it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Operation {
    /// `Id`.
    pub id: String,
    /// `ParentId`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub parent_id: Option<String>,
    /// `Name`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub name: Option<String>,
    /// `Type`.
    #[serde(rename = "Type")]
    pub kind: OperationType,
    /// `SubType`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sub_type: Option<String>,
    /// `StartTimestamp`.
    #[serde(with = "epoch_seconds")]
    pub start_timestamp: SystemTime,
    /// `EndTimestamp`, once terminal.
    #[serde(
        with = "epoch_seconds::option",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub end_timestamp: Option<SystemTime>,
    /// `Status`.
    pub status: OperationStatus,
    /// `ExecutionDetails` (type EXECUTION).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub execution_details: Option<ExecutionDetails>,
    /// `ContextDetails` (type CONTEXT).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub context_details: Option<ContextDetails>,
    /// `StepDetails` (type STEP).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub step_details: Option<StepDetails>,
    /// `WaitDetails` (type WAIT).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub wait_details: Option<WaitDetails>,
    /// `CallbackDetails` (type CALLBACK).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub callback_details: Option<CallbackDetails>,
    /// `ChainedInvokeDetails` (type CHAINED_INVOKE).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub chained_invoke_details: Option<ChainedInvokeDetails>,
}

impl Operation {
    /// The operation's result, whichever its type: a STEP's, a CONTEXT's, a CALLBACK's
    /// (the payload `SendDurableExecutionCallbackSuccess` carried) or a CHAINED_INVOKE's
    /// (the target's response). The SDKs serialise results as JSON, so a step returning
    /// `5` reads `Some("5")`.
    pub fn result(&self) -> Option<&str> {
        let result = match self.kind {
            OperationType::Step => self.step_details.as_ref().and_then(|d| d.result.as_ref()),
            OperationType::Context => self
                .context_details
                .as_ref()
                .and_then(|d| d.result.as_ref()),
            OperationType::Callback => self
                .callback_details
                .as_ref()
                .and_then(|d| d.result.as_ref()),
            OperationType::ChainedInvoke => self
                .chained_invoke_details
                .as_ref()
                .and_then(|d| d.result.as_ref()),
            OperationType::Execution | OperationType::Wait => None,
        };
        result.map(String::as_str)
    }

    /// The operation's error, whichever its type (a STEP's is its last attempt's).
    pub fn error(&self) -> Option<&ErrorObject> {
        match self.kind {
            OperationType::Step => self.step_details.as_ref()?.error.as_ref(),
            OperationType::Context => self.context_details.as_ref()?.error.as_ref(),
            OperationType::Callback => self.callback_details.as_ref()?.error.as_ref(),
            OperationType::ChainedInvoke => self.chained_invoke_details.as_ref()?.error.as_ref(),
            OperationType::Execution | OperationType::Wait => None,
        }
    }
}

/// `timestamp` members as restJson1 sends them in bodies: epoch seconds, fractional
/// (millisecond precision here).
pub(crate) mod epoch_seconds {
    use super::*;
    use serde::{Deserializer, Serializer};

    /// Epoch seconds with millisecond precision.
    pub(crate) fn to_f64(t: SystemTime) -> f64 {
        let ms = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
        ms as f64 / 1000.0
    }

    /// The time `secs` after the epoch (negative: the epoch).
    pub(crate) fn from_f64(secs: f64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs_f64(secs.max(0.0))
    }

    pub(crate) fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(to_f64(*t))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        f64::deserialize(d).map(from_f64)
    }

    pub(crate) mod option {
        use super::*;

        pub(crate) fn serialize<S: Serializer>(
            t: &Option<SystemTime>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_f64(to_f64(*t)),
                None => s.serialize_none(),
            }
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<SystemTime>, D::Error> {
            Ok(Option::<f64>::deserialize(d)?.map(from_f64))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn updates_parse_as_the_python_sdk_sends_them() {
        let update: OperationUpdate = serde_json::from_value(json!({
            "Id": "c4ca4238a0b92382", "ParentId": null, "Name": "fetch", "Type": "STEP",
            "SubType": "Step", "Action": "RETRY",
            "Error": {"ErrorType": "ValueError", "ErrorMessage": "boom", "StackTrace": ["a"]},
            "StepOptions": {"NextAttemptDelaySeconds": 5}
        }))
        .unwrap();
        assert_eq!(update.kind, OperationType::Step);
        assert_eq!(update.action, OperationAction::Retry);
        assert_eq!(
            update.step_options.unwrap().next_attempt_delay_seconds,
            Some(5)
        );
        assert_eq!(
            update.error.unwrap().error_type.as_deref(),
            Some("ValueError")
        );
    }

    #[test]
    fn operations_serialise_timestamps_as_epoch_seconds_and_omit_empty_members() {
        let op = Operation {
            id: "w".into(),
            parent_id: None,
            name: None,
            kind: OperationType::Wait,
            sub_type: None,
            start_timestamp: UNIX_EPOCH + Duration::from_millis(1_700_000_000_250),
            end_timestamp: None,
            status: OperationStatus::Started,
            execution_details: None,
            context_details: None,
            step_details: None,
            wait_details: Some(WaitDetails {
                scheduled_end_timestamp: Some(UNIX_EPOCH + Duration::from_secs(1_700_000_060)),
            }),
            callback_details: None,
            chained_invoke_details: None,
        };
        let value = serde_json::to_value(&op).unwrap();
        assert_eq!(
            value,
            json!({"Id": "w", "Type": "WAIT", "StartTimestamp": 1_700_000_000.25,
                   "Status": "STARTED",
                   "WaitDetails": {"ScheduledEndTimestamp": 1_700_000_060.0}})
        );
        let back: Operation = serde_json::from_value(value).unwrap();
        assert_eq!(back, op);
    }

    #[test]
    fn terminal_statuses_are_the_ones_nothing_changes() {
        assert!(!OperationStatus::Started.is_terminal());
        assert!(!OperationStatus::Pending.is_terminal());
        assert!(!OperationStatus::Ready.is_terminal());
        assert!(OperationStatus::Succeeded.is_terminal());
        assert!(OperationStatus::TimedOut.is_terminal());
        assert_eq!(
            ExecutionStatus::parse("TIMED_OUT"),
            Some(ExecutionStatus::TimedOut)
        );
        assert_eq!(ExecutionStatus::parse("nope"), None);
    }

    #[test]
    fn wire_names_are_the_serialised_ones() {
        use OperationStatus as S;
        use OperationType as T;
        for kind in [
            T::Execution,
            T::Context,
            T::Step,
            T::Wait,
            T::Callback,
            T::ChainedInvoke,
        ] {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        for status in [
            S::Started,
            S::Pending,
            S::Ready,
            S::Succeeded,
            S::Failed,
            S::Cancelled,
            S::TimedOut,
            S::Stopped,
        ] {
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
    }
}
