//! One pipelined connection to one broker.
//!
//! Kafka answers the requests on one connection in the order they were sent and tags each
//! response with the request's correlation id, so many requests can be in flight at once. A
//! writer task sends frames in the order callers enqueue them; a reader task splits responses
//! with [`FrameDecoder`] and hands each to the caller waiting on its correlation id. A request
//! is registered as pending before its frame is queued, so a response can never arrive for an
//! id the reader does not know, and an unknown id means the broker is confused: the connection
//! is closed, as the Java client does.
//!
//! Any failure (IO error, malformed response, request timeout) closes the whole connection and
//! fails every pending request with [`ClientError::ConnectionClosed`]: after a timeout we no
//! longer know which responses are still coming, and a fresh connection is the only clean
//! state. The cluster-level client reconnects on the next call.

use super::error::ClientError;
use crate::apis::{SupportedApi, SUPPORTED_APIS, UNSUPPORTED_VERSION};
use crate::codec::{decode_response, encode_request, response_correlation_id};
use crate::frame::FrameDecoder;
use bytes::Bytes;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, RequestHeader, RequestKind, ResponseKind,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinHandle;

/// Settings one connection needs.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionConfig {
    pub client_id: String,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    pub response_bytes_max: u32,
    pub in_flight_max: u32,
}

type Reply = oneshot::Sender<Result<ResponseKind, ClientError>>;

/// A request waiting for its response.
struct PendingRequest {
    api_key: ApiKey,
    api_version: i16,
    reply: Reply,
}

/// State shared by the caller side and the two tasks.
#[derive(Default)]
struct Pending {
    requests: HashMap<i32, PendingRequest>,
    /// Why the connection closed; once set, no request is accepted.
    closed: Option<String>,
}

/// A frame to write, and where to report a write of a request that expects no response.
struct Outgoing {
    frame: Bytes,
    written: Option<oneshot::Sender<Result<(), ClientError>>>,
}

/// A connected, version-negotiated broker connection.
pub(crate) struct Connection {
    address: String,
    config: ConnectionConfig,
    outgoing: mpsc::UnboundedSender<Outgoing>,
    pending: Arc<Mutex<Pending>>,
    in_flight: Semaphore,
    next_correlation_id: AtomicI32,
    /// For each API, the version to use with this broker (highest common version).
    versions: BTreeMap<i16, i16>,
    tasks: [JoinHandle<()>; 2],
}

impl Drop for Connection {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Connection {
    /// Connects to `address` and negotiates API versions.
    pub async fn connect(
        address: &str,
        config: ConnectionConfig,
    ) -> Result<Connection, ClientError> {
        let connect_error = |detail: String| ClientError::Connect {
            addresses: vec![address.to_owned()],
            detail,
        };
        let stream = tokio::time::timeout(config.connect_timeout, TcpStream::connect(address))
            .await
            .map_err(|_| connect_error("connect timed out".to_owned()))?
            .map_err(|error| connect_error(error.to_string()))?;
        // Requests are small and latency matters more than packet count.
        stream
            .set_nodelay(true)
            .map_err(|error| connect_error(error.to_string()))?;
        let (read_half, write_half) = stream.into_split();
        let pending = Arc::new(Mutex::new(Pending::default()));
        let (outgoing, outgoing_rx) = mpsc::unbounded_channel();
        let writer = tokio::spawn(write_loop(write_half, outgoing_rx, pending.clone()));
        let reader = tokio::spawn(read_loop(
            read_half,
            config.response_bytes_max,
            pending.clone(),
        ));
        let mut connection = Connection {
            address: address.to_owned(),
            in_flight: Semaphore::new(config.in_flight_max as usize),
            config,
            outgoing,
            pending,
            next_correlation_id: AtomicI32::new(0),
            versions: BTreeMap::new(),
            tasks: [writer, reader],
        };
        let broker_apis = connection.api_versions().await?;
        connection.versions = negotiate(SUPPORTED_APIS, &broker_apis);
        Ok(connection)
    }

    /// The address this connection was opened to.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Whether the connection has failed and should be replaced.
    pub fn is_closed(&self) -> bool {
        lock(&self.pending).closed.is_some()
    }

    /// The version to use for `api_key` with this broker.
    pub fn version(&self, api_key: ApiKey) -> Result<i16, ClientError> {
        self.versions
            .get(&(api_key as i16))
            .copied()
            .ok_or(ClientError::UnsupportedVersion { api_key })
    }

    /// Sends `body` at the negotiated version and waits for the response.
    pub async fn send(
        &self,
        api_key: ApiKey,
        body: RequestKind,
    ) -> Result<ResponseKind, ClientError> {
        let version = self.version(api_key)?;
        self.send_at(api_key, version, body).await
    }

    /// Sends `body` at an explicit version and waits for the response, within the timeout.
    pub async fn send_at(
        &self,
        api_key: ApiKey,
        api_version: i16,
        body: RequestKind,
    ) -> Result<ResponseKind, ClientError> {
        let _permit = self
            .in_flight
            .acquire()
            .await
            .map_err(|_| self.closed_error())?;
        let (frame, correlation_id) = self.encode(api_key, api_version, &body)?;
        let (reply, response) = oneshot::channel();
        {
            let mut pending = lock(&self.pending);
            if let Some(detail) = &pending.closed {
                return Err(ClientError::ConnectionClosed {
                    detail: detail.clone(),
                });
            }
            pending.requests.insert(
                correlation_id,
                PendingRequest {
                    api_key,
                    api_version,
                    reply,
                },
            );
        }
        if self
            .outgoing
            .send(Outgoing {
                frame,
                written: None,
            })
            .is_err()
        {
            return Err(self.closed_error());
        }
        match tokio::time::timeout(self.config.request_timeout, response).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(self.closed_error()),
            Err(_) => {
                close(
                    &self.pending,
                    format!("{api_key:?} request {correlation_id} timed out"),
                );
                Err(ClientError::Timeout { api_key })
            }
        }
    }

    /// Sends a request the broker does not answer (Produce with acks=0); returns once the frame
    /// has been written to the socket.
    pub async fn send_without_response(
        &self,
        api_key: ApiKey,
        body: RequestKind,
    ) -> Result<(), ClientError> {
        let api_version = self.version(api_key)?;
        let (frame, _) = self.encode(api_key, api_version, &body)?;
        let (written, done) = oneshot::channel();
        if self
            .outgoing
            .send(Outgoing {
                frame,
                written: Some(written),
            })
            .is_err()
        {
            return Err(self.closed_error());
        }
        match tokio::time::timeout(self.config.request_timeout, done).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(self.closed_error()),
            Err(_) => {
                close(&self.pending, format!("{api_key:?} write timed out"));
                Err(ClientError::Timeout { api_key })
            }
        }
    }

    fn encode(
        &self,
        api_key: ApiKey,
        api_version: i16,
        body: &RequestKind,
    ) -> Result<(Bytes, i32), ClientError> {
        let correlation_id = self.next_correlation_id.fetch_add(1, Ordering::Relaxed);
        let header = RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(api_version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_string(self.config.client_id.clone())));
        Ok((encode_request(&header, body)?, correlation_id))
    }

    fn closed_error(&self) -> ClientError {
        let detail = lock(&self.pending)
            .closed
            .clone()
            .unwrap_or_else(|| "connection closed".to_owned());
        ClientError::ConnectionClosed { detail }
    }

    /// ApiVersions (KIP-35/KIP-511): ask at our highest version; a broker that does not know it
    /// answers with v0 and UNSUPPORTED_VERSION, listing its range, and we ask again at the
    /// highest version both sides know.
    async fn api_versions(&self) -> Result<Vec<ApiVersion>, ClientError> {
        let ours = SUPPORTED_APIS
            .iter()
            .find(|api| api.api_key == ApiKey::ApiVersions);
        let ours = ours.expect("SUPPORTED_APIS lists ApiVersions");
        let mut version = ours.max_version;
        for _attempt in 0..2 {
            let request = ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("seedlog-net"))
                .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
            let response = self
                .send_at(
                    ApiKey::ApiVersions,
                    version,
                    RequestKind::ApiVersions(request),
                )
                .await?;
            let ResponseKind::ApiVersions(response) = response else {
                return Err(ClientError::misbehaved(
                    "ApiVersions answered with another API",
                ));
            };
            if response.error_code != UNSUPPORTED_VERSION {
                ClientError::check(response.error_code, None)?;
                return Ok(response.api_keys);
            }
            let theirs = response
                .api_keys
                .iter()
                .find(|api| api.api_key == ApiKey::ApiVersions as i16);
            let Some(theirs) = theirs else {
                return Err(ClientError::UnsupportedVersion {
                    api_key: ApiKey::ApiVersions,
                });
            };
            version = theirs.max_version.min(ours.max_version);
            if version < ours.min_version.max(theirs.min_version) {
                return Err(ClientError::UnsupportedVersion {
                    api_key: ApiKey::ApiVersions,
                });
            }
        }
        Err(ClientError::misbehaved(
            "ApiVersions kept answering UNSUPPORTED_VERSION",
        ))
    }
}

/// For each API both sides know, the highest version in both ranges.
pub(crate) fn negotiate(ours: &[SupportedApi], theirs: &[ApiVersion]) -> BTreeMap<i16, i16> {
    let mut versions = BTreeMap::new();
    for our in ours {
        let Some(their) = theirs.iter().find(|api| api.api_key == our.api_key as i16) else {
            continue;
        };
        let max = our.max_version.min(their.max_version);
        if max >= our.min_version.max(their.min_version) {
            versions.insert(our.api_key as i16, max);
        }
    }
    versions
}

fn lock(pending: &Mutex<Pending>) -> std::sync::MutexGuard<'_, Pending> {
    // A panic while holding this lock would be a bug in this module; the state stays usable
    // because every critical section leaves it consistent.
    pending
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Marks the connection closed and fails every pending request with `detail`.
fn close(pending: &Mutex<Pending>, detail: String) {
    let requests = {
        let mut pending = lock(pending);
        if pending.closed.is_none() {
            pending.closed = Some(detail.clone());
        }
        std::mem::take(&mut pending.requests)
    };
    for (_, request) in requests {
        // The caller may have given up already; nothing to do then.
        let _ = request.reply.send(Err(ClientError::ConnectionClosed {
            detail: detail.clone(),
        }));
    }
}

async fn write_loop(
    mut socket: OwnedWriteHalf,
    mut outgoing: mpsc::UnboundedReceiver<Outgoing>,
    pending: Arc<Mutex<Pending>>,
) {
    while let Some(Outgoing { frame, written }) = outgoing.recv().await {
        if lock(&pending).closed.is_some() {
            break;
        }
        let result = socket.write_all(&frame).await;
        if let Err(error) = &result {
            close(&pending, format!("write failed: {error}"));
        }
        if let Some(written) = written {
            let _ = written.send(result.map_err(|error| ClientError::ConnectionClosed {
                detail: error.to_string(),
            }));
        }
    }
    // Dropping the write half sends FIN; the reader keeps draining until the broker closes.
    let _ = socket.shutdown().await;
}

async fn read_loop(
    mut socket: OwnedReadHalf,
    response_bytes_max: u32,
    pending: Arc<Mutex<Pending>>,
) {
    let mut frames = FrameDecoder::new(response_bytes_max);
    let mut buffer = vec![0u8; 64 * 1024];
    let detail = loop {
        let read = match socket.read(&mut buffer).await {
            Ok(0) => break "broker closed the connection".to_owned(),
            Ok(read) => read,
            Err(error) => break format!("read failed: {error}"),
        };
        frames.feed(&buffer[..read]);
        if let Err(detail) = deliver_frames(&mut frames, &pending) {
            break detail;
        }
    };
    close(&pending, detail);
}

/// Hands every complete frame to its waiting caller; an error string closes the connection.
fn deliver_frames(frames: &mut FrameDecoder, pending: &Mutex<Pending>) -> Result<(), String> {
    while let Some(frame) = frames.next_frame().map_err(|error| error.to_string())? {
        let correlation_id = response_correlation_id(&frame).map_err(|error| error.to_string())?;
        let request = lock(pending).requests.remove(&correlation_id);
        let Some(request) = request else {
            return Err(format!(
                "response for unknown correlation id {correlation_id}"
            ));
        };
        let result = decode_response(frame, request.api_key, request.api_version);
        let failed = result.is_err();
        let _ = request
            .reply
            .send(result.map(|(_, body)| body).map_err(ClientError::from));
        if failed {
            return Err("malformed response".to_owned());
        }
    }
    Ok(())
}
