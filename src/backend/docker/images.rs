//! Runtime images: present, or pulled with progress logged; what their entrypoint is and
//! whether they have a shell for the output fence.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{ContainerArchiveInfoOptionsBuilder, CreateImageOptionsBuilder};
use futures::StreamExt;

use crate::config::image_env_var;
use crate::deploy::Runtime;
use crate::error::BackendError;

/// What a container of this image needs.
#[derive(Debug)]
pub(crate) struct ImageInfo {
    /// The reference as configured, e.g. `public.ecr.aws/lambda/python:3.12`.
    pub(crate) name: String,
    /// The image's entrypoint (`/lambda-entrypoint.sh` for AWS base images).
    pub(crate) entrypoint: Vec<String>,
    /// The image's `CMD`.
    pub(crate) cmd: Vec<String>,
    /// The image id, `sha256:…`.
    pub(crate) id: String,
    /// `/bin/sh` exists: stderr can be merged and output fenced (see `fence`).
    pub(crate) fence: bool,
}

/// Images this backend has checked, by reference.
#[derive(Default)]
pub(super) struct ImageCache {
    // An async lock: concurrent deploys of one runtime pull once.
    known: tokio::sync::Mutex<HashMap<String, Arc<ImageInfo>>>,
}

impl ImageCache {
    /// The image `name`, pulled if missing. `runtime` is the runtime it is wanted for, or
    /// `None` for a function's own image (`PackageType: Image`).
    pub(super) async fn ensure(
        &self,
        docker: &Docker,
        name: &str,
        runtime: Option<Runtime>,
        labels: &HashMap<String, String>,
    ) -> Result<Arc<ImageInfo>, BackendError> {
        let mut known = self.known.lock().await;
        if let Some(info) = known.get(name) {
            return Ok(info.clone());
        }
        let inspect = match docker.inspect_image(name).await {
            Ok(inspect) => inspect,
            Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => {
                pull(docker, name, runtime).await?;
                docker
                    .inspect_image(name)
                    .await
                    .map_err(|e| unavailable(name, runtime, e.to_string()))?
            }
            Err(e) => {
                return Err(BackendError::Docker {
                    action: format!("inspect image {name}"),
                    source: Box::new(e),
                });
            }
        };
        let config = inspect.config.unwrap_or_default();
        let entrypoint = config.entrypoint.unwrap_or_default();
        let cmd = config.cmd.unwrap_or_default();
        let id = inspect.id.unwrap_or_else(|| name.to_string());
        let fence = has_shell(docker, name, &id, labels).await;
        if !fence {
            tracing::warn!(
                "lambda-testkit: image {name} has no /bin/sh; its stdout and stderr are captured as they arrive, so output written just before a response may land in the next invocation's log"
            );
        }
        let info = Arc::new(ImageInfo {
            name: name.to_string(),
            entrypoint,
            cmd,
            id: id.clone(),
            fence,
        });
        known.insert(name.to_string(), info.clone());
        Ok(info)
    }
}

fn unavailable(image: &str, runtime: Option<Runtime>, message: String) -> BackendError {
    match runtime {
        Some(runtime) => BackendError::ImageUnavailable {
            image: image.to_string(),
            runtime: runtime.to_string(),
            variant: format!("{runtime:?}"),
            env_var: image_env_var(runtime),
            message,
        },
        None => BackendError::FunctionImageUnavailable {
            image: image.to_string(),
            message,
        },
    }
}

/// `name[:tag]` or `name@digest` → (repository or full reference, tag).
fn split_reference(reference: &str) -> (&str, &str) {
    if reference.contains('@') {
        return (reference, "");
    }
    let last = reference.rsplit('/').next().unwrap_or(reference);
    match last.rsplit_once(':') {
        Some((_, tag)) => (&reference[..reference.len() - tag.len() - 1], tag),
        None => (reference, "latest"),
    }
}

/// Pulls `name`, logging progress: each layer's status changes, and download progress at
/// most every few seconds.
async fn pull(docker: &Docker, name: &str, runtime: Option<Runtime>) -> Result<(), BackendError> {
    let purpose = runtime.map_or("the function".to_string(), |r| r.to_string());
    tracing::info!("lambda-testkit: pulling {name} for {purpose} (not present in the daemon)");
    let (repo, tag) = split_reference(name);
    let mut options = CreateImageOptionsBuilder::default().from_image(repo);
    if !tag.is_empty() {
        options = options.tag(tag);
    }
    let mut stream = docker.create_image(Some(options.build()), None, None);
    let started = Instant::now();
    let mut last_status: HashMap<String, String> = HashMap::new();
    let mut last_progress = Instant::now();
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| unavailable(name, runtime, e.to_string()))?;
        if let Some(detail) = info.error_detail.and_then(|d| d.message) {
            return Err(unavailable(name, runtime, detail));
        }
        let (Some(status), id) = (info.status, info.id.unwrap_or_default()) else {
            continue;
        };
        let downloading = status.starts_with("Downloading") || status.starts_with("Extracting");
        if downloading {
            if last_progress.elapsed() >= Duration::from_secs(3) {
                last_progress = Instant::now();
                let progress = info
                    .progress_detail
                    .and_then(|p| Some((p.current?, p.total?)));
                if let Some((current, total)) = progress {
                    tracing::info!(
                        "lambda-testkit: {name}: {id} {status} {}/{} MB",
                        current >> 20,
                        total >> 20
                    );
                }
            }
        } else if last_status.get(&id) != Some(&status) {
            tracing::info!("lambda-testkit: {name}: {id} {status}");
            last_status.insert(id, status);
        }
    }
    tracing::info!(
        "lambda-testkit: pulled {name} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Whether the image has `/bin/sh`, asked of a created (never started) container once per
/// image id per process.
async fn has_shell(
    docker: &Docker,
    name: &str,
    id: &str,
    labels: &HashMap<String, String>,
) -> bool {
    static PROBED: OnceLock<Mutex<HashMap<String, bool>>> = OnceLock::new();
    let probed = PROBED.get_or_init(Default::default);
    if let Some(known) = probed.lock().unwrap_or_else(|e| e.into_inner()).get(id) {
        return *known;
    }
    let body = ContainerCreateBody {
        image: Some(name.to_string()),
        entrypoint: Some(vec!["/bin/sh".to_string()]),
        cmd: Some(Vec::new()),
        labels: Some(labels.clone()),
        network_disabled: Some(true),
        ..Default::default()
    };
    let created = match docker
        .create_container(
            None::<bollard::query_parameters::CreateContainerOptions>,
            body,
        )
        .await
    {
        Ok(c) => c.id,
        Err(e) => {
            tracing::debug!("lambda-testkit: could not probe {name} for /bin/sh: {e}");
            return false;
        }
    };
    let options = ContainerArchiveInfoOptionsBuilder::default()
        .path("/bin/sh")
        .build();
    let found = docker
        .get_container_archive_info(&created, Some(options))
        .await
        .is_ok();
    super::janitor::remove(docker.clone(), created).await;
    probed
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id.to_string(), found);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_into_repository_and_tag() {
        assert_eq!(
            split_reference("public.ecr.aws/lambda/python:3.12"),
            ("public.ecr.aws/lambda/python", "3.12")
        );
        assert_eq!(
            split_reference("localhost:5000/img"),
            ("localhost:5000/img", "latest")
        );
        assert_eq!(split_reference("img@sha256:abc"), ("img@sha256:abc", ""));
    }
}
