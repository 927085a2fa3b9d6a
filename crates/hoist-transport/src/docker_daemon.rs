//! `docker-daemon:`: images exchanged with a running dockerd through its
//! Engine API on the unix socket (`DOCKER_HOST`, else
//! `/var/run/docker.sock`), without the docker CLI.
//!
//! The client is hyper 1's low-level HTTP/1 connection over a
//! `tokio::net::UnixStream` (the project's one HTTP stack; reqwest cannot
//! dial a unix socket), driven by a one-worker runtime the client owns. The
//! rest of the transport code is blocking, so bodies cross over through
//! bounded channels: an export is a plain `Read`, a load takes one, and
//! memory stays bounded whatever the image size. Being blocking, the client
//! is called from plain threads, never from inside an async runtime.

use bytes::Bytes;
use hoist_oci::Digest;
use http_body::Frame;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// The socket used when `DOCKER_HOST` is unset, as the docker CLI does.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";
/// Largest error or message body read from the daemon.
const MAX_MESSAGE: usize = 16 * 1024 * 1024;
/// Chunks in flight between the runtime and a blocking reader or writer.
const CHANNEL_DEPTH: usize = 16;
/// Size of the chunks a load reads from its input.
const CHUNK: usize = 256 * 1024;

/// Why talking to the Docker daemon failed; each names the socket.
#[derive(Debug, thiserror::Error)]
pub enum DockerDaemonError {
    /// `DOCKER_HOST` names something other than a unix socket.
    #[error("DOCKER_HOST={host}: {reason}")]
    BadHost {
        /// The value of `DOCKER_HOST`.
        host: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The socket could not be reached.
    #[error("cannot connect to the Docker daemon at unix://{}: {source}; is dockerd running, and may this user use its socket? (DOCKER_HOST selects another)", socket.display())]
    Connect {
        /// The socket path.
        socket: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The HTTP exchange failed.
    #[error("Docker daemon at unix://{}: {what}: {source}", socket.display())]
    Http {
        /// The socket path.
        socket: PathBuf,
        /// What was being done.
        what: String,
        /// hyper's error.
        source: hyper::Error,
    },
    /// The daemon answered with an error.
    #[error("Docker daemon at unix://{}: {message} (HTTP {status} for {what})", socket.display())]
    Daemon {
        /// The socket path.
        socket: PathBuf,
        /// The request.
        what: String,
        /// The HTTP status.
        status: u16,
        /// The daemon's message.
        message: String,
    },
    /// The daemon's answer could not be understood.
    #[error("Docker daemon at unix://{}: {what}: unexpected answer: {reason}", socket.display())]
    BadResponse {
        /// The socket path.
        socket: PathBuf,
        /// The request.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading the archive to load failed.
    #[error("reading the image archive to send to the Docker daemon at unix://{}: {source}", socket.display())]
    Input {
        /// The socket path.
        socket: PathBuf,
        /// The error of the reader.
        source: io::Error,
    },
    /// The client's runtime could not start.
    #[error("cannot start the Docker client's I/O runtime: {0}")]
    Runtime(io::Error),
}

impl DockerDaemonError {
    /// True when the daemon said the image does not exist (HTTP 404).
    pub fn is_not_found(&self) -> bool {
        matches!(self, DockerDaemonError::Daemon { status: 404, .. })
    }
}

/// What the daemon says of an image (`GET /images/{name}/json`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaemonImage {
    /// The image ID (config digest).
    pub id: Digest,
    /// `name:tag` references.
    pub repo_tags: Vec<String>,
    /// `name@digest` references.
    pub repo_digests: Vec<String>,
    /// The layers' diffIDs, base first.
    pub diff_ids: Vec<Digest>,
    /// Operating system.
    pub os: String,
    /// CPU architecture.
    pub architecture: String,
    /// The daemon's JSON answer, as received.
    pub raw: Vec<u8>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectBody {
    id: Digest,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    #[serde(default)]
    repo_digests: Option<Vec<String>>,
    #[serde(default, rename = "RootFS")]
    root_fs: Option<InspectRootFs>,
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectRootFs {
    #[serde(default)]
    layers: Option<Vec<Digest>>,
}

/// One message of the daemon's JSON stream (`/images/load`).
#[derive(serde::Deserialize)]
struct StreamMessage {
    #[serde(default)]
    stream: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default, rename = "errorDetail")]
    error_detail: Option<ErrorDetail>,
}

#[derive(serde::Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    message: Option<String>,
}

/// A client of one Docker daemon's Engine API.
#[derive(Clone, Debug)]
pub struct DockerDaemon {
    socket: PathBuf,
    rt: Arc<tokio::runtime::Runtime>,
}

impl DockerDaemon {
    /// The daemon `DOCKER_HOST` names (`unix://` only), else [`DEFAULT_SOCKET`].
    pub fn from_env() -> Result<Self, DockerDaemonError> {
        let host = std::env::var("DOCKER_HOST").unwrap_or_default();
        Self::new(socket_of_host(&host)?)
    }

    /// The daemon listening on the unix socket `socket`.
    pub fn new(socket: impl Into<PathBuf>) -> Result<Self, DockerDaemonError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("hoist-docker-api")
            .enable_io()
            .build()
            .map_err(DockerDaemonError::Runtime)?;
        Ok(DockerDaemon {
            socket: socket.into(),
            rt: Arc::new(rt),
        })
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Inspects image `name` (a reference or an ID, as `docker image inspect` takes).
    pub fn inspect(&self, name: &str) -> Result<DaemonImage, DockerDaemonError> {
        let what = format!("inspect {name}");
        let path = format!("/images/{}/json", encode(name, b"/:@"));
        let (status, body) = self.rt.block_on(async {
            let resp = send(&self.socket, &what, Method::GET, &path, None, empty()).await?;
            let status = resp.status();
            let body = collect(&self.socket, &what, resp.into_body()).await?;
            Ok::<_, DockerDaemonError>((status, body))
        })?;
        if status != StatusCode::OK {
            return Err(daemon_error(&self.socket, &what, status, &body));
        }
        let parsed: InspectBody =
            serde_json::from_slice(&body).map_err(|e| DockerDaemonError::BadResponse {
                socket: self.socket.clone(),
                what: what.clone(),
                reason: e.to_string(),
            })?;
        Ok(DaemonImage {
            id: parsed.id,
            repo_tags: parsed.repo_tags.unwrap_or_default(),
            repo_digests: parsed.repo_digests.unwrap_or_default(),
            diff_ids: parsed.root_fs.and_then(|r| r.layers).unwrap_or_default(),
            os: parsed.os,
            architecture: parsed.architecture,
            raw: body.to_vec(),
        })
    }

    /// `docker save` of `names` as a stream (`GET /images/get`): a tar in
    /// the daemon's save format, read as it comes.
    pub fn export(&self, names: &[&str]) -> Result<ExportStream, DockerDaemonError> {
        let what = format!("export {}", names.join(" "));
        let query: Vec<String> = names
            .iter()
            .map(|n| format!("names={}", encode(n, b"/:@")))
            .collect();
        let path = format!("/images/get?{}", query.join("&"));
        let resp =
            self.rt
                .block_on(send(&self.socket, &what, Method::GET, &path, None, empty()))?;
        let status = resp.status();
        if status != StatusCode::OK {
            let body = self
                .rt
                .block_on(collect(&self.socket, &what, resp.into_body()))?;
            return Err(daemon_error(&self.socket, &what, status, &body));
        }
        let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
        let socket = self.socket.clone();
        let mut body = resp.into_body();
        self.rt.spawn(async move {
            loop {
                let item = match body.frame().await {
                    None => return,
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(data) if data.is_empty() => continue,
                        Ok(data) => Ok(data),
                        Err(_trailers) => continue,
                    },
                    Some(Err(e)) => Err(io::Error::other(format!(
                        "Docker daemon at unix://{}: the export stream broke: {e}",
                        socket.display()
                    ))),
                };
                let stop = item.is_err();
                // The reader went away: nothing more to deliver.
                if tx.send(item).await.is_err() || stop {
                    return;
                }
            }
        });
        Ok(ExportStream {
            rx,
            chunk: Bytes::new(),
            _rt: Arc::clone(&self.rt),
        })
    }

    /// `docker load` of the tar `input` (`POST /images/load?quiet=1`),
    /// streamed as it is read. Returns what the daemon reports as loaded
    /// (`name:tag` references, or `sha256:…` IDs for untagged images).
    pub fn load(&self, mut input: impl Read) -> Result<Vec<String>, DockerDaemonError> {
        let mut w = self.load_writer()?;
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match input.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // Dropping the writer unfinished aborts the request.
                Err(source) => {
                    return Err(DockerDaemonError::Input {
                        socket: self.socket.clone(),
                        source,
                    })
                }
            };
            // The daemon stopped reading (it refused the archive): its answer says why.
            if w.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        w.finish()
    }

    /// `docker load` fed by writes (`POST /images/load?quiet=1`), for an
    /// archive writer to write straight into the daemon.
    /// [`LoadWriter::finish`] ends the archive and gives the daemon's answer;
    /// dropping the writer unfinished aborts the request, so the daemon never
    /// takes a truncated archive for a whole one.
    pub fn load_writer(&self) -> Result<LoadWriter, DockerDaemonError> {
        let what = "load".to_owned();
        let (tx, rx) = mpsc::channel::<Bytes>(CHANNEL_DEPTH);
        let aborted = Arc::new(AtomicBool::new(false));
        let body = ChannelBody {
            rx,
            aborted: Arc::clone(&aborted),
        };
        let socket = self.socket.clone();
        let task = self.rt.spawn(async move {
            let resp = send(
                &socket,
                &what,
                Method::POST,
                "/images/load?quiet=1",
                Some("application/x-tar"),
                body,
            )
            .await?;
            let status = resp.status();
            let body = collect(&socket, &what, resp.into_body()).await?;
            parse_load_answer(&socket, status, &body)
        });
        Ok(LoadWriter {
            tx: Some(tx),
            aborted,
            refused: false,
            task: Some(task),
            buf: Vec::with_capacity(CHUNK),
            socket: self.socket.clone(),
            rt: Arc::clone(&self.rt),
        })
    }
}

/// The daemon's error answer: its `{"message": …}` or the body as text.
fn daemon_error(socket: &Path, what: &str, status: StatusCode, body: &[u8]) -> DockerDaemonError {
    #[derive(serde::Deserialize)]
    struct Message {
        message: String,
    }
    let message = serde_json::from_slice::<Message>(body)
        .map(|m| m.message)
        .unwrap_or_else(|_| String::from_utf8_lossy(body).trim().to_owned());
    DockerDaemonError::Daemon {
        socket: socket.to_path_buf(),
        what: what.to_owned(),
        status: status.as_u16(),
        message,
    }
}

/// The references a load's JSON message stream reports, or the error in it.
fn parse_load_answer(
    socket: &Path,
    status: StatusCode,
    body: &[u8],
) -> Result<Vec<String>, DockerDaemonError> {
    let what = "load";
    if status != StatusCode::OK {
        return Err(daemon_error(socket, what, status, body));
    }
    let mut loaded = Vec::new();
    for msg in serde_json::Deserializer::from_slice(body).into_iter::<StreamMessage>() {
        let msg = msg.map_err(|e| DockerDaemonError::BadResponse {
            socket: socket.to_path_buf(),
            what: what.to_owned(),
            reason: e.to_string(),
        })?;
        // The status is sent before the archive is read: errors come inside the stream.
        if let Some(message) = msg.error_detail.and_then(|d| d.message).or(msg.error) {
            return Err(DockerDaemonError::Daemon {
                socket: socket.to_path_buf(),
                what: what.to_owned(),
                status: status.as_u16(),
                message,
            });
        }
        for line in msg.stream.iter().flat_map(|s| s.lines()) {
            let line = line.trim();
            if let Some(r) = line
                .strip_prefix("Loaded image ID: ")
                .or_else(|| line.strip_prefix("Loaded image: "))
            {
                loaded.push(r.to_owned());
            }
        }
    }
    Ok(loaded)
}

/// A `docker load` request body being written; see [`DockerDaemon::load_writer`].
pub struct LoadWriter {
    tx: Option<mpsc::Sender<Bytes>>,
    aborted: Arc<AtomicBool>,
    /// The daemon stopped reading the archive (its answer says why).
    refused: bool,
    task: Option<tokio::task::JoinHandle<Result<Vec<String>, DockerDaemonError>>>,
    buf: Vec<u8>,
    socket: PathBuf,
    rt: Arc<tokio::runtime::Runtime>,
}

impl LoadWriter {
    fn send_buf(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        match &self.tx {
            Some(tx) if tx.blocking_send(chunk).is_ok() => Ok(()),
            _ => {
                self.refused = true;
                Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                format!(
                    "the Docker daemon at unix://{} stopped reading the archive (LoadWriter::finish gives its answer)",
                    self.socket.display()
                ),
                ))
            }
        }
    }

    /// Gives up after a failed copy: the daemon's own answer when it had
    /// stopped reading first (it refused the archive, and says why), else
    /// None, the request being aborted so the daemon loads nothing.
    pub fn abandon(self) -> Option<DockerDaemonError> {
        if self.refused {
            self.finish().err()
        } else {
            None
        }
    }

    /// Ends the archive and waits for the daemon: what it loaded (as
    /// [`DockerDaemon::load`] returns it) or why it refused.
    pub fn finish(mut self) -> Result<Vec<String>, DockerDaemonError> {
        // A daemon that stopped reading has answered, and that answer is the error to give.
        let _ = self.send_buf();
        self.tx = None;
        let Some(task) = self.task.take() else {
            return Ok(Vec::new());
        };
        self.rt
            .block_on(task)
            .map_err(|e| DockerDaemonError::BadResponse {
                socket: self.socket.clone(),
                what: "load".to_owned(),
                reason: format!("the request task failed: {e}"),
            })?
    }
}

impl Write for LoadWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() >= CHUNK {
            self.send_buf()?;
        }
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_buf()
    }
}

impl Drop for LoadWriter {
    fn drop(&mut self) {
        if self.task.is_some() {
            // Unfinished: the body must end in an error, not in a clean end
            // of the chunked stream.
            self.aborted.store(true, Ordering::Release);
            self.tx = None;
        }
    }
}

/// The socket path `DOCKER_HOST` names; empty means [`DEFAULT_SOCKET`].
pub fn socket_of_host(host: &str) -> Result<PathBuf, DockerDaemonError> {
    if host.is_empty() {
        return Ok(PathBuf::from(DEFAULT_SOCKET));
    }
    let bad = |reason: &str| DockerDaemonError::BadHost {
        host: host.to_owned(),
        reason: reason.to_owned(),
    };
    match host.strip_prefix("unix://") {
        Some(p) if p.starts_with('/') => Ok(PathBuf::from(p)),
        Some(_) => Err(bad("the socket path must be absolute (unix:///path)")),
        None => Err(bad(
            "hoist speaks to Docker only over a unix socket (unix:///path); tcp://, ssh:// and others are not supported",
        )),
    }
}

/// A `docker save` tar streaming from the daemon; see [`DockerDaemon::export`].
pub struct ExportStream {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    chunk: Bytes,
    /// Keeps the runtime that feeds `rx` alive while the stream is read.
    _rt: Arc<tokio::runtime::Runtime>,
}

impl Read for ExportStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Ok(b)) => self.chunk = b,
                Some(Err(e)) => return Err(e),
            }
        }
        let n = self.chunk.len().min(buf.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}

/// A request body fed from a blocking writer through a bounded channel.
struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
    /// Set when the writer was dropped unfinished: the body then fails
    /// instead of ending, and hyper cuts the request short.
    aborted: Arc<AtomicBool>,
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.rx.poll_recv(cx).map(|chunk| match chunk {
            Some(b) => Some(Ok(Frame::data(b))),
            None if self.aborted.load(Ordering::Acquire) => Some(Err(io::Error::other(
                "the image archive was abandoned before its end",
            ))),
            None => None,
        })
    }
}

fn empty() -> http_body_util::Empty<Bytes> {
    http_body_util::Empty::new()
}

/// Sends one request on a fresh connection to `socket`.
async fn send<B>(
    socket: &Path,
    what: &str,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: B,
) -> Result<Response<Incoming>, DockerDaemonError>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let http = |what: &str, source| DockerDaemonError::Http {
        socket: socket.to_path_buf(),
        what: what.to_owned(),
        source,
    };
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|source| DockerDaemonError::Connect {
            socket: socket.to_path_buf(),
            source,
        })?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| http(what, e))?;
    // The connection's errors surface through the request and its body.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        // The Engine API ignores the host, but HTTP/1.1 requires one.
        .header(hyper::header::HOST, "docker");
    if let Some(ct) = content_type {
        req = req.header(hyper::header::CONTENT_TYPE, ct);
    }
    let req = req.body(body).map_err(|e| DockerDaemonError::BadResponse {
        socket: socket.to_path_buf(),
        what: what.to_owned(),
        reason: format!("cannot build the request: {e}"),
    })?;
    sender.send_request(req).await.map_err(|e| http(what, e))
}

/// Reads a (small) response body whole, up to [`MAX_MESSAGE`] bytes.
async fn collect(
    socket: &Path,
    what: &str,
    mut body: Incoming,
) -> Result<Bytes, DockerDaemonError> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|source| DockerDaemonError::Http {
            socket: socket.to_path_buf(),
            what: what.to_owned(),
            source,
        })?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > MAX_MESSAGE {
                return Err(DockerDaemonError::BadResponse {
                    socket: socket.to_path_buf(),
                    what: what.to_owned(),
                    reason: format!("the answer is larger than {MAX_MESSAGE} bytes"),
                });
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(out))
}

/// Percent-encodes `s` for a URL, keeping unreserved characters and `keep`.
fn encode(s: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || keep.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_host_must_be_an_absolute_unix_socket() {
        assert_eq!(socket_of_host("").unwrap(), PathBuf::from(DEFAULT_SOCKET));
        assert_eq!(
            socket_of_host("unix:///run/d.sock").unwrap(),
            PathBuf::from("/run/d.sock")
        );
        for bad in ["tcp://127.0.0.1:2375", "ssh://me@host", "unix://rel.sock"] {
            let msg = socket_of_host(bad).unwrap_err().to_string();
            assert!(msg.starts_with(&format!("DOCKER_HOST={bad}:")), "{msg}");
        }
    }

    #[test]
    fn names_are_percent_encoded_except_reference_punctuation() {
        assert_eq!(
            encode("hoist-test/app:latest", b"/:@"),
            "hoist-test/app:latest"
        );
        assert_eq!(encode("a b?c#d&e", b"/:@"), "a%20b%3Fc%23d%26e");
    }

    #[test]
    fn a_missing_socket_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("nothing.sock");
        let d = DockerDaemon::new(&socket).unwrap();
        let msg = d.inspect("busybox").unwrap_err().to_string();
        assert!(
            msg.contains(&format!("unix://{}", socket.display())),
            "{msg}"
        );
        assert!(msg.contains("cannot connect"), "{msg}");
    }
}
