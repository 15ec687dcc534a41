//! A minimal HTTP/1.1 endpoint: `/metrics`, `/livez`, `/readyz`.
//!
//! Only what a Prometheus scrape and a Kubernetes probe need: GET, one
//! request per connection, bounded request size and time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, warn};

use crate::metrics::Metrics;

/// Liveness and readiness, set by the pipeline's parts.
#[derive(Debug, Default)]
pub struct Health {
    consumer_ok: AtomicBool,
    sink_ok: AtomicBool,
}

impl Health {
    /// Whether the consumer has joined its group and is reading.
    pub fn set_consumer_ok(&self, ok: bool) {
        self.consumer_ok.store(ok, Ordering::Relaxed);
    }

    /// Whether the last ClickHouse insert (or migration) succeeded.
    pub fn set_sink_ok(&self, ok: bool) {
        self.sink_ok.store(ok, Ordering::Relaxed);
    }

    /// Ready: consuming and able to write.
    pub fn ready(&self) -> bool {
        self.consumer_ok.load(Ordering::Relaxed) && self.sink_ok.load(Ordering::Relaxed)
    }
}

const MAX_REQUEST: usize = 8 * 1024;

async fn handle(mut stream: TcpStream, metrics: &Metrics, health: &Health) -> std::io::Result<()> {
    let mut buf = vec![0u8; MAX_REQUEST];
    let mut len = 0;
    while !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
        if len == buf.len() {
            return stream.write_all(b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\n\r\n").await;
        }
        let n = stream.read(&mut buf[len..]).await?;
        if n == 0 {
            return Ok(());
        }
        len += n;
    }
    let line = buf[..len].split(|b| *b == b'\r').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, ctype, body) = match (method, path) {
        ("GET", "/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            metrics.render(),
        ),
        ("GET", "/livez") => ("200 OK", "text/plain", "ok\n".to_string()),
        ("GET", "/readyz") if health.ready() => ("200 OK", "text/plain", "ready\n".to_string()),
        ("GET", "/readyz") => (
            "503 Service Unavailable",
            "text/plain",
            "not ready\n".to_string(),
        ),
        ("GET", _) => ("404 Not Found", "text/plain", "not found\n".to_string()),
        _ => ("405 Method Not Allowed", "text/plain", String::new()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

/// Serves `/metrics`, `/livez` and `/readyz` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, health: Arc<Health>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(error) => {
                warn!(%error, "accept failed");
                continue;
            }
        };
        let (metrics, health) = (metrics.clone(), health.clone());
        tokio::spawn(async move {
            let served =
                tokio::time::timeout(Duration::from_secs(10), handle(stream, &metrics, &health))
                    .await;
            if !matches!(served, Ok(Ok(()))) {
                debug!(%peer, "http request failed or timed out");
            }
        });
    }
}
