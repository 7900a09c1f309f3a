//! The core both front doors share: the function registry, layers, deploy and invoke.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::backend::BackendError;
use crate::deploy::{
    Code, DeployError, Deployment, Function, FunctionConfig, Layer, LayerContent, LayerRegistry, LayerSource,
    LayerVersion, PublishedLayer, arn, timestamp_now,
};
use crate::environment::Outcome;
use crate::invoke::{FunctionError, InvokeError, InvokeOutput, InvokeRequest, MAX_PAYLOAD_BYTES};
use crate::pool::{AcquireError, LaunchContext, Pool};
use crate::stats::{EvictionReason, Recorder, Timeline};

/// Attempts for one invoke when an environment dies before the runtime took the
/// invocation (so the handler provably never ran): the first try plus two fail-overs.
const DELIVERY_ATTEMPTS: usize = 3;

/// One deployed function: its pool (which holds the current deployment) and recorder.
pub(crate) struct FunctionEntry {
    pub(crate) pool: Arc<Pool>,
    pub(crate) recorder: Recorder,
}

impl FunctionEntry {
    pub(crate) fn config(&self) -> FunctionConfig {
        self.pool.deployment().config.clone()
    }
}

/// Settings fixed when the emulator starts.
pub(crate) struct Settings {
    pub(crate) region: String,
    pub(crate) account_id: String,
    pub(crate) max_environments: usize,
    pub(crate) workdir: PathBuf,
}

pub(crate) struct Core {
    /// Extracted code lives here; removed when the core goes.
    _workdir: tempfile::TempDir,
    pub(crate) settings: Settings,
    pub(crate) launch: LaunchContext,
    pub(crate) timeline: Arc<Timeline>,
    functions: Mutex<BTreeMap<String, Arc<FunctionEntry>>>,
    layers: Mutex<LayerRegistry>,
    deploy_counter: AtomicU64,
    shut_down: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Core {
    pub(crate) fn new(settings: Settings, launch: LaunchContext, workdir: tempfile::TempDir) -> Core {
        Core {
            _workdir: workdir,
            settings,
            launch,
            timeline: Timeline::new(),
            functions: Mutex::default(),
            layers: Mutex::default(),
            deploy_counter: AtomicU64::new(0),
            shut_down: AtomicBool::new(false),
        }
    }

    pub(crate) fn function(&self, name: &str) -> Option<Arc<FunctionEntry>> {
        let (name, _qualifier) = arn::split_function_name(name);
        lock(&self.functions).get(name).cloned()
    }

    pub(crate) fn function_names(&self) -> Vec<String> {
        lock(&self.functions).keys().cloned().collect()
    }

    fn check_open(&self) -> Result<(), DeployError> {
        if self.shut_down.load(Ordering::SeqCst) { Err(DeployError::ShutDown) } else { Ok(()) }
    }

    /// Publishes a new version of `layer`.
    pub(crate) async fn publish_layer(&self, layer: Layer) -> Result<LayerVersion, DeployError> {
        self.check_open()?;
        let package = match &layer.content {
            LayerContent::Zip(_) => {
                let l = layer.clone();
                blocking(move || l.build()).await?
            }
            LayerContent::Package(_) => layer.build()?,
        };
        let s = &self.settings;
        Ok(lock(&self.layers).publish(&layer, package, &s.region, &s.account_id))
    }

    pub(crate) fn layer(&self, name: &str, version: u64) -> Option<Arc<PublishedLayer>> {
        lock(&self.layers).get(name, version)
    }

    pub(crate) fn layer_by_arn(&self, arn: &str) -> Option<Arc<PublishedLayer>> {
        lock(&self.layers).get_by_arn(arn)
    }

    pub(crate) fn layer_versions(&self, name: &str) -> Vec<LayerVersion> {
        lock(&self.layers).versions(name)
    }

    pub(crate) fn delete_layer_version(&self, name: &str, version: u64) -> bool {
        lock(&self.layers).delete(name, version)
    }

    /// Creates `function`, or replaces the code and configuration of the function of that
    /// name (its old environments are retired once free).
    pub(crate) async fn deploy(&self, function: Function) -> Result<FunctionConfig, DeployError> {
        self.check_open()?;
        function.validate()?;
        self.launch.backend.check_runtime(function.runtime).await?;
        let mut layers = Vec::with_capacity(function.layers.len());
        for source in &function.layers {
            let arn = match source {
                LayerSource::Inline(layer) => self.publish_layer(layer.clone()).await?.layer_version_arn,
                LayerSource::Published(version) => version.layer_version_arn.clone(),
            };
            layers.push(self.layer_by_arn(&arn).ok_or(DeployError::LayerNotFound(arn))?);
        }
        let code = match function.code.clone() {
            Code::Zip(zip) => blocking(move || zip.build().map_err(DeployError::from)).await?,
            Code::Package(package) => package,
        };
        let s = &self.settings;
        let config = FunctionConfig {
            arn: arn::function(&s.region, &s.account_id, &function.name),
            name: function.name,
            runtime: function.runtime,
            handler: function.handler.unwrap_or_default(),
            environment: function.environment,
            timeout: function.timeout,
            memory_mb: function.memory_mb,
            layers: layers.iter().map(|l| l.version.clone()).collect(),
            code_sha256: code.code_sha256().to_string(),
            code_size: code.code_size(),
            reserved_concurrency: function.reserved_concurrency,
            max_environments: function.max_environments,
            last_modified: timestamp_now(),
            revision_id: uuid::Uuid::new_v4().to_string(),
        };
        self.install(config, code, layers).await
    }

    /// Extracts a deployment and makes it the function's current one.
    pub(crate) async fn install(
        &self,
        config: FunctionConfig,
        code: crate::DeploymentPackage,
        layers: Vec<Arc<PublishedLayer>>,
    ) -> Result<FunctionConfig, DeployError> {
        let n = self.deploy_counter.fetch_add(1, Ordering::Relaxed);
        let root = self.settings.workdir.join("deploys").join(format!("{}-{n}", config.name));
        let deployment = Arc::new(blocking(move || Deployment::extract(config, code, &layers, root)).await?);
        let config = deployment.config.clone();
        let existing = self.function(&config.name);
        match existing {
            Some(entry) => entry.pool.redeploy(deployment),
            None => {
                let recorder = self.timeline.recorder(&config.name);
                let pool = Pool::new(&config.name, deployment, recorder.clone());
                lock(&self.functions).insert(config.name.clone(), Arc::new(FunctionEntry { pool, recorder }));
            }
        }
        Ok(config)
    }

    /// Deletes `name`, terminating exactly the environments it has now.
    pub(crate) fn delete_function(&self, name: &str) -> Result<(), DeployError> {
        let (name, _) = arn::split_function_name(name);
        let entry = lock(&self.functions).remove(name).ok_or_else(|| DeployError::FunctionNotFound(name.to_string()))?;
        entry.pool.close(EvictionReason::FunctionDeleted);
        Ok(())
    }

    /// Invokes `name` synchronously (RequestResponse).
    pub(crate) async fn invoke(&self, name: &str, request: InvokeRequest) -> Result<InvokeOutput, InvokeError> {
        if request.payload.len() > MAX_PAYLOAD_BYTES {
            return Err(InvokeError::RequestTooLarge { size: request.payload.len() });
        }
        if self.shut_down.load(Ordering::SeqCst) {
            return Err(InvokeError::ShutDown);
        }
        let entry = self.function(name).ok_or_else(|| InvokeError::FunctionNotFound(name.to_string()))?;
        let config = entry.config();
        let cap = config.max_environments.unwrap_or(self.settings.max_environments);
        for _ in 0..DELIVERY_ATTEMPTS {
            let mut lease = entry.pool.acquire(cap, config.reserved_concurrency, &self.launch).await.map_err(|e| match e {
                AcquireError::Throttled { limit } => InvokeError::Throttled { function: config.name.clone(), limit },
                AcquireError::Launch(source) => InvokeError::Launch { function: config.name.clone(), source },
                AcquireError::ShutDown => InvokeError::ShutDown,
            })?;
            let env = lease.env();
            let request_id = uuid::Uuid::new_v4().to_string();
            let done = env.invoke(&request, request_id.clone()).await;
            let timeout = env.deployment.config.timeout;
            if matches!(done.outcome, Outcome::NotDelivered) {
                lease.release(Some(EvictionReason::Unreachable));
                continue;
            }
            lease.release(done.evict);
            let (payload, function_error) = match done.outcome {
                Outcome::Response(bytes) => (bytes, None),
                Outcome::Error(error) => (error.body, Some("Unhandled".to_string())),
                Outcome::Timeout => {
                    let message = format!("RequestId: {request_id} Error: Task timed out after {:.2} seconds", timeout.as_secs_f64());
                    (FunctionError::platform("Sandbox.Timedout", message, &request_id).body, Some("Unhandled".to_string()))
                }
                Outcome::NotDelivered => unreachable!("retried above"),
            };
            return Ok(InvokeOutput {
                payload,
                function_error,
                request_id,
                executed_version: "$LATEST".to_string(),
                log: done.log,
                cold_start: done.cold_start,
                duration: done.duration,
                environment_id: env.id().to_string(),
            });
        }
        Err(InvokeError::Launch {
            function: config.name,
            source: BackendError::Other(format!(
                "{DELIVERY_ATTEMPTS} execution environments died before taking the invocation"
            )),
        })
    }

    /// Retires idle environments unused for `ttl` in every function.
    pub(crate) fn evict_expired(&self, ttl: Duration) {
        let entries: Vec<_> = lock(&self.functions).values().cloned().collect();
        for entry in entries {
            entry.pool.evict_expired(ttl);
        }
    }

    /// Process ids of every live environment.
    pub(crate) fn pids(&self) -> Vec<u32> {
        lock(&self.functions).values().flat_map(|e| e.pool.pids()).collect()
    }

    /// Terminates everything, synchronously (usable from `Drop`).
    pub(crate) fn shutdown(&self) {
        if self.shut_down.swap(true, Ordering::SeqCst) {
            return;
        }
        let entries: Vec<_> = std::mem::take(&mut *lock(&self.functions)).into_values().collect();
        for entry in entries {
            entry.pool.close(EvictionReason::Shutdown);
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

/// Runs blocking file work (zip building, extraction) off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, DeployError> + Send + 'static,
) -> Result<T, DeployError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| DeployError::Io(std::io::Error::other(e.to_string())))?
}
