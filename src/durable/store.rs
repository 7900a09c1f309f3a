//! Every durable execution of an emulator, pure: by ARN, by (function, name) for
//! `X-Amz-Durable-Execution-Name` idempotency, and callback ids to their operation.

use std::collections::HashMap;
use std::time::SystemTime;

use super::DurableError;
use super::execution::{Effect, Execution, Start};
use super::model::ExecutionStatus;

/// The executions of one emulator.
#[derive(Debug, Default)]
pub(crate) struct Store {
    executions: HashMap<String, Execution>,
    /// ARNs in start order.
    order: Vec<String>,
    by_name: HashMap<(String, String), String>,
    callbacks: HashMap<String, (String, String)>,
}

/// Filters of `ListDurableExecutionsByFunction`.
#[derive(Debug, Default, Clone)]
pub(crate) struct ListFilter {
    pub(crate) function: String,
    pub(crate) version: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) statuses: Vec<ExecutionStatus>,
    pub(crate) started_after: Option<SystemTime>,
    pub(crate) started_before: Option<SystemTime>,
    pub(crate) reverse: bool,
}

impl Store {
    /// Starts `start` unless an execution of the same function and name exists: then the
    /// existing one if its input is the same (`false`: not new), else
    /// `DurableExecutionAlreadyStartedException`.
    pub(crate) fn start(
        &mut self,
        start: Start,
        now: SystemTime,
    ) -> Result<(String, bool), DurableError> {
        let key = (start.function.clone(), start.name.clone());
        if let Some(arn) = self.by_name.get(&key) {
            let existing = &self.executions[arn];
            return if existing.start.input == start.input {
                Ok((arn.clone(), false))
            } else {
                Err(DurableError::AlreadyStarted {
                    name: start.name,
                    arn: arn.clone(),
                })
            };
        }
        let arn = start.arn.clone();
        self.by_name.insert(key, arn.clone());
        self.order.push(arn.clone());
        self.executions
            .insert(arn.clone(), Execution::new(start, now));
        Ok((arn, true))
    }

    /// The execution `arn`: `ResourceNotFoundException` if there is none, and
    /// `InvalidParameterValueException` if `arn` is not a durable execution ARN at all.
    pub(crate) fn get(&self, arn: &str) -> Result<&Execution, DurableError> {
        self.executions.get(arn).ok_or_else(|| not_found(arn))
    }

    /// The execution `arn`, to change.
    pub(crate) fn get_mut(&mut self, arn: &str) -> Result<&mut Execution, DurableError> {
        self.executions.get_mut(arn).ok_or_else(|| not_found(arn))
    }

    /// The execution and operation a callback id belongs to.
    pub(crate) fn callback(&self, callback_id: &str) -> Result<(String, String), DurableError> {
        self.callbacks
            .get(callback_id)
            .cloned()
            .ok_or_else(|| DurableError::CallbackNotFound(callback_id.to_string()))
    }

    /// Records what a checkpoint of `arn` created (callback ids).
    pub(crate) fn record(&mut self, arn: &str, effects: &[Effect]) {
        for effect in effects {
            if let Effect::CallbackCreated {
                operation,
                callback_id,
            } = effect
            {
                self.callbacks
                    .insert(callback_id.clone(), (arn.to_string(), operation.clone()));
            }
        }
    }

    /// Executions matching `filter`, oldest first (newest first with `reverse`).
    pub(crate) fn list(&self, filter: &ListFilter) -> Vec<&Execution> {
        let mut out: Vec<&Execution> = self
            .order
            .iter()
            .map(|arn| &self.executions[arn])
            .filter(|e| e.start.function == filter.function)
            .filter(|e| {
                filter
                    .version
                    .as_ref()
                    .is_none_or(|v| &e.start.version == v)
            })
            .filter(|e| filter.name.as_ref().is_none_or(|n| &e.start.name == n))
            .filter(|e| filter.statuses.is_empty() || filter.statuses.contains(&e.status))
            .filter(|e| filter.started_after.is_none_or(|t| e.started >= t))
            .filter(|e| filter.started_before.is_none_or(|t| e.started <= t))
            .collect();
        if filter.reverse {
            out.reverse();
        }
        out
    }
}

fn not_found(arn: &str) -> DurableError {
    match super::arn::parse(arn) {
        Some(_) => DurableError::ExecutionNotFound(arn.to_string()),
        None => DurableError::invalid(format!("Invalid DurableExecutionArn: {arn}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn start(name: &str, id: &str, input: &str) -> Start {
        let function_arn = "arn:aws:lambda:us-east-1:123456789012:function:f".to_string();
        Start {
            arn: super::super::arn::format(&function_arn, "$LATEST", name, id),
            name: name.into(),
            id: id.into(),
            function_arn,
            function: "f".into(),
            version: "$LATEST".into(),
            input: input.into(),
            timeout: Duration::from_secs(60),
        }
    }

    #[test]
    fn the_same_name_and_input_is_the_same_execution() {
        let mut store = Store::default();
        let t = SystemTime::UNIX_EPOCH;
        let (first, new) = store.start(start("order-1", "a", "{}"), t).unwrap();
        assert!(new);
        let (again, new) = store.start(start("order-1", "b", "{}"), t).unwrap();
        assert_eq!((again.as_str(), new), (first.as_str(), false));
        let err = store
            .start(start("order-1", "c", r#"{"x":1}"#), t)
            .unwrap_err();
        assert!(
            matches!(err, DurableError::AlreadyStarted { .. }),
            "{err:?}"
        );
        assert_eq!(
            store
                .list(&ListFilter {
                    function: "f".into(),
                    ..Default::default()
                })
                .len(),
            1
        );
    }

    #[test]
    fn listing_filters_by_status_name_and_time() {
        let mut store = Store::default();
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        store.start(start("a", "1", "{}"), t).unwrap();
        store
            .start(start("b", "2", "{}"), t + Duration::from_secs(10))
            .unwrap();
        let arn_b = store.list(&ListFilter {
            function: "f".into(),
            name: Some("b".into()),
            ..Default::default()
        })[0]
            .start
            .arn
            .clone();
        store.get_mut(&arn_b).unwrap().stop(None, t).unwrap();
        let by = |f: ListFilter| {
            store
                .list(&ListFilter {
                    function: "f".into(),
                    ..f
                })
                .iter()
                .map(|e| e.start.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            by(ListFilter {
                statuses: vec![ExecutionStatus::Running],
                ..Default::default()
            }),
            ["a"]
        );
        assert_eq!(
            by(ListFilter {
                reverse: true,
                ..Default::default()
            }),
            ["b", "a"]
        );
        assert_eq!(
            by(ListFilter {
                started_after: Some(t + Duration::from_secs(5)),
                ..Default::default()
            }),
            ["b"]
        );
        assert!(
            store
                .list(&ListFilter {
                    function: "other".into(),
                    ..Default::default()
                })
                .is_empty()
        );
        assert!(matches!(
            store.get("nope"),
            Err(DurableError::InvalidParameter(_))
        ));
        let unknown = crate::durable::arn::format(
            "arn:aws:lambda:r:123456789012:function:f",
            "$LATEST",
            "x",
            "y",
        );
        assert!(matches!(
            store.get(&unknown),
            Err(DurableError::ExecutionNotFound(_))
        ));
    }
}
