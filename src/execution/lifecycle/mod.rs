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
//! One invocation at a time, as in Lambda. Every refusal the Runtime API and the
//! Extensions API can answer with is decided here: an unknown request id, an already
//! answered one (a response after the timeout included), a second `/next` while an
//! invocation is in flight, anything once the environment is dead, and the `Extension.*`
//! errors ([`extensions`]).
//!
//! With extensions (AWS "Lambda execution environment lifecycle"): external extensions
//! register before the runtime starts ([`Effects::start_runtime`]); init ends when the
//! runtime and every extension have called next; an invocation reaches the runtime and
//! every `INVOKE` subscriber at once; after the runtime's answer the invocation's
//! extension phase lasts until every subscriber has called next again
//! ([`Effects::released`]); a shutdown sends `SHUTDOWN` to the subscribers.

pub(crate) mod extensions;

use crate::invoke::FunctionError;
use extensions::{Event, ExtensionRefusal, Extensions, ShutdownReason};

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
    /// Launched; the runtime (or an extension) has not called next yet.
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
    /// The runtime answered `request_id`; `INVOKE` subscribers are still working on it.
    Extensions {
        /// The invocation.
        request_id: String,
    },
    /// Exited, timed out, retired or shut down; refuses everything.
    Dead,
}

/// What a `/next` call gets.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Deliver the queued invocation now.
    Deliver {
        /// The invocation to deliver.
        request_id: String,
    },
    /// Park the call until an invocation is dispatched.
    Wait,
}

/// What dispatching an invocation leads to.
#[derive(Debug, PartialEq)]
pub(crate) enum Dispatch {
    /// The runtime is parked in `/next`: hand the invocation to it now.
    Deliver,
    /// Queued until the runtime calls `/next` (and init has ended).
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

/// What an extension's exit means.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ExtensionExit {
    /// During a shutdown (or once dead): expected.
    Expected,
    /// A crash: the environment is reset; the invocation it fails, if the runtime had
    /// not answered it.
    Crash(Option<String>),
}

/// What the shell must do after a transition, besides answering the call that caused it
/// (taken with [`Lifecycle::take_effects`]).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Effects {
    /// Init ended: the runtime and every extension have called next.
    pub(crate) init_ended: bool,
    /// Hand the invocation in flight to the runtime parked in `/next`.
    pub(crate) deliver: bool,
    /// Hand these events to these extensions, parked in `/extension/event/next`.
    pub(crate) events: Vec<(String, Event)>,
    /// Every external extension has registered: start the runtime.
    pub(crate) start_runtime: bool,
    /// The invocation's phase ended (the runtime answered and every `INVOKE` subscriber
    /// has called next): the environment is free.
    pub(crate) released: bool,
    /// The runtime and every extension are parked in next with nothing to do: freeze the
    /// environment (Lambda freezes it between invocations).
    pub(crate) freeze: bool,
    /// Work arrives for a frozen environment (an invocation, a shutdown): thaw it first.
    pub(crate) thaw: bool,
}

/// The state of one execution environment.
#[derive(Debug)]
pub(crate) struct Lifecycle {
    phase: Phase,
    /// Whether init has ended (the runtime and every extension called next).
    initialized: bool,
    /// Whether the runtime has called `/next` at least once.
    runtime_called: bool,
    /// The runtime is parked in `/next`.
    runtime_waiting: bool,
    /// Whether the runtime was started (every external extension registered).
    runtime_started: bool,
    /// The last invocation answered or abandoned, to tell "already answered" from
    /// "unknown".
    last_answered: Option<String>,
    /// `/init/error`: served to every invocation dispatched here.
    init_error: Option<FunctionError>,
    /// The invocation that was in flight when the environment was retired: the runtime's
    /// exit, which the retirement causes, ends it.
    interrupted: Option<(String, bool)>,
    /// Set once a shutdown began: exits are expected from then on.
    shutting_down: bool,
    /// Frozen between invocations.
    frozen: bool,
    extensions: Extensions,
    effects: Effects,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle::new(Vec::new())
    }
}

impl Lifecycle {
    /// An environment whose `/opt/extensions` holds the external extensions `external`
    /// (file names); without any the runtime starts at once.
    pub(crate) fn new(external: Vec<String>) -> Lifecycle {
        let extensions = Extensions::new(external);
        Lifecycle {
            phase: Phase::Init,
            initialized: false,
            runtime_called: false,
            runtime_waiting: false,
            runtime_started: extensions.all_external_registered(),
            last_answered: None,
            init_error: None,
            interrupted: None,
            shutting_down: false,
            frozen: false,
            extensions,
            effects: Effects::default(),
        }
    }

    /// The current phase.
    #[cfg(test)]
    pub(crate) fn phase(&self) -> &Phase {
        &self.phase
    }

    /// What the last transitions ask the shell to do.
    pub(crate) fn take_effects(&mut self) -> Effects {
        std::mem::take(&mut self.effects)
    }

    /// True once nothing may run here any more.
    pub(crate) fn is_dead(&self) -> bool {
        self.phase == Phase::Dead
    }

    /// True once init failed (`/init/error`): the environment must be replaced.
    pub(crate) fn init_failed(&self) -> bool {
        self.init_error.is_some()
    }

    /// True when an extension registered.
    pub(crate) fn has_extensions(&self) -> bool {
        !self.extensions.is_empty()
    }

    /// True while Telemetry and Logs API subscriptions are accepted (during init).
    pub(crate) fn subscriptions_open(&self) -> bool {
        !self.initialized && !self.is_dead()
    }

    /// The extensions init still waits for (empty once init ended).
    pub(crate) fn awaited_extensions(&self) -> Vec<String> {
        if self.initialized {
            return Vec::new();
        }
        self.extensions.awaited()
    }

    /// The name of the extension `id`.
    pub(crate) fn extension_name(&self, id: &str) -> Option<&str> {
        self.extensions.name(id)
    }

    /// Ends init when the runtime and every extension have called next.
    fn try_end_init(&mut self) {
        if self.initialized || !self.runtime_called || !self.extensions.all_parked() {
            return;
        }
        self.initialized = true;
        self.effects.init_ended = true;
        if self.phase == Phase::Init {
            self.phase = Phase::Idle;
        }
    }

    /// Freezes the environment once the runtime and every extension wait in next with
    /// nothing to do.
    fn try_freeze(&mut self) {
        if !self.frozen
            && self.initialized
            && self.phase == Phase::Idle
            && self.runtime_waiting
            && self.extensions.all_parked()
        {
            self.frozen = true;
            self.effects.freeze = true;
        }
    }

    /// Thaws a frozen environment; returns whether it was frozen.
    pub(crate) fn thaw(&mut self) -> bool {
        let was = std::mem::take(&mut self.frozen);
        self.effects.thaw |= was;
        was
    }

    /// The runtime takes the queued invocation; the `INVOKE` subscribers get it too.
    fn start_invocation(&mut self) -> Option<String> {
        let Phase::Invoke {
            request_id,
            delivered,
        } = &mut self.phase
        else {
            return None;
        };
        *delivered = true;
        self.runtime_waiting = false;
        let request_id = request_id.clone();
        let events = self.extensions.broadcast(Event::Invoke);
        self.effects.events.extend(events);
        Some(request_id)
    }

    /// The runtime calls `GET /runtime/invocation/next`.
    pub(crate) fn next(&mut self) -> Result<Next, Refusal> {
        match &self.phase {
            Phase::Dead => return Err(Refusal::Gone),
            Phase::Invoke {
                delivered: true, ..
            } => return Err(Refusal::InvalidState),
            _ => {}
        }
        self.runtime_called = true;
        self.extensions.close_registration();
        self.try_end_init();
        if self.initialized
            && let Some(request_id) = self.start_invocation()
        {
            return Ok(Next::Deliver { request_id });
        }
        // A second `/next` while one is parked replaces it: the first one's connection
        // went away (the runtime would not poll twice otherwise).
        self.runtime_waiting = true;
        self.try_freeze();
        Ok(Next::Wait)
    }

    /// The caller hands the environment the invocation `request_id`.
    pub(crate) fn dispatch(&mut self, request_id: &str) -> Dispatch {
        if let Some(error) = &self.init_error {
            return Dispatch::InitFailed(error.for_request(request_id));
        }
        match self.phase {
            Phase::Dead => return Dispatch::NotDelivered,
            Phase::Invoke { .. } | Phase::Extensions { .. } => {
                unreachable!("the pool hands an environment one invocation at a time")
            }
            Phase::Init | Phase::Idle => {}
        }
        self.thaw();
        // Before init ends the invocation queues until the runtime's first `/next` (and
        // every extension's).
        self.phase = Phase::Invoke {
            request_id: request_id.to_string(),
            delivered: false,
        };
        if self.initialized && self.runtime_waiting {
            self.start_invocation();
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

    /// `/response` or `/error` for `request_id`: the invocation's answer. The environment
    /// is free at once, or after its extension phase.
    pub(crate) fn answer(&mut self, request_id: &str) -> Result<(), Refusal> {
        self.check(request_id)?;
        self.last_answered = Some(request_id.to_string());
        self.phase = Phase::Extensions {
            request_id: request_id.to_string(),
        };
        self.try_release();
        Ok(())
    }

    /// Ends the extension phase once every `INVOKE` subscriber has called next.
    fn try_release(&mut self) {
        if matches!(self.phase, Phase::Extensions { .. }) && self.extensions.all_parked() {
            self.phase = Phase::Idle;
            self.effects.released = true;
        }
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

    /// `POST /extension/register` with `name` and the `events` it subscribes to; `id`
    /// is the identifier to give it.
    pub(crate) fn register(
        &mut self,
        id: String,
        name: &str,
        events: &[String],
    ) -> Result<String, ExtensionRefusal> {
        if self.phase == Phase::Dead {
            return Err(ExtensionRefusal::Gone);
        }
        let id = self.extensions.register(id, name, events)?;
        if !self.runtime_started && self.extensions.all_external_registered() {
            self.runtime_started = true;
            self.effects.start_runtime = true;
        }
        Ok(id)
    }

    /// `GET /extension/event/next` from the extension `id`: the event for it now, or
    /// `None` (park the call).
    pub(crate) fn extension_next(&mut self, id: &str) -> Result<Option<Event>, ExtensionRefusal> {
        let event = self.extensions.next(id)?;
        if event.is_some() {
            return Ok(event);
        }
        if self.phase == Phase::Dead {
            return Err(ExtensionRefusal::Gone);
        }
        self.try_end_init();
        if self.initialized
            && self.runtime_waiting
            && matches!(
                self.phase,
                Phase::Invoke {
                    delivered: false,
                    ..
                }
            )
        {
            self.start_invocation();
            self.effects.deliver = true;
        }
        self.try_release();
        self.try_freeze();
        Ok(None)
    }

    /// `POST /extension/init/error` from `id`: init fails with `error` (the invocation
    /// waiting for init gets it, as every later one). Returns that invocation.
    pub(crate) fn extension_init_error(
        &mut self,
        id: &str,
        error: FunctionError,
    ) -> Result<Option<String>, ExtensionRefusal> {
        if self.initialized {
            return Err(ExtensionRefusal::InvalidState);
        }
        self.extensions.fail(id)?;
        self.init_error(error)
            .map_err(|_| ExtensionRefusal::InvalidState)
    }

    /// `POST /extension/exit/error` from `id`: recorded; it may make no further call.
    pub(crate) fn extension_exit_error(&mut self, id: &str) -> Result<(), ExtensionRefusal> {
        self.extensions.fail(id)?;
        self.try_release();
        Ok(())
    }

    /// The process of the external extension `name` exited. Outside a shutdown that is a
    /// crash: the environment dies (the shell shuts it down with reason `failure`), and
    /// the invocation the runtime has not answered yet fails.
    pub(crate) fn extension_exited(&mut self, name: &str) -> ExtensionExit {
        self.extensions.exited(name);
        if self.shutting_down || self.phase == Phase::Dead {
            self.try_release();
            return ExtensionExit::Expected;
        }
        let failed = match &self.phase {
            Phase::Invoke { request_id, .. } => Some(request_id.clone()),
            _ => None,
        };
        if let Some(request_id) = &failed {
            self.last_answered = Some(request_id.clone());
        }
        self.die();
        self.interrupted = None;
        ExtensionExit::Crash(failed)
    }

    /// The environment shuts down for `reason`: it is dead from now on, the `SHUTDOWN`
    /// subscribers get the event. Returns the shutdown budget in ms (0: kill at once),
    /// `None` when a shutdown already began.
    pub(crate) fn shutdown(&mut self, reason: ShutdownReason) -> Option<u64> {
        if self.shutting_down {
            return None;
        }
        self.shutting_down = true;
        self.die();
        let events = self.extensions.broadcast(Event::Shutdown(reason));
        self.effects.events.extend(events);
        Some(self.extensions.shutdown_budget_ms())
    }

    /// The shutdown budget in ms.
    pub(crate) fn shutdown_budget_ms(&self) -> u64 {
        self.extensions.shutdown_budget_ms()
    }

    /// True while an external extension subscribed to `SHUTDOWN` still runs.
    pub(crate) fn shutdown_pending(&self) -> bool {
        self.extensions.shutdown_pending()
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
        self.thaw();
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
        assert_eq!(l.next(), Ok(Next::Wait));
        l
    }

    #[test]
    fn first_next_ends_init_and_parks() {
        let mut l = Lifecycle::default();
        assert_eq!(l.phase(), &Phase::Init);
        assert_eq!(l.next(), Ok(Next::Wait));
        assert!(l.take_effects().init_ended);
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
                request_id: "a".into()
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
                request_id: "b".into()
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
        assert_eq!(l.next(), Ok(Next::Wait));
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
                request_id: "a".into()
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

    // Extensions.

    fn events(list: &[&str]) -> Vec<String> {
        list.iter().map(|e| e.to_string()).collect()
    }

    /// One external extension `ext` registered for INVOKE and SHUTDOWN, runtime and
    /// extension parked: initialized.
    fn ready_with_extension() -> (Lifecycle, String) {
        let mut l = Lifecycle::new(vec!["ext".into()]);
        let id = l
            .register("id-1".into(), "ext", &events(&["INVOKE", "SHUTDOWN"]))
            .unwrap();
        assert!(l.take_effects().start_runtime);
        assert_eq!(l.extension_next(&id), Ok(None));
        assert_eq!(l.next(), Ok(Next::Wait));
        assert!(l.take_effects().init_ended);
        (l, id)
    }

    #[test]
    fn the_runtime_starts_once_every_external_extension_registered() {
        let mut l = Lifecycle::new(vec!["a".into(), "b".into()]);
        l.register("1".into(), "a", &[]).unwrap();
        assert!(!l.take_effects().start_runtime);
        l.register("2".into(), "internal", &[]).unwrap();
        assert!(
            !l.take_effects().start_runtime,
            "an internal one does not count"
        );
        l.register("3".into(), "b", &[]).unwrap();
        assert!(l.take_effects().start_runtime);
        assert!(
            !Lifecycle::default().take_effects().start_runtime,
            "no gate without extensions"
        );
    }

    #[test]
    fn init_ends_when_the_runtime_and_every_extension_called_next() {
        let mut l = Lifecycle::new(vec!["ext".into()]);
        let id = l.register("1".into(), "ext", &events(&["INVOKE"])).unwrap();
        l.take_effects();
        assert_eq!(l.dispatch("a"), Dispatch::Queued);
        assert_eq!(
            l.next(),
            Ok(Next::Wait),
            "the extension has not called next"
        );
        assert!(!l.take_effects().init_ended);
        // The extension's next ends init and hands the queued invocation to both.
        assert_eq!(l.extension_next(&id), Ok(None));
        let effects = l.take_effects();
        assert!(effects.init_ended);
        assert!(effects.deliver);
        assert_eq!(effects.events, vec![(id, Event::Invoke)]);
        assert_eq!(l.check("a"), Ok(()));
    }

    #[test]
    fn the_invocation_reaches_the_runtime_and_its_subscribers_at_once() {
        let (mut l, id) = ready_with_extension();
        assert_eq!(l.dispatch("a"), Dispatch::Deliver);
        assert_eq!(l.take_effects().events, vec![(id, Event::Invoke)]);
    }

    #[test]
    fn the_environment_is_free_only_after_every_subscriber_called_next() {
        let (mut l, id) = ready_with_extension();
        l.dispatch("a");
        l.take_effects();
        l.answer("a").unwrap();
        assert!(!l.take_effects().released, "the extension is still busy");
        assert_eq!(
            l.phase(),
            &Phase::Extensions {
                request_id: "a".into()
            }
        );
        assert_eq!(l.answer("a"), Err(Refusal::AlreadyAnswered));
        assert_eq!(l.next(), Ok(Next::Wait), "the runtime may poll meanwhile");
        assert_eq!(l.extension_next(&id), Ok(None));
        assert!(l.take_effects().released);
        assert_eq!(l.phase(), &Phase::Idle);
    }

    #[test]
    fn without_invoke_subscribers_the_answer_frees_the_environment() {
        let mut l = ready();
        l.dispatch("a");
        l.answer("a").unwrap();
        assert!(l.take_effects().released);
        let mut l = Lifecycle::new(vec!["ext".into()]);
        let id = l
            .register("1".into(), "ext", &events(&["SHUTDOWN"]))
            .unwrap();
        l.extension_next(&id).unwrap();
        l.next().unwrap();
        l.dispatch("a");
        assert!(
            l.take_effects().events.is_empty(),
            "not subscribed to INVOKE"
        );
        l.answer("a").unwrap();
        assert!(l.take_effects().released);
    }

    #[test]
    fn registration_refusals() {
        let mut l = Lifecycle::new(vec!["ext".into()]);
        assert_eq!(
            l.register("0".into(), "", &[]),
            Err(ExtensionRefusal::InvalidName)
        );
        assert_eq!(
            l.register("0".into(), "internal", &events(&["SHUTDOWN"])),
            Err(ExtensionRefusal::InvalidEventType),
            "internal extensions may not subscribe to SHUTDOWN"
        );
        assert_eq!(
            l.register("0".into(), "ext", &events(&["RESTORE"])),
            Err(ExtensionRefusal::InvalidEventType)
        );
        assert!(
            l.register("0".into(), "ext", &events(&["SHUTDOWN"]))
                .is_ok()
        );
        for i in 1..extensions::MAX_EXTENSIONS {
            l.register(i.to_string(), &format!("x{i}"), &[]).unwrap();
        }
        assert_eq!(
            l.register("11".into(), "y", &[]),
            Err(ExtensionRefusal::TooMany)
        );
        l.next().unwrap();
        let mut l2 = ready();
        assert_eq!(
            l2.register("1".into(), "late", &[]),
            Err(ExtensionRefusal::RegistrationClosed)
        );
    }

    #[test]
    fn unknown_identifiers_and_failed_extensions_are_refused() {
        let (mut l, id) = ready_with_extension();
        assert_eq!(l.extension_next("nope"), Err(ExtensionRefusal::Unknown));
        assert_eq!(l.extension_exit_error(&id), Ok(()));
        assert_eq!(l.extension_next(&id), Err(ExtensionRefusal::InvalidState));
        assert_eq!(
            l.extension_exit_error(&id),
            Err(ExtensionRefusal::InvalidState)
        );
    }

    #[test]
    fn an_extension_init_error_fails_init_and_the_waiting_invocation() {
        let mut l = Lifecycle::new(vec!["ext".into()]);
        let id = l.register("1".into(), "ext", &[]).unwrap();
        l.dispatch("a");
        let error = FunctionError::platform("Extension.ConfigInvalid", "bad".into(), "");
        assert_eq!(l.extension_init_error(&id, error), Ok(Some("a".into())));
        assert!(l.init_failed());
        let (mut l, id) = ready_with_extension();
        let error = FunctionError::platform("Extension.ConfigInvalid", "bad".into(), "");
        assert_eq!(
            l.extension_init_error(&id, error),
            Err(ExtensionRefusal::InvalidState),
            "after init"
        );
    }

    #[test]
    fn an_extension_crash_fails_the_unanswered_invocation_and_resets() {
        let (mut l, _) = ready_with_extension();
        l.dispatch("a");
        assert_eq!(
            l.extension_exited("ext"),
            ExtensionExit::Crash(Some("a".into()))
        );
        assert!(l.is_dead());
        assert_eq!(l.answer("a"), Err(Refusal::AlreadyAnswered));
        assert_eq!(l.exited(), Exit::Idle, "the invocation is not failed twice");
        // After the answer: the caller has it; the environment is reset all the same.
        let (mut l, _) = ready_with_extension();
        l.dispatch("a");
        l.answer("a").unwrap();
        assert_eq!(l.extension_exited("ext"), ExtensionExit::Crash(None));
    }

    #[test]
    fn shutdown_sends_shutdown_to_subscribers_with_the_budget() {
        let (mut l, id) = ready_with_extension();
        assert_eq!(l.shutdown(ShutdownReason::Spindown), Some(2_000));
        assert_eq!(
            l.take_effects().events,
            vec![(id, Event::Shutdown(ShutdownReason::Spindown))]
        );
        assert!(l.is_dead());
        assert!(l.shutdown_pending());
        assert_eq!(l.shutdown(ShutdownReason::Failure), None, "once");
        assert_eq!(l.extension_exited("ext"), ExtensionExit::Expected);
        assert!(!l.shutdown_pending());
        assert_eq!(
            Lifecycle::default().shutdown(ShutdownReason::Spindown),
            Some(0)
        );
        let mut internal = Lifecycle::default();
        internal
            .register("1".into(), "internal", &events(&["INVOKE"]))
            .unwrap();
        assert_eq!(internal.shutdown(ShutdownReason::Timeout), Some(500));
    }

    #[test]
    fn a_shutdown_reaches_a_busy_extension_on_its_next_call() {
        let (mut l, id) = ready_with_extension();
        l.dispatch("a");
        l.take_effects(); // INVOKE: the extension is busy
        l.shutdown(ShutdownReason::Timeout);
        assert!(l.take_effects().events.is_empty());
        assert_eq!(
            l.extension_next(&id),
            Ok(Some(Event::Shutdown(ShutdownReason::Timeout)))
        );
    }

    // Freeze/thaw.

    #[test]
    fn an_idle_environment_freezes_once_the_runtime_waits_and_thaws_for_work() {
        let mut l = ready();
        assert!(l.take_effects().freeze, "parked after init");
        l.dispatch("a");
        assert!(l.take_effects().thaw, "thawed before delivery");
        l.answer("a").unwrap();
        assert!(
            !l.take_effects().freeze,
            "the runtime has not called next yet"
        );
        l.next().unwrap();
        assert!(l.take_effects().freeze);
        l.retire();
        assert!(l.take_effects().thaw, "never left stopped");
    }

    #[test]
    fn freezing_waits_for_every_extension() {
        let mut l = Lifecycle::new(vec!["ext".into()]);
        let id = l.register("1".into(), "ext", &events(&["INVOKE"])).unwrap();
        l.extension_next(&id).unwrap();
        l.next().unwrap();
        assert!(l.take_effects().freeze);
        l.dispatch("a");
        l.take_effects();
        l.answer("a").unwrap();
        l.next().unwrap();
        assert!(!l.take_effects().freeze, "the extension is in its phase");
        l.extension_next(&id).unwrap();
        let effects = l.take_effects();
        assert!(effects.released && effects.freeze);
        assert!(l.thaw());
        assert!(!l.thaw(), "once");
    }

    #[test]
    fn a_shutdown_thaws_first() {
        let (mut l, _) = ready_with_extension();
        l.take_effects();
        l.shutdown(ShutdownReason::Spindown);
        let effects = l.take_effects();
        assert!(effects.thaw && !effects.events.is_empty());
    }
}
