//! Node.js runtimes: the node and aws-lambda-ric the process backend would run for each
//! `nodejs<major>.x` (its own check), and for `--fix` the embedded `scripts/setup-node`,
//! which fetches the pinned Node.js and builds the client into the cache where that check
//! looks.

use std::path::Path;
use std::process::Command;

use super::{Action, Check, Fix, kit, on_path, run_logged};
use crate::backend::process::node;
use crate::config;
use crate::deploy::Runtime;

/// The tools `scripts/setup-node` needs to fetch a node and build its client, with the
/// Debian package of each (it installs them itself when run as root).
const TOOLS: &[(&str, &str)] = &[
    ("curl", "curl"),
    ("openssl", "openssl"),
    ("npm", "npm"),
    ("cmake", "cmake"),
    ("make", "make"),
    ("g++", "g++"),
    ("autoreconf", "autoconf"),
    ("automake", "automake"),
    ("libtoolize", "libtool"),
    ("xz", "xz-utils"),
    ("python3", "python3"),
];

/// What `nodejs<major>.x` would run on, or why nothing would and how to fix it.
pub(super) fn check(runtime: Runtime, program: &str) -> Check {
    let major = runtime.node_major().expect("a node runtime");
    let subject = runtime.to_string();
    match node::resolve(major) {
        Ok(found) => Check::ok(
            subject,
            format!(
                "Node.js {} ({}) with aws-lambda-ric {} ({})",
                found.version,
                found.node.display(),
                found.client_version,
                found.client.display()
            ),
        ),
        Err(e) => {
            let message = e.to_string();
            // The error's first sentence says what is wrong; the rest is its own fix.
            let why = message.split(". ").next().unwrap_or(&message).to_string();
            Check::missing(subject, why, fix(runtime, major, program))
        }
    }
}

fn fix(runtime: Runtime, major: u32, program: &str) -> Fix {
    let (node_var, ric_var) = (config::node_var(major), config::node_ric_var(major));
    let named: Vec<&str> = [&node_var, &ric_var]
        .into_iter()
        .filter(|v| config::var(v).is_some())
        .map(String::as_str)
        .collect();
    let mut command = format!("{program} doctor --fix --only {runtime}");
    if !named.is_empty() {
        command = format!("unset {}; {command}", named.join(" "));
    }
    let (node_version, ric_version) = pins(major);
    let mut what = format!(
        "fetches Node.js {node_version} from the npm registry and builds aws-lambda-ric {ric_version} for it in {}",
        config::node_cache().map_or("the cache".into(), |d| d.display().to_string())
    );
    let missing: Vec<&str> = TOOLS
        .iter()
        .filter(|(tool, _)| !on_path(tool))
        .map(|(_, package)| *package)
        .collect();
    if !missing.is_empty() && !super::is_root() {
        what.push_str(&format!(
            "; needs, as root: apt-get install -y {}",
            missing.join(" ")
        ));
    }
    Fix::auto(command, what, Action::Node(major))
}

/// The Node.js and aws-lambda-ric versions pinned for `major`
/// (`fixtures/node/runtime/versions`).
fn pins(major: u32) -> (String, String) {
    kit::text("fixtures/node/runtime/versions")
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() >= 4 && f[0] == major.to_string())
        .map(|f| (f[1].to_string(), f[3].to_string()))
        .unwrap_or_else(|| (format!("{major}"), "?".into()))
}

/// Runs the embedded `scripts/setup-node` for `majors` (progress on stderr).
pub(super) fn provision(majors: &[u32], kit: &Path) -> Result<(), String> {
    let mut command = Command::new(kit.join("scripts/setup-node"));
    command.args(majors.iter().map(u32::to_string));
    run_logged(&mut command)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pins_are_read_from_the_versions_file() {
        let (node, ric) = pins(24);
        assert!(node.starts_with("24."), "{node}");
        assert!(ric.starts_with("4."), "{ric}");
        assert!(pins(20).0.starts_with("20."));
    }
}
