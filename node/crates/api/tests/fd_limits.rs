//! The operator API when an outsider holds thousands of idle connections, and when the
//! process runs out of file descriptors. Both tests change or use up the process's
//! descriptor limit, so they run one at a time, in their own test binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use backstop_api::Metrics;
use backstop_api::proto::backstop_client::BackstopClient;
use backstop_api::proto::{self as pb};
use common::{
    Capture, TOKEN, filled_state, nofile_limits, open_fds, set_nofile_soft, start, start_metrics,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The tests of this binary run one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The process-wide log capture of this binary.
fn capture() -> &'static Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let c = Capture::default();
        tracing::subscriber::set_global_default(c.clone()).unwrap();
        c
    })
}

/// Opens up to `want` TCP connections to `addr` that send nothing, 200 at a time; stops
/// early when a whole batch fails (e.g. out of descriptors).
async fn open_idle(addr: SocketAddr, want: usize) -> Vec<TcpStream> {
    let mut out = Vec::with_capacity(want);
    while out.len() < want {
        let batch = (want - out.len()).min(200);
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..batch {
            set.spawn(async move {
                tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(addr)).await
            });
        }
        let mut failures = 0;
        while let Some(r) = set.join_next().await {
            match r {
                Ok(Ok(Ok(s))) => out.push(s),
                _ => failures += 1,
            }
        }
        if failures == batch {
            break;
        }
    }
    out
}

/// Connects a fresh client and calls GetStatus; the time it took.
async fn get_status(addr: SocketAddr) -> Result<Duration, String> {
    let t = Instant::now();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| format!("connect: {e:?}"))?;
    let status = BackstopClient::new(channel)
        .get_status(pb::GetStatusRequest {})
        .await
        .map_err(|e| format!("GetStatus: {e:?}"))?;
    assert_eq!(status.into_inner().status.unwrap().node_name, "alpha");
    Ok(t.elapsed())
}

/// GET `path` over HTTP/1.1; (status line, body).
async fn http_get(addr: SocketAddr, path: &str) -> Result<(String, String), String> {
    let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)
        .await
        .map_err(|e| e.to_string())?;
    let (head, body) = raw.split_once("\r\n\r\n").ok_or("no header end")?;
    Ok((
        head.lines().next().unwrap_or("").to_owned(),
        body.to_owned(),
    ))
}

/// The value of an unlabelled metric in an exposition.
fn metric(body: &str, name: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in\n{body}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_idle_connections_do_not_starve_real_clients() {
    let _one = ONE_AT_A_TIME.lock().await;
    // As many idle connections as the descriptor limit allows, leaving room for the
    // server's side of its capped connections and the real client. 10,000 descriptors
    // (raised to if the hard limit allows, lowered to otherwise) keep the test short; the
    // idle connections must outnumber half the limit, or a server without a cap would
    // not run out.
    let (_, hard) = nofile_limits();
    let limit = set_nofile_soft(hard.min(10_000));
    let want = usize::try_from(limit.saturating_sub(1_500)).unwrap();
    assert!(
        want >= 2_000,
        "the descriptor limit ({limit}) leaves room for only {want} idle connections"
    );

    let server = start(filled_state(), Some(TOKEN)).await;
    let metrics_server = start_metrics(Arc::new(Metrics::new()), filled_state()).await;
    let metrics_addr = metrics_server.addr;

    let t = Instant::now();
    let idle = open_idle(server.addr, want).await;
    eprintln!(
        "{} idle connections opened in {:?}",
        idle.len(),
        t.elapsed()
    );
    assert!(
        idle.len() >= 2_000,
        "only {} connections opened",
        idle.len()
    );

    // A real client still gets an answer quickly, more than once.
    for _ in 0..3 {
        let answered = tokio::time::timeout(Duration::from_secs(2), get_status(server.addr)).await;
        let took = answered
            .unwrap_or_else(|_| Err("no answer within 2 s".to_owned()))
            .unwrap_or_else(|e| panic!("GetStatus under {} idle connections: {e}", idle.len()));
        eprintln!("GetStatus under {} idle connections: {took:?}", idle.len());
    }
    // So does the metrics endpoint, and the API holds at most its cap of connections.
    let (status, body) =
        tokio::time::timeout(Duration::from_secs(2), http_get(metrics_addr, "/metrics"))
            .await
            .expect("/metrics did not answer within 2 s")
            .unwrap();
    assert_eq!(status, "HTTP/1.1 200 OK");
    let open = metric(&body, "backstop_api_connections_open");
    assert!(
        open <= 256.0,
        "{open} connections open, above the default cap of 256"
    );
    assert!(
        body.contains("backstop_api_connections_closed_total{reason=\"evicted\"}"),
        "{body}"
    );

    drop(idle);
    server.stop().await;
    metrics_server.stop().await;
}

/// CPU time used by this process so far (utime + stime), in clock ticks, read from an
/// already open `/proc/self/stat` (there may be no descriptor left to open it).
fn cpu_ticks(file: &mut std::fs::File) -> u64 {
    use std::io::{Read, Seek};
    file.rewind().unwrap();
    let mut stat = String::new();
    file.read_to_string(&mut stat).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of proc(5), counted from the state (field 3).
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepting_backs_off_when_descriptors_run_out() {
    let _one = ONE_AT_A_TIME.lock().await;
    let capture = capture();
    let (soft_before, _) = nofile_limits();
    let server = start(filled_state(), Some(TOKEN)).await;
    let mut stat = std::fs::File::open("/proc/self/stat").unwrap();
    // A small limit, filled with files; then one connection the server cannot accept.
    let limit = set_nofile_soft(u64::try_from(open_fds()).unwrap() + 64);
    let mut files = Vec::new();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        files.push(f);
        assert!(files.len() < 100_000, "the limit did not apply");
    }
    files.pop();
    let pending = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(server.addr))
        .await
        .unwrap()
        .unwrap();
    eprintln!(
        "limit {limit}: {} files held, one connection pending",
        files.len()
    );
    // Let the server run into the limit.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let warned_before = capture.matching("accept failed").len();

    // While out of descriptors, the accept loop sleeps instead of spinning.
    let ticks = cpu_ticks(&mut stat);
    let t = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let used = cpu_ticks(&mut stat) - ticks;
    let elapsed = t.elapsed();
    // Clock ticks are 1/100 s on Linux.
    let cpu = Duration::from_millis(used * 10);
    eprintln!("CPU while out of descriptors: {cpu:?} in {elapsed:?}");
    assert!(
        cpu < elapsed / 4,
        "{cpu:?} of CPU in {elapsed:?}: the accept loop spins"
    );
    let warnings = capture.matching("accept failed");
    eprintln!("{} accept warnings: {warnings:?}", warnings.len());
    assert!(!warnings.is_empty(), "the exhaustion was not logged");
    assert!(
        warnings.len() - warned_before <= 1,
        "more than one line per interval: {warnings:?}"
    );

    // Once descriptors are back, the server answers again.
    drop(files);
    drop(pending);
    set_nofile_soft(soft_before);
    let answered = tokio::time::timeout(Duration::from_secs(3), get_status(server.addr))
        .await
        .expect("no answer within 3 s after the descriptors came back");
    answered.unwrap();
    server.stop().await;
}
