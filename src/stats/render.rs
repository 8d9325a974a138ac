//! A [`Snapshot`] as JSON (`GET /stats`) and as Prometheus text exposition format 0.0.4
//! (`GET /metrics`). Both are written by hand: the shapes are fixed and small, and the master
//! takes no serialisation dependency for them.

use std::fmt::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::book::Snapshot;
use super::counters::{Totals, CLASS_COUNT};
use super::facts::CrashLoopView;
use super::latency::{self, Histogram};

/// Names of the status classes, in counter order.
const CLASS_NAMES: [&str; CLASS_COUNT] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The JSON document (one object, a trailing newline).
pub(crate) fn json(s: &Snapshot) -> String {
    let mut out = String::with_capacity(2048);
    out.push('{');
    let _ = write!(out, "\"master_pid\":{}", s.master_pid);
    let _ = write!(out, ",\"uptime_seconds\":{}", secs(s.uptime));
    match &s.live {
        Some(live) => {
            let _ = write!(out, ",\"generation\":{}", live.id);
            out.push_str(",\"library\":{\"path\":");
            push_json_str(&mut out, &live.source.to_string_lossy());
            out.push_str(",\"hash\":");
            push_json_str(&mut out, &live.hash);
            out.push_str(",\"app\":");
            push_json_str(&mut out, &live.app);
            out.push('}');
        }
        None => out.push_str(",\"generation\":null,\"library\":null"),
    }
    out.push_str(",\"requests\":{");
    let _ = write!(
        out,
        "\"served\":{},\"in_flight\":{},\"http2\":{}",
        s.totals.served(),
        s.totals.in_flight(),
        s.totals.http2_streams
    );
    out.push('}');
    out.push_str(",\"responses\":");
    push_classes(&mut out, &s.totals);
    let _ = write!(
        out,
        ",\"bytes\":{{\"in\":{},\"out\":{}}},\"accept_errors\":{},\"memory_recycles\":{}",
        s.totals.bytes_in, s.totals.bytes_out, s.totals.accept_errors, s.totals.memory_recycles
    );
    let up = &s.totals.upgraded;
    let _ = write!(
        out,
        ",\"upgraded\":{{\"open\":{},\"total\":{},\"messages\":{{\"in\":{},\"out\":{}}},\"bytes\":{{\"in\":{},\"out\":{}}}}}",
        up.open(),
        up.opened,
        up.messages_in,
        up.messages_out,
        up.bytes_in,
        up.bytes_out
    );
    let _ = write!(
        out,
        ",\"swaps\":{{\"ok\":{},\"failed\":{},\"last_failure\":",
        s.swaps.ok, s.swaps.failed
    );
    match &s.swaps.last_failure {
        Some(reason) => push_json_str(&mut out, reason),
        None => out.push_str("null"),
    }
    out.push('}');
    let _ = write!(
        out,
        ",\"crashes\":{},\"timeouts\":{}",
        s.crashes(),
        s.timeouts()
    );
    push_crash_loop(&mut out, s.crash_loop.as_ref());
    out.push_str(",\"generations\":[");
    for (i, g) in s.generations.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(
            out,
            "{{\"id\":{},\"state\":\"{}\",\"path\":",
            g.view.id, g.view.state
        );
        push_json_str(&mut out, &g.view.source.to_string_lossy());
        out.push_str(",\"hash\":");
        push_json_str(&mut out, &g.view.hash);
        let _ = write!(
            out,
            ",\"workers\":{},\"in_flight\":{}}}",
            g.workers, g.in_flight
        );
    }
    out.push_str("],\"workers\":[");
    for (i, w) in s.workers.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let deaths = s.deaths.get(&w.number).copied().unwrap_or_default();
        let _ = write!(
            out,
            "{{\"worker\":{},\"pid\":{},\"generation\":{},\"state\":\"{}\",\"age_seconds\":{},\"requests\":{},\"in_flight\":{},\"crashes\":{},\"timeouts\":{}}}",
            w.number,
            w.pid,
            w.generation,
            w.state,
            secs(w.age),
            w.totals.served(),
            w.totals.in_flight(),
            deaths.crashes,
            deaths.timeouts
        );
    }
    out.push_str("],\"deaths_by_worker\":{");
    for (i, (number, deaths)) in s.deaths.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(
            out,
            "\"{number}\":{{\"crashes\":{},\"timeouts\":{}}}",
            deaths.crashes, deaths.timeouts
        );
    }
    out.push_str("},\"recent_deaths\":[");
    for (i, e) in s.recent_exits.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(
            out,
            "{{\"worker\":{},\"pid\":{},\"generation\":{},\"cause\":\"{}\",\"how\":",
            e.number,
            e.pid,
            e.generation,
            e.cause.name()
        );
        push_json_str(&mut out, &e.how);
        let _ = write!(
            out,
            ",\"at_unix\":{},\"age_seconds\":{}}}",
            unix(e.at),
            secs(e.age)
        );
    }
    out.push(']');
    push_latency(&mut out, s);
    out.push_str("}\n");
    out
}

/// The quantiles `/stats` shows.
const QUANTILES: [(&str, f64); 3] = [("p50", 0.5), ("p90", 0.9), ("p99", 0.99)];

/// `,"latency":[...]`: per generation, its requests' count, total and quantiles, overall and
/// per status class it answered.
fn push_latency(out: &mut String, s: &Snapshot) {
    fn figures(out: &mut String, h: &Histogram) {
        let _ = write!(
            out,
            "\"requests\":{},\"sum_seconds\":{:.6}",
            h.count(),
            h.sum_ns as f64 / 1e9
        );
        for (name, q) in QUANTILES {
            match h.quantile(q) {
                Some(v) => {
                    let _ = write!(out, ",\"{name}\":{v:.6}");
                }
                None => {
                    let _ = write!(out, ",\"{name}\":null");
                }
            }
        }
    }
    out.push_str(",\"latency\":[");
    for (i, (generation, latency)) in s.latency.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{{\"generation\":{generation},");
        figures(out, &latency.all());
        out.push_str(",\"classes\":{");
        let answered = CLASS_NAMES
            .iter()
            .zip(&latency.classes)
            .filter(|(_, h)| h.count() > 0);
        for (j, (name, h)) in answered.enumerate() {
            if j > 0 {
                out.push(',');
            }
            let _ = write!(out, "\"{name}\":{{");
            figures(out, h);
            out.push('}');
        }
        out.push_str("}}");
    }
    out.push(']');
}

fn push_classes(out: &mut String, totals: &Totals) {
    out.push('{');
    for (i, (name, n)) in CLASS_NAMES.iter().zip(totals.classes).enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "\"{name}\":{n}");
    }
    out.push('}');
}

/// `text` as a JSON string literal (RFC 8259: quote, backslash and control characters escaped).
/// `,"crash_loop":null`, or the loop: generation, failures in a row, the last one's reason and
/// the seconds until the next try.
fn push_crash_loop(out: &mut String, crash_loop: Option<&CrashLoopView>) {
    let Some(c) = crash_loop else {
        out.push_str(",\"crash_loop\":null");
        return;
    };
    let _ = write!(
        out,
        ",\"crash_loop\":{{\"generation\":{},\"failures\":{},\"retry_in_seconds\":{},\"last_failure\":",
        c.generation,
        c.failures,
        secs(c.retry_in)
    );
    match &c.last_failure {
        Some(reason) => push_json_str(out, reason),
        None => out.push_str("null"),
    }
    out.push('}');
}

fn push_json_str(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c < ' ' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Seconds with millisecond precision.
fn secs(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

fn unix(at: SystemTime) -> String {
    secs(at.duration_since(UNIX_EPOCH).unwrap_or_default())
}

/// The Prometheus text exposition format 0.0.4: per family one `# HELP`, one `# TYPE`, then its
/// samples; label values escaped (backslash, quote, newline).
pub(crate) fn prometheus(s: &Snapshot) -> String {
    let mut out = String::with_capacity(4096);
    let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, String)]| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            if labels.is_empty() {
                let _ = writeln!(out, "{name} {value}");
            } else {
                let _ = writeln!(out, "{name}{{{labels}}} {value}");
            }
        }
    };
    let one = |value: String| vec![(String::new(), value)];
    family(
        "webserver_generation",
        "gauge",
        "The generation serving (0 before the first one is ready).",
        &one(s.live.as_ref().map_or(0, |g| g.id).to_string()),
    );
    if let Some(live) = &s.live {
        family(
            "webserver_library_info",
            "gauge",
            "The live generation's library: path, content hash and app (always 1).",
            &[(
                labels(&[
                    ("generation", &live.id.to_string()),
                    ("path", &live.source.to_string_lossy()),
                    ("hash", &live.hash),
                    ("app", &live.app),
                ]),
                "1".into(),
            )],
        );
    }
    family(
        "webserver_uptime_seconds",
        "gauge",
        "Seconds since the master started.",
        &one(secs(s.uptime)),
    );
    family(
        "webserver_requests_total",
        "counter",
        "Requests answered, by every worker that ever served.",
        &one(s.totals.served().to_string()),
    );
    family(
        "webserver_requests_in_flight",
        "gauge",
        "Requests begun and not answered yet, per generation (two during a hot swap).",
        &s.generations
            .iter()
            .map(|g| {
                let id = g.view.id.to_string();
                (labels(&[("generation", &id)]), g.in_flight.to_string())
            })
            .collect::<Vec<_>>(),
    );
    family(
        "webserver_responses_total",
        "counter",
        "Responses by status class.",
        &CLASS_NAMES
            .iter()
            .zip(s.totals.classes)
            .map(|(name, n)| (labels(&[("class", name)]), n.to_string()))
            .collect::<Vec<_>>(),
    );
    family(
        "webserver_received_bytes_total",
        "counter",
        "Bytes read from clients.",
        &one(s.totals.bytes_in.to_string()),
    );
    family(
        "webserver_sent_bytes_total",
        "counter",
        "Bytes written to clients.",
        &one(s.totals.bytes_out.to_string()),
    );
    let up = &s.totals.upgraded;
    family(
        "webserver_upgraded_connections",
        "gauge",
        "Upgraded connections (WebSockets and other 101s) open now.",
        &one(up.open().to_string()),
    );
    family(
        "webserver_upgraded_connections_total",
        "counter",
        "Connections upgraded with a 101.",
        &one(up.opened.to_string()),
    );
    family(
        "webserver_websocket_messages_total",
        "counter",
        "WebSocket messages, by direction.",
        &[
            (labels(&[("direction", "in")]), up.messages_in.to_string()),
            (labels(&[("direction", "out")]), up.messages_out.to_string()),
        ],
    );
    family(
        "webserver_upgraded_bytes_total",
        "counter",
        "Bytes over upgraded connections (message payloads for WebSockets), by direction.",
        &[
            (labels(&[("direction", "in")]), up.bytes_in.to_string()),
            (labels(&[("direction", "out")]), up.bytes_out.to_string()),
        ],
    );
    family(
        "webserver_http2_streams_total",
        "counter",
        "Requests that were HTTP/2 streams (counted in the requests too).",
        &one(s.totals.http2_streams.to_string()),
    );
    family(
        "webserver_accept_errors_total",
        "counter",
        "Failed accept calls (out of descriptors or memory, connections reset while queued).",
        &one(s.totals.accept_errors.to_string()),
    );
    family(
        "webserver_memory_recycles_total",
        "counter",
        "Workers recycled for --limit-memory (after their in-flight requests).",
        &one(s.totals.memory_recycles.to_string()),
    );
    family(
        "webserver_swaps_total",
        "counter",
        "Hot swaps, by result (a failed swap leaves the old generation serving).",
        &[
            (labels(&[("result", "ok")]), s.swaps.ok.to_string()),
            (labels(&[("result", "failed")]), s.swaps.failed.to_string()),
        ],
    );
    if let Some(reason) = &s.swaps.last_failure {
        family(
            "webserver_last_swap_failure_info",
            "gauge",
            "Why the last failed hot swap failed (always 1).",
            &[(labels(&[("reason", reason)]), "1".into())],
        );
    }
    family(
        "webserver_crash_loop",
        "gauge",
        "1 while the live generation's replacement workers keep dying before they are ready.",
        &one(u8::from(s.crash_loop.is_some()).to_string()),
    );
    let deaths = |pick: fn(&super::book::Deaths) -> u64| {
        s.deaths
            .iter()
            .map(|(number, d)| {
                let number = number.to_string();
                (labels(&[("worker", &number)]), pick(d).to_string())
            })
            .collect::<Vec<_>>()
    };
    family(
        "webserver_worker_crashes_total",
        "counter",
        "Workers that died of a signal or failed after loading, by worker number.",
        &deaths(|d| d.crashes),
    );
    family(
        "webserver_worker_timeouts_total",
        "counter",
        "Workers ended for --timeout (stuck in a request, or silent), by worker number.",
        &deaths(|d| d.timeouts),
    );
    // `state` labels the age gauge only: a counter's series must not change its labels when
    // its worker starts draining.
    let worker_samples = |value: &dyn Fn(&super::book::WorkerStats) -> String, state: bool| {
        s.workers
            .iter()
            .map(|w| {
                let (number, pid, generation) = (
                    w.number.to_string(),
                    w.pid.to_string(),
                    w.generation.to_string(),
                );
                let mut pairs = vec![
                    ("worker", number.as_str()),
                    ("pid", pid.as_str()),
                    ("generation", generation.as_str()),
                ];
                if state {
                    pairs.push(("state", w.state));
                }
                (labels(&pairs), value(w))
            })
            .collect::<Vec<_>>()
    };
    family(
        "webserver_worker_age_seconds",
        "gauge",
        "Seconds since each live worker was started.",
        &worker_samples(&|w| secs(w.age), true),
    );
    family(
        "webserver_worker_requests_total",
        "counter",
        "Requests each live worker answered.",
        &worker_samples(&|w| w.totals.served().to_string(), false),
    );
    family(
        "webserver_worker_requests_in_flight",
        "gauge",
        "Requests each live worker is serving now.",
        &worker_samples(&|w| w.totals.in_flight().to_string(), false),
    );
    histogram_family(
        &mut out,
        "webserver_request_duration_seconds",
        "Seconds from a request's head parsed to its response sent, by generation and status class (requests the app answered).",
        s,
    );
    out
}

/// The histogram family `name`: per generation and status class that answered, the cumulative
/// buckets (`le`), the sum and the count.
fn histogram_family(out: &mut String, name: &str, help: &str, s: &Snapshot) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} histogram");
    for (generation, latency) in &s.latency {
        let generation = generation.to_string();
        for (class, h) in CLASS_NAMES.iter().zip(&latency.classes) {
            if h.count() == 0 {
                continue;
            }
            let series = labels(&[("generation", &generation), ("class", class)]);
            for (i, n) in h.cumulative().iter().enumerate() {
                let le = latency::bound_seconds(i);
                let le = if le.is_infinite() {
                    "+Inf".to_owned()
                } else {
                    le.to_string()
                };
                let _ = writeln!(out, "{name}_bucket{{{series},le=\"{le}\"}} {n}");
            }
            let _ = writeln!(out, "{name}_sum{{{series}}} {}", h.sum_ns as f64 / 1e9);
            let _ = writeln!(out, "{name}_count{{{series}}} {}", h.count());
        }
    }
}

/// `name="value",...` with values escaped as the format requires.
fn labels(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(name);
        out.push_str("=\"");
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_and_json_strings_are_escaped() {
        assert_eq!(
            labels(&[("path", "/a\"b\\c\nd")]),
            "path=\"/a\\\"b\\\\c\\nd\""
        );
        let mut out = String::new();
        push_json_str(&mut out, "q\"\\\n\u{1}é");
        assert_eq!(out, "\"q\\\"\\\\\\n\\u0001é\"");
    }
}
