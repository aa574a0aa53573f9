//! An HTTP/1.1 server for an axum router that can be stopped two ways: gracefully (stop
//! accepting, let in-flight requests finish within a drain time) or killed like a crashed
//! process (listener and every open connection gone at once). Every listener of the cluster
//! runs on it, so there is one shutdown path.

use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tower::ServiceExt;

pub struct HttpServer {
    name: String,
    addr: SocketAddr,
    router: Router,
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
        let addr = listener.local_addr()?;
        let server = HttpServer {
            name: name.into(),
            addr,
            router,
            running: Mutex::new(None),
        };
        server.spawn(listener);
        Ok(server)
    }

    fn spawn(&self, listener: TcpListener) {
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, self.router.clone(), rx));
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

async fn accept_loop(listener: TcpListener, router: Router, mut shutdown: watch::Receiver<bool>) {
    // Dropping this set (when the task is aborted) aborts every connection: that is `kill`.
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    // Handlers that want the peer (the gateway's X-Forwarded-For) read ConnectInfo.
                    let svc = TowerToHyperService::new(router.clone().map_request(
                        move |mut req: http::Request<hyper::body::Incoming>| {
                            req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                            req
                        },
                    ));
                    let mut stop = shutdown.clone();
                    conns.spawn(async move {
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
                    });
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
