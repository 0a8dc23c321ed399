//! The control socket: a Unix stream socket at `/run/grelay/<interface>.sock` (mode 0600 in a
//! 0700 directory, so root only; the peer's uid is checked too).
//!
//! One JSON request per line, one JSON reply per line:
//!
//! ```text
//! → {"request":"status"}      ← {"ok":true,"status":{…StatusReport…}}
//! → {"request":"down"}        ← {"ok":true}   (then the process tears down and exits)
//! → anything else             ← {"ok":false,"error":"…"}
//! ```
//!
//! The server only parses and forwards: requests reach the packet loop as [`Command`]s on a
//! channel, and the loop answers them, so all state stays in one task.

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

use crate::state::remove_file;
use crate::status::StatusReport;

/// Longest request line read.
const MAX_REQUEST: u64 = 4096;
/// How long a connection may take to send its request, and the loop to answer.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// A request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    /// Report the tunnel's status.
    Status,
    /// Tear down and exit.
    Down,
}

/// A reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// Whether the request was carried out.
    pub ok: bool,
    /// The status, for `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusReport>,
    /// What went wrong, when not ok.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Reply {
    /// A plain success.
    pub fn ok() -> Self {
        Self {
            ok: true,
            status: None,
            error: None,
        }
    }

    /// A failure with a message.
    pub fn error(message: impl Into<String>) -> Self {
        Self {
            ok: false,
            status: None,
            error: Some(message.into()),
        }
    }
}

/// A request for the packet loop, with where to send its reply.
#[derive(Debug)]
pub struct Command {
    /// What is asked.
    pub request: Request,
    /// Where the answer goes.
    pub reply: oneshot::Sender<Reply>,
}

/// The listening socket; dropping it stops accepting and removes the socket file.
#[derive(Debug)]
pub struct Server {
    path: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
        if let Err(e) = remove_file(&self.path) {
            tracing::warn!("{e:#}");
        }
    }
}

/// Listens at `path` (replacing a stale socket file) and forwards requests to `commands`.
pub fn serve(path: &Path, commands: mpsc::Sender<Command>) -> Result<Server> {
    remove_file(path)?;
    let listener =
        UnixListener::bind(path).with_context(|| format!("listening on {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("setting mode 0600 on {}", path.display()))?;
    let task = tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let commands = commands.clone();
                    tokio::spawn(async move {
                        if let Err(e) = connection(stream, commands).await {
                            tracing::debug!("control connection: {e:#}");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!("control socket accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(Server {
        path: path.to_owned(),
        task,
    })
}

/// Serves one connection: one request, one reply.
async fn connection(stream: UnixStream, commands: mpsc::Sender<Command>) -> Result<()> {
    let peer = stream.peer_cred().context("reading peer credentials")?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let (read, mut write) = stream.into_split();
    let reply = if peer.uid() != 0 && peer.uid() != me {
        Reply::error("permission denied")
    } else {
        let mut line = String::new();
        let mut reader = tokio::io::BufReader::new(read.take(MAX_REQUEST));
        tokio::time::timeout(IO_TIMEOUT, reader.read_line(&mut line))
            .await
            .context("request timed out")?
            .context("reading the request")?;
        match serde_json::from_str::<Request>(line.trim()) {
            Ok(request) => forward(request, &commands).await,
            Err(e) => Reply::error(format!(
                "bad request ({e}): send {{\"request\":\"status\"}} or {{\"request\":\"down\"}}"
            )),
        }
    };
    let mut text = serde_json::to_vec(&reply)?;
    text.push(b'\n');
    tokio::time::timeout(IO_TIMEOUT, write.write_all(&text))
        .await
        .context("reply timed out")?
        .context("writing the reply")
}

async fn forward(request: Request, commands: &mpsc::Sender<Command>) -> Reply {
    let (tx, rx) = oneshot::channel();
    if commands.send(Command { request, reply: tx }).await.is_err() {
        return Reply::error("shutting down");
    }
    match tokio::time::timeout(IO_TIMEOUT, rx).await {
        Ok(Ok(reply)) => reply,
        Ok(Err(_)) => Reply::error("shutting down"),
        Err(_) => Reply::error("no answer from the packet loop"),
    }
}

/// Sends `request` to the socket at `path` and returns the reply (blocking; for the CLI).
pub fn request(path: &Path, request: Request) -> Result<Reply> {
    let mut stream = std::os::unix::net::UnixStream::connect(path)
        .with_context(|| format!("connecting to {}", path.display()))?;
    stream.set_read_timeout(Some(IO_TIMEOUT * 2))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut line = serde_json::to_vec(&request)?;
    line.push(b'\n');
    stream.write_all(&line).context("sending the request")?;
    let mut answer = String::new();
    BufReader::new(std::io::Read::take(&stream, 1 << 20))
        .read_line(&mut answer)
        .context("reading the reply")?;
    if answer.is_empty() {
        bail!("{} closed the connection without a reply", path.display());
    }
    serde_json::from_str(answer.trim()).map_err(|e| anyhow!("bad reply ({e}): {answer}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format() {
        assert_eq!(
            serde_json::to_string(&Request::Status).unwrap(),
            r#"{"request":"status"}"#
        );
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"request":"down"}"#).unwrap(),
            Request::Down
        );
        assert_eq!(
            serde_json::to_string(&Reply::ok()).unwrap(),
            r#"{"ok":true}"#
        );
        assert!(serde_json::from_str::<Request>(r#"{"request":"rm -rf"}"#).is_err());
    }

    #[tokio::test]
    async fn server_forwards_requests_and_rejects_garbage() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("g.sock");
        let (tx, mut rx) = mpsc::channel(4);
        let server = serve(&path, tx).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let answerer = tokio::spawn(async move {
            while let Some(cmd) = rx.recv().await {
                let reply = match cmd.request {
                    Request::Status => Reply::error("no status in this test"),
                    Request::Down => Reply::ok(),
                };
                let _ = cmd.reply.send(reply);
            }
        });
        let p = path.clone();
        let (down, status, garbage) = tokio::task::spawn_blocking(move || {
            let garbage = {
                let mut s = std::os::unix::net::UnixStream::connect(&p).unwrap();
                s.write_all(b"hello\n").unwrap();
                let mut line = String::new();
                BufReader::new(&s).read_line(&mut line).unwrap();
                serde_json::from_str::<Reply>(&line).unwrap()
            };
            (
                request(&p, Request::Down).unwrap(),
                request(&p, Request::Status).unwrap(),
                garbage,
            )
        })
        .await
        .unwrap();
        assert_eq!(down, Reply::ok());
        assert_eq!(status.error.as_deref(), Some("no status in this test"));
        assert!(!garbage.ok);
        assert!(garbage.error.unwrap().contains("bad request"));
        drop(server);
        assert!(!path.exists());
        answerer.abort();
    }
}
