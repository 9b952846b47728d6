//! Link-state events on Linux, over netlink: an interface taken down keeps
//! its IPv4 addresses, so `if-watch` (which reports addresses) says
//! nothing, while every route through it is dead. This watcher reports the
//! link itself going down or coming back, by name.

use std::collections::HashMap;
use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::{Stream, StreamExt};
use netlink_packet_core::NetlinkPayload;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_proto::Connection;
use netlink_sys::{AsyncSocket, SocketAddr, TokioSocket};
use rtnetlink::constants::RTMGRP_LINK;

/// A link went down or came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LinkEvent {
    pub(crate) name: String,
    pub(crate) up: bool,
}

/// Links whose state is remembered; at the bound the memory is cleared.
/// Our choice, far above a phone's or a laptop's links.
const MAX_LINKS: usize = 256;

type Messages = Pin<Box<dyn Stream<Item = RouteNetlinkMessage> + Send>>;

pub(crate) struct LinkWatcher {
    conn: Connection<RouteNetlinkMessage, TokioSocket>,
    messages: Messages,
    /// Last known state by link index, so that only changes are reported.
    state: HashMap<u32, bool>,
}

impl std::fmt::Debug for LinkWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkWatcher")
            .field("links", &self.state.len())
            .finish_non_exhaustive()
    }
}

/// Whether a link carries traffic: administratively up and running
/// (carrier present).
fn usable(link: &LinkMessage) -> bool {
    link.header
        .flags
        .contains(LinkFlags::Up | LinkFlags::Running)
}

fn name(link: &LinkMessage) -> Option<String> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.clone()),
        _ => None,
    })
}

impl LinkWatcher {
    /// Subscribes to link notifications (needs a tokio runtime).
    pub(crate) fn new() -> io::Result<Self> {
        let (mut conn, _handle, messages) = rtnetlink::new_connection_with_socket::<TokioSocket>()?;
        conn.socket_mut()
            .socket_mut()
            .bind(&SocketAddr::new(0, RTMGRP_LINK))?;
        let messages = messages
            .filter_map(|(msg, _)| async move {
                match msg.payload {
                    NetlinkPayload::InnerMessage(m) => Some(m),
                    _ => None,
                }
            })
            .boxed();
        Ok(LinkWatcher {
            conn,
            messages,
            state: HashMap::new(),
        })
    }

    /// The next change of a link's state.
    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<LinkEvent>> {
        // The connection drives the socket; it ends only with the socket.
        if let Poll::Ready(()) = Pin::new(&mut self.conn).poll(cx) {
            return Poll::Ready(None);
        }
        // Bounded: unrelated messages are skipped a few at a time.
        for _ in 0..64 {
            let msg = match self.messages.poll_next_unpin(cx) {
                Poll::Ready(Some(m)) => m,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            };
            let (index, up, link) = match &msg {
                RouteNetlinkMessage::NewLink(l) => (l.header.index, usable(l), l),
                RouteNetlinkMessage::DelLink(l) => (l.header.index, false, l),
                _ => continue,
            };
            if self.state.len() >= MAX_LINKS && !self.state.contains_key(&index) {
                // More links than any host has: forget, and treat every
                // link as new.
                self.state.clear();
            }
            let before = self.state.insert(index, up);
            // A link first seen up is no news; first seen down, or a change,
            // is.
            if before == Some(up) || (before.is_none() && up) {
                continue;
            }
            if matches!(msg, RouteNetlinkMessage::DelLink(_)) {
                self.state.remove(&index);
            }
            if let Some(name) = name(link) {
                return Poll::Ready(Some(LinkEvent { name, up }));
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
