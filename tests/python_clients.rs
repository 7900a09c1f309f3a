//! boto3 and the AWS CLI against `lambda-testkit serve`: the standalone binary as any
//! non-Rust client sees it.

mod support;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A running `lambda-testkit serve`; SIGTERM and wait on drop.
struct Server {
    child: Child,
    endpoint: String,
}

impl Server {
    fn start(extra: &[&str]) -> Server {
        Server::start_with(extra, |_| {})
    }

    /// Starts `serve` with `environment` applied to its command first.
    fn start_with(extra: &[&str], environment: impl FnOnce(&mut Command)) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_lambda-testkit"));
        environment(&mut command);
        let mut child = command
            .args(["serve", "--port", "0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("lambda-testkit serve starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("endpoint line");
        let endpoint = line.trim().rsplit(' ').next().unwrap().to_string();
        assert!(endpoint.starts_with("http://127.0.0.1:"), "{line}");
        Server { child, endpoint }
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: sends a signal to our own child.
        unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
    }

    /// Signals and waits for the exit; returns the exit status and stderr.
    fn stop(mut self, signal: libc::c_int) -> (std::process::ExitStatus, String) {
        self.signal(signal);
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "serve did not stop"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(self.child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        (status, stderr)
    }

    /// The server's execution environments: its child processes, where a Python fork
    /// server (a child too, `-c <script> lambda-testkit-fork-server`) counts as the
    /// runtimes it forked (its children that lead a process group of their own; its spare
    /// child stays in its group).
    fn environment_pids(&self) -> Vec<u32> {
        let stat = |pid: u32| -> Option<(u32, u32)> {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (_, rest) = stat.rsplit_once(") ")?;
            let mut fields = rest.split(' ');
            let parent = fields.nth(1)?.parse().ok()?;
            let group = fields.next()?.parse().ok()?;
            Some((parent, group))
        };
        let pids: Vec<u32> = std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .collect();
        let children = |of: u32| -> Vec<u32> {
            pids.iter()
                .copied()
                .filter(|pid| stat(*pid).is_some_and(|(parent, _)| parent == of))
                .collect()
        };
        let fork_server = |pid: u32| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("lambda-testkit-fork-server"))
        };
        let mut environments = Vec::new();
        for child in children(self.child.id()) {
            if fork_server(child) {
                environments.extend(
                    children(child)
                        .into_iter()
                        .filter(|pid| stat(*pid).is_some_and(|(_, group)| group == *pid)),
                );
            } else {
                environments.push(child);
            }
        }
        environments
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.signal(libc::SIGTERM);
            let _ = self.child.wait();
        }
    }
}

fn client_env(command: &mut Command, endpoint: &str) {
    command
        .env("LAMBDA_ENDPOINT", endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true");
}

/// What every boto3 script starts with: a client for the server, and a zip helper.
const BOTO3_PRELUDE: &str = r#"
import base64, io, json, os, time, zipfile
import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

client = boto3.client(
    "lambda",
    endpoint_url=os.environ["LAMBDA_ENDPOINT"],
    region_name="us-east-1",
    config=Config(read_timeout=60, retries={"mode": "standard", "total_max_attempts": 1}),
)

def zip_of(files):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, (data, mode) in files.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            z.writestr(info, data)
    return buf.getvalue()

ROLE = "arn:aws:iam::123456789012:role/test"
"#;

/// Runs a boto3 script with the venv interpreter; panics with its output on failure.
fn boto3(python: &PathBuf, endpoint: &str, script: &str) -> String {
    let mut command = Command::new(python);
    command.arg("-c").arg(format!("{BOTO3_PRELUDE}\n{script}"));
    client_env(&mut command, endpoint);
    if let Ok(dir) = std::env::var("LAMBDA_TESTKIT_FIXTURES") {
        command.env("LAMBDA_TESTKIT_FIXTURES", dir);
    }
    let out = command.output().expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "boto3 script failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The AWS CLI scripts/setup installed (`LAMBDA_TESTKIT_AWS_CLI`), else `aws` on PATH.
fn aws_cli_path() -> PathBuf {
    std::env::var_os("LAMBDA_TESTKIT_AWS_CLI").map_or_else(|| PathBuf::from("aws"), PathBuf::from)
}

fn aws_cli() -> Result<PathBuf, String> {
    let cli = aws_cli_path();
    let ok = Command::new(&cli)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        Ok(cli)
    } else {
        Err(format!(
            "the AWS CLI ({}) does not run (scripts/setup installs it and exports LAMBDA_TESTKIT_AWS_CLI)",
            cli.display()
        ))
    }
}

/// Runs `aws --endpoint-url <endpoint> lambda <args>` with retries off.
fn aws(endpoint: &str, args: &[&str]) -> Output {
    let mut command = Command::new(aws_cli_path());
    command
        .args(["--endpoint-url", endpoint, "--output", "json", "lambda"])
        .args(args);
    client_env(&mut command, endpoint);
    command
        .env("AWS_MAX_ATTEMPTS", "1")
        .env("AWS_RETRY_MODE", "standard");
    command.output().expect("aws runs")
}

fn aws_ok(endpoint: &str, args: &[&str]) -> serde_json::Value {
    let out = aws(endpoint, args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "aws lambda {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if stdout.trim().is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&stdout).expect("JSON output")
    }
}

/// CLI v2 reads blob arguments as base64 unless told otherwise; v1 takes them raw.
fn raw_payload_args() -> Vec<&'static str> {
    let version = Command::new(aws_cli_path())
        .arg("--version")
        .output()
        .map(|o| {
            let mut text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&o.stderr));
            text
        });
    if version.is_ok_and(|v| v.starts_with("aws-cli/2")) {
        vec!["--cli-binary-format", "raw-in-base64-out"]
    } else {
        vec![]
    }
}

#[test]
fn boto3_creates_from_an_inline_zip_and_invokes_with_log_tail() -> anyhow::Result<()> {
    let python = require!(support::python());
    let server = Server::start(&[]);
    let out = boto3(
        &python,
        &server.endpoint,
        r#"
code = zip_of({"app.py": (b"def handler(event, ctx):\n    print('hello from', event['name'])\n    return {'hi': event['name']}\n", 0o644)})
created = client.create_function(FunctionName="greeter", Runtime="python3.12", Role=ROLE,
                                 Handler="app.handler", Code={"ZipFile": code})
assert created["ResponseMetadata"]["HTTPStatusCode"] == 201, created
assert created["State"] == "Active"
client.get_waiter("function_active_v2").wait(FunctionName="greeter")
out = client.invoke(FunctionName="greeter", Payload=json.dumps({"name": "ada"}), LogType="Tail")
assert out["StatusCode"] == 200
assert json.loads(out["Payload"].read()) == {"hi": "ada"}
log = base64.b64decode(out["LogResult"]).decode()
assert "hello from ada" in log and "REPORT RequestId:" in log, log
assert out["ExecutedVersion"] == "$LATEST"
names = [f["FunctionName"] for f in client.list_functions()["Functions"]]
assert names == ["greeter"], names
try:
    client.get_function(FunctionName="missing")
    raise SystemExit("expected ResourceNotFoundException")
except ClientError as e:
    assert e.response["Error"]["Code"] == "ResourceNotFoundException", e.response
    assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 404
print("ok")
"#,
    );
    assert_eq!(out.trim(), "ok");
    Ok(())
}

/// Issue 14, defect 1: with a venv first on PATH (as `source venv/bin/activate` leaves it)
/// and no interpreter configured, the interpreter that was checked at deploy is the one that
/// runs, not whatever `python3` comes first on the function's own PATH.
#[test]
fn serve_runs_python_functions_on_the_venv_first_on_path_when_none_is_configured()
-> anyhow::Result<()> {
    let python = require!(support::python());
    let venv = std::fs::canonicalize(python.parent().and_then(|b| b.parent()).unwrap())?;
    let out = Command::new(&python)
        .args(["-c", "import sys; print(sys.version_info[1])"])
        .output()?;
    let minor: u32 = String::from_utf8(out.stdout)?.trim().parse()?;
    require!(
        Some(venv.join(format!("bin/python3.{minor}")))
            .filter(|p| p.exists())
            .ok_or_else(|| format!("{} is not a venv", venv.display()))
    );
    let path = format!(
        "{}:{}",
        venv.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let server = Server::start_with(&[], |command| {
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("LAMBDA_TESTKIT_PYTHON") {
                command.env_remove(name);
            }
        }
        command.env("PATH", path).env("VIRTUAL_ENV", &venv);
    });
    let out = boto3(
        &python,
        &server.endpoint,
        &format!(
            r#"
code = zip_of({{"app.py": (b"import sys\ndef handler(event, ctx):\n    return [sys.prefix, sys.executable, '%d.%d' % sys.version_info[:2]]\n", 0o644)}})
client.create_function(FunctionName="venv", Runtime="python3.{minor}", Role=ROLE, Handler="app.handler", Code={{"ZipFile": code}})
out = client.invoke(FunctionName="venv", Payload=b"{{}}")
assert "FunctionError" not in out, json.loads(out["Payload"].read())
print(json.dumps(json.loads(out["Payload"].read())))
"#
        ),
    );
    let ran: (String, String, String) = serde_json::from_str(out.trim())?;
    assert_eq!(
        std::fs::canonicalize(&ran.0)?,
        venv,
        "the venv's interpreter ran: {ran:?}"
    );
    assert!(ran.1.starts_with('/'), "spawned by absolute path: {ran:?}");
    assert_eq!(ran.2, format!("3.{minor}"));
    Ok(())
}

/// A `python3.9` function where no Python 3.9 can be found: CreateFunction fails naming the
/// runtime and how to provide one; with `LAMBDA_TESTKIT_PYTHON_FALLBACK=nearest` it runs on
/// the nearest version (3.10), and the cold start's log says so.
#[test]
fn serve_refuses_a_python_version_it_cannot_find_unless_the_nearest_is_allowed()
-> anyhow::Result<()> {
    let python = require!(support::python());
    let python310 = require!(support::python_for(10));
    // Nothing that could be a Python 3.9: no variable, no pyenv or uv, a PATH without it.
    let hide = |command: &mut Command| {
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("LAMBDA_TESTKIT_PYTHON") {
                command.env_remove(name);
            }
        }
        command
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("PYENV_ROOT", "/nonexistent")
            .env("UV_PYTHON_INSTALL_DIR", "/nonexistent")
            .env("LAMBDA_TESTKIT_PYTHON_3_10", &python310);
    };
    const SCRIPT: &str = r#"
code = zip_of({"app.py": (b"import sys\ndef handler(event, ctx):\n    return '%d.%d' % sys.version_info[:2]\n", 0o644)})
try:
    client.create_function(FunctionName="old", Runtime="python3.9", Role=ROLE, Handler="app.handler", Code={"ZipFile": code})
except ClientError as e:
    print(json.dumps({"refused": e.response["Error"]["Message"]}))
    raise SystemExit(0)
out = client.invoke(FunctionName="old", Payload=b"{}", LogType="Tail")
print(json.dumps({"ran": json.loads(out["Payload"].read()), "log": base64.b64decode(out["LogResult"]).decode()}))
"#;
    let server = Server::start_with(&[], hide);
    let refused: serde_json::Value =
        serde_json::from_str(boto3(&python, &server.endpoint, SCRIPT).trim())?;
    let message = refused["refused"]
        .as_str()
        .expect("CreateFunction is refused");
    for part in [
        "python3.9 cannot run: no Python 3.9 interpreter with awslambdaric was found",
        "LAMBDA_TESTKIT_PYTHON_3_9 is not set",
        "no `python3.9` on PATH",
        "set LAMBDA_TESTKIT_PYTHON_3_9",
        "LAMBDA_TESTKIT_PYTHON_FALLBACK=nearest",
    ] {
        assert!(message.contains(part), "{part:?} missing from: {message}");
    }
    drop(server);

    let server = Server::start_with(&[], |command| {
        hide(command);
        command.env("LAMBDA_TESTKIT_PYTHON_FALLBACK", "nearest");
    });
    let ran: serde_json::Value =
        serde_json::from_str(boto3(&python, &server.endpoint, SCRIPT).trim())?;
    assert_eq!(ran["ran"], "3.10", "{ran}");
    let log = ran["log"].as_str().unwrap();
    assert!(
        log.contains("lambda-testkit: python3.9 is running on Python 3.10.")
            && log.contains("nearest-version fallback is on"),
        "{log}"
    );
    Ok(())
}

#[test]
fn boto3_sees_function_errors_and_throttling() -> anyhow::Result<()> {
    let python = require!(support::python());
    let server = Server::start(&[]);
    let out = boto3(
        &python,
        &server.endpoint,
        r#"
code = zip_of({"app.py": (b"def handler(event, ctx):\n    raise ValueError('kaput')\n", 0o644)})
client.create_function(FunctionName="f", Runtime="python3.12", Role=ROLE, Handler="app.handler", Code={"ZipFile": code})
out = client.invoke(FunctionName="f", Payload=b"{}")
assert out["StatusCode"] == 200 and out["FunctionError"] == "Unhandled", out
error = json.loads(out["Payload"].read())
assert error["errorType"] == "ValueError" and error["errorMessage"] == "kaput", error

client.put_function_concurrency(FunctionName="f", ReservedConcurrentExecutions=0)
assert client.get_function_concurrency(FunctionName="f")["ReservedConcurrentExecutions"] == 0
try:
    client.invoke(FunctionName="f", Payload=b"{}")
    raise SystemExit("expected TooManyRequestsException")
except ClientError as e:
    assert e.response["Error"]["Code"] == "TooManyRequestsException", e.response
    assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert e.response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded", e.response
print("ok")
"#,
    );
    assert_eq!(out.trim(), "ok");
    Ok(())
}

#[test]
fn boto3_reads_a_streamed_invoke_as_it_is_written() -> anyhow::Result<()> {
    let python = require!(support::python());
    require!(support::rust_fixture("stream"));
    let server = Server::start(&[]);
    let out = boto3(
        &python,
        &server.endpoint,
        r#"
fixtures = os.environ.get("LAMBDA_TESTKIT_FIXTURES", "target/fixtures/release")
with open(os.path.join(fixtures, "stream"), "rb") as f:
    code = zip_of({"bootstrap": (f.read(), 0o755)})
client.create_function(FunctionName="streamer", Runtime="provided.al2023", Role=ROLE, Handler="stream",
                       Code={"ZipFile": code})
out = client.invoke_with_response_stream(FunctionName="streamer", Payload=json.dumps({"chunks": 3, "delay_ms": 150}),
                                         LogType="Tail")
chunks, complete = [], None
for event in out["EventStream"]:
    if "PayloadChunk" in event:
        chunks.append((event["PayloadChunk"]["Payload"], time.monotonic()))
    elif "InvokeComplete" in event:
        complete = (event["InvokeComplete"], time.monotonic())
prelude = chunks[0][0]
assert prelude.startswith(b'{"statusCode":200') and prelude.endswith(b"\0" * 8), prelude
assert [c for c, _ in chunks[1:]] == [b"chunk-0\n", b"chunk-1\n", b"chunk-2\n"], chunks
assert "ErrorCode" not in complete[0], complete
assert "REPORT RequestId:" in base64.b64decode(complete[0]["LogResult"]).decode()
lead = complete[1] - chunks[1][1]
assert lead >= 0.25, f"chunk-0 came only {lead:.3f}s before the end"

failed = client.invoke_with_response_stream(FunctionName="streamer", Payload=json.dumps({"chunks": 2, "fail_after": 1}))
events = list(failed["EventStream"])
assert events[-1]["InvokeComplete"]["ErrorCode"] == "Runtime.StreamError", events
print("ok")
"#,
    );
    assert_eq!(out.trim(), "ok");
    Ok(())
}

#[test]
fn boto3_publishes_and_uses_a_layer() -> anyhow::Result<()> {
    let python = require!(support::python());
    let server = Server::start(&[]);
    let out = boto3(
        &python,
        &server.endpoint,
        r#"
layer = zip_of({"python/greeting.py": (b"def hello(name):\n    return 'hello, ' + name\n", 0o644)})
published = client.publish_layer_version(LayerName="greeting", Content={"ZipFile": layer}, CompatibleRuntimes=["python3.12"])
assert published["Version"] == 1 and published["ResponseMetadata"]["HTTPStatusCode"] == 201
arn = published["LayerVersionArn"]
assert client.get_layer_version_by_arn(Arn=arn)["LayerVersionArn"] == arn
assert [v["Version"] for v in client.list_layer_versions(LayerName="greeting")["LayerVersions"]] == [1]
code = zip_of({"app.py": (b"import greeting\ndef handler(event, ctx):\n    return greeting.hello(event['name'])\n", 0o644)})
client.create_function(FunctionName="f", Runtime="python3.12", Role=ROLE, Handler="app.handler",
                       Code={"ZipFile": code}, Layers=[arn])
out = client.invoke(FunctionName="f", Payload=json.dumps({"name": "ada"}))
assert json.loads(out["Payload"].read()) == "hello, ada"
client.delete_layer_version(LayerName="greeting", VersionNumber=1)
assert client.list_layer_versions(LayerName="greeting")["LayerVersions"] == []
print("ok")
"#,
    );
    assert_eq!(out.trim(), "ok");
    Ok(())
}

#[test]
fn boto3_publishes_versions_routes_aliases_and_sees_the_models_errors() -> anyhow::Result<()> {
    let python = require!(support::python());
    let server = Server::start(&[]);
    let out = boto3(
        &python,
        &server.endpoint,
        r#"
import botocore
code = zip_of({"app.py": (b"import os\ndef handler(event, ctx):\n    return [os.environ.get('GEN', 'one'), ctx.function_version]\n", 0o644)})
created = client.create_function(FunctionName="f", Runtime="python3.12", Role=ROLE, Handler="app.handler", Code={"ZipFile": code})
v1 = client.publish_version(FunctionName="f", CodeSha256=created["CodeSha256"])
assert v1["Version"] == "1" and v1["ResponseMetadata"]["HTTPStatusCode"] == 201, v1
assert client.publish_version(FunctionName="f")["Version"] == "1", "unchanged: the same version"
client.update_function_configuration(FunctionName="f", Environment={"Variables": {"GEN": "two"}})
assert client.publish_version(FunctionName="f")["Version"] == "2"
assert [v["Version"] for v in client.list_versions_by_function(FunctionName="f")["Versions"]] == ["$LATEST", "1", "2"]
alias = client.create_alias(FunctionName="f", Name="canary", FunctionVersion="1",
                            RoutingConfig={"AdditionalVersionWeights": {"2": 0.5}})
assert alias["RoutingConfig"] == {"AdditionalVersionWeights": {"2": 0.5}}, alias
seen = set()
for _ in range(60):
    out = client.invoke(FunctionName="f", Qualifier="canary")
    body = json.loads(out["Payload"].read())
    assert body[1] == out["ExecutedVersion"], (body, out["ExecutedVersion"])
    seen.add(out["ExecutedVersion"])
assert seen == {"1", "2"}, seen
assert client.get_function(FunctionName="f", Qualifier="2")["Configuration"]["Version"] == "2"
for call, error in [
    (lambda: client.invoke(FunctionName="f", Qualifier="nope"), "ResourceNotFoundException"),
    (lambda: client.create_alias(FunctionName="f", Name="bad", FunctionVersion="$LATEST",
                                 RoutingConfig={"AdditionalVersionWeights": {"1": 0.5}}), "InvalidParameterValueException"),
    (lambda: client.delete_function(FunctionName="f", Qualifier="2"), "InvalidParameterValueException"),
    (lambda: client.get_alias(FunctionName="f", Name="missing"), "ResourceNotFoundException"),
]:
    try:
        call()
        raise AssertionError("not refused")
    except botocore.exceptions.ClientError as e:
        assert e.response["Error"]["Code"] == error, (e.response, error)
client.delete_alias(FunctionName="f", Name="canary")
assert client.list_aliases(FunctionName="f")["Aliases"] == []
put = client.put_provisioned_concurrency_config(FunctionName="f", Qualifier="1", ProvisionedConcurrentExecutions=1)
assert put["ResponseMetadata"]["HTTPStatusCode"] == 202 and put["RequestedProvisionedConcurrentExecutions"] == 1, put
import time
for _ in range(200):
    got = client.get_provisioned_concurrency_config(FunctionName="f", Qualifier="1")
    if got["Status"] == "READY":
        break
    time.sleep(0.05)
assert got["Status"] == "READY" and got["AllocatedProvisionedConcurrentExecutions"] == 1, got
listed = client.list_provisioned_concurrency_configs(FunctionName="f")["ProvisionedConcurrencyConfigs"]
assert [c["FunctionArn"].rsplit(":", 1)[1] for c in listed] == ["1"], listed
client.delete_provisioned_concurrency_config(FunctionName="f", Qualifier="1")
try:
    client.get_provisioned_concurrency_config(FunctionName="f", Qualifier="1")
    raise AssertionError("not deleted")
except client.exceptions.ProvisionedConcurrencyConfigNotFoundException:
    pass
print("ok")
"#,
    );
    assert_eq!(out.trim(), "ok");
    Ok(())
}

#[test]
fn aws_cli_creates_invokes_with_log_tail_and_is_throttled() -> anyhow::Result<()> {
    require!(support::python());
    require!(aws_cli());
    let server = Server::start(&[]);
    let dir = tempfile::tempdir()?;
    let zip = dir.path().join("f.zip");
    let package = lambda_testkit::CodeZip::new()
        .source(
            "app.py",
            "def handler(event, ctx):\n    print('cli says', event['name'])\n    return {'hi': event['name']}\n",
        )
        .build()?;
    std::fs::write(&zip, package.zip_bytes())?;
    let zip_arg = format!("fileb://{}", zip.display());
    let e = &server.endpoint;

    let created = aws_ok(
        e,
        &[
            "create-function",
            "--function-name",
            "cli-fn",
            "--runtime",
            "python3.12",
            "--handler",
            "app.handler",
            "--role",
            "arn:aws:iam::123456789012:role/test",
            "--zip-file",
            &zip_arg,
        ],
    );
    assert_eq!(created["State"], "Active");
    assert_eq!(created["CodeSha256"], package.code_sha256());
    aws_ok(
        e,
        &["wait", "function-active-v2", "--function-name", "cli-fn"],
    );

    let out_file = dir.path().join("out.json");
    let out_path = out_file.display().to_string();
    let mut invoke = vec![
        "invoke",
        "--function-name",
        "cli-fn",
        "--payload",
        r#"{"name":"cli"}"#,
        "--log-type",
        "Tail",
    ];
    invoke.extend(raw_payload_args());
    invoke.push(&out_path);
    let result = aws_ok(e, &invoke);
    assert_eq!(result["StatusCode"], 200);
    let log = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        result["LogResult"].as_str().unwrap(),
    )?;
    let log = String::from_utf8(log)?;
    assert!(
        log.contains("cli says cli") && log.contains("REPORT RequestId:"),
        "{log}"
    );
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&std::fs::read(&out_file)?)?,
        serde_json::json!({"hi": "cli"})
    );

    let got = aws_ok(e, &["get-function", "--function-name", "cli-fn"]);
    assert_eq!(got["Configuration"]["Handler"], "app.handler");

    aws_ok(
        e,
        &[
            "put-function-concurrency",
            "--function-name",
            "cli-fn",
            "--reserved-concurrent-executions",
            "0",
        ],
    );
    let throttled = aws(e, &["invoke", "--function-name", "cli-fn", &out_path]);
    let stderr = String::from_utf8_lossy(&throttled.stderr);
    assert!(
        !throttled.status.success() && stderr.contains("TooManyRequestsException"),
        "{stderr}"
    );

    aws_ok(e, &["delete-function", "--function-name", "cli-fn"]);
    let missing = aws(e, &["get-function", "--function-name", "cli-fn"]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("ResourceNotFoundException"));
    Ok(())
}

#[test]
fn serve_removes_every_environment_on_sigterm_and_sigint() -> anyhow::Result<()> {
    let python = require!(support::python());
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let server = Server::start(&[]);
        boto3(
            &python,
            &server.endpoint,
            r#"
code = zip_of({"app.py": (b"def handler(event, ctx):\n    return 1\n", 0o644)})
for name in ["a", "b"]:
    client.create_function(FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler", Code={"ZipFile": code})
    client.invoke(FunctionName=name, Payload=b"{}")
"#,
        );
        let pids = server.environment_pids();
        assert_eq!(pids.len(), 2, "one warm environment per function");
        let (status, stderr) = server.stop(signal);
        assert!(status.success(), "exit {status:?}: {stderr}");
        assert!(
            stderr.contains("stopping 2 execution environment(s)"),
            "{stderr}"
        );
        let left: Vec<_> = pids
            .iter()
            .filter(|p| !support::process_gone(**p))
            .collect();
        assert!(
            left.is_empty(),
            "still running after serve stopped: {left:?}"
        );
    }
    Ok(())
}

#[test]
fn boto3_creates_invokes_and_streams_a_node_function_through_serve() -> anyhow::Result<()> {
    let python = require!(support::python());
    // The server inherits the variables the process backend reads to find Node.js 22 and
    // its aws-lambda-ric.
    require!(support::node(22));
    let server = Server::start(&[]);
    let out = boto3(
        &python,
        &server.endpoint,
        r#"
source = b"""
export const handler = async (event, context) => {
  console.log("hello from", event.name);
  if (event.fail) throw new RangeError("no " + event.name);
  return { hi: event.name, node: process.version, fn: context.functionName };
};

export const stream = awslambda.streamifyResponse(async (event, responseStream) => {
  responseStream = awslambda.HttpResponseStream.from(responseStream, {
    statusCode: 200, headers: { "content-type": "text/plain" } });
  for (const word of ["streamed ", "from ", "node"]) {
    responseStream.write(word);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  responseStream.end();
});
"""
code = zip_of({"index.mjs": (source, 0o644)})
created = client.create_function(FunctionName="node-greeter", Runtime="nodejs22.x", Role=ROLE,
                                 Handler="index.handler", Code={"ZipFile": code})
assert created["State"] == "Active" and created["Runtime"] == "nodejs22.x", created
client.get_waiter("function_active_v2").wait(FunctionName="node-greeter")

out = client.invoke(FunctionName="node-greeter", Payload=json.dumps({"name": "ada"}), LogType="Tail")
assert out["StatusCode"] == 200 and "FunctionError" not in out, out
body = json.loads(out["Payload"].read())
assert body["hi"] == "ada" and body["fn"] == "node-greeter", body
assert body["node"].startswith("v22."), body
log = base64.b64decode(out["LogResult"]).decode()
assert "\tINFO\thello from ada" in log and "REPORT RequestId:" in log, log

failed = client.invoke(FunctionName="node-greeter", Payload=json.dumps({"name": "bob", "fail": True}))
assert failed["FunctionError"] == "Unhandled", failed
error = json.loads(failed["Payload"].read())
assert error["errorType"] == "RangeError" and error["errorMessage"] == "no bob", error
assert any("index.mjs" in line for line in error["trace"]), error

client.create_function(FunctionName="node-streamer", Runtime="nodejs22.x", Role=ROLE,
                       Handler="index.stream", Code={"ZipFile": code})
streamed = client.invoke_with_response_stream(FunctionName="node-streamer", Payload=b"{}")
chunks, complete = [], None
for event in streamed["EventStream"]:
    if "PayloadChunk" in event:
        chunks.append(event["PayloadChunk"]["Payload"])
    elif "InvokeComplete" in event:
        complete = event["InvokeComplete"]
assert chunks[0].startswith(b'{"statusCode":200') and chunks[0].endswith(b"\0" * 8), chunks
assert b"".join(chunks[1:]) == b"streamed from node", chunks
assert len(chunks) >= 3, f"the chunks came as one: {chunks}"
assert "ErrorCode" not in complete, complete
print("ok")
"#,
    );
    assert_eq!(out.trim(), "ok");
    Ok(())
}
