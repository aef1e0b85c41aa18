//! A container's environment: envFrom then env, as Kubernetes builds it, from data fetched beforehand.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Container, ObjectFieldSelector, Pod};

use crate::command::expand;

/// ConfigMap and Secret data a container refers to; `None` means the object does not exist.
#[derive(Debug, Default, Clone)]
pub struct EnvSources {
    pub config_maps: BTreeMap<String, Option<BTreeMap<String, String>>>,
    pub secrets: BTreeMap<String, Option<BTreeMap<String, String>>>,
}

/// What the pod's status knows about its network, for `fieldRef: status.*`.
#[derive(Debug, Clone)]
pub struct PodNetwork {
    pub pod_ip: String,
    pub host_ip: String,
}

/// Each message reads like the real kubelet's CreateContainerConfigError message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvError {
    #[error("configmap {name:?} not found")]
    ConfigMapNotFound { name: String },
    #[error("secret {name:?} not found")]
    SecretNotFound { name: String },
    #[error("couldn't find key {key} in ConfigMap {namespace}/{name}")]
    ConfigMapKeyNotFound {
        namespace: String,
        name: String,
        key: String,
    },
    #[error("couldn't find key {key} in Secret {namespace}/{name}")]
    SecretKeyNotFound {
        namespace: String,
        name: String,
        key: String,
    },
    #[error("env var {var}: unsupported fieldRef path {path:?}")]
    UnsupportedFieldPath { var: String, path: String },
    #[error("env var {var}: {what} is not supported by the process kubelet")]
    Unsupported { var: String, what: &'static str },
}

/// Names of the ConfigMaps and Secrets the container's env and envFrom refer to.
pub fn referenced_sources(container: &Container) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut config_maps = BTreeSet::new();
    let mut secrets = BTreeSet::new();
    for source in container.env_from.iter().flatten() {
        if let Some(r) = &source.config_map_ref {
            config_maps.insert(r.name.clone());
        }
        if let Some(r) = &source.secret_ref {
            secrets.insert(r.name.clone());
        }
    }
    for var in container.env.iter().flatten() {
        let Some(from) = &var.value_from else { continue };
        if let Some(r) = &from.config_map_key_ref {
            config_maps.insert(r.name.clone());
        }
        if let Some(r) = &from.secret_key_ref {
            secrets.insert(r.name.clone());
        }
    }
    (config_maps, secrets)
}

/// Builds the environment over `base` (host and kubelet-provided variables): envFrom sources in order, then
/// env entries in order, each `value` expanded with the variables defined before it.
pub fn resolve(
    pod: &Pod,
    container: &Container,
    base: &BTreeMap<String, String>,
    sources: &EnvSources,
    network: &PodNetwork,
) -> Result<BTreeMap<String, String>, EnvError> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let mut env = base.clone();
    for source in container.env_from.iter().flatten() {
        let prefix = source.prefix.as_deref().unwrap_or("");
        let data = if let Some(r) = &source.config_map_ref {
            match sources.config_maps.get(&r.name).and_then(Option::as_ref) {
                Some(data) => Some(data),
                None if r.optional == Some(true) => None,
                None => return Err(EnvError::ConfigMapNotFound { name: r.name.clone() }),
            }
        } else if let Some(r) = &source.secret_ref {
            match sources.secrets.get(&r.name).and_then(Option::as_ref) {
                Some(data) => Some(data),
                None if r.optional == Some(true) => None,
                None => return Err(EnvError::SecretNotFound { name: r.name.clone() }),
            }
        } else {
            None
        };
        for (key, value) in data.into_iter().flatten() {
            // Kubernetes skips keys that cannot be environment variable names.
            if !key.is_empty() && !key.contains('=') {
                env.insert(format!("{prefix}{key}"), value.clone());
            }
        }
    }
    for var in container.env.iter().flatten() {
        let value = match &var.value_from {
            None => Some(expand(var.value.as_deref().unwrap_or(""), &env)),
            Some(from) => {
                if let Some(r) = &from.config_map_key_ref {
                    let optional = r.optional == Some(true);
                    match sources.config_maps.get(&r.name).and_then(Option::as_ref) {
                        None if optional => None,
                        None => return Err(EnvError::ConfigMapNotFound { name: r.name.clone() }),
                        Some(data) => match data.get(&r.key) {
                            Some(v) => Some(v.clone()),
                            None if optional => None,
                            None => {
                                return Err(EnvError::ConfigMapKeyNotFound {
                                    namespace: namespace.clone(),
                                    name: r.name.clone(),
                                    key: r.key.clone(),
                                });
                            }
                        },
                    }
                } else if let Some(r) = &from.secret_key_ref {
                    let optional = r.optional == Some(true);
                    match sources.secrets.get(&r.name).and_then(Option::as_ref) {
                        None if optional => None,
                        None => return Err(EnvError::SecretNotFound { name: r.name.clone() }),
                        Some(data) => match data.get(&r.key) {
                            Some(v) => Some(v.clone()),
                            None if optional => None,
                            None => {
                                return Err(EnvError::SecretKeyNotFound {
                                    namespace: namespace.clone(),
                                    name: r.name.clone(),
                                    key: r.key.clone(),
                                });
                            }
                        },
                    }
                } else if let Some(field) = &from.field_ref {
                    Some(
                        field_value(pod, field, network).ok_or_else(|| EnvError::UnsupportedFieldPath {
                            var: var.name.clone(),
                            path: field.field_path.clone(),
                        })?,
                    )
                } else if from.resource_field_ref.is_some() {
                    return Err(EnvError::Unsupported {
                        var: var.name.clone(),
                        what: "resourceFieldRef",
                    });
                } else {
                    return Err(EnvError::Unsupported {
                        var: var.name.clone(),
                        what: "this valueFrom source",
                    });
                }
            }
        };
        if let Some(value) = value {
            env.insert(var.name.clone(), value);
        }
    }
    Ok(env)
}

/// The downward API for env vars: the fields Kubernetes allows in `fieldRef` (None for any other path).
pub fn field_value(pod: &Pod, field: &ObjectFieldSelector, network: &PodNetwork) -> Option<String> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let path = field.field_path.as_str();
    let keyed = |prefix: &str| -> Option<String> {
        let rest = path
            .strip_prefix(prefix)?
            .strip_prefix("['")?
            .strip_suffix("']")?;
        Some(rest.to_owned())
    };
    if let Some(key) = keyed("metadata.labels") {
        return Some(
            meta.labels
                .as_ref()
                .and_then(|m| m.get(&key))
                .cloned()
                .unwrap_or_default(),
        );
    }
    if let Some(key) = keyed("metadata.annotations") {
        return Some(
            meta.annotations
                .as_ref()
                .and_then(|m| m.get(&key))
                .cloned()
                .unwrap_or_default(),
        );
    }
    Some(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.podIP" | "status.podIPs" => network.pod_ip.clone(),
        "status.hostIP" | "status.hostIPs" => network.host_ip.clone(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(container_env: serde_json::Value) -> (Pod, Container) {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web-1", "namespace": "shop", "uid": "u-1",
                         "labels": {"app": "web"}, "annotations": {"team": "data"}},
            "spec": {"nodeName": "streamlake-dev", "serviceAccountName": "sa",
                     "containers": [container_env]}
        }))
        .expect("valid pod");
        let container = pod.spec.as_ref().expect("spec").containers[0].clone();
        (pod, container)
    }

    fn network() -> PodNetwork {
        PodNetwork {
            pod_ip: "127.42.0.9".into(),
            host_ip: "127.0.0.1".into(),
        }
    }

    fn sources() -> EnvSources {
        let data = |pairs: &[(&str, &str)]| {
            Some(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>(),
            )
        };
        EnvSources {
            config_maps: [
                (
                    "settings".to_string(),
                    data(&[("MODE", "fast"), ("LEVEL", "3"), ("bad=key", "x")]),
                ),
                ("gone".to_string(), None),
            ]
            .into_iter()
            .collect(),
            secrets: [("creds".to_string(), data(&[("PASSWORD", "s3cret")]))]
                .into_iter()
                .collect(),
        }
    }

    fn base() -> BTreeMap<String, String> {
        [("PATH".to_string(), "/usr/bin".to_string())]
            .into_iter()
            .collect()
    }

    #[test]
    fn env_from_then_env_with_prefix_override_and_expansion() {
        let (pod, c) = pod(json!({"name": "main", "image": "busybox",
        "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}, {"secretRef": {"name": "creds"}}],
        "env": [
            {"name": "CFG_MODE", "value": "slow"},
            {"name": "ADDR", "value": "$(POD_IP):$(PORT)"},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "URL", "value": "http://$(POD_IP):8080/$(CFG_LEVEL)"},
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "PASSWORD"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "TEAM", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['team']"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}
        ]}));
        let env = resolve(&pod, &c, &base(), &sources(), &network()).expect("resolves");
        let get = |k: &str| env.get(k).map(String::as_str);
        assert_eq!(get("PATH"), Some("/usr/bin"));
        assert_eq!(get("CFG_MODE"), Some("slow"));
        assert_eq!(get("CFG_LEVEL"), Some("3"));
        assert_eq!(get("CFG_bad=key"), None);
        assert_eq!(get("PASSWORD"), Some("s3cret"));
        // POD_IP was not yet defined when ADDR was expanded: the reference stays as written.
        assert_eq!(get("ADDR"), Some("$(POD_IP):$(PORT)"));
        assert_eq!(get("URL"), Some("http://127.42.0.9:8080/3"));
        assert_eq!(get("PW"), Some("s3cret"));
        assert_eq!(get("APP"), Some("web"));
        assert_eq!(get("TEAM"), Some("data"));
        assert_eq!(get("NODE"), Some("streamlake-dev"));
        assert_eq!(get("NS"), Some("shop"));
    }

    #[test]
    fn optional_references_are_skipped_and_required_ones_fail_with_kubelet_messages() {
        let (optional_pod, c) = pod(json!({"name": "main", "image": "busybox",
        "envFrom": [{"configMapRef": {"name": "gone", "optional": true}}],
        "env": [
            {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k", "optional": true}}},
            {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "nope", "optional": true}}},
            {"name": "C", "valueFrom": {"secretKeyRef": {"name": "missing", "key": "k", "optional": true}}}
        ]}));
        let env = resolve(&optional_pod, &c, &base(), &sources(), &network()).expect("all optional");
        assert_eq!(env.len(), 1);

        let cases = [
            (
                json!({"envFrom": [{"configMapRef": {"name": "gone"}}]}),
                "configmap \"gone\" not found",
            ),
            (
                json!({"envFrom": [{"secretRef": {"name": "missing"}}]}),
                "secret \"missing\" not found",
            ),
            (
                json!({"env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "nope"}}}]}),
                "couldn't find key nope in ConfigMap shop/settings",
            ),
            (
                json!({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "nope"}}}]}),
                "couldn't find key nope in Secret shop/creds",
            ),
            (
                json!({"env": [{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "status.phase"}}}]}),
                "env var X: unsupported fieldRef path \"status.phase\"",
            ),
        ];
        for (mut spec, message) in cases {
            spec["name"] = json!("main");
            spec["image"] = json!("busybox");
            let (p, c) = pod(spec);
            let err = resolve(&p, &c, &base(), &sources(), &network()).expect_err(message);
            assert_eq!(err.to_string(), message);
        }
    }

    #[test]
    fn lists_referenced_objects() {
        let (_, c) = pod(json!({"name": "main", "image": "busybox",
            "envFrom": [{"configMapRef": {"name": "a"}}, {"secretRef": {"name": "s1"}}],
            "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "b", "key": "k"}}},
                    {"name": "Y", "valueFrom": {"secretKeyRef": {"name": "s2", "key": "k"}}}]}));
        let (cms, secrets) = referenced_sources(&c);
        assert_eq!(cms.into_iter().collect::<Vec<_>>(), vec!["a", "b"]);
        assert_eq!(secrets.into_iter().collect::<Vec<_>>(), vec!["s1", "s2"]);
    }
}
