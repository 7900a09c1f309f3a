//! The `Emulator`: one isolated Lambda per test, torn down on drop.

mod builder;
mod durable;
mod handle;
#[cfg(feature = "api")]
mod rest;
#[cfg(feature = "api")]
mod urls;

use std::sync::Arc;
use std::time::Duration;

pub use builder::{DEFAULT_MAX_ENVIRONMENTS, EmulatorBuilder, EmulatorError};
pub use durable::DurableExecution;
pub use handle::FunctionHandle;

use crate::deploy::{DeployError, Function, Layer, LayerVersion};
use crate::service::Core;
use crate::stats::{Event, Stats};

/// Kills runtime processes left by test processes that were killed (SIGKILL) before
/// their emulator could drop, and returns how many. Every emulator start does this once
/// per process in the background; call it directly to reap at a known moment.
///
/// Runtimes are found by a marker variable naming their owner's pid; only those whose
/// owner no longer exists are touched.
pub fn reap_orphaned_runtimes() -> usize {
    crate::backend::process::reap_orphans()
}

/// Checks for expired idle environments a few times per TTL.
async fn sweep_idle(core: std::sync::Weak<Core>, ttl: Duration) {
    let period = (ttl / 4).max(Duration::from_millis(1));
    loop {
        tokio::time::sleep(period).await;
        match core.upgrade() {
            Some(core) => core.evict_expired(ttl),
            None => return,
        }
    }
}

/// An isolated, in-process Lambda: functions, layers, execution environments, stats.
///
/// Runtime API listeners bind to 127.0.0.1 on ephemeral ports; nothing is shared between
/// emulators, so many run in parallel in one test binary.
///
/// What drop tears down: the emulator lives while the `Emulator` or any
/// [`FunctionHandle`] from it lives (a handle is enough to keep invoking, so
/// `emu.deploy(f)` on a temporary works). When the last of them is dropped — also during a
/// panic, and inside a current-thread runtime — every execution environment it started is
/// terminated (runtime processes killed, containers removed) and its files are removed.
/// [`Emulator::shutdown`] does this at once, handles or not; they then refuse invokes with
/// [`crate::InvokeError::ShutDown`] and deploys with [`crate::DeployError::ShutDown`].
///
/// ```no_run
/// use lambda_testkit::{Emulator, Function, Runtime};
///
/// # async fn demo() -> anyhow::Result<()> {
/// let emu = Emulator::start().await?;
/// let f = emu
///     .deploy(
///         Function::new("greeter", Runtime::Python312)
///             .handler("app.handler")
///             .source("app.py", "def handler(event, ctx):\n    return {'hi': event['name']}\n"),
///     )
///     .await?;
/// let out: serde_json::Value = f.invoke_json(&serde_json::json!({"name": "ada"})).await?;
/// assert_eq!(out["hi"], "ada");
/// assert_eq!(f.stats().cold_starts, 1);
/// # Ok(()) }
/// ```
pub struct Emulator {
    core: Arc<Core>,
    sweeper: Option<tokio::task::JoinHandle<()>>,
    /// The REST listener, once started (shared with the core's durable-deploy hook).
    #[cfg(feature = "api")]
    api: Arc<std::sync::OnceLock<crate::api::ApiServer>>,
    /// The runtime the emulator started in; the REST listener is served on it.
    #[cfg(feature = "api")]
    runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("functions", &self.core.function_names())
            .finish()
    }
}

impl Emulator {
    /// Starts an emulator with default settings (process backend, unless
    /// `LAMBDA_TESTKIT_BACKEND=docker`).
    pub async fn start() -> Result<Emulator, EmulatorError> {
        EmulatorBuilder::default().start().await
    }

    /// A builder for non-default settings.
    pub fn builder() -> EmulatorBuilder {
        EmulatorBuilder::default()
    }

    /// Deploys `function`: validates it, builds its code zip, publishes inline layers,
    /// extracts everything, and returns a handle. Deploying a name that exists replaces
    /// its code and configuration; its old environments retire once free.
    pub async fn deploy(&self, function: Function) -> Result<FunctionHandle, DeployError> {
        let config = self.core.deploy(function).await?;
        Ok(FunctionHandle {
            core: self.core.clone(),
            name: config.name,
        })
    }

    /// Publishes a new version of `layer` (`PublishLayerVersion`).
    pub async fn publish_layer(&self, layer: Layer) -> Result<LayerVersion, DeployError> {
        self.core.publish_layer(layer).await
    }

    /// A handle to the function called `name`, if deployed.
    pub fn function(&self, name: &str) -> Option<FunctionHandle> {
        self.core.function(name).map(|_| FunctionHandle {
            core: self.core.clone(),
            name: name.to_string(),
        })
    }

    /// Deletes a function, terminating the execution environments it has now.
    pub fn delete_function(&self, name: &str) -> Result<(), DeployError> {
        self.core.delete_function(name)
    }

    /// Counters over every function of this emulator.
    pub fn stats(&self) -> Stats {
        self.core.timeline.stats(None)
    }

    /// Every event of this emulator, oldest first.
    pub fn timeline(&self) -> Vec<Event> {
        self.core.timeline.events(None)
    }

    /// OS process ids of every live execution environment (process backend).
    pub fn environment_pids(&self) -> Vec<u32> {
        self.core.pids()
    }

    /// Shuts every execution environment down as Lambda does and stops the emulator;
    /// handles to its functions then refuse invokes with [`crate::InvokeError::ShutDown`].
    ///
    /// Environments with extensions get Lambda's shutdown phase first: the runtime gets
    /// SIGTERM, every extension subscribed to it the `SHUTDOWN` event (reason
    /// `spindown`), and everything is killed once they have exited or the budget is spent
    /// (2,000 ms with external extensions, 500 ms with internal ones only); this waits for
    /// that. Dropping the emulator instead kills everything at once.
    pub async fn shutdown(self) {
        self.core.shutdown_gracefully().await;
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(sweeper) = self.sweeper.take() {
            sweeper.abort();
        }
    }
}
