//! Startup, readiness and liveness probes: httpGet, tcpSocket and exec against the pod's own address.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    Startup,
    Readiness,
    Liveness,
}

impl ProbeKind {
    pub fn label(self) -> &'static str {
        match self {
            Self::Startup => "Startup",
            Self::Readiness => "Readiness",
            Self::Liveness => "Liveness",
        }
    }
}

/// What a probe's handler does, with ports already resolved to numbers.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Http {
        host: Option<String>,
        port: u16,
        path: String,
        https: bool,
        headers: Vec<(String, String)>,
    },
    Tcp {
        host: Option<String>,
        port: u16,
    },
    Exec {
        command: Vec<String>,
    },
    Unsupported(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProbeSpec {
    pub action: Action,
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

fn seconds(value: Option<i32>, default: u64) -> Duration {
    Duration::from_secs(
        value
            .and_then(|v| u64::try_from(v).ok())
            .filter(|v| *v > 0)
            .unwrap_or(default),
    )
}

fn threshold(value: Option<i32>, default: u32) -> u32 {
    value
        .and_then(|v| u32::try_from(v).ok())
        .filter(|v| *v > 0)
        .unwrap_or(default)
}

impl ProbeSpec {
    /// Kubernetes defaults: period 10 s, timeout 1 s, success 1, failure 3, no initial delay.
    pub fn from_k8s(probe: &Probe, container: &Container) -> Self {
        let port = |port: &IntOrString| -> Result<u16, String> {
            match port {
                IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("port {n} is out of range")),
                IntOrString::String(name) => container
                    .ports
                    .iter()
                    .flatten()
                    .find(|p| p.name.as_deref() == Some(name.as_str()))
                    .and_then(|p| u16::try_from(p.container_port).ok())
                    .ok_or_else(|| {
                        format!(
                            "named port {name:?} is not declared by container {}",
                            container.name
                        )
                    }),
            }
        };
        let action = if let Some(http) = &probe.http_get {
            match port(&http.port) {
                Ok(port) => Action::Http {
                    host: http.host.clone().filter(|h| !h.is_empty()),
                    port,
                    path: http
                        .path
                        .clone()
                        .filter(|p| !p.is_empty())
                        .unwrap_or_else(|| "/".into()),
                    https: http.scheme.as_deref() == Some("HTTPS"),
                    headers: http
                        .http_headers
                        .iter()
                        .flatten()
                        .map(|h| (h.name.clone(), h.value.clone()))
                        .collect(),
                },
                Err(problem) => Action::Unsupported(problem),
            }
        } else if let Some(tcp) = &probe.tcp_socket {
            match port(&tcp.port) {
                Ok(port) => Action::Tcp {
                    host: tcp.host.clone().filter(|h| !h.is_empty()),
                    port,
                },
                Err(problem) => Action::Unsupported(problem),
            }
        } else if let Some(exec) = &probe.exec {
            Action::Exec {
                command: exec.command.clone().unwrap_or_default(),
            }
        } else if probe.grpc.is_some() {
            Action::Unsupported("grpc probes are not supported by the process kubelet".into())
        } else {
            Action::Unsupported("probe has no handler".into())
        };
        Self {
            action,
            initial_delay: Duration::from_secs(
                probe
                    .initial_delay_seconds
                    .and_then(|v| u64::try_from(v).ok())
                    .unwrap_or(0),
            ),
            period: seconds(probe.period_seconds, 10),
            timeout: seconds(probe.timeout_seconds, 1),
            success_threshold: threshold(probe.success_threshold, 1),
            failure_threshold: threshold(probe.failure_threshold, 3),
        }
    }
}

/// Consecutive results against the thresholds; `observe` returns the new verdict when it changes.
#[derive(Debug, Clone)]
pub struct ProbeTracker {
    success_threshold: u32,
    failure_threshold: u32,
    successes: u32,
    failures: u32,
    verdict: Option<bool>,
}

impl ProbeTracker {
    pub fn new(spec: &ProbeSpec, initial: Option<bool>) -> Self {
        Self {
            success_threshold: spec.success_threshold,
            failure_threshold: spec.failure_threshold,
            successes: 0,
            failures: 0,
            verdict: initial,
        }
    }

    pub fn observe(&mut self, ok: bool) -> Option<bool> {
        if ok {
            self.successes += 1;
            self.failures = 0;
        } else {
            self.failures += 1;
            self.successes = 0;
        }
        let verdict = if self.successes >= self.success_threshold {
            Some(true)
        } else if self.failures >= self.failure_threshold {
            Some(false)
        } else {
            return None;
        };
        if verdict == self.verdict {
            return None;
        }
        self.verdict = verdict;
        verdict
    }
}

/// Where and how probes reach the container.
#[derive(Debug, Clone)]
pub struct ProbeTarget {
    pub pod_ip: String,
    pub env: BTreeMap<String, String>,
    pub working_dir: PathBuf,
}

/// Runs one probe once; Err carries the failure message that goes into the Unhealthy event.
pub async fn run_once(action: &Action, timeout: Duration, target: &ProbeTarget) -> Result<(), String> {
    let attempt = async {
        match action {
            Action::Http {
                host,
                port,
                path,
                https,
                headers,
            } => {
                if *https {
                    return Err("HTTPS probes are not supported by the process kubelet".to_string());
                }
                let host = host.as_deref().unwrap_or(&target.pod_ip);
                http_get(host, *port, path, headers).await
            }
            Action::Tcp { host, port } => {
                let host = host.as_deref().unwrap_or(&target.pod_ip);
                TcpStream::connect((host, *port))
                    .await
                    .map(drop)
                    .map_err(|e| format!("dial tcp {host}:{port}: {e}"))
            }
            Action::Exec { command } => exec(command, target).await,
            Action::Unsupported(problem) => Err(problem.clone()),
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(format!("probe timed out after {}s", timeout.as_secs())),
    }
}

async fn http_get(host: &str, port: u16, path: &str, headers: &[(String, String)]) -> Result<(), String> {
    let url = format!("http://{host}:{port}{path}");
    let mut stream = TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("Get {url:?}: {e}"))?;
    let mut request =
        format!("GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/1.36\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("Accept: */*\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("Get {url:?}: {e}"))?;
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < 4096 {
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| format!("Get {url:?}: {e}"))?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let code = status_code(&head).ok_or_else(|| format!("Get {url:?}: malformed HTTP response"))?;
    if (200..400).contains(&code) {
        Ok(())
    } else {
        Err(format!("HTTP probe failed with statuscode: {code}"))
    }
}

/// The status code of an HTTP/1.x status line.
pub fn status_code(head: &[u8]) -> Option<u16> {
    let line = head.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split_whitespace();
    parts.next().filter(|v| v.starts_with("HTTP/"))?;
    parts.next()?.parse().ok()
}

async fn exec(command: &[String], target: &ProbeTarget) -> Result<(), String> {
    let (program, args) = command.split_first().ok_or("exec probe has an empty command")?;
    let output = tokio::process::Command::new(program)
        .args(args)
        .env_clear()
        .envs(&target.env)
        .current_dir(&target.working_dir)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("exec {program:?}: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    let text = text.trim();
    let detail = if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    };
    Err(format!(
        "command {command:?} exited with {}{detail}",
        output.status
    ))
}

/// What the probe loop of one container tells the pod worker.
#[derive(Debug)]
pub enum ProbeReport {
    Started,
    Ready(bool),
    /// Startup or liveness failed past its threshold: the container must be restarted.
    Unhealthy {
        kind: ProbeKind,
        message: String,
    },
    /// One failed attempt, for the Unhealthy event.
    Failed {
        kind: ProbeKind,
        message: String,
    },
}

/// The probes of one container, run until the task is aborted (when the container stops).
pub async fn run_container_probes(
    startup: Option<ProbeSpec>,
    readiness: Option<ProbeSpec>,
    liveness: Option<ProbeSpec>,
    target: ProbeTarget,
    report: mpsc::UnboundedSender<ProbeReport>,
) {
    if let Some(spec) = startup
        && !probe_until_verdict(ProbeKind::Startup, &spec, &target, &report).await
    {
        return;
    }
    let _ = report.send(ProbeReport::Started);
    let readiness_loop = async {
        match readiness {
            Some(spec) => probe_forever(ProbeKind::Readiness, &spec, &target, &report).await,
            None => {
                let _ = report.send(ProbeReport::Ready(true));
            }
        }
    };
    let liveness_loop = async {
        if let Some(spec) = liveness {
            probe_forever(ProbeKind::Liveness, &spec, &target, &report).await;
        }
    };
    tokio::join!(readiness_loop, liveness_loop);
}

/// A startup probe: true once it succeeds, false once it has failed past its threshold (reported).
async fn probe_until_verdict(
    kind: ProbeKind,
    spec: &ProbeSpec,
    target: &ProbeTarget,
    report: &mpsc::UnboundedSender<ProbeReport>,
) -> bool {
    tokio::time::sleep(spec.initial_delay).await;
    let mut tracker = ProbeTracker::new(spec, None);
    loop {
        let result = run_once(&spec.action, spec.timeout, target).await;
        if let Err(message) = &result {
            let _ = report.send(ProbeReport::Failed {
                kind,
                message: message.clone(),
            });
        }
        match tracker.observe(result.is_ok()) {
            Some(true) => return true,
            Some(false) => {
                let message = result.err().unwrap_or_default();
                let _ = report.send(ProbeReport::Unhealthy { kind, message });
                return false;
            }
            None => tokio::time::sleep(spec.period).await,
        }
    }
}

/// Readiness reports each change of verdict; liveness reports the first failure verdict and stops.
async fn probe_forever(
    kind: ProbeKind,
    spec: &ProbeSpec,
    target: &ProbeTarget,
    report: &mpsc::UnboundedSender<ProbeReport>,
) {
    tokio::time::sleep(spec.initial_delay).await;
    let initial = if kind == ProbeKind::Readiness {
        Some(false)
    } else {
        Some(true)
    };
    let mut tracker = ProbeTracker::new(spec, initial);
    loop {
        let result = run_once(&spec.action, spec.timeout, target).await;
        if let Err(message) = &result {
            let _ = report.send(ProbeReport::Failed {
                kind,
                message: message.clone(),
            });
        }
        match (kind, tracker.observe(result.is_ok())) {
            (ProbeKind::Readiness, Some(ready)) => {
                let _ = report.send(ProbeReport::Ready(ready));
            }
            (ProbeKind::Liveness, Some(false)) => {
                let message = result.err().unwrap_or_default();
                let _ = report.send(ProbeReport::Unhealthy { kind, message });
                return;
            }
            _ => {}
        }
        if report.is_closed() {
            return;
        }
        tokio::time::sleep(spec.period).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn container() -> Container {
        serde_json::from_value(json!({"name": "web", "ports": [{"name": "http", "containerPort": 8080}]}))
            .expect("valid container")
    }

    fn spec(probe: serde_json::Value) -> ProbeSpec {
        let probe: Probe = serde_json::from_value(probe).expect("valid probe");
        ProbeSpec::from_k8s(&probe, &container())
    }

    #[test]
    fn defaults_and_named_ports() {
        let s = spec(json!({"httpGet": {"port": "http"}}));
        assert_eq!(
            s.action,
            Action::Http {
                host: None,
                port: 8080,
                path: "/".into(),
                https: false,
                headers: vec![]
            }
        );
        assert_eq!((s.period.as_secs(), s.timeout.as_secs()), (10, 1));
        assert_eq!((s.success_threshold, s.failure_threshold), (1, 3));
        let s = spec(json!({"tcpSocket": {"port": "metrics"}, "periodSeconds": 2, "initialDelaySeconds": 5}));
        assert!(matches!(s.action, Action::Unsupported(ref m) if m.contains("metrics")));
        assert_eq!((s.period.as_secs(), s.initial_delay.as_secs()), (2, 5));
    }

    #[test]
    fn tracker_needs_consecutive_results() {
        let s = spec(json!({"exec": {"command": ["true"]}, "successThreshold": 2, "failureThreshold": 2}));
        let mut t = ProbeTracker::new(&s, Some(false));
        assert_eq!(t.observe(true), None);
        assert_eq!(t.observe(false), None);
        assert_eq!(t.observe(true), None);
        assert_eq!(t.observe(true), Some(true));
        assert_eq!(t.observe(true), None, "no repeat of an unchanged verdict");
        assert_eq!(t.observe(false), None);
        assert_eq!(t.observe(false), Some(false));
    }

    #[test]
    fn parses_status_lines() {
        assert_eq!(status_code(b"HTTP/1.1 204 No Content\r\n"), Some(204));
        assert_eq!(status_code(b"HTTP/1.0 503\r\n"), Some(503));
        assert_eq!(status_code(b"SSH-2.0-OpenSSH\r\n"), None);
    }

    #[tokio::test]
    async fn probes_reach_real_sockets_and_programs() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            for status in ["200 OK", "500 Internal Server Error"] {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let mut buf = [0u8; 1024];
                let _ = socket.read(&mut buf).await;
                let _ = socket
                    .write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .await;
            }
        });
        let target = ProbeTarget {
            pod_ip: "127.0.0.1".into(),
            env: [("PATH".to_string(), std::env::var("PATH").unwrap_or_default())]
                .into_iter()
                .collect(),
            working_dir: std::env::temp_dir(),
        };
        let http = Action::Http {
            host: None,
            port,
            path: "/ready".into(),
            https: false,
            headers: vec![],
        };
        let timeout = Duration::from_secs(2);
        assert_eq!(run_once(&http, timeout, &target).await, Ok(()));
        let failed = run_once(&http, timeout, &target).await.expect_err("500 fails");
        assert!(failed.contains("500"), "{failed}");
        let exec_ok = Action::Exec {
            command: vec!["sh".into(), "-c".into(), "exit 0".into()],
        };
        assert_eq!(run_once(&exec_ok, timeout, &target).await, Ok(()));
        let exec_bad = Action::Exec {
            command: vec!["sh".into(), "-c".into(), "echo nope; exit 3".into()],
        };
        let failed = run_once(&exec_bad, timeout, &target)
            .await
            .expect_err("exit 3 fails");
        assert!(failed.contains("nope"), "{failed}");
        let slow = Action::Exec {
            command: vec!["sleep".into(), "5".into()],
        };
        let failed = run_once(&slow, Duration::from_millis(200), &target)
            .await
            .expect_err("times out");
        assert!(failed.contains("timed out"), "{failed}");
    }
}
