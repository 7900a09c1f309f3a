//! `lambda-testkit doctor`, the binary itself, on this machine: with everything
//! provisioned it says so and exits 0; with a runtime missing it exits 1 and prints the
//! command that fixes it; `--fix` makes the venv the process backend then finds on its own.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::{PYTHON_MINORS, node, python_for};

const BIN: &str = env!("CARGO_BIN_EXE_lambda-testkit");

fn doctor(command: &mut Command) -> (i32, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().expect("the binary runs");
    let stdout = String::from_utf8_lossy(&stdout).into_owned();
    eprintln!("{}", String::from_utf8_lossy(&stderr));
    println!("{stdout}");
    (status.code().unwrap_or(-1), stdout)
}

/// The lines of `report` after the one checking `subject`, up to the next check.
fn fix_of<'a>(report: &'a str, subject: &str) -> Vec<&'a str> {
    report
        .lines()
        .skip_while(|l| !l.starts_with(&format!("missing  {subject} ")))
        .skip(1)
        .take_while(|l| l.starts_with("         "))
        .map(str::trim)
        .collect()
}

#[test]
fn on_a_provisioned_machine_every_check_is_ok_and_the_exit_status_is_0() -> Result<(), String> {
    let mut command = Command::new(BIN);
    command.arg("doctor");
    for minor in PYTHON_MINORS {
        let python = require!(python_for(minor));
        command.env(
            lambda_testkit::process::python_version_env_var(minor),
            python,
        );
    }
    for major in [20, 22, 24] {
        let (node, client) = require!(node(major));
        command
            .env(format!("LAMBDA_TESTKIT_NODE_{major}"), node)
            .env(format!("LAMBDA_TESTKIT_NODE_RIC_{major}"), client);
    }
    require!(support::docker_ready());
    for image in ["lambda-testkit/provided:al2023", "lambda-testkit/nodejs:22"] {
        require!(support::image_ready(image.to_string()));
    }
    for minor in PYTHON_MINORS {
        require!(support::image_ready(support::python_image(minor)));
    }
    for major in [20, 24] {
        require!(support::node_image_ready(major));
    }

    let (status, report) = doctor(&mut command);
    assert_eq!(status, 0, "{report}");
    let lines: Vec<&str> = report.lines().collect();
    let (summary, checks) = lines.split_last().unwrap();
    assert_eq!(*summary, "all 18 checks ok");
    for line in checks {
        assert!(line.starts_with("ok       "), "{line}");
    }
    for subject in [
        "python3.9 ",
        "python3.13 ",
        "nodejs20.x ",
        "nodejs24.x ",
        "docker ",
        "lambda-testkit/provided:al2023 ",
        "lambda-testkit/python:3.12 ",
        "lambda-testkit/nodejs:24 ",
    ] {
        assert!(
            checks.iter().any(|l| l[9..].starts_with(subject)),
            "no check of {subject}:\n{report}"
        );
    }
    let python = checks.iter().find(|l| l.contains(" python3.12 ")).unwrap();
    assert!(
        python.contains("Python 3.12.") && python.contains("with awslambdaric"),
        "{python}"
    );
    Ok(())
}

/// A machine without this crate's Python 3.12 or Node.js 22: a PATH of the system's
/// directories only, a HOME without caches, no variable for either runtime.
fn bare(home: &Path) -> Command {
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", home)
        .env("LANG", "C.UTF-8");
    command
}

#[test]
fn a_missing_runtime_is_exit_status_1_with_the_command_that_fixes_it() -> Result<(), String> {
    let python311 = require!(python_for(11));
    let home = tempfile::tempdir().unwrap();
    let (status, report) = doctor(
        bare(home.path())
            .env("LAMBDA_TESTKIT_PYTHON_3_11", &python311)
            .args(["doctor", "--only", "python3.11,python3.12,nodejs22.x"]),
    );
    assert_eq!(status, 1, "{report}");
    let present = report.lines().next().unwrap();
    assert!(
        present.starts_with("ok       python3.11  Python 3.11."),
        "{present}"
    );
    assert!(
        present.contains("(LAMBDA_TESTKIT_PYTHON_3_11)"),
        "{present}"
    );

    let python = report
        .lines()
        .find(|l| l.starts_with("missing  python3.12 "))
        .unwrap_or_else(|| panic!("python3.12 is not missing:\n{report}"));
    assert!(
        python.contains("no Python 3.12 with awslambdaric")
            && python.contains("LAMBDA_TESTKIT_PYTHON_3_12 is not set"),
        "{python}"
    );
    let fix = fix_of(&report, "python3.12");
    // This machine's /usr/bin may or may not have a python3.12 to make a venv from.
    assert!(
        fix[0].starts_with(&format!("fix: {BIN} doctor --fix --only python3.12"))
            || fix[0].starts_with("fix: pyenv install 3.12")
            || fix[0].starts_with("fix: uv python install 3.12"),
        "{fix:?}"
    );

    assert!(
        report.contains("missing  nodejs22.x  nodejs22.x "),
        "{report}"
    );
    let fix = fix_of(&report, "nodejs22.x");
    assert_eq!(fix[0], format!("fix: {BIN} doctor --fix --only nodejs22.x"));
    assert!(
        fix[1].contains("fetches Node.js 22.") && fix[1].contains("aws-lambda-ric 3.3.0"),
        "{fix:?}"
    );
    assert!(
        report.ends_with("2 of 3 checks missing; --fix provides 1 of them\n")
            || report.ends_with("2 of 3 checks missing; --fix provides 2 of them\n"),
        "{report}"
    );
    Ok(())
}

/// The interpreter a venv was made from.
fn base_of(venv_python: &Path) -> PathBuf {
    let out = Command::new(venv_python)
        .args(["-c", "import sys; print(sys._base_executable)"])
        .output()
        .unwrap();
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

#[test]
fn fix_makes_a_venv_with_awslambdaric_that_the_process_backend_then_finds() -> Result<(), String> {
    let base = base_of(&require!(python_for(12)));
    let home = tempfile::tempdir().unwrap();
    let with_base = |command: &mut Command| {
        let path = format!("{}:/usr/bin:/bin", base.parent().unwrap().display());
        command.env("PATH", path);
        // pip's wheel cache, so no download is repeated.
        if let Some(cache) = std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/pip")) {
            command.env("PIP_CACHE_DIR", cache);
        }
    };
    let mut before = bare(home.path());
    with_base(&mut before);
    let (status, report) = doctor(before.args(["doctor", "--only", "python3.12"]));
    assert_eq!(status, 1, "{report}");
    let fix = fix_of(&report, "python3.12");
    assert_eq!(fix[0], format!("fix: {BIN} doctor --fix --only python3.12"));
    let venv = home.path().join(".cache/lambda-testkit/python/venv-3.12");
    assert!(
        fix[1].contains(&format!("makes a venv from {}", base.display()))
            && fix[1].contains(&venv.display().to_string())
            && fix[1].contains("awslambdaric==4.2.2"),
        "{fix:?}"
    );

    let mut fixing = bare(home.path());
    with_base(&mut fixing);
    let (status, report) = doctor(fixing.args(["doctor", "--fix", "--only", "python3.12"]));
    assert_eq!(status, 0, "{report}");
    let after = report.split("after --fix:\n").nth(1).unwrap();
    assert!(
        after.starts_with("ok       python3.12  Python 3.12."),
        "{after}"
    );
    assert!(
        after.contains(&format!(
            "{} (lambda-testkit doctor's venv)",
            venv.join("bin/python").display()
        )),
        "{after}"
    );

    // A new process, no variable: the process backend's own resolution finds the venv.
    let mut again = bare(home.path());
    with_base(&mut again);
    let (status, report) = doctor(again.args(["doctor", "--only", "python3.12"]));
    assert_eq!(status, 0, "{report}");
    Ok(())
}

#[test]
fn without_variables_the_node_cache_doctor_fills_runs_the_runtime() -> Result<(), String> {
    let (node, _) = require!(node(22));
    // scripts/setup-node's layout: <cache>/node-v22.x.y/bin/node.
    let cache = node.ancestors().nth(3).unwrap().to_path_buf();
    let home = tempfile::tempdir().unwrap();
    let (status, report) = doctor(
        bare(home.path())
            .env("LAMBDA_TESTKIT_NODE_CACHE", &cache)
            .args(["doctor", "--only", "nodejs22.x"]),
    );
    assert_eq!(status, 0, "{report}");
    assert!(
        report.starts_with(&format!(
            "ok       nodejs22.x  Node.js 22.23.5 ({}) with aws-lambda-ric 3.3.0 ({}/client-22-",
            node.display(),
            cache.display()
        )),
        "{report}"
    );
    Ok(())
}
