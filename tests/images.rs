//! Functions packaged as container images (`PackageType: Image`): deployed through the
//! Rust API and the REST API on the Docker backend, refused clearly on the process
//! backend, and `serve --backend docker` running one.
//!
//! The image is built locally without a registry: the stand-in `provided:al2023` image
//! with the Rust `echo` fixture as `/var/runtime/bootstrap`, committed as
//! `lambda-testkit-test/echo-image:<hash>` (reused by tag).
//!
//! Skipped without a Docker daemon, the stand-in images or the fixtures; failed instead
//! with `LAMBDA_TESTKIT_REQUIRE_ALL=1`.

mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{ContainerConfig, ContainerCreateBody};
use bollard::query_parameters::{
    CommitContainerOptionsBuilder, ListContainersOptionsBuilder, UploadToContainerOptionsBuilder,
};
use lambda_testkit::docker::{LABEL_FUNCTION, LABEL_OWNER_PID};
use lambda_testkit::error::BackendError;
use lambda_testkit::function::ImageConfig;
use lambda_testkit::{BackendKind, DeployError, Emulator, Function, Layer};
use serde_json::Value;
use sha2::{Digest, Sha256};

const IMAGE_REPO: &str = "lambda-testkit-test/echo-image";

/// The echo image, built once per fixture binary: a container of the stand-in provided
/// image with the fixture uploaded as `/var/runtime/bootstrap`, committed with
/// `CMD ["echo.handler"]`.
async fn echo_image(docker: &Docker) -> Result<String, String> {
    let binary = support::rust_fixture("echo")?;
    let hash = format!("{:x}", Sha256::digest(&binary));
    let image = format!("{IMAGE_REPO}:{}", &hash[..16]);
    if docker.inspect_image(&image).await.is_ok() {
        return Ok(image);
    }
    let fail = |what: &str, e: bollard::errors::Error| format!("building {image}: {what}: {e}");
    let body = ContainerCreateBody {
        image: Some(support::PROVIDED_IMAGE.to_string()),
        cmd: Some(vec!["echo.handler".to_string()]),
        labels: Some(HashMap::from([(
            support::TEST_RUN_LABEL.to_string(),
            support::test_run(),
        )])),
        ..Default::default()
    };
    let id = docker
        .create_container(
            None::<bollard::query_parameters::CreateContainerOptions>,
            body,
        )
        .await
        .map_err(|e| fail("create", e))?
        .id;
    let built = async {
        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(binary.len() as u64);
        header.set_mode(0o755);
        tar.append_data(&mut header, "var/runtime/bootstrap", binary.as_slice())
            .map_err(|e| e.to_string())?;
        let tar = tar.into_inner().map_err(|e| e.to_string())?;
        let options = UploadToContainerOptionsBuilder::default().path("/").build();
        docker
            .upload_to_container(&id, Some(options), bollard::body_full(tar.into()))
            .await
            .map_err(|e| fail("upload", e))?;
        let options = CommitContainerOptionsBuilder::default()
            .container(&id)
            .repo(IMAGE_REPO)
            .tag(&hash[..16])
            .build();
        let config = ContainerConfig {
            cmd: Some(vec!["echo.handler".to_string()]),
            ..Default::default()
        };
        docker
            .commit_container(options, config)
            .await
            .map_err(|e| fail("commit", e))?;
        Ok::<_, String>(())
    }
    .await;
    let _ = docker
        .remove_container(
            &id,
            None::<bollard::query_parameters::RemoveContainerOptions>,
        )
        .await;
    built.map(|()| image)
}

/// Docker, the stand-in images and the echo image (skip reason otherwise).
async fn image_ready() -> Result<(Docker, String), String> {
    support::docker_ready()?;
    let docker = support::docker_client().await?;
    let image = echo_image(&docker).await?;
    Ok((docker, image))
}

#[tokio::test]
async fn an_image_function_runs_its_images_entrypoint_and_cmd_on_docker() -> anyhow::Result<()> {
    let (_docker, image) = require!(image_ready().await);
    let emu = require!(support::emulator(BackendKind::Docker).await);
    let f = emu
        .deploy(Function::image("echo-image", &image).env("GREETING", "hi"))
        .await?;
    let config = f.config().expect("deployed");
    assert_eq!(config.image_uri.as_deref(), Some(image.as_str()));
    assert!(
        config
            .resolved_image_uri
            .as_deref()
            .is_some_and(|r| r.starts_with(&format!("{IMAGE_REPO}@sha256:"))),
        "{config:?}"
    );
    assert_eq!(config.code_size(), 0, "an image's CodeSize is 0");

    let out = f.invoke(r#"{"hello": "image"}"#).await?;
    assert_eq!(out.function_error, None, "{}", out.log);
    let body: Value = serde_json::from_slice(&out.payload)?;
    assert_eq!(body["hello"], "image", "{body}");
    Ok(())
}

#[tokio::test]
async fn image_config_command_replaces_the_images_cmd() -> anyhow::Result<()> {
    let (docker, image) = require!(image_ready().await);
    let emu = require!(support::emulator(BackendKind::Docker).await);
    let f = emu
        .deploy(
            Function::image("echo-cmd", &image).image_config(ImageConfig {
                command: Some(vec!["custom.handler".to_string()]),
                working_directory: Some("/tmp".to_string()),
                ..ImageConfig::default()
            }),
        )
        .await?;
    let out = f.invoke("{}").await?;
    assert_eq!(out.function_error, None, "{}", out.log);

    let filters = HashMap::from([("label", vec![format!("{LABEL_FUNCTION}=echo-cmd")])]);
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    let found = docker.list_containers(Some(options)).await?;
    let container = found
        .iter()
        .find(|c| c.image.as_deref() == Some(image.as_str()))
        .expect("the function's container runs its image");
    let inspect = docker
        .inspect_container(
            container.id.as_deref().unwrap(),
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await?;
    let config = inspect.config.unwrap();
    assert_eq!(config.cmd, Some(vec!["custom.handler".to_string()]));
    assert_eq!(config.working_dir.as_deref(), Some("/tmp"));
    Ok(())
}

#[tokio::test]
async fn image_functions_refuse_layers_like_lambda() -> anyhow::Result<()> {
    let (_docker, image) = require!(image_ready().await);
    let emu = require!(support::emulator(BackendKind::Docker).await);
    let err = emu
        .deploy(Function::image("layered", &image).layer(Layer::new("extra")))
        .await
        .unwrap_err();
    assert!(matches!(err, DeployError::LayersOnImage { .. }), "{err}");
    Ok(())
}

#[tokio::test]
async fn a_missing_function_image_is_a_clear_deploy_error() -> anyhow::Result<()> {
    require!(support::docker_ready());
    let emu = require!(support::emulator(BackendKind::Docker).await);
    let err = emu
        .deploy(Function::image(
            "ghost",
            "127.0.0.1:1/lambda-testkit-test/does-not-exist:1",
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            DeployError::Backend(BackendError::FunctionImageUnavailable { .. })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("does-not-exist"), "{err}");
    Ok(())
}

#[tokio::test]
async fn the_process_backend_refuses_image_functions_at_deploy() -> anyhow::Result<()> {
    let emu = Emulator::builder()
        .backend(BackendKind::Process)
        .start()
        .await?;
    let err = emu
        .deploy(Function::image("img", "repo/img:tag"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            DeployError::Backend(BackendError::ImagesUnsupported { .. })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("Docker backend"), "{err}");
    assert!(emu.function("img").is_none(), "nothing was deployed");
    Ok(())
}

#[cfg(feature = "sdk")]
mod sdk {
    use aws_sdk_lambda::types::{FunctionCode, ImageConfig, PackageType};
    use aws_smithy_types::Blob;

    use super::*;

    #[tokio::test]
    async fn create_function_with_an_image_uri_then_invoke_and_get_it() -> anyhow::Result<()> {
        let (_docker, image) = require!(image_ready().await);
        let emu = require!(support::emulator(BackendKind::Docker).await);
        let client = emu.lambda_client();
        let created = client
            .create_function()
            .function_name("sdk-image")
            .role("arn:aws:iam::123456789012:role/test")
            .package_type(PackageType::Image)
            .code(FunctionCode::builder().image_uri(&image).build())
            .send()
            .await?;
        assert_eq!(created.package_type(), Some(&PackageType::Image));
        assert_eq!(created.runtime(), None, "image functions have no Runtime");
        assert_eq!(created.handler(), None, "image functions have no Handler");

        let out = client
            .invoke()
            .function_name("sdk-image")
            .payload(Blob::new(r#"{"via":"sdk"}"#))
            .send()
            .await?;
        assert_eq!(out.function_error(), None);
        let body: Value = serde_json::from_slice(out.payload().unwrap().as_ref())?;
        assert_eq!(body["via"], "sdk", "{body}");

        let got = client
            .get_function()
            .function_name("sdk-image")
            .send()
            .await?;
        let code = got.code().unwrap();
        assert_eq!(code.repository_type(), Some("ECR"));
        assert_eq!(code.image_uri(), Some(image.as_str()));
        assert!(
            code.resolved_image_uri()
                .is_some_and(|r| r.starts_with(&format!("{IMAGE_REPO}@sha256:"))),
            "{code:?}"
        );
        let config = got.configuration().unwrap();
        assert_eq!(config.package_type(), Some(&PackageType::Image));
        assert_eq!(config.runtime(), None);

        // New image config and the same image again: still runs, and is reported.
        let updated = client
            .update_function_configuration()
            .function_name("sdk-image")
            .image_config(ImageConfig::builder().command("other.handler").build())
            .send()
            .await?;
        let reported = updated
            .image_config_response()
            .and_then(|r| r.image_config());
        assert_eq!(
            reported.map(|c| c.command()),
            Some(&["other.handler".to_string()][..])
        );
        let updated = client
            .update_function_code()
            .function_name("sdk-image")
            .image_uri(&image)
            .send()
            .await?;
        assert_eq!(updated.package_type(), Some(&PackageType::Image));
        let out = client
            .invoke()
            .function_name("sdk-image")
            .payload(Blob::new("{}"))
            .send()
            .await?;
        assert_eq!(out.function_error(), None);

        // A zip for an image function is refused, as Lambda refuses it.
        let err = client
            .update_function_code()
            .function_name("sdk-image")
            .zip_file(Blob::new(vec![0u8; 22]))
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            err.into_service_error().meta().code(),
            Some("InvalidParameterValueException")
        );
        Ok(())
    }

    #[tokio::test]
    async fn create_function_with_an_image_uri_on_the_process_backend_is_invalid()
    -> anyhow::Result<()> {
        let emu = Emulator::builder()
            .backend(BackendKind::Process)
            .start()
            .await?;
        let err = emu
            .lambda_client()
            .create_function()
            .function_name("img")
            .role("arn:aws:iam::123456789012:role/test")
            .package_type(PackageType::Image)
            .code(FunctionCode::builder().image_uri("repo/img:tag").build())
            .send()
            .await
            .unwrap_err()
            .into_service_error();
        assert!(err.is_invalid_parameter_value_exception(), "{err:?}");
        assert!(
            err.meta()
                .message()
                .is_some_and(|m| m.contains("Docker backend")),
            "{err:?}"
        );
        Ok(())
    }
}

/// `serve --backend docker` runs an image function for boto3, and on SIGTERM removes
/// every container it started.
#[test]
fn serve_with_the_docker_backend_runs_an_image_function_and_cleans_up() -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    let (docker, image) = require!(rt.block_on(image_ready()));
    let python = require!(support::python());
    let mut child = Command::new(env!("CARGO_BIN_EXE_lambda-testkit"))
        .args(["serve", "--port", "0", "--backend", "docker"])
        .env(
            "LAMBDA_TESTKIT_IMAGE_PROVIDED_AL2023",
            support::PROVIDED_IMAGE,
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let pid = child.id();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line)?;
    let endpoint = line.trim().rsplit(' ').next().unwrap_or("").to_string();
    let guard = scopeguard(pid);
    assert!(endpoint.starts_with("http://127.0.0.1:"), "{line}");

    let script = r#"
import json, os, boto3
from botocore.config import Config
c = boto3.client("lambda", endpoint_url=os.environ["LAMBDA_ENDPOINT"], region_name="us-east-1",
                 config=Config(read_timeout=60, retries={"total_max_attempts": 1}))
c.create_function(FunctionName="served", Role="arn:aws:iam::123456789012:role/test",
                  PackageType="Image", Code={"ImageUri": os.environ["IMAGE"]})
out = c.invoke(FunctionName="served", Payload=json.dumps({"from": "boto3"}))
assert "FunctionError" not in out, out
print(json.loads(out["Payload"].read())["from"])
print(c.get_function(FunctionName="served")["Configuration"]["PackageType"])
"#;
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .env("LAMBDA_ENDPOINT", &endpoint)
        .env("IMAGE", &image)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()?;
    assert!(
        out.status.success(),
        "boto3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "boto3\nImage\n");

    let owned = |docker: Docker| async move {
        let filters = HashMap::from([("label", vec![format!("{LABEL_OWNER_PID}={pid}")])]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        docker.list_containers(Some(options)).await.map(|l| l.len())
    };
    assert!(
        rt.block_on(owned(docker.clone()))? >= 1,
        "the function runs in a container of the server"
    );

    // SAFETY: signals our own child.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "serve did not stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    std::mem::forget(guard);
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr)?;
    assert!(status.success(), "{status}: {stderr}");
    assert_eq!(
        rt.block_on(owned(docker))?,
        0,
        "no container of the server is left: {stderr}"
    );
    Ok(())
}

/// Kills the server if the test fails before it stops it.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // SAFETY: signals our own child.
        unsafe { libc::kill(self.0 as libc::pid_t, libc::SIGTERM) };
    }
}

fn scopeguard(pid: u32) -> KillOnDrop {
    KillOnDrop(pid)
}
