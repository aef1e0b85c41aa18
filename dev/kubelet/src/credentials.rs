//! In-cluster credentials for a pod: a ServiceAccount token bound to the pod (TokenRequest API) and a
//! kubeconfig that points at it, so a process acts with its ServiceAccount's RBAC, not as the kubelet.

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::config::Kubeconfig;

/// Tokens live an hour and are replaced after 80% of that, as the real kubelet does.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("cannot read kubeconfig {path}: {source}")]
    Kubeconfig {
        path: PathBuf,
        source: kube::config::KubeconfigError,
    },
    #[error("kubeconfig {path} has no cluster for its current context")]
    NoCluster { path: PathBuf },
    #[error("kubeconfig {path}: server URL {server:?} is not of the form https://HOST:PORT")]
    BadServer { path: PathBuf, server: String },
    #[error("TokenRequest for ServiceAccount {namespace}/{service_account} failed: {message}")]
    TokenRequest {
        namespace: String,
        service_account: String,
        message: String,
    },
    #[error("TokenRequest for ServiceAccount {namespace}/{service_account} returned no token")]
    EmptyToken {
        namespace: String,
        service_account: String,
    },
    #[error("cannot write credentials under {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// How processes reach the API server: taken from the kubelet's own kubeconfig (without its identity).
#[derive(Debug, Clone)]
pub struct ClusterAccess {
    pub server: String,
    pub certificate_authority_data: Option<String>,
    pub certificate_authority: Option<String>,
    pub insecure_skip_tls_verify: bool,
    pub service_host: String,
    pub service_port: String,
}

impl ClusterAccess {
    pub fn from_kubeconfig(path: &Path) -> Result<Self, CredentialsError> {
        let config = Kubeconfig::read_from(path).map_err(|source| CredentialsError::Kubeconfig {
            path: path.to_owned(),
            source,
        })?;
        let context_cluster = config
            .current_context
            .as_ref()
            .and_then(|name| config.contexts.iter().find(|c| &c.name == name))
            .and_then(|c| c.context.as_ref())
            .map(|c| c.cluster.clone());
        let named = match context_cluster {
            Some(name) => config.clusters.iter().find(|c| c.name == name),
            None => config.clusters.first(),
        };
        let cluster = named
            .and_then(|c| c.cluster.clone())
            .ok_or_else(|| CredentialsError::NoCluster {
                path: path.to_owned(),
            })?;
        let server = cluster.server.clone().unwrap_or_default();
        let (service_host, service_port) =
            host_and_port(&server).ok_or_else(|| CredentialsError::BadServer {
                path: path.to_owned(),
                server: server.clone(),
            })?;
        Ok(Self {
            server,
            certificate_authority_data: cluster.certificate_authority_data,
            certificate_authority: cluster.certificate_authority,
            insecure_skip_tls_verify: cluster.insecure_skip_tls_verify.unwrap_or(false),
            service_host,
            service_port,
        })
    }

    /// A kubeconfig (JSON is YAML) whose user reads the token file, so clients pick up refreshed tokens.
    pub fn pod_kubeconfig(&self, token_file: &Path, namespace: &str) -> serde_json::Value {
        let mut cluster = serde_json::json!({ "server": self.server });
        if let Some(data) = &self.certificate_authority_data {
            cluster["certificate-authority-data"] = data.clone().into();
        }
        if let Some(file) = &self.certificate_authority {
            cluster["certificate-authority"] = file.clone().into();
        }
        if self.insecure_skip_tls_verify {
            cluster["insecure-skip-tls-verify"] = true.into();
        }
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{ "name": "in-cluster", "cluster": cluster }],
            "users": [{ "name": "service-account", "user": { "tokenFile": token_file.to_string_lossy() } }],
            "contexts": [{ "name": "in-cluster",
                           "context": { "cluster": "in-cluster", "user": "service-account", "namespace": namespace } }],
            "current-context": "in-cluster",
        })
    }
}

/// `https://127.0.0.1:16443/` → ("127.0.0.1", "16443"); the port defaults to 443.
pub fn host_and_port(server: &str) -> Option<(String, String)> {
    let rest = server
        .strip_prefix("https://")
        .or_else(|| server.strip_prefix("http://"))?;
    let authority = rest.split('/').next().filter(|a| !a.is_empty())?;
    if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, tail) = bracketed.split_once(']')?;
        let port = tail.strip_prefix(':').unwrap_or("443");
        return Some((host.to_owned(), port.to_owned()));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => Some((host.to_owned(), port.to_owned())),
        Some(_) => None,
        None => Some((authority.to_owned(), "443".to_owned())),
    }
}

/// Whether a pod gets a token: not when it opts out; yes when the ServiceAccount admission plugin projected
/// a token volume (it does so exactly when automounting is on) or when the pod asks explicitly.
pub fn wants_token(pod: &Pod) -> bool {
    let Some(spec) = &pod.spec else { return false };
    match spec.automount_service_account_token {
        Some(false) => false,
        Some(true) => true,
        None => spec.volumes.iter().flatten().any(|v| {
            v.projected
                .as_ref()
                .and_then(|p| p.sources.as_ref())
                .is_some_and(|sources| sources.iter().any(|s| s.service_account_token.is_some()))
        }),
    }
}

#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: String,
    pub expires_at: Timestamp,
}

/// Asks the API server for a token of the pod's ServiceAccount, bound to the pod (what NodeRestriction allows).
pub async fn request_token(client: kube::Client, pod: &Pod) -> Result<IssuedToken, CredentialsError> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let service_account = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".into());
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: None,
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
            expiration_seconds: i64::try_from(TOKEN_LIFETIME.as_secs()).ok(),
        }),
        ..TokenRequest::default()
    };
    let api: Api<ServiceAccount> = Api::namespaced(client, &namespace);
    let response: TokenRequest = api
        .create_subresource("token", &service_account, &PostParams::default(), &request)
        .await
        .map_err(|e| CredentialsError::TokenRequest {
            namespace: namespace.clone(),
            service_account: service_account.clone(),
            message: api_message(&e),
        })?;
    let status = response.status.unwrap_or_default();
    let token = status
        .token
        .filter(|t| !t.is_empty())
        .ok_or(CredentialsError::EmptyToken {
            namespace,
            service_account,
        })?;
    let fallback = Timestamp::now() + TOKEN_LIFETIME;
    let expires_at = status.expiration_timestamp.map_or(fallback, |t| t.0);
    Ok(IssuedToken { token, expires_at })
}

/// The API server's own words for a rejected request, without the client's debug dump.
pub fn api_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => format!("{} ({})", status.message, status.code),
        other => other.to_string(),
    }
}

/// When to replace a token issued at `issued_at`: after 80% of its life.
pub fn refresh_after(issued_at: Timestamp, expires_at: Timestamp) -> Duration {
    let life = expires_at.duration_since(issued_at);
    let seconds = life.as_secs().max(0).unsigned_abs();
    Duration::from_secs(seconds * 4 / 5)
}

/// Writes `serviceaccount/{token,namespace}` and `kubeconfig` in the pod dir, each replaced atomically.
pub fn write_pod_credentials(
    pod_dir: &Path,
    access: &ClusterAccess,
    token: &str,
    namespace: &str,
) -> Result<PathBuf, CredentialsError> {
    let sa_dir = pod_dir.join("serviceaccount");
    let write = |path: &Path, data: &[u8]| -> Result<(), CredentialsError> {
        let err = |source| CredentialsError::Write {
            path: path.to_owned(),
            source,
        };
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, data).map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)
    };
    std::fs::create_dir_all(&sa_dir).map_err(|source| CredentialsError::Write {
        path: sa_dir.clone(),
        source,
    })?;
    let token_file = sa_dir.join("token");
    write(&token_file, token.as_bytes())?;
    write(&sa_dir.join("namespace"), namespace.as_bytes())?;
    let kubeconfig_path = pod_dir.join("kubeconfig");
    let kubeconfig = access.pod_kubeconfig(&token_file, namespace);
    write(&kubeconfig_path, kubeconfig.to_string().as_bytes())?;
    Ok(kubeconfig_path)
}

/// Removes the token material of a pod that is gone (its logs stay).
pub fn remove_pod_credentials(pod_dir: &Path) {
    let _ = std::fs::remove_dir_all(pod_dir.join("serviceaccount"));
    let _ = std::fs::remove_file(pod_dir.join("kubeconfig"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn server_urls_give_service_host_and_port() {
        assert_eq!(
            host_and_port("https://127.0.0.1:16443"),
            Some(("127.0.0.1".into(), "16443".into()))
        );
        assert_eq!(
            host_and_port("https://api.example/"),
            Some(("api.example".into(), "443".into()))
        );
        assert_eq!(
            host_and_port("https://[::1]:6443"),
            Some(("::1".into(), "6443".into()))
        );
        assert_eq!(host_and_port("127.0.0.1:6443"), None);
        assert_eq!(host_and_port("https://h:notaport"), None);
    }

    #[test]
    fn token_only_when_automounted() {
        let pod = |spec: serde_json::Value| -> Pod {
            serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).expect("valid pod")
        };
        let projected = json!([{"name": "kube-api-access-x", "projected": {"sources": [
            {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}}]}}]);
        assert!(wants_token(&pod(json!({"containers": [], "volumes": projected}))));
        assert!(!wants_token(&pod(json!({"containers": [], "volumes": projected,
            "automountServiceAccountToken": false}))));
        assert!(!wants_token(&pod(json!({"containers": []}))));
        assert!(wants_token(&pod(
            json!({"containers": [], "automountServiceAccountToken": true})
        )));
    }

    #[test]
    fn refresh_at_eighty_percent() {
        let issued = Timestamp::from_second(1_800_000_000).expect("valid");
        let expires = Timestamp::from_second(1_800_003_600).expect("valid");
        assert_eq!(refresh_after(issued, expires), Duration::from_secs(2880));
        assert_eq!(refresh_after(expires, issued), Duration::ZERO);
    }

    #[test]
    fn pod_kubeconfig_reads_the_token_file_and_keeps_the_ca() {
        let access = ClusterAccess {
            server: "https://127.0.0.1:16443".into(),
            certificate_authority_data: Some("Q0E=".into()),
            certificate_authority: None,
            insecure_skip_tls_verify: false,
            service_host: "127.0.0.1".into(),
            service_port: "16443".into(),
        };
        let dir = std::env::temp_dir().join(format!("process-kubelet-creds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = write_pod_credentials(&dir, &access, "tok", "shop").expect("written");
        let text = std::fs::read_to_string(&path).expect("kubeconfig");
        let parsed = Kubeconfig::from_yaml(&text).expect("kube-rs reads it");
        assert_eq!(parsed.current_context.as_deref(), Some("in-cluster"));
        let user = parsed.auth_infos[0].auth_info.clone().expect("user");
        let token_file = user.token_file.expect("token file");
        assert_eq!(std::fs::read_to_string(token_file).expect("token"), "tok");
        let cluster = parsed.clusters[0].cluster.clone().expect("cluster");
        assert_eq!(cluster.certificate_authority_data.as_deref(), Some("Q0E="));
        remove_pod_credentials(&dir);
        assert!(!dir.join("kubeconfig").exists());
        let _ = std::fs::remove_dir_all(dir);
    }
}
