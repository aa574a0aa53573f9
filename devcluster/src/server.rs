//! An HTTP/1.1 server that can be stopped two ways: gracefully (stop accepting, let in-flight
//! requests finish within a drain time) or killed like a crashed process (listener and every
//! open connection gone at once). Every listener of the cluster runs on it, so there is one
//! shutdown path. It serves an axum router, or (the gateway) a handler of its own, both on [`h1`].

pub mod h1;
pub mod refusals;

use axum::Router;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tower::ServiceExt;

/// Serves one accepted connection until it closes or `stop` turns true (then gracefully).
pub trait Connections: Send + Sync + 'static {
    fn serve(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        stop: watch::Receiver<bool>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// An axum router as a connection handler, on the cluster's own HTTP/1.1 connections
/// ([`h1`]); handlers that want the peer (the gateway's X-Forwarded-For) read `ConnectInfo`.
///
/// Not hyper's server connection: at 100 req/s of the traffic generator, hyper's connection
/// around the sample services' routers was a sixth of what the whole cluster spent.
pub struct RouterConnections(pub Router);

impl Connections for RouterConnections {
    fn serve(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        stop: watch::Receiver<bool>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let handler = RouterRequests {
            router: self.0.clone(),
            peer: axum::extract::ConnectInfo(peer),
        };
        Box::pin(h1::serve(stream, stop, handler))
    }
}

/// One connection's requests, each routed by the router.
struct RouterRequests {
    router: Router,
    peer: axum::extract::ConnectInfo<SocketAddr>,
}

impl h1::Handler for RouterRequests {
    type Body = axum::body::Body;

    fn call(
        &self,
        mut req: http::Request<h1::Inbound>,
    ) -> impl Future<Output = http::Response<axum::body::Body>> + Send + '_ {
        req.extensions_mut().insert(self.peer);
        let answer = self.router.clone().oneshot(req);
        async move { answer.await.unwrap_or_else(|never| match never {}) }
    }
}

pub struct HttpServer {
    name: String,
    addr: SocketAddr,
    handler: Arc<dyn Connections>,
    running: Mutex<Option<Running>>,
}

struct Running {
    task: JoinHandle<()>,
    shutdown: watch::Sender<bool>,
}

impl HttpServer {
    /// Starts serving `router` on an already bound listener.
    pub fn start(
        name: impl Into<String>,
        listener: TcpListener,
        router: Router,
    ) -> std::io::Result<HttpServer> {
        Self::start_with(name, listener, Arc::new(RouterConnections(router)))
    }

    /// Starts serving connections with `handler` on an already bound listener.
    pub fn start_with(
        name: impl Into<String>,
        listener: TcpListener,
        handler: Arc<dyn Connections>,
    ) -> std::io::Result<HttpServer> {
        let addr = listener.local_addr()?;
        let server = HttpServer {
            name: name.into(),
            addr,
            handler,
            running: Mutex::new(None),
        };
        server.spawn(listener);
        Ok(server)
    }

    fn spawn(&self, listener: TcpListener) {
        let (tx, rx) = watch::channel(false);
        let task = crate::telemetry::spawn(accept_loop(listener, self.handler.clone(), rx));
        *self.lock() = Some(Running { task, shutdown: tx });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn is_running(&self) -> bool {
        self.lock().as_ref().is_some_and(|r| !r.task.is_finished())
    }

    /// Stops like a crash: the port closes and open connections are reset, nothing is drained.
    /// Returns once the port is free again.
    pub async fn kill(&self) {
        let running = self.lock().take();
        if let Some(r) = running {
            r.task.abort();
            let _ = r.task.await;
        }
    }

    /// Binds the same address again and serves the same router.
    pub async fn restart(&self) -> std::io::Result<()> {
        if self.is_running() {
            return Ok(());
        }
        let listener = TcpListener::bind(self.addr).await?;
        self.spawn(listener);
        Ok(())
    }

    /// Stops accepting, lets open requests finish for up to `drain`, then cuts what is left.
    pub async fn shutdown(&self, drain: Duration) {
        let running = self.lock().take();
        if let Some(mut r) = running {
            let _ = r.shutdown.send(true);
            if tokio::time::timeout(drain, &mut r.task).await.is_err() {
                r.task.abort();
                let _ = r.task.await;
            }
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    handler: Arc<dyn Connections>,
    mut shutdown: watch::Receiver<bool>,
) {
    // Dropping this set (when the task is aborted) aborts every connection: that is `kill`.
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    conns.spawn(crate::telemetry::bound(handler.serve(
                        stream,
                        peer,
                        shutdown.clone(),
                    )));
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next() => {}
            _ = async { let _ = shutdown.wait_for(|s| *s).await; } => break,
        }
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
}
