//! The core both front doors share: the function registry, layers, deploy and invoke.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::backend::BackendError;
use crate::deploy::{
    Code, DeployError, Deployment, Function, FunctionConfig, Layer, LayerContent, LayerRegistry,
    LayerSource, LayerVersion, PublishedLayer, arn, timestamp_now,
};
use crate::environment::Outcome;
use crate::invoke::{
    FunctionError, InvokeError, InvokeOutput, InvokeRequest, MAX_ASYNC_PAYLOAD_BYTES,
    MAX_PAYLOAD_BYTES,
};
use crate::pool::{AcquireError, LaunchContext, Lease, Pool};
use crate::stats::{EvictionReason, Timeline};

/// Attempts for one invoke when an environment dies before the runtime took the
/// invocation (so the handler provably never ran): the first try plus two fail-overs.
const DELIVERY_ATTEMPTS: usize = 3;

/// One deployed function: its pool, which holds the current deployment.
pub(crate) struct FunctionEntry {
    pub(crate) pool: Arc<Pool>,
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
    /// Extracted code lives here; made at the first deploy (a directory costs ~ms on a
    /// busy disk, and many tests never deploy), removed when the core goes.
    workdir: std::sync::OnceLock<tempfile::TempDir>,
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
    pub(crate) fn new(settings: Settings, launch: LaunchContext) -> Core {
        Core {
            workdir: std::sync::OnceLock::new(),
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
        if self.shut_down.load(Ordering::SeqCst) {
            Err(DeployError::ShutDown)
        } else {
            Ok(())
        }
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
        let image = match function.image_uri() {
            Some(uri) => Some((uri.to_string(), self.launch.backend.check_image(uri).await?)),
            None => {
                self.launch.backend.check_runtime(function.runtime).await?;
                None
            }
        };
        let mut layers = Vec::with_capacity(function.layers.len());
        for source in &function.layers {
            let arn = match source {
                LayerSource::Inline(layer) => {
                    self.publish_layer(layer.clone()).await?.layer_version_arn
                }
                LayerSource::Published(version) => version.layer_version_arn.clone(),
            };
            layers.push(
                self.layer_for(&function.name, &arn)
                    .ok_or(DeployError::LayerNotFound(arn))?,
            );
        }
        let code = match function.code.clone() {
            Code::Zip(zip) => blocking(move || zip.build().map_err(DeployError::from)).await?,
            Code::Package(package) => package,
            // Nothing to extract: the image is the code.
            Code::Image(_) => {
                blocking(move || crate::CodeZip::new().build().map_err(DeployError::from)).await?
            }
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
            // An image's CodeSha256 is its digest, and its CodeSize 0, as Lambda reports.
            code_sha256: match &image {
                Some((_, id)) => id.trim_start_matches("sha256:").to_string(),
                None => code.code_sha256().to_string(),
            },
            code_size: if image.is_some() { 0 } else { code.code_size() },
            reserved_concurrency: function.reserved_concurrency,
            max_environments: function.max_environments,
            last_modified: timestamp_now(),
            revision_id: uuid::Uuid::new_v4().to_string(),
            description: function.description,
            role: function
                .role
                .unwrap_or_else(|| format!("arn:aws:iam::{}:role/lambda-testkit", s.account_id)),
            resolved_image_uri: image
                .as_ref()
                .map(|(uri, id)| format!("{}@{id}", repository(uri))),
            image_uri: image.map(|(uri, _)| uri),
            image_config: function.image_config,
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
        let root = self.workdir()?.join(format!("{}-{n}", config.name));
        let deployment =
            Arc::new(blocking(move || Deployment::extract(config, code, &layers, root)).await?);
        let config = deployment.config.clone();
        let existing = self.function(&config.name);
        match existing {
            Some(entry) => entry.pool.redeploy(deployment),
            None => {
                let recorder = self.timeline.recorder(&config.name);
                let pool = Pool::new(&config.name, deployment, recorder);
                lock(&self.functions).insert(config.name.clone(), Arc::new(FunctionEntry { pool }));
            }
        }
        Ok(config)
    }

    fn workdir(&self) -> Result<PathBuf, DeployError> {
        if let Some(dir) = self.workdir.get() {
            return Ok(dir.path().to_path_buf());
        }
        let dir = tempfile::Builder::new()
            .prefix("lambda-testkit-")
            .tempdir_in(&self.settings.workdir)?;
        Ok(self.workdir.get_or_init(|| dir).path().to_path_buf())
    }

    /// Deletes `name`, terminating exactly the environments it has now.
    pub(crate) fn delete_function(&self, name: &str) -> Result<(), DeployError> {
        let (name, _) = arn::split_function_name(name);
        let entry = lock(&self.functions)
            .remove(name)
            .ok_or_else(|| DeployError::FunctionNotFound(name.to_string()))?;
        entry.pool.close(EvictionReason::FunctionDeleted);
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
        let (name, _) = arn::split_function_name(name);
        let entry = self
            .function(name)
            .ok_or_else(|| DeployError::FunctionNotFound(name.to_string()))?;
        let deployment = entry.pool.deployment();
        let current = &deployment.config;
        if let Some(expected) = revision.filter(|r| *r != current.revision_id) {
            return Err(DeployError::RevisionMismatch {
                function: current.name.clone(),
                expected: expected.to_string(),
                current: current.revision_id.clone(),
            });
        }
        self.deploy(change(as_deployed(&deployment))).await
    }

    /// Every function's configuration, by name.
    pub(crate) fn configs(&self) -> Vec<FunctionConfig> {
        let entries: Vec<_> = lock(&self.functions).values().cloned().collect();
        entries.iter().map(|e| e.config()).collect()
    }

    /// The latest version of every layer, by name.
    pub(crate) fn latest_layers(&self) -> Vec<LayerVersion> {
        lock(&self.layers).latest()
    }

    /// A published layer version, or one `function` already uses (deleted versions stay
    /// usable by the functions that have them, as in Lambda).
    fn layer_for(&self, function: &str, arn: &str) -> Option<Arc<PublishedLayer>> {
        self.layer_by_arn(arn).or_else(|| {
            let deployment = self.function(function)?.pool.deployment();
            deployment
                .layers
                .iter()
                .find(|l| l.version.layer_version_arn == arn)
                .cloned()
        })
    }

    /// Invokes `name` asynchronously (`Event`): checks the request, then runs the
    /// invocation in the background. Its result shows in stats and the timeline.
    pub(crate) fn invoke_event(
        self: &Arc<Self>,
        name: &str,
        request: InvokeRequest,
    ) -> Result<(), InvokeError> {
        if request.payload.len() > MAX_ASYNC_PAYLOAD_BYTES {
            return Err(InvokeError::RequestTooLarge {
                size: request.payload.len(),
                limit: MAX_ASYNC_PAYLOAD_BYTES,
            });
        }
        if self.shut_down.load(Ordering::SeqCst) {
            return Err(InvokeError::ShutDown);
        }
        self.function(name)
            .ok_or_else(|| InvokeError::FunctionNotFound(name.to_string()))?;
        let core = self.clone();
        let name = name.to_string();
        tokio::spawn(async move {
            let _ = core.invoke(&name, request).await;
        });
        Ok(())
    }

    /// Invokes `name` synchronously (RequestResponse).
    pub(crate) async fn invoke(
        &self,
        name: &str,
        request: InvokeRequest,
    ) -> Result<InvokeOutput, InvokeError> {
        if request.payload.len() > MAX_PAYLOAD_BYTES {
            return Err(InvokeError::RequestTooLarge {
                size: request.payload.len(),
                limit: MAX_PAYLOAD_BYTES,
            });
        }
        if self.shut_down.load(Ordering::SeqCst) {
            return Err(InvokeError::ShutDown);
        }
        let entry = self
            .function(name)
            .ok_or_else(|| InvokeError::FunctionNotFound(name.to_string()))?;
        let deployment = entry.pool.deployment();
        let config = &deployment.config;
        for _ in 0..DELIVERY_ATTEMPTS {
            let mut lease = self.acquire(&entry, config).await?;
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
                    let message = format!(
                        "RequestId: {request_id} Error: Task timed out after {:.2} seconds",
                        timeout.as_secs_f64()
                    );
                    (
                        FunctionError::platform("Sandbox.Timedout", message, &request_id).body,
                        Some("Unhandled".to_string()),
                    )
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
            function: config.name.clone(),
            source: BackendError::Other(format!(
                "{DELIVERY_ATTEMPTS} execution environments died before taking the invocation"
            )),
        })
    }

    async fn acquire(
        &self,
        entry: &FunctionEntry,
        config: &FunctionConfig,
    ) -> Result<Lease, InvokeError> {
        let cap = config
            .max_environments
            .unwrap_or(self.settings.max_environments);
        let function = || config.name.clone();
        entry
            .pool
            .acquire(cap, config.reserved_concurrency, &self.launch)
            .await
            .map_err(|e| match e {
                AcquireError::Throttled { limit } => InvokeError::Throttled {
                    function: function(),
                    limit,
                },
                AcquireError::Launch(source) => InvokeError::Launch {
                    function: function(),
                    source,
                },
                AcquireError::ShutDown => InvokeError::ShutDown,
            })
    }

    /// Acquires and releases an environment without invoking (benchmarks the pool);
    /// returns whether it was warm.
    pub(crate) async fn acquire_and_release(&self, name: &str) -> Result<bool, InvokeError> {
        let entry = self
            .function(name)
            .ok_or_else(|| InvokeError::FunctionNotFound(name.to_string()))?;
        let lease = self
            .acquire(&entry, &entry.pool.deployment().config)
            .await?;
        let warm = !lease.cold_start;
        lease.release(None);
        Ok(warm)
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
        lock(&self.functions)
            .values()
            .flat_map(|e| e.pool.pids())
            .collect()
    }

    /// Terminates everything, synchronously (usable from `Drop`).
    pub(crate) fn shutdown(&self) {
        if self.shut_down.swap(true, Ordering::SeqCst) {
            return;
        }
        let entries: Vec<_> = std::mem::take(&mut *lock(&self.functions))
            .into_values()
            .collect();
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

/// The function as deployed, as a builder to change and redeploy: same code (no rebuild),
/// same layer versions, same settings.
fn as_deployed(deployment: &Deployment) -> Function {
    let c = &deployment.config;
    let function = match &c.image_uri {
        Some(uri) => {
            Function::image(c.name.clone(), uri.clone()).image_config(c.image_config.clone())
        }
        None => Function::new(c.name.clone(), c.runtime).package(deployment.code.clone()),
    };
    let mut function = function
        .timeout(c.timeout)
        .memory_mb(c.memory_mb)
        .description(c.description.clone())
        .role(c.role.clone());
    if !c.handler.is_empty() {
        function = function.handler(c.handler.clone());
    }
    function.environment = c.environment.clone();
    function.layers = c.layers.iter().map(LayerSource::from).collect();
    function.reserved_concurrency = c.reserved_concurrency;
    function.max_environments = c.max_environments;
    function
}

/// `repo/name:tag` → `repo/name` (a registry port stays: `host:5000/name`).
fn repository(uri: &str) -> &str {
    let uri = uri.split('@').next().unwrap_or(uri);
    let last = uri.rsplit('/').next().unwrap_or(uri);
    match last.rsplit_once(':') {
        Some((_, tag)) => &uri[..uri.len() - tag.len() - 1],
        None => uri,
    }
}

/// Runs blocking file work (zip building, extraction) off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, DeployError> + Send + 'static,
) -> Result<T, DeployError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| DeployError::Io(std::io::Error::other(e.to_string())))?
}
