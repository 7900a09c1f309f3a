//! The registry that turns definitions into deployments: layer versions by name, and
//! for a [`Function`] its [`Deployment`] — inline layers published, layer versions
//! resolved, code built, the configuration Lambda reports (ARN, `CodeSha256`,
//! `RevisionId`), everything extracted under the emulator's work directory.
//!
//! Which deployment is current for which function is the core's business (each function's
//! pool holds it); the registry only produces them.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use super::function::Code;
use super::layer::{LayerContent, LayerRegistry};
use super::{
    CodeIdentity, DeployError, Deployment, Function, FunctionConfig, Layer, LayerSource,
    LayerVersion, arn, timestamp_now,
};
use crate::package::{CodeZip, DeploymentPackage};

/// An image function's image as the backend resolved it at deploy.
#[derive(Debug, Clone)]
pub(crate) struct ResolvedImage {
    /// `Code.ImageUri` as given.
    pub(crate) uri: String,
    /// The image id, `sha256:…`.
    pub(crate) id: String,
}

/// Layers and the making of deployments, for one emulator.
pub(crate) struct Registry {
    region: String,
    account_id: String,
    /// Where work directories go.
    parent: PathBuf,
    /// Extracted code lives here; made at the first deploy (a directory costs ~ms on a
    /// busy disk, and many tests never deploy), removed when the registry goes.
    workdir: OnceLock<super::workdir::WorkDir>,
    layers: Mutex<LayerRegistry>,
    deploy_counter: AtomicU64,
}

impl Registry {
    pub(crate) fn new(region: String, account_id: String, parent: PathBuf) -> Registry {
        Registry {
            region,
            account_id,
            parent,
            workdir: OnceLock::new(),
            layers: Mutex::default(),
            deploy_counter: AtomicU64::new(0),
        }
    }

    fn layers(&self) -> MutexGuard<'_, LayerRegistry> {
        self.layers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The region in ARNs.
    #[cfg_attr(not(feature = "sdk"), allow(dead_code))]
    pub(crate) fn region(&self) -> &str {
        &self.region
    }

    /// `arn:aws:lambda:<region>:<account>:function:<name>`.
    pub(crate) fn function_arn(&self, name: &str) -> String {
        arn::function(&self.region, &self.account_id, name)
    }

    /// Publishes a new version of `layer` (`PublishLayerVersion`).
    pub(crate) async fn publish_layer(&self, layer: Layer) -> Result<LayerVersion, DeployError> {
        let package = match &layer.content {
            LayerContent::Zip(_) => {
                let l = layer.clone();
                blocking(move || l.build()).await?
            }
            LayerContent::Package(_) => layer.build()?,
        };
        Ok(self
            .layers()
            .publish(&layer, package, &self.region, &self.account_id))
    }

    pub(crate) fn layer(&self, name: &str, version: u64) -> Option<Arc<LayerVersion>> {
        self.layers().get(name, version)
    }

    pub(crate) fn layer_by_arn(&self, arn: &str) -> Option<Arc<LayerVersion>> {
        self.layers().get_by_arn(arn)
    }

    pub(crate) fn layer_versions(&self, name: &str) -> Vec<LayerVersion> {
        self.layers().versions(name)
    }

    pub(crate) fn delete_layer_version(&self, name: &str, version: u64) -> bool {
        self.layers().delete(name, version)
    }

    /// The latest version of every layer, by name.
    pub(crate) fn latest_layers(&self) -> Vec<LayerVersion> {
        self.layers().latest()
    }

    /// The deployment of `function` (validated): `image` is the backend's resolution of
    /// an image function's image; `current` the function's deployment now, whose layer
    /// versions stay usable even if deleted since (as in Lambda).
    pub(crate) async fn build(
        &self,
        function: Function,
        image: Option<ResolvedImage>,
        current: Option<&Deployment>,
    ) -> Result<Deployment, DeployError> {
        function.validate()?;
        let mut layers = Vec::with_capacity(function.layers.len());
        for source in &function.layers {
            let arn = match source {
                LayerSource::Inline(layer) => {
                    self.publish_layer(layer.clone()).await?.layer_version_arn
                }
                LayerSource::Published(version) => version.layer_version_arn.clone(),
            };
            let layer = self.layers().get_by_arn(&arn).or_else(|| {
                current?
                    .layers
                    .iter()
                    .find(|l| l.layer_version_arn == arn)
                    .cloned()
            });
            layers.push(layer.ok_or(DeployError::LayerNotFound(arn))?);
        }
        let code = match function.code.clone() {
            Code::Zip(zip) => blocking(move || zip.build().map_err(DeployError::from)).await?,
            Code::Package(package) => package,
            // Nothing to extract: the image is the code.
            Code::Image(_) => empty_package().await?,
        };
        // Equal bytes redeployed: the deployed package, so the deploy id (which names the
        // package instance, not a digest of it) stays the same and warm environments stay.
        let code = match current {
            Some(current) if current.code == code => current.code.clone(),
            _ => code,
        };
        let config = FunctionConfig {
            package_type: function.package_type(),
            arn: self.function_arn(&function.name),
            version: super::LATEST.to_string(),
            name: function.name,
            runtime: function.runtime,
            handler: function.handler.unwrap_or_default(),
            environment: function.environment,
            timeout: function.timeout,
            memory_mb: function.memory_mb,
            layers: layers.iter().map(|l| LayerVersion::clone(l)).collect(),
            code: match &image {
                Some(image) => CodeIdentity::Image(image.id.clone()),
                None => CodeIdentity::Zip(code.clone()),
            },
            reserved_concurrency: function.reserved_concurrency,
            max_environments: function.max_environments,
            last_modified: timestamp_now(),
            revision_id: uuid::Uuid::new_v4().to_string(),
            description: function.description,
            role: function
                .role
                .unwrap_or_else(|| format!("arn:aws:iam::{}:role/lambda-testkit", self.account_id)),
            resolved_image_uri: image
                .as_ref()
                .map(|i| format!("{}@{}", repository(&i.uri), i.id)),
            image_uri: image.map(|i| i.uri),
            image_config: function.image_config,
            durable: function.durable,
            // Filled in by the core from the backend's runtime check.
            runtime_version: None,
        };
        self.extract(config, code, layers).await
    }

    /// Version `version` of `latest` (`PublishVersion`): the same code, layers and
    /// settings, extracted anew (a version outlives redeploys of `$LATEST`), with its own
    /// `Version`, qualified `FunctionArn` and `description`.
    pub(crate) async fn snapshot(
        &self,
        latest: &Deployment,
        version: u32,
        description: Option<String>,
    ) -> Result<Deployment, DeployError> {
        let mut config = latest.config.clone();
        config.version = version.to_string();
        config.arn = format!("{}:{version}", latest.config.arn);
        config.revision_id = uuid::Uuid::new_v4().to_string();
        config.last_modified = timestamp_now();
        if let Some(description) = description {
            config.description = description;
        }
        let deploy_id = latest.deploy_id.clone();
        let mut deployment = self
            .extract(config, latest.code.clone(), latest.layers.clone())
            .await?;
        // What runs is the same as `$LATEST` at publish time.
        deployment.deploy_id = deploy_id;
        Ok(deployment)
    }

    /// Extracts a deployment under the work directory.
    async fn extract(
        &self,
        config: FunctionConfig,
        code: DeploymentPackage,
        layers: Vec<Arc<LayerVersion>>,
    ) -> Result<Deployment, DeployError> {
        let n = self.deploy_counter.fetch_add(1, Ordering::Relaxed);
        let root = self.workdir()?.join(format!("{}-{n}", config.name));
        blocking(move || Deployment::extract(config, code, &layers, root)).await
    }

    fn workdir(&self) -> Result<PathBuf, DeployError> {
        if let Some(dir) = self.workdir.get() {
            return Ok(dir.path().to_path_buf());
        }
        let dir = super::workdir::WorkDir::create(&self.parent)?;
        Ok(self.workdir.get_or_init(|| dir).path().to_path_buf())
    }
}

/// The (empty) code of an image function, built once.
async fn empty_package() -> Result<DeploymentPackage, DeployError> {
    static EMPTY: OnceLock<DeploymentPackage> = OnceLock::new();
    if let Some(package) = EMPTY.get() {
        return Ok(package.clone());
    }
    let package = blocking(|| CodeZip::new().build().map_err(DeployError::from)).await?;
    Ok(EMPTY.get_or_init(|| package).clone())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_drops_the_tag_but_keeps_a_registry_port() {
        assert_eq!(repository("my/img:dev"), "my/img");
        assert_eq!(repository("host:5000/img:1"), "host:5000/img");
        assert_eq!(repository("host:5000/img"), "host:5000/img");
        assert_eq!(repository("img@sha256:abc"), "img");
    }
}
