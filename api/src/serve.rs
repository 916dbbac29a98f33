//! The API's own accept loop (axum::serve has no time-outs): HTTP/1.1 connections with a time-out
//! for the request head (which is also how long a kept-alive connection may sit idle), a time-out
//! between the bytes of a request body, a cap on connections per source address and in all, and a
//! graceful shutdown bounded in time: connections still open after the grace period are cut.
//!
//! Each request carries its peer's address as axum's `ConnectInfo<SocketAddr>` (the login limits
//! count per source with it).

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::task::JoinSet;

const CONNECTIONS_REFUSED_TOTAL: &str = "kakeru_http_connections_refused_total";

/// The connection limits of one listener.
#[derive(Debug, Clone)]
pub struct ServeLimits {
    /// A request head must arrive whole within this; a kept-alive connection waiting for its next
    /// request is closed after it too.
    pub header_read_timeout: Duration,
    /// Longest wait for the next bytes of a request body.
    pub body_idle_timeout: Duration,
    /// Connections open at once from one address; more are closed at once.
    pub max_connections_per_source: usize,
    /// Connections open at once in all.
    pub max_connections: usize,
    /// After the shutdown signal: how long open connections may finish their requests.
    pub shutdown_grace: Duration,
    /// Peers whose `X-Forwarded-For` is believed (the load balancers in front): the client of a
    /// request from them is the right-most address of that header that is not one of them.
    pub trusted_proxies: Vec<Cidr>,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            header_read_timeout: Duration::from_secs(10),
            body_idle_timeout: Duration::from_secs(30),
            max_connections_per_source: 512,
            max_connections: 10_000,
            shutdown_grace: Duration::from_secs(5),
            trusted_proxies: Vec::new(),
        }
    }
}

/// An address block, `10.0.0.0/8` or one address (`10.0.0.5`, `::1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?}: an address or a block such as 10.0.0.0/8");
        let (a, p) = s.trim().split_once('/').map_or((s.trim(), None), |(a, p)| (a, Some(p)));
        let addr: IpAddr = a.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
        };
        Ok(Cidr { addr, prefix })
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The client of a request: its peer, or behind a trusted proxy the right-most address of
/// `X-Forwarded-For` that is not a trusted proxy (what the proxies added themselves).
pub fn client_ip(peer: IpAddr, headers: &axum::http::HeaderMap, trusted: &[Cidr]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let mut client = peer;
    for v in headers.get_all("x-forwarded-for").iter().rev() {
        let Ok(text) = v.to_str() else { return client };
        for part in text.split(',').rev() {
            let Ok(ip) = part.trim().parse::<IpAddr>() else { return client };
            client = ip;
            if !is_trusted(ip) {
                return ip;
            }
        }
    }
    client
}

/// The client's address as the server resolved it (see [`client_ip`]).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

/// Open connections per source address, and in all.
#[derive(Default)]
struct Open {
    per_source: HashMap<IpAddr, usize>,
    total: usize,
}

/// One admitted connection; dropping it frees its place.
struct Slot {
    open: Arc<Mutex<Open>>,
    ip: IpAddr,
}

impl Slot {
    fn take(open: &Arc<Mutex<Open>>, ip: IpAddr, limits: &ServeLimits) -> Option<Slot> {
        let mut o = open.lock().unwrap_or_else(|p| p.into_inner());
        if o.total >= limits.max_connections {
            return None;
        }
        let n = o.per_source.entry(ip).or_insert(0);
        if *n >= limits.max_connections_per_source {
            return None;
        }
        *n += 1;
        o.total += 1;
        Some(Slot { open: open.clone(), ip })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut o = self.open.lock().unwrap_or_else(|p| p.into_inner());
        o.total = o.total.saturating_sub(1);
        if let Some(n) = o.per_source.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                o.per_source.remove(&self.ip);
            }
        }
    }
}

/// A request body that fails when no bytes arrive for `idle` (a body sent slowly on purpose holds
/// a connection, a task and its buffers).
struct IdleBody<B> {
    inner: B,
    idle: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl<B> IdleBody<B> {
    fn new(inner: B, idle: Duration) -> Self {
        IdleBody { inner, idle, timer: Box::pin(tokio::time::sleep(idle)) }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("no bytes of the request body arrived in time")]
struct BodyTimedOut;

impl<B> HttpBody for IdleBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                let deadline = tokio::time::Instant::now() + this.idle;
                this.timer.as_mut().reset(deadline);
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimedOut)))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then lets open connections finish for
/// at most `limits.shutdown_grace` and cuts the rest.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    metrics::describe_counter!(
        CONNECTIONS_REFUSED_TOTAL,
        "Connections to the API closed at once: their source address, or the process, had its cap open."
    );
    let open = Arc::new(Mutex::new(Open::default()));
    let (closing_tx, closing_rx) = tokio::sync::watch::channel(false);
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors or a connection reset before accept: wait a little, go on.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(slot) = Slot::take(&open, peer.ip(), &limits) else {
            metrics::counter!(CONNECTIONS_REFUSED_TOTAL).increment(1);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let idle = limits.body_idle_timeout;
        let head = limits.header_read_timeout;
        let trusted = limits.trusted_proxies.clone();
        let mut closing = closing_rx.clone();
        conns.spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                let client = client_ip(peer.ip(), req.headers(), &trusted);
                req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                req.extensions_mut().insert(ClientIp(client));
                let req = req.map(|b| axum::body::Body::new(IdleBody::new(b, idle)));
                let mut app = app.clone();
                async move { tower_service::Service::call(&mut app, req).await }
            });
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new()).http1_only();
            builder.http1().timer(TokioTimer::new()).header_read_timeout(head);
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = async { closing.wait_for(|c| *c).await.is_ok() } => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    drop(listener);
    let _ = closing_tx.send(true);
    let drained =
        tokio::time::timeout(limits.shutdown_grace, async { while conns.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::info!(open = conns.len(), "shutdown: cutting the connections still open after the grace period");
        conns.shutdown().await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_match_their_addresses() {
        let c: Cidr = "10.0.0.0/8".parse().expect("cidr");
        assert!(c.contains("10.1.2.3".parse().expect("ip")));
        assert!(c.contains("::ffff:10.1.2.3".parse().expect("mapped")));
        assert!(!c.contains("11.0.0.1".parse().expect("ip")));
        let one: Cidr = "192.0.2.7".parse().expect("one address");
        assert!(one.contains("192.0.2.7".parse().expect("ip")) && !one.contains("192.0.2.8".parse().expect("ip")));
        let all: Cidr = "0.0.0.0/0".parse().expect("all");
        assert!(all.contains("203.0.113.1".parse().expect("ip")));
        let v6: Cidr = "2001:db8::/32".parse().expect("v6");
        assert!(v6.contains("2001:db8::1".parse().expect("ip")) && !v6.contains("2001:db9::1".parse().expect("ip")));
        for bad in ["10.0.0.0/33", "x", "10.0.0.0/", "::/129"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_client_is_the_peer_unless_the_peer_is_a_trusted_proxy() {
        let trusted: Vec<Cidr> = vec!["10.0.0.0/8".parse().expect("cidr")];
        let mut h = axum::http::HeaderMap::new();
        h.insert("x-forwarded-for", "198.51.100.1, 203.0.113.5, 10.0.0.9".parse().expect("header"));
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        // A client talking to us directly cannot claim another address.
        assert_eq!(client_ip(ip("203.0.113.99"), &h, &trusted), ip("203.0.113.99"));
        // Behind the proxies: the right-most address they did not add (the left ones are the
        // client's own claims).
        assert_eq!(client_ip(ip("10.0.0.2"), &h, &trusted), ip("203.0.113.5"));
        assert_eq!(client_ip(ip("10.0.0.2"), &axum::http::HeaderMap::new(), &trusted), ip("10.0.0.2"));
        let mut junk = axum::http::HeaderMap::new();
        junk.insert("x-forwarded-for", "not-an-address".parse().expect("header"));
        assert_eq!(client_ip(ip("10.0.0.2"), &junk, &trusted), ip("10.0.0.2"));
        assert_eq!(client_ip(ip("10.0.0.2"), &h, &[]), ip("10.0.0.2"));
    }
}
