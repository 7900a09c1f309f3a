//! The emulator itself as a testcontainers module (feature `testcontainers`): the
//! `lambda-testkit serve` container, started like testcontainers' LocalStack module, for
//! tests that want the Lambda REST API in a container of its own (any testcontainers
//! language can start the same image).
//!
//! The image [`IMAGE_NAME`]`:`[`IMAGE_TAG`] is built locally from this crate by
//! `scripts/serve-image` in a checkout (no registry holds it): the stand-in
//! `lambda-testkit/python:3.11` root filesystem (Debian bookworm, CPython 3.11 with the
//! real `awslambdaric`) plus the `lambda-testkit` binary, running `serve` with the
//! process backend inside the container. It runs `provided.al2023` / `provided.al2`
//! functions (e.g. Rust `lambda_runtime` binaries linked against glibc ≤ 2.36) and
//! `python3.11` functions.
//!
//! The API listens on port [`PORT`] on every address of the container's own network
//! (`serve --host 0.0.0.0`: the container's namespace only, which the port mapping needs);
//! the container is ready when serve prints [`READY_LINE`] *and* a `ListFunctions` through
//! the mapped port on the Docker host answers 200 (right after a container starts, a
//! connection through the port mapping can fail for a moment: `No route to host`, or a
//! reset by docker-proxy). [`endpoint_url`] is that mapped address.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use lambda_testkit::testcontainers::{LambdaTestkit, endpoint_url};
//! use testcontainers::runners::AsyncRunner;
//! let lambda = LambdaTestkit::default().with_region("eu-west-1").start().await?;
//! let url = endpoint_url(&lambda).await?; // http://127.0.0.1:<mapped port>
//! // aws --endpoint-url $url lambda list-functions, aws-sdk-lambda, boto3, reqwest ...
//! # Ok(()) }
//! ```

use std::borrow::Cow;
use std::time::Duration;

use ::testcontainers::core::wait::HttpWaitStrategy;
use ::testcontainers::core::{ContainerPort, WaitFor};
use ::testcontainers::{ContainerAsync, Image, TestcontainersError};

/// The image's repository, as `scripts/serve-image` tags it.
pub const IMAGE_NAME: &str = "lambda-testkit/serve";
/// The image's default tag: this crate's version (`scripts/serve-image` tags its build
/// with it, and with one naming its inputs' hash).
pub const IMAGE_TAG: &str = env!("CARGO_PKG_VERSION");
/// The port of the Lambda REST API inside the container.
pub const PORT: ContainerPort = ContainerPort::Tcp(9001);
/// What `serve` prints on stdout once it serves (followed by `<address>:<port>`).
pub const READY_LINE: &str = "lambda-testkit: Lambda API at http://";

/// The `lambda-testkit serve` container: a [`testcontainers::Image`] with the ready
/// condition, exposed port and command `serve` needs; the tag and anything else through
/// [`testcontainers::ImageExt`] (`with_tag`, `with_env_var`, `with_network`, ...).
#[derive(Debug, Clone)]
pub struct LambdaTestkit {
    cmd: Vec<String>,
}

impl Default for LambdaTestkit {
    /// `serve --host 0.0.0.0 --port 9001` on the process backend, region `us-east-1`.
    fn default() -> Self {
        let port = PORT.as_u16().to_string();
        LambdaTestkit {
            cmd: ["serve", "--host", "0.0.0.0", "--port", &port]
                .map(String::from)
                .to_vec(),
        }
    }
}

impl LambdaTestkit {
    /// The region in ARNs and `AWS_REGION` (serve's `--region`; default `us-east-1`).
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.cmd.push("--region".to_string());
        self.cmd.push(region.into());
        self
    }
}

impl Image for LambdaTestkit {
    fn name(&self) -> &str {
        IMAGE_NAME
    }

    fn tag(&self) -> &str {
        IMAGE_TAG
    }

    fn ready_conditions(&self) -> Vec<WaitFor> {
        // serve's line first (it listens), then the test's own way in: the port mapping,
        // polled every 20 ms until it answers (within testcontainers' startup timeout).
        let api = HttpWaitStrategy::new("/2015-03-31/functions")
            .with_port(PORT)
            .with_poll_interval(Duration::from_millis(20))
            .with_expected_status_code(200u16);
        vec![WaitFor::message_on_stdout(READY_LINE), WaitFor::http(api)]
    }

    fn cmd(&self) -> impl IntoIterator<Item = impl Into<Cow<'_, str>>> {
        self.cmd.iter().map(String::as_str)
    }

    fn expose_ports(&self) -> &[ContainerPort] {
        std::slice::from_ref(&PORT)
    }
}

/// The Lambda REST API of a started [`LambdaTestkit`] as the test reaches it:
/// `http://<Docker host>:<host port mapped to PORT>`. Errors are testcontainers' (no
/// such mapping, the daemon's answer).
pub async fn endpoint_url(
    container: &ContainerAsync<LambdaTestkit>,
) -> Result<String, TestcontainersError> {
    let host = container.get_host().await?;
    let port = container.get_host_port_ipv4(PORT).await?;
    Ok(format!("http://{host}:{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_serves_on_every_container_address_at_port_9001() {
        let image = LambdaTestkit::default().with_region("eu-west-1");
        let cmd: Vec<String> = image
            .cmd()
            .into_iter()
            .map(|c| c.into().into_owned())
            .collect();
        assert_eq!(
            cmd,
            [
                "serve",
                "--host",
                "0.0.0.0",
                "--port",
                "9001",
                "--region",
                "eu-west-1"
            ]
        );
        assert_eq!(image.expose_ports(), &[ContainerPort::Tcp(9001)]);
        assert_eq!(image.name(), "lambda-testkit/serve");
        let ready = image.ready_conditions();
        assert!(
            matches!(ready.as_slice(), [WaitFor::Log(_), WaitFor::Http(_)]),
            "{ready:?}"
        );
    }
}
