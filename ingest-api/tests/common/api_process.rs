//! The real `ingest-api` binary serving a harness's dataset on a free port, killed if a test fails early.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use super::Harness;

pub struct ApiProcess {
    child: Child,
    contracts: PathBuf,
    /// `http://127.0.0.1:<port>`
    pub base: String,
}

impl ApiProcess {
    /// Starts `ingest-api serve` with the shipped orders contract under the harness's dataset name and
    /// `extra` flags, and waits until /readyz answers 200.
    pub async fn start(h: &Harness, extra: &[&str]) -> Self {
        let contracts = std::env::temp_dir().join(streamlake_testkit::unique_name("contracts"));
        std::fs::create_dir_all(&contracts).expect("contracts dir");
        let contract = concat!(env!("CARGO_MANIFEST_DIR"), "/../contracts/orders.v1.json");
        std::fs::copy(contract, contracts.join(format!("{}.v1.json", h.dataset))).expect("contract copied");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("port")
            .local_addr()
            .expect("addr")
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_ingest-api"))
            .arg("serve")
            .arg(format!("--listen-addr=127.0.0.1:{port}"))
            .args(extra)
            .arg("--contracts-dir")
            .arg(&contracts)
            .env("KAFKA_BOOTSTRAP_SERVERS", &h.bootstrap)
            .stdout(Stdio::null())
            .spawn()
            .expect("ingest-api starts");
        let api = Self {
            child,
            contracts,
            base: format!("http://127.0.0.1:{port}"),
        };
        let http = streamlake_testkit::http_client();
        let ready = format!("{}/readyz", api.base);
        streamlake_testkit::wait_until("ingest-api is ready", Duration::from_secs(30), || {
            let (http, ready) = (http.clone(), ready.clone());
            async move { matches!(http.get(&ready).send().await, Ok(r) if r.status().is_success()) }
        })
        .await;
        api
    }

    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid"))
    }

    /// Blocks until the process exits by itself.
    pub fn wait(&mut self) -> ExitStatus {
        self.child.wait().expect("wait for ingest-api")
    }
}

impl Drop for ApiProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.contracts);
    }
}
