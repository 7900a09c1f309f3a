//! The lifecycle of one execution environment, as a pure state machine: no I/O, no
//! clocks, no channels. The async code around it ([`super::state`]) feeds it events —
//! the runtime's Runtime API calls, the caller's dispatch, deadlines, the runtime's exit —
//! and performs what each transition asks for (answer a parked `/next`, reply to the
//! caller, terminate the runtime).
//!
//! Phases, as Lambda runs an environment (AWS "Lambda execution environment lifecycle"):
//!
//! ```text
//!            first /next                 dispatch            /response, /error
//!   Init ─────────────────► Idle ◄─────────────────► Invoke ─────────────────────┐
//!    │  /init/error: init     ▲   (queued until the   │ (delivered by /next)      │
//!    │  fails, the first      │    runtime's /next)   │                           │
//!    │  invoke gets it        └───────────────────────┼───────────────────────────┘
//!    │                                                │ deadline, exit, retire
//!    └──────────────── exit, retire ──────────────► Dead ◄┘
//! ```
//!
//! One invocation at a time, as in Lambda. Every refusal the Runtime API can answer with
//! is decided here: an unknown request id, an already answered one (a response after the
//! timeout included), a second `/next` while an invocation is in flight, anything once
//! the environment is dead. The next phases Lambda has — extension registration, the
//! extension phase after the runtime's response, frozen, SHUTDOWN — are added as states
//! and events of this machine.

use crate::invoke::FunctionError;

/// Why a Runtime API call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No invocation with this id is in flight here (HTTP 400 `InvalidRequestID`).
    UnknownRequest,
    /// The invocation was already answered, or was ended by its deadline (HTTP 400
    /// `InvalidStateTransition`).
    AlreadyAnswered,
    /// The call does not fit the environment's phase: `/next` while an invocation is in
    /// flight, `/init/error` after init (HTTP 403 `InvalidStateTransition`).
    InvalidState,
    /// The environment is shutting down (HTTP 500 `Runtime.Shutdown`: "Non-recoverable
    /// state. Runtime should exit promptly.").
    Gone,
}

/// Where the environment is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Launched; the runtime has not called `/next` yet.
    Init,
    /// Initialized and not running an invocation.
    Idle,
    /// Running the invocation `request_id`; `delivered` once the runtime's `/next` took it
    /// (the function's deadline counts from then).
    Invoke {
        /// The invocation.
        request_id: String,
        /// Whether the runtime has received it.
        delivered: bool,
    },
    /// Exited, timed out or retired; refuses everything.
    Dead,
}

/// What a `/next` call gets.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Deliver the queued invocation now.
    Deliver {
        /// The invocation to deliver.
        request_id: String,
        /// This call ended the init phase.
        init_ended: bool,
    },
    /// Park the call until an invocation is dispatched.
    Wait {
        /// This call ended the init phase.
        init_ended: bool,
    },
}

/// What dispatching an invocation leads to.
#[derive(Debug, PartialEq)]
pub(crate) enum Dispatch {
    /// The runtime is parked in `/next`: hand the invocation to it now.
    Deliver,
    /// Queued until the runtime calls `/next`.
    Queued,
    /// The environment is dead: the invocation never reached a runtime (retry elsewhere).
    NotDelivered,
    /// Init failed: the invocation ends with the init error.
    InitFailed(FunctionError),
}

/// How the invocation in flight ended when the runtime exited.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Exit {
    /// Nothing was in flight.
    Idle,
    /// The invocation was queued and the runtime had initialized: it never ran, so it
    /// may be retried on another environment.
    NotDelivered(String),
    /// The invocation was running (or init never finished): `Runtime.ExitError`.
    Failed(String),
}

/// The state of one execution environment.
#[derive(Debug)]
pub(crate) struct Lifecycle {
    phase: Phase,
    /// Whether the runtime has finished init (called `/next` once).
    initialized: bool,
    /// The runtime is parked in `/next`.
    runtime_waiting: bool,
    /// The last invocation answered or abandoned, to tell "already answered" from
    /// "unknown".
    last_answered: Option<String>,
    /// `/init/error`: served to every invocation dispatched here.
    init_error: Option<FunctionError>,
    /// The invocation that was in flight when the environment was retired: the runtime's
    /// exit, which the retirement causes, ends it.
    interrupted: Option<(String, bool)>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            phase: Phase::Init,
            initialized: false,
            runtime_waiting: false,
            last_answered: None,
            init_error: None,
            interrupted: None,
        }
    }
}

impl Lifecycle {
    /// The current phase.
    #[cfg(test)]
    pub(crate) fn phase(&self) -> &Phase {
        &self.phase
    }

    /// True once nothing may run here any more.
    pub(crate) fn is_dead(&self) -> bool {
        self.phase == Phase::Dead
    }

    /// True once init failed (`/init/error`): the environment must be replaced.
    pub(crate) fn init_failed(&self) -> bool {
        self.init_error.is_some()
    }

    /// The runtime calls `GET /runtime/invocation/next`.
    pub(crate) fn next(&mut self) -> Result<Next, Refusal> {
        let init_ended = !self.initialized;
        match &mut self.phase {
            Phase::Dead => return Err(Refusal::Gone),
            Phase::Invoke {
                delivered: true, ..
            } => return Err(Refusal::InvalidState),
            Phase::Init => self.phase = Phase::Idle,
            Phase::Idle | Phase::Invoke { .. } => {}
        }
        self.initialized = true;
        if let Phase::Invoke {
            request_id,
            delivered,
        } = &mut self.phase
        {
            *delivered = true;
            self.runtime_waiting = false;
            return Ok(Next::Deliver {
                request_id: request_id.clone(),
                init_ended,
            });
        }
        // A second `/next` while one is parked replaces it: the first one's connection
        // went away (the runtime would not poll twice otherwise).
        self.runtime_waiting = true;
        Ok(Next::Wait { init_ended })
    }

    /// The caller hands the environment the invocation `request_id`.
    pub(crate) fn dispatch(&mut self, request_id: &str) -> Dispatch {
        if let Some(error) = &self.init_error {
            return Dispatch::InitFailed(error.for_request(request_id));
        }
        match self.phase {
            Phase::Dead => return Dispatch::NotDelivered,
            Phase::Invoke { .. } => {
                unreachable!("the pool hands an environment one invocation at a time")
            }
            Phase::Init | Phase::Idle => {}
        }
        let deliver = self.runtime_waiting;
        if deliver {
            self.runtime_waiting = false;
        }
        // Before init ends (no `/next` yet) the phase is still `Init`; the invocation
        // queues until the runtime's first `/next`.
        self.phase = Phase::Invoke {
            request_id: request_id.to_string(),
            delivered: deliver,
        };
        if deliver {
            Dispatch::Deliver
        } else {
            Dispatch::Queued
        }
    }

    /// A delivery to a parked `/next` could not be handed over (that call went away):
    /// the invocation queues again for the next `/next`.
    pub(crate) fn delivery_returned(&mut self) {
        if let Phase::Invoke { delivered, .. } = &mut self.phase {
            *delivered = false;
        }
    }

    /// Checks that `request_id` may be answered now (before reading a response body, and
    /// when a streamed response begins).
    pub(crate) fn check(&self, request_id: &str) -> Result<(), Refusal> {
        match &self.phase {
            Phase::Invoke {
                request_id: current,
                delivered: true,
            } if current == request_id => Ok(()),
            _ if self.last_answered.as_deref() == Some(request_id) => Err(Refusal::AlreadyAnswered),
            Phase::Dead => Err(Refusal::Gone),
            _ => Err(Refusal::UnknownRequest),
        }
    }

    /// `/response` or `/error` for `request_id`: the invocation ends; the environment is
    /// idle again.
    pub(crate) fn answer(&mut self, request_id: &str) -> Result<(), Refusal> {
        self.check(request_id)?;
        self.last_answered = Some(request_id.to_string());
        self.phase = Phase::Idle;
        Ok(())
    }

    /// `/init/error`: init fails. Returns the invocation it fails, if one was waiting for
    /// init to end.
    pub(crate) fn init_error(&mut self, error: FunctionError) -> Result<Option<String>, Refusal> {
        if self.initialized || self.init_error.is_some() {
            return Err(Refusal::InvalidState);
        }
        if self.phase == Phase::Dead {
            return Err(Refusal::Gone);
        }
        self.init_error = Some(error);
        match std::mem::replace(&mut self.phase, Phase::Init) {
            Phase::Invoke { request_id, .. } => {
                self.last_answered = Some(request_id.clone());
                Ok(Some(request_id))
            }
            _ => Ok(None),
        }
    }

    /// The error init failed with, for the invocation `request_id`.
    pub(crate) fn init_error_for(&self, request_id: &str) -> Option<FunctionError> {
        self.init_error.as_ref().map(|e| e.for_request(request_id))
    }

    /// The caller gave up on `request_id` (its deadline or the init limit passed): the
    /// environment's state is unknown, so it dies and must be terminated. A late answer
    /// is refused as already answered.
    pub(crate) fn abandon(&mut self, request_id: &str) {
        if matches!(&self.phase, Phase::Invoke { request_id: r, .. } if r == request_id) {
            self.last_answered = Some(request_id.to_string());
        }
        self.die();
        // Its caller has its answer (the timeout): the exit must not end it again.
        self.interrupted = None;
    }

    /// The runtime exited. Returns what that means for the invocation in flight.
    pub(crate) fn exited(&mut self) -> Exit {
        self.die();
        match self.interrupted.take() {
            Some((request_id, false)) if self.initialized => Exit::NotDelivered(request_id),
            Some((request_id, _)) => Exit::Failed(request_id),
            None => Exit::Idle,
        }
    }

    /// The environment is retired (evicted, redeployed, shut down): nothing runs here
    /// any more.
    pub(crate) fn retire(&mut self) {
        self.die();
    }

    fn die(&mut self) {
        if let Phase::Invoke {
            request_id,
            delivered,
        } = std::mem::replace(&mut self.phase, Phase::Dead)
        {
            self.interrupted = Some((request_id, delivered));
        }
        self.runtime_waiting = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init_error() -> FunctionError {
        FunctionError::platform("Runtime.ImportModuleError", "no module".to_string(), "")
    }

    /// An environment that has initialized and is parked in `/next`.
    fn ready() -> Lifecycle {
        let mut l = Lifecycle::default();
        assert_eq!(l.next(), Ok(Next::Wait { init_ended: true }));
        l
    }

    #[test]
    fn first_next_ends_init_and_parks() {
        let mut l = Lifecycle::default();
        assert_eq!(l.phase(), &Phase::Init);
        assert_eq!(l.next(), Ok(Next::Wait { init_ended: true }));
        assert_eq!(l.phase(), &Phase::Idle);
    }

    #[test]
    fn dispatch_to_a_parked_runtime_delivers_at_once() {
        let mut l = ready();
        assert_eq!(l.dispatch("a"), Dispatch::Deliver);
        assert_eq!(
            l.phase(),
            &Phase::Invoke {
                request_id: "a".into(),
                delivered: true
            }
        );
        assert_eq!(l.check("a"), Ok(()));
    }

    #[test]
    fn dispatch_before_init_queues_until_the_first_next() {
        let mut l = Lifecycle::default();
        assert_eq!(l.dispatch("a"), Dispatch::Queued);
        assert_eq!(
            l.check("a"),
            Err(Refusal::UnknownRequest),
            "not delivered yet"
        );
        assert_eq!(
            l.next(),
            Ok(Next::Deliver {
                request_id: "a".into(),
                init_ended: true
            })
        );
        assert_eq!(l.check("a"), Ok(()));
    }

    #[test]
    fn dispatch_to_a_busy_runtime_queues_until_its_next_call() {
        let mut l = ready();
        l.dispatch("a");
        l.answer("a").unwrap();
        // Between the answer and the runtime's next `/next`.
        assert_eq!(l.dispatch("b"), Dispatch::Queued);
        assert_eq!(
            l.next(),
            Ok(Next::Deliver {
                request_id: "b".into(),
                init_ended: false
            })
        );
    }

    #[test]
    fn answer_ends_the_invocation_and_a_second_answer_is_refused() {
        let mut l = ready();
        l.dispatch("a");
        assert_eq!(l.answer("a"), Ok(()));
        assert_eq!(l.phase(), &Phase::Idle);
        assert_eq!(l.answer("a"), Err(Refusal::AlreadyAnswered));
        assert_eq!(l.check("a"), Err(Refusal::AlreadyAnswered));
    }

    #[test]
    fn answer_for_an_unknown_request_id_is_refused() {
        let mut l = ready();
        assert_eq!(l.answer("nope"), Err(Refusal::UnknownRequest));
        l.dispatch("a");
        assert_eq!(l.answer("nope"), Err(Refusal::UnknownRequest));
        assert_eq!(l.check("a"), Ok(()), "the real invocation is untouched");
    }

    #[test]
    fn next_while_an_invocation_is_in_flight_is_refused() {
        let mut l = ready();
        l.dispatch("a");
        assert_eq!(l.next(), Err(Refusal::InvalidState));
        assert_eq!(l.check("a"), Ok(()), "the invocation still runs");
    }

    #[test]
    fn a_second_parked_next_replaces_the_first() {
        let mut l = ready();
        assert_eq!(l.next(), Ok(Next::Wait { init_ended: false }));
        assert_eq!(l.dispatch("a"), Dispatch::Deliver);
    }

    #[test]
    fn a_returned_delivery_goes_to_the_next_next() {
        let mut l = ready();
        assert_eq!(l.dispatch("a"), Dispatch::Deliver);
        l.delivery_returned();
        assert_eq!(l.check("a"), Err(Refusal::UnknownRequest));
        assert_eq!(
            l.next(),
            Ok(Next::Deliver {
                request_id: "a".into(),
                init_ended: false
            })
        );
    }

    #[test]
    fn response_after_the_deadline_is_refused_and_the_environment_is_dead() {
        let mut l = ready();
        l.dispatch("a");
        l.abandon("a");
        assert!(l.is_dead());
        assert_eq!(l.answer("a"), Err(Refusal::AlreadyAnswered));
        assert_eq!(l.check("b"), Err(Refusal::Gone));
        assert_eq!(l.next(), Err(Refusal::Gone));
        assert_eq!(l.dispatch("b"), Dispatch::NotDelivered);
    }

    #[test]
    fn init_error_fails_the_waiting_invocation_and_every_later_one() {
        let mut l = Lifecycle::default();
        l.dispatch("a");
        assert_eq!(l.init_error(init_error()), Ok(Some("a".into())));
        assert!(l.init_failed());
        assert_eq!(l.answer("a"), Err(Refusal::AlreadyAnswered));
        match l.dispatch("b") {
            Dispatch::InitFailed(e) => {
                assert_eq!(e.error_type, "Runtime.ImportModuleError");
                assert_eq!(e.request_id, "b");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(l.init_error_for("c").unwrap().request_id, "c");
    }

    #[test]
    fn init_error_before_any_invocation_is_kept_for_the_first() {
        let mut l = Lifecycle::default();
        assert_eq!(l.init_error(init_error()), Ok(None));
        assert!(matches!(l.dispatch("a"), Dispatch::InitFailed(_)));
    }

    #[test]
    fn init_error_after_init_or_twice_is_refused() {
        let mut l = ready();
        assert_eq!(l.init_error(init_error()), Err(Refusal::InvalidState));
        let mut l = Lifecycle::default();
        l.init_error(init_error()).unwrap();
        assert_eq!(l.init_error(init_error()), Err(Refusal::InvalidState));
        let mut l = Lifecycle::default();
        l.retire();
        assert_eq!(l.init_error(init_error()), Err(Refusal::Gone));
    }

    #[test]
    fn exit_of_an_initialized_runtime_before_delivery_is_not_delivered() {
        let mut l = ready();
        l.dispatch("a");
        l.answer("a").unwrap();
        l.dispatch("b");
        assert_eq!(l.exited(), Exit::NotDelivered("b".into()));
        assert!(l.is_dead());
    }

    #[test]
    fn exit_mid_invocation_or_during_init_fails_the_invocation() {
        let mut l = ready();
        l.dispatch("a");
        assert_eq!(l.exited(), Exit::Failed("a".into()));
        let mut l = Lifecycle::default();
        l.dispatch("a");
        assert_eq!(l.exited(), Exit::Failed("a".into()), "init never finished");
        let mut l = ready();
        assert_eq!(l.exited(), Exit::Idle);
    }

    #[test]
    fn retiring_a_busy_environment_leaves_the_invocation_to_the_exit() {
        let mut l = ready();
        l.dispatch("a");
        l.retire();
        assert!(l.is_dead());
        assert_eq!(l.answer("a"), Err(Refusal::Gone));
        assert_eq!(l.exited(), Exit::Failed("a".into()));
        assert_eq!(l.exited(), Exit::Idle, "reported once");
    }

    #[test]
    fn an_abandoned_invocation_is_not_failed_again_by_the_exit() {
        let mut l = ready();
        l.dispatch("a");
        l.abandon("a");
        assert_eq!(l.exited(), Exit::Idle);
    }

    #[test]
    fn a_retired_environment_refuses_everything() {
        let mut l = ready();
        l.retire();
        assert_eq!(l.next(), Err(Refusal::Gone));
        assert_eq!(l.dispatch("a"), Dispatch::NotDelivered);
        assert_eq!(l.check("a"), Err(Refusal::Gone));
        assert_eq!(l.exited(), Exit::Idle);
    }

    #[test]
    fn abandon_of_another_request_id_does_not_mark_it_answered() {
        let mut l = ready();
        l.dispatch("a");
        l.abandon("b");
        assert_eq!(l.check("a"), Err(Refusal::Gone));
    }
}
