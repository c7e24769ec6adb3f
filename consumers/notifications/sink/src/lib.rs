//! A plain-text SMTP sink: it accepts what an SMTP client sends and keeps it.
//!
//! The tests and the soak read what it kept ([`SmtpSink::captured`]); the local stack runs it as
//! `studyspot mail-sink`, which also writes each message as an `.eml` file into a directory
//! ([`SmtpSink::serve`]), so the e-mail the notifications consumer sends can be read there.
//! It speaks just enough SMTP for lettre and listens where it is told (loopback in every use).

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
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
    /// The `.eml` file it was written to, when the sink writes files.
    pub file: Option<PathBuf>,
}

/// A plain-text SMTP server speaking just enough SMTP for lettre: greeting, EHLO/HELO, MAIL FROM,
/// RCPT TO, DATA, RSET, NOOP, QUIT. It answers every RCPT TO with `rcpt_reply` (default
/// `250 2.1.5 Ok`) and records each accepted message before its `250` (and writes it to its
/// directory first, when it has one: a message it could not write is answered `451`, so the
/// sender tries again).
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

/// What a session needs besides its socket.
#[derive(Clone)]
struct Shared {
    rcpt_reply: &'static str,
    captured: Arc<Mutex<Vec<Captured>>>,
    spool: Option<Arc<Path>>,
    /// Tells apart files written in the same millisecond.
    written: Arc<AtomicUsize>,
}

impl SmtpSink {
    /// A sink on a free port of 127.0.0.1 that accepts everything (for tests: panics when it
    /// cannot listen).
    pub async fn accepting() -> Self {
        Self::start("250 2.1.5 Ok").await
    }

    /// A sink on a free port of 127.0.0.1 that answers RCPT TO with `reply` (`"550 5.1.1 …"`).
    pub async fn start(rcpt_reply: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the SMTP sink");
        Self::on(listener, rcpt_reply, None).expect("sink address")
    }

    /// A sink listening on `listen` that accepts everything and writes each message to
    /// `spool` (created when missing) as `<received, UTC>-<n>.eml`.
    pub async fn serve(listen: SocketAddr, spool: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(spool)?;
        let listener = TcpListener::bind(listen).await?;
        Self::on(listener, "250 2.1.5 Ok", Some(Arc::from(spool)))
    }

    fn on(
        listener: TcpListener,
        rcpt_reply: &'static str,
        spool: Option<Arc<Path>>,
    ) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let captured = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let shared = Shared {
            rcpt_reply,
            captured: Arc::clone(&captured),
            spool,
            written: Arc::new(AtomicUsize::new(0)),
        };
        let task = {
            let connections = Arc::clone(&connections);
            tokio::spawn(async move {
                while let Ok((socket, _)) = listener.accept().await {
                    let connected_at = std::time::Instant::now();
                    connections.fetch_add(1, Ordering::SeqCst);
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        // A client hanging up mid-dialogue is its own concern.
                        let _ = session(socket, connected_at, shared).await;
                    });
                }
            })
        };
        Ok(SmtpSink { addr, captured, connections, task })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The messages accepted so far.
    pub fn captured(&self) -> Vec<Captured> {
        self.captured.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// The connections accepted so far (one per send attempt).
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Where `studyspot mail-sink` and `studyspot-mail-sink` listen and write, and where the demo
/// looks for the mail: `STUDYSPOT_MAIL_DIR`, else `$STUDYSPOT_HOME/mail`, else
/// `~/.local/share/studyspot/mail` (the local stack's home).
pub fn default_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("STUDYSPOT_MAIL_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("STUDYSPOT_HOME").filter(|d| !d.is_empty()).map_or_else(
        || PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".local/share/studyspot"),
        PathBuf::from,
    );
    home.join("mail")
}

/// The SMTP address of the local stack's sink: where the notifications consumer's e-mail channel
/// points (`STUDYSPOT_NOTIFICATIONS__CHANNELS__EMAIL__HOST` and `__PORT`, as `up` sets them),
/// else 127.0.0.1:2525.
pub fn default_listen() -> String {
    let host = std::env::var("STUDYSPOT_NOTIFICATIONS__CHANNELS__EMAIL__HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "127.0.0.1".into());
    let port = std::env::var("STUDYSPOT_NOTIFICATIONS__CHANNELS__EMAIL__PORT")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "2525".into());
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

/// Runs a sink as a service until `shutdown`: SMTP on `listen` (loopback only: a sink taking
/// anybody's mail has no place on a shared interface), each message written to `dir`, and
/// `/health` `/ready` `/metrics` on `ops` (ready once both listen).
pub async fn run(
    listen: &str,
    dir: &Path,
    ops: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let addr: SocketAddr = tokio::net::lookup_host(listen)
        .await
        .map_err(|e| format!("SMTP address {listen}: {e}"))?
        .next()
        .ok_or_else(|| format!("SMTP address {listen} resolves to nothing"))?;
    if !addr.ip().is_loopback() {
        return Err(format!("the mail sink listens on loopback only, not {addr}"));
    }
    let sink = SmtpSink::serve(addr, dir)
        .await
        .map_err(|e| format!("cannot listen for SMTP on {addr} and write to {}: {e}", dir.display()))?;
    tracing::info!(smtp = %sink.addr, dir = %dir.display(), "mail sink accepting; each message becomes an .eml file");
    let readiness = studyspot_telemetry::Readiness::default().with(Greets(sink.addr));
    let ops_listener = studyspot_telemetry::serve_ops("mail-sink", ops, readiness, shutdown);
    let logging = async {
        let mut seen = 0;
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(200));
        loop {
            tick.tick().await;
            let captured = sink.captured();
            for message in captured.iter().skip(seen) {
                let to = message.rcpt_to.join(", ");
                let file = message.file.as_deref().map(Path::display);
                tracing::info!(to, file = %file.map(|f| f.to_string()).unwrap_or_default(), "message received");
            }
            seen = captured.len();
        }
    };
    tokio::select! {
        served = ops_listener => served.map_err(|e| format!("operational endpoints on {ops}: {e}")),
        () = logging => Ok(()),
    }
}

/// `/ready`'s check: the SMTP listener greets a client.
struct Greets(SocketAddr);

impl studyspot_telemetry::ReadinessCheck for Greets {
    fn name(&self) -> &'static str {
        "smtp"
    }

    fn check(&self) -> studyspot_telemetry::CheckFuture {
        let addr = self.0;
        Box::pin(async move {
            let socket = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("{addr}: {e}"))?;
            let mut greeting = String::new();
            BufReader::new(socket).read_line(&mut greeting).await.map_err(|e| format!("{addr}: {e}"))?;
            if greeting.starts_with("220") { Ok(()) } else { Err(format!("{addr} greeted {greeting:?}")) }
        })
    }
}

/// Writes one message as an `.eml` file (a temporary name first, so a reader never sees half).
fn write_eml(dir: &Path, n: usize, data: &[u8]) -> std::io::Result<PathBuf> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let name = format!("{}-{n:04}.eml", utc_stamp(now.as_secs(), now.subsec_millis()));
    let path = dir.join(&name);
    let partial = dir.join(format!(".{name}.partial"));
    std::fs::write(&partial, data)?;
    std::fs::rename(&partial, &path)?;
    Ok(path)
}

/// `YYYYMMDDTHHMMSS.mmmZ` of seconds since the epoch (civil date from days, Howard Hinnant's
/// algorithm), so files sort by when they arrived.
fn utc_stamp(secs: u64, millis: u32) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rest = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}.{millis:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

async fn session(
    socket: tokio::net::TcpStream,
    connected_at: std::time::Instant,
    shared: Shared,
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
                if shared.rcpt_reply.starts_with('2') {
                    rcpt_to.push(command.clone());
                }
                shared.rcpt_reply.to_owned()
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
                let file = match &shared.spool {
                    None => Ok(None),
                    Some(dir) => {
                        let n = shared.written.fetch_add(1, Ordering::SeqCst);
                        write_eml(dir, n, &data).map(Some)
                    }
                };
                match file {
                    Ok(file) => {
                        if let Ok(mut captured) = shared.captured.lock() {
                            captured.push(Captured {
                                mail_from: mail_from.clone(),
                                rcpt_to: rcpt_to.clone(),
                                data,
                                received_at: std::time::Instant::now(),
                                connected_at,
                                file,
                            });
                        }
                        "250 2.0.0 Ok: queued as 4F2A91C0".to_owned()
                    }
                    Err(e) => format!("451 4.3.0 cannot write the message: {e}"),
                }
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

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    use super::{SmtpSink, utc_stamp};

    #[test]
    fn stamps_are_the_utc_civil_time() {
        assert_eq!(utc_stamp(0, 0), "19700101T000000.000Z");
        // 2026-12-06T09:30:05Z
        assert_eq!(utc_stamp(1_796_549_405, 7), "20261206T093005.007Z");
        // A leap day.
        assert_eq!(utc_stamp(951_782_400, 999), "20000229T000000.999Z");
    }

    #[tokio::test]
    async fn a_message_is_written_to_the_directory_before_its_250() {
        let dir = std::env::temp_dir().join(format!("studyspot-sink-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let sink = SmtpSink::serve("127.0.0.1:0".parse().unwrap(), &dir).await.unwrap();
        let socket = tokio::net::TcpStream::connect(sink.addr).await.unwrap();
        let (read, mut write) = socket.into_split();
        let mut read = BufReader::new(read);
        let mut reply = String::new();
        for line in [
            "",
            "EHLO client\r\n",
            "MAIL FROM:<a@studyspot.test>\r\n",
            "RCPT TO:<b@studyspot.test>\r\n",
            "DATA\r\n",
            "Subject: hi\r\n\r\n..dot-stuffed\r\n.\r\n",
        ] {
            write.write_all(line.as_bytes()).await.unwrap();
            reply.clear();
            read.read_line(&mut reply).await.unwrap();
            while reply.lines().last().and_then(|l| l.as_bytes().get(3)) == Some(&b'-') {
                read.read_line(&mut reply).await.unwrap();
            }
            assert!(reply.starts_with('2') || reply.starts_with("354"), "{line:?}: {reply}");
        }
        assert!(reply.starts_with("250"), "the message accepted: {reply}");
        let captured = sink.captured();
        let file = captured[0].file.clone().expect("written to a file");
        assert_eq!(file.parent(), Some(dir.as_path()));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "Subject: hi\r\n\r\n.dot-stuffed\r\n");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "no partial file left");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
