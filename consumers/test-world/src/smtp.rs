//! A plain-text SMTP sink for tests: it accepts what an SMTP client sends and keeps it.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::TcpListener,
};

/// One message an [`SmtpSink`] accepted.
#[derive(Clone, Debug)]
pub struct Captured {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    /// The DATA, dot-unstuffed, without the final `.` line.
    pub data: Vec<u8>,
    /// When the sink accepted it (before its `250`).
    pub received_at: std::time::Instant,
    /// When the sink accepted the connection that carried it, before its greeting: the client
    /// was alive then (SMTP clients wait for the greeting), so a crash of the sender after this
    /// instant may have cut it off before it recorded the send.
    pub connected_at: std::time::Instant,
}

/// A plain-text SMTP server on 127.0.0.1 speaking just enough SMTP for lettre: greeting,
/// EHLO/HELO, MAIL FROM, RCPT TO, DATA, RSET, NOOP, QUIT. It answers every RCPT TO with
/// `rcpt_reply` (default `250 2.1.5 Ok`) and records each accepted message before its `250`.
pub struct SmtpSink {
    pub addr: SocketAddr,
    captured: Arc<Mutex<Vec<Captured>>>,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SmtpSink {
    /// A sink that accepts everything.
    pub async fn accepting() -> Self {
        Self::start("250 2.1.5 Ok").await
    }

    /// A sink that answers RCPT TO with `reply` (`"550 5.1.1 …"`).
    pub async fn start(rcpt_reply: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the SMTP sink");
        let addr = listener.local_addr().expect("sink address");
        let captured = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let task = {
            let captured = Arc::clone(&captured);
            let connections = Arc::clone(&connections);
            tokio::spawn(async move {
                while let Ok((socket, _)) = listener.accept().await {
                    let connected_at = std::time::Instant::now();
                    connections.fetch_add(1, Ordering::SeqCst);
                    let captured = Arc::clone(&captured);
                    tokio::spawn(async move {
                        // A client hanging up mid-dialogue is not the test's concern.
                        let _ = session(socket, connected_at, rcpt_reply, captured).await;
                    });
                }
            })
        };
        SmtpSink { addr, captured, connections, task }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The messages accepted so far.
    pub fn captured(&self) -> Vec<Captured> {
        self.captured.lock().expect("sink lock").clone()
    }

    /// The connections accepted so far (one per send attempt).
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

async fn session(
    socket: tokio::net::TcpStream,
    connected_at: std::time::Instant,
    rcpt_reply: &'static str,
    captured: Arc<Mutex<Vec<Captured>>>,
) -> std::io::Result<()> {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 sink.test ESMTP ready\r\n").await?;
    let mut mail_from = String::new();
    let mut rcpt_to = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_owned();
        let verb = command.split_whitespace().next().unwrap_or_default().to_ascii_uppercase();
        let reply: String = match verb.as_str() {
            "EHLO" => "250-sink.test\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 PIPELINING".to_owned(),
            "HELO" => "250 sink.test".to_owned(),
            "MAIL" => {
                mail_from = command.clone();
                rcpt_to.clear();
                "250 2.1.0 Ok".to_owned()
            }
            "RCPT" => {
                if rcpt_reply.starts_with('2') {
                    rcpt_to.push(command.clone());
                }
                rcpt_reply.to_owned()
            }
            "DATA" => {
                write.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n").await?;
                let mut data = Vec::new();
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" {
                        break;
                    }
                    let unstuffed = line.strip_prefix('.').unwrap_or(&line);
                    data.extend_from_slice(unstuffed.as_bytes());
                }
                captured.lock().expect("sink lock").push(Captured {
                    mail_from: mail_from.clone(),
                    rcpt_to: rcpt_to.clone(),
                    data,
                    received_at: std::time::Instant::now(),
                    connected_at,
                });
                "250 2.0.0 Ok: queued as 4F2A91C0".to_owned()
            }
            "RSET" | "NOOP" => "250 2.0.0 Ok".to_owned(),
            "QUIT" => {
                write.write_all(b"221 2.0.0 Bye\r\n").await?;
                return Ok(());
            }
            _ => "502 5.5.2 Command not recognized".to_owned(),
        };
        write.write_all(format!("{reply}\r\n").as_bytes()).await?;
    }
}
