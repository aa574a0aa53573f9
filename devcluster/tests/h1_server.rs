//! The gateway's own HTTP/1.1 server (`devcluster::server::h1`) over real sockets, with clients
//! that write requests byte by byte as a user agent would and parse the answers exactly:
//! keep-alive, pipelining, request bodies (by length, chunked, streamed, after `100 Continue`),
//! HTTP/1.0, answers without a body (HEAD, 204, 304), chunked answers, refusals (400, 431),
//! clients that leave, and a graceful stop.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use devcluster::server::h1::{Handler, Inbound, serve};
use http::{Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::{Sleep, sleep, timeout};

/// How long any single read or write may take before the test fails.
const WAIT: Duration = Duration::from_secs(5);
/// What `/chunked` streams, frame by frame (the empty frame must not end the body).
const FRAMES: [&str; 4] = ["one,", "two,", "", "three"];
/// What `/fixed` answers to any method.
const FIXED: &str = "a fixed answer";

// ---------------------------------------------------------------------------------------------
// The handler

/// An answer body: all at hand (exact length) or frames that come one at a time after a short
/// pause each (unknown length).
enum TestBody {
    Full(Option<Bytes>),
    Frames(VecDeque<Bytes>, Option<Pin<Box<Sleep>>>),
}

impl Body for TestBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            TestBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            TestBody::Frames(frames, pause) => {
                let p = pause.get_or_insert_with(|| Box::pin(sleep(Duration::from_millis(20))));
                ready!(p.as_mut().poll(cx));
                *pause = None;
                Poll::Ready(frames.pop_front().map(|f| Ok(Frame::data(f))))
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            TestBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            TestBody::Frames(..) => SizeHint::default(),
        }
    }
}

fn full(text: impl Into<Bytes>) -> TestBody {
    TestBody::Full(Some(text.into()))
}

/// What `/slow` handlers did: started, ran to their end, or were dropped before it.
#[derive(Default)]
struct Probe {
    started: AtomicUsize,
    finished: AtomicUsize,
    dropped: AtomicUsize,
}

/// Counts a `/slow` handler dropped before its end.
struct Guard(Arc<Probe>, bool);

impl Drop for Guard {
    fn drop(&mut self) {
        if !self.1 {
            self.0.dropped.fetch_add(1, SeqCst);
        }
    }
}

/// Answers "METHOD PATH body=<request body>", except on the special paths.
#[derive(Clone)]
struct Echo(Arc<Probe>);

impl Handler for Echo {
    type Body = TestBody;

    async fn call(&self, req: http::Request<Inbound>) -> Response<TestBody> {
        let (parts, body) = req.into_parts();
        let (path, query) = (parts.uri.path(), parts.uri.query());
        let mut resp = Response::new(full(""));
        match path {
            "/chunked" => {
                let frames = FRAMES.iter().map(|f| Bytes::from_static(f.as_bytes()));
                *resp.body_mut() = TestBody::Frames(frames.collect(), None);
            }
            "/slow" => {
                let ms = query
                    .and_then(|q| q.strip_prefix("ms="))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(300);
                self.0.started.fetch_add(1, SeqCst);
                let mut guard = Guard(self.0.clone(), false);
                sleep(Duration::from_millis(ms)).await;
                guard.1 = true;
                self.0.finished.fetch_add(1, SeqCst);
                *resp.body_mut() = full("slow done");
            }
            "/empty204" => {
                *resp.status_mut() = StatusCode::NO_CONTENT;
                *resp.body_mut() = full("stray 204 body");
            }
            "/notmod" => {
                *resp.status_mut() = StatusCode::NOT_MODIFIED;
                resp.headers_mut()
                    .insert(header::CONTENT_LENGTH, "1234".parse().unwrap());
                *resp.body_mut() = full("stray 304 body");
            }
            "/fixed" => {
                if query == Some("cl") {
                    let n = FIXED.len().to_string();
                    resp.headers_mut()
                        .insert(header::CONTENT_LENGTH, n.parse().unwrap());
                }
                *resp.body_mut() = full(FIXED);
            }
            _ => match body.collect().await {
                Ok(b) => {
                    let b = b.to_bytes();
                    let text = String::from_utf8_lossy(&b);
                    *resp.body_mut() = full(format!("{} {path} body={text}", parts.method));
                }
                Err(e) => {
                    *resp.status_mut() = StatusCode::BAD_REQUEST;
                    *resp.body_mut() = full(format!("body failed: {e}"));
                }
            },
        }
        resp
    }
}

/// A listener on 127.0.0.1 serving every connection with [`Echo`]; setting the sender to true
/// stops the connections gracefully.
async fn start() -> (SocketAddr, watch::Sender<bool>, Arc<Probe>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = watch::channel(false);
    let probe = Arc::new(Probe::default());
    let echo = Echo(probe.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, stopped.clone(), echo.clone()));
        }
    });
    (addr, stop, probe)
}

// ---------------------------------------------------------------------------------------------
// The client

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n")
}

fn post(path: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[derive(Debug)]
struct Answer {
    status: u16,
    /// Names in lower case.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

struct Client {
    s: TcpStream,
    /// Read and not parsed yet.
    buf: Vec<u8>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        let s = timeout(WAIT, TcpStream::connect(addr))
            .await
            .unwrap()
            .unwrap();
        Client { s, buf: Vec::new() }
    }

    async fn send(&mut self, bytes: impl AsRef<[u8]>) {
        timeout(WAIT, self.s.write_all(bytes.as_ref()))
            .await
            .expect("write timed out")
            .expect("write failed");
    }

    /// One read into `buf`; false at EOF.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        let n = timeout(WAIT, self.s.read(&mut chunk))
            .await
            .expect("timed out waiting for the server")
            .expect("read failed");
        self.buf.extend_from_slice(&chunk[..n]);
        n > 0
    }

    async fn take(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            assert!(
                self.fill().await,
                "EOF with {} of {n} bytes",
                self.buf.len()
            );
        }
        self.buf.drain(..n).collect()
    }

    /// The next CRLF-terminated line, without the CRLF.
    async fn line(&mut self) -> String {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = self.take(i + 2).await;
                return String::from_utf8_lossy(&line[..i]).into_owned();
            }
            assert!(self.fill().await, "EOF in a line: {:?}", self.text());
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf).into_owned()
    }

    /// The next answer's status and headers.
    async fn head(&mut self) -> (u16, Vec<(String, String)>) {
        let status_line = self.line().await;
        let mut parts = status_line.splitn(3, ' ');
        assert_eq!(
            parts.next(),
            Some("HTTP/1.1"),
            "status line {status_line:?}"
        );
        let status = parts.next().and_then(|s| s.parse().ok());
        let status = status.unwrap_or_else(|| panic!("status line {status_line:?}"));
        let mut headers = Vec::new();
        loop {
            let line = self.line().await;
            if line.is_empty() {
                return (status, headers);
            }
            let (name, value) = line.split_once(':').expect("a header line");
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }

    /// The next answer, to a request other than HEAD.
    async fn answer(&mut self) -> Answer {
        self.answer_to(false).await
    }

    /// The next answer, its body delimited as the server says (for `head`, none).
    async fn answer_to(&mut self, head: bool) -> Answer {
        let (status, headers) = self.head().await;
        let mut a = Answer {
            status,
            headers,
            body: Vec::new(),
        };
        if head || status == 204 || status == 304 || (100..200).contains(&status) {
            return a;
        }
        if a.header("transfer-encoding") == Some("chunked") {
            loop {
                let size_line = self.line().await;
                let hex = size_line.split(';').next().unwrap_or_default().trim();
                let size = usize::from_str_radix(hex, 16).expect("a chunk size");
                if size == 0 {
                    assert_eq!(self.line().await, "", "the last chunk ends with CRLF");
                    return a;
                }
                let data = self.take(size).await;
                a.body.extend(data);
                assert_eq!(self.take(2).await, b"\r\n", "a chunk ends with CRLF");
            }
        } else if let Some(n) = a.header("content-length") {
            let n = n.parse().expect("a numeric content-length");
            a.body = self.take(n).await;
        } else {
            while self.fill().await {}
            a.body = std::mem::take(&mut self.buf);
        }
        a
    }

    /// The server closes the connection (promptly), with nothing more sent.
    async fn expect_eof(&mut self) {
        assert!(self.buf.is_empty(), "stray bytes: {:?}", self.text());
        let mut b = [0u8; 256];
        match timeout(Duration::from_secs(2), self.s.read(&mut b)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => panic!("expected EOF, got {:?}", String::from_utf8_lossy(&b[..n])),
            Ok(Err(e)) => panic!("expected EOF, got {e}"),
            Err(_) => panic!("the server did not close the connection within 2 s"),
        }
    }
}

/// A JSON refusal: `application/json`, an object with a non-empty "error" text.
fn assert_json_error(a: &Answer) {
    assert_eq!(a.header("content-type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_slice(&a.body).expect("a JSON body");
    assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
}

async fn wait_until(what: &str, cond: impl Fn() -> bool) {
    timeout(WAIT, async {
        while !cond() {
            sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("never: {what}"));
}

// ---------------------------------------------------------------------------------------------
// The tests

#[tokio::test]
async fn keep_alive_serves_two_requests_with_length_and_date() {
    let (addr, _stop, _) = start().await;
    let mut c = Client::connect(addr).await;
    for path in ["/first", "/second"] {
        c.send(get(path)).await;
        let a = c.answer().await;
        assert_eq!(a.status, 200);
        let expected = format!("GET {path} body=");
        assert_eq!(a.text(), expected);
        assert_eq!(
            a.header("content-length"),
            Some(&*expected.len().to_string())
        );
        assert_eq!(a.header("connection"), None);
        let date = httpdate::parse_http_date(a.header("date").expect("a date header"))
            .expect("an HTTP date");
        let skew = date
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_else(|e| e.duration());
        assert!(skew < Duration::from_secs(60), "date off by {skew:?}");
        assert!(c.buf.is_empty(), "stray bytes: {:?}", c.text());
    }
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let (addr, _stop, _) = start().await;
    let mut c = Client::connect(addr).await;
    // The first is slow: the others arrive while it is handled.
    c.send(format!(
        "{}{}{}{}",
        get("/slow?ms=200"),
        get("/one"),
        post("/two", "payload"),
        get("/three")
    ))
    .await;
    for expected in [
        "slow done",
        "GET /one body=",
        "POST /two body=payload",
        "GET /three body=",
    ] {
        let a = c.answer().await;
        assert_eq!((a.status, a.text().as_str()), (200, expected));
    }
    // Still open after the burst.
    c.send(get("/four")).await;
    assert_eq!(c.answer().await.text(), "GET /four body=");
}

#[tokio::test]
async fn request_body_by_content_length_is_echoed() {
    let (addr, _stop, _) = start().await;
    let mut c = Client::connect(addr).await;
    c.send(post("/p", "hello world")).await;
    let a = c.answer().await;
    assert_eq!(
        (a.status, a.text().as_str()),
        (200, "POST /p body=hello world")
    );
    // The body sent in pieces, some time apart.
    c.send("PUT /q HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
        .await;
    sleep(Duration::from_millis(50)).await;
    c.send("defghij").await;
    assert_eq!(c.answer().await.text(), "PUT /q body=abcdefghij");
}

#[tokio::test]
async fn large_request_body_streams_and_connection_stays_usable() {
    let (addr, _stop, _) = start().await;
    let mut c = Client::connect(addr).await;
    let body: String = (0..200 * 1024)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    // Head and body in separate writes, and the next request right behind the body.
    c.send(format!(
        "POST /big HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        body.len()
    ))
    .await;
    c.send(format!("{body}{}", get("/after"))).await;
    let a = c.answer().await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body.len(), "POST /big body=".len() + body.len());
    assert!(a.text() == format!("POST /big body={body}"), "body mangled");
    let a = c.answer().await;
    assert_eq!((a.status, a.text().as_str()), (200, "GET /after body="));
    c.send(get("/again")).await;
    assert_eq!(c.answer().await.text(), "GET /again body=");
}

#[tokio::test]
async fn chunked_request_body_is_echoed_and_ends_at_the_zero_chunk() {
    let (addr, _stop, _) = start().await;
    let mut c = Client::connect(addr).await;
    c.send("POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        .await;
    sleep(Duration::from_millis(50)).await;
    c.send("1;name=value\r\n \r\nA\r\nworld, 10!\r\n").await;
    sleep(Duration::from_millis(50)).await;
    // The zero chunk, and right behind it the next request: the body ends at the zero chunk.
    c.send(format!("0\r\n\r\n{}", get("/next"))).await;
    let a = c.answer().await;
    assert_eq!(
        (a.status, a.text().as_str()),
        (200, "POST /c body=hello world, 10!")
    );
    let a = c.answer().await;
    assert_eq!((a.status, a.text().as_str()), (200, "GET /next body="));
    // A chunked body with a trailer, whole in one write.
    c.send(
        "POST /t HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Sum: 1\r\n\r\n",
    )
    .await;
    assert_eq!(c.answer().await.text(), "POST /t body=abc");
    c.send(get("/last")).await;
    assert_eq!(c.answer().await.text(), "GET /last body=");
}

#[tokio::test]
async fn expect_100_continue_is_answered_before_the_body_is_sent() {
    let (addr, _stop, _) = start().await;
    let mut c = Client::connect(addr).await;
    // A small body (read before the handler runs) and a large one (streamed to it).
    for n in [5usize, 100_000] {
        let body = "x".repeat(n);
        c.send(format!(
            "POST /e HTTP/1.1\r\nHost: t\r\nContent-Length: {n}\r\nExpect: 100-continue\r\n\r\n"
        ))
        .await;
        let interim = c.answer().await;
        assert_eq!(interim.status, 100, "{interim:?}");
        c.send(&body).await;
        let a = c.answer().await;
        assert_eq!(a.status, 200);
        assert_eq!(a.text(), format!("POST /e body={body}"));
    }
}

#[tokio::test]
async fn http10_without_keep_alive_is_closed_after_the_answer() {
    let (addr, _stop, _) = start().await;
    let mut c = Client::connect(addr).await;
    c.send("GET /old HTTP/1.0\r\n\r\n").await;
    let a = c.answer().await;
    assert_eq!((a.status, a.text().as_str()), (200, "GET /old body="));
    assert_eq!(a.header("content-length"), Some("14"));
    assert_eq!(a.header("connection"), Some("close"));
    c.expect_eof().await;
}

#[tokio::test]
async fn http10_with_keep_alive_stays_open() {
    let (addr, _stop, _) = start().await;
    let mut c = Client::connect(addr).await;
    for path in ["/a", "/b"] {
        c.send(format!(
            "GET {path} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
        ))
        .await;
        let a = c.answer().await;
        assert_eq!(a.text(), format!("GET {path} body="));
        assert_eq!(a.header("connection"), Some("keep-alive"));
    }
}

#[tokio::test]
async fn http10_streamed_answer_is_not_chunked_and_runs_until_close() {
    let (addr, _stop, _) = start().await;
    let mut c = Client::connect(addr).await;
    c.send("GET /chunked HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .await;
    let a = c.answer().await; // no length, not chunked: read to EOF
    assert_eq!(a.status, 200);
    assert_eq!(a.header("transfer-encoding"), None);
    assert_eq!(a.header("content-length"), None);
    assert_eq!(a.header("connection"), Some("close"));
    assert_eq!(a.text(), FRAMES.concat());
}

#[tokio::test]
async fn head_answer_keeps_an_explicit_length_and_sends_no_body() {
    let (addr, _stop, _) = start().await;
    let mut c = Client::connect(addr).await;
    c.send("HEAD /fixed?cl HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let a = c.answer_to(true).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("content-length"), Some(&*FIXED.len().to_string()));
    // Nothing of the body follows: the next answer parses from its first byte.
    c.send(get("/fixed")).await;
    let a = c.answer().await;
    assert_eq!((a.status, a.text().as_str()), (200, FIXED));
    // Also for a body of unknown length.
    c.send("HEAD /chunked HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let a = c.answer_to(true).await;
    assert_eq!(a.status, 200);
    c.send(get("/after")).await;
    assert_eq!(c.answer().await.text(), "GET /after body=");
}

#[tokio::test]
async fn head_answer_has_the_length_get_would_have() {
    let (addr, _stop, _) = start().await;
    let mut c = Client::connect(addr).await;
    c.send(get("/fixed")).await;
    let got = c.answer().await;
    c.send("HEAD /fixed HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let head = c.answer_to(true).await;
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length"),
        got.header("content-length"),
        "HEAD headers: {:?}",
        head.headers
    );
    c.send(get("/after")).await;
    assert_eq!(c.answer().await.text(), "GET /after body=");
}

#[tokio::test]
async fn no_body_is_sent_with_204_or_304() {
    let (addr, _stop, _) = start().await;
    let mut c = Client::connect(addr).await;
    c.send(get("/empty204")).await;
    let a = c.answer().await;
    assert_eq!(a.status, 204);
    assert_eq!(a.header("content-length"), None);
    assert_eq!(a.header("transfer-encoding"), None);
    c.send(get("/notmod")).await;
    let a = c.answer().await;
    assert_eq!(a.status, 304);
    assert_eq!(a.header("content-length"), Some("1234"));
    assert_eq!(a.header("transfer-encoding"), None);
    // Had either answer carried its body, this one would not parse.
    c.send(get("/after")).await;
    let a = c.answer().await;
    assert_eq!((a.status, a.text().as_str()), (200, "GET /after body="));
    assert!(c.buf.is_empty(), "stray bytes: {:?}", c.text());
}

#[tokio::test]
async fn streamed_answer_is_chunked_and_connection_reusable() {
    let (addr, _stop, _) = start().await;
    let mut c = Client::connect(addr).await;
    c.send(get("/chunked")).await;
    // answer() checks each chunk's CRLF and that the body ends with "0\r\n\r\n".
    let a = c.answer().await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("transfer-encoding"), Some("chunked"));
    assert_eq!(a.header("content-length"), None);
    assert_eq!(a.text(), FRAMES.concat());
    c.send(get("/after")).await;
    assert_eq!(c.answer().await.text(), "GET /after body=");
}

#[tokio::test]
async fn malformed_request_gets_400_json_and_close() {
    let (addr, _stop, _) = start().await;
    for bad in [
        "GARBAGE\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: t\r\nNo colon here\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: t\r\nContent-Length: five\r\n\r\n",
    ] {
        let mut c = Client::connect(addr).await;
        c.send(bad).await;
        let a = c.answer().await;
        assert_eq!(a.status, 400, "{bad:?}");
        assert_eq!(a.header("connection"), Some("close"));
        assert_json_error(&a);
        c.expect_eof().await;
    }
}

#[tokio::test]
async fn more_than_100_headers_get_431_json() {
    let (addr, _stop, _) = start().await;
    let request = |n: usize| {
        let headers: String = (1..n).map(|i| format!("X-H{i}: v\r\n")).collect();
        format!("GET /many HTTP/1.1\r\nHost: t\r\n{headers}\r\n")
    };
    // 100 headers are fine.
    let mut c = Client::connect(addr).await;
    c.send(request(100)).await;
    assert_eq!(c.answer().await.status, 200);
    let mut c = Client::connect(addr).await;
    c.send(request(101)).await;
    let a = c.answer().await;
    assert_eq!(a.status, 431);
    assert_eq!(a.header("connection"), Some("close"));
    assert_json_error(&a);
    c.expect_eof().await;
}

/// The answer to a GET whose head has a `size`-byte header value, sent in `pieces` writes.
async fn big_head(addr: SocketAddr, size: usize, pieces: usize) -> Answer {
    let mut c = Client::connect(addr).await;
    let head = format!(
        "GET /big-head HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "v".repeat(size)
    );
    for part in head.as_bytes().chunks(head.len().div_ceil(pieces)) {
        // The server may refuse (and close) before the whole head is sent.
        if timeout(WAIT, c.s.write_all(part))
            .await
            .is_ok_and(|r| r.is_err())
        {
            break;
        }
        if pieces > 1 {
            sleep(Duration::from_millis(5)).await;
        }
    }
    c.answer().await
}

#[tokio::test]
async fn head_larger_than_64k_arriving_in_pieces_gets_431_json() {
    let (addr, _stop, _) = start().await;
    let a = big_head(addr, 80 * 1024, 20).await;
    assert_eq!(a.status, 431);
    assert_eq!(a.header("connection"), Some("close"));
    assert_json_error(&a);
}

#[tokio::test]
async fn head_larger_than_64k_arriving_at_once_gets_431_json() {
    let (addr, _stop, _) = start().await;
    let a = big_head(addr, 80 * 1024, 1).await;
    assert_eq!(a.status, 431, "an 80 KiB head in one write");
    assert_json_error(&a);
}

#[tokio::test]
async fn connection_close_from_the_client_is_honoured() {
    let (addr, _stop, _) = start().await;
    let mut c = Client::connect(addr).await;
    c.send("GET /bye HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await;
    let a = c.answer().await;
    assert_eq!((a.status, a.text().as_str()), (200, "GET /bye body="));
    assert_eq!(a.header("connection"), Some("close"));
    c.expect_eof().await;
}

#[tokio::test]
async fn client_leaving_drops_the_running_handler() {
    let (addr, _stop, probe) = start().await;
    let mut c = Client::connect(addr).await;
    c.send(get("/slow?ms=10000")).await;
    wait_until("the handler started", || probe.started.load(SeqCst) == 1).await;
    drop(c);
    // Well before its 10 s are over.
    wait_until("the handler was dropped", || {
        probe.dropped.load(SeqCst) == 1
    })
    .await;
    assert_eq!(probe.finished.load(SeqCst), 0);
}

#[tokio::test]
async fn graceful_stop_closes_idle_connections_and_finishes_busy_ones() {
    let (addr, stop, probe) = start().await;
    let mut idle = Client::connect(addr).await;
    idle.send(get("/warm")).await;
    assert_eq!(idle.answer().await.status, 200);
    let mut busy = Client::connect(addr).await;
    busy.send(get("/slow?ms=3000")).await;
    wait_until("the slow handler started", || {
        probe.started.load(SeqCst) == 1
    })
    .await;
    stop.send(true).unwrap();
    // The idle connection closes at once, while the busy one is still being handled.
    idle.expect_eof().await;
    assert_eq!(
        probe.finished.load(SeqCst),
        0,
        "the idle one waited for the busy one"
    );
    let a = busy.answer().await;
    assert_eq!((a.status, a.text().as_str()), (200, "slow done"));
    assert_eq!(a.header("connection"), Some("close"));
    busy.expect_eof().await;
    assert_eq!(probe.dropped.load(SeqCst), 0);
}

#[tokio::test]
async fn transfer_coding_other_than_chunked_last_gets_400() {
    let (addr, _stop, _) = start().await;
    for coding in ["gzip", "chunked, gzip"] {
        let mut c = Client::connect(addr).await;
        c.send(format!(
            "POST /te HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: {coding}\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        ))
        .await;
        let a = c.answer().await;
        assert_eq!(a.status, 400, "transfer-encoding: {coding}");
        assert_eq!(a.header("connection"), Some("close"));
        assert_json_error(&a);
        c.expect_eof().await;
    }
    // Chunked last is fine.
    let mut c = Client::connect(addr).await;
    c.send("POST /te HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        .await;
    assert_eq!(c.answer().await.text(), "POST /te body=abc");
}

#[tokio::test]
async fn two_different_content_lengths_get_400() {
    let (addr, _stop, _) = start().await;
    let mut c = Client::connect(addr).await;
    c.send("POST /cl HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd")
        .await;
    let a = c.answer().await;
    assert_eq!(a.status, 400);
    assert_eq!(a.header("connection"), Some("close"));
    assert_json_error(&a);
    c.expect_eof().await;
    // The same length twice is one length.
    let mut c = Client::connect(addr).await;
    c.send("POST /cl HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc")
        .await;
    assert_eq!(c.answer().await.text(), "POST /cl body=abc");
}

#[tokio::test]
async fn transfer_encoding_with_content_length_is_chunked_and_closed_after() {
    // RFC 9112 §6.3: chunked wins, and the connection is not reused.
    let (addr, _stop, _) = start().await;
    let mut c = Client::connect(addr).await;
    c.send(
        "POST /both HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n\
         5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    let a = c.answer().await;
    assert_eq!(
        (a.status, a.text().as_str()),
        (200, "POST /both body=hello")
    );
    assert_eq!(a.header("connection"), Some("close"));
    c.expect_eof().await;
}

#[tokio::test]
async fn chunk_size_with_a_sign_is_refused() {
    // RFC 9112 §7.1: chunk-size = 1*HEXDIG; "+3" is not a size. The handler sees a body error
    // (and answers 400 here), not "abc".
    let (addr, _stop, _) = start().await;
    let mut c = Client::connect(addr).await;
    c.send("POST /sign HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n+3\r\nabc\r\n0\r\n\r\n")
        .await;
    let a = c.answer().await;
    assert_eq!(a.status, 400, "answered {:?}", a.text());
}

#[tokio::test]
async fn content_length_with_a_sign_gets_400() {
    // RFC 9110 §8.6: Content-Length = 1*DIGIT. A "+3" read as 3 by one server and refused or
    // read otherwise by another in front of it is a request-smuggling opening.
    let (addr, _stop, _) = start().await;
    let mut c = Client::connect(addr).await;
    c.send("POST /cl HTTP/1.1\r\nHost: t\r\nContent-Length: +3\r\n\r\nabc")
        .await;
    let a = c.answer().await;
    assert_eq!(a.status, 400, "answered {:?}", a.text());
    assert_json_error(&a);
}

#[tokio::test]
async fn date_header_follows_the_clock() {
    let (addr, _stop, _) = start().await;
    let mut c = Client::connect(addr).await;
    c.send(get("/d1")).await;
    let first = c.answer().await.header("date").map(str::to_owned);
    sleep(Duration::from_millis(2100)).await;
    c.send(get("/d2")).await;
    let second = c.answer().await.header("date").map(str::to_owned);
    assert!(first.is_some());
    assert_ne!(first, second, "the date header did not move in 2 s");
}
