//! Configuration read from the process environment, in one place (as testcontainers'
//! `core/env/config.rs`). Code settings on [`crate::EmulatorBuilder`] win over these.
//!
//! | variable | what it sets |
//! |---|---|
//! | `LAMBDA_TESTKIT_BACKEND` | the default backend: `process` (default) or `docker` |
//! | `LAMBDA_TESTKIT_PYTHON_3_<MINOR>` | the interpreter for `python3.<MINOR>` on the process backend, e.g. `LAMBDA_TESTKIT_PYTHON_3_12` |
//! | `LAMBDA_TESTKIT_PYTHON` | an interpreter for whichever `python3.X` its version is (process backend) |
//! | `LAMBDA_TESTKIT_PYTHON_FALLBACK` | `nearest`: run `python3.X` on the nearest Python version when no 3.X is found (default `exact`: deploy fails) |
//! | `LAMBDA_TESTKIT_PYTHON_FORK_SERVER` | `off` (or `0`, `false`): start every Python environment as a fresh interpreter, not as a fork of the interpreter's fork server (default `on`) |
//! | `LAMBDA_TESTKIT_NODE_<MAJOR>` | the `node` for `nodejs<MAJOR>.x` on the process backend |
//! | `LAMBDA_TESTKIT_NODE_RIC_<MAJOR>` | the `aws-lambda-ric` directory for that Node |
//! | `LAMBDA_TESTKIT_IMAGE_<RUNTIME>` | a runtime's image on the Docker backend |
//! | `LAMBDA_TESTKIT_IMAGES` | `standin`: every runtime's default image is this project's stand-in (`lambda-testkit/...`), not AWS's |
//! | `LAMBDA_TESTKIT_NODE_CACHE` | where `lambda-testkit doctor --fix` (and `scripts/setup-node`) keep Node.js and its `aws-lambda-ric` (default `<cache>/node`) |
//!
//! The cache, `$XDG_CACHE_HOME/lambda-testkit` (default `~/.cache/lambda-testkit`), holds
//! what `lambda-testkit doctor --fix` provisions: a venv with awslambdaric per Python
//! version (`python/venv-3.X`), Node.js and its client (`node/`), the image recipes
//! (`kit-<hash>/`) and the images' root filesystems (`images/`). The process backend looks
//! there when no variable names a runtime's interpreter or node.
//!
//! The Docker client's own variables (`DOCKER_HOST`, ...) are read by the Docker backend
//! as the Docker CLI reads them. Where Python interpreters are looked for also follows the
//! tools that install them: `PYENV_ROOT` (default `~/.pyenv`) and `UV_PYTHON_INSTALL_DIR`
//! (default `$XDG_DATA_HOME/uv/python`, else `~/.local/share/uv/python`), read here too.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::deploy::Runtime;

/// Environment variable choosing the default backend of [`crate::EmulatorBuilder`]:
/// `process` (the default) or `docker`.
pub const BACKEND_ENV: &str = "LAMBDA_TESTKIT_BACKEND";

/// Environment variable naming a Python interpreter for `python3.*` functions on the
/// process backend: it runs the `python3.X` runtime whose version it is (see
/// [`crate::EmulatorBuilder::python`] for the whole search).
pub const PYTHON_ENV: &str = "LAMBDA_TESTKIT_PYTHON";

/// Prefix of the variables naming one Python runtime's interpreter on the process backend:
/// `LAMBDA_TESTKIT_PYTHON_3_12` for `python3.12` (see [`python_version_env_var`]).
pub const PYTHON_VERSION_ENV_PREFIX: &str = "LAMBDA_TESTKIT_PYTHON_3_";

/// Environment variable allowing a `python3.X` function to run on the nearest Python
/// version when no 3.X interpreter is found: `nearest`; `exact` (the default) fails the
/// deploy instead. [`crate::EmulatorBuilder::python_fallback`] wins over it.
pub const PYTHON_FALLBACK_ENV: &str = "LAMBDA_TESTKIT_PYTHON_FALLBACK";

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

/// The interpreter `LAMBDA_TESTKIT_PYTHON` names, if set and not empty.
pub(crate) fn python() -> Option<PathBuf> {
    var(PYTHON_ENV).map(PathBuf::from)
}

/// The variable naming `python3.<minor>`'s interpreter, e.g. `LAMBDA_TESTKIT_PYTHON_3_12`.
///
/// ```
/// assert_eq!(lambda_testkit::process::python_version_env_var(12), "LAMBDA_TESTKIT_PYTHON_3_12");
/// ```
pub fn python_version_env_var(minor: u32) -> String {
    format!("{PYTHON_VERSION_ENV_PREFIX}{minor}")
}

/// The interpreter `LAMBDA_TESTKIT_PYTHON_3_<minor>` names, if set and not empty.
pub(crate) fn python_version(minor: u32) -> Option<PathBuf> {
    var(&python_version_env_var(minor)).map(PathBuf::from)
}

/// Whether `LAMBDA_TESTKIT_PYTHON_FALLBACK` allows the nearest version: `Some(true)` for
/// `nearest`, `Some(false)` for `exact` (or empty), `None` when unset. Another value is
/// refused with what the variable takes.
pub(crate) fn python_fallback() -> Result<Option<bool>, String> {
    let Ok(value) = std::env::var(PYTHON_FALLBACK_ENV) else {
        return Ok(None);
    };
    match value.trim().to_ascii_lowercase().as_str() {
        "nearest" => Ok(Some(true)),
        "exact" | "" => Ok(Some(false)),
        other => Err(format!(
            "{PYTHON_FALLBACK_ENV}={other} is not understood: use `nearest` (run python3.X on the nearest Python version when no 3.X is found) or `exact` (the default)"
        )),
    }
}

/// Environment variable turning the Python fork server of the process backend off: `off`,
/// `0`, `false` or `no` start every Python environment as a fresh interpreter (anything
/// else, or unset: on). [`crate::EmulatorBuilder::python_fork_server`] wins over it.
pub const PYTHON_FORK_SERVER_ENV: &str = "LAMBDA_TESTKIT_PYTHON_FORK_SERVER";

/// Whether `LAMBDA_TESTKIT_PYTHON_FORK_SERVER` leaves the fork server on (the default).
pub(crate) fn python_fork_server() -> bool {
    std::env::var(PYTHON_FORK_SERVER_ENV).map_or(true, |v| {
        !matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "off" | "0" | "false" | "no"
        )
    })
}

/// pyenv's root: `PYENV_ROOT`, else `~/.pyenv`.
pub(crate) fn pyenv_root() -> Option<PathBuf> {
    var("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| home().map(|h| h.join(".pyenv")))
}

/// Where uv installs Python interpreters: `UV_PYTHON_INSTALL_DIR`, else
/// `$XDG_DATA_HOME/uv/python`, else `~/.local/share/uv/python`.
pub(crate) fn uv_python_dir() -> Option<PathBuf> {
    var("UV_PYTHON_INSTALL_DIR")
        .map(PathBuf::from)
        .or_else(|| var("XDG_DATA_HOME").map(|d| PathBuf::from(d).join("uv/python")))
        .or_else(|| home().map(|h| h.join(".local/share/uv/python")))
}

/// lambda-testkit's cache: `$XDG_CACHE_HOME/lambda-testkit`, else
/// `~/.cache/lambda-testkit` (where `scripts/setup-node` and `images/build` cache too).
pub(crate) fn cache_dir() -> Option<PathBuf> {
    var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| home().map(|h| h.join(".cache")))
        .map(|c| c.join("lambda-testkit"))
}

/// The venv `lambda-testkit doctor --fix` makes for Python 3.`minor`:
/// `<cache>/python/venv-3.<minor>`.
pub(crate) fn python_venv(minor: u32) -> Option<PathBuf> {
    cache_dir().map(|c| c.join(format!("python/venv-3.{minor}")))
}

/// Environment variable naming the Node.js cache (`scripts/setup-node`'s
/// `LAMBDA_TESTKIT_NODE_CACHE`, default `<cache>/node`).
pub(crate) const NODE_CACHE_ENV: &str = "LAMBDA_TESTKIT_NODE_CACHE";

/// Where Node.js and its `aws-lambda-ric` builds are cached.
pub(crate) fn node_cache() -> Option<PathBuf> {
    var(NODE_CACHE_ENV)
        .map(PathBuf::from)
        .or_else(|| cache_dir().map(|c| c.join("node")))
}

fn home() -> Option<PathBuf> {
    var("HOME").map(PathBuf::from)
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
