//! The history of a durable execution (`GetDurableExecutionHistory`): one event per
//! transition, numbered from 1, with the model's `<EventType>Details` member.
//! Payloads (inputs, results, errors) are left out unless `IncludeExecutionData`.

use std::time::SystemTime;

use serde_json::{Map, Value, json};

use super::model::{ErrorObject, epoch_seconds};

/// One history event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// `EventId`: 1, 2, … in the order the events happened.
    pub event_id: u64,
    /// `EventType` (`ExecutionStarted`, `StepSucceeded`, …).
    pub event_type: &'static str,
    /// `Id` of the operation.
    pub id: String,
    /// `Name` of the operation.
    pub name: Option<String>,
    /// `ParentId` of the operation.
    pub parent_id: Option<String>,
    /// `SubType` of the operation.
    pub sub_type: Option<String>,
    /// `EventTimestamp`.
    pub timestamp: SystemTime,
    /// The `<EventType>Details` member, with payloads as the model nests them
    /// (`{"Payload": …, "Truncated": false}`).
    pub details: Value,
}

impl Event {
    /// The model's `Event` shape; payloads only with `include_data`.
    pub(crate) fn to_json(&self, include_data: bool) -> Value {
        let mut event = Map::new();
        event.insert("EventId".into(), self.event_id.into());
        event.insert("EventType".into(), self.event_type.into());
        event.insert("Id".into(), self.id.clone().into());
        for (key, value) in [
            ("Name", &self.name),
            ("ParentId", &self.parent_id),
            ("SubType", &self.sub_type),
        ] {
            if let Some(v) = value {
                event.insert(key.into(), v.clone().into());
            }
        }
        event.insert(
            "EventTimestamp".into(),
            epoch_seconds::to_f64(self.timestamp).into(),
        );
        let mut details = self.details.clone();
        if !include_data {
            strip_payloads(&mut details);
        }
        event.insert(format!("{}Details", self.event_type), details);
        Value::Object(event)
    }
}

/// Removes every `Payload` member (what `IncludeExecutionData=false` hides).
fn strip_payloads(value: &mut Value) {
    if let Value::Object(map) = value {
        map.remove("Payload");
        for v in map.values_mut() {
            strip_payloads(v);
        }
    }
}

/// `EventInput` / `EventResult`: `{Payload, Truncated}`.
pub(crate) fn payload(payload: Option<&str>) -> Value {
    match payload {
        Some(p) => json!({"Payload": p, "Truncated": false}),
        None => json!({"Truncated": false}),
    }
}

/// `EventError`: `{Payload: ErrorObject, Truncated}`.
pub(crate) fn error(error: Option<&ErrorObject>) -> Value {
    match error {
        Some(e) => json!({"Payload": e, "Truncated": false}),
        None => json!({"Truncated": false}),
    }
}

/// The events of one execution, in order.
#[derive(Debug, Clone, Default)]
pub(crate) struct History {
    events: Vec<Event>,
}

/// What an event is about: the operation's identity.
pub(crate) struct Subject<'a> {
    pub(crate) id: &'a str,
    pub(crate) name: Option<&'a str>,
    pub(crate) parent_id: Option<&'a str>,
    pub(crate) sub_type: Option<&'a str>,
}

impl History {
    /// Appends an event of `event_type` about `subject`.
    pub(crate) fn push(
        &mut self,
        event_type: &'static str,
        subject: Subject<'_>,
        timestamp: SystemTime,
        details: Value,
    ) {
        self.events.push(Event {
            event_id: self.events.len() as u64 + 1,
            event_type,
            id: subject.id.to_string(),
            name: subject.name.map(str::to_string),
            parent_id: subject.parent_id.map(str::to_string),
            sub_type: subject.sub_type.map(str::to_string),
            timestamp,
            details,
        });
    }

    /// Every event, oldest first.
    pub(crate) fn events(&self) -> &[Event] {
        &self.events
    }

    /// Drops the events after the first `len` (undoing pushes).
    pub(crate) fn truncate(&mut self, len: usize) {
        self.events.truncate(len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_numbered_and_hide_payloads_unless_asked() {
        let mut history = History::default();
        let subject = || Subject {
            id: "s1",
            name: Some("charge"),
            parent_id: None,
            sub_type: Some("Step"),
        };
        history.push("StepStarted", subject(), SystemTime::UNIX_EPOCH, json!({}));
        history.push(
            "StepSucceeded",
            subject(),
            SystemTime::UNIX_EPOCH,
            json!({"Result": payload(Some("42")), "RetryDetails": {"CurrentAttempt": 0}}),
        );
        let events = history.events();
        assert_eq!(events[1].event_id, 2);
        let full = events[1].to_json(true);
        assert_eq!(full["StepSucceededDetails"]["Result"]["Payload"], "42");
        assert_eq!(full["Name"], "charge");
        let bare = events[1].to_json(false);
        assert!(
            bare["StepSucceededDetails"]["Result"]
                .get("Payload")
                .is_none()
        );
        assert_eq!(bare["StepSucceededDetails"]["Result"]["Truncated"], false);
    }
}
