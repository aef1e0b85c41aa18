//! What every pod worker shares: the client, configuration, the image map, the IP allocator, the event sink.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

use crate::credentials::ClusterAccess;
use crate::events::EventSink;
use crate::image_map::ImageMap;
use crate::ipam::PodIpAllocator;

pub struct KubeletContext {
    pub client: kube::Client,
    pub node_name: String,
    pub host_ip: String,
    pub images: ImageMap,
    pub pods_dir: PathBuf,
    pub ipam: Mutex<PodIpAllocator>,
    pub events: EventSink,
    pub cluster: ClusterAccess,
    pub max_backoff: Duration,
    /// The longest a pod may take to stop when the kubelet itself shuts down.
    pub shutdown_grace: Duration,
    /// Host variables every container inherits (PATH and the like); the rest of the host env is not passed.
    pub host_env: BTreeMap<String, String>,
}

impl std::fmt::Debug for KubeletContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeletContext")
            .field("node_name", &self.node_name)
            .finish_non_exhaustive()
    }
}

/// `$STATE/pods/<namespace>_<name>_<uid>/`: logs, pid checkpoints, credentials and the default workdir.
#[derive(Debug, Clone)]
pub struct PodDir {
    pub path: PathBuf,
}

impl PodDir {
    pub fn for_pod(pods_dir: &Path, pod: &Pod) -> Self {
        let meta = &pod.metadata;
        let name = format!(
            "{}_{}_{}",
            meta.namespace.as_deref().unwrap_or("default"),
            meta.name.as_deref().unwrap_or("unnamed"),
            meta.uid.as_deref().unwrap_or("no-uid")
        );
        Self {
            path: pods_dir.join(name),
        }
    }

    /// Creates the directory and points `by-name/<namespace>_<name>` at it (the newest pod of that name wins).
    pub fn create(&self, pods_dir: &Path, pod: &Pod) -> std::io::Result<()> {
        std::fs::create_dir_all(self.workdir())?;
        let by_name = pods_dir.join("by-name");
        std::fs::create_dir_all(&by_name)?;
        let link = by_name.join(format!(
            "{}_{}",
            pod.metadata.namespace.as_deref().unwrap_or("default"),
            pod.metadata.name.as_deref().unwrap_or("unnamed")
        ));
        let target = Path::new("..").join(self.path.file_name().unwrap_or_default());
        if std::fs::read_link(&link).ok().as_deref() != Some(target.as_path()) {
            let tmp = by_name.join(format!(
                ".{}.tmp-link",
                self.path.file_name().unwrap_or_default().to_string_lossy()
            ));
            let _ = std::fs::remove_file(&tmp);
            std::os::unix::fs::symlink(&target, &tmp)?;
            std::fs::rename(&tmp, &link)?;
        }
        Ok(())
    }

    pub fn log(&self, container: &str) -> PathBuf {
        self.path.join(format!("{container}.log"))
    }

    /// The working directory of containers whose `workingDir` is unset or does not exist on this host.
    pub fn workdir(&self) -> PathBuf {
        self.path.join("workdir")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pod_dirs_are_named_by_namespace_name_uid_with_a_by_name_link() {
        let root = std::env::temp_dir().join(format!("process-kubelet-poddir-{}", std::process::id()));
        let pod: Pod =
            serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "shop", "uid": "u1"}}))
                .expect("valid pod");
        let dir = PodDir::for_pod(&root, &pod);
        assert_eq!(dir.path, root.join("shop_web_u1"));
        dir.create(&root, &pod).expect("created");
        std::fs::write(dir.log("main"), "hello").expect("log");
        let via_link = std::fs::read_to_string(root.join("by-name/shop_web/main.log")).expect("link works");
        assert_eq!(via_link, "hello");

        let newer: Pod =
            serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "shop", "uid": "u2"}}))
                .expect("valid pod");
        let newer_dir = PodDir::for_pod(&root, &newer);
        newer_dir.create(&root, &newer).expect("created");
        assert_eq!(
            std::fs::read_link(root.join("by-name/shop_web")).expect("link"),
            Path::new("../shop_web_u2")
        );
        let _ = std::fs::remove_dir_all(root);
    }
}
