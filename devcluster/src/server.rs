//! An HTTP/1.1 server that can be stopped two ways: gracefully (stop accepting, let in-flight
//! requests finish within a drain time) or killed like a crashed process (listener and every
//! open connection gone at once). Every listener of the cluster runs on it, so there is one
//! shutdown path. It serves an axum router, or (the gateway) a hyper service of its own.

pub mod h1;

use axum::Router;
use hyper::body::Incoming;
use hyper::service::HttpService;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
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

/// Drives one HTTP/1.1 connection with `svc`.
pub async fn drive<S>(stream: TcpStream, svc: S, mut stop: watch::Receiver<bool>)
where
    S: HttpService<Incoming>,
    S::Future: Send + 'static,
    S::ResBody: Send + 'static,
    <S::ResBody as hyper::body::Body>::Data: Send,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = async { let _ = stop.wait_for(|s| *s).await; } => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// An axum router as a connection handler; handlers that want the peer (the gateway's
/// X-Forwarded-For) read `ConnectInfo`.
pub struct RouterConnections(pub Router);

impl Connections for RouterConnections {
    fn serve(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        stop: watch::Receiver<bool>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let svc = TowerToHyperService::new(self.0.clone().map_request(
            move |mut req: http::Request<Incoming>| {
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                req
            },
        ));
        Box::pin(drive(stream, svc, stop))
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
        let task = tokio::spawn(accept_loop(listener, self.handler.clone(), rx));
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
                    conns.spawn(handler.serve(stream, peer, shutdown.clone()));
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
