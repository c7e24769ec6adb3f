//! A webhook endpoint that holds every request until the test lets the answers go: the test can
//! act while the delivery worker is mid-send (its lease taken, its report not yet written).

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
};

pub struct HeldEndpoint {
    pub url: String,
    arrived: Arc<AtomicUsize>,
    release: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HeldEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HeldEndpoint {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the held endpoint");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let arrived = Arc::new(AtomicUsize::new(0));
        let (release, released) = watch::channel(false);
        let task = {
            let arrived = arrived.clone();
            tokio::spawn(async move {
                while let Ok((socket, _)) = listener.accept().await {
                    let (arrived, released) = (arrived.clone(), released.clone());
                    // A client giving up mid-request is not the test's concern.
                    tokio::spawn(async move { drop(answer(socket, arrived, released).await) });
                }
            })
        };
        Self { url, arrived, release, task }
    }

    /// Requests read in full so far (answered or held).
    pub fn arrived(&self) -> usize {
        self.arrived.load(Ordering::SeqCst)
    }

    /// Answers the held requests, and every later one at once, with 200.
    pub fn release(&self) {
        self.release.send_replace(true);
    }
}

async fn answer(
    mut socket: TcpStream,
    arrived: Arc<AtomicUsize>,
    mut released: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    // The head, then as much body as its content-length says.
    let body_start = loop {
        let n = socket.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        request.extend_from_slice(&buf[..n]);
        if let Some(at) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&request[..body_start]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while request.len() < body_start + length {
        let n = socket.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        request.extend_from_slice(&buf[..n]);
    }
    arrived.fetch_add(1, Ordering::SeqCst);
    if released.wait_for(|go| *go).await.is_err() {
        return Ok(());
    }
    socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").await?;
    socket.shutdown().await
}
