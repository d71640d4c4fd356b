//! `--metrics ADDR`: the core's counters ([`target_core::metrics`]) as Prometheus
//! text (version 0.0.4, encoded by `prometheus-client`) over HTTP.
//!
//! The listener has its own thread (`tgtd-metrics`) and reads only atomics and
//! short-held registry locks, so a scrape, a slow client or a flood of requests
//! never waits on or delays an event loop. It answers one request per connection,
//! one connection at a time: the request head may be at most [`MAX_REQUEST`] bytes
//! and must arrive within [`IO_TIMEOUT`]; only `GET /metrics` gets the counters
//! (another method is 405, another path 404, a malformed or oversized request 400 /
//! 431).

#![allow(clippy::disallowed_methods)] // owns a thread

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};
use target_core::metrics::{HistogramSnapshot, MetricsSnapshot};
use target_core::Core;

/// Longest request head read (request line and headers).
pub const MAX_REQUEST: usize = 4096;

/// How long a client may take, in all, to send its request, and again to read the
/// answer (a deadline, not a per-read timeout: a byte every second does not keep
/// the listener).
pub const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// Bind `addr` and serve the metrics of `core` from a thread of its own. Returns
/// the bound address (port 0 resolved).
pub fn spawn(addr: SocketAddr, core: Arc<Core>) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let bound = listener.local_addr()?;
    std::thread::Builder::new()
        .name("tgtd-metrics".into())
        .spawn(move || {
            for stream in listener.incoming() {
                match stream {
                    Ok(s) => {
                        if let Err(e) = serve_one(s, &core) {
                            tracing::debug!("metrics client: {e}");
                        }
                    }
                    Err(e) => {
                        tracing::warn!("metrics accept failed: {e}");
                        // Out of descriptors: do not spin.
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
        })?;
    Ok(bound)
}

/// What a request head asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Metrics,
    MethodNotAllowed,
    NotFound,
    BadRequest,
    TooLarge,
}

/// Decide from a whole request head (or what arrived of it).
fn route(head: &[u8], complete: bool) -> Route {
    if !complete {
        return if head.len() >= MAX_REQUEST {
            Route::TooLarge
        } else {
            Route::BadRequest
        };
    }
    let Ok(text) = std::str::from_utf8(head) else {
        return Route::BadRequest;
    };
    let line = text.lines().next().unwrap_or("");
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Route::BadRequest;
    };
    if !version.starts_with("HTTP/1.") {
        return Route::BadRequest;
    }
    let path = target.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET", "/metrics") => Route::Metrics,
        (_, "/metrics") => Route::MethodNotAllowed,
        _ => Route::NotFound,
    }
}

/// What is left until `deadline`, or a timeout error when nothing is.
fn remaining(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::ErrorKind::TimedOut.into());
    }
    Ok(left)
}

/// Read up to the end of the head ("\r\n\r\n"), at most [`MAX_REQUEST`] bytes, by
/// `deadline`.
fn read_head(s: &mut TcpStream, deadline: Instant) -> io::Result<(Vec<u8>, bool)> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    loop {
        s.set_read_timeout(Some(remaining(deadline)?))?;
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            buf.truncate(end + 4);
            return Ok((buf, true));
        }
        if buf.len() >= MAX_REQUEST {
            return Ok((buf, false));
        }
        let want = chunk.len().min(MAX_REQUEST - buf.len());
        // A timed-out socket read is not restarted after a signal (signal(7)).
        let n = match s.read(&mut chunk[..want]) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => r?,
        };
        if n == 0 {
            return Ok((buf, false));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Write all of `data` by `deadline`.
fn write_by(s: &mut TcpStream, mut data: &[u8], deadline: Instant) -> io::Result<()> {
    while !data.is_empty() {
        s.set_write_timeout(Some(remaining(deadline)?))?;
        match s.write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn serve_one(mut s: TcpStream, core: &Core) -> io::Result<()> {
    let (head, complete) = read_head(&mut s, Instant::now() + IO_TIMEOUT)?;
    let (status, extra, body) = match route(&head, complete) {
        Route::Metrics => (
            "200 OK",
            format!(
                "Content-Type: {}\r\n",
                prometheus_client::encoding::prometheus_text::CONTENT_TYPE
            ),
            render(&core.metrics.snapshot(core)),
        ),
        Route::MethodNotAllowed => (
            "405 Method Not Allowed",
            "Allow: GET\r\n".to_string(),
            "only GET /metrics\n".to_string(),
        ),
        Route::NotFound => ("404 Not Found", String::new(), "only GET /metrics\n".into()),
        Route::BadRequest => ("400 Bad Request", String::new(), String::new()),
        Route::TooLarge => (
            "431 Request Header Fields Too Large",
            String::new(),
            String::new(),
        ),
    };
    let answer = format!(
        "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    write_by(&mut s, answer.as_bytes(), Instant::now() + IO_TIMEOUT)
}

/// The snapshot as Prometheus text.
pub fn render(snap: &MetricsSnapshot) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Snapshot(snap.clone())));
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
    out
}

#[derive(Debug)]
struct Snapshot(MetricsSnapshot);

/// Per-bucket counts from the snapshot's cumulative ones (the encoder sums them).
fn per_bucket(h: &HistogramSnapshot) -> Vec<(f64, u64)> {
    let mut prev = 0;
    h.buckets
        .iter()
        .map(|&(le, cum)| {
            let n = cum - prev;
            prev = cum;
            (le, n)
        })
        .collect()
}

impl Collector for Snapshot {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.0;
        let luns: Vec<String> = s.lus.iter().map(|l| l.lun.to_string()).collect();
        type LuField = fn(&target_core::metrics::LuMetricsSnapshot) -> u64;
        let lu_counters: [(&str, &str, LuField); 5] = [
            (
                "tgtd_lu_read_commands",
                "READ commands finished, any status",
                |l| l.read_commands,
            ),
            (
                "tgtd_lu_read_bytes",
                "Bytes returned by successful READs",
                |l| l.read_bytes,
            ),
            (
                "tgtd_lu_write_commands",
                "WRITE commands finished, any status",
                |l| l.write_commands,
            ),
            (
                "tgtd_lu_write_bytes",
                "Bytes stored by successful WRITEs",
                |l| l.write_bytes,
            ),
            (
                "tgtd_lu_other_commands",
                "Other SCSI commands finished",
                |l| l.other_commands,
            ),
        ];
        for (name, help, field) in lu_counters {
            let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (l, lun) in s.lus.iter().zip(&luns) {
                let labels = [("target", l.target.as_str()), ("lun", lun.as_str())];
                ConstCounter::new(field(l)).encode(m.encode_family(&labels)?)?;
            }
        }
        let mut m = enc.encode_descriptor(
            "tgtd_lu_errors",
            "Failed commands by sense key (CHECK CONDITION) or status",
            None,
            MetricType::Counter,
        )?;
        for (l, lun) in s.lus.iter().zip(&luns) {
            for (key, n) in &l.errors {
                let labels = [
                    ("target", l.target.as_str()),
                    ("lun", lun.as_str()),
                    ("sense_key", key.as_str()),
                ];
                ConstCounter::new(*n).encode(m.encode_family(&labels)?)?;
            }
        }
        type LuHist = fn(&target_core::metrics::LuMetricsSnapshot) -> &HistogramSnapshot;
        let hists: [(&str, &str, LuHist); 2] = [
            (
                "tgtd_lu_read_latency_seconds",
                "READ latency, command received to status sent",
                |l| &l.read_latency,
            ),
            (
                "tgtd_lu_write_latency_seconds",
                "WRITE latency, command received (data-out included) to status sent",
                |l| &l.write_latency,
            ),
        ];
        for (name, help, field) in hists {
            let mut m = enc.encode_descriptor(name, help, None, MetricType::Histogram)?;
            for (l, lun) in s.lus.iter().zip(&luns) {
                let labels = [("target", l.target.as_str()), ("lun", lun.as_str())];
                let h = field(l);
                m.encode_family(&labels)?.encode_histogram::<NoLabelSet>(
                    h.sum_seconds,
                    h.count,
                    &per_bucket(h),
                    None,
                )?;
            }
        }
        let mut m = enc.encode_descriptor(
            "tgtd_lu_store_queue_depth",
            "Store operations in flight",
            None,
            MetricType::Gauge,
        )?;
        for (l, lun) in s.lus.iter().zip(&luns) {
            let labels = [("target", l.target.as_str()), ("lun", lun.as_str())];
            ConstGauge::new(l.queue_depth as i64).encode(m.encode_family(&labels)?)?;
        }
        let m = enc.encode_descriptor(
            "tgtd_connections",
            "Connections open (logging in or logged in)",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(s.connections as i64).encode(m)?;
        let m = enc.encode_descriptor(
            "tgtd_sessions",
            "iSCSI sessions (normal and discovery)",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(s.sessions as i64).encode(m)?;
        let mut m = enc.encode_descriptor(
            "tgtd_target_sessions",
            "Sessions per target",
            None,
            MetricType::Gauge,
        )?;
        for (t, n) in &s.target_sessions {
            ConstGauge::new(*n as i64).encode(m.encode_family(&[("target", t.as_str())])?)?;
        }
        let mut m = enc.encode_descriptor(
            "tgtd_logins",
            "Login answers by status (0x0000 success)",
            None,
            MetricType::Counter,
        )?;
        for (status, n) in &s.logins {
            let result = if status == "0x0000" {
                "success"
            } else {
                "failure"
            };
            let labels = [("status", status.as_str()), ("result", result)];
            ConstCounter::new(*n).encode(m.encode_family(&labels)?)?;
        }
        for (name, help, map) in [
            ("tgtd_rejects", "Reject PDUs sent, by reason", &s.rejects),
            (
                "tgtd_connections_closed",
                "Connections ended, by reason",
                &s.closed_connections,
            ),
        ] {
            let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (reason, n) in map {
                ConstCounter::new(*n).encode(m.encode_family(&[("reason", reason.as_str())])?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use target_core::metrics::LuMetricsSnapshot;

    #[test]
    fn routes() {
        let r = |s: &str| route(s.as_bytes(), true);
        assert_eq!(
            r("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Metrics
        );
        assert_eq!(r("GET /metrics?x=1 HTTP/1.0\r\n\r\n"), Route::Metrics);
        assert_eq!(r("POST /metrics HTTP/1.1\r\n\r\n"), Route::MethodNotAllowed);
        assert_eq!(r("HEAD /metrics HTTP/1.1\r\n\r\n"), Route::MethodNotAllowed);
        assert_eq!(r("GET /other HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(r("GET / HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(r("GET /metrics\r\n\r\n"), Route::BadRequest);
        assert_eq!(r("GET /metrics SPDY/3\r\n\r\n"), Route::BadRequest);
        assert_eq!(
            route(b"GET /metrics HTTP/1.1\r\n", false),
            Route::BadRequest
        );
        assert_eq!(route(&[b'a'; MAX_REQUEST], false), Route::TooLarge);
    }

    #[test]
    fn renders_prometheus_text() {
        let lu = LuMetricsSnapshot {
            target: "iqn.t".into(),
            lun: 1,
            read_commands: 3,
            read_bytes: 1536,
            errors: BTreeMap::from([("MEDIUM_ERROR".into(), 2)]),
            read_latency: HistogramSnapshot {
                buckets: vec![(0.001, 2), (0.01, 3)],
                count: 4,
                sum_seconds: 1.5,
            },
            ..Default::default()
        };
        let snap = MetricsSnapshot {
            connections: 2,
            logins: BTreeMap::from([("0x0000".into(), 5), ("0x0201".into(), 1)]),
            lus: vec![lu],
            ..Default::default()
        };
        let text = render(&snap);
        for line in [
            "# TYPE tgtd_lu_read_commands_total counter",
            "tgtd_lu_read_commands_total{target=\"iqn.t\",lun=\"1\"} 3",
            "tgtd_lu_read_bytes_total{target=\"iqn.t\",lun=\"1\"} 1536",
            "tgtd_lu_errors_total{target=\"iqn.t\",lun=\"1\",sense_key=\"MEDIUM_ERROR\"} 2",
            "tgtd_lu_read_latency_seconds_bucket{target=\"iqn.t\",lun=\"1\",le=\"0.001\"} 2",
            "tgtd_lu_read_latency_seconds_bucket{target=\"iqn.t\",lun=\"1\",le=\"0.01\"} 3",
            "tgtd_lu_read_latency_seconds_bucket{target=\"iqn.t\",lun=\"1\",le=\"+Inf\"} 4",
            "tgtd_lu_read_latency_seconds_count{target=\"iqn.t\",lun=\"1\"} 4",
            "tgtd_connections 2",
            "tgtd_logins_total{status=\"0x0201\",result=\"failure\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
    }
}
