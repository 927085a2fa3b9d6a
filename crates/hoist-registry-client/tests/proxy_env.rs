//! `HTTP_PROXY` is honoured (its own test binary: the environment is
//! process-wide). The "proxy" is a tiny server that answers requests in
//! absolute form, as a forward proxy receives them.

use axum::body::Body;
use axum::http::{Request, Response};
use hoist_registry_client::{Options, RegistryClient};
use std::sync::{Arc, Mutex};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_go_through_http_proxy() {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let s = seen.clone();
    let app = axum::Router::new().fallback(move |req: Request<Body>| {
        let s = s.clone();
        async move {
            s.lock()
                .unwrap()
                .push(format!("{} {}", req.method(), req.uri()));
            Response::builder().status(200).body(Body::empty()).unwrap()
        }
    });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await });
    std::env::set_var("HTTP_PROXY", format!("http://{proxy}"));
    std::env::set_var("HTTPS_PROXY", format!("http://{proxy}"));
    std::env::remove_var("NO_PROXY");
    std::env::remove_var("no_proxy");
    let o = Options {
        tls_verify: false,
        retries: 0,
        certs_dirs: Vec::new(),
        docker_config: Some("/nonexistent/config.json".into()),
        ..Options::default()
    };
    let c = RegistryClient::new("registry.invalid:5000", &o).unwrap();
    c.ping().await.unwrap();
    assert_eq!(c.base_url().unwrap(), "http://registry.invalid:5000");
    let seen = seen.lock().unwrap();
    assert!(
        seen.iter()
            .any(|r| r == "GET http://registry.invalid:5000/v2/"),
        "the request did not go through the proxy: {seen:?}"
    );
}
