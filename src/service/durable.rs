//! Durable executions over the pure core ([`crate::durable`]): starting them from an
//! invoke, the scheduler that (re-)invokes a handler when its execution needs it, the
//! chained invokes a checkpoint asks for, and the operations both front doors call
//! (checkpoint, state, describe, history, list, stop, callbacks).
//!
//! One driver task per running execution. It registers for changes before it reads the
//! execution, then either invokes the handler (an operation became ready: a wait's timer,
//! a retry delay, a callback result, a chained invoke's end, or the first invocation),
//! or sleeps until the next deadline on the emulator's [`Clock`] or the next change.
//! Nothing polls.

use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::sync::watch;

use super::Core;
use crate::deploy::{FunctionConfig, arn as function_arn};
use crate::durable::execution::{CheckpointResult, Completion, Effect, InvocationOutcome, Start};
use crate::durable::model::{ErrorObject, ExecutionStatus, Operation, OperationUpdate};
use crate::durable::store::{ListFilter, Store};
use crate::durable::{Clock, DurableError, Event, ExecutionInfo, arn, paging};
use crate::invoke::{FunctionError, InvokeError, InvokeOutput, InvokeRequest};

/// Operations in the invocation envelope's first page (the rest via
/// `GetDurableExecutionState`).
const ENVELOPE_PAGE: usize = 1000;

/// The durable executions of one emulator and the clock their timers run on.
pub(crate) struct Durable {
    store: Mutex<Store>,
    clock: Clock,
    /// Bumped on every change of any execution; dropped with the core, which ends every
    /// driver.
    changes: watch::Sender<u64>,
}

impl Durable {
    pub(crate) fn new(clock: Clock) -> Durable {
        Durable {
            store: Mutex::default(),
            clock,
            changes: watch::channel(0).0,
        }
    }

    pub(crate) fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The store, without the executions whose retention has passed on the clock (a
    /// test that advances the clock by `RetentionPeriodInDays` sees them gone).
    fn store(&self) -> MutexGuard<'_, Store> {
        let mut store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        store.expire(self.clock.now());
        store
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that sees every later change (subscribe before reading state).
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Runs `f` on execution `arn`, then wakes every waiter.
    fn update<T>(
        &self,
        arn: &str,
        f: impl FnOnce(&mut crate::durable::execution::Execution, SystemTime) -> Result<T, DurableError>,
    ) -> Result<T, DurableError> {
        let now = self.clock.now();
        let out = f(self.store().get_mut(arn)?, now);
        self.changed();
        out
    }

    /// `GetDurableExecution`.
    pub(crate) fn describe(&self, arn: &str) -> Result<ExecutionInfo, DurableError> {
        self.store().get(arn).map(ExecutionInfo::from)
    }

    /// `GetDurableExecutionHistory`: every event, oldest first.
    pub(crate) fn history(&self, arn: &str) -> Result<Vec<Event>, DurableError> {
        Ok(self.store().get(arn)?.events().to_vec())
    }

    /// Every operation of `arn` (for the Rust API; no token needed).
    pub(crate) fn operations(&self, arn: &str) -> Result<Vec<Operation>, DurableError> {
        Ok(self.store().get(arn)?.operations().to_vec())
    }

    /// `GetDurableExecutionState`: a page of operations, under the current token.
    pub(crate) fn state(
        &self,
        arn: &str,
        token: &str,
        marker: Option<&str>,
        max_items: Option<usize>,
    ) -> Result<(Vec<Operation>, Option<String>), DurableError> {
        let store = self.store();
        let execution = store.get(arn)?;
        if token != execution.token() {
            return Err(DurableError::invalid(
                "Invalid checkpoint token: it is not the current token of this execution",
            ));
        }
        let (page, next) = paging::page(execution.operations(), marker, max_items)?;
        Ok((page.to_vec(), next))
    }

    /// `ListDurableExecutionsByFunction`.
    pub(crate) fn list(&self, filter: &ListFilter) -> Vec<ExecutionInfo> {
        self.store()
            .list(filter)
            .into_iter()
            .map(ExecutionInfo::from)
            .collect()
    }

    /// `StopDurableExecution`: the stop time.
    pub(crate) fn stop(
        &self,
        arn: &str,
        error: Option<ErrorObject>,
    ) -> Result<SystemTime, DurableError> {
        self.update(arn, |e, now| e.stop(error, now))
    }

    /// `SendDurableExecutionCallbackSuccess` / `Failure`.
    pub(crate) fn complete_callback(
        &self,
        callback_id: &str,
        completion: Completion,
    ) -> Result<(), DurableError> {
        let (arn, operation) = self.store().callback(callback_id)?;
        self.update(&arn, |e, now| {
            e.complete_callback(&operation, completion, now)
        })
    }

    /// `SendDurableExecutionCallbackHeartbeat`.
    pub(crate) fn heartbeat(&self, callback_id: &str) -> Result<(), DurableError> {
        let (arn, operation) = self.store().callback(callback_id)?;
        self.update(&arn, |e, now| e.heartbeat(&operation, now))
    }

    /// Waits until `arn` satisfies `done` (checked after registering for changes, so no
    /// change is missed); the snapshot that did.
    pub(crate) async fn wait_until(
        &self,
        arn: &str,
        done: impl Fn(&ExecutionInfo) -> bool,
    ) -> Result<ExecutionInfo, DurableError> {
        let mut changes = self.subscribe();
        loop {
            changes.borrow_and_update();
            let info = self.describe(arn)?;
            if done(&info) {
                return Ok(info);
            }
            if changes.changed().await.is_err() {
                return Err(DurableError::invalid("the emulator has been shut down"));
            }
        }
    }
}

impl Core {
    /// Starts a durable execution of `name` (or finds it by
    /// `X-Amz-Durable-Execution-Name`); `None` if the function is not durable.
    pub(crate) fn start_execution(
        self: &Arc<Self>,
        name: &str,
        request: &InvokeRequest,
    ) -> Result<Option<String>, InvokeError> {
        if self.shut_down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(InvokeError::ShutDown);
        }
        let (function, label_qualifier) = function_arn::split_function_name(name);
        let qualifier = request.qualifier.as_deref().or(label_qualifier);
        let (pool, _alias) = self.resolve(function, qualifier).map_err(|_| {
            InvokeError::FunctionNotFound(match qualifier {
                Some(q) => format!("{function}:{q}"),
                None => function.to_string(),
            })
        })?;
        let deployment = pool.deployment();
        match deployment.config.durable {
            Some(_) => self
                .start_execution_of(&deployment.config, request)
                .map(Some),
            None => Ok(None),
        }
    }

    /// Starts (or finds by name) a durable execution of the durable function version
    /// `config`; the driver that runs it is spawned with it.
    pub(crate) fn start_execution_of(
        self: &Arc<Self>,
        config: &FunctionConfig,
        request: &InvokeRequest,
    ) -> Result<String, InvokeError> {
        let durable = config.durable.expect("a durable function");
        let id = uuid::Uuid::new_v4().simple().to_string();
        let execution_name = match &request.durable_execution_name {
            Some(n) if !arn::valid_name(n) => {
                return Err(DurableError::invalid(format!(
                    "Invalid DurableExecutionName: {n} (1-64 characters of [a-zA-Z0-9-_])"
                ))
                .into());
            }
            Some(n) => n.clone(),
            None => id.clone(),
        };
        let unqualified = self.registry.function_arn(&config.name);
        let start = Start {
            arn: arn::format(&unqualified, &config.version, &execution_name, &id),
            name: execution_name,
            id,
            function_arn: unqualified,
            function: config.name.clone(),
            version: config.version.clone(),
            input: String::from_utf8_lossy(&request.payload).into_owned(),
            timeout: durable.execution_timeout(),
            retention: Duration::from_secs(86_400 * u64::from(durable.retention_period_days())),
        };
        let now = self.durable.clock.now();
        let (arn, new) = self.durable.store().start(start, now)?;
        if new {
            self.durable.changed();
            tokio::spawn(drive(Arc::downgrade(self), arn.clone()));
        }
        Ok(arn)
    }

    /// A RequestResponse invoke of a durable function: starts the execution and answers
    /// when it ends, with its result (or its error as a function error).
    pub(crate) async fn invoke_durable(
        self: &Arc<Self>,
        arn: String,
    ) -> Result<InvokeOutput, InvokeError> {
        let started = std::time::Instant::now();
        let info = self
            .durable
            .wait_until(&arn, ExecutionInfo::is_done)
            .await?;
        let request_id = uuid::Uuid::new_v4().to_string();
        let (payload, function_error) = match info.status {
            ExecutionStatus::Succeeded => (
                Bytes::from(info.result.clone().unwrap_or_else(|| "null".into())),
                None,
            ),
            status => {
                let error = info.error.clone().unwrap_or_default();
                let error_type = error
                    .error_type
                    .unwrap_or_else(|| format!("DurableExecution.{}", status.as_str()));
                let message = error
                    .error_message
                    .unwrap_or_else(|| format!("The durable execution ended {}", status.as_str()));
                let body = FunctionError::platform(&error_type, message, &request_id).body;
                (body, Some("Unhandled".to_string()))
            }
        };
        Ok(InvokeOutput {
            payload,
            function_error,
            request_id,
            executed_version: info.version.clone(),
            log: String::new(),
            cold_start: false,
            duration: started.elapsed(),
            environment_id: String::new(),
            durable_execution_arn: Some(arn),
        })
    }

    /// `CheckpointDurableExecution` (a retry under the same `ClientToken` gets the first
    /// answer and applies nothing); chained invokes it starts run in the background.
    pub(crate) fn checkpoint(
        self: &Arc<Self>,
        arn: &str,
        token: &str,
        updates: &[OperationUpdate],
        client_token: Option<&str>,
    ) -> Result<CheckpointResult, DurableError> {
        let result = {
            let now = self.durable.clock.now();
            let mut store = self.durable.store();
            let result = store.get_mut(arn)?.checkpoint_with_client_token(
                token,
                updates,
                client_token,
                now,
            )?;
            store.record(arn, &result.effects);
            result
        };
        for effect in &result.effects {
            if let Effect::ChainedInvoke {
                operation,
                function,
                payload,
            } = effect
            {
                tokio::spawn(chained_invoke(
                    Arc::downgrade(self),
                    arn.to_string(),
                    operation.clone(),
                    function.clone(),
                    payload.clone(),
                ));
            }
        }
        self.durable.changed();
        Ok(result)
    }
}

/// What a driver does next.
enum Step {
    Done,
    Invoke {
        envelope: serde_json::Value,
        function: String,
        version: String,
        began: SystemTime,
    },
    /// Until the next timer (skippable by auto-advance) or the next timeout.
    Sleep {
        timer: Option<SystemTime>,
        deadline: Option<SystemTime>,
    },
}

/// Runs execution `arn` to its end: invokes the handler whenever the execution needs
/// it, fires its timers on the emulator's clock. Holds the core only while it acts, so
/// dropping the emulator ends it.
async fn drive(core: Weak<Core>, arn: String) {
    loop {
        let Some(strong) = core.upgrade() else { return };
        let durable = &strong.durable;
        let mut changes = durable.subscribe();
        changes.borrow_and_update();
        let now = durable.clock.now();
        let (step, fired) = {
            let mut store = durable.store();
            let Ok(e) = store.get_mut(&arn) else { return };
            let fired = e.fire_due(now);
            let step = if e.status != ExecutionStatus::Running {
                Step::Done
            } else if e.needs_invocation() {
                Step::Invoke {
                    envelope: e.begin_invocation(ENVELOPE_PAGE),
                    function: e.start.function.clone(),
                    version: e.start.version.clone(),
                    began: now,
                }
            } else {
                Step::Sleep {
                    timer: e.next_timer(),
                    deadline: e.next_deadline(),
                }
            };
            (step, fired)
        };
        if fired || matches!(step, Step::Invoke { .. }) {
            durable.changed();
        }
        match step {
            Step::Done => return,
            Step::Invoke {
                envelope,
                function,
                version,
                began,
            } => {
                let mut request = InvokeRequest::new(envelope.to_string()).qualifier(version);
                request.durable_replay = true;
                let (outcome, request_id) = match strong.invoke(&function, request).await {
                    Ok(out) if out.function_error.is_some() => {
                        let error = FunctionError::from_body(&out.payload, &out.request_id);
                        (
                            InvocationOutcome::Error(ErrorObject::new(
                                error.error_type,
                                error.error_message,
                            )),
                            out.request_id,
                        )
                    }
                    Ok(out) => (InvocationOutcome::parse(&out.payload), out.request_id),
                    Err(InvokeError::ShutDown) => return,
                    Err(e) => (
                        InvocationOutcome::Error(ErrorObject::new("Invoke.Error", e.to_string())),
                        String::new(),
                    ),
                };
                let _ = durable.update(&arn, |e, now| {
                    e.end_invocation(outcome, &request_id, began, now);
                    Ok(())
                });
            }
            Step::Sleep { timer, deadline } => {
                let clock = durable.clock.clone();
                drop(strong);
                let timer = async {
                    match timer {
                        Some(t) => clock.timer(t).await,
                        None => std::future::pending().await,
                    }
                };
                let timeout = async {
                    match deadline {
                        Some(d) => clock.sleep_until(d).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = timer => {}
                    _ = timeout => {}
                    changed = changes.changed() => if changed.is_err() { return },
                }
            }
        }
    }
}

/// Runs a chained invoke's target (a durable target runs as its own execution, to its
/// end) and reports the outcome to operation `operation` of `arn`.
async fn chained_invoke(
    core: Weak<Core>,
    arn: String,
    operation: String,
    function: String,
    payload: String,
) {
    let Some(core) = core.upgrade() else { return };
    let completion = match core.invoke(&function, InvokeRequest::new(payload)).await {
        Ok(out) if out.function_error.is_none() => {
            Completion::Succeeded(Some(String::from_utf8_lossy(&out.payload).into_owned()))
        }
        Ok(out) => {
            let error = FunctionError::from_body(&out.payload, &out.request_id);
            Completion::Failed(ErrorObject::new(error.error_type, error.error_message))
        }
        Err(InvokeError::ShutDown) => return,
        Err(e) => Completion::Failed(ErrorObject::new("ChainedInvoke.Error", e.to_string())),
    };
    let _ = core.durable.update(&arn, |e, now| {
        e.complete_chained_invoke(&operation, completion, now);
        Ok(())
    });
}
