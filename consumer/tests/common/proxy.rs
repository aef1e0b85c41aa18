//! A TCP proxy in front of a real server, for two things the shared emulator cannot do for a test:
//! be switched off (a storage outage: new connections are reset, open ones cut) and count the
//! resumable-upload requests that went through it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The request line of a resumable upload chunk (JSON API).
const CHUNK_REQUEST: &[u8] = b"PUT /upload/storage/v1/b/";

pub struct OutageProxy {
    address: std::net::SocketAddr,
    up: Arc<AtomicBool>,
    /// Bumped when switched off, so connections opened before the outage end.
    epoch: Arc<AtomicU64>,
    chunk_requests: Arc<AtomicU64>,
}

impl OutageProxy {
    pub async fn start(target: String) -> Self {
        Self::serve(
            TcpListener::bind("127.0.0.1:0").await.expect("bind proxy"),
            target,
        )
    }

    /// Listens on port 80 of a loopback address of its own (needs root or CAP_NET_BIND_SERVICE).
    ///
    /// The storage crate drops the endpoint's port from the Host header, and the emulator builds its
    /// resumable-upload session URLs from that header; on port 80 those URLs are right.
    pub async fn start_on_port_80(target: String) -> Self {
        for _ in 0..20 {
            let ip = std::net::Ipv4Addr::new(127, 0, rand_octet(), rand_octet().max(2));
            if let Ok(listener) = TcpListener::bind((ip, 80)).await {
                return Self::serve(listener, target);
            }
        }
        panic!(
            "cannot listen on port 80 of any loopback address (the test needs root or CAP_NET_BIND_SERVICE)"
        );
    }

    fn serve(listener: TcpListener, target: String) -> Self {
        let address = listener.local_addr().expect("addr");
        let proxy = Self {
            address,
            up: Arc::new(AtomicBool::new(true)),
            epoch: Arc::new(AtomicU64::new(0)),
            chunk_requests: Arc::new(AtomicU64::new(0)),
        };
        let (up, epoch, chunks) = (
            proxy.up.clone(),
            proxy.epoch.clone(),
            proxy.chunk_requests.clone(),
        );
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !up.load(Ordering::SeqCst) {
                    let _ = client.shutdown().await;
                    continue;
                }
                let (target, epoch, chunks) = (target.clone(), epoch.clone(), chunks.clone());
                let opened = epoch.load(Ordering::SeqCst);
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    let upstream = async {
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            let n = match client_read.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            let found = buf[..n]
                                .windows(CHUNK_REQUEST.len())
                                .filter(|w| *w == CHUNK_REQUEST)
                                .count();
                            chunks.fetch_add(found as u64, Ordering::SeqCst);
                            if server_write.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    };
                    let downstream = tokio::io::copy(&mut server_read, &mut client_write);
                    let cut = async {
                        while epoch.load(Ordering::SeqCst) == opened {
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        }
                    };
                    tokio::select! {
                        _ = upstream => {}
                        _ = downstream => {}
                        _ = cut => {}
                    }
                });
            }
        });
        proxy
    }

    pub fn endpoint(&self) -> String {
        match self.address.port() {
            80 => format!("http://{}", self.address.ip()),
            port => format!("http://{}:{port}", self.address.ip()),
        }
    }

    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
        if !up {
            self.epoch.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Resumable-upload chunk requests seen so far.
    pub fn chunk_requests(&self) -> u64 {
        self.chunk_requests.load(Ordering::SeqCst)
    }
}

fn rand_octet() -> u8 {
    (uuid::Uuid::new_v4().as_u128() % 250) as u8 + 1
}
