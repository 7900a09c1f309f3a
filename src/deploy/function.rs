//! The `Function` builder: what a test deploys, validated the way `CreateFunction` validates.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{DeployError, Layer, LayerVersion, Runtime};
use crate::package::{CodeZip, DeploymentPackage};

/// Default function timeout: 3 s (Lambda's default).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest allowed timeout: 900 s (Lambda quotas).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(900);
/// Default memory size in MB (Lambda's default).
pub const DEFAULT_MEMORY_MB: u32 = 128;
/// Allowed memory sizes in MB, inclusive (Lambda quotas).
pub const MEMORY_RANGE_MB: std::ops::RangeInclusive<u32> = 128..=10_240;
/// Most layers one function may use (Lambda quotas).
pub const MAX_LAYERS: usize = 5;
/// Longest function description, in characters (CreateFunction).
const MAX_DESCRIPTION_CHARS: usize = 256;
/// Largest total size of environment variable keys and values, in bytes (Lambda quotas).
pub const MAX_ENVIRONMENT_BYTES: usize = 4 * 1024;

/// Variables Lambda sets itself and refuses in `Environment.Variables`
/// (AWS "Defined runtime environment variables", reserved list).
const RESERVED_VARIABLES: &[&str] = &[
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
];

/// How a function's code is packaged (`PackageType`, Lambda API 2015-03-31): a .zip
/// archive run by a managed runtime, or a container image that brings its own runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PackageType {
    /// `Zip`: the code runs on the function's [`Runtime`] with its handler.
    Zip,
    /// `Image`: the code is a container image (`Code.ImageUri`); no runtime or handler.
    Image,
}

impl PackageType {
    /// Lambda's name for it: `Zip` or `Image`.
    pub fn as_str(self) -> &'static str {
        match self {
            PackageType::Zip => "Zip",
            PackageType::Image => "Image",
        }
    }
}

/// Where a function's code comes from.
#[derive(Debug, Clone)]
pub(crate) enum Code {
    Zip(CodeZip),
    Package(DeploymentPackage),
    /// A container image (`PackageType: Image`), by reference (`Code.ImageUri`).
    Image(String),
}

/// Overrides of a container image's settings (`ImageConfig`): each one given replaces
/// the image's own `ENTRYPOINT`, `CMD` or `WORKDIR`; the others stay the image's.
///
/// Not `#[non_exhaustive]`, unlike the crate's other public structs: it is built with a
/// struct literal, and its fields are exactly Lambda's `ImageConfig` shape.
///
/// ```
/// use lambda_testkit::Function;
/// use lambda_testkit::function::ImageConfig;
///
/// let f = Function::image("resize", "my-team/resize:dev").image_config(ImageConfig {
///     command: Some(vec!["app.handler".to_string()]),
///     ..ImageConfig::default()
/// });
/// assert_eq!(f.name(), "resize");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ImageConfig {
    /// `EntryPoint`: replaces the image's `ENTRYPOINT`.
    pub entry_point: Option<Vec<String>>,
    /// `Command`: replaces the image's `CMD` (the arguments of the entrypoint).
    pub command: Option<Vec<String>>,
    /// `WorkingDirectory`: replaces the image's `WORKDIR`.
    pub working_directory: Option<String>,
}

impl ImageConfig {
    /// No override given.
    pub fn is_empty(&self) -> bool {
        self.entry_point.is_none() && self.command.is_none() && self.working_directory.is_none()
    }
}

/// A layer attached to a function: content to publish at deploy, or an already published
/// version.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum LayerSource {
    /// Published as a new layer version when the function is deployed.
    Inline(Layer),
    /// A version already published with [`crate::Emulator::publish_layer`].
    Published(LayerVersion),
}

impl From<Layer> for LayerSource {
    fn from(layer: Layer) -> Self {
        LayerSource::Inline(layer)
    }
}

impl From<LayerVersion> for LayerSource {
    fn from(version: LayerVersion) -> Self {
        LayerSource::Published(version)
    }
}

impl From<&LayerVersion> for LayerSource {
    fn from(version: &LayerVersion) -> Self {
        LayerSource::Published(version.clone())
    }
}

/// A function to deploy: name, runtime, handler, code, environment, timeout, memory, layers.
///
/// Mirrors `CreateFunction` (Lambda API 2015-03-31). Defaults follow Lambda: timeout 3 s,
/// memory 128 MB, no layers, no reserved concurrency. Validation happens at deploy and
/// gives a [`DeployError`].
///
/// ```
/// use std::time::Duration;
/// use lambda_testkit::{Function, Runtime};
///
/// let f = Function::new("greeter", Runtime::Python312)
///     .handler("app.handler")
///     .source("app.py", "def handler(event, ctx):\n    return {'hi': event['name']}\n")
///     .env("GREETING", "hi")
///     .timeout(Duration::from_secs(5))
///     .memory_mb(256);
/// assert_eq!(f.name(), "greeter");
/// ```
#[derive(Debug, Clone)]
pub struct Function {
    pub(crate) name: String,
    /// `None` for an image function: the image brings its runtime.
    pub(crate) runtime: Option<Runtime>,
    pub(crate) handler: Option<String>,
    pub(crate) code: Code,
    pub(crate) environment: BTreeMap<String, String>,
    pub(crate) timeout: Duration,
    pub(crate) memory_mb: u32,
    pub(crate) layers: Vec<LayerSource>,
    pub(crate) reserved_concurrency: Option<u32>,
    pub(crate) max_environments: Option<usize>,
    pub(crate) description: String,
    pub(crate) role: Option<String>,
    pub(crate) image_config: ImageConfig,
    pub(crate) durable: Option<super::DurableConfig>,
}

impl Function {
    /// A function named `name` (1-64 characters of `[A-Za-z0-9_-]`) on `runtime`, with
    /// empty code and Lambda's defaults.
    pub fn new(name: impl Into<String>, runtime: Runtime) -> Self {
        Function {
            name: name.into(),
            runtime: Some(runtime),
            handler: None,
            code: Code::Zip(CodeZip::new()),
            environment: BTreeMap::new(),
            timeout: DEFAULT_TIMEOUT,
            memory_mb: DEFAULT_MEMORY_MB,
            layers: Vec::new(),
            reserved_concurrency: None,
            max_environments: None,
            description: String::new(),
            role: None,
            image_config: ImageConfig::default(),
            durable: None,
        }
    }

    /// A function packaged as a container image (`PackageType: Image`, `Code.ImageUri`):
    /// the image brings its own runtime, so no runtime or handler is needed; its
    /// `ENTRYPOINT` and `CMD` start the runtime (see [`Function::image_config`]). Runs on
    /// the Docker backend only (the image must be in the daemon or pullable); layers are
    /// not allowed, as in Lambda.
    ///
    /// ```
    /// use lambda_testkit::Function;
    ///
    /// let f = Function::image("resize", "my-team/resize:dev").env("MODE", "fast");
    /// assert_eq!(f.name(), "resize");
    /// ```
    pub fn image(name: impl Into<String>, image_uri: impl Into<String>) -> Self {
        let mut function = Function::new(name, Runtime::ProvidedAl2023);
        function.runtime = None;
        function.code = Code::Image(image_uri.into());
        function
    }

    /// Makes the function durable (`DurableConfig`): an invoke starts a durable
    /// execution, the handler gets the durable envelope and checkpoints to this
    /// emulator's REST API (`AWS_ENDPOINT_URL_LAMBDA` is set for it; feature `api`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use lambda_testkit::{DurableConfig, Function, Runtime};
    ///
    /// let f = Function::new("orders", Runtime::Python312)
    ///     .handler("app.handler")
    ///     .durable(DurableConfig::new(Duration::from_secs(3600)));
    /// # let _ = f;
    /// ```
    pub fn durable(mut self, config: super::DurableConfig) -> Self {
        self.durable = Some(config);
        self
    }

    /// Removes [`Function::durable`] (the function is then an ordinary one).
    pub fn not_durable(mut self) -> Self {
        self.durable = None;
        self
    }

    /// Overrides the image's `ENTRYPOINT`, `CMD` or `WORKDIR` (`ImageConfig`) of a
    /// function made with [`Function::image`].
    pub fn image_config(mut self, config: ImageConfig) -> Self {
        self.image_config = config;
        self
    }

    /// Replaces the image of a function packaged as one (`UpdateFunctionCode` with
    /// `ImageUri`).
    pub(crate) fn with_image_uri(mut self, image_uri: String) -> Self {
        self.code = Code::Image(image_uri);
        self
    }

    /// How the function is packaged.
    pub fn package_type(&self) -> PackageType {
        match self.code {
            Code::Image(_) => PackageType::Image,
            Code::Zip(_) | Code::Package(_) => PackageType::Zip,
        }
    }

    /// The function's image reference, when it is packaged as an image.
    pub(crate) fn image_uri(&self) -> Option<&str> {
        match &self.code {
            Code::Image(uri) => Some(uri),
            _ => None,
        }
    }

    /// The function's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The handler: `module.function` for Python (e.g. `app.handler`); for `provided.*`
    /// any string, passed to the bootstrap as `_HANDLER`.
    pub fn handler(mut self, handler: impl Into<String>) -> Self {
        self.handler = Some(handler.into());
        self
    }

    /// Adds a source file to the function's code zip (mode 0644). Replaces code set with
    /// [`Function::package`].
    pub fn source(self, path: impl Into<String>, text: impl Into<String>) -> Self {
        self.map_zip(|zip| zip.source(path, text))
    }

    /// Adds an executable to the code zip (mode 0755), e.g. a `bootstrap` binary built with
    /// `lambda_runtime`. Pass a [`bytes::Bytes`] to share one binary between many
    /// deploys without a copy each.
    pub fn executable(self, path: impl Into<String>, bytes: impl Into<bytes::Bytes>) -> Self {
        self.map_zip(|zip| zip.executable(path, bytes))
    }

    /// Uses `zip` as the function's code, replacing anything added before.
    pub fn code(mut self, zip: CodeZip) -> Self {
        self.code = Code::Zip(zip);
        self
    }

    /// Your own Rust handler as the function's `bootstrap`: the release binary `bin` of
    /// the cargo package at `manifest_dir` (a crate using `lambda_runtime`), built at
    /// deploy, once per test process. Use it with a `provided.*` runtime. Cargo runs in
    /// the package's directory, so its `.cargo/config.toml` (e.g. a shared `target-dir`)
    /// applies as it does to `cargo build` there.
    ///
    /// ```no_run
    /// # async fn demo(emu: &lambda_testkit::Emulator) -> Result<(), lambda_testkit::DeployError> {
    /// use lambda_testkit::{Function, Runtime};
    /// let f = emu
    ///     .deploy(Function::new("orders", Runtime::ProvidedAl2023).cargo_bin(env!("CARGO_MANIFEST_DIR"), "orders"))
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn cargo_bin(
        self,
        manifest_dir: impl Into<std::path::PathBuf>,
        bin: impl Into<String>,
    ) -> Self {
        self.map_zip(|zip| zip.cargo_bin("bootstrap", manifest_dir, bin))
    }

    /// Uses an already built zip (e.g. from disk) as the function's code.
    pub fn package(mut self, package: DeploymentPackage) -> Self {
        self.code = Code::Package(package);
        self
    }

    /// Sets one environment variable (`Environment.Variables`). Keys must match
    /// `[a-zA-Z]([a-zA-Z0-9_])+` and may not be one of Lambda's reserved names.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.environment.insert(key.into(), value.into());
        self
    }

    /// Sets the timeout (1-900 s; default 3 s). At the deadline the invocation ends with
    /// `Sandbox.Timedout` and the execution environment is replaced.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the memory size in MB (128-10240; default 128). Reported in `REPORT` lines and
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`; a container limit on the Docker backend.
    pub fn memory_mb(mut self, memory_mb: u32) -> Self {
        self.memory_mb = memory_mb;
        self
    }

    /// Attaches a layer (at most 5). Layers are extracted in attach order into the
    /// environment's `/opt`, later ones overwriting earlier files, as in Lambda.
    pub fn layer(mut self, layer: impl Into<LayerSource>) -> Self {
        self.layers.push(layer.into());
        self
    }

    /// Reserved concurrency (`PutFunctionConcurrency`): a hard cap on concurrent
    /// invocations; an invoke beyond it fails at once with `TooManyRequestsException`.
    /// `0` throttles every invoke.
    pub fn reserved_concurrency(mut self, limit: u32) -> Self {
        self.reserved_concurrency = Some(limit);
        self
    }

    /// Most execution environments this function may run at once (default: the
    /// emulator's, itself 10 by default). Invokes beyond it wait for a free environment.
    pub fn max_environments(mut self, cap: usize) -> Self {
        self.max_environments = Some(cap);
        self
    }

    /// The function's description (at most 256 characters).
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// The execution role ARN reported as `Role` (informational: nothing is authorized).
    /// Default: `arn:aws:iam::<account>:role/lambda-testkit`.
    pub fn role(mut self, role: impl Into<String>) -> Self {
        self.role = Some(role.into());
        self
    }

    /// Removes every environment variable set so far (for an update that replaces them).
    pub fn clear_env(mut self) -> Self {
        self.environment.clear();
        self
    }

    /// Detaches every layer attached so far (for an update that replaces them).
    pub fn clear_layers(mut self) -> Self {
        self.layers.clear();
        self
    }

    /// Removes the reserved concurrency (`DeleteFunctionConcurrency`).
    pub fn no_reserved_concurrency(mut self) -> Self {
        self.reserved_concurrency = None;
        self
    }

    fn map_zip(mut self, f: impl FnOnce(CodeZip) -> CodeZip) -> Self {
        let zip = match self.code {
            Code::Zip(zip) => zip,
            Code::Package(_) | Code::Image(_) => CodeZip::new(),
        };
        self.code = Code::Zip(f(zip));
        self
    }

    /// Checks everything `CreateFunction` checks before touching code.
    pub(crate) fn validate(&self) -> Result<(), DeployError> {
        validate_name(&self.name)?;
        if let Some(image) = self.image_uri() {
            if image.trim().is_empty() {
                return Err(DeployError::InvalidImageUri(image.to_string()));
            }
            if !self.layers.is_empty() {
                return Err(DeployError::LayersOnImage {
                    function: self.name.clone(),
                });
            }
        } else if !self.image_config.is_empty() {
            return Err(DeployError::ImageConfigOnZip {
                function: self.name.clone(),
            });
        } else if let Some(runtime) = self.runtime.filter(|r| r.requires_handler())
            && self.handler.as_deref().is_none_or(str::is_empty)
        {
            return Err(DeployError::MissingHandler {
                function: self.name.clone(),
                runtime,
            });
        }
        if self.timeout < Duration::from_secs(1) || self.timeout > MAX_TIMEOUT {
            return Err(DeployError::TimeoutOutOfRange(self.timeout));
        }
        if !MEMORY_RANGE_MB.contains(&self.memory_mb) {
            return Err(DeployError::MemoryOutOfRange(self.memory_mb));
        }
        if self.description.chars().count() > MAX_DESCRIPTION_CHARS {
            return Err(DeployError::DescriptionTooLong(
                self.description.chars().count(),
            ));
        }
        if self.layers.len() > MAX_LAYERS {
            return Err(DeployError::TooManyLayers(self.layers.len()));
        }
        if let Some(durable) = &self.durable {
            durable.validate()?;
        }
        validate_environment(&self.environment)
    }
}

/// Function names: 1-64 characters of letters, digits, `-` and `_` (CreateFunction).
pub(crate) fn validate_name(name: &str) -> Result<(), DeployError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(DeployError::InvalidFunctionName(name.to_string()))
    }
}

/// Keys match `[a-zA-Z]([a-zA-Z0-9_])+`, none reserved, total size at most 4 KB.
pub(crate) fn validate_environment(vars: &BTreeMap<String, String>) -> Result<(), DeployError> {
    let mut total = 0;
    for (key, value) in vars {
        let mut bytes = key.bytes();
        let well_formed = key.len() >= 2
            && bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
            && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !well_formed {
            return Err(DeployError::InvalidEnvironmentKey(key.clone()));
        }
        if RESERVED_VARIABLES.contains(&key.as_str()) {
            return Err(DeployError::ReservedEnvironmentKey(key.clone()));
        }
        total += key.len() + value.len();
    }
    if total > MAX_ENVIRONMENT_BYTES {
        return Err(DeployError::EnvironmentTooLarge(total));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn python() -> Function {
        Function::new("f", Runtime::Python312).handler("app.handler")
    }

    #[test]
    fn python_function_without_handler_is_rejected() {
        let err = Function::new("f", Runtime::Python312)
            .validate()
            .unwrap_err();
        assert!(matches!(err, DeployError::MissingHandler { .. }), "{err}");
    }

    #[test]
    fn provided_function_needs_no_handler() {
        Function::new("f", Runtime::ProvidedAl2023)
            .validate()
            .unwrap();
    }

    #[test]
    fn bad_function_names_are_rejected() {
        for name in ["", "has space", "a:b", &"x".repeat(65)] {
            let err = Function::new(name, Runtime::ProvidedAl2023)
                .validate()
                .unwrap_err();
            assert!(
                matches!(err, DeployError::InvalidFunctionName(_)),
                "{name}: {err}"
            );
        }
    }

    #[test]
    fn image_functions_need_no_handler_and_take_no_layers() {
        Function::image("f", "repo/img:tag").validate().unwrap();
        let err = Function::image("f", "repo/img:tag")
            .layer(Layer::new("l"))
            .validate()
            .unwrap_err();
        assert!(matches!(err, DeployError::LayersOnImage { .. }), "{err}");
        let err = python()
            .image_config(ImageConfig {
                command: Some(vec!["x".into()]),
                ..ImageConfig::default()
            })
            .validate()
            .unwrap_err();
        assert!(matches!(err, DeployError::ImageConfigOnZip { .. }), "{err}");
    }

    #[test]
    fn six_layers_are_one_too_many() {
        let mut f = python();
        for i in 0..6 {
            f = f.layer(Layer::new(format!("l{i}")));
        }
        assert!(matches!(f.validate(), Err(DeployError::TooManyLayers(6))));
    }

    #[test]
    fn environment_over_4_kb_is_rejected_with_its_size() {
        let err = python()
            .env("BIG", "x".repeat(4094))
            .validate()
            .unwrap_err();
        assert!(
            matches!(err, DeployError::EnvironmentTooLarge(4097)),
            "{err}"
        );
        python().env("BIG", "x".repeat(4093)).validate().unwrap();
    }

    #[test]
    fn reserved_and_malformed_keys_are_rejected() {
        let err = python().env("AWS_REGION", "x").validate().unwrap_err();
        assert!(
            matches!(err, DeployError::ReservedEnvironmentKey(_)),
            "{err}"
        );
        let err = python().env("1ABC", "x").validate().unwrap_err();
        assert!(
            matches!(err, DeployError::InvalidEnvironmentKey(_)),
            "{err}"
        );
    }

    #[test]
    fn timeout_and_memory_limits_follow_lambda_quotas() {
        python()
            .timeout(Duration::from_secs(900))
            .validate()
            .unwrap();
        assert!(
            python()
                .timeout(Duration::from_secs(901))
                .validate()
                .is_err()
        );
        assert!(
            python()
                .timeout(Duration::from_millis(500))
                .validate()
                .is_err()
        );
        assert!(python().memory_mb(127).validate().is_err());
        assert!(python().memory_mb(10_241).validate().is_err());
        python().memory_mb(10_240).validate().unwrap();
    }
}
