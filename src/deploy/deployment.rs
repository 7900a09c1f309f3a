//! A deployment: one function's configuration with its code and layers extracted on disk.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use sha2::{Digest, Sha256};

use super::{ImageConfig, LayerVersion, PackageType, Runtime};
use crate::package::{DeploymentPackage, ExtractLimits, UnzippedBudget, extract};

/// A function's configuration as deployed: what `GetFunctionConfiguration` reports.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FunctionConfig {
    /// The function's name.
    pub name: String,
    /// `arn:aws:lambda:<region>:<account>:function:<name>`; a published version's is
    /// qualified: `…:function:<name>:<version>`.
    pub arn: String,
    /// `Version`: `$LATEST`, or the number of a published version.
    pub version: String,
    /// `PackageType`: `Zip`, or `Image` for a function packaged as a container image.
    pub package_type: PackageType,
    /// `Runtime`; `None` for an image function, which brings its own (as Lambda reports
    /// it: no `Runtime` for `PackageType: Image`).
    pub runtime: Option<Runtime>,
    /// The handler string (empty when none was given to a `provided.*` function, and for
    /// image functions).
    pub handler: String,
    /// `Environment.Variables`.
    pub environment: BTreeMap<String, String>,
    /// Timeout.
    pub timeout: Duration,
    /// Memory size in MB.
    pub memory_mb: u32,
    /// Attached layer versions, in attach order.
    pub layers: Vec<LayerVersion>,
    /// What `CodeSha256` and `CodeSize` describe (read them with
    /// [`code_sha256`](Self::code_sha256) and [`code_size`](Self::code_size)).
    pub(crate) code: CodeIdentity,
    /// Reserved concurrency, if set.
    pub reserved_concurrency: Option<u32>,
    /// Cap on execution environments for this function, if set (else the emulator's).
    pub max_environments: Option<usize>,
    /// `LastModified`, e.g. `2020-04-10T19:06:32.563+0000`.
    pub last_modified: String,
    /// `RevisionId`: a fresh UUID on every change.
    pub revision_id: String,
    /// `Description`.
    pub description: String,
    /// `Role`: the execution role ARN (informational; nothing is authorized).
    pub role: String,
    /// `Code.ImageUri`: the image of a function packaged as a container image
    /// (`PackageType: Image`); `None` for a .zip function.
    pub image_uri: Option<String>,
    /// `Code.ResolvedImageUri`: the image as resolved at deploy, `<repository>@<image id>`.
    pub resolved_image_uri: Option<String>,
    /// `ImageConfig` overrides of an image function.
    pub image_config: ImageConfig,
    /// `DurableConfig`: set for a durable function.
    pub durable: Option<super::DurableConfig>,
    /// The language runtime that runs the function, as the backend found it at deploy: on
    /// the process backend, the Python interpreter of a `python3.*` function. `None` where
    /// the backend does not choose one (Docker: the image decides; `provided.*`).
    pub runtime_version: Option<RuntimeVersion>,
}

/// The language runtime that runs a function's environments ([`FunctionConfig::runtime_version`]).
///
/// A `python3.X` function runs a Python 3.X interpreter; only with the opt-in
/// nearest-version fallback ([`crate::EmulatorBuilder::python_fallback`],
/// `LAMBDA_TESTKIT_PYTHON_FALLBACK=nearest`) can it run another version, and then
/// [`RuntimeVersion::fallback`] is `true`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RuntimeVersion {
    /// The language, e.g. `Python`.
    pub language: String,
    /// The version that runs, e.g. `3.12.1`.
    pub version: String,
    /// The program started for each environment: an absolute path, e.g.
    /// `/home/me/venv/bin/python3.12`.
    pub program: PathBuf,
    /// Where it was found, e.g. `LAMBDA_TESTKIT_PYTHON_3_12`, `python3.12 on PATH`, `pyenv`.
    pub found_by: String,
    /// `true` when this is not the version the runtime names: the nearest one, run because
    /// the fallback was allowed.
    pub fallback: bool,
}

impl std::fmt::Display for RuntimeVersion {
    /// `Python 3.12.1 (/home/me/venv/bin/python3.12, from LAMBDA_TESTKIT_PYTHON_3_12)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} ({}, from {})",
            self.language,
            self.version,
            self.program.display(),
            self.found_by
        )
    }
}

/// The code a [`FunctionConfig`] describes.
#[derive(Debug, Clone)]
pub(crate) enum CodeIdentity {
    /// A .zip function's package.
    Zip(DeploymentPackage),
    /// An image function's image id (`sha256:…`).
    Image(String),
}

impl FunctionConfig {
    /// `CodeSha256`: the standard base64 SHA-256 of the code zip (computed on the first
    /// call), or for an image function the hex digest of its image, as Lambda reports.
    pub fn code_sha256(&self) -> &str {
        match &self.code {
            CodeIdentity::Zip(package) => package.code_sha256(),
            CodeIdentity::Image(id) => id.trim_start_matches("sha256:"),
        }
    }

    /// `CodeSize`: the size of the code zip in bytes; 0 for an image function, as Lambda
    /// reports.
    pub fn code_size(&self) -> u64 {
        match &self.code {
            CodeIdentity::Zip(package) => package.code_size(),
            CodeIdentity::Image(_) => 0,
        }
    }

    /// The identity of what runs, cheap to compute: the code package's instance (a
    /// redeploy of equal bytes reuses the deployed package, see `Registry::build`), each
    /// layer version's ARN (a version's content never changes) and the settings a runtime
    /// sees. Environments of another deploy id are stale and are retired once free.
    ///
    /// The code is not hashed here: SHA-256 of a 2.4 MB bootstrap costs ~72 ms in a
    /// dependent crate's debug build, more than the rest of a deploy (`cargo bench --bench
    /// deploy`).
    pub(crate) fn deploy_id(&self) -> String {
        let code = match &self.code {
            CodeIdentity::Zip(package) => format!("zip#{}", package.instance()),
            CodeIdentity::Image(id) => id.clone(),
        };
        self.identity(&code)
    }

    /// The identity of the content, for `PublishVersion`'s "nothing changed since the last
    /// version" (AWS "Lambda function versions"): like the deploy id, but over the code's
    /// `CodeSha256`, so equal code deployed at different times compares equal.
    pub(crate) fn content_id(&self) -> String {
        self.identity(self.code_sha256())
    }

    /// SHA-256 over `code`, the layer version ARNs and the settings a runtime sees,
    /// URL-safe base64 without padding.
    fn identity(&self, code: &str) -> String {
        let mut h = Sha256::new();
        h.update(code.as_bytes());
        for layer in &self.layers {
            h.update(b"\0layer\0");
            h.update(layer.layer_version_arn.as_bytes());
        }
        h.update(format!(
            "\0{}\0{}\0{}\0{}\0",
            self.runtime.map_or("", Runtime::as_str),
            self.handler,
            self.timeout.as_millis(),
            self.memory_mb
        ));
        for (k, v) in &self.environment {
            h.update(format!("{k}={v}\0"));
        }
        // Durable functions get AWS_ENDPOINT_URL_LAMBDA: a different environment.
        if self.durable.is_some() {
            h.update(b"\0durable\0");
        }
        if let Some(image) = &self.image_uri {
            // The resolved id too: a tag rebuilt and redeployed is new code.
            h.update(format!(
                "\0image\0{image}\0{}\0{:?}\0",
                self.resolved_image_uri.as_deref().unwrap_or(""),
                self.image_config
            ));
        }
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(h.finalize())
    }
}

/// A function's configuration plus its extracted code (`task_dir`, standing in for
/// `/var/task`) and layers (`opt_dir`, standing in for `/opt`). Shared read-only by every
/// execution environment of this deploy; the directories are removed when the last
/// reference goes.
#[derive(Debug)]
pub(crate) struct Deployment {
    pub(crate) config: FunctionConfig,
    pub(crate) deploy_id: String,
    pub(crate) code: DeploymentPackage,
    /// The layer versions extracted into `opt_dir`, kept so an update can reuse them even
    /// after a version was deleted (functions keep deleted layer versions, as in Lambda).
    pub(crate) layers: Vec<Arc<LayerVersion>>,
    pub(crate) root: PathBuf,
    pub(crate) task_dir: PathBuf,
    pub(crate) opt_dir: PathBuf,
}

impl Deployment {
    /// Extracts `code` and `layers` (in attach order, sharing one 250 MB unzipped budget)
    /// under `root`. On error nothing is left under `root`. Blocking: call from a
    /// blocking thread.
    pub(crate) fn extract(
        config: FunctionConfig,
        code: DeploymentPackage,
        layers: &[Arc<LayerVersion>],
        root: PathBuf,
    ) -> Result<Deployment, super::DeployError> {
        let task_dir = root.join("task");
        let opt_dir = root.join("opt");
        let result = (|| {
            std::fs::create_dir_all(&task_dir)?;
            std::fs::create_dir_all(&opt_dir)?;
            let mut budget = UnzippedBudget::new(ExtractLimits::default());
            extract(&code, &task_dir, &mut budget)?;
            for layer in layers {
                extract(&layer.package, &opt_dir, &mut budget)?;
            }
            Ok::<_, super::DeployError>(())
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_dir_all(&root);
            return Err(e);
        }
        Ok(Deployment {
            deploy_id: config.deploy_id(),
            config,
            code,
            layers: layers.to_vec(),
            root,
            task_dir,
            opt_dir,
        })
    }

    /// The function as deployed, as a builder to change and redeploy: same code (no
    /// rebuild), same layer versions, same settings.
    pub(crate) fn as_function(&self) -> super::Function {
        let c = &self.config;
        let function = match &c.image_uri {
            Some(uri) => super::Function::image(c.name.clone(), uri.clone())
                .image_config(c.image_config.clone()),
            None => super::Function::new(c.name.clone(), c.runtime.expect("a zip function"))
                .package(self.code.clone()),
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
        function.durable = c.durable;
        function.layers = c.layers.iter().map(super::LayerSource::from).collect();
        function.reserved_concurrency = c.reserved_concurrency;
        function.max_environments = c.max_environments;
        function
    }

    pub(crate) fn task_dir(&self) -> &Path {
        &self.task_dir
    }

    pub(crate) fn opt_dir(&self) -> &Path {
        &self.opt_dir
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
