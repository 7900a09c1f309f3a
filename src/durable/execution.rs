//! One durable execution as a pure state machine: its record (ARN, status, input,
//! result or error, timestamps), its operations, checkpoint tokens and history. Every
//! method takes the time from the caller (the emulator's clock) and performs no I/O;
//! what the service must do in response (invoke a chained target) comes back as values.
//!
//! Operation transitions follow Lambda (and the checks of AWS's local durable service):
//! STEP START from nothing or READY; SUCCEED/FAIL from nothing, STARTED or READY; RETRY
//! from STARTED or READY makes it PENDING until `NextAttemptDelaySeconds` pass, then
//! READY. WAIT START makes it STARTED until `WaitSeconds` pass, then SUCCEEDED. CALLBACK
//! START gives it a `CallbackId`; an external result, failure, timeout or missed
//! heartbeat ends it. CHAINED_INVOKE START asks the service to invoke the target; its
//! result ends it. CONTEXT START/SUCCEED/FAIL. EXECUTION SUCCEED/FAIL (the last update
//! of a checkpoint) ends the execution. Anything else is `InvalidParameterValueException`.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use base64::Engine;
use serde_json::{Value, json};

use super::DurableError;
use super::history::{self, History, Subject};
use super::model::*;

/// Invocations that fail outside the durable protocol (the runtime crashed, timed out,
/// returned something that is not a durable output) are retried this many times, each
/// replaying the checkpoints, before the execution fails with the last error (as Lambda
/// retries such "backend" failures; two retries, like an asynchronous invoke's).
pub(crate) const INVOCATION_RETRIES: u32 = 2;

/// How long a `ClientToken` of `CheckpointDurableExecution` identifies its request: "Lambda
/// uses this token to detect and handle duplicate requests within a 15-minute window"
/// (the API model).
pub(crate) const CLIENT_TOKEN_WINDOW: Duration = Duration::from_secs(15 * 60);

/// How an execution starts: what `Invoke` of a durable function gives.
#[derive(Debug, Clone)]
pub(crate) struct Start {
    pub(crate) arn: String,
    pub(crate) name: String,
    pub(crate) id: String,
    /// The function's unqualified ARN.
    pub(crate) function_arn: String,
    pub(crate) function: String,
    /// `$LATEST` or a version number.
    pub(crate) version: String,
    pub(crate) input: String,
    /// `DurableConfig.ExecutionTimeout`.
    pub(crate) timeout: Duration,
    /// `DurableConfig.RetentionPeriodInDays`: how long the execution is kept once it has
    /// ended.
    pub(crate) retention: Duration,
}

/// What the handler returned (`{Status, Result, Error}`), or that the invocation failed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum InvocationOutcome {
    Succeeded(Option<String>),
    Failed(ErrorObject),
    Pending,
    /// A function error (unhandled exception, timeout, crash) or an unreadable output.
    Error(ErrorObject),
}

impl InvocationOutcome {
    /// Reads the handler's output document.
    pub(crate) fn parse(output: &[u8]) -> InvocationOutcome {
        let invalid = |why: String| {
            InvocationOutcome::Error(ErrorObject::new(
                "InvalidDurableExecutionOutput",
                format!("The durable handler's output {why}"),
            ))
        };
        let Ok(value) = serde_json::from_slice::<Value>(output) else {
            return invalid("is not JSON".into());
        };
        match value.get("Status").and_then(Value::as_str) {
            Some("SUCCEEDED") => InvocationOutcome::Succeeded(
                value
                    .get("Result")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            ),
            Some("FAILED") => InvocationOutcome::Failed(
                value
                    .get("Error")
                    .and_then(|e| serde_json::from_value(e.clone()).ok())
                    .unwrap_or_default(),
            ),
            Some("PENDING") => InvocationOutcome::Pending,
            other => invalid(format!("has no valid Status: {other:?}")),
        }
    }
}

/// How a callback or a chained invoke ended, from outside the handler.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Completion {
    Succeeded(Option<String>),
    Failed(ErrorObject),
    TimedOut(ErrorObject),
}

/// Work a checkpoint hands to the service.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Effect {
    /// Invoke `function` with `payload`; report back with
    /// [`Execution::complete_chained_invoke`] for operation `operation`.
    ChainedInvoke {
        operation: String,
        function: String,
        payload: String,
    },
    /// A callback was created: the store maps its id to this execution.
    CallbackCreated {
        operation: String,
        callback_id: String,
    },
}

/// What `CheckpointDurableExecution` answers.
#[derive(Debug, Clone)]
pub(crate) struct CheckpointResult {
    /// `None` once the checkpoint ended the execution (as Lambda omits it then).
    pub(crate) token: Option<String>,
    pub(crate) operations: Vec<Operation>,
    pub(crate) effects: Vec<Effect>,
}

/// A checkpoint answered under a `ClientToken`: the request, to recognise a retry of it,
/// and the answer, to give the retry.
#[derive(Debug, Clone)]
struct Answered {
    at: SystemTime,
    token: String,
    updates: Vec<OperationUpdate>,
    result: CheckpointResult,
}

/// What the service keeps about an operation beyond its wire shape: deadlines.
#[derive(Debug, Clone, Default)]
struct Timers {
    callback_timeout: Option<SystemTime>,
    heartbeat_every: Option<Duration>,
    heartbeat_deadline: Option<SystemTime>,
}

/// One durable execution.
#[derive(Debug, Clone)]
pub(crate) struct Execution {
    pub(crate) start: Start,
    pub(crate) status: ExecutionStatus,
    pub(crate) result: Option<String>,
    pub(crate) error: Option<ErrorObject>,
    pub(crate) started: SystemTime,
    pub(crate) ended: Option<SystemTime>,
    operations: Vec<Operation>,
    /// When each operation (by index in `operations`) last changed, as a count of
    /// changes in this execution: what `CheckpointDurableExecution` answers with is the
    /// operations changed since the handler last saw them.
    touched: Vec<u64>,
    /// The count of changes so far.
    changes: u64,
    /// `changes` when the handler last saw every operation (its invocation's envelope,
    /// or a checkpoint's answer).
    seen: u64,
    index: HashMap<String, usize>,
    timers: HashMap<String, Timers>,
    history: History,
    token_seq: u64,
    token: String,
    /// An invocation is running (at most one per execution).
    pub(crate) invoking: bool,
    /// Something changed since the running (or last) invocation began that the handler
    /// must see: re-invoke once it is over.
    pub(crate) ready: bool,
    /// Invocations so far (the first one and every replay).
    pub(crate) invocations: u32,
    /// Failed invocations in a row (reset by any durable outcome).
    failed_invocations: u32,
    /// Checkpoints answered under a `ClientToken` in the last [`CLIENT_TOKEN_WINDOW`].
    answered: HashMap<String, Answered>,
}

impl Execution {
    /// A new RUNNING execution with its EXECUTION operation; the first invocation is due.
    pub(crate) fn new(start: Start, now: SystemTime) -> Execution {
        let mut execution = Execution {
            status: ExecutionStatus::Running,
            result: None,
            error: None,
            started: now,
            ended: None,
            operations: Vec::new(),
            touched: Vec::new(),
            changes: 0,
            seen: 0,
            index: HashMap::new(),
            timers: HashMap::new(),
            history: History::default(),
            token_seq: 0,
            token: String::new(),
            invoking: false,
            ready: true,
            invocations: 0,
            failed_invocations: 0,
            answered: HashMap::new(),
            start,
        };
        execution.new_token();
        let op = Operation {
            id: execution.start.id.clone(),
            parent_id: None,
            name: Some(execution.start.name.clone()),
            kind: OperationType::Execution,
            sub_type: None,
            start_timestamp: now,
            end_timestamp: None,
            status: OperationStatus::Started,
            execution_details: Some(ExecutionDetails {
                input_payload: Some(execution.start.input.clone()),
            }),
            context_details: None,
            step_details: None,
            wait_details: None,
            callback_details: None,
            chained_invoke_details: None,
        };
        execution.insert(op);
        let details = json!({
            "Input": history::payload(Some(&execution.start.input)),
            "ExecutionTimeout": execution.start.timeout.as_secs(),
        });
        execution.event(
            "ExecutionStarted",
            &execution.start.id.clone(),
            now,
            details,
        );
        execution
    }

    fn insert(&mut self, op: Operation) {
        self.index.insert(op.id.clone(), self.operations.len());
        self.operations.push(op);
        self.changes += 1;
        self.touched.push(self.changes);
    }

    fn op(&self, id: &str) -> Option<&Operation> {
        self.index.get(id).map(|&i| &self.operations[i])
    }

    /// The operation `id`, to change: it counts as changed (the next checkpoint answers
    /// with it).
    fn op_mut(&mut self, id: &str) -> Option<&mut Operation> {
        let &i = self.index.get(id)?;
        self.changes += 1;
        self.touched[i] = self.changes;
        Some(&mut self.operations[i])
    }

    /// The operations changed since the handler last saw them, in creation order; the
    /// handler has seen them all from now on.
    fn unseen(&mut self) -> Vec<Operation> {
        let seen = std::mem::replace(&mut self.seen, self.changes);
        self.operations
            .iter()
            .zip(&self.touched)
            .filter(|&(_, &touched)| touched > seen)
            .map(|(op, _)| op.clone())
            .collect()
    }

    fn event(&mut self, event_type: &'static str, id: &str, now: SystemTime, details: Value) {
        let (name, parent_id, sub_type) = match self.op(id) {
            Some(op) => (op.name.clone(), op.parent_id.clone(), op.sub_type.clone()),
            None => (None, None, None),
        };
        self.history.push(
            event_type,
            Subject {
                id,
                name: name.as_deref(),
                parent_id: parent_id.as_deref(),
                sub_type: sub_type.as_deref(),
            },
            now,
            details,
        );
    }

    fn new_token(&mut self) {
        self.token_seq += 1;
        let raw = format!("{}:{}", self.start.arn, self.token_seq);
        self.token = base64::engine::general_purpose::STANDARD.encode(raw);
    }

    /// The checkpoint token valid now.
    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    /// Every operation, in the order they were first checkpointed.
    pub(crate) fn operations(&self) -> &[Operation] {
        &self.operations
    }

    /// The history, oldest event first.
    pub(crate) fn events(&self) -> &[history::Event] {
        self.history.events()
    }

    /// When the execution times out.
    pub(crate) fn deadline(&self) -> SystemTime {
        self.started + self.start.timeout
    }

    /// Whether the scheduler should start an invocation now.
    pub(crate) fn needs_invocation(&self) -> bool {
        self.status == ExecutionStatus::Running && !self.invoking && self.ready
    }

    /// Starts an invocation: a fresh token (revoking the previous invocation's), and the
    /// envelope the handler receives (`{DurableExecutionArn, CheckpointToken,
    /// InitialExecutionState: {Operations, NextMarker}}`, the operations paged at
    /// `page_size`).
    pub(crate) fn begin_invocation(&mut self, page_size: usize) -> Value {
        self.invoking = true;
        self.ready = false;
        self.invocations += 1;
        self.new_token();
        // The envelope and its pages hold every operation.
        self.seen = self.changes;
        let (operations, marker) = super::paging::page(&self.operations, None, Some(page_size))
            .expect("the first page always exists");
        let operations: Vec<Value> = operations.iter().map(envelope_operation).collect();
        json!({
            "DurableExecutionArn": self.start.arn,
            "CheckpointToken": self.token,
            "InitialExecutionState": {"Operations": operations, "NextMarker": marker},
        })
    }

    /// Ends the running invocation with what the handler returned.
    pub(crate) fn end_invocation(
        &mut self,
        outcome: InvocationOutcome,
        request_id: &str,
        began: SystemTime,
        now: SystemTime,
    ) {
        self.invoking = false;
        let error = match &outcome {
            InvocationOutcome::Error(e) => Some(e.clone()),
            _ => None,
        };
        let mut details = json!({
            "StartTimestamp": epoch_seconds::to_f64(began),
            "EndTimestamp": epoch_seconds::to_f64(now),
            "RequestId": request_id,
        });
        if let Some(e) = &error {
            details["Error"] = history::error(Some(e));
        }
        let id = self.start.id.clone();
        self.event("InvocationCompleted", &id, now, details);
        if self.status != ExecutionStatus::Running {
            return;
        }
        if !matches!(outcome, InvocationOutcome::Error(_)) {
            self.failed_invocations = 0;
        }
        match outcome {
            InvocationOutcome::Succeeded(result) => self.succeed(result, now),
            InvocationOutcome::Failed(error) => {
                self.finish(ExecutionStatus::Failed, Some(error), now)
            }
            InvocationOutcome::Error(error) => {
                self.failed_invocations += 1;
                if self.failed_invocations > INVOCATION_RETRIES {
                    self.finish(ExecutionStatus::Failed, Some(error), now)
                } else {
                    // Replay from the checkpoints.
                    self.ready = true;
                }
            }
            InvocationOutcome::Pending => {}
        }
    }

    fn succeed(&mut self, result: Option<String>, now: SystemTime) {
        self.result = result.clone();
        self.end(ExecutionStatus::Succeeded, now);
        let id = self.start.id.clone();
        let details = json!({"Result": history::payload(result.as_deref())});
        self.event("ExecutionSucceeded", &id, now, details);
    }

    fn finish(&mut self, status: ExecutionStatus, error: Option<ErrorObject>, now: SystemTime) {
        self.error = error.clone();
        self.end(status, now);
        let event = match status {
            ExecutionStatus::Failed => "ExecutionFailed",
            ExecutionStatus::TimedOut => "ExecutionTimedOut",
            _ => "ExecutionStopped",
        };
        let id = self.start.id.clone();
        let details = json!({"Error": history::error(error.as_ref())});
        self.event(event, &id, now, details);
    }

    fn end(&mut self, status: ExecutionStatus, now: SystemTime) {
        self.status = status;
        self.ended = Some(now);
        let op_status = match status {
            ExecutionStatus::Succeeded => OperationStatus::Succeeded,
            ExecutionStatus::Failed => OperationStatus::Failed,
            ExecutionStatus::TimedOut => OperationStatus::TimedOut,
            _ => OperationStatus::Stopped,
        };
        let id = self.start.id.clone();
        if let Some(op) = self.op_mut(&id) {
            op.status = op_status;
            op.end_timestamp = Some(now);
        }
        self.timers.clear();
    }

    /// `StopDurableExecution`: ends a RUNNING execution STOPPED with `error`.
    pub(crate) fn stop(
        &mut self,
        error: Option<ErrorObject>,
        now: SystemTime,
    ) -> Result<SystemTime, DurableError> {
        if self.status != ExecutionStatus::Running {
            return Err(DurableError::invalid(format!(
                "Durable execution {} has already ended ({})",
                self.start.arn,
                self.status.as_str()
            )));
        }
        self.finish(ExecutionStatus::Stopped, error, now);
        Ok(now)
    }

    /// When the execution stops being kept: `RetentionPeriodInDays` after it ended;
    /// `None` while it runs.
    pub(crate) fn expires(&self) -> Option<SystemTime> {
        self.ended.map(|ended| ended + self.start.retention)
    }

    /// `CheckpointDurableExecution` with its optional `ClientToken`: a request that
    /// repeats one answered under the same `ClientToken` in the last 15 minutes (same
    /// `CheckpointToken`, same updates: an SDK retrying a call whose answer it lost) is
    /// not applied again; it gets the first call's answer (the same new `CheckpointToken`
    /// and operations), even though its `CheckpointToken` is no longer current or the
    /// execution has ended since. The same `ClientToken` on a different request is
    /// `InvalidParameterValueException`, as an idempotency token reused with other
    /// parameters is across AWS. Without a `ClientToken`, [`Execution::checkpoint`].
    pub(crate) fn checkpoint_with_client_token(
        &mut self,
        token: &str,
        updates: &[OperationUpdate],
        client_token: Option<&str>,
        now: SystemTime,
    ) -> Result<CheckpointResult, DurableError> {
        let Some(client_token) = client_token else {
            return self.checkpoint(token, updates, now);
        };
        if client_token.is_empty()
            || client_token.len() > 64
            || !client_token.bytes().all(|b| (0x21..=0x7e).contains(&b))
        {
            return Err(DurableError::invalid(format!(
                "Invalid ClientToken: {client_token:?} (1-64 printable ASCII characters)"
            )));
        }
        // Kept out of the copy `checkpoint` makes to apply the updates all or nothing.
        let mut answered = std::mem::take(&mut self.answered);
        answered.retain(|_, a| now < a.at + CLIENT_TOKEN_WINDOW);
        let out = match answered.get(client_token) {
            Some(a) if a.token == token && a.updates == updates => Ok(a.result.clone()),
            Some(_) => Err(DurableError::invalid(format!(
                "ClientToken {client_token} was already used for a different CheckpointDurableExecution request"
            ))),
            None => self.checkpoint(token, updates, now).inspect(|result| {
                let answer = CheckpointResult {
                    // A retry starts nothing again.
                    effects: Vec::new(),
                    ..result.clone()
                };
                answered.insert(
                    client_token.to_string(),
                    Answered {
                        at: now,
                        token: token.to_string(),
                        updates: updates.to_vec(),
                        result: answer,
                    },
                );
            }),
        };
        self.answered = answered;
        out
    }

    /// `CheckpointDurableExecution`: applies `updates` all or nothing, under `token`.
    pub(crate) fn checkpoint(
        &mut self,
        token: &str,
        updates: &[OperationUpdate],
        now: SystemTime,
    ) -> Result<CheckpointResult, DurableError> {
        if self.status != ExecutionStatus::Running {
            return Err(DurableError::invalid(format!(
                "Invalid checkpoint token: durable execution {} has ended ({})",
                self.start.arn,
                self.status.as_str()
            )));
        }
        if token != self.token {
            return Err(DurableError::invalid(
                "Invalid checkpoint token: it is not the current token of this execution",
            ));
        }
        if let Some(i) = updates
            .iter()
            .position(|u| u.kind == OperationType::Execution)
            && i + 1 != updates.len()
        {
            return Err(DurableError::invalid(
                "EXECUTION checkpoint must be the last update.",
            ));
        }
        // All or nothing: the updates go to a copy, which replaces this execution only if
        // every one applies. The history is only appended to, so it is not copied (it grows
        // with the execution; copying and dropping its JSON details was most of a
        // checkpoint's instructions under callgrind, `benches/durable.rs`): a failure
        // truncates it back.
        let history = std::mem::take(&mut self.history);
        let kept = history.events().len();
        let mut next = self.clone();
        next.history = history;
        let mut effects = Vec::new();
        for update in updates {
            if let Err(e) = next.apply(update, now, &mut effects) {
                self.history = std::mem::take(&mut next.history);
                self.history.truncate(kept);
                return Err(e);
            }
        }
        *self = next;
        let token = if self.status == ExecutionStatus::Running {
            self.new_token();
            Some(self.token.clone())
        } else {
            None
        };
        // As AWS's own local service answers (aws-durable-execution-sdk-python-testing,
        // `CheckpointCore.apply`): the operations new or changed since the handler last saw
        // them (this call's updates, and what the service did meanwhile: a wait that
        // fired, a callback's result), not every operation again. The SDKs merge them
        // into the state they hold; a 10-step workflow's checkpoints then answer with one
        // operation each instead of up to 11.
        Ok(CheckpointResult {
            token,
            operations: self.unseen(),
            effects,
        })
    }

    fn apply(
        &mut self,
        u: &OperationUpdate,
        now: SystemTime,
        effects: &mut Vec<Effect>,
    ) -> Result<(), DurableError> {
        use OperationAction::*;
        use OperationStatus as S;
        use OperationType::*;
        let invalid = |what: &str| {
            Err(DurableError::invalid(format!(
                "Invalid {} action {:?} for operation {}: {what}",
                u.kind.as_str(),
                u.action,
                u.id
            )))
        };
        let current = self.op(&u.id).map(|op| (op.kind, op.status));
        if let Some((kind, _)) = current
            && kind != u.kind
        {
            return invalid("inconsistent operation type");
        }
        if let Some(parent) = &u.parent_id
            && self.op(parent).is_none()
            && parent != &u.id
        {
            return invalid("invalid parent operation id");
        }
        if u.action == Fail && u.payload.is_some() {
            return invalid("cannot provide a Payload for FAIL");
        }
        if u.action == Succeed && u.error.is_some() {
            return invalid("cannot provide an Error for SUCCEED");
        }
        let status = current.map(|(_, s)| s);
        match (u.kind, u.action, status) {
            (Execution, Succeed, _) => {
                self.succeed(u.payload.clone(), now);
            }
            (Execution, Fail, _) => {
                self.finish(ExecutionStatus::Failed, u.error.clone(), now);
            }
            (Execution, _, _) => return invalid("only SUCCEED and FAIL"),

            (Step, Start, None | Some(S::Ready)) => {
                self.upsert(u, now, S::Started);
                self.event("StepStarted", &u.id, now, json!({}));
            }
            (Step, Succeed, None | Some(S::Started | S::Ready)) => {
                let op = self.upsert(u, now, S::Succeeded);
                let details = op.step_details.get_or_insert_default();
                details.result = u.payload.clone();
                details.next_attempt_timestamp = None;
                let attempt = details.attempt;
                let details = json!({
                    "Result": history::payload(u.payload.as_deref()),
                    "RetryDetails": {"CurrentAttempt": attempt},
                });
                self.event("StepSucceeded", &u.id, now, details);
            }
            (Step, Fail, None | Some(S::Started | S::Ready)) => {
                let op = self.upsert(u, now, S::Failed);
                let details = op.step_details.get_or_insert_default();
                details.error = u.error.clone();
                details.next_attempt_timestamp = None;
                let attempt = details.attempt;
                let details = json!({
                    "Error": history::error(u.error.as_ref()),
                    "RetryDetails": {"CurrentAttempt": attempt},
                });
                self.event("StepFailed", &u.id, now, details);
            }
            (Step, Retry, None | Some(S::Started | S::Ready)) => {
                let delay = u
                    .step_options
                    .as_ref()
                    .and_then(|o| o.next_attempt_delay_seconds)
                    .unwrap_or(0);
                let op = self.upsert(u, now, S::Pending);
                let details = op.step_details.get_or_insert_default();
                details.attempt += 1;
                details.next_attempt_timestamp = Some(now + Duration::from_secs(delay));
                details.error = u.error.clone();
                if u.payload.is_some() {
                    details.result = u.payload.clone();
                }
                let attempt = details.attempt;
                let details = json!({
                    "Error": history::error(u.error.as_ref()),
                    "RetryDetails": {"CurrentAttempt": attempt, "NextAttemptDelaySeconds": delay},
                });
                self.event("StepFailed", &u.id, now, details);
            }
            (Step, Start | Succeed | Fail | Retry, Some(_)) => {
                return invalid("the step is not in a state that allows it");
            }

            (Wait, Start, None) => {
                let seconds = u
                    .wait_options
                    .as_ref()
                    .and_then(|o| o.wait_seconds)
                    .unwrap_or(0);
                let end = now + Duration::from_secs(seconds);
                let op = self.upsert(u, now, S::Started);
                op.wait_details = Some(WaitDetails {
                    scheduled_end_timestamp: Some(end),
                });
                let details = json!({
                    "Duration": seconds,
                    "ScheduledEndTimestamp": epoch_seconds::to_f64(end),
                });
                self.event("WaitStarted", &u.id, now, details);
            }
            (Wait, Cancel, Some(S::Started)) => {
                self.close(&u.id, S::Cancelled, now);
                let details = json!({"Error": history::error(u.error.as_ref())});
                self.event("WaitCancelled", &u.id, now, details);
            }

            (Callback, Start, None) => {
                let raw = format!("{}|{}", self.start.arn, u.id);
                let callback_id = base64::engine::general_purpose::STANDARD.encode(raw);
                let options = u.callback_options.clone().unwrap_or_default();
                let secs = |s: Option<u64>| s.filter(|s| *s > 0).map(Duration::from_secs);
                let (timeout, heartbeat) = (
                    secs(options.timeout_seconds),
                    secs(options.heartbeat_timeout_seconds),
                );
                self.timers.insert(
                    u.id.clone(),
                    Timers {
                        callback_timeout: timeout.map(|t| now + t),
                        heartbeat_every: heartbeat,
                        heartbeat_deadline: heartbeat.map(|h| now + h),
                    },
                );
                let op = self.upsert(u, now, S::Started);
                op.callback_details = Some(CallbackDetails {
                    callback_id: Some(callback_id.clone()),
                    result: None,
                    error: None,
                });
                let details = json!({
                    "CallbackId": callback_id,
                    "Timeout": options.timeout_seconds.unwrap_or(0),
                    "HeartbeatTimeout": options.heartbeat_timeout_seconds.unwrap_or(0),
                });
                self.event("CallbackStarted", &u.id, now, details);
                effects.push(Effect::CallbackCreated {
                    operation: u.id.clone(),
                    callback_id,
                });
            }
            (Callback, Cancel, Some(S::Started)) => {
                self.timers.remove(&u.id);
                self.close(&u.id, S::Cancelled, now);
            }

            (ChainedInvoke, Start, None) => {
                let Some(options) = &u.chained_invoke_options else {
                    return invalid("ChainedInvokeOptions.FunctionName is required");
                };
                let payload = u.payload.clone().unwrap_or_else(|| "{}".into());
                let op = self.upsert(u, now, S::Started);
                op.chained_invoke_details = Some(ChainedInvokeDetails::default());
                let details = json!({
                    "FunctionName": options.function_name,
                    "Input": history::payload(Some(&payload)),
                });
                self.event("ChainedInvokeStarted", &u.id, now, details);
                effects.push(Effect::ChainedInvoke {
                    operation: u.id.clone(),
                    function: options.function_name.clone(),
                    payload,
                });
            }
            (ChainedInvoke, Cancel, Some(S::Started)) => {
                self.close(&u.id, S::Cancelled, now);
            }

            (Context, Start, None) => {
                let op = self.upsert(u, now, S::Started);
                op.context_details = Some(ContextDetails {
                    replay_children: u.context_options.as_ref().and_then(|o| o.replay_children),
                    ..Default::default()
                });
                self.event("ContextStarted", &u.id, now, json!({}));
            }
            (Context, Succeed, None | Some(S::Started)) => {
                let op = self.upsert(u, now, S::Succeeded);
                op.context_details.get_or_insert_default().result = u.payload.clone();
                let details = json!({"Result": history::payload(u.payload.as_deref())});
                self.event("ContextSucceeded", &u.id, now, details);
            }
            (Context, Fail, None | Some(S::Started)) => {
                let op = self.upsert(u, now, S::Failed);
                op.context_details.get_or_insert_default().error = u.error.clone();
                let details = json!({"Error": history::error(u.error.as_ref())});
                self.event("ContextFailed", &u.id, now, details);
            }

            (_, _, None) => return invalid("the operation does not exist"),
            (_, _, Some(_)) => return invalid("not allowed in the operation's current status"),
        }
        Ok(())
    }

    /// Creates the operation of `u` or updates it to `status` (terminal: with an end).
    fn upsert(
        &mut self,
        u: &OperationUpdate,
        now: SystemTime,
        status: OperationStatus,
    ) -> &mut Operation {
        if self.op(&u.id).is_none() {
            self.insert(Operation {
                id: u.id.clone(),
                parent_id: u.parent_id.clone(),
                name: u.name.clone(),
                kind: u.kind,
                sub_type: u.sub_type.clone(),
                start_timestamp: now,
                end_timestamp: None,
                status,
                execution_details: None,
                context_details: None,
                step_details: (u.kind == OperationType::Step).then(StepDetails::default),
                wait_details: None,
                callback_details: None,
                chained_invoke_details: None,
            });
        }
        let op = self.op_mut(&u.id).expect("just inserted");
        op.status = status;
        if status.is_terminal() {
            op.end_timestamp = Some(now);
        }
        op
    }

    fn close(
        &mut self,
        id: &str,
        status: OperationStatus,
        now: SystemTime,
    ) -> Option<&mut Operation> {
        let op = self.op_mut(id)?;
        op.status = status;
        op.end_timestamp = Some(now);
        Some(op)
    }

    /// The earliest time something is due: a wait's end, a retry, a callback timeout or
    /// heartbeat deadline, the execution timeout. `None` once the execution has ended.
    pub(crate) fn next_deadline(&self) -> Option<SystemTime> {
        let guards = self
            .timers
            .values()
            .flat_map(|t| [t.callback_timeout, t.heartbeat_deadline])
            .flatten();
        let guards = guards.chain([self.deadline()]).min();
        match (self.next_timer(), guards) {
            _ if self.status != ExecutionStatus::Running => None,
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The earliest timer the handler itself set: a wait's end or a step's retry. Only
    /// these are skipped to by the clock's auto-advance; timeouts (a callback's, its
    /// heartbeat's, the execution's) guard against the outside world being late, and
    /// jumping to them would end every execution that waits for a callback.
    pub(crate) fn next_timer(&self) -> Option<SystemTime> {
        if self.status != ExecutionStatus::Running {
            return None;
        }
        self.operations
            .iter()
            .filter_map(|op| match op.status {
                OperationStatus::Started if op.kind == OperationType::Wait => {
                    op.wait_details.as_ref()?.scheduled_end_timestamp
                }
                OperationStatus::Pending => op.step_details.as_ref()?.next_attempt_timestamp,
                _ => None,
            })
            .min()
    }

    /// Fires everything due at `now`: waits succeed, pending retries become READY,
    /// callbacks time out, the execution times out. Returns whether anything changed
    /// (the handler then has to be invoked again, unless the execution ended).
    pub(crate) fn fire_due(&mut self, now: SystemTime) -> bool {
        if self.status != ExecutionStatus::Running {
            return false;
        }
        if now >= self.deadline() {
            let error = ErrorObject::new(
                "Execution.TimedOut",
                format!(
                    "Durable execution timed out after {} seconds",
                    self.start.timeout.as_secs()
                ),
            );
            self.finish(ExecutionStatus::TimedOut, Some(error), now);
            return true;
        }
        let mut changed = false;
        for i in 0..self.operations.len() {
            let op = &self.operations[i];
            let id = op.id.clone();
            match (op.kind, op.status) {
                (OperationType::Wait, OperationStatus::Started) => {
                    let end = op
                        .wait_details
                        .as_ref()
                        .and_then(|d| d.scheduled_end_timestamp);
                    if end.is_some_and(|e| e <= now) {
                        let seconds = end
                            .and_then(|e| e.duration_since(op.start_timestamp).ok())
                            .unwrap_or_default()
                            .as_secs();
                        self.close(&id, OperationStatus::Succeeded, now);
                        self.event("WaitSucceeded", &id, now, json!({"Duration": seconds}));
                        changed = true;
                    }
                }
                (OperationType::Step, OperationStatus::Pending) => {
                    let next = op
                        .step_details
                        .as_ref()
                        .and_then(|d| d.next_attempt_timestamp);
                    if next.is_some_and(|n| n <= now) {
                        self.op_mut(&id).expect("indexed").status = OperationStatus::Ready;
                        changed = true;
                    }
                }
                (OperationType::Callback, OperationStatus::Started) => {
                    let Some(t) = self.timers.get(&id) else {
                        continue;
                    };
                    let timeout = t.callback_timeout.is_some_and(|d| d <= now);
                    let heartbeat = t.heartbeat_deadline.is_some_and(|d| d <= now);
                    if timeout || heartbeat {
                        let error = if timeout {
                            ErrorObject::new("Callback.Timeout", "Callback timed out")
                        } else {
                            ErrorObject::new(
                                "Callback.HeartbeatTimeout",
                                "Callback heartbeat timed out",
                            )
                        };
                        self.complete(
                            &id,
                            OperationType::Callback,
                            Completion::TimedOut(error),
                            now,
                        )
                        .expect("a started callback completes");
                        changed = true;
                    }
                }
                _ => {}
            }
        }
        if changed {
            self.ready = true;
        }
        changed
    }

    /// `SendDurableExecutionCallbackSuccess` / `Failure` for operation `id`.
    pub(crate) fn complete_callback(
        &mut self,
        id: &str,
        completion: Completion,
        now: SystemTime,
    ) -> Result<(), DurableError> {
        self.check_callback(id)?;
        self.complete(id, OperationType::Callback, completion, now)?;
        self.ready = true;
        Ok(())
    }

    /// `SendDurableExecutionCallbackHeartbeat`: the heartbeat deadline starts again.
    pub(crate) fn heartbeat(&mut self, id: &str, now: SystemTime) -> Result<(), DurableError> {
        self.check_callback(id)?;
        if let Some(t) = self.timers.get_mut(id)
            && let Some(every) = t.heartbeat_every
        {
            t.heartbeat_deadline = Some(now + every);
        }
        Ok(())
    }

    fn check_callback(&self, id: &str) -> Result<(), DurableError> {
        let op = self
            .op(id)
            .filter(|op| op.kind == OperationType::Callback)
            .ok_or_else(|| DurableError::CallbackNotFound(id.to_string()))?;
        match op.status {
            _ if self.status != ExecutionStatus::Running => Err(DurableError::invalid(format!(
                "Durable execution {} has ended ({})",
                self.start.arn,
                self.status.as_str()
            ))),
            OperationStatus::Started => Ok(()),
            OperationStatus::TimedOut => Err(DurableError::CallbackTimedOut(id.to_string())),
            _ => Err(DurableError::invalid(format!(
                "Callback {id} has already completed"
            ))),
        }
    }

    /// A chained invoke's target finished (ignored if the operation was cancelled).
    pub(crate) fn complete_chained_invoke(
        &mut self,
        id: &str,
        completion: Completion,
        now: SystemTime,
    ) {
        if self.status != ExecutionStatus::Running
            || self.op(id).map(|op| op.status) != Some(OperationStatus::Started)
        {
            return;
        }
        if self
            .complete(id, OperationType::ChainedInvoke, completion, now)
            .is_ok()
        {
            self.ready = true;
        }
    }

    fn complete(
        &mut self,
        id: &str,
        kind: OperationType,
        completion: Completion,
        now: SystemTime,
    ) -> Result<(), DurableError> {
        let (status, result, error) = match completion {
            Completion::Succeeded(r) => (OperationStatus::Succeeded, r, None),
            Completion::Failed(e) => (OperationStatus::Failed, None, Some(e)),
            Completion::TimedOut(e) => (OperationStatus::TimedOut, None, Some(e)),
        };
        self.timers.remove(id);
        let op = self
            .close(id, status, now)
            .ok_or_else(|| DurableError::CallbackNotFound(id.to_string()))?;
        let prefix = match kind {
            OperationType::Callback => {
                let d = op.callback_details.get_or_insert_default();
                d.result = result.clone();
                d.error = error.clone();
                "Callback"
            }
            _ => {
                let d = op.chained_invoke_details.get_or_insert_default();
                d.result = result.clone();
                d.error = error.clone();
                "ChainedInvoke"
            }
        };
        let (event, details) = match status {
            OperationStatus::Succeeded => (
                "Succeeded",
                json!({"Result": history::payload(result.as_deref())}),
            ),
            OperationStatus::Failed => ("Failed", json!({"Error": history::error(error.as_ref())})),
            OperationStatus::TimedOut => {
                ("TimedOut", json!({"Error": history::error(error.as_ref())}))
            }
            _ => ("Stopped", json!({"Error": history::error(error.as_ref())})),
        };
        self.event(event_name(prefix, event), id, now, details);
        Ok(())
    }
}

/// An operation as the invocation envelope carries it: the API's shape, but timestamps
/// in epoch *milliseconds* (what the durable SDKs' `from_json_dict` reads), not the REST
/// API's epoch seconds.
fn envelope_operation(op: &Operation) -> Value {
    let mut value = serde_json::to_value(op).expect("operations serialise");
    let to_millis = |v: &mut Value| {
        if let Some(secs) = v.as_f64() {
            *v = Value::from((secs * 1000.0).round() as u64);
        }
    };
    for key in ["StartTimestamp", "EndTimestamp"] {
        value.get_mut(key).map(to_millis);
    }
    if let Some(v) = value.pointer_mut("/StepDetails/NextAttemptTimestamp") {
        to_millis(v);
    }
    if let Some(v) = value.pointer_mut("/WaitDetails/ScheduledEndTimestamp") {
        to_millis(v);
    }
    value
}

/// The static `EventType` for `<prefix><outcome>`.
fn event_name(prefix: &str, outcome: &str) -> &'static str {
    match (prefix, outcome) {
        ("Callback", "Succeeded") => "CallbackSucceeded",
        ("Callback", "Failed") => "CallbackFailed",
        ("Callback", _) => "CallbackTimedOut",
        (_, "Succeeded") => "ChainedInvokeSucceeded",
        (_, "Failed") => "ChainedInvokeFailed",
        (_, "TimedOut") => "ChainedInvokeTimedOut",
        _ => "ChainedInvokeStopped",
    }
}

#[cfg(test)]
#[path = "execution_tests.rs"]
mod tests;
