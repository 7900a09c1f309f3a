//! The core both front doors call: the Rust API ([`crate::Emulator`]) and the REST API
//! (`api`) deploy, invoke and evict through these methods and nothing else.
//!
//! A thin facade: the registry ([`crate::deploy`]) makes deployments, each function's
//! [`Pool`] ([`crate::execution`]) runs them, the backend checks what it can run. What is
//! here is only the map from function name to its pools (`$LATEST`'s; each published
//! version's, with aliases and provisioned concurrency in [`versions`]), the emulator-wide
//! checks (shut down, payload limits) and the wiring between those layers.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::deploy::{
    DeployError, Function, FunctionConfig, Layer, LayerVersion, Registry, ResolvedImage, arn,
};
use crate::execution::{LaunchContext, Pool, Target};
use crate::invoke::stream::{ResponseStream, STREAM_BUFFER_FRAMES, StreamFrame};
use crate::invoke::{
    InvokeError, InvokeOutput, InvokeRequest, MAX_ASYNC_PAYLOAD_BYTES, MAX_PAYLOAD_BYTES,
};
use crate::stats::{EventKind, EvictionReason, Timeline};

mod durable;
mod versions;

pub(crate) use durable::Durable;
pub use versions::ProvisionedConcurrency;
use versions::Published;

/// Settings fixed when the emulator starts (region and account are the registry's).
pub(crate) struct Settings {
    pub(crate) max_environments: usize,
    /// What durable timers are measured on.
    pub(crate) clock: crate::durable::Clock,
    /// Timeline events kept (`EmulatorBuilder::history_limit`).
    pub(crate) history_limit: usize,
}

pub(crate) struct Core {
    pub(crate) settings: Settings,
    pub(crate) registry: Registry,
    launch: LaunchContext,
    pub(crate) timeline: Arc<Timeline>,
    functions: Mutex<BTreeMap<String, Arc<Entry>>>,
    shut_down: AtomicBool,
    /// Picks between an alias's versions (seeded: reproducible splits).
    routing: Mutex<rand::rngs::StdRng>,
    /// Function URL configs and the listeners serving them.
    pub(crate) urls: crate::urls::UrlStore,
    /// Durable executions and their scheduler.
    pub(crate) durable: Durable,
    /// Starts the REST listener a durable handler checkpoints to, if it is not
    /// listening yet (set by the Rust front door, whose listener starts on demand).
    listener_starter: std::sync::OnceLock<ListenerStarter>,
}

/// See [`Core::on_durable_deploy`].
#[cfg_attr(not(feature = "api"), allow(dead_code))]
pub(crate) type ListenerStarter = Box<dyn Fn() + Send + Sync>;

/// One function: `$LATEST`'s pool, and its published versions with theirs.
struct Entry {
    latest: Arc<Pool>,
    published: Mutex<Published>,
}

impl Entry {
    fn published(&self) -> MutexGuard<'_, Published> {
        lock(&self.published)
    }

    /// Every pool: `$LATEST`'s and each version's.
    fn pools(&self) -> Vec<Arc<Pool>> {
        let mut pools = vec![self.latest.clone()];
        pools.extend(self.published().pools.values().cloned());
        pools
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Core {
    pub(crate) fn new(settings: Settings, registry: Registry, launch: LaunchContext) -> Core {
        Core {
            durable: Durable::new(settings.clock.clone()),
            timeline: Timeline::with_capacity(settings.history_limit),
            settings,
            registry,
            launch,
            functions: Mutex::default(),
            shut_down: AtomicBool::new(false),
            routing: Mutex::new(rand::SeedableRng::from_os_rng()),
            urls: Default::default(),
            listener_starter: Default::default(),
        }
    }

    #[cfg_attr(not(feature = "api"), allow(dead_code))]
    /// Calls `start` before any durable function is deployed, however it becomes
    /// durable (a deploy, `FunctionHandle::update`, a redeploy of the name): its
    /// environments get the REST API's address, so it must listen by then.
    pub(crate) fn on_durable_deploy(&self, start: ListenerStarter) {
        let _ = self.listener_starter.set(start);
    }

    /// Records where the REST API listens (durable functions checkpoint there).
    pub(crate) fn set_lambda_endpoint(&self, url: &str) {
        let _ = self.launch.platform.lambda_endpoint.set(url.to_string());
    }

    /// Seeds alias routing: the same seed gives the same split over the same invokes.
    pub(crate) fn seed_routing(&self, seed: u64) {
        *lock(&self.routing) = rand::SeedableRng::seed_from_u64(seed);
    }

    fn entry(&self, name: &str) -> Option<Arc<Entry>> {
        let (name, _qualifier) = arn::split_function_name(name);
        lock(&self.functions).get(name).cloned()
    }

    /// The `$LATEST` pool of the function `name` (a name, ARN, or `name:qualifier`).
    pub(crate) fn function(&self, name: &str) -> Option<Arc<Pool>> {
        self.entry(name).map(|e| e.latest.clone())
    }

    fn entry_or_not_found(&self, name: &str) -> Result<Arc<Entry>, DeployError> {
        self.entry(name).ok_or_else(|| {
            DeployError::FunctionNotFound(arn::split_function_name(name).0.to_string())
        })
    }

    /// The function's configuration as deployed now.
    pub(crate) fn config(&self, name: &str) -> Option<FunctionConfig> {
        self.function(name).map(|p| p.deployment().config.clone())
    }

    pub(crate) fn function_names(&self) -> Vec<String> {
        lock(&self.functions).keys().cloned().collect()
    }

    /// Every function's configuration (`$LATEST`), by name.
    pub(crate) fn configs(&self) -> Vec<FunctionConfig> {
        let entries: Vec<_> = lock(&self.functions).values().cloned().collect();
        entries
            .iter()
            .map(|e| e.latest.deployment().config.clone())
            .collect()
    }

    fn check_open(&self) -> Result<(), DeployError> {
        if self.shut_down.load(Ordering::SeqCst) {
            Err(DeployError::ShutDown)
        } else {
            Ok(())
        }
    }

    /// Publishes a new version of `layer`.
    pub(crate) async fn publish_layer(&self, layer: Layer) -> Result<LayerVersion, DeployError> {
        self.check_open()?;
        self.registry.publish_layer(layer).await
    }

    /// Creates `function`, or replaces the code and configuration of the function of that
    /// name (its old environments are retired once free).
    pub(crate) async fn deploy(&self, function: Function) -> Result<FunctionConfig, DeployError> {
        self.check_open()?;
        function.validate()?;
        if function.durable.is_some()
            && let Some(start) = self.listener_starter.get()
        {
            start();
        }
        let backend = &self.launch.backend;
        let (image, runtime_version) = match function.image_uri() {
            Some(uri) => (
                Some(ResolvedImage {
                    uri: uri.to_string(),
                    id: backend.check_image(uri).await?,
                }),
                None,
            ),
            None => {
                let runtime = function.runtime.expect("a zip function has a runtime");
                (None, backend.check_runtime(runtime).await?)
            }
        };
        let current = self.function(&function.name);
        let deployment = self
            .registry
            .build(
                function,
                image,
                current.as_ref().map(|p| p.deployment()).as_deref(),
            )
            .await?;
        let mut deployment = deployment;
        deployment.config.runtime_version = runtime_version;
        let deployment = Arc::new(deployment);
        let config = deployment.config.clone();
        let recorder = self.timeline.recorder(&config.name);
        if let (Some(runtime), Some(runs)) = (config.runtime, &config.runtime_version)
            && runs.fallback
        {
            recorder.record(EventKind::RuntimeFallback {
                runtime: runtime.to_string(),
                runs: runs.to_string(),
            });
        }
        match current {
            Some(pool) => pool.redeploy(deployment),
            None => {
                let entry = Entry {
                    latest: Pool::new(&config.name, deployment, recorder),
                    published: Mutex::default(),
                };
                lock(&self.functions).insert(config.name.clone(), Arc::new(entry));
            }
        }
        Ok(config)
    }

    /// Deletes `name`, terminating exactly the environments it has now.
    pub(crate) fn delete_function(&self, name: &str) -> Result<(), DeployError> {
        self.check_open()?;
        let (name, _) = arn::split_function_name(name);
        let entry = lock(&self.functions)
            .remove(name)
            .ok_or_else(|| DeployError::FunctionNotFound(name.to_string()))?;
        self.urls.remove_function(name);
        for pool in entry.pools() {
            pool.close(EvictionReason::FunctionDeleted, true);
        }
        Ok(())
    }

    /// `CreateFunction`: deploys `function` unless a function of that name exists.
    pub(crate) async fn create(&self, function: Function) -> Result<FunctionConfig, DeployError> {
        if self.function(&function.name).is_some() {
            return Err(DeployError::FunctionExists(function.name));
        }
        self.deploy(function).await
    }

    /// `UpdateFunctionCode` / `UpdateFunctionConfiguration` / `PutFunctionConcurrency`:
    /// `change` edits the function as currently deployed, and the result is redeployed
    /// (environments of the old deploy retire once free). `revision`, when given, must be
    /// the current `RevisionId`.
    pub(crate) async fn update(
        &self,
        name: &str,
        revision: Option<&str>,
        change: impl FnOnce(Function) -> Function,
    ) -> Result<FunctionConfig, DeployError> {
        self.check_open()?;
        let (name, _) = arn::split_function_name(name);
        let deployment = self
            .function(name)
            .ok_or_else(|| DeployError::FunctionNotFound(name.to_string()))?
            .deployment();
        let current = &deployment.config;
        if let Some(expected) = revision.filter(|r| *r != current.revision_id) {
            return Err(DeployError::RevisionMismatch {
                function: current.name.clone(),
                expected: expected.to_string(),
                current: current.revision_id.clone(),
            });
        }
        self.deploy(change(deployment.as_function())).await
    }

    /// Where an invoke of `name` runs, after the checks every invoke makes.
    fn target(
        &self,
        name: &str,
        request: &InvokeRequest,
        limit: usize,
    ) -> Result<Target<'_>, InvokeError> {
        if request.payload.len() > limit {
            return Err(InvokeError::RequestTooLarge {
                size: request.payload.len(),
                limit,
            });
        }
        if self.shut_down.load(Ordering::SeqCst) {
            return Err(InvokeError::ShutDown);
        }
        let (function, label_qualifier) = arn::split_function_name(name);
        let qualifier = request.qualifier.as_deref().or(label_qualifier);
        let (pool, alias) = self.resolve(function, qualifier).map_err(|_| {
            InvokeError::FunctionNotFound(match qualifier {
                Some(q) => format!("{function}:{q}"),
                None => function.to_string(),
            })
        })?;
        let deployment = pool.deployment();
        let config = &deployment.config;
        let invoked_arn = alias.map(|a| format!("{}:{a}", self.registry.function_arn(function)));
        let (cap, reserved) = (
            config
                .max_environments
                .unwrap_or(self.settings.max_environments),
            config.reserved_concurrency,
        );
        Ok(Target {
            pool,
            cap,
            reserved,
            launch: &self.launch,
            invoked_arn,
        })
    }

    /// Invokes `name` synchronously (RequestResponse). A durable function starts (or
    /// finds) a durable execution and answers when it ends.
    pub(crate) async fn invoke(
        self: &Arc<Self>,
        name: &str,
        request: InvokeRequest,
    ) -> Result<InvokeOutput, InvokeError> {
        let target = self.target(name, &request, MAX_PAYLOAD_BYTES)?;
        if !request.durable_replay {
            // Not held across the invocation: a redeploy may retire this deployment.
            let deployment = target.pool.deployment();
            if deployment.config.durable.is_some() {
                let arn = self.start_execution_of(&deployment.config, &request)?;
                drop(target);
                return self.invoke_durable(arn).await;
            }
        }
        target.invoke(&request).await
    }

    /// Invokes `name` asynchronously (`Event`): checks the request, then runs the
    /// invocation in the background. Its result shows in stats and the timeline. A
    /// durable function starts (or finds) its execution: its ARN.
    pub(crate) fn invoke_event(
        self: &Arc<Self>,
        name: &str,
        request: InvokeRequest,
    ) -> Result<Option<String>, InvokeError> {
        let target = self.target(name, &request, MAX_ASYNC_PAYLOAD_BYTES)?;
        let deployment = target.pool.deployment();
        if deployment.config.durable.is_some() {
            return self
                .start_execution_of(&deployment.config, &request)
                .map(Some);
        }
        let core = self.clone();
        let name = name.to_string();
        tokio::spawn(async move {
            let _ = core.invoke(&name, request).await;
        });
        Ok(None)
    }

    /// Invokes `name` with response streaming (`InvokeWithResponseStream`), for both front
    /// doors. The invocation runs as its own task, so the deadline holds and the
    /// environment is released whether or not (or however slowly) the stream is read;
    /// chunks go straight from the Runtime API to the reader.
    pub(crate) async fn invoke_stream(
        self: &Arc<Self>,
        name: &str,
        mut request: InvokeRequest,
    ) -> Result<ResponseStream, InvokeError> {
        // Lambda streams a function's own response; a durable function's response is
        // the durable envelope (`{Status: PENDING}` while it is suspended) and its
        // result is the execution's, which InvokeWithResponseStream cannot carry (the
        // model gives it no `DurableExecutionName` in, no `DurableExecutionArn` out, and
        // AWS documents durable functions as invoked synchronously, asynchronously or by
        // event source mappings): refused, not answered with the result in one chunk.
        let deployment = self.target(name, &request, usize::MAX)?.pool.deployment();
        if deployment.config.durable.is_some() {
            return Err(crate::durable::DurableError::invalid(format!(
                "InvokeWithResponseStream is not supported for durable function {}: use Invoke (RequestResponse or Event)",
                deployment.config.name
            ))
            .into());
        }
        drop(deployment);
        let (frames, rx) = tokio::sync::mpsc::channel(STREAM_BUFFER_FRAMES);
        request.response_stream = Some(frames.clone());
        let core = self.clone();
        let name = name.to_string();
        tokio::spawn(async move {
            let result = core.invoke(&name, request).await;
            let _ = frames.send(StreamFrame::Finished(result)).await;
        });
        ResponseStream::start(rx).await
    }

    /// Acquires and releases an environment without invoking (benchmarks the pool);
    /// returns whether it was warm.
    pub(crate) async fn acquire_and_release(&self, name: &str) -> Result<bool, InvokeError> {
        let target = self.target(name, &InvokeRequest::default(), MAX_PAYLOAD_BYTES)?;
        target.acquire_and_release().await
    }

    /// Retires idle environments unused for `ttl` in every function.
    pub(crate) fn evict_expired(&self, ttl: Duration) {
        for pool in self.all_pools() {
            pool.evict_expired(ttl);
        }
    }

    /// Every pool of every function (`$LATEST`'s and each version's).
    fn all_pools(&self) -> Vec<Arc<Pool>> {
        let entries: Vec<_> = lock(&self.functions).values().cloned().collect();
        entries.iter().flat_map(|e| e.pools()).collect()
    }

    /// Process ids of every live environment.
    pub(crate) fn pids(&self) -> Vec<u32> {
        self.all_pools().iter().flat_map(|p| p.pids()).collect()
    }

    /// Shuts every environment down as Lambda does (extensions get `SHUTDOWN` and their
    /// budget, at most 2 s), waits for that, then terminates what is left.
    pub(crate) async fn shutdown_gracefully(&self) {
        if !self.shut_down.load(Ordering::SeqCst) {
            for pool in self.take_pools() {
                pool.close(EvictionReason::Shutdown, true);
            }
            self.launch.platform.shutdowns.finished().await;
        }
        self.shutdown();
    }

    fn take_pools(&self) -> Vec<Arc<Pool>> {
        std::mem::take(&mut *lock(&self.functions))
            .into_values()
            .flat_map(|e| e.pools())
            .collect()
    }

    /// Terminates everything, synchronously (usable from `Drop`).
    pub(crate) fn shutdown(&self) {
        if self.shut_down.swap(true, Ordering::SeqCst) {
            return;
        }
        self.urls.clear();
        for pool in self.take_pools() {
            pool.close(EvictionReason::Shutdown, false);
        }
        // Containers are removed asynchronously; wait until they are gone.
        self.launch.backend.shutdown();
    }
}

impl Drop for Core {
    /// The emulator and its last handle are gone: nothing it started may outlive it.
    fn drop(&mut self) {
        self.shutdown();
    }
}
