//! Every durable execution of an emulator, pure: by ARN, by (function, name) for
//! `X-Amz-Durable-Execution-Name` idempotency, and callback ids to their operation. An
//! ended execution is kept for its `RetentionPeriodInDays`, then forgotten
//! ([`Store::expire`]).

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

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
    /// No execution expires before this: [`Store::expire`] has nothing to do until then.
    sweep_due: Option<SystemTime>,
}

/// The shortest `RetentionPeriodInDays`: one day.
const MIN_RETENTION: Duration = Duration::from_secs(86_400);

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

    /// Forgets every execution whose retention has passed at `now` (it ended
    /// `RetentionPeriodInDays` ago): its ARN is not found, it is not listed, its name
    /// may start a new execution, its callbacks are unknown. Returns their ARNs.
    ///
    /// Cheap when nothing is due: an execution that ends after a sweep at `t` expires
    /// at `t` + one day at the earliest, so the next sweep is due at the earlier of that
    /// and the soonest expiry the sweep saw.
    pub(crate) fn expire(&mut self, now: SystemTime) -> Vec<String> {
        if self.sweep_due.is_some_and(|due| now < due) {
            return Vec::new();
        }
        let mut due = now + MIN_RETENTION;
        let mut expired = Vec::new();
        for (arn, execution) in &self.executions {
            match execution.expires() {
                Some(at) if at <= now => expired.push(arn.clone()),
                Some(at) => due = due.min(at),
                None => {}
            }
        }
        self.sweep_due = Some(due);
        if expired.is_empty() {
            return expired;
        }
        for arn in &expired {
            if let Some(execution) = self.executions.remove(arn) {
                let key = (
                    execution.start.function.clone(),
                    execution.start.name.clone(),
                );
                self.by_name.remove(&key);
            }
        }
        self.order.retain(|arn| self.executions.contains_key(arn));
        self.callbacks
            .retain(|_, (arn, _)| !expired.iter().any(|gone| gone == arn));
        expired
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
            retention: Duration::from_secs(86_400),
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
    fn an_ended_execution_is_forgotten_once_its_retention_has_passed() {
        let mut store = Store::default();
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let (done, _) = store.start(start("done", "1", "{}"), t).unwrap();
        let (running, _) = store.start(start("running", "2", "{}"), t).unwrap();
        store.get_mut(&done).unwrap().stop(None, t).unwrap();
        let day = Duration::from_secs(86_400);
        assert!(store.expire(t + day - Duration::from_secs(1)).is_empty());
        assert!(store.get(&done).is_ok(), "kept for its whole retention");
        assert_eq!(store.expire(t + day), std::slice::from_ref(&done));
        assert!(matches!(
            store.get(&done),
            Err(DurableError::ExecutionNotFound(_))
        ));
        let all = ListFilter {
            function: "f".into(),
            ..Default::default()
        };
        let listed: Vec<_> = store
            .list(&all)
            .iter()
            .map(|e| e.start.arn.clone())
            .collect();
        assert_eq!(
            listed,
            std::slice::from_ref(&running),
            "a running execution never expires"
        );
        // The name is free again.
        let (again, new) = store
            .start(start("done", "3", r#"{"x":1}"#), t + day)
            .unwrap();
        assert!(new && again != done);
        assert!(store.expire(t + day * 400).is_empty(), "nothing else ended");
    }

    #[test]
    fn a_sweep_is_not_skipped_for_an_execution_that_ends_after_it() {
        let mut store = Store::default();
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let (arn, _) = store.start(start("a", "1", "{}"), t).unwrap();
        assert!(store.expire(t).is_empty());
        let ends = t + Duration::from_secs(5);
        store.get_mut(&arn).unwrap().stop(None, ends).unwrap();
        let day = Duration::from_secs(86_400);
        assert!(store.expire(ends + day - Duration::from_secs(1)).is_empty());
        assert_eq!(store.expire(ends + day), [arn]);
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
