//! `lambda-testkit doctor [--fix]`: checks, per runtime family, what this crate needs on
//! this machine, prints one line per check with the exact command that fixes a missing
//! one, and with `--fix` provisions what it can, then checks again.
//!
//! - **Python** (`python3.9` … `python3.13`): the interpreter the process backend would
//!   run, found exactly as a deploy finds it, and that it imports awslambdaric. `--fix`
//!   makes a venv with the pinned awslambdaric per installed Python 3.X in
//!   `~/.cache/lambda-testkit/python/venv-3.X`, where the process backend then finds it
//!   without any variable.
//! - **Node.js** (`nodejs20.x`, `nodejs22.x`, `nodejs24.x`): a node of that major and an
//!   aws-lambda-ric it loads, as a deploy checks them. `--fix` fetches the pinned Node.js
//!   from the npm registry and builds the client for it in `~/.cache/lambda-testkit/node`
//!   (found there without any variable).
//! - **Docker**: a daemon that answers, and the stand-in images
//!   (`lambda-testkit/python:3.12`, …). `--fix` starts dockerd (installing Debian's
//!   `docker.io` if needed; root) and builds the images with the crate's own `images/build`
//!   (embedded: the recipes a checkout builds with, no registry needed; root).
//!
//! ```no_run
//! use lambda_testkit::doctor::Doctor;
//! let all_present = Doctor::new().only("python3.12")?.only("node")?.run();
//! assert!(all_present);
//! # Ok::<(), String>(())
//! ```

mod kit;
mod node;
mod python;

#[cfg(feature = "docker")]
mod docker;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::deploy::Runtime;

/// The doctor: what to check, whether to fix, and how its fix commands name this program.
#[derive(Debug, Clone)]
pub struct Doctor {
    fix: bool,
    only: Vec<Selection>,
    program: String,
}

/// What `--only` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Selection {
    Python,
    Node,
    Docker,
    Runtime(Runtime),
}

impl Selection {
    fn parse(what: &str) -> Result<Selection, String> {
        match what.trim() {
            "python" => Ok(Selection::Python),
            "node" | "nodejs" => Ok(Selection::Node),
            "docker" => Ok(Selection::Docker),
            other => match other.parse::<Runtime>() {
                Ok(r) if r.python_minor().is_some() || r.node_major().is_some() => {
                    Ok(Selection::Runtime(r))
                }
                _ => Err(format!(
                    "`{other}` is not something doctor checks: use python, node, docker, or a runtime (python3.9 ... python3.13, nodejs20.x, nodejs22.x, nodejs24.x)"
                )),
            },
        }
    }
}

impl Default for Doctor {
    fn default() -> Self {
        Doctor {
            fix: false,
            only: Vec::new(),
            program: "lambda-testkit".to_string(),
        }
    }
}

impl Doctor {
    /// Checks everything, fixes nothing.
    pub fn new() -> Doctor {
        Doctor::default()
    }

    /// Provision what is missing (and can be provisioned), then check again.
    pub fn fix(mut self, fix: bool) -> Doctor {
        self.fix = fix;
        self
    }

    /// Check only this: `python`, `node`, `docker` (the daemon and the stand-in images), or
    /// one runtime (`python3.12`, `nodejs22.x`). Repeatable; without it, everything.
    pub fn only(mut self, what: &str) -> Result<Doctor, String> {
        self.only.push(Selection::parse(what)?);
        Ok(self)
    }

    /// How the fix commands it prints name this program (default `lambda-testkit`).
    pub fn program(mut self, program: impl Into<String>) -> Doctor {
        self.program = program.into();
        self
    }

    /// Checks (and with [`Doctor::fix`], fixes, then checks again), printing one line per
    /// check on stdout and the progress of fixes on stderr. `true` when everything checked
    /// is present.
    pub fn run(&self) -> bool {
        let mut out = std::io::stdout();
        let checks = self.checks();
        let _ = out.write_all(render(&checks, self.fix).as_bytes());
        let missing = checks.iter().any(|c| !c.is_ok());
        if !self.fix || !missing {
            return !missing;
        }
        let actions: Vec<&Action> = checks
            .iter()
            .filter_map(Check::fix)
            .flat_map(|f| &f.actions)
            .collect();
        let failed = apply(&actions);
        // What the checks remembered is stale now.
        crate::backend::process::python::forget_probes();
        crate::backend::process::node::forget();
        let _ = writeln!(out, "\nafter --fix:");
        let checks = self.checks();
        let _ = out.write_all(render(&checks, false).as_bytes());
        for failure in failed {
            let _ = writeln!(out, "fix failed: {failure}");
        }
        let _ = out.flush();
        !checks.iter().any(|c| !c.is_ok())
    }

    fn wants(&self, runtime: Option<Runtime>, family: Selection) -> bool {
        self.only.is_empty()
            || self
                .only
                .iter()
                .any(|s| *s == family || runtime.is_some_and(|r| *s == Selection::Runtime(r)))
    }

    fn checks(&self) -> Vec<Check> {
        let mut checks = Vec::new();
        for runtime in Runtime::all() {
            if runtime.python_minor().is_some() && self.wants(Some(*runtime), Selection::Python) {
                checks.push(python::check(*runtime, &self.program));
            }
        }
        for runtime in Runtime::all() {
            if runtime.node_major().is_some() && self.wants(Some(*runtime), Selection::Node) {
                checks.push(node::check(*runtime, &self.program));
            }
        }
        if self.wants(None, Selection::Docker) {
            checks.extend(docker_checks(&self.program));
        }
        checks
    }
}

#[cfg(feature = "docker")]
fn docker_checks(program: &str) -> Vec<Check> {
    docker::check(program)
}

#[cfg(not(feature = "docker"))]
fn docker_checks(_program: &str) -> Vec<Check> {
    vec![Check::missing(
        "docker".into(),
        "this build of lambda-testkit has no Docker backend (feature `docker`)".into(),
        Fix::manual("cargo install lambda-testkit   # default features include docker".into()),
    )]
}

/// One line of the report.
#[derive(Debug, Clone)]
struct Check {
    /// What was checked: a runtime, `docker`, an image tag.
    subject: String,
    state: State,
}

#[derive(Debug, Clone)]
enum State {
    Ok(String),
    Missing { why: String, fix: Fix },
}

/// How to provide what is missing.
#[derive(Debug, Clone)]
struct Fix {
    /// The exact command to run.
    command: String,
    /// What that command does, or needs.
    what: Option<String>,
    /// What `--fix` does about it; none: only the user can (the command says how).
    actions: Vec<Action>,
}

impl Fix {
    fn auto(command: String, what: String, action: Action) -> Fix {
        Fix {
            command,
            what: Some(what),
            actions: vec![action],
        }
    }

    fn manual(command: String) -> Fix {
        Fix {
            command,
            what: None,
            actions: Vec::new(),
        }
    }
}

/// A step of `--fix`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    /// A venv with awslambdaric for Python 3.`minor`, from the first of `bases` that can.
    PythonVenv { minor: u32, bases: Vec<PathBuf> },
    /// Node.js of this major and its client (`scripts/setup-node`).
    Node(u32),
    /// A Docker daemon (`scripts/docker-up`).
    DockerUp,
    /// A stand-in image, by its `images/build` name.
    Image(String),
}

impl Check {
    fn ok(subject: String, detail: String) -> Check {
        Check {
            subject,
            state: State::Ok(detail),
        }
    }

    fn missing(subject: String, why: String, fix: Fix) -> Check {
        Check {
            subject,
            state: State::Missing { why, fix },
        }
    }

    fn is_ok(&self) -> bool {
        matches!(self.state, State::Ok(_))
    }

    fn fix(&self) -> Option<&Fix> {
        match &self.state {
            State::Missing { fix, .. } => Some(fix),
            State::Ok(_) => None,
        }
    }
}

/// The report: `ok` or `missing`, the subject, the detail; under a missing one, the fix.
fn render(checks: &[Check], fixing: bool) -> String {
    let width = checks.iter().map(|c| c.subject.len()).max().unwrap_or(0);
    let mut out = String::new();
    let mut last_fix: Option<(&str, Option<&str>)> = None;
    for check in checks {
        match &check.state {
            State::Ok(detail) => {
                out.push_str(&format!("ok       {:width$}  {detail}\n", check.subject));
            }
            State::Missing { why, fix } => {
                out.push_str(&format!("missing  {:width$}  {why}\n", check.subject));
                let this = (fix.command.as_str(), fix.what.as_deref());
                if last_fix == Some(this) {
                    out.push_str("         fix: the same\n");
                    continue;
                }
                last_fix = Some(this);
                out.push_str(&format!("         fix: {}\n", fix.command));
                if let Some(what) = &fix.what {
                    out.push_str(&format!("              ({what})\n"));
                }
            }
        }
    }
    let missing = checks.iter().filter(|c| !c.is_ok()).count();
    if missing == 0 {
        out.push_str(&format!("all {} checks ok\n", checks.len()));
    } else {
        let auto = checks
            .iter()
            .filter(|c| c.fix().is_some_and(|f| !f.actions.is_empty()))
            .count();
        out.push_str(&format!("{missing} of {} checks missing", checks.len()));
        if auto > 0 && !fixing {
            out.push_str(&format!("; --fix provides {auto} of them"));
        }
        out.push('\n');
    }
    out
}

/// The steps of `--fix` for `actions`, in the order they can run: each venv, then Node.js
/// (all majors at once), the daemon, and the images (all at once, after the daemon).
fn plan(actions: &[&Action]) -> Vec<Action> {
    let mut steps: Vec<Action> = Vec::new();
    for action in actions {
        if let Action::PythonVenv { .. } = action
            && !steps.contains(action)
        {
            steps.push((*action).clone());
        }
    }
    for action in actions {
        if let Action::Node(_) = action
            && !steps.contains(action)
        {
            steps.push((*action).clone());
        }
    }
    if actions.contains(&&Action::DockerUp) {
        steps.push(Action::DockerUp);
    }
    for action in actions {
        if let Action::Image(_) = action
            && !steps.contains(action)
        {
            steps.push((*action).clone());
        }
    }
    steps
}

/// Runs the fixes; what failed, by step.
fn apply(actions: &[&Action]) -> Vec<String> {
    let steps = plan(actions);
    let kit = match kit::extract() {
        Ok(kit) => kit,
        Err(e) => {
            return vec![format!(
                "cannot write the embedded recipes to the cache: {e}"
            )];
        }
    };
    progress(&format!("recipes in {}", kit.display()));
    let mut failed = Vec::new();
    let majors: Vec<u32> = steps
        .iter()
        .filter_map(|s| match s {
            Action::Node(major) => Some(*major),
            _ => None,
        })
        .collect();
    let images: Vec<String> = steps
        .iter()
        .filter_map(|s| match s {
            Action::Image(name) => Some(name.clone()),
            _ => None,
        })
        .collect();
    for step in &steps {
        if let Action::PythonVenv { minor, bases } = step
            && let Err(e) = python::make_venv(*minor, bases, &kit)
        {
            failed.push(format!("python3.{minor}: {e}"));
        }
    }
    if !majors.is_empty() {
        progress(&format!(
            "Node.js {}: scripts/setup-node",
            majors
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
        if let Err(e) = node::provision(&majors, &kit) {
            failed.push(format!("Node.js: {e}"));
        }
    }
    #[cfg(feature = "docker")]
    {
        let mut daemon = true;
        if steps.contains(&Action::DockerUp) {
            progress("Docker: scripts/docker-up");
            if let Err(e) = docker::start_daemon(&kit) {
                failed.push(format!("Docker daemon: {e}"));
                daemon = false;
            }
        }
        if daemon && !images.is_empty() {
            progress(&format!("images: images/build {}", images.join(" ")));
            if let Err(e) = docker::build_images(&images, &kit) {
                failed.push(format!("images: {e}"));
            }
        }
    }
    #[cfg(not(feature = "docker"))]
    let _ = images;
    failed
}

/// A progress line on stderr.
fn progress(line: &str) {
    eprintln!("doctor: {line}");
}

/// Runs `command` with its output on stderr (the report owns stdout); `Err` says how it
/// ended when that was not success.
fn run_logged(command: &mut Command) -> Result<(), String> {
    let stderr = std::os::fd::AsFd::as_fd(&std::io::stderr())
        .try_clone_to_owned()
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::inherit());
    let status = command
        .stdin(Stdio::null())
        .stdout(stderr)
        .status()
        .map_err(|e| format!("`{}` does not start: {e}", command.get_program().display()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{}` failed ({status})",
            command.get_program().display()
        ))
    }
}

/// Whether `name` is an executable on `PATH`.
fn on_path(name: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(name)).is_ok_and(|m| {
                m.is_file()
                    && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0
            })
        })
    })
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_takes_families_and_the_runtimes_doctor_checks() {
        assert_eq!(Selection::parse("python"), Ok(Selection::Python));
        assert_eq!(Selection::parse("node"), Ok(Selection::Node));
        assert_eq!(
            Selection::parse("nodejs22.x"),
            Ok(Selection::Runtime(Runtime::Nodejs22))
        );
        assert_eq!(
            Selection::parse("python3.12"),
            Ok(Selection::Runtime(Runtime::Python312))
        );
        let err = Selection::parse("provided.al2023").unwrap_err();
        assert!(err.contains("use python, node, docker"), "{err}");
        let doctor = Doctor::new()
            .only("python3.12")
            .unwrap()
            .only("docker")
            .unwrap();
        assert!(doctor.wants(Some(Runtime::Python312), Selection::Python));
        assert!(!doctor.wants(Some(Runtime::Python311), Selection::Python));
        assert!(!doctor.wants(Some(Runtime::Nodejs22), Selection::Node));
        assert!(doctor.wants(None, Selection::Docker));
        assert!(Doctor::new().wants(Some(Runtime::Nodejs22), Selection::Node));
    }

    #[test]
    fn the_report_gives_each_missing_check_its_command() {
        let checks = [
            Check::ok(
                "python3.12".into(),
                "Python 3.12.1 with awslambdaric".into(),
            ),
            Check::missing(
                "nodejs22.x".into(),
                "no node".into(),
                Fix::auto(
                    "lambda-testkit doctor --fix --only nodejs22.x".into(),
                    "fetches Node.js".into(),
                    Action::Node(22),
                ),
            ),
            Check::missing(
                "python3.9".into(),
                "no Python 3.9".into(),
                Fix::manual("pyenv install 3.9".into()),
            ),
        ];
        assert_eq!(
            render(&checks, false),
            "ok       python3.12  Python 3.12.1 with awslambdaric
missing  nodejs22.x  no node
         fix: lambda-testkit doctor --fix --only nodejs22.x
              (fetches Node.js)
missing  python3.9   no Python 3.9
         fix: pyenv install 3.9
2 of 3 checks missing; --fix provides 1 of them
"
        );
        assert_eq!(
            render(&checks[..1], false).lines().last(),
            Some("all 1 checks ok")
        );
    }

    #[test]
    fn fixes_run_venvs_then_node_then_the_daemon_then_images_each_once() {
        let venv = Action::PythonVenv {
            minor: 12,
            bases: vec!["/py".into()],
        };
        let image = Action::Image("python3.12".into());
        let actions = [
            &image,
            &Action::DockerUp,
            &Action::Node(22),
            &venv,
            &image,
            &Action::Node(20),
        ];
        assert_eq!(
            plan(&actions),
            [
                venv.clone(),
                Action::Node(22),
                Action::Node(20),
                Action::DockerUp,
                image.clone()
            ]
        );
    }
}
