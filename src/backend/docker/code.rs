//! Code volumes: a deployment's code and layers, uploaded once into two named volumes and
//! mounted read-only at `/var/task` and `/opt` in every container that runs that code.
//!
//! Why not upload into each container: an archive upload costs the daemon ~60 ms whatever
//! its size (it mounts the container and re-executes itself to unpack in a chroot) and it
//! holds the container's lock, so it cannot overlap the container's start. Uploaded once
//! per code, it leaves every cold start but the first, and the first overlaps it with
//! creating the container. Uploading (rather than bind-mounting) keeps a remote daemon
//! working; read-only mounts are what Lambda gives (`/var/task` and `/opt` are read-only).

use std::collections::HashMap;
use std::sync::Arc;

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, HostConfig, Mount, MountType, MountVolumeOptions, VolumeCreateRequest,
};
use bollard::query_parameters::{CreateContainerOptions, UploadToContainerOptionsBuilder};
use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::archive;
use super::janitor::JanitorHandle;
use crate::deploy::Deployment;
use crate::error::BackendError;

/// Label on the never-started container that loads a volume.
pub(super) const LABEL_ROLE: &str = "lambda-testkit.role";

/// The two volumes of one code (code zip + layers), and whether they are loaded.
pub(super) struct CodeVolumes {
    pub(super) task: String,
    pub(super) opt: String,
    loaded: tokio::sync::OnceCell<()>,
}

/// Code volumes of one backend (one emulator session), by code identity.
#[derive(Default)]
pub(super) struct CodeCache {
    known: tokio::sync::Mutex<HashMap<String, Arc<CodeVolumes>>>,
}

/// What identifies the files: the code's and each layer's CodeSha256, in attach order
/// (not the settings, which the deploy id also covers).
fn content_key<'a>(code_sha256: &str, layers: impl IntoIterator<Item = &'a str>) -> String {
    let mut h = Sha256::new();
    h.update(code_sha256.as_bytes());
    for layer in layers {
        h.update(b"\0layer\0");
        h.update(layer.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn docker_error(action: &str, e: bollard::errors::Error) -> BackendError {
    BackendError::Docker {
        action: action.to_string(),
        source: Box::new(e),
    }
}

impl CodeCache {
    /// The volumes for `deployment`'s code: created (labelled, so sweeps find them) but
    /// not necessarily loaded yet.
    pub(super) async fn volumes(
        &self,
        docker: &Docker,
        janitor: &JanitorHandle,
        deployment: &Deployment,
        session: &str,
        labels: &HashMap<String, String>,
    ) -> Result<Arc<CodeVolumes>, BackendError> {
        let config = &deployment.config;
        let key = content_key(
            config.code_sha256(),
            config.layers.iter().map(|l| l.code_sha256()),
        );
        let mut known = self.known.lock().await;
        if let Some(volumes) = known.get(&key) {
            return Ok(volumes.clone());
        }
        let name = |what: &str| format!("lambda-testkit-{}-{}-{what}", &session[..8], &key[..16]);
        let (task, opt) = (name("task"), name("opt"));
        janitor.created();
        let create = |name: String| {
            let request = VolumeCreateRequest {
                name: Some(name),
                labels: Some(labels.clone()),
                ..Default::default()
            };
            docker.create_volume(request)
        };
        tokio::try_join!(create(task.clone()), create(opt.clone()))
            .map_err(|e| docker_error("create volume", e))?;
        let volumes = Arc::new(CodeVolumes {
            task,
            opt,
            loaded: tokio::sync::OnceCell::new(),
        });
        known.insert(key, volumes.clone());
        Ok(volumes)
    }
}

impl CodeVolumes {
    /// Mounts for a container running this code.
    pub(super) fn mounts(&self, read_only: bool) -> Vec<Mount> {
        let mount = |source: &str, target: &str| Mount {
            target: Some(target.to_string()),
            source: Some(source.to_string()),
            typ: Some(MountType::VOLUME),
            read_only: Some(read_only),
            // The image's own /var/task and /opt are hidden, not copied in (Lambda mounts
            // over them too).
            volume_options: Some(MountVolumeOptions {
                no_copy: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        };
        vec![mount(&self.task, "/var/task"), mount(&self.opt, "/opt")]
    }

    /// Uploads the deployment's files once; concurrent callers wait for that upload, and
    /// after a failed one the next caller tries again.
    pub(super) async fn load(
        &self,
        docker: &Docker,
        janitor: &JanitorHandle,
        deployment: &Arc<Deployment>,
        image: &str,
        labels: &HashMap<String, String>,
    ) -> Result<(), BackendError> {
        self.loaded
            .get_or_try_init(|| self.upload(docker, janitor, deployment, image, labels))
            .await
            .map(|_| ())
    }

    async fn upload(
        &self,
        docker: &Docker,
        janitor: &JanitorHandle,
        deployment: &Arc<Deployment>,
        image: &str,
        labels: &HashMap<String, String>,
    ) -> Result<(), BackendError> {
        let d = deployment.clone();
        let tar = tokio::task::spawn_blocking(move || archive::build(&d));
        let mut labels = labels.clone();
        labels.insert(LABEL_ROLE.to_string(), "code-loader".to_string());
        // A container that is never started: the upload API needs one to reach volumes.
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            entrypoint: Some(vec!["/bin/sh".to_string()]),
            cmd: Some(Vec::new()),
            labels: Some(labels),
            network_disabled: Some(true),
            host_config: Some(HostConfig {
                mounts: Some(self.mounts(false)),
                ..Default::default()
            }),
            ..Default::default()
        };
        let (created, tar) = tokio::join!(
            docker.create_container(None::<CreateContainerOptions>, body),
            tar
        );
        let loader = created.map_err(|e| docker_error("create container", e))?.id;
        let uploaded = match tar {
            Ok(Ok(tar)) => {
                let options = UploadToContainerOptionsBuilder::default().path("/").build();
                docker
                    .upload_to_container(
                        &loader,
                        Some(options),
                        bollard::body_full(Bytes::from(tar)),
                    )
                    .await
                    .map_err(|e| docker_error("upload code", e))
            }
            Ok(Err(source)) => Err(BackendError::Archive {
                what: "the deployment",
                source,
            }),
            Err(e) => Err(BackendError::Other(e.to_string())),
        };
        janitor.remove(loader);
        uploaded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_are_named_by_the_files_in_attach_order() {
        assert_eq!(content_key("a", ["l1"]), content_key("a", ["l1"]));
        assert_ne!(
            content_key("a", ["l1", "l2"]),
            content_key("a", ["l2", "l1"])
        );
        assert_ne!(content_key("a", []), content_key("b", []));
    }
}
