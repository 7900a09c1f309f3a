//! `lambda-testkit serve`: the emulator as a standalone Lambda endpoint for any client
//! (AWS CLI, boto3, SDKs in other languages).
//!
//! ```text
//! lambda-testkit serve [--port <port>] [--backend process|docker] [--region <region>]
//! ```
//!
//! Prints `lambda-testkit: Lambda API at http://127.0.0.1:<port>` on stdout once it
//! serves, and on SIGINT or SIGTERM terminates every execution environment it started
//! before exiting.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use lambda_testkit::{BackendKind, Emulator};

const USAGE: &str =
    "usage: lambda-testkit serve [--port <port>] [--backend process|docker] [--region <region>]

  --port <port>       port on 127.0.0.1 for the Lambda API (default 9001; 0 picks a free one)
  --backend <name>    where execution environments run: process (default) or docker
  --region <region>   region in ARNs and AWS_REGION (default us-east-1)

Python functions need a python3 with awslambdaric (LAMBDA_TESTKIT_PYTHON, else python3).
Node.js functions (nodejs20.x, nodejs22.x, nodejs24.x) run the real aws-lambda-ric on a
node of exactly that major: LAMBDA_TESTKIT_NODE_<major> names the node and
LAMBDA_TESTKIT_NODE_RIC_<major> its aws-lambda-ric package (scripts/setup prints both),
else a `node` of that major on PATH with aws-lambda-ric installed globally for it.
The docker backend needs a Docker daemon (DOCKER_HOST, else the default socket); its
containers are removed on SIGINT/SIGTERM. Default images are AWS's base images
(public.ecr.aws/lambda/python:3.12, .../nodejs:22, ...), overridable per runtime with
LAMBDA_TESTKIT_IMAGE_<RUNTIME> (e.g. LAMBDA_TESTKIT_IMAGE_NODEJS22_X).";

#[derive(Debug, PartialEq)]
struct Serve {
    port: u16,
    backend: Backend,
    region: Option<String>,
}

#[derive(Debug, PartialEq)]
enum Backend {
    Process,
    Docker,
}

#[derive(Debug, PartialEq)]
enum Command {
    Serve(Serve),
    Help,
}

fn parse(args: &[String]) -> Result<Command, String> {
    let mut args = args.iter();
    match args.next().map(String::as_str) {
        Some("serve") => {}
        Some("-h" | "--help" | "help") | None => return Ok(Command::Help),
        Some(other) => return Err(format!("unknown command `{other}`")),
    }
    let mut serve = Serve {
        port: 9001,
        backend: Backend::Process,
        region: None,
    };
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match arg.as_str() {
            "--port" => {
                let port = value("--port")?;
                serve.port = port.parse().map_err(|_| format!("invalid port `{port}`"))?;
            }
            "--backend" => {
                serve.backend = match value("--backend")?.as_str() {
                    "process" => Backend::Process,
                    "docker" => Backend::Docker,
                    other => return Err(format!("unknown backend `{other}` (process or docker)")),
                }
            }
            "--region" => serve.region = Some(value("--region")?),
            "-h" | "--help" => return Ok(Command::Help),
            other => return Err(format!("unknown option `{other}`")),
        }
    }
    Ok(Command::Serve(serve))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse(&args) {
        Ok(Command::Help) => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Ok(Command::Serve(serve)) => run(serve),
        Err(message) => {
            eprintln!("lambda-testkit: {message}\n\n{USAGE}");
            ExitCode::from(2)
        }
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
        let mut builder = Emulator::builder().api_port(serve.port).backend(backend);
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

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn serve_parses_port_backend_and_region() {
        let parsed = parse(&args("serve --port 0 --backend docker --region eu-west-1")).unwrap();
        assert_eq!(
            parsed,
            Command::Serve(Serve {
                port: 0,
                backend: Backend::Docker,
                region: Some("eu-west-1".into())
            })
        );
        assert_eq!(
            parse(&args("serve")).unwrap(),
            Command::Serve(Serve {
                port: 9001,
                backend: Backend::Process,
                region: None
            })
        );
    }

    #[test]
    fn help_names_what_each_runtime_needs() {
        for needle in [
            "LAMBDA_TESTKIT_PYTHON",
            "nodejs20.x, nodejs22.x, nodejs24.x",
            "LAMBDA_TESTKIT_NODE_<major>",
            "LAMBDA_TESTKIT_NODE_RIC_<major>",
            "LAMBDA_TESTKIT_IMAGE_NODEJS22_X",
        ] {
            assert!(USAGE.contains(needle), "help lacks {needle:?}:\n{USAGE}");
        }
        #[cfg(feature = "docker")]
        assert_eq!(
            lambda_testkit::docker::image_env_var(lambda_testkit::Runtime::Nodejs22),
            "LAMBDA_TESTKIT_IMAGE_NODEJS22_X"
        );
    }

    #[test]
    fn bad_arguments_say_what_is_wrong() {
        assert!(
            parse(&args("serve --backend lxc"))
                .unwrap_err()
                .contains("unknown backend `lxc`")
        );
        assert!(
            parse(&args("serve --port"))
                .unwrap_err()
                .contains("--port needs a value")
        );
        assert!(
            parse(&args("serve --port http"))
                .unwrap_err()
                .contains("invalid port")
        );
        assert!(
            parse(&args("deploy"))
                .unwrap_err()
                .contains("unknown command")
        );
    }
}
