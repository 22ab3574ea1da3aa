//! A proxy in front of a hub that lets the hub carry out the first request to one route, then
//! cuts the answer off after its status line: the client sees what it would if the hub were
//! killed between committing and replying. Every other request passes through untouched.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::response::Response;

struct Route {
    target: String,
    method: Method,
    path: &'static str,
    cuts: AtomicUsize,
    http: reqwest::Client,
}

pub(crate) struct CuttingProxy {
    pub(crate) base: String,
    route: Arc<Route>,
    server: tokio::task::JoinHandle<()>,
}

impl CuttingProxy {
    pub(crate) async fn start(target: &str, method: Method, path: &'static str) -> CuttingProxy {
        let route = Arc::new(Route {
            target: target.to_owned(),
            method,
            path,
            cuts: AtomicUsize::new(0),
            http: agent_orch::http::http_client().unwrap(),
        });
        let app = Router::new()
            .fallback(forward)
            .with_state(Arc::clone(&route));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        CuttingProxy {
            base,
            route,
            server,
        }
    }

    /// How many answers were cut off (at most one).
    pub(crate) fn cuts(&self) -> usize {
        self.route.cuts.load(Ordering::SeqCst)
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn forward(State(route): State<Arc<Route>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut upstream = route
        .http
        .request(
            parts.method.clone(),
            format!("{}{path_and_query}", route.target),
        )
        .body(body);
    for (name, value) in &parts.headers {
        if name != header::HOST && name != header::CONTENT_LENGTH {
            upstream = upstream.header(name, value);
        }
    }
    let answer = upstream.send().await.unwrap();
    let status = answer.status();
    let content_type = answer.headers().get(header::CONTENT_TYPE).cloned();
    let body = answer.bytes().await.unwrap();

    let mut response = Response::builder().status(status);
    if let Some(content_type) = content_type {
        response = response.header(header::CONTENT_TYPE, content_type);
    }
    let cut = parts.method == route.method
        && parts.uri.path() == route.path
        && route
            .cuts
            .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok();
    if cut {
        let broken = futures::stream::once(async {
            Err::<Bytes, _>(std::io::Error::other("the hub died mid-answer"))
        });
        return response.body(Body::from_stream(broken)).unwrap();
    }
    response.body(Body::from(body)).unwrap()
}
