//! Layers: content extracted into every execution environment's `/opt`, versioned on publish.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{DeployError, Runtime, arn};
use crate::package::{CodeZip, DeploymentPackage};

/// Layer content to publish: a name and a zip, built the same way as function code.
///
/// As in Lambda, the zip's paths are relative to `/opt`: a Python package goes under
/// `python/` (or `python/lib/python3.x/site-packages/`), executables under `bin/`, shared
/// libraries under `lib/`, and a custom runtime's `bootstrap` at the root.
/// Source: AWS "Packaging your layer content".
///
/// ```
/// use lambda_testkit::Layer;
///
/// let layer = Layer::new("greeting")
///     .source("python/greeting.py", "def hello(name):\n    return f'hello, {name}'\n");
/// assert_eq!(layer.name(), "greeting");
/// ```
#[derive(Debug, Clone)]
pub struct Layer {
    pub(crate) name: String,
    pub(crate) content: LayerContent,
    pub(crate) description: String,
    pub(crate) compatible_runtimes: Vec<Runtime>,
}

#[derive(Debug, Clone)]
pub(crate) enum LayerContent {
    Zip(CodeZip),
    Package(DeploymentPackage),
}

impl Layer {
    /// An empty layer named `name` (1-64 characters of `[A-Za-z0-9_-]`).
    pub fn new(name: impl Into<String>) -> Self {
        Layer {
            name: name.into(),
            content: LayerContent::Zip(CodeZip::new()),
            description: String::new(),
            compatible_runtimes: Vec::new(),
        }
    }

    /// The layer's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Adds a file to the layer zip, relative to `/opt` (e.g. `python/greeting.py`).
    pub fn source(self, path: impl Into<String>, text: impl Into<String>) -> Self {
        self.map_zip(|zip| zip.source(path, text))
    }

    /// Adds an executable relative to `/opt` (e.g. `bootstrap` or `bin/tool`).
    pub fn executable(self, path: impl Into<String>, bytes: impl Into<bytes::Bytes>) -> Self {
        self.map_zip(|zip| zip.executable(path, bytes))
    }

    /// Uses `zip` as the layer's content, replacing anything added before.
    pub fn code(mut self, zip: CodeZip) -> Self {
        self.content = LayerContent::Zip(zip);
        self
    }

    /// Uses an already built zip as the layer's content.
    pub fn package(mut self, package: DeploymentPackage) -> Self {
        self.content = LayerContent::Package(package);
        self
    }

    /// The layer version's description.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Records a compatible runtime (informational, as in Lambda).
    pub fn compatible_runtime(mut self, runtime: Runtime) -> Self {
        self.compatible_runtimes.push(runtime);
        self
    }

    fn map_zip(mut self, f: impl FnOnce(CodeZip) -> CodeZip) -> Self {
        let zip = match self.content {
            LayerContent::Zip(zip) => zip,
            LayerContent::Package(_) => CodeZip::new(),
        };
        self.content = LayerContent::Zip(f(zip));
        self
    }

    pub(crate) fn build(&self) -> Result<DeploymentPackage, DeployError> {
        super::function::validate_name(&self.name)
            .map_err(|_| DeployError::InvalidLayerName(self.name.clone()))?;
        Ok(match &self.content {
            LayerContent::Zip(zip) => zip.build()?,
            LayerContent::Package(package) => package.clone(),
        })
    }
}

/// One published version of a layer, as `PublishLayerVersion` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LayerVersion {
    /// The layer's name.
    pub layer_name: String,
    /// Version number, starting at 1 and increasing per name.
    pub version: u64,
    /// `arn:aws:lambda:<region>:<account>:layer:<name>`.
    pub layer_arn: String,
    /// `arn:aws:lambda:<region>:<account>:layer:<name>:<version>`.
    pub layer_version_arn: String,
    /// The layer zip (read `Content.CodeSha256` and `Content.CodeSize` with
    /// [`code_sha256`](Self::code_sha256) and [`code_size`](Self::code_size)).
    pub(crate) package: DeploymentPackage,
    /// The description given at publish.
    pub description: String,
    /// The runtimes given at publish.
    pub compatible_runtimes: Vec<Runtime>,
    /// `CreatedDate`, formatted like Lambda: `2018-11-14T23:03:52.894+0000`.
    pub created_date: String,
}

impl LayerVersion {
    /// `Content.CodeSha256`: the standard base64 SHA-256 of the layer zip, computed on the
    /// first call.
    pub fn code_sha256(&self) -> &str {
        self.package.code_sha256()
    }

    /// `Content.CodeSize`: the size of the layer zip in bytes.
    pub fn code_size(&self) -> u64 {
        self.package.code_size()
    }
}

/// Every layer version published in one emulator, by name then version.
#[derive(Debug, Default)]
pub(crate) struct LayerRegistry {
    layers: BTreeMap<String, BTreeMap<u64, Arc<LayerVersion>>>,
    /// Last version number used per name; numbers are never reused, even after delete.
    last_version: BTreeMap<String, u64>,
}

impl LayerRegistry {
    pub(crate) fn publish(
        &mut self,
        layer: &Layer,
        package: DeploymentPackage,
        region: &str,
        account: &str,
    ) -> LayerVersion {
        let number = self.last_version.entry(layer.name.clone()).or_default();
        *number += 1;
        let layer_arn = arn::layer(region, account, &layer.name);
        let version = LayerVersion {
            layer_name: layer.name.clone(),
            version: *number,
            layer_version_arn: format!("{layer_arn}:{number}"),
            layer_arn,
            package,
            description: layer.description.clone(),
            compatible_runtimes: layer.compatible_runtimes.clone(),
            created_date: super::timestamp_now(),
        };
        let published = Arc::new(version.clone());
        self.layers
            .entry(layer.name.clone())
            .or_default()
            .insert(*number, published);
        version
    }

    pub(crate) fn get(&self, name: &str, version: u64) -> Option<Arc<LayerVersion>> {
        self.layers.get(name)?.get(&version).cloned()
    }

    /// Resolves `arn:aws:lambda:<region>:<account>:layer:<name>:<version>`.
    pub(crate) fn get_by_arn(&self, layer_version_arn: &str) -> Option<Arc<LayerVersion>> {
        let (name, version) = arn::parse_layer_version(layer_version_arn)?;
        self.get(name, version)
    }

    /// Versions of `name`, newest first (as `ListLayerVersions` orders them).
    pub(crate) fn versions(&self, name: &str) -> Vec<LayerVersion> {
        self.layers
            .get(name)
            .map(|v| v.values().rev().map(|p| LayerVersion::clone(p)).collect())
            .unwrap_or_default()
    }

    /// The latest version of every layer that has one, by name (`ListLayers`).
    pub(crate) fn latest(&self) -> Vec<LayerVersion> {
        self.layers
            .values()
            .filter_map(|v| v.values().next_back())
            .map(|p| LayerVersion::clone(p))
            .collect()
    }

    /// Deletes one version; functions already using it keep their extracted copy.
    pub(crate) fn delete(&mut self, name: &str, version: u64) -> bool {
        self.layers
            .get_mut(name)
            .is_some_and(|v| v.remove(&version).is_some())
    }
}
