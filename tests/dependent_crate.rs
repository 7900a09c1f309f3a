//! The published-crate path: a small crate depending on lambda-testkit the way a user's
//! does (by `path` here, with the README's dev-dependencies and none of this crate's
//! profile settings), whose test is the README's "Using it" snippet as written, is built
//! and tested by cargo — a full `cargo test` of a dependent.
//!
//! It lives at `target/dependent/crate` with its own target directory
//! `target/dependent/target`, both kept between runs so each run rebuilds only what
//! changed (lambda-testkit itself, after an edit). The cargo variables this test inherits
//! (`CARGO_TARGET_DIR`, `CARGO_MANIFEST_DIR`, `CARGO_PKG_*`, ...) are removed: they
//! describe this crate's build, not the dependent's.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use support::{python_for, repo};

/// The README's first ```rust block under `## Using it`.
fn using_it_snippet(readme: &str) -> String {
    let section = readme
        .split("\n## Using it\n")
        .nth(1)
        .expect("README has a `## Using it` section");
    let block = section
        .split("```rust\n")
        .nth(1)
        .expect("`Using it` has a rust block");
    block.split("```").next().unwrap().to_string()
}

/// The crates the README's `cargo add --dev` line names.
fn cargo_add_crates(readme: &str) -> Vec<String> {
    let line = readme
        .lines()
        .find(|l| l.trim_start().starts_with("cargo add --dev "))
        .expect("README has a `cargo add --dev` line");
    let mut crates = Vec::new();
    for command in line.split("&&") {
        let mut words = command.split_whitespace();
        assert_eq!(
            [words.next(), words.next(), words.next()],
            [Some("cargo"), Some("add"), Some("--dev")],
            "{line}"
        );
        while let Some(word) = words.next() {
            match word {
                "--features" | "-F" => {
                    words.next();
                }
                flag if flag.starts_with('-') => {}
                name => crates.push(name.to_string()),
            }
        }
    }
    crates
}

/// Writes `contents` to `path` unless it already holds them (an unchanged file keeps its
/// mtime, so cargo does not rebuild for it).
fn write_if_changed(path: &Path, contents: &[u8]) {
    if std::fs::read(path).is_ok_and(|old| old == contents) {
        return;
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, contents).unwrap();
}

#[test]
fn a_dependent_crate_runs_the_readme_snippet_with_cargo_test() -> Result<(), String> {
    let python = require!(python_for(12));
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let template = std::fs::read_to_string(repo().join("tests/dependent/Cargo.toml.in")).unwrap();
    let manifest = template.replace("@LAMBDA_TESTKIT@", repo().to_str().unwrap());

    // What the README tells a user to add is what the dependent has.
    let dev_dependencies = manifest.split("[dev-dependencies]\n").nth(1).unwrap();
    let added = cargo_add_crates(&readme);
    assert!(
        added.len() >= 5 && added.contains(&"tokio".to_string()),
        "{added:?}"
    );
    for krate in added {
        assert!(
            dev_dependencies.contains(&format!("\n{krate} ="))
                || dev_dependencies.starts_with(&format!("{krate} =")),
            "the README's `cargo add --dev` names {krate}, which tests/dependent/Cargo.toml.in lacks"
        );
    }

    let root = repo().join("target/dependent");
    let krate = root.join("crate");
    write_if_changed(&krate.join("Cargo.toml"), manifest.as_bytes());
    write_if_changed(
        &krate.join("src/lib.rs"),
        b"//! A user's crate; its tests use lambda-testkit.\n",
    );
    write_if_changed(
        &krate.join("tests/readme.rs"),
        using_it_snippet(&readme).as_bytes(),
    );
    // The first run resolves from this repository's lock file: the versions it is tested
    // with, and no registry round trip for them.
    if !krate.join("Cargo.lock").exists() {
        std::fs::copy(repo().join("Cargo.lock"), krate.join("Cargo.lock")).unwrap();
    }

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(&krate)
        .args(["test", "--color", "never", "--target-dir"])
        .arg(root.join("target"))
        .env("LAMBDA_TESTKIT_PYTHON_3_12", &python);
    // Cargo's description of this build goes; the user's cargo configuration stays.
    const KEPT: [&str; 6] = [
        "CARGO_HOME",
        "CARGO_NET_",
        "CARGO_HTTP_",
        "CARGO_REGISTRIES_",
        "CARGO_REGISTRY_",
        "CARGO_BUILD_JOBS",
    ];
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_") && !KEPT.iter().any(|k| name.starts_with(k)) {
            command.env_remove(&*name);
        }
    }
    let started = Instant::now();
    let out = command.output().expect("cargo runs");
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "dependent crate: cargo test took {:.1} s\n{stderr}\n{stdout}",
        took.as_secs_f64()
    );
    assert!(
        out.status.success(),
        "cargo test failed in {}",
        krate.display()
    );
    // A dependent sees this crate's warnings (when it compiles it): there must be none.
    assert!(
        !stderr.contains("warning: `lambda-testkit` (lib) generated"),
        "lambda-testkit compiles with warnings in a dependent's default build:\n{stderr}"
    );
    assert!(
        stdout.contains("test greets ... ok") && stdout.contains("1 passed"),
        "{stdout}"
    );
    Ok(())
}
