//! One Kubernetes API server model per cluster (`apiserver-<i>`), plain HTTP on 6443. The model (the
//! "etcd") lives outside the host and survives a bounce.

use std::sync::Arc;

use kasim_apiserver::ApiServer;

use crate::trace::Trace;

pub const APISERVER_PORT: u16 = 6443;

/// `apiserver-<i>`.
pub fn host_name(cluster: usize) -> String {
    format!("apiserver-{cluster}")
}

/// The API server host's software.
pub async fn run(name: String, server: Arc<ApiServer>, trace: Trace) -> turmoil::Result {
    let listener = turmoil::net::TcpListener::bind(("0.0.0.0", APISERVER_PORT)).await?;
    trace.record(&name, "started");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            continue;
        };
        let server = server.clone();
        tokio::spawn(async move {
            let _ = server.serve_connection(stream).await;
        });
    }
}
