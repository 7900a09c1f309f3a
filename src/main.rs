//! `lambda-testkit serve`: the emulator as a standalone Lambda endpoint for any client
//! (AWS CLI, boto3, SDKs in other languages). `lambda-testkit doctor`: what the runtimes
//! need on this machine, and with `--fix` provisioning it.
//!
//! ```text
//! lambda-testkit serve [--port <port>] [--host <address>] [--backend process|docker] [--region <region>]
//! lambda-testkit doctor [--fix] [--only <python|node|docker|RUNTIME>,...]
//! lambda-testkit help [serve|doctor]
//! ```
//!
//! Prints `lambda-testkit: Lambda API at http://127.0.0.1:<port>` on stdout once it
//! serves, and on SIGINT or SIGTERM terminates every execution environment it started
//! before exiting.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use lambda_testkit::doctor::Doctor;
use lambda_testkit::{BackendKind, Emulator};

/// What each runtime needs, printed after `serve --help`.
const RUNTIMES_HELP: &str =
    "python3.X functions run a Python 3.X with awslambdaric: LAMBDA_TESTKIT_PYTHON_3_X, else
LAMBDA_TESTKIT_PYTHON if it is 3.X, else python3.X on PATH, the venv `lambda-testkit doctor
--fix` makes, pyenv or uv interpreters (LAMBDA_TESTKIT_PYTHON_FALLBACK=nearest runs the
nearest version instead, and says so).
Node.js functions (nodejs20.x, nodejs22.x, nodejs24.x) run the real aws-lambda-ric on a
node of exactly that major: LAMBDA_TESTKIT_NODE_<major> names the node and
LAMBDA_TESTKIT_NODE_RIC_<major> its aws-lambda-ric package (scripts/setup prints both),
else a `node` of that major on PATH with aws-lambda-ric installed globally for it, else
the pair `lambda-testkit doctor --fix` provisions in ~/.cache/lambda-testkit/node.
`lambda-testkit doctor` says what each runtime would run on, or what is missing.
The docker backend needs a Docker daemon (DOCKER_HOST, else the default socket); its
containers are removed on SIGINT/SIGTERM. Default images are AWS's base images
(public.ecr.aws/lambda/python:3.12, .../nodejs:22, ...), overridable per runtime with
LAMBDA_TESTKIT_IMAGE_<RUNTIME> (e.g. LAMBDA_TESTKIT_IMAGE_NODEJS22_X), or all at once
with the local stand-ins: LAMBDA_TESTKIT_IMAGES=standin.";

/// What `doctor --help` adds.
const DOCTOR_HELP: &str =
    "Checks: python3.9 ... python3.13 (the interpreter the process backend would run, with
awslambdaric), nodejs20.x/22.x/24.x (a node of that major with aws-lambda-ric), docker (the
daemon) and the stand-in images lambda-testkit/*. One line per check, `ok` or `missing`,
and under each missing one the exact command that fixes it. Exit status 0 when everything
checked is present, 1 otherwise.
--fix makes a venv with awslambdaric per installed Python 3.X in ~/.cache/lambda-testkit/python
and fetches Node.js with aws-lambda-ric into ~/.cache/lambda-testkit/node (the process backend
finds both there without any variable), starts dockerd and builds the stand-in images with
the embedded images/build (both need root), then checks again. Progress goes to stderr.";

/// A real, isolated AWS Lambda for tests: the Lambda REST API over real runtimes.
#[derive(Debug, Parser)]
#[command(name = "lambda-testkit", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, PartialEq, Subcommand)]
enum Command {
    /// Serve the Lambda REST API (on 127.0.0.1 unless --host) for the AWS CLI, boto3 and the SDKs.
    #[command(after_help = RUNTIMES_HELP)]
    Serve(Serve),
    /// Check what the runtimes need on this machine; --fix provisions what is missing.
    #[command(after_help = DOCTOR_HELP)]
    Doctor(DoctorArgs),
}

#[derive(Debug, PartialEq, clap::Args)]
struct DoctorArgs {
    /// Provision what is missing, then check again.
    #[arg(long)]
    fix: bool,
    /// Check only these: python, node, docker, or runtimes (python3.12, nodejs22.x).
    #[arg(long, value_delimiter = ',', value_name = "WHAT")]
    only: Vec<String>,
}

#[derive(Debug, PartialEq, clap::Args)]
struct Serve {
    /// Port for the Lambda API (0 picks a free one).
    #[arg(long, default_value_t = 9001)]
    port: u16,
    /// Address to listen on. Only inside a container give another one (`0.0.0.0`, the
    /// container's own addresses, for a port mapping): the API is unauthenticated.
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// Where execution environments run.
    #[arg(long, value_enum, default_value_t = Backend::Process)]
    backend: Backend,
    /// Region in ARNs and AWS_REGION [default: us-east-1].
    #[arg(long)]
    region: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, ValueEnum)]
enum Backend {
    /// Each execution environment is a local child process.
    Process,
    /// Each execution environment is a Docker container.
    Docker,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve(serve) => run(serve),
        Command::Doctor(args) => doctor(args),
    }
}

fn doctor(args: DoctorArgs) -> ExitCode {
    let program = std::env::args()
        .next()
        .unwrap_or_else(|| "lambda-testkit".into());
    let mut doctor = Doctor::new().fix(args.fix).program(program);
    for what in &args.only {
        doctor = match doctor.only(what) {
            Ok(doctor) => doctor,
            Err(e) => {
                eprintln!("lambda-testkit doctor: {e}");
                return ExitCode::from(2);
            }
        };
    }
    if doctor.run() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn run(serve: Serve) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("lambda-testkit: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let backend = match serve.backend {
            Backend::Process => BackendKind::Process,
            Backend::Docker => BackendKind::Docker,
        };
        let mut builder = Emulator::builder()
            .api_host(serve.host)
            .api_port(serve.port)
            .backend(backend);
        if let Some(region) = serve.region {
            builder = builder.region(region);
        }
        let emulator = match builder.start().await {
            Ok(emulator) => emulator,
            Err(e) => {
                eprintln!("lambda-testkit: {e}");
                return ExitCode::FAILURE;
            }
        };
        println!("lambda-testkit: Lambda API at {}", emulator.endpoint_url());
        let _ = std::io::stdout().flush();
        let signal = match stop_signal().await {
            Ok(signal) => signal,
            Err(e) => {
                eprintln!("lambda-testkit: cannot wait for signals: {e}");
                "error"
            }
        };
        let pids = emulator.environment_pids();
        eprintln!(
            "lambda-testkit: {signal}: stopping {} execution environment(s)",
            pids.len()
        );
        emulator.shutdown().await;
        let left = wait_gone(&pids).await;
        if left.is_empty() {
            eprintln!("lambda-testkit: stopped");
            ExitCode::SUCCESS
        } else {
            eprintln!("lambda-testkit: processes still running after shutdown: {left:?}");
            ExitCode::FAILURE
        }
    })
}

async fn stop_signal() -> std::io::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(tokio::select! {
        _ = interrupt.recv() => "SIGINT",
        _ = terminate.recv() => "SIGTERM",
    })
}

/// Waits (up to 5 s) for the terminated environments' processes to be gone.
async fn wait_gone(pids: &[u32]) -> Vec<u32> {
    let alive = |pid: &u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.rsplit_once(") ")
                .is_some_and(|(_, rest)| !rest.starts_with(['Z', 'X']))
        })
    };
    for _ in 0..500 {
        if !pids.iter().any(alive) {
            return Vec::new();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    pids.iter().copied().filter(alive).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Command, String> {
        Cli::try_parse_from(std::iter::once("lambda-testkit").chain(line.split_whitespace()))
            .map(|cli| cli.command)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn serve_parses_port_backend_and_region() {
        assert_eq!(
            parse("serve --port 0 --backend docker --region eu-west-1").unwrap(),
            Command::Serve(Serve {
                port: 0,
                host: [127, 0, 0, 1].into(),
                backend: Backend::Docker,
                region: Some("eu-west-1".into())
            })
        );
        assert_eq!(
            parse("serve").unwrap(),
            Command::Serve(Serve {
                port: 9001,
                host: [127, 0, 0, 1].into(),
                backend: Backend::Process,
                region: None
            })
        );
    }

    #[test]
    fn doctor_parses_fix_and_only() {
        assert_eq!(
            parse("doctor --fix --only python3.12,node --only docker").unwrap(),
            Command::Doctor(DoctorArgs {
                fix: true,
                only: vec!["python3.12".into(), "node".into(), "docker".into()]
            })
        );
        let help = parse("doctor --help").unwrap_err();
        assert!(help.contains("--fix"), "{help}");
        assert!(help.contains("exact command that fixes it"), "{help}");
    }

    #[test]
    fn bad_arguments_say_what_is_wrong() {
        let backend = parse("serve --backend lxc").unwrap_err();
        assert!(backend.contains("invalid value 'lxc'"), "{backend}");
        assert!(backend.contains("process, docker"), "{backend}");
        assert!(parse("serve --port").unwrap_err().contains("--port"));
        assert!(
            parse("serve --port http")
                .unwrap_err()
                .contains("invalid value 'http'")
        );
        assert!(
            parse("deploy")
                .unwrap_err()
                .contains("unrecognized subcommand 'deploy'")
        );
    }

    #[test]
    fn help_names_what_each_runtime_needs() {
        let help = parse("serve --help").unwrap_err();
        for needle in [
            "--port <PORT>",
            "[default: 9001]",
            "LAMBDA_TESTKIT_PYTHON",
            "nodejs20.x, nodejs22.x, nodejs24.x",
            "LAMBDA_TESTKIT_NODE_<major>",
            "LAMBDA_TESTKIT_NODE_RIC_<major>",
            "LAMBDA_TESTKIT_IMAGE_NODEJS22_X",
            "LAMBDA_TESTKIT_IMAGES=standin",
        ] {
            assert!(help.contains(needle), "help lacks {needle:?}:\n{help}");
        }
        #[cfg(feature = "docker")]
        assert_eq!(
            lambda_testkit::docker::image_env_var(lambda_testkit::Runtime::Nodejs22),
            "LAMBDA_TESTKIT_IMAGE_NODEJS22_X"
        );
    }
}
