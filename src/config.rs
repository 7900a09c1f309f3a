//! Configuration read from the process environment, in one place (as testcontainers'
//! `core/env/config.rs`). Code settings on [`crate::EmulatorBuilder`] win over these.
//!
//! | variable | what it sets |
//! |---|---|
//! | `LAMBDA_TESTKIT_BACKEND` | the default backend: `process` (default) or `docker` |
//! | `LAMBDA_TESTKIT_PYTHON` | the interpreter for `python3.*` on the process backend |
//! | `LAMBDA_TESTKIT_NODE_<MAJOR>` | the `node` for `nodejs<MAJOR>.x` on the process backend |
//! | `LAMBDA_TESTKIT_NODE_RIC_<MAJOR>` | the `aws-lambda-ric` directory for that Node |
//! | `LAMBDA_TESTKIT_IMAGE_<RUNTIME>` | a runtime's image on the Docker backend |
//! | `LAMBDA_TESTKIT_IMAGES` | `standin`: every runtime's default image is this project's stand-in (`lambda-testkit/...`), not AWS's |
//!
//! The Docker client's own variables (`DOCKER_HOST`, ...) are read by the Docker backend
//! as the Docker CLI reads them.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::deploy::Runtime;

/// Environment variable choosing the default backend of [`crate::EmulatorBuilder`]:
/// `process` (the default) or `docker`.
pub const BACKEND_ENV: &str = "LAMBDA_TESTKIT_BACKEND";

/// Environment variable naming the Python interpreter for `python3.*` functions on the
/// process backend (default: `python3` on `PATH`).
pub const PYTHON_ENV: &str = "LAMBDA_TESTKIT_PYTHON";

/// Prefix of the variables overriding a runtime's image: the runtime identifier in upper
/// case with `.` as `_`, e.g. `LAMBDA_TESTKIT_IMAGE_PYTHON3_12`,
/// `LAMBDA_TESTKIT_IMAGE_PROVIDED_AL2023`. See [`image_env_var`].
pub const IMAGE_ENV_PREFIX: &str = "LAMBDA_TESTKIT_IMAGE_";

/// The backend `LAMBDA_TESTKIT_BACKEND` names, trimmed and in lower case (`process`,
/// `docker`), if set.
pub(crate) fn backend() -> Option<String> {
    std::env::var(BACKEND_ENV)
        .ok()
        .map(|v| v.trim().to_ascii_lowercase())
}

/// The interpreter from `LAMBDA_TESTKIT_PYTHON`, else `python3`.
pub(crate) fn python() -> PathBuf {
    std::env::var_os(PYTHON_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("python3"))
}

/// The variable that overrides `runtime`'s image, e.g. `LAMBDA_TESTKIT_IMAGE_PYTHON3_12`.
///
/// ```
/// use lambda_testkit::{Runtime, docker::image_env_var};
/// assert_eq!(image_env_var(Runtime::ProvidedAl2023), "LAMBDA_TESTKIT_IMAGE_PROVIDED_AL2023");
/// ```
pub fn image_env_var(runtime: Runtime) -> String {
    format!(
        "{IMAGE_ENV_PREFIX}{}",
        runtime.as_str().to_ascii_uppercase().replace('.', "_")
    )
}

/// Environment variable switching every runtime's default image to the stand-ins:
/// `LAMBDA_TESTKIT_IMAGES=standin` (`aws`, the default, keeps AWS's public images).
pub const IMAGES_ENV: &str = "LAMBDA_TESTKIT_IMAGES";

/// Whether `LAMBDA_TESTKIT_IMAGES` asks for the stand-in images.
#[cfg_attr(not(feature = "docker"), allow(dead_code))]
pub(crate) fn standin_images() -> bool {
    std::env::var(IMAGES_ENV).is_ok_and(|v| v.trim().eq_ignore_ascii_case("standin"))
}

/// The image `LAMBDA_TESTKIT_IMAGE_<RUNTIME>` names for `runtime`, if set and not blank.
#[cfg_attr(not(feature = "docker"), allow(dead_code))]
pub(crate) fn image(runtime: Runtime) -> Option<String> {
    std::env::var(image_env_var(runtime))
        .ok()
        .filter(|v| !v.trim().is_empty())
}

/// `LAMBDA_TESTKIT_NODE_<major>`: the `node` binary for `nodejs<major>.x`.
pub(crate) fn node_var(major: u32) -> String {
    format!("LAMBDA_TESTKIT_NODE_{major}")
}

/// `LAMBDA_TESTKIT_NODE_RIC_<major>`: the `aws-lambda-ric` package directory for it.
pub(crate) fn node_ric_var(major: u32) -> String {
    format!("LAMBDA_TESTKIT_NODE_RIC_{major}")
}

/// The variable `name`, if set and not empty.
pub(crate) fn var(name: &str) -> Option<OsString> {
    std::env::var_os(name).filter(|v| !v.is_empty())
}
