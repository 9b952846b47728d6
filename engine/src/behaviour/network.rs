//! Network input: OS addresses from `if-watch`, link states from
//! netlink on Linux, the host's hints and power state, turned into the
//! engine's network changes.

use std::task::{Context, Poll};

use futures::StreamExt;
use multidriver_scoring::PowerState;
use multidriver_transports::connectivity::ConnectivityHint;

use super::{Behaviour, DriverSet, interfaces::Interfaces};
use crate::Error;
use crate::core::NetworkChange;

impl<D: DriverSet> Behaviour<D> {
    /// Battery and lifecycle changed: the profile map may pick another
    /// profile.
    pub fn set_power(&mut self, power: PowerState) {
        let now = self.now();
        self.engine.handle_power(power, now);
        self.wake();
    }

    /// A network hint from the host app (Android `NetworkCallback`, iOS
    /// `NWPathMonitor`).
    ///
    /// # Errors
    /// [`Error::Transports`] when the watcher's table is full (report a
    /// `Lost` first); nothing changes then.
    pub fn handle_hint(&mut self, hint: ConnectivityHint) -> Result<(), Error> {
        let change = self.interfaces.on_hint(hint)?;
        if let Some(change) = change {
            self.network_change(change);
        }
        self.wake();
        Ok(())
    }

    pub(crate) fn network_change(&mut self, change: NetworkChange) {
        let now = self.now();
        tracing::debug!(target: "multidriver", ?change, "network change");
        // Routes move off a going interface before the engine re-races its
        // peers; onto a new one only after the engine knows it.
        let going = matches!(
            change,
            NetworkChange::Down { .. } | NetworkChange::Losing { .. }
        );
        if going {
            self.refeed(now);
        }
        if let Err(e) = self.engine.handle_network_change(change, now) {
            tracing::warn!(target: "multidriver", error = %e, ?change, "network change refused");
        }
        if !going {
            self.refeed(now);
        }
    }

    pub(crate) fn on_address(
        &mut self,
        ip: std::net::IpAddr,
        prefix: u8,
        up: bool,
        name: Option<&str>,
    ) {
        match self.interfaces.on_address(ip, prefix, up, name) {
            Ok(Some(change)) => self.network_change(change),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(target: "multidriver", error = %e, %ip, "address ignored")
            }
        }
    }

    pub(crate) fn poll_interfaces(&mut self, cx: &mut Context<'_>) {
        if !self.config.watch_interfaces {
            return;
        }
        #[cfg(target_os = "linux")]
        self.poll_links(cx);
        if self.if_watch_failed {
            return;
        }
        if self.if_watch.is_none() {
            match if_watch::tokio::IfWatcher::new() {
                Ok(w) => self.if_watch = Some(w),
                Err(e) => {
                    tracing::warn!(target: "multidriver", error = %e, "if-watch unavailable: addresses are not watched");
                    self.if_watch_failed = true;
                    return;
                }
            }
        }
        // Bounded: at most this many address events per poll.
        for _ in 0..64 {
            let Some(w) = self.if_watch.as_mut() else {
                return;
            };
            match w.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(if_watch::IfEvent::Up(net)))) => {
                    self.on_address(net.addr(), net.prefix_len(), true, None)
                }
                Poll::Ready(Some(Ok(if_watch::IfEvent::Down(net)))) => {
                    self.on_address(net.addr(), net.prefix_len(), false, None)
                }
                Poll::Ready(Some(Err(e))) => {
                    tracing::debug!(target: "multidriver", error = %e, "if-watch error")
                }
                Poll::Ready(None) => {
                    self.if_watch = None;
                    self.if_watch_failed = true;
                    return;
                }
                Poll::Pending => return,
            }
        }
        // More events than one poll takes: come back for the rest.
        cx.waker().wake_by_ref();
    }
}

#[cfg(target_os = "linux")]
impl<D: DriverSet> Behaviour<D> {
    /// A link taken down keeps its addresses (no `if-watch` event) but
    /// carries nothing: its addresses are reported gone at once, and back
    /// when the link returns.
    pub(crate) fn poll_links(&mut self, cx: &mut Context<'_>) {
        if self.links_failed {
            return;
        }
        if self.links.is_none() {
            match super::links::LinkWatcher::new() {
                Ok(w) => self.links = Some(w),
                Err(e) => {
                    tracing::warn!(target: "multidriver", error = %e, "link states unavailable: a link taken down is noticed by probes only");
                    self.links_failed = true;
                    return;
                }
            }
        }
        for _ in 0..16 {
            let Some(w) = self.links.as_mut() else {
                return;
            };
            match w.poll_next(cx) {
                Poll::Ready(Some(event)) => {
                    tracing::debug!(target: "multidriver", link = %event.name, up = event.up, "link state");
                    if event.up {
                        for (ip, prefix, name) in Interfaces::scan() {
                            if name == event.name {
                                self.on_address(ip, prefix, true, Some(&name));
                            }
                        }
                    } else {
                        for (ip, prefix) in self.interfaces.addresses_of(&event.name) {
                            self.on_address(ip, prefix, false, None);
                        }
                    }
                }
                Poll::Ready(None) => {
                    self.links = None;
                    self.links_failed = true;
                    return;
                }
                Poll::Pending => return,
            }
        }
        cx.waker().wake_by_ref();
    }
}
