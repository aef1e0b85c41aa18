//! A TCP proxy in front of a real server that can be switched off: a storage outage without stopping the
//! shared emulator. While off, new connections are reset and existing ones are cut.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

pub struct OutageProxy {
    pub port: u16,
    up: Arc<AtomicBool>,
    /// Bumped when switched off, so connections opened before the outage end.
    epoch: Arc<AtomicU64>,
}

impl OutageProxy {
    pub async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let up = Arc::new(AtomicBool::new(true));
        let epoch = Arc::new(AtomicU64::new(0));
        let (up2, epoch2) = (up.clone(), epoch.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    let _ = client.shutdown().await;
                    continue;
                }
                let (target, epoch) = (target.clone(), epoch2.clone());
                let opened = epoch.load(Ordering::SeqCst);
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    let copy = tokio::io::copy_bidirectional(&mut client, &mut server);
                    let cut = async {
                        while epoch.load(Ordering::SeqCst) == opened {
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        }
                    };
                    tokio::select! {
                        _ = copy => {}
                        _ = cut => {}
                    }
                });
            }
        });
        Self { port, up, epoch }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
        if !up {
            self.epoch.fetch_add(1, Ordering::SeqCst);
        }
    }
}
