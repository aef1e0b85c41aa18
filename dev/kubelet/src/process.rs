//! The process runtime: a container is a local process leading its own process group, its output appended
//! to a log file, its pid and kernel start time recorded so a restarted kubelet can find it again.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot open log file {path}: {source}")]
    Log { path: PathBuf, source: std::io::Error },
    #[error("exec {program:?}: {source}")]
    Exec { program: String, source: std::io::Error },
    #[error("started {program:?} but the kernel gave no pid")]
    NoPid { program: String },
}

#[derive(Debug, Clone)]
pub struct SpawnSpec {
    pub program: String,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub working_dir: PathBuf,
    pub log_path: PathBuf,
}

/// One process for good: pids are reused, (pid, start time in clock ticks since boot) are not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessId {
    pub pid: i32,
    pub start_ticks: u64,
}

impl ProcessId {
    pub fn is_alive(&self) -> bool {
        proc_start_ticks(self.pid) == Some(self.start_ticks)
    }

    pub fn container_id(&self) -> String {
        format!("process://{}-{}", self.pid, self.start_ticks)
    }
}

/// Starts the program in a new process group (the group is what gets signalled), stdin from /dev/null,
/// stdout and stderr appended to the log file so output survives the kubelet.
pub fn spawn(spec: &SpawnSpec) -> Result<(Child, ProcessId), RuntimeError> {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.log_path)
        .map_err(|source| RuntimeError::Log {
            path: spec.log_path.clone(),
            source,
        })?;
    let log_err = log.try_clone().map_err(|source| RuntimeError::Log {
        path: spec.log_path.clone(),
        source,
    })?;
    let mut command = Command::new(&spec.program);
    command
        .args(&spec.args)
        .env_clear()
        .envs(&spec.env)
        .current_dir(&spec.working_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_err))
        .process_group(0)
        .kill_on_drop(false);
    let child = command.spawn().map_err(|source| RuntimeError::Exec {
        program: spec.program.clone(),
        source,
    })?;
    let pid = child
        .id()
        .and_then(|pid| i32::try_from(pid).ok())
        .ok_or_else(|| RuntimeError::NoPid {
            program: spec.program.clone(),
        })?;
    // The child exists until we reap it, so its /proc entry is there to read.
    let start_ticks = proc_start_ticks(pid).unwrap_or(0);
    Ok((child, ProcessId { pid, start_ticks }))
}

/// Signals the whole process group led by `pid`; a group that is already gone is not an error.
pub fn signal_group(pid: i32, signal: Signal) -> Result<(), Errno> {
    match killpg(Pid::from_raw(pid), signal) {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot.
pub fn proc_start_ticks(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start_ticks(&stat)
}

fn parse_start_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses: count fields after its closing ')'.
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_whitespace().nth(19)?.parse().ok()
}

/// `<pod dir>/<container>.pid` holds "PID START_TICKS" while the container's process runs.
pub fn checkpoint_path(pod_dir: &Path, container: &str) -> PathBuf {
    pod_dir.join(format!("{container}.pid"))
}

pub fn write_checkpoint(pod_dir: &Path, container: &str, id: ProcessId) -> std::io::Result<()> {
    std::fs::write(
        checkpoint_path(pod_dir, container),
        format!("{} {}\n", id.pid, id.start_ticks),
    )
}

pub fn read_checkpoint(pod_dir: &Path, container: &str) -> Option<ProcessId> {
    let text = std::fs::read_to_string(checkpoint_path(pod_dir, container)).ok()?;
    let mut parts = text.split_whitespace();
    Some(ProcessId {
        pid: parts.next()?.parse().ok()?,
        start_ticks: parts.next()?.parse().ok()?,
    })
}

pub fn remove_checkpoint(pod_dir: &Path, container: &str) {
    let _ = std::fs::remove_file(checkpoint_path(pod_dir, container));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn start_ticks_survive_odd_command_names() {
        let stat =
            "4242 (my (odd) prog) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_start_ticks(stat), Some(987654));
        assert_eq!(parse_start_ticks("garbage"), None);
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("process-kubelet-test-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    #[tokio::test]
    async fn spawns_in_own_group_logs_output_and_signals_the_group() {
        let dir = temp_dir("spawn");
        let spec = SpawnSpec {
            program: "sh".into(),
            args: vec![
                "-c".into(),
                "trap 'echo got TERM from $GREETING; exit 0' TERM; echo started; while true; do sleep 0.1; done"
                    .into(),
            ],
            env: [
                ("PATH".to_string(), std::env::var("PATH").unwrap_or_default()),
                ("GREETING".to_string(), "kubelet".to_string()),
            ]
            .into_iter()
            .collect(),
            working_dir: dir.clone(),
            log_path: dir.join("main.log"),
        };
        let (mut child, id) = spawn(&spec).expect("spawns");
        assert!(id.is_alive());
        let pgid = nix::unistd::getpgid(Some(Pid::from_raw(id.pid))).expect("pgid");
        assert_eq!(pgid.as_raw(), id.pid, "the container leads its own process group");
        write_checkpoint(&dir, "main", id).expect("checkpoint");
        assert_eq!(read_checkpoint(&dir, "main"), Some(id));

        tokio::time::sleep(Duration::from_millis(300)).await;
        signal_group(id.pid, Signal::SIGTERM).expect("signal");
        let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
            .await
            .expect("exits")
            .expect("wait");
        assert!(status.success());
        assert!(!id.is_alive());
        let log = std::fs::read_to_string(dir.join("main.log")).expect("log");
        assert!(
            log.contains("started") && log.contains("got TERM from kubelet"),
            "{log}"
        );
        assert_eq!(
            signal_group(id.pid, Signal::SIGTERM),
            Ok(()),
            "a gone group is fine"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_missing_program_is_an_exec_error() {
        let dir = temp_dir("missing");
        let spec = SpawnSpec {
            program: "/nonexistent/program".into(),
            args: vec![],
            env: BTreeMap::new(),
            working_dir: dir.clone(),
            log_path: dir.join("x.log"),
        };
        let err = spawn(&spec).expect_err("cannot exec");
        assert!(err.to_string().contains("/nonexistent/program"), "{err}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
