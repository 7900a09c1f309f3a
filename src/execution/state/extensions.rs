//! The Extensions API and Telemetry API side of an environment's state: registration,
//! extension events, their errors and exits, subscriptions.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::{EnvironmentState, Outcome, Slot, epoch_ms};
use crate::execution::lifecycle::ExtensionExit;
use crate::execution::lifecycle::extensions::{Event, ExtensionRefusal, ShutdownReason};
use crate::execution::telemetry::record;
use crate::invoke::FunctionError;
use crate::stats::EventKind;

impl EnvironmentState {
    /// `POST /extension/register`: the identifier and the register response's body.
    pub(crate) fn register_extension(
        &self,
        name: &str,
        events: &[String],
        account_id: bool,
    ) -> Result<(String, Bytes), ExtensionRefusal> {
        let mut slot = self.slot();
        let id = slot
            .lifecycle
            .register(uuid::Uuid::new_v4().to_string(), name, events)?;
        let events: Vec<&str> = events.iter().map(String::as_str).collect();
        self.telemetry
            .emit(record::extension(name, "Ready", &events));
        let effects = slot.lifecycle.take_effects();
        self.apply(&mut slot, effects);
        let mut body = serde_json::json!({
            "functionName": self.info.function_name,
            "functionVersion": self.info.function_version,
            "handler": self.info.handler,
        });
        if account_id {
            body["accountId"] = self.info.account_id.clone().into();
        }
        Ok((id, Bytes::from(body.to_string())))
    }

    /// `PUT /2022-07-01/telemetry` or `PUT /2020-08-15/logs` from the extension `id`:
    /// `Err((status, errorType, errorMessage))` when refused.
    pub(crate) fn subscribe(
        &self,
        api: crate::execution::telemetry::Api,
        id: &str,
        body: &[u8],
    ) -> Result<(), (u16, &'static str, String)> {
        let name = {
            let slot = self.slot();
            let name = slot.lifecycle.extension_name(id).map(str::to_string);
            let Some(name) = name else {
                return Err((
                    403,
                    ExtensionRefusal::Unknown.error_type(),
                    format!("Unknown extension {id}"),
                ));
            };
            if !slot.lifecycle.subscriptions_open() {
                return Err((
                    403,
                    api.closed_error_type(),
                    "Subscriptions are only accepted during init".to_string(),
                ));
            }
            name
        };
        self.telemetry
            .subscribe(api, &name, body)
            .map_err(|message| (400, api.validation_error_type(), message))
    }

    /// `GET /extension/event/next` from the extension `id`: its next event, waiting as
    /// long as it takes.
    pub(crate) async fn extension_next(&self, id: &str) -> Result<Bytes, ExtensionRefusal> {
        let parked = {
            let mut slot = self.slot();
            let event = slot.lifecycle.extension_next(id)?;
            if let Some(event) = event {
                return Ok(self.event_body(&slot, event));
            }
            let (tx, rx) = oneshot::channel();
            slot.extensions_parked.insert(id.to_string(), tx);
            let effects = slot.lifecycle.take_effects();
            self.apply(&mut slot, effects);
            rx
        };
        parked.await.map_err(|_| ExtensionRefusal::Gone)
    }

    /// `POST /extension/init/error` from `id`: init fails with `error`.
    pub(crate) fn extension_init_error(
        &self,
        id: &str,
        error: FunctionError,
    ) -> Result<(), ExtensionRefusal> {
        let mut slot = self.slot();
        let failed = slot.lifecycle.extension_init_error(id, error)?;
        self.fail_with_init_error(&mut slot, failed);
        Ok(())
    }

    /// `POST /extension/exit/error` from `id`: recorded in the log.
    pub(crate) fn extension_exit_error(
        &self,
        id: &str,
        error_type: &str,
    ) -> Result<(), ExtensionRefusal> {
        let mut slot = self.slot();
        slot.lifecycle.extension_exit_error(id)?;
        let name = slot
            .lifecycle
            .extension_name(id)
            .unwrap_or_default()
            .to_string();
        self.output.fill(|buf| {
            buf.extend_from_slice(
                format!("EXTENSION Name: {name} State: ExitError Error Type: {error_type}\n")
                    .as_bytes(),
            )
        });
        let effects = slot.lifecycle.take_effects();
        self.apply(&mut slot, effects);
        Ok(())
    }

    /// The process of the external extension `name` exited with `reason`. Outside a
    /// shutdown it crashed: the invocation the runtime has not answered fails with
    /// `Extension.Crash` and the environment is reset (`SHUTDOWN` reason `failure`).
    pub(crate) fn extension_exited(self: &Arc<Self>, name: &str, reason: String) {
        let exit = {
            let mut slot = self.slot();
            let exit = slot.lifecycle.extension_exited(name);
            let effects = slot.lifecycle.take_effects();
            self.apply(&mut slot, effects);
            if let ExtensionExit::Crash(failed) = &exit {
                slot.parked = None;
                slot.release = None;
                if let Some(caller) = slot.caller.take() {
                    let request_id = failed.clone().unwrap_or_default();
                    let _ = caller.reply.send(Outcome::Error(FunctionError::platform(
                        "Extension.Crash",
                        format!(
                            "RequestId: {request_id} Error: Extension {name} exited with error: {reason}"
                        ),
                        &request_id,
                    )));
                }
            }
            exit
        };
        self.extension_exits.notify_waiters();
        if let ExtensionExit::Crash(_) = exit {
            if !self.gone.load(Ordering::SeqCst) {
                self.recorder.record(EventKind::EnvironmentDead {
                    environment: self.id.clone(),
                    reason: format!("extension {name} exited: {reason}"),
                });
            }
            self.shut_down(ShutdownReason::Failure);
        }
    }

    /// An event as `/extension/event/next` returns it.
    pub(super) fn event_body(&self, slot: &Slot, event: Event) -> Bytes {
        let value = match event {
            Event::Invoke => {
                let current = slot.current.as_ref();
                let mut value = serde_json::json!({
                    "eventType": "INVOKE",
                    "deadlineMs": current.map(|d| d.deadline_ms as u64).unwrap_or_default(),
                    "requestId": current.map(|d| d.request_id.as_str()).unwrap_or_default(),
                    "invokedFunctionArn": current.map(|d| d.function_arn.as_str()).unwrap_or_default(),
                });
                if let Some(trace) = current.map(|d| d.trace_id.as_str()) {
                    value["tracing"] =
                        serde_json::json!({"type": "X-Amzn-Trace-Id", "value": trace});
                }
                value
            }
            Event::Shutdown(reason) => serde_json::json!({
                "eventType": "SHUTDOWN",
                "shutdownReason": reason.as_str(),
                "deadlineMs": epoch_ms(SystemTime::now() + self.shutdown_budget(slot)),
            }),
        };
        Bytes::from(value.to_string())
    }

    pub(super) fn shutdown_budget(&self, slot: &Slot) -> Duration {
        Duration::from_millis(slot.lifecycle.shutdown_budget_ms())
    }
}
