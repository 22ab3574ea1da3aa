//! An axum app served on its own runtime, so tests that run the binary synchronously can use a
//! fake: the one way the webhook and telemetry fakes start and stop.

use std::net::SocketAddr;

use axum::Router;

pub(crate) struct BackgroundServer {
    pub(crate) addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
}

impl BackgroundServer {
    /// Serves `app` on 127.0.0.1 at a free port.
    pub(crate) fn start(app: Router) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        runtime.spawn(async move { axum::serve(listener, app).await });
        Self {
            addr,
            runtime: Some(runtime),
        }
    }
}

impl Drop for BackgroundServer {
    fn drop(&mut self) {
        // Dropping a runtime inside another one panics; the server's tasks just stop here.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
