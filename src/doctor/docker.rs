//! The Docker backend: a daemon that answers (the backend's own connection), and the
//! stand-in images. `--fix` runs the embedded `scripts/docker-up` (installs and starts
//! dockerd, as root) and the embedded `images/build` (mmdebstrap from Debian's mirrors,
//! `docker import`; no registry), streaming their progress.

use std::path::Path;
use std::process::Command;

use bollard::errors::Error as DockerError;

use super::{Action, Check, Fix, run_logged};
use crate::backend::docker::{daemon, standin_image};
use crate::deploy::Runtime;

/// The label `images/build` puts on every stand-in: the hash of its inputs.
const INPUTS_LABEL: &str = "lambda-testkit.inputs";

/// The stand-in images, one per tag: the `images/build` name and the tag.
fn standins() -> Vec<(String, String)> {
    let mut images: Vec<(String, String)> = Vec::new();
    for runtime in Runtime::all() {
        let tag = standin_image(*runtime);
        if images.iter().any(|(_, t)| *t == tag) {
            continue;
        }
        let name = match (runtime.python_minor(), runtime.node_major()) {
            (Some(minor), _) => format!("python3.{minor}"),
            (_, Some(major)) => format!("nodejs{major}"),
            _ => "provided".to_string(),
        };
        images.push((name, tag));
    }
    images
}

/// The daemon check, then one check per stand-in image.
pub(super) fn check(program: &str) -> Vec<Check> {
    // Its own thread and runtime: the caller may be inside a runtime of its own.
    std::thread::scope(|s| {
        s.spawn(|| {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(check_async(program)),
                Err(e) => vec![Check::missing(
                    "docker".into(),
                    format!("cannot start an async runtime: {e}"),
                    Fix::manual("(none: the process cannot start threads)".into()),
                )],
            }
        })
        .join()
        .unwrap_or_default()
    })
}

async fn check_async(program: &str) -> Vec<Check> {
    let images = standins();
    let fix_command = format!("{program} doctor --fix --only docker");
    let (docker, host) = match daemon().await {
        Ok(found) => found,
        Err(e) => return no_daemon(e.to_string(), &fix_command, &images),
    };
    let version = match docker.version().await {
        Ok(v) => v.version.unwrap_or_else(|| "?".into()),
        Err(e) => return no_daemon(format!("{host}: {e}"), &fix_command, &images),
    };
    let mut checks = vec![Check::ok(
        "docker".into(),
        format!("Docker {version} at {host}"),
    )];
    for (name, tag) in images {
        let check = match docker.inspect_image(&tag).await {
            Ok(image) => {
                let inputs = image
                    .config
                    .and_then(|c| c.labels)
                    .and_then(|l| l.get(INPUTS_LABEL).cloned());
                let size = image.size.unwrap_or_default() / 1_000_000;
                match inputs {
                    Some(inputs) => Check::ok(
                        tag,
                        format!(
                            "{size} MB, built by images/build (inputs {})",
                            &inputs[..inputs.len().min(12)]
                        ),
                    ),
                    None => Check::missing(
                        tag,
                        "present, but not built by images/build (no lambda-testkit.inputs label)"
                            .into(),
                        build_fix(&fix_command, name),
                    ),
                }
            }
            Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => Check::missing(
                tag,
                not_built(&name, "not built"),
                build_fix(&fix_command, name),
            ),
            Err(e) => Check::missing(
                tag,
                format!("cannot inspect it: {e}"),
                build_fix(&fix_command, name),
            ),
        };
        checks.push(check);
    }
    checks
}

fn build_fix(command: &str, name: String) -> Fix {
    let mut what = "builds the images with the crate's images/build: Debian root filesystems by mmdebstrap from Debian's mirrors, docker import; no registry".to_string();
    if !super::is_root() {
        what.push_str("; needs root");
    }
    Fix::auto(command.to_string(), what, Action::Image(name))
}

/// Why an image is missing, and what its build takes from this host.
fn not_built(name: &str, why: &str) -> String {
    match name.strip_prefix("python") {
        Some(version) if version != "3.11" => {
            format!("{why} (it carries this host's CPython {version}, from pyenv or uv)")
        }
        _ => why.to_string(),
    }
}

fn no_daemon(why: String, command: &str, images: &[(String, String)]) -> Vec<Check> {
    let mut what = "runs the crate's scripts/docker-up: installs Debian's docker.io when dockerd is missing, starts dockerd".to_string();
    if !super::is_root() {
        what.push_str(
            "; needs root (as root: apt-get install -y docker.io && setsid nohup dockerd >/tmp/dockerd.log 2>&1 &)",
        );
    }
    let mut checks = vec![Check::missing(
        "docker".into(),
        format!("no Docker daemon answers: {why}"),
        Fix::auto(command.to_string(), what, Action::DockerUp),
    )];
    // The images cannot be looked at: one line for all of them.
    let mut fix = build_fix(command, String::new());
    fix.actions = images
        .iter()
        .map(|(name, _)| Action::Image(name.clone()))
        .collect();
    checks.push(Check::missing(
        "lambda-testkit/* images".into(),
        "unknown: no Docker daemon".into(),
        fix,
    ));
    checks
}

/// Runs the embedded `scripts/docker-up`.
pub(super) fn start_daemon(kit: &Path) -> Result<(), String> {
    run_logged(&mut Command::new(kit.join("scripts/docker-up")))
}

/// Runs the embedded `images/build` for `names` (its progress streams to stderr).
pub(super) fn build_images(names: &[String], kit: &Path) -> Result<(), String> {
    let mut command = Command::new(kit.join("images/build"));
    command.args(names);
    run_logged(&mut command)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_standin_is_named_as_images_build_names_it() {
        let images = standins();
        let names: Vec<&str> = images.iter().map(|(n, _)| n.as_str()).collect();
        for name in [
            "provided",
            "python3.9",
            "python3.11",
            "python3.13",
            "nodejs20",
            "nodejs24",
        ] {
            assert!(names.contains(&name), "{names:?}");
        }
        assert_eq!(
            images.len(),
            9,
            "one provided image serves both provided runtimes"
        );
        // images/build accepts each of them.
        let build = super::super::kit::text("images/build");
        for name in names {
            let accepted = build.contains(&format!("{name} |"))
                || build.contains(&format!("| {name} |"))
                || build.contains(&format!("| {name})"))
                || build.contains(&format!("{name})"));
            assert!(accepted, "images/build does not take {name}");
        }
    }
}
