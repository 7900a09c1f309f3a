//! Python runtimes: the interpreter the process backend would run for each `python3.X`
//! (its own resolution, not a copy), and for `--fix` a venv with the pinned awslambdaric
//! per installed Python 3.X, in the cache where that resolution looks.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{Action, Check, Fix, kit, progress, run_logged};
use crate::backend::process::python::{self, PythonSettings};
use crate::config;
use crate::deploy::Runtime;

/// What `python3.<minor>` would run on, or why nothing would and how to fix it.
pub(super) fn check(runtime: Runtime, program: &str) -> Check {
    let minor = runtime.python_minor().expect("a python runtime");
    let subject = runtime.to_string();
    match python::resolve(runtime, &PythonSettings::default()) {
        Ok(found) => {
            let v = &found.version;
            let mut detail = format!(
                "Python {} with awslambdaric: {} ({})",
                v.version,
                v.program.display(),
                v.found_by
            );
            if v.fallback {
                detail.push_str(", the nearest version (LAMBDA_TESTKIT_PYTHON_FALLBACK)");
            }
            Check::ok(subject, detail)
        }
        Err(unavailable) => {
            let why = format!(
                "no Python 3.{minor} with awslambdaric ({})",
                unavailable.tried().join("; ")
            );
            Check::missing(subject, why, fix(runtime, minor, program))
        }
    }
}

fn fix(runtime: Runtime, minor: u32, program: &str) -> Fix {
    let var = config::python_version_env_var(minor);
    if let Some(named) = config::python_version(minor) {
        return Fix::manual(format!(
            "{} -m pip install awslambdaric   # or unset {var}, then `{program} doctor --fix --only {runtime}`",
            named.display()
        ));
    }
    let Some(venv) = config::python_venv(minor) else {
        return Fix::manual(format!(
            "export {var}=<a Python 3.{minor} with awslambdaric>   # HOME is not set: no cache for a venv"
        ));
    };
    let bases = python::interpreters(minor);
    match bases.first() {
        Some(base) => Fix::auto(
            format!("{program} doctor --fix --only {runtime}"),
            format!(
                "makes a venv from {} at {} and pip-installs {}",
                base.display(),
                venv.display(),
                pinned(minor).join(" ")
            ),
            Action::PythonVenv { minor, bases },
        ),
        None => Fix::manual(format!(
            "{}   # no Python 3.{minor} here; then `{program} doctor --fix --only {runtime}`",
            install_command(minor)
        )),
    }
}

/// How to install a Python 3.`minor` with the tools at hand.
fn install_command(minor: u32) -> String {
    if super::on_path("uv") {
        format!("uv python install 3.{minor}")
    } else {
        format!("pyenv install 3.{minor}   # or: uv python install 3.{minor}")
    }
}

/// The pinned requirements that apply to Python 3.`minor` (their `python_version`
/// markers evaluated), for the message.
fn pinned(minor: u32) -> Vec<String> {
    kit::text(kit::PYTHON_REQUIREMENTS)
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .filter_map(|l| match l.split_once(';') {
            None => Some(l.to_string()),
            Some((spec, marker)) => marker_holds(marker, minor).then(|| spec.trim().to_string()),
        })
        .collect()
}

/// `python_version >= "3.10"` and the like, for Python 3.`minor`.
fn marker_holds(marker: &str, minor: u32) -> bool {
    let marker = marker.trim();
    let Some(rest) = marker.strip_prefix("python_version") else {
        return true;
    };
    let rest = rest.trim();
    let (op, version) = ["<=", ">=", "==", "!=", "<", ">"]
        .iter()
        .find_map(|op| rest.strip_prefix(op).map(|v| (*op, v)))
        .unwrap_or(("==", rest));
    let Some(want) = version
        .trim()
        .trim_matches(['"', '\''])
        .strip_prefix("3.")
        .and_then(|m| m.parse::<u32>().ok())
    else {
        return true;
    };
    match op {
        "<=" => minor <= want,
        ">=" => minor >= want,
        "<" => minor < want,
        ">" => minor > want,
        "!=" => minor != want,
        _ => minor == want,
    }
}

/// Makes `<cache>/python/venv-3.<minor>` from the first of `bases` that can make venvs,
/// with the pinned runtime client; pip's progress goes to stderr.
pub(super) fn make_venv(minor: u32, bases: &[PathBuf], kit: &Path) -> Result<(), String> {
    let venv = config::python_venv(minor).ok_or("HOME is not set: no cache directory")?;
    let requirements = kit.join(kit::PYTHON_REQUIREMENTS);
    let mut failures = Vec::new();
    for base in bases {
        let usable = Command::new(base)
            .args(["-c", "import venv, ensurepip"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !usable {
            failures.push(format!(
                "{} has no venv/ensurepip (Debian: apt-get install python3.{minor}-venv)",
                base.display()
            ));
            continue;
        }
        progress(&format!(
            "python3.{minor}: making a venv at {} from {}",
            venv.display(),
            base.display()
        ));
        let _ = std::fs::remove_dir_all(&venv);
        if let Some(parent) = venv.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        let python = venv.join("bin/python");
        let made = run_logged(Command::new(base).arg("-m").arg("venv").arg(&venv))
            .and_then(|()| {
                progress(&format!(
                    "python3.{minor}: pip install {}",
                    pinned(minor).join(" ")
                ));
                run_logged(
                    Command::new(&python)
                        .args(["-m", "pip", "install", "--disable-pip-version-check"])
                        .args(["--no-input", "--only-binary=:all:", "--requirement"])
                        .arg(&requirements),
                )
            })
            .and_then(|()| run_logged(Command::new(&python).args(["-c", "import awslambdaric"])));
        match made {
            Ok(()) => return Ok(()),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&venv);
                failures.push(format!("from {}: {e}", base.display()));
            }
        }
    }
    Err(failures.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pins_follow_the_python_version_markers() {
        let on39 = pinned(9);
        assert!(
            on39.contains(&"awslambdaric==4.0.4".to_string()),
            "{on39:?}"
        );
        assert!(!on39.iter().any(|p| p.starts_with("awslambdaric==4.2")));
        let on312 = pinned(12);
        assert!(
            on312.iter().any(|p| p.starts_with("awslambdaric==4.2")),
            "{on312:?}"
        );
        assert!(on312.iter().any(|p| p.starts_with("simplejson==")));
        assert!(marker_holds(r#"python_version < "3.10""#, 9));
        assert!(!marker_holds(r#"python_version < "3.10""#, 10));
    }
}
