//! The REST front door of an [`Emulator`] (feature `api`): its endpoint URL and a ready
//! aws-sdk-lambda client.

use std::sync::{Arc, OnceLock};

use super::Emulator;
use crate::api::ApiServer;
use crate::service::{Core, ListenerStarter};

/// The REST listener of `core`, started on 127.0.0.1 (any free port) at the first call.
fn listen<'a>(
    api: &'a OnceLock<ApiServer>,
    core: &Arc<Core>,
    runtime: &tokio::runtime::Handle,
) -> &'a ApiServer {
    api.get_or_init(|| {
        let _entered = runtime.enter();
        ApiServer::start(Arc::downgrade(core), ([127, 0, 0, 1], 0).into())
            .expect("could not bind the Lambda API listener on 127.0.0.1")
    })
}

/// What the core calls before deploying a durable function: starts the listener while
/// the emulator is alive (weak references: the emulator owns both).
pub(super) fn listener_starter(
    api: &Arc<OnceLock<ApiServer>>,
    core: &Arc<Core>,
    runtime: tokio::runtime::Handle,
) -> ListenerStarter {
    let (api, core) = (Arc::downgrade(api), Arc::downgrade(core));
    Box::new(move || {
        if let (Some(api), Some(core)) = (api.upgrade(), core.upgrade()) {
            listen(&api, &core, &runtime);
        }
    })
}

impl Emulator {
    /// The Lambda REST API endpoint, `http://127.0.0.1:<port>`: point aws-sdk-lambda,
    /// boto3 or the AWS CLI at it (`--endpoint-url`) with any credentials and region.
    /// It serves the same functions, layers and environments as this Rust API.
    ///
    /// The listener starts at the first call (unless [`crate::EmulatorBuilder::api_port`] fixed a
    /// port, which binds at start).
    ///
    /// # Panics
    /// If no port on 127.0.0.1 can be bound (e.g. the process is out of file descriptors).
    pub fn endpoint_url(&self) -> &str {
        listen(&self.api, &self.core, &self.runtime).url()
    }

    /// An `aws_sdk_lambda` client configuration for [`Emulator::endpoint_url`]: dummy
    /// credentials, the emulator's region, plain HTTP. Adjust it (e.g. retries) and build.
    ///
    /// ```no_run
    /// # async fn demo(emu: &lambda_testkit::Emulator) {
    /// use lambda_testkit::aws_sdk_lambda::config::retry::RetryConfig;
    /// let conf = emu.lambda_config().retry_config(RetryConfig::disabled()).build();
    /// let client = lambda_testkit::aws_sdk_lambda::Client::from_conf(conf);
    /// # }
    /// ```
    #[cfg(feature = "sdk")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sdk")))]
    pub fn lambda_config(&self) -> aws_sdk_lambda::config::Builder {
        use aws_sdk_lambda::config::{BehaviorVersion, Credentials, Region};
        aws_sdk_lambda::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(self.core.registry.region().to_string()))
            .credentials_provider(Credentials::new(
                "lambda-testkit",
                "lambda-testkit",
                None,
                None,
                "lambda-testkit",
            ))
            .endpoint_url(self.endpoint_url())
            // The endpoint is plain HTTP on loopback: no TLS stack needed.
            .http_client(aws_smithy_http_client::Builder::new().build_http())
    }

    /// A ready `aws_sdk_lambda::Client` for this emulator (feature `sdk`).
    ///
    /// ```no_run
    /// # async fn demo(emu: &lambda_testkit::Emulator) -> anyhow::Result<()> {
    /// let client = emu.lambda_client();
    /// let functions = client.list_functions().send().await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "sdk")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sdk")))]
    pub fn lambda_client(&self) -> aws_sdk_lambda::Client {
        aws_sdk_lambda::Client::from_conf(self.lambda_config().build())
    }
}
