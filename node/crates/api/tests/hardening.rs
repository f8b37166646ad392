//! The operator API against an outside attacker: idle and silent connections, the
//! connection cap, Nagle delays, log floods and forged log lines, malformed and crafted
//! request messages. Real server on a loopback port, real clients.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use backstop_api::proto::backstop_client::BackstopClient;
use backstop_api::proto::{self as pb};
use backstop_api::{AdminRequest, EventKind, Metrics, NodeEvent, ServerOptions, SignalKind};
use bytes::Bytes;
use common::{Capture, TOKEN, channel, filled_state, member_id, start, start_with};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::Code;

/// A request carrying `authorization: Bearer <token>`.
fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

/// Reads until EOF or an error; the time it took, or `None` if the connection was still
/// open after `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let t = Instant::now();
    let mut buf = [0_u8; 4096];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
    .map(|()| t.elapsed())
}

/// The HTTP/2 client preface and an empty SETTINGS frame.
fn h2_preface() -> Vec<u8> {
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend_from_slice(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_idle_connections_are_closed() {
    let api = filled_state();
    let options = ServerOptions {
        handshake_timeout: Duration::from_millis(500),
        idle_timeout: Duration::from_secs(1),
        ..ServerOptions::default()
    };
    let server = start_with(api.clone(), Some(TOKEN), options).await;

    // A connection that never starts HTTP/2 is closed after the handshake timeout.
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let took = closed_within(&mut silent, Duration::from_secs(5))
        .await
        .expect("a silent connection stayed open");
    eprintln!("silent connection closed after {took:?}");
    assert!(took >= Duration::from_millis(400), "{took:?}");

    // One that completes the handshake but sends no request is closed after the idle
    // timeout, not before.
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    idle.write_all(&h2_preface()).await.unwrap();
    let took = closed_within(&mut idle, Duration::from_secs(5))
        .await
        .expect("an idle HTTP/2 connection stayed open");
    eprintln!("idle HTTP/2 connection closed after {took:?}");
    assert!(took >= Duration::from_millis(900), "{took:?}");

    // A connection with an open event stream is never idle.
    let mut c = BackstopClient::new(channel(server.addr).await);
    let mut events = c
        .stream_events(pb::StreamEventsRequest {})
        .await
        .unwrap()
        .into_inner();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    api.publish(NodeEvent::now(EventKind::Node, "", "still here"));
    let event = tokio::time::timeout(Duration::from_secs(2), events.message())
        .await
        .expect("the event stream was closed")
        .unwrap()
        .unwrap();
    assert_eq!(event.text, "still here");
    drop(events);

    // A client whose connection was closed for idleness reconnects on its next call.
    c.get_status(pb::GetStatusRequest {}).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    c.get_status(pb::GetStatusRequest {}).await.unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_closed_at_once() {
    let options = ServerOptions {
        max_connections: 3,
        ..ServerOptions::default()
    };
    let server = start_with(filled_state(), Some(TOKEN), options).await;
    // Three connections, each with a request in flight (an event stream).
    let mut clients = Vec::new();
    let mut streams = Vec::new();
    for _ in 0..3 {
        let mut c = BackstopClient::new(channel(server.addr).await);
        streams.push(
            c.stream_events(pb::StreamEventsRequest {})
                .await
                .unwrap()
                .into_inner(),
        );
        clients.push(c);
    }
    // A fourth is closed at once.
    let mut extra = TcpStream::connect(server.addr).await.unwrap();
    let took = closed_within(&mut extra, Duration::from_secs(2))
        .await
        .expect("a connection beyond the cap stayed open");
    assert!(took < Duration::from_millis(500), "{took:?}");
    // The admitted ones keep working.
    clients[0]
        .get_status(pb::GetStatusRequest {})
        .await
        .unwrap();

    // Once a connection has nothing in flight, a new connection takes its slot.
    drop(streams.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut admitted = TcpStream::connect(server.addr).await.unwrap();
    assert_eq!(
        closed_within(&mut admitted, Duration::from_millis(500)).await,
        None,
        "a new connection was refused although a slot was unused"
    );
    // Shutting down does not wait for connections that never started HTTP/2.
    drop(streams);
    let t = Instant::now();
    server.stop().await;
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    drop(admitted);
}

/// A state whose ListMembers answer is about 20 KB.
fn many_members() -> backstop_api::ApiState {
    let api = filled_state();
    let mut members = api.read(|m| m.members.clone());
    let template = members[0].clone();
    for i in 0..60_u8 {
        let mut m = template.clone();
        m.id = member_id(i.wrapping_add(0x20));
        m.name = format!("member-{i:02}-{}", "x".repeat(200));
        members.push(m);
    }
    api.set_members(members);
    api
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_are_not_held_back_by_nagle() {
    let server = start(many_members(), Some(TOKEN)).await;
    let mut c = BackstopClient::new(channel(server.addr).await);
    let size = c
        .list_members(pb::ListMembersRequest {})
        .await
        .unwrap()
        .into_inner()
        .encoded_len();
    assert!(size > 16 * 1024, "{size}");
    let mut times = Vec::new();
    for _ in 0..21 {
        let t = Instant::now();
        let members = c
            .list_members(pb::ListMembersRequest {})
            .await
            .unwrap()
            .into_inner()
            .members;
        times.push(t.elapsed());
        assert_eq!(members.len(), 62);
    }
    times.sort();
    let median = times[times.len() / 2];
    eprintln!(
        "ListMembers ({size} bytes): median {median:?}, min {:?}, max {:?}",
        times[0],
        times[times.len() - 1]
    );
    assert!(median < Duration::from_millis(20), "median {median:?}");
    server.stop().await;
}

/// The value of `name` (with labels) in an exposition, 0 when absent.
fn metric(body: &str, name: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .map_or(0.0, |v| v.parse().unwrap())
}

/// `suppressed=N` of a captured line.
fn suppressed(line: &str) -> u64 {
    line.split_whitespace()
        .find_map(|f| f.strip_prefix("suppressed="))
        .unwrap()
        .parse()
        .unwrap()
}

// One thread: the subscriber set for this thread sees the server's tasks too.
#[tokio::test]
async fn refused_admin_calls_are_logged_at_most_once_per_interval() {
    let capture = Capture::default();
    let _logs = tracing::subscriber::set_default(capture.clone());
    let wrong = "backstop_api_admin_refused_total{reason=\"wrong_token\"}";
    let counted_before = metric(&Metrics::new().encode().unwrap(), wrong);
    let interval = Duration::from_millis(1_500);
    let options = ServerOptions {
        log_interval: interval,
        ..ServerOptions::default()
    };
    let server = start_with(filled_state(), Some(TOKEN), options).await;
    let mut c = BackstopClient::new(channel(server.addr).await);
    let refuse = |c: &mut BackstopClient<tonic::transport::Channel>| {
        let mut c = c.clone();
        async move {
            let err = c
                .request_unpause(with_token(
                    pb::RequestUnpauseRequest { chain_id: 31337 },
                    "guess",
                ))
                .await
                .unwrap_err();
            assert_eq!(err.code(), Code::Unauthenticated);
        }
    };

    let t = Instant::now();
    let calls = 500_u64;
    for _ in 0..calls {
        refuse(&mut c).await;
    }
    let burst = t.elapsed();
    let lines = capture.matching("admin call refused");
    eprintln!("{calls} refused calls in {burst:?}: {} lines", lines.len());
    let allowed = 1 + usize::try_from(burst.as_millis() / interval.as_millis()).unwrap();
    assert!(
        lines.len() <= allowed,
        "{} lines for {calls} refusals in {burst:?}",
        lines.len()
    );
    assert!(lines[0].starts_with("WARN"), "{lines:?}");

    // The next refusal after the interval says how many were held back: every refusal
    // is either logged or counted in a later line.
    tokio::time::sleep(interval + Duration::from_millis(100)).await;
    refuse(&mut c).await;
    let lines = capture.matching("admin call refused");
    let accounted: u64 = lines.iter().map(|l| 1 + suppressed(l)).sum();
    assert_eq!(accounted, calls + 1, "{lines:?}");
    assert!(suppressed(lines.last().unwrap()) > 0, "{lines:?}");

    // All of them are counted in the metrics.
    let counted = metric(&Metrics::new().encode().unwrap(), wrong) - counted_before;
    assert!(counted >= 501.0, "{counted}");
    server.stop().await;
}

#[tokio::test]
async fn request_text_is_escaped_in_logs() {
    let capture = Capture::default();
    let _logs = tracing::subscriber::set_default(capture.clone());
    let api = filled_state();
    let mut server = start(api.clone(), Some(TOKEN)).await;
    // The runtime echoes the reason in its reply and in an event, as a node may.
    let mut admin_rx = std::mem::replace(&mut server.admin_rx, tokio::sync::mpsc::channel(1).1);
    let runtime = tokio::spawn({
        let api = api.clone();
        async move {
            while let Some(cmd) = admin_rx.recv().await {
                let AdminRequest::RaiseSignal { reason, .. } = &cmd.request else {
                    panic!("unexpected {:?}", cmd.request);
                };
                api.publish(NodeEvent::now(
                    EventKind::Signal,
                    "",
                    format!("operator signal: {reason}"),
                ));
                let _ = cmd.reply.send(Ok(format!("signal raised: {reason}")));
            }
        }
    });
    let reason =
        "drill\n2026-01-01T00:00:00Z WARN forged \"line\" \u{1b}[31mred\u{1b}[0m \u{202e}gnp.exe";
    let mut c = BackstopClient::new(channel(server.addr).await);
    let started = c
        .raise_signal(with_token(
            pb::RaiseSignalRequest {
                kind: pb::SignalKind::Operator as i32,
                subject: format!("0x{}", "5a".repeat(32)),
                reason: reason.into(),
            },
            TOKEN,
        ))
        .await
        .unwrap()
        .into_inner()
        .started;
    // The reply itself is data, unchanged.
    assert_eq!(started, format!("signal raised: {reason}"));

    let lines = capture.lines();
    let about_it: Vec<&String> = lines.iter().filter(|l| l.contains("drill")).collect();
    assert!(about_it.len() >= 2, "{lines:#?}");
    for line in &lines {
        assert!(
            !line.chars().any(|c| c.is_control() || c == '\u{202e}'),
            "raw control text in a log line: {line:?}"
        );
    }
    assert!(
        about_it.iter().any(|l| l.contains(
            "signal raised: drill\\n2026-01-01T00:00:00Z WARN forged \\\"line\\\" \\u{1b}[31mred"
        )),
        "{about_it:#?}"
    );
    server.stop().await;
    runtime.abort();
}

/// One gRPC call over a raw HTTP/2 connection: `body` is sent as is (framing included).
/// Returns the status code and message.
async fn raw_call(
    send: &mut hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    addr: SocketAddr,
    method: &str,
    body: Vec<u8>,
    token: Option<&str>,
) -> (Code, String) {
    let mut request = hyper::Request::builder()
        .method("POST")
        .uri(format!("http://{addr}/backstop.v1.Backstop/{method}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(t) = token {
        request = request.header("authorization", format!("Bearer {t}"));
    }
    let request = request.body(Full::new(Bytes::from(body))).unwrap();
    let response = tokio::time::timeout(Duration::from_secs(5), async {
        let response = send.send_request(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let collected = body.collect().await.unwrap();
        (parts.headers, collected.trailers().cloned())
    })
    .await
    .expect("no answer within 5 s");
    let (headers, trailers) = response;
    let map = match trailers {
        Some(t) if t.contains_key("grpc-status") => t,
        _ => headers,
    };
    let status = tonic::Status::from_header_map(&map).expect("no grpc-status");
    (status.code(), status.message().to_owned())
}

/// A raw HTTP/2 connection to `addr`.
async fn raw_connect(addr: SocketAddr) -> hyper::client::conn::http2::SendRequest<Full<Bytes>> {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    send
}

/// `message` in a gRPC frame.
fn framed(message: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// Appends a protobuf varint.
fn push_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(u8::try_from(v & 0x7f).unwrap() | 0x80);
        v >>= 7;
    }
    out.push(u8::try_from(v).unwrap());
}

/// A RaiseSignal message whose `kind` is the raw varint `kind`.
fn raise_with_kind(kind: u64) -> Vec<u8> {
    let mut m = vec![0x08];
    push_varint(&mut m, kind);
    m.extend(
        pb::RaiseSignalRequest {
            kind: 0,
            subject: format!("0x{}", "5a".repeat(32)),
            reason: "crafted".into(),
        }
        .encode_to_vec(),
    );
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_out_of_range_messages_get_invalid_argument() {
    let mut server = start(filled_state(), Some(TOKEN)).await;
    let mut admin_rx = std::mem::replace(&mut server.admin_rx, tokio::sync::mpsc::channel(1).1);
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let runtime = tokio::spawn(async move {
        while let Some(cmd) = admin_rx.recv().await {
            let _ = cmd.reply.send(Ok("started".into()));
            let _ = seen_tx.send(cmd.request);
        }
    });
    let addr = server.addr;
    let mut send = raw_connect(addr).await;

    for (method, body, why) in [
        (
            "GetIncident",
            framed(&[0x0a, 0x03, 0xff, 0xfe, 0xfd]),
            "a string that is not UTF-8",
        ),
        ("ListBreakers", framed(&[0xff, 0xff, 0xff, 0xff]), "garbage"),
        (
            "GetStatus",
            vec![0, 0, 0, 0, 10, 0x08, 0x01],
            "a truncated frame",
        ),
        (
            "GetStatus",
            vec![1, 0, 0, 0, 0],
            "the compressed flag without an encoding",
        ),
        ("GetStatus", vec![], "no message"),
        (
            "ListPeers",
            [framed(&[]), framed(&[])].concat(),
            "two messages",
        ),
        ("RaiseSignal", framed(&[0x08]), "a truncated varint"),
    ] {
        let (code, message) = raw_call(&mut send, addr, method, body, Some(TOKEN)).await;
        assert_eq!(
            code,
            Code::InvalidArgument,
            "{method} with {why}: {message}"
        );
    }

    // 2^32 + 6 is not SIGNAL_KIND_OPERATOR (6), with or without a token.
    for token in [Some(TOKEN), None] {
        let (code, message) = raw_call(
            &mut send,
            addr,
            "RaiseSignal",
            framed(&raise_with_kind((1 << 32) + 6)),
            token,
        )
        .await;
        assert_eq!(code, Code::InvalidArgument, "{message}");
        assert_eq!(
            message,
            format!(
                "kind: 4294967302 is not a signal kind (1..={}, see SignalKind)",
                SignalKind::ALL.len()
            )
        );
    }
    let (code, message) = raw_call(
        &mut send,
        addr,
        "RaiseSignal",
        framed(&raise_with_kind(99)),
        None,
    )
    .await;
    assert_eq!(
        (code, message.as_str()),
        (
            Code::InvalidArgument,
            format!(
                "kind: 99 is not a signal kind (1..={}, see SignalKind)",
                SignalKind::ALL.len()
            )
            .as_str()
        )
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        seen.try_recv().is_err(),
        "a crafted request reached the runtime"
    );

    // The same bytes with a valid kind go through.
    let (code, message) = raw_call(
        &mut send,
        addr,
        "RaiseSignal",
        framed(&raise_with_kind(6)),
        Some(TOKEN),
    )
    .await;
    assert_eq!(code, Code::Ok, "{message}");
    let reached = tokio::time::timeout(Duration::from_secs(2), seen.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(
            reached,
            AdminRequest::RaiseSignal {
                kind: SignalKind::Operator,
                ..
            }
        ),
        "{reached:?}"
    );
    // Oversized messages keep tonic's answer; unknown methods too.
    let (code, _) = raw_call(&mut send, addr, "GetStatus", vec![0, 0, 2, 0, 0], None).await;
    assert_eq!(code, Code::OutOfRange);
    let (code, _) = raw_call(&mut send, addr, "Nope", framed(&[]), None).await;
    assert_eq!(code, Code::Unimplemented);
    // Well-formed calls are unaffected.
    let (code, _) = raw_call(&mut send, addr, "GetStatus", framed(&[]), None).await;
    assert_eq!(code, Code::Ok);
    server.stop().await;
    runtime.abort();
}

/// xorshift64*.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n.max(1)).unwrap()).unwrap()
    }

    fn byte(&mut self) -> u8 {
        self.next().to_le_bytes()[0]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzzed_request_bodies_get_only_ok_or_invalid_argument() {
    let server = start(filled_state(), Some(TOKEN)).await;
    let addr = server.addr;
    let id = format!("{}:1", member_id(0x0a));
    let subject = format!("0x{}", "5a".repeat(32));
    let seeds: Vec<(&str, Vec<u8>)> = vec![
        ("GetStatus", Vec::new()),
        ("ListMembers", Vec::new()),
        (
            "ListIncidents",
            pb::ListIncidentsRequest { open_only: true }.encode_to_vec(),
        ),
        ("GetIncident", pb::GetIncidentRequest { id }.encode_to_vec()),
        (
            "ListBreakers",
            pb::ListBreakersRequest { active_only: true }.encode_to_vec(),
        ),
        (
            "RaiseSignal",
            pb::RaiseSignalRequest {
                kind: 6,
                subject: subject.clone(),
                reason: "r".into(),
            }
            .encode_to_vec(),
        ),
        (
            "RequestUnfreeze",
            pb::RequestUnfreezeRequest {
                chain_id: Some(31337),
                member: subject,
            }
            .encode_to_vec(),
        ),
    ];
    let mut rng = Rng(0x00ba_c570_9fa2_2e01);
    let mut send = raw_connect(addr).await;
    let mut counts = std::collections::BTreeMap::<String, u32>::new();
    for round in 0..400_u32 {
        let (method, seed) = &seeds[rng.below(seeds.len())];
        let mut message = seed.clone();
        for _ in 0..=rng.below(3) {
            match rng.below(5) {
                0 if !message.is_empty() => {
                    let i = rng.below(message.len());
                    message[i] ^= 1 << rng.below(8);
                }
                1 => {
                    let i = rng.below(message.len() + 1);
                    message.insert(i, rng.byte());
                }
                2 if !message.is_empty() => {
                    let i = rng.below(message.len());
                    message.remove(i);
                }
                3 => message.truncate(rng.below(message.len() + 1)),
                _ => message.extend((0..rng.below(12)).map(|_| rng.byte())),
            }
        }
        let mut body = framed(&message);
        if round % 5 == 4 {
            // Break the framing too.
            let i = rng.below(body.len());
            body[i] = rng.byte();
            body.truncate(body.len() - rng.below(3).min(body.len()));
        }
        let declared_too_large =
            body.len() >= 5 && u32::from_be_bytes([body[1], body[2], body[3], body[4]]) > 64 * 1024;
        // No token: admin calls that decode are refused after decoding.
        let (code, msg) = raw_call(&mut send, addr, method, body.clone(), None).await;
        let admin = method.starts_with("R");
        let allowed = match code {
            Code::Ok => !admin,
            Code::InvalidArgument => true,
            Code::NotFound => *method == "GetIncident",
            Code::Unauthenticated => admin,
            Code::OutOfRange => declared_too_large,
            _ => false,
        };
        assert!(allowed, "{method} {body:?}: {code:?} {msg}");
        *counts.entry(format!("{code:?}")).or_default() += 1;
    }
    eprintln!("outcomes: {counts:?}");
    assert!(
        counts.get("InvalidArgument").copied().unwrap_or(0) > 50,
        "{counts:?}"
    );
    server.stop().await;
}
