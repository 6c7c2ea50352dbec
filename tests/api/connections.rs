//! Slow, idle and too many connections cannot pile up: the server closes a
//! connection that is slow to send its headers or idle too long, and closes
//! the ones over its cap as they arrive. `/metrics` may leave the public
//! listener for an address of its own.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{pki, TempDir, TestApp};

async fn spawn(server_extra: &str) -> TestApp {
    TestApp::spawn_configured(pki(), TempDir::new(), server_extra, "").await
}

async fn connect(app: &TestApp) -> TcpStream {
    let port = app.address.rsplit(':').next().unwrap();
    TcpStream::connect(format!("127.0.0.1:{port}"))
        .await
        .unwrap()
}

/// Reads until the server closes the connection; how long that took.
async fn closed_after(stream: &mut TcpStream, at_most: Duration) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(at_most, stream.read(&mut buf)).await {
            Err(_) => panic!("still open after {at_most:?}"),
            Ok(Ok(0) | Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => {}
        }
    }
}

/// One request on an open connection; the status line.
async fn request(stream: &mut TcpStream, path: &str) -> String {
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    // Our answers are small: read until the whole body has arrived.
    while !answer.ends_with(b"}") {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        assert!(n > 0, "closed before answering");
        answer.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn headers_sent_too_slowly_get_the_connection_closed() {
    let app = spawn("header_read_timeout_ms = 300\nidle_timeout_ms = 60000").await;
    let mut slow = connect(&app).await;
    slow.write_all(b"POST /v2/notifications HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    let took = closed_after(&mut slow, Duration::from_secs(5)).await;
    assert!(took >= Duration::from_millis(200), "{took:?}");

    // Saying nothing at all is no better.
    let mut silent = connect(&app).await;
    closed_after(&mut silent, Duration::from_secs(5)).await;

    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(
        text.contains(r#"appstore_ledger_connections_closed_total{limit="header_read_timeout"} 2"#),
        "{text}"
    );
}

#[tokio::test]
async fn an_idle_connection_outlives_the_header_timeout_and_closes_after_the_idle_one() {
    let app = spawn("header_read_timeout_ms = 300\nidle_timeout_ms = 1500").await;
    let mut stream = connect(&app).await;
    assert_eq!(request(&mut stream, "/health").await, "HTTP/1.1 200 OK");
    // Idle past the header timeout: kept alive, and reusable.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(request(&mut stream, "/health").await, "HTTP/1.1 200 OK");
    let idle = Instant::now();
    closed_after(&mut stream, Duration::from_secs(10)).await;
    let took = idle.elapsed();
    assert!(
        took >= Duration::from_millis(1_300) && took < Duration::from_secs(5),
        "closed after {took:?} of idleness"
    );
}

#[tokio::test]
async fn connections_over_the_cap_are_closed_as_they_arrive() {
    let app = spawn("header_read_timeout_ms = 10000\nmax_connections = 3").await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = connect(&app).await;
        assert_eq!(request(&mut stream, "/health").await, "HTTP/1.1 200 OK");
        held.push(stream);
    }
    let mut over = connect(&app).await;
    let took = closed_after(&mut over, Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(1), "{took:?}");

    // A place freed is a place taken.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut next = connect(&app).await;
    assert_eq!(request(&mut next, "/health").await, "HTTP/1.1 200 OK");
    let text = request_text(&mut held[0], "/metrics").await;
    assert!(
        text.contains(r#"appstore_ledger_connections_closed_total{limit="over_cap"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("appstore_ledger_connections_open 3"),
        "{text}"
    );
}

/// The whole answer to one request on a connection of its own making, for
/// answers that are not JSON.
async fn request_text(stream: &mut TcpStream, path: &str) -> String {
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn metrics_on_their_own_address_leave_the_public_listener() {
    let app = spawn(r#"metrics_listen = "127.0.0.1:0""#).await;
    let public = app.get("/metrics").await;
    assert_eq!(public.status().as_u16(), 404);
    let own = app.metrics_address.clone().expect("a metrics address");
    let response = app
        .client
        .get(format!("{own}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let text = response.text().await.unwrap();
    assert!(text.contains("appstore_ledger_database_up 1"), "{text}");
    // Only /metrics there.
    let health = app
        .client
        .get(format!("{own}/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 404);
}
