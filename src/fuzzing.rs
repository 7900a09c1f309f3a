//! Test support for the fuzz targets in `fuzz/` (feature `fuzzing`, off by default).
//! Hidden from the docs, not part of the API, free to change at any time.
//!
//! - [`EmulatorBuilder::without_runtimes`](crate::EmulatorBuilder::without_runtimes): the
//!   real emulator (pool, lifecycle, each environment's own Runtime API server on
//!   loopback) on a backend that starts no runtime. The caller plays the runtime over
//!   HTTP, at the address [`RuntimeApis`] reports for each launched environment. Such a
//!   "runtime" exits when its environment is terminated, as a killed process would.
//! - [`event_stream`]: a streamed invocation's frames through the REST API's
//!   `application/vnd.amazon.eventstream` body, exactly as `InvokeWithResponseStream`
//!   writes them.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::backend::{Backend, ExitHook, Instance, LaunchSpec, RuntimeView};
use crate::deploy::{Deployment, Runtime, RuntimeVersion};
use crate::error::BackendError;

/// The Runtime API address of every environment launched, in launch order.
#[derive(Debug)]
pub struct RuntimeApis(mpsc::UnboundedReceiver<SocketAddr>);

impl RuntimeApis {
    /// The next launched environment's Runtime API, waiting up to `limit`.
    pub async fn next(&mut self, limit: Duration) -> Option<SocketAddr> {
        tokio::time::timeout(limit, self.0.recv())
            .await
            .ok()
            .flatten()
    }

    /// The next launched environment's Runtime API, if one was launched already.
    pub fn try_next(&mut self) -> Option<SocketAddr> {
        self.0.try_recv().ok()
    }
}

/// A backend whose environments run nothing.
#[derive(Debug)]
pub(crate) struct NoRuntimes(mpsc::UnboundedSender<SocketAddr>);

impl NoRuntimes {
    pub(crate) fn new() -> (Arc<NoRuntimes>, RuntimeApis) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Arc::new(NoRuntimes(tx)), RuntimeApis(rx))
    }
}

struct Nothing(Mutex<Option<ExitHook>>);

impl Instance for Nothing {
    fn flush_output(&self) {}

    fn terminate(&self) {
        let hook = self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(hook) = hook {
            // Reported from another task, as the process backend's exit watcher does:
            // terminate may be called with the environment's state locked.
            let exit = move || hook("signal: 9 (SIGKILL)".to_string());
            match tokio::runtime::Handle::try_current() {
                Ok(handle) => drop(handle.spawn(async move { exit() })),
                Err(_) => exit(),
            }
        }
    }

    fn pid(&self) -> Option<u32> {
        None
    }

    fn max_memory_used_mb(&self) -> Option<u64> {
        None
    }
}

#[async_trait::async_trait]
impl Backend for NoRuntimes {
    fn view(&self, runtime_api: SocketAddr, deployment: &Deployment) -> RuntimeView {
        RuntimeView::on_host(runtime_api, deployment)
    }

    async fn check_runtime(&self, _: Runtime) -> Result<Option<RuntimeVersion>, BackendError> {
        Ok(None)
    }

    async fn launch(&self, spec: LaunchSpec) -> Result<Box<dyn Instance>, BackendError> {
        if let Ok(addr) = spec.view.runtime_api.parse() {
            let _ = self.0.send(addr);
        }
        Ok(Box::new(Nothing(Mutex::new(Some(spec.on_exit)))))
    }
}

#[cfg(feature = "api")]
pub use crate::api::eventstream::{StreamedInvocation, event_stream};
