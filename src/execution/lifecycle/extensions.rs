//! The extensions of one execution environment (Extensions API 2020-01-01), as part of the
//! pure lifecycle machine: who registered for which events, who is parked in
//! `/extension/event/next`, and which events wait for whom.
//!
//! Source: AWS "Lambda Extensions API" and the Runtime Interface Emulator's agent
//! registration (`Extension.*` error types, at most 10 extensions, internal extensions may
//! not subscribe to `SHUTDOWN`).

/// Most extensions one environment may register (`Extension.TooManyExtensions` beyond).
pub(crate) const MAX_EXTENSIONS: usize = 10;

/// Why the environment shuts down, as `SHUTDOWN`'s `shutdownReason` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ShutdownReason {
    /// Evicted, redeployed, idle too long, or the emulator goes.
    Spindown,
    /// The invocation ran past the function's timeout.
    Timeout,
    /// The runtime or an extension crashed.
    Failure,
}

impl ShutdownReason {
    /// The wire form (lowercase, as the Runtime Interface Emulator sends it).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ShutdownReason::Spindown => "spindown",
            ShutdownReason::Timeout => "timeout",
            ShutdownReason::Failure => "failure",
        }
    }
}

/// An event for an extension's `/extension/event/next`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// The invocation in flight (its fields are the shell's to fill in).
    Invoke,
    /// The environment shuts down.
    Shutdown(ShutdownReason),
}

/// Why an Extensions API call was refused (each one a `403` with this `errorType`, except
/// [`ExtensionRefusal::Gone`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExtensionRefusal {
    /// `Extension.InvalidExtensionName`: no name given.
    InvalidName,
    /// `Extension.RegistrationClosed`: the runtime has started taking invocations.
    RegistrationClosed,
    /// `Extension.TooManyExtensions`: more than [`MAX_EXTENSIONS`].
    TooMany,
    /// `Extension.InvalidEventType`: an unknown event, or `SHUTDOWN` for an internal
    /// extension.
    InvalidEventType,
    /// `Extension.UnknownExtensionIdentifier`: no extension has this identifier.
    Unknown,
    /// `Extension.InvalidExtensionState`: the extension reported an error and may make
    /// no further calls, or the call does not fit its phase.
    InvalidState,
    /// The environment is gone (`500 Runtime.Shutdown`).
    Gone,
}

impl ExtensionRefusal {
    /// The `errorType` of the refusal.
    pub(crate) fn error_type(self) -> &'static str {
        match self {
            ExtensionRefusal::InvalidName => "Extension.InvalidExtensionName",
            ExtensionRefusal::RegistrationClosed => "Extension.RegistrationClosed",
            ExtensionRefusal::TooMany => "Extension.TooManyExtensions",
            ExtensionRefusal::InvalidEventType => "Extension.InvalidEventType",
            ExtensionRefusal::Unknown => "Extension.UnknownExtensionIdentifier",
            ExtensionRefusal::InvalidState => "Extension.InvalidExtensionState",
            ExtensionRefusal::Gone => "Runtime.Shutdown",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Registered; has not called `next` yet.
    Registered,
    /// Parked in `next`, waiting for an event.
    Parked,
    /// Handed an event; working on it until its next `next`.
    Busy,
    /// Reported `init/error` or `exit/error`: no further call succeeds.
    Failed,
    /// Its process exited.
    Exited,
}

#[derive(Debug)]
struct Extension {
    id: String,
    name: String,
    external: bool,
    invoke: bool,
    shutdown: bool,
    state: State,
    pending: Option<Event>,
}

/// The extensions of one environment.
#[derive(Debug, Default)]
pub(crate) struct Extensions {
    list: Vec<Extension>,
    /// File names of the external extensions (executables in `/opt/extensions`): each
    /// must register before the runtime starts.
    external: Vec<String>,
    closed: bool,
}

impl Extensions {
    /// The extensions of an environment whose `/opt/extensions` holds `external`.
    pub(crate) fn new(external: Vec<String>) -> Extensions {
        Extensions {
            external,
            ..Extensions::default()
        }
    }

    /// True when every external extension has registered (the runtime may start).
    pub(crate) fn all_external_registered(&self) -> bool {
        self.external
            .iter()
            .all(|name| self.list.iter().any(|e| e.external && &e.name == name))
    }

    /// The extensions init still waits for: external ones that have not registered, and
    /// registered ones that have not called next.
    pub(crate) fn awaited(&self) -> Vec<String> {
        let unregistered = self
            .external
            .iter()
            .filter(|name| !self.list.iter().any(|e| &&e.name == name))
            .cloned();
        let silent = self
            .list
            .iter()
            .filter(|e| e.state == State::Registered)
            .map(|e| e.name.clone());
        unregistered.chain(silent).collect()
    }

    /// True when no extension has registered.
    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// How long a `SHUTDOWN` may take: 2,000 ms with an external extension, 500 ms
    /// with internal ones only, none without extensions (AWS "Shutdown phase").
    pub(crate) fn shutdown_budget_ms(&self) -> u64 {
        if self.list.iter().any(|e| e.external) || !self.external.is_empty() {
            2_000
        } else if self.list.is_empty() {
            0
        } else {
            500
        }
    }

    /// `POST /extension/register`: returns the new extension's identifier.
    pub(crate) fn register(
        &mut self,
        id: String,
        name: &str,
        events: &[String],
    ) -> Result<String, ExtensionRefusal> {
        if name.is_empty() {
            return Err(ExtensionRefusal::InvalidName);
        }
        if self.closed {
            return Err(ExtensionRefusal::RegistrationClosed);
        }
        if self.list.len() >= MAX_EXTENSIONS {
            return Err(ExtensionRefusal::TooMany);
        }
        let external = self.external.iter().any(|e| e == name);
        let (mut invoke, mut shutdown) = (false, false);
        for event in events {
            match event.as_str() {
                "INVOKE" => invoke = true,
                "SHUTDOWN" if external => shutdown = true,
                _ => return Err(ExtensionRefusal::InvalidEventType),
            }
        }
        self.list.push(Extension {
            id: id.clone(),
            name: name.to_string(),
            external,
            invoke,
            shutdown,
            state: State::Registered,
            pending: None,
        });
        Ok(id)
    }

    /// Registration ends (the runtime's first `/next`).
    pub(crate) fn close_registration(&mut self) {
        self.closed = true;
    }

    fn get(&mut self, id: &str) -> Result<&mut Extension, ExtensionRefusal> {
        self.list
            .iter_mut()
            .find(|e| e.id == id)
            .ok_or(ExtensionRefusal::Unknown)
    }

    /// `/extension/event/next` from `id`: the event waiting for it, or `None` (park).
    pub(crate) fn next(&mut self, id: &str) -> Result<Option<Event>, ExtensionRefusal> {
        let extension = self.get(id)?;
        if matches!(extension.state, State::Failed | State::Exited) {
            return Err(ExtensionRefusal::InvalidState);
        }
        Ok(match extension.pending.take() {
            Some(event) => {
                extension.state = State::Busy;
                Some(event)
            }
            None => {
                extension.state = State::Parked;
                None
            }
        })
    }

    /// The name of the extension `id`, if registered.
    pub(crate) fn name(&self, id: &str) -> Option<&str> {
        self.list
            .iter()
            .find(|e| e.id == id)
            .map(|e| e.name.as_str())
    }

    /// True when every extension has called `next` and is parked (init may end).
    pub(crate) fn all_parked(&self) -> bool {
        self.list
            .iter()
            .all(|e| matches!(e.state, State::Parked | State::Failed | State::Exited))
    }

    /// Sends `event` to its subscribers: the parked ones now (returned, now busy), the
    /// others on their next `next`.
    pub(crate) fn broadcast(&mut self, event: Event) -> Vec<(String, Event)> {
        let mut now = Vec::new();
        for extension in &mut self.list {
            let subscribed = match event {
                Event::Invoke => extension.invoke,
                Event::Shutdown(_) => extension.shutdown,
            };
            if !subscribed || matches!(extension.state, State::Failed | State::Exited) {
                continue;
            }
            if extension.state == State::Parked {
                extension.state = State::Busy;
                now.push((extension.id.clone(), event));
            } else {
                extension.pending = Some(event);
            }
        }
        now
    }

    /// `init/error` or `exit/error` from `id`: it may make no further call.
    pub(crate) fn fail(&mut self, id: &str) -> Result<(), ExtensionRefusal> {
        let extension = self.get(id)?;
        if matches!(extension.state, State::Failed | State::Exited) {
            return Err(ExtensionRefusal::InvalidState);
        }
        extension.state = State::Failed;
        Ok(())
    }

    /// The process of the external extension `name` exited.
    pub(crate) fn exited(&mut self, name: &str) {
        for extension in self.list.iter_mut().filter(|e| e.name == name) {
            extension.state = State::Exited;
        }
    }

    /// True when an external extension that takes `SHUTDOWN` is still running.
    pub(crate) fn shutdown_pending(&self) -> bool {
        self.list
            .iter()
            .any(|e| e.external && e.shutdown && e.state != State::Exited)
    }
}
