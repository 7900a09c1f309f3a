//! The core both front doors call: the Rust API ([`crate::Emulator`]) and the REST API
//! (`api`) deploy, invoke and evict through these methods and nothing else.
//!
//! A thin facade: the registry ([`crate::deploy`]) makes deployments, each function's
//! [`Pool`] ([`crate::execution`]) runs them, the backend checks what it can run. What is
//! here is only the map from function name to pool, the emulator-wide checks (shut
//! down, payload limits) and the wiring between those layers.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::deploy::{
    Alias, DeployError, Function, FunctionConfig, LATEST, Layer, LayerVersion, Registry,
    ResolvedImage, VersionError, Versions, arn,
};
use crate::execution::{LaunchContext, Pool, Target};
use crate::invoke::stream::{ResponseStream, STREAM_BUFFER_FRAMES, StreamFrame};
use crate::invoke::{
    InvokeError, InvokeOutput, InvokeRequest, MAX_ASYNC_PAYLOAD_BYTES, MAX_PAYLOAD_BYTES,
};
use crate::stats::{EventKind, EvictionReason, Timeline};

/// Settings fixed when the emulator starts (region and account are the registry's).
pub(crate) struct Settings {
    pub(crate) max_environments: usize,
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
}

/// One function: `$LATEST`'s pool, and its published versions with theirs.
struct Entry {
    latest: Arc<Pool>,
    published: Mutex<Published>,
}

#[derive(Default)]
struct Published {
    book: Versions,
    /// Each published version's environments.
    pools: BTreeMap<u32, Arc<Pool>>,
    /// Provisioned concurrency by qualifier (version or alias).
    provisioned: BTreeMap<String, ProvisionedConcurrency>,
}

/// `GetProvisionedConcurrencyConfig`'s shape.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProvisionedConcurrency {
    /// `RequestedProvisionedConcurrentExecutions`.
    pub requested: u32,
    /// `AllocatedProvisionedConcurrentExecutions`: initialized and kept warm.
    pub allocated: u32,
    /// `Status`: `IN_PROGRESS` while environments initialize, then `READY` (`FAILED` if
    /// one could not start).
    pub status: String,
    /// `LastModified`.
    pub last_modified: String,
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
            settings,
            registry,
            launch,
            timeline: Timeline::new(),
            functions: Mutex::default(),
            shut_down: AtomicBool::new(false),
            routing: Mutex::new(rand::SeedableRng::from_os_rng()),
            urls: Default::default(),
        }
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

    /// The pool that runs `qualifier` of `name` (none or `$LATEST`, a version number, an
    /// alias: one of its versions, by its weights), and the alias invoked.
    fn resolve(
        &self,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<(Arc<Pool>, Option<String>), DeployError> {
        let entry = self.entry_or_not_found(name)?;
        let roll: f64 = rand::Rng::random(&mut *lock(&self.routing));
        let published = entry.published();
        let resolved = published.book.resolve(qualifier, roll)?;
        let pool = match resolved.version.parse::<u32>() {
            Ok(n) => published
                .pools
                .get(&n)
                .cloned()
                .ok_or(VersionError::UnknownVersion(resolved.version))?,
            Err(_) => entry.latest.clone(),
        };
        Ok((pool, resolved.alias))
    }

    /// The configuration of `qualifier` of `name` (an alias: of the version it points at).
    pub(crate) fn config_of(
        &self,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<FunctionConfig, DeployError> {
        let entry = self.entry_or_not_found(name)?;
        let published = entry.published();
        let version = match qualifier.filter(|q| !q.is_empty()) {
            Some(q) if q != LATEST && q.parse::<u32>().is_err() => {
                published.book.alias(q)?.function_version.clone()
            }
            other => other.unwrap_or(LATEST).to_string(),
        };
        published.book.check(&version)?;
        Ok(match version.parse::<u32>() {
            Ok(n) => published.pools[&n].deployment().config.clone(),
            Err(_) => entry.latest.deployment().config.clone(),
        })
    }

    /// `PublishVersion`: a version of `$LATEST` as it is now; the latest version when
    /// nothing changed since. `code_sha256` and `revision`, when given, must match.
    pub(crate) async fn publish_version(
        &self,
        name: &str,
        code_sha256: Option<&str>,
        revision: Option<&str>,
        description: Option<String>,
    ) -> Result<FunctionConfig, DeployError> {
        self.check_open()?;
        let entry = self.entry_or_not_found(name)?;
        let latest = entry.latest.deployment();
        let current = &latest.config;
        if let Some(expected) = code_sha256.filter(|c| *c != current.code_sha256) {
            return Err(DeployError::Invalid(format!(
                "CodeSHA256 ({expected}) is different from current CodeSHA256 in $LATEST ({}). Please try again with the CodeSHA256 in $LATEST.",
                current.code_sha256
            )));
        }
        if let Some(expected) = revision.filter(|r| *r != current.revision_id) {
            return Err(DeployError::RevisionMismatch {
                function: current.name.clone(),
                expected: expected.to_string(),
                current: current.revision_id.clone(),
            });
        }
        let (number, new) = entry.published().book.publish(&latest.deploy_id);
        if !new {
            return Ok(entry.published().pools[&number].deployment().config.clone());
        }
        let deployment = match self.registry.snapshot(&latest, number, description).await {
            Ok(deployment) => Arc::new(deployment),
            Err(e) => {
                let _ = entry.published().book.delete_version(number);
                return Err(e);
            }
        };
        let config = deployment.config.clone();
        let recorder = self
            .timeline
            .recorder(&format!("{}:{number}", current.name));
        let pool = Pool::new(&current.name, deployment, recorder);
        entry.published().pools.insert(number, pool);
        Ok(config)
    }

    /// `ListVersionsByFunction`: `$LATEST`, then each version in order.
    pub(crate) fn versions(&self, name: &str) -> Result<Vec<FunctionConfig>, DeployError> {
        let entry = self.entry_or_not_found(name)?;
        let mut configs = vec![entry.latest.deployment().config.clone()];
        configs.extend(
            entry
                .published()
                .pools
                .values()
                .map(|p| p.deployment().config.clone()),
        );
        Ok(configs)
    }

    /// `DeleteFunction` with a version number: that version and its environments.
    pub(crate) fn delete_version(&self, name: &str, version: &str) -> Result<(), DeployError> {
        self.check_open()?;
        let entry = self.entry_or_not_found(name)?;
        let number: u32 = version.parse().map_err(|_| {
            DeployError::Invalid(format!(
                "Deletion of aliases is not supported through DeleteFunction ({version}): use DeleteAlias"
            ))
        })?;
        let pool = {
            let mut published = entry.published();
            published.book.delete_version(number)?;
            published.pools.remove(&number)
        };
        if let Some(pool) = pool {
            pool.close(EvictionReason::FunctionDeleted, true);
        }
        Ok(())
    }

    /// The pool of a version (or the version an alias points at) for provisioned
    /// concurrency, which Lambda refuses on `$LATEST`.
    fn provisionable(&self, name: &str, qualifier: &str) -> Result<Arc<Pool>, DeployError> {
        let entry = self.entry_or_not_found(name)?;
        let published = entry.published();
        let version = match qualifier.parse::<u32>() {
            Ok(n) => n,
            Err(_) if qualifier == LATEST || qualifier.is_empty() => {
                return Err(DeployError::Invalid(
                    "Provisioned Concurrency Configs cannot be applied to unpublished function versions."
                        .to_string(),
                ));
            }
            Err(_) => {
                let alias = published.book.alias(qualifier)?;
                if alias.routing.is_some() {
                    return Err(DeployError::Invalid(
                        "Alias with weights can not be used with Provisioned Concurrency"
                            .to_string(),
                    ));
                }
                alias.function_version.parse().map_err(|_| {
                    DeployError::Invalid(
                        "Provisioned Concurrency Configs cannot be applied to unpublished function versions."
                            .to_string(),
                    )
                })?
            }
        };
        published
            .pools
            .get(&version)
            .cloned()
            .ok_or_else(|| VersionError::UnknownVersion(version.to_string()).into())
    }

    /// `PutProvisionedConcurrencyConfig`: keeps `n` environments of `qualifier` (a version
    /// or an alias without weights) initialized; resolves once they are (`READY`).
    pub(crate) async fn provision(
        &self,
        name: &str,
        qualifier: &str,
        n: u32,
    ) -> Result<ProvisionedConcurrency, DeployError> {
        self.check_open()?;
        if n == 0 {
            return Err(DeployError::Invalid(
                "ProvisionedConcurrentExecutions must be at least 1".to_string(),
            ));
        }
        let pool = self.provisionable(name, qualifier)?;
        let entry = self.entry_or_not_found(name)?;
        let mut config = ProvisionedConcurrency {
            requested: n,
            allocated: pool.provisioned_count() as u32,
            status: "IN_PROGRESS".to_string(),
            last_modified: crate::deploy::timestamp_now(),
        };
        entry
            .published()
            .provisioned
            .insert(qualifier.to_string(), config.clone());
        let result = pool.provision(n as usize, &self.launch).await;
        config.allocated = pool.provisioned_count() as u32;
        config.status = if result.is_ok() { "READY" } else { "FAILED" }.to_string();
        entry
            .published()
            .provisioned
            .insert(qualifier.to_string(), config.clone());
        result?;
        Ok(config)
    }

    /// `GetProvisionedConcurrencyConfig`.
    pub(crate) fn provisioned(
        &self,
        name: &str,
        qualifier: &str,
    ) -> Result<ProvisionedConcurrency, DeployError> {
        let entry = self.entry_or_not_found(name)?;
        let config = entry.published().provisioned.get(qualifier).cloned();
        config.ok_or_else(|| {
            DeployError::ProvisionedConcurrencyNotFound(format!("{name}:{qualifier}"))
        })
    }

    /// `ListProvisionedConcurrencyConfigs`: by qualifier.
    pub(crate) fn provisioned_all(
        &self,
        name: &str,
    ) -> Result<Vec<(String, ProvisionedConcurrency)>, DeployError> {
        let entry = self.entry_or_not_found(name)?;
        let published = entry.published();
        Ok(published
            .provisioned
            .iter()
            .map(|(q, c)| (q.clone(), c.clone()))
            .collect())
    }

    /// `DeleteProvisionedConcurrencyConfig`: the provisioned environments go.
    pub(crate) async fn unprovision(&self, name: &str, qualifier: &str) -> Result<(), DeployError> {
        self.provisioned(name, qualifier)?;
        let pool = self.provisionable(name, qualifier)?;
        self.entry_or_not_found(name)?
            .published()
            .provisioned
            .remove(qualifier);
        pool.provision(0, &self.launch).await?;
        Ok(())
    }

    /// `CreateAlias`.
    pub(crate) fn create_alias(
        &self,
        name: &str,
        alias: &str,
        version: &str,
        description: String,
        routing: Option<(String, f64)>,
    ) -> Result<Alias, DeployError> {
        self.check_open()?;
        let entry = self.entry_or_not_found(name)?;
        let arn = format!("{}:{alias}", entry.latest.deployment().config.arn);
        let alias = Alias {
            name: alias.to_string(),
            alias_arn: arn,
            function_version: version.to_string(),
            description,
            routing,
            revision_id: uuid::Uuid::new_v4().to_string(),
        };
        Ok(entry.published().book.create_alias(alias)?)
    }

    /// `GetAlias`.
    pub(crate) fn alias(&self, name: &str, alias: &str) -> Result<Alias, DeployError> {
        Ok(self
            .entry_or_not_found(name)?
            .published()
            .book
            .alias(alias)?
            .clone())
    }

    /// `ListAliases`, optionally only those pointing at `version`.
    pub(crate) fn aliases(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<Vec<Alias>, DeployError> {
        let mut aliases = self.entry_or_not_found(name)?.published().book.aliases();
        if let Some(version) = version {
            aliases.retain(|a| a.function_version == version);
        }
        Ok(aliases)
    }

    /// `UpdateAlias`: `change` edits the alias; `revision`, when given, must match.
    pub(crate) fn update_alias(
        &self,
        name: &str,
        alias: &str,
        revision: Option<&str>,
        change: impl FnOnce(&mut Alias),
    ) -> Result<Alias, DeployError> {
        self.check_open()?;
        let entry = self.entry_or_not_found(name)?;
        let mut published = entry.published();
        let current = published.book.alias(alias)?;
        if let Some(expected) = revision.filter(|r| *r != current.revision_id) {
            return Err(DeployError::RevisionMismatch {
                function: format!("{name}:{alias}"),
                expected: expected.to_string(),
                current: current.revision_id.clone(),
            });
        }
        Ok(published.book.update_alias(alias, change)?)
    }

    /// `DeleteAlias` (and the alias's function URL).
    pub(crate) fn delete_alias(&self, name: &str, alias: &str) -> Result<(), DeployError> {
        self.check_open()?;
        self.entry_or_not_found(name)?
            .published()
            .book
            .delete_alias(alias)?;
        self.urls
            .remove(arn::split_function_name(name).0, Some(alias));
        Ok(())
    }

    /// Whether `name` exists and `qualifier` (none: unqualified) resolves for it: a
    /// version number, an alias or `$LATEST`.
    pub(crate) fn qualifier_exists(&self, name: &str, qualifier: Option<&str>) -> bool {
        self.config_of(name, qualifier).is_ok()
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

    /// Invokes `name` synchronously (RequestResponse).
    pub(crate) async fn invoke(
        &self,
        name: &str,
        request: InvokeRequest,
    ) -> Result<InvokeOutput, InvokeError> {
        let target = self.target(name, &request, MAX_PAYLOAD_BYTES)?;
        target.invoke(&request).await
    }

    /// Invokes `name` asynchronously (`Event`): checks the request, then runs the
    /// invocation in the background. Its result shows in stats and the timeline.
    pub(crate) fn invoke_event(
        self: &Arc<Self>,
        name: &str,
        request: InvokeRequest,
    ) -> Result<(), InvokeError> {
        self.target(name, &request, MAX_ASYNC_PAYLOAD_BYTES)?;
        let core = self.clone();
        let name = name.to_string();
        tokio::spawn(async move {
            let _ = core.invoke(&name, request).await;
        });
        Ok(())
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
