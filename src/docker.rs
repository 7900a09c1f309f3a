//! Docker backend settings and the labels every container carries.
//!
//! Choose the backend with [`crate::EmulatorBuilder::docker`] (or
//! `LAMBDA_TESTKIT_BACKEND=docker`). Each execution environment is then one container of
//! the runtime's image, removed when the emulator is dropped; containers of test processes
//! that died without cleaning up are removed by the next emulator that starts.
//!
//! Images per runtime, first match wins: [`crate::EmulatorBuilder::image`], the variable
//! [`image_env_var`]`(runtime)` (e.g. `LAMBDA_TESTKIT_IMAGE_PYTHON3_12`), AWS's public
//! base image [`default_image`]`(runtime)` (pulled when missing).
//!
//! Networking: the host's network on Linux, Docker's default bridge elsewhere
//! ([`DockerNetwork`], [`crate::EmulatorBuilder::docker_network`]), or a user-defined
//! network the test made ([`crate::EmulatorBuilder::network`]), where functions reach the
//! test's other containers by name and alias, and those reach the functions by theirs.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use lambda_testkit::{Emulator, Function, Runtime};
//! let emu = Emulator::builder()
//!     .docker()
//!     .docker_label("ci-job", "1234")
//!     .start()
//!     .await?;
//! let f = emu
//!     .deploy(
//!         Function::new("greeter", Runtime::Python312)
//!             .handler("app.handler")
//!             .source("app.py", "def handler(event, ctx):\n    return 'hi'\n"),
//!     )
//!     .await?;
//! assert_eq!(f.invoke_json::<_, String>(&()).await?, "hi");
//! # Ok(()) }
//! ```

pub use crate::backend::docker::{
    DockerNetwork, LABEL_DEPLOY_ID, LABEL_ENVIRONMENT, LABEL_FUNCTION, LABEL_OWNER_HOST,
    LABEL_OWNER_PID, LABEL_OWNER_START, LABEL_SESSION, default_image, standin_image,
};
pub use crate::config::{IMAGE_ENV_PREFIX, IMAGES_ENV, image_env_var};
