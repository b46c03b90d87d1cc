//! Client connections as TCP streams: each direction (a *lane*) delivers its items in order,
//! once. A cut link holds a lane's items until it heals; a stall holds one item, and so every
//! item behind it, for up to `stall_ms_max`. The node's side decodes frames and requests
//! exactly as the tokio driver does (`seedlog_net::decode_request`, then `ErrorReply` for a
//! request it cannot take), and encodes responses with `seedlog_net::encode_response`.
//!
//! A crashed process resets its connections: a process crash sends a reset at once (the kernel
//! answers for the dead process), a power loss says nothing and the client times out; bytes
//! that reach a dead process's socket are answered with a reset.

use super::network::Addr;
use super::*;
use kafka_protocol::messages::ResponseKind;
use seedlog_core::broker::{ConnectionId, RequestContext};
use seedlog_core::cluster::NodeInput;
use seedlog_net::kafka_protocol;
use seedlog_net::{ErrorReply, ResponseContext};
use std::collections::VecDeque;

/// What travels on a connection.
#[derive(Clone, Debug)]
pub(super) enum StreamItem {
    /// Bytes (here: always whole frames).
    Frame(Bytes),
    /// The sender closed the connection (or it was reset).
    Close,
}

impl StreamItem {
    fn len(&self) -> u64 {
        match self {
            StreamItem::Frame(bytes) => bytes.len() as u64,
            StreamItem::Close => 0,
        }
    }
}

/// One direction of a connection.
#[derive(Debug, Default)]
pub(super) struct Lane {
    /// When the last item sent on this lane arrives; later items arrive no earlier.
    last_arrival: Instant,
    /// Items waiting for a cut link to heal, in order.
    held: VecDeque<StreamItem>,
    /// The lane carried its close: nothing more is sent.
    closed: bool,
}

/// A client connection.
#[derive(Debug)]
pub(super) struct Conn {
    pub client: usize,
    pub node: NodeId,
    /// The node's incarnation when the connection opened: a restarted process does not know it.
    pub node_incarnation: u64,
    to_node: Lane,
    to_client: Lane,
    /// The node closed its side (responses stop, requests are ignored).
    node_closed: bool,
}

impl ClusterSim {
    /// Registers a connection the client opened to `node`.
    pub(super) fn open_conn(&mut self, conn: ConnId, client: usize, node: NodeId) {
        let node_incarnation = self.node(node).incarnation;
        self.conns.insert(
            conn,
            Conn {
                client,
                node,
                node_incarnation,
                to_node: Lane::default(),
                to_client: Lane::default(),
                node_closed: false,
            },
        );
    }

    /// Sends `item` on `conn` towards the node (`to_node`) or the client.
    pub(super) fn send_stream(&mut self, conn: ConnId, to_node: bool, item: StreamItem) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let client_addr = self.clients[c.client].addr();
        let (from, to) = if to_node {
            (client_addr, c.node)
        } else {
            (c.node, client_addr)
        };
        let lane = if to_node {
            &mut c.to_node
        } else {
            &mut c.to_client
        };
        if lane.closed {
            return;
        }
        lane.closed = matches!(item, StreamItem::Close);
        if !lane.held.is_empty() {
            lane.held.push_back(item);
            return;
        }
        self.schedule_lane_item(conn, to_node, from, to, item);
    }

    /// Schedules one item's arrival, or holds it if the link is cut.
    fn schedule_lane_item(
        &mut self,
        conn: ConnId,
        to_node: bool,
        from: Addr,
        to: Addr,
        item: StreamItem,
    ) {
        let arrival = self
            .net
            .route_stream(from, to, self.now, item.len(), &mut self.rng.net);
        let stall = !self.net.is_calm() && self.rng.net.chance(self.params.stall);
        let stall_for = if stall {
            Duration::from_millis(self.rng.net.range_inclusive(1, self.params.stall_ms_max))
        } else {
            Duration::ZERO
        };
        let c = self.conns.get_mut(&conn).expect("checked by the caller");
        let lane = if to_node {
            &mut c.to_node
        } else {
            &mut c.to_client
        };
        let Some(at) = arrival else {
            lane.held.push_back(item);
            return;
        };
        let at = (at + stall_for).max(lane.last_arrival);
        lane.last_arrival = at;
        let event = if to_node {
            Event::ToNode { conn, item }
        } else {
            Event::ToClient { conn, item }
        };
        self.schedule(at, event);
    }

    /// Sends the held items of every lane whose link is up again, in order.
    pub(super) fn flush_held(&mut self) {
        let conns: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| !c.to_node.held.is_empty() || !c.to_client.held.is_empty())
            .map(|(id, _)| *id)
            .collect();
        for conn in conns {
            for to_node in [true, false] {
                loop {
                    let c = &self.conns[&conn];
                    let client_addr = self.clients[c.client].addr();
                    let (from, to) = if to_node {
                        (client_addr, c.node)
                    } else {
                        (c.node, client_addr)
                    };
                    if self.net.is_blocked(from, to) {
                        break;
                    }
                    let c = self.conns.get_mut(&conn).expect("listed above");
                    let lane = if to_node {
                        &mut c.to_node
                    } else {
                        &mut c.to_client
                    };
                    let Some(item) = lane.held.pop_front() else {
                        break;
                    };
                    self.schedule_lane_item(conn, to_node, from, to, item);
                }
            }
        }
    }

    /// An item reaches the node's end of `conn`.
    pub(super) fn on_to_node(&mut self, conn: ConnId, item: StreamItem) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let (id, incarnation, closed) = (c.node, c.node_incarnation, c.node_closed);
        let alive = self.node(id).node.is_some() && self.node(id).incarnation == incarnation;
        if !alive {
            // The process that accepted this connection is gone: the kernel resets it.
            if matches!(item, StreamItem::Frame(_)) {
                self.send_stream(conn, false, StreamItem::Close);
            }
            return;
        }
        if closed {
            return;
        }
        match item {
            StreamItem::Frame(bytes) => self.on_node_bytes(id, conn, &bytes),
            StreamItem::Close => {
                if self.node(id).server_conns.remove(&conn).is_some() {
                    self.trace.add(&[self.now.0, 21, u64::from(id), conn]);
                    self.feed(id, NodeInput::ConnectionClosed { connection: conn });
                }
            }
        }
    }

    fn on_node_bytes(&mut self, id: NodeId, conn: ConnId, bytes: &[u8]) {
        self.node(id)
            .server_conns
            .entry(conn)
            .or_insert_with(|| FrameDecoder::new(seedlog_net::SOCKET_REQUEST_MAX_BYTES_DEFAULT))
            .feed(bytes);
        loop {
            let Some(decoder) = self.node(id).server_conns.get_mut(&conn) else {
                return;
            };
            let frame = match decoder.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => return,
                Err(e) => {
                    self.checks
                        .violation(format!("client frame on connection {conn} broken: {e}"));
                    return self.node_close(id, conn);
                }
            };
            match seedlog_net::decode_request(frame) {
                Ok(request) => {
                    if request.had_ignored_content() {
                        // The sim's clients encode with the broker's own schemas: content the
                        // codec had to skip means the two disagree.
                        self.checks.violation(format!(
                            "node {id} skipped {} trailing bytes and {} unknown tagged fields \
                             of a {:?} request",
                            request.trailing_bytes, request.unknown_tagged_fields, request.api_key
                        ));
                    }
                    let context = RequestContext {
                        api_key: request.api_key,
                        api_version: request.api_version,
                        correlation_id: request.header.correlation_id,
                    };
                    self.trace.add(&[
                        self.now.0,
                        20,
                        u64::from(id),
                        conn,
                        request.api_key as u64,
                        context.correlation_id as u64,
                    ]);
                    let input = NodeInput::Request {
                        connection: conn,
                        context,
                        body: request.body,
                    };
                    self.feed(id, input);
                }
                Err(error) => {
                    // The sim's clients build only valid requests: this is a codec bug.
                    self.checks.violation(format!(
                        "node {id} could not decode a client request: {error}"
                    ));
                    match error.reply() {
                        ErrorReply::Respond(reply) => {
                            self.send_stream(conn, false, StreamItem::Frame(reply))
                        }
                        ErrorReply::Close => return self.node_close(id, conn),
                    }
                }
            }
        }
    }

    /// The node answers a request on `connection`.
    pub(super) fn respond(
        &mut self,
        id: NodeId,
        connection: ConnectionId,
        context: RequestContext,
        body: Option<Box<ResponseKind>>,
    ) {
        if !self.node(id).server_conns.contains_key(&connection) {
            return;
        }
        let Some(body) = body else { return };
        let context = ResponseContext {
            api_key: context.api_key,
            api_version: context.api_version,
            correlation_id: context.correlation_id,
        };
        match seedlog_net::encode_response(&context, &body) {
            Ok(frame) => self.send_stream(connection, false, StreamItem::Frame(frame)),
            Err(e) => {
                self.checks.violation(format!(
                    "node {id}'s {:?} v{} response cannot be encoded: {e}",
                    context.api_key, context.api_version
                ));
                self.node_close(id, connection);
            }
        }
    }

    /// The node closes `connection`.
    pub(super) fn node_close(&mut self, id: NodeId, connection: ConnectionId) {
        self.node(id).server_conns.remove(&connection);
        if let Some(c) = self.conns.get_mut(&connection) {
            c.node_closed = true;
        }
        self.send_stream(connection, false, StreamItem::Close);
    }

    /// A process died: its connections reset (at once for a process crash; a power loss is
    /// silent and the client times out).
    pub(super) fn reset_conns_of(&mut self, id: NodeId, power_loss: bool) {
        let open: Vec<ConnId> = std::mem::take(&mut self.node(id).server_conns)
            .into_keys()
            .collect();
        for conn in open {
            if let Some(c) = self.conns.get_mut(&conn) {
                c.node_closed = true;
            }
            if !power_loss {
                self.send_stream(conn, false, StreamItem::Close);
            }
        }
    }

    /// An item reaches the client's end of `conn`.
    pub(super) fn on_to_client(&mut self, conn: ConnId, item: StreamItem) {
        let Some(client) = self.conns.get(&conn).map(|c| c.client) else {
            return;
        };
        if matches!(item, StreamItem::Close) {
            // The client's side is done too; the node's close was its last word.
            if let Some(c) = self.conns.get_mut(&conn) {
                c.to_node.closed = true;
                c.node_closed = true;
            }
        }
        self.with_client(client, |client, ctx| client.on_item(conn, item, ctx));
    }
}
