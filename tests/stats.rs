//! `--stats`: the master answers scrapes (JSON on `/stats`, Prometheus text on `/metrics`) over a
//! unix socket or TCP; the counts match the requests the test made (every status class, bytes
//! both ways), a crash and a `--timeout` kill are counted by worker without losing what the dead
//! worker served, a scrape during a hot swap shows both generations' requests in flight, and
//! clients that send nothing, trickle or never read can neither stop the master from supervising
//! nor delay a scrape, even 1,000 of them on a master out of descriptors.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

/// A scrape's answer: status, headers (lower-case names), body.
struct Scraped {
    status: u16,
    headers: HashMap<String, String>,
    body: String,
}

impl Scraped {
    fn json(&self) -> serde_json::Value {
        assert_eq!(self.status, 200, "{}", self.body);
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// Sends `request` on `stream` and reads the whole answer (the master closes after it).
fn exchange(mut stream: impl Read + Write, request: &str) -> Scraped {
    stream
        .write_all(request.as_bytes())
        .expect("send the scrape");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the scrape");
    let text = String::from_utf8(raw).expect("UTF-8 answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head");
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let headers: HashMap<String, String> = lines
        .map(|l| l.split_once(": ").expect("a header line"))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
        .collect();
    let length: usize = headers["content-length"].parse().unwrap();
    assert_eq!(body.len(), length, "Content-Length matches the body");
    Scraped {
        status,
        headers,
        body: body.to_owned(),
    }
}

fn scrape(socket: &Path, path: &str) -> Scraped {
    let stream = UnixStream::connect(socket)
        .unwrap_or_else(|e| panic!("connect to {}: {e}", socket.display()));
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    exchange(
        stream,
        &format!("GET {path} HTTP/1.1\r\nHost: stats\r\n\r\n"),
    )
}

fn stats_json(socket: &Path) -> serde_json::Value {
    scrape(socket, "/stats").json()
}

/// A server of `app` with `--stats unix:SOCKET` in a fresh directory; the socket's path.
fn stats_server(app: &str, tag: &str, args: &[&str]) -> (Server, PathBuf) {
    let dir = fresh_dir(tag);
    let socket = dir.join("stats.sock");
    let server = sample_server(app)
        .args(args)
        .args([format!("--stats=unix:{}", socket.display())])
        .start();
    (server, socket)
}

/// A Prometheus text exposition (format 0.0.4), checked line by line: each family's `# HELP`
/// and `# TYPE` once and before its samples, the samples of a family together, names and label
/// names well-formed, label values properly escaped, values numbers. Returns the samples,
/// keyed `name{labels}` as written.
fn parse_prometheus(text: &str) -> HashMap<String, f64> {
    fn is_name(s: &str, colon: bool) -> bool {
        let mut chars = s.chars();
        let first = chars.next();
        first.is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':'))
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':'))
    }
    assert!(text.ends_with('\n'), "the exposition ends with a newline");
    let mut typed: HashMap<String, String> = HashMap::new();
    let mut helped: HashSet<String> = HashSet::new();
    let mut finished: HashSet<String> = HashSet::new();
    let mut current: Option<String> = None;
    let mut samples = HashMap::new();
    for line in text.lines() {
        assert!(!line.is_empty(), "no empty lines");
        if let Some(comment) = line.strip_prefix("# ") {
            let mut parts = comment.splitn(3, ' ');
            let (keyword, name) = (parts.next().unwrap(), parts.next().expect("a name"));
            assert!(is_name(name, true), "metric name {name:?}");
            if current.as_deref() != Some(name) {
                if let Some(done) = current.replace(name.to_owned()) {
                    finished.insert(done);
                }
            }
            assert!(!finished.contains(name), "{name}'s lines are not together");
            match keyword {
                "HELP" => {
                    assert!(helped.insert(name.to_owned()), "two HELP lines for {name}");
                    assert!(parts.next().is_some_and(|h| !h.is_empty()), "{line}");
                }
                "TYPE" => {
                    let kind = parts.next().expect("a type");
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                        "{line}"
                    );
                    assert!(
                        typed.insert(name.to_owned(), kind.to_owned()).is_none(),
                        "two TYPE lines for {name}"
                    );
                }
                _ => panic!("unknown comment {line:?}"),
            }
            continue;
        }
        assert!(!line.starts_with('#'), "{line:?}");
        // name{labels} value
        let name_end = line.find(['{', ' ']).expect("a sample");
        let sample_name = &line[..name_end];
        assert!(
            is_name(sample_name, true),
            "metric name {sample_name:?} in {line:?}"
        );
        // A histogram's samples are its name with _bucket, _sum or _count.
        let name = ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|suffix| sample_name.strip_suffix(suffix))
            .find(|base| typed.get(*base).is_some_and(|kind| kind == "histogram"))
            .unwrap_or(sample_name);
        assert_eq!(
            current.as_deref(),
            Some(name),
            "{line:?}: TYPE first, families together"
        );
        assert!(typed.contains_key(name), "{line:?} has no TYPE");
        let mut rest = &line[name_end..];
        if let Some(labels) = rest.strip_prefix('{') {
            let mut chars = labels.char_indices().peekable();
            let mut seen = HashSet::new();
            let end = loop {
                let start = chars.peek().expect("label or }").0;
                if labels[start..].starts_with('}') {
                    break start;
                }
                let eq = labels[start..].find('=').expect("label=") + start;
                let label = &labels[start..eq];
                assert!(is_name(label, false), "label name {label:?} in {line:?}");
                assert!(
                    seen.insert(label.to_owned()),
                    "label {label} twice in {line:?}"
                );
                while chars.peek().is_some_and(|&(i, _)| i <= eq) {
                    chars.next();
                }
                assert_eq!(chars.next().map(|c| c.1), Some('"'), "{line:?}");
                loop {
                    match chars.next().expect("closing quote").1 {
                        '\\' => {
                            let escaped = chars.next().expect("escape").1;
                            assert!(['\\', '"', 'n'].contains(&escaped), "{line:?}");
                        }
                        '"' => break,
                        '\n' => panic!("raw newline in {line:?}"),
                        _ => {}
                    }
                }
                match chars.peek().map(|c| c.1) {
                    Some(',') => {
                        chars.next();
                    }
                    Some('}') => {}
                    other => panic!("{other:?} after a label value in {line:?}"),
                }
            };
            rest = &labels[end + 1..];
        }
        let value = rest.strip_prefix(' ').expect("one space before the value");
        assert!(
            value.parse::<f64>().is_ok() || ["+Inf", "-Inf", "NaN"].contains(&value),
            "value {value:?} in {line:?}"
        );
        let key = &line[..line.len() - value.len() - 1];
        assert!(
            samples
                .insert(key.to_owned(), value.parse().unwrap_or(f64::NAN))
                .is_none(),
            "sample {key} twice"
        );
    }
    for name in typed.keys() {
        assert!(helped.contains(name), "{name} has no HELP");
    }
    samples
}

fn metrics(socket: &Path) -> HashMap<String, f64> {
    let scraped = scrape(socket, "/metrics");
    assert_eq!(scraped.status, 200, "{}", scraped.body);
    assert_eq!(
        scraped.headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    parse_prometheus(&scraped.body)
}

/// One request on its own connection; the bytes sent and received.
fn raw_request(server: &Server, request: &str) -> (usize, usize, u16) {
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let status = String::from_utf8_lossy(&answer[9..12]).parse().unwrap();
    (request.len(), answer.len(), status)
}

#[test]
fn both_formats_count_the_requests_made_by_status_class_and_bytes() {
    let (server, socket) = stats_server("panicky", "stats-counts", &["-w", "2"]);
    let close = "Host: x\r\nConnection: close\r\n\r\n";
    let mut requests = Vec::new();
    for _ in 0..5 {
        requests.push((format!("GET /ok HTTP/1.1\r\n{close}"), 200));
    }
    for _ in 0..3 {
        requests.push((format!("GET /boom HTTP/1.1\r\n{close}"), 500));
    }
    // Refused by the server itself, before any app code: a 400 and a 505.
    requests.push((format!("GET /ok HTTP/1.1\r\nBad Header\r\n{close}"), 400));
    requests.push((format!("GET /ok HTTP/3.0\r\n{close}"), 505));
    let (mut sent, mut received) = (0, 0);
    for (request, expected) in &requests {
        let (out, back, status) = raw_request(&server, request);
        assert_eq!(status, *expected, "{request:?}");
        sent += out;
        received += back;
    }

    let json = stats_json(&socket);
    assert_eq!(json["requests"]["served"], 10, "{json:#}");
    assert_eq!(json["requests"]["in_flight"], 0, "{json:#}");
    let classes = &json["responses"];
    assert_eq!(
        [
            &classes["1xx"],
            &classes["2xx"],
            &classes["3xx"],
            &classes["4xx"],
            &classes["5xx"]
        ],
        [0, 5, 0, 1, 4],
        "{json:#}"
    );
    assert_eq!(json["bytes"]["in"], sent, "{json:#}");
    assert_eq!(json["bytes"]["out"], received, "{json:#}");
    assert_eq!(json["accept_errors"], 0);
    assert_eq!(json["generation"], 1);
    assert_eq!(
        json["library"]["path"],
        sample_app("panicky").to_str().unwrap()
    );
    assert_eq!(json["library"]["app"], "panicky 1.0");
    assert_eq!(
        json["library"]["hash"].as_str().unwrap().len(),
        16,
        "{json:#}"
    );
    assert_eq!(json["swaps"]["ok"], 0);
    assert_eq!(json["swaps"]["last_failure"], serde_json::Value::Null);
    let workers = json["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 2, "{json:#}");
    let pids: HashSet<u32> = child_pids(server.pid()).into_iter().collect();
    for worker in workers {
        assert!(
            pids.contains(&(worker["pid"].as_u64().unwrap() as u32)),
            "{worker}"
        );
        assert_eq!(worker["generation"], 1);
        assert_eq!(worker["state"], "live");
        assert!(worker["age_seconds"].as_f64().unwrap() > 0.0);
    }
    let per_worker: u64 = workers
        .iter()
        .map(|w| w["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(per_worker, 10);

    let samples = metrics(&socket);
    let expect = [
        ("webserver_requests_total", 10.0),
        ("webserver_requests_in_flight{generation=\"1\"}", 0.0),
        ("webserver_responses_total{class=\"1xx\"}", 0.0),
        ("webserver_responses_total{class=\"2xx\"}", 5.0),
        ("webserver_responses_total{class=\"4xx\"}", 1.0),
        ("webserver_responses_total{class=\"5xx\"}", 4.0),
        ("webserver_received_bytes_total", sent as f64),
        ("webserver_sent_bytes_total", received as f64),
        ("webserver_accept_errors_total", 0.0),
        ("webserver_generation", 1.0),
        ("webserver_swaps_total{result=\"ok\"}", 0.0),
        ("webserver_swaps_total{result=\"failed\"}", 0.0),
    ];
    for (key, value) in expect {
        assert_eq!(samples.get(key), Some(&value), "{key} in {samples:#?}");
    }
    // Durations are the app's: the requests the server refused itself are counted, not timed.
    let duration = "webserver_request_duration_seconds";
    let timed = |class: &str| {
        samples
            .get(&format!(
                "{duration}_count{{generation=\"1\",class=\"{class}\"}}"
            ))
            .copied()
    };
    assert_eq!(timed("2xx"), Some(5.0), "{samples:#?}");
    assert_eq!(timed("5xx"), Some(3.0), "{samples:#?}");
    assert_eq!(timed("4xx"), None, "{samples:#?}");
    let info = samples
        .keys()
        .find(|k| k.starts_with("webserver_library_info{"))
        .expect("library info");
    assert!(
        info.contains(&format!("path=\"{}\"", sample_app("panicky").display())),
        "{info}"
    );
    // The scrapes themselves are not app requests.
    assert_eq!(stats_json(&socket)["requests"]["served"], 10);
}

#[test]
fn the_stats_listener_answers_only_its_two_pages() {
    let (_server, socket) = stats_server("hello", "stats-pages", &[]);
    assert_eq!(scrape(&socket, "/stats.json").json()["generation"], 1);
    assert_eq!(scrape(&socket, "/").status, 404);
    assert_eq!(scrape(&socket, "/hello").status, 404);
    let post = exchange(
        UnixStream::connect(&socket).unwrap(),
        "POST /stats HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(post.status, 405);
    let garbage = exchange(UnixStream::connect(&socket).unwrap(), "hello\r\n\r\n");
    assert_eq!(garbage.status, 400);
    let mut huge = UnixStream::connect(&socket).unwrap();
    huge.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let long = format!("GET /stats HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20_000));
    // The master answers once it has read its limit; the rest of the write may fail.
    let _ = huge.write_all(long.as_bytes());
    let mut answer = String::new();
    let _ = huge.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer:?}");
}

#[test]
fn tcp_listener_and_environment_variable() {
    let server = sample_server("hello")
        .env("WEBSERVER_STATS", "127.0.0.1:0")
        .start();
    let addr = logged_stats_addr(&server);
    assert_eq!(server.get("/").status, 200);
    let stream = TcpStream::connect(&addr).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let json = exchange(stream, "GET /stats HTTP/1.1\r\nHost: x\r\n\r\n").json();
    assert_eq!(json["requests"]["served"], 1, "{json:#}");
    assert_eq!(json["master_pid"], server.pid());
}

#[test]
fn crashes_and_timeouts_are_counted_by_worker_and_served_counts_survive_them() {
    let (server, socket) = stats_server("crashy", "stats-crash", &["-w", "1", "--timeout", "1"]);
    for _ in 0..3 {
        assert_eq!(fresh_get(&server, "/ok").unwrap().status, 200);
    }
    let before = stats_json(&socket);
    let first_pid = before["workers"][0]["pid"].clone();
    // The worker dies of SIGSEGV mid-request: no answer.
    assert!(fresh_get(&server, "/segv").is_err());
    let after_crash = poll(
        Duration::from_secs(10),
        "a crash counted and a new worker live",
        || {
            let json = stats_json(&socket);
            let live = json["workers"].as_array().is_some_and(|w| {
                w.len() == 1 && w[0]["state"] == "live" && w[0]["pid"] != first_pid
            });
            (json["crashes"] == 1 && live).then_some(json)
        },
    );
    assert_eq!(
        after_crash["workers"][0]["worker"], 0,
        "the replacement takes number 0"
    );
    assert_eq!(after_crash["workers"][0]["crashes"], 1, "{after_crash:#}");
    let death = &after_crash["recent_deaths"][0];
    assert_eq!(death["cause"], "crash");
    assert_eq!(death["pid"], first_pid);
    assert!(
        death["how"].as_str().unwrap().contains("SIGSEGV"),
        "{death}"
    );
    // What the dead worker served is still counted (its request in flight is dropped).
    assert_eq!(after_crash["requests"]["served"], 3, "{after_crash:#}");
    assert_eq!(after_crash["requests"]["in_flight"], 0, "{after_crash:#}");

    // Stuck past --timeout 1: the worker exits itself (harakiri).
    assert!(fresh_get(&server, "/slow?ms=10000").is_err());
    let after_timeout = poll(Duration::from_secs(15), "a timeout counted", || {
        let json = stats_json(&socket);
        (json["timeouts"] == 1).then_some(json)
    });
    assert_eq!(after_timeout["crashes"], 1);
    assert_eq!(after_timeout["recent_deaths"][1]["cause"], "timeout");
    let samples = metrics(&socket);
    assert_eq!(
        samples.get("webserver_worker_crashes_total{worker=\"0\"}"),
        Some(&1.0)
    );
    assert_eq!(
        samples.get("webserver_worker_timeouts_total{worker=\"0\"}"),
        Some(&1.0)
    );
    assert_eq!(samples.get("webserver_requests_total"), Some(&3.0));
}

#[test]
fn a_worker_recycled_for_limit_memory_is_counted_and_the_count_survives_it() {
    let limit = (64u64 << 20).to_string();
    let (server, socket) = stats_server(
        "crashy",
        "stats-memory",
        &["-w", "1", "--limit-memory", &limit],
    );
    assert_eq!(stats_json(&socket)["memory_recycles"], 0);
    assert_eq!(fresh_get(&server, "/leak?mb=100").unwrap().status, 200);
    let first_pid = stats_json(&socket)["workers"][0]["pid"].clone();
    // Counted once the worker retires, and still counted after its replacement serves.
    let json = poll(
        Duration::from_secs(10),
        "a recycle counted and a new worker live",
        || {
            let json = stats_json(&socket);
            let replaced = json["workers"].as_array().is_some_and(|w| {
                w.len() == 1 && w[0]["state"] == "live" && w[0]["pid"] != first_pid
            });
            (json["memory_recycles"] == 1 && replaced).then_some(json)
        },
    );
    assert_eq!(json["crashes"], 0, "a recycle is not a crash: {json:#}");
    assert_eq!(fresh_get(&server, "/ok").unwrap().status, 200);
    assert_eq!(
        metrics(&socket).get("webserver_memory_recycles_total"),
        Some(&1.0)
    );
}

/// In-flight counts of each generation in one scrape.
fn in_flight_by_generation(json: &serde_json::Value) -> HashMap<u64, (String, u64)> {
    json["generations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["id"].as_u64().unwrap(),
                (
                    g["state"].as_str().unwrap().to_owned(),
                    g["in_flight"].as_u64().unwrap(),
                ),
            )
        })
        .collect()
}

/// Starts `GET path` on a new connection, without reading the answer.
fn start_request(server: &Server, path: &str) -> TcpStream {
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    stream
}

fn finish_request(mut stream: TcpStream) -> String {
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn a_scrape_during_a_hot_swap_shows_both_generations_in_flight() {
    let dir = fresh_dir("stats-swap");
    let pid_file = dir.join("ws.pid");
    let socket = dir.join("stats.sock");
    let server = quiet(sample_server("c_timer"))
        .arg_pid(&pid_file)
        .args([format!("--stats=unix:{}", socket.display())])
        .start();
    wait_first_ready(&pid_file);
    // Three requests parked in generation 1 (the timer app answers after 15 s, holding no
    // thread; long enough for a swap on a loaded machine), counted in flight once they reached
    // the app.
    let old: Vec<TcpStream> = (0..3)
        .map(|_| start_request(&server, "/wait?ms=15000"))
        .collect();
    poll(
        Duration::from_secs(5),
        "3 in flight in generation 1",
        || {
            let by = in_flight_by_generation(&stats_json(&socket));
            (by.get(&1) == Some(&("live".into(), 3))).then_some(())
        },
    );

    kill(master_pid(&pid_file), libc::SIGHUP);
    poll(SWAP_TIMEOUT, "generation 2 ready", || {
        read_status(&pid_file).filter(|(state, g, _)| state == "ready" && *g == 2)
    });
    // New connections reach generation 2 now, while generation 1 drains its three.
    let new: Vec<TcpStream> = (0..2)
        .map(|_| start_request(&server, "/wait?ms=10000"))
        .collect();
    let during = poll(Duration::from_secs(5), "both generations in flight", || {
        let json = stats_json(&socket);
        let by = in_flight_by_generation(&json);
        (by.get(&2) == Some(&("live".into(), 2))).then_some(json)
    });
    let by = in_flight_by_generation(&during);
    assert_eq!(by.get(&1), Some(&("draining".into(), 3)), "{during:#}");
    assert_eq!(during["generation"], 2);
    assert_eq!(during["requests"]["in_flight"], 5, "{during:#}");
    let states: Vec<(u64, &str)> = during["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["generation"].as_u64().unwrap(),
                w["state"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(states, [(1, "draining"), (2, "live")], "{during:#}");
    let samples = metrics(&socket);
    assert_eq!(
        samples.get("webserver_requests_in_flight{generation=\"1\"}"),
        Some(&3.0)
    );
    assert_eq!(
        samples.get("webserver_requests_in_flight{generation=\"2\"}"),
        Some(&2.0)
    );
    assert_eq!(samples.get("webserver_generation"), Some(&2.0));

    for stream in old.into_iter().chain(new) {
        let answer = finish_request(stream);
        assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    }
    // Generation 1 exits once drained: what it served is folded into the totals.
    let after = poll(Duration::from_secs(15), "generation 1 gone", || {
        let json = stats_json(&socket);
        (json["generations"].as_array().unwrap().len() == 1).then_some(json)
    });
    assert_eq!(after["requests"]["served"], 5, "{after:#}");
    assert_eq!(after["requests"]["in_flight"], 0, "{after:#}");
    assert_eq!(after["swaps"]["ok"], 1, "{after:#}");
    assert_eq!(after["crashes"], 0, "{after:#}");

    // Each generation keeps its own durations, generation 1's once its workers are gone: the
    // parked requests are timed to their answers (15 s and 10 s; a timer never fires early).
    let latency = after["latency"].as_array().unwrap();
    let of = |g: u64| latency.iter().find(|l| l["generation"] == g).unwrap();
    assert_eq!(of(1)["requests"], 3, "{after:#}");
    assert_eq!(of(2)["requests"], 2, "{after:#}");
    assert!(of(1)["p50"].as_f64().unwrap() > 10.0, "{after:#}");
    assert!(of(2)["p50"].as_f64().unwrap() > 5.0, "{after:#}");
    let samples = metrics(&socket);
    let bucket = |g: u64, le: &str| {
        let key = format!(
            "webserver_request_duration_seconds_bucket{{generation=\"{g}\",class=\"2xx\",le=\"{le}\"}}"
        );
        samples.get(&key).copied()
    };
    assert_eq!(bucket(1, "10"), Some(0.0), "{samples:#?}");
    assert_eq!(bucket(1, "+Inf"), Some(3.0), "{samples:#?}");
    assert_eq!(bucket(2, "5"), Some(0.0), "{samples:#?}");
    assert_eq!(bucket(2, "+Inf"), Some(2.0), "{samples:#?}");
}

#[test]
fn a_failed_swap_is_counted_with_its_reason() {
    let dir = fresh_dir("stats-failed-swap");
    let pid_file = dir.join("ws.pid");
    let socket = dir.join("stats.sock");
    let live = dir.join("libapp.so");
    std::fs::copy(sample_app("hello"), &live).unwrap();
    let mut target = live.clone().into_os_string();
    target.push(":app");
    let _server = server(target)
        .arg_pid(&pid_file)
        .args([format!("--stats=unix:{}", socket.display())])
        .start();
    wait_first_ready(&pid_file);
    std::fs::write(&live, b"not a library").unwrap();
    kill(master_pid(&pid_file), libc::SIGHUP);
    let json = poll(SWAP_TIMEOUT, "the swap failed", || {
        let json = stats_json(&socket);
        (json["swaps"]["failed"] == 1).then_some(json)
    });
    assert_eq!(json["swaps"]["ok"], 0);
    assert_eq!(json["generation"], 1, "generation 1 keeps serving");
    let reason = json["swaps"]["last_failure"].as_str().unwrap();
    assert!(reason.contains("libapp.so"), "{reason}");
    let samples = metrics(&socket);
    assert_eq!(
        samples.get("webserver_swaps_total{result=\"failed\"}"),
        Some(&1.0)
    );
    assert!(samples
        .keys()
        .any(|k| k.starts_with("webserver_last_swap_failure_info{reason=")));
}

#[test]
fn silent_and_non_reading_stats_clients_do_not_hold_up_the_master() {
    let (server, socket) = stats_server("crashy", "stats-hostile", &["-w", "1"]);
    // Clients each sending half a head and then nothing.
    let silent: Vec<UnixStream> = (0..40)
        .map(|_| {
            let mut s = UnixStream::connect(&socket).unwrap();
            s.write_all(b"GET /stats HTTP/1.1\r\n").unwrap();
            s
        })
        .collect();
    // And clients that ask and never read their answer.
    let deaf: Vec<UnixStream> = (0..4)
        .map(|_| {
            let mut s = UnixStream::connect(&socket).unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
            s
        })
        .collect();
    // Supervision goes on meanwhile: a crashed worker is replaced at once.
    let started = Instant::now();
    assert!(fresh_get(&server, "/segv").is_err());
    poll(Duration::from_secs(10), "the service back", || {
        fresh_get(&server, "/ok").ok().filter(|r| r.status == 200)
    });
    // A master that waited on these clients would have needed at least their 5 s deadline.
    assert!(
        started.elapsed() < Duration::from_millis(4500),
        "{:?}",
        started.elapsed()
    );
    // And the hostile clients are dropped after their deadline, so scrapes work again.
    let json = poll(Duration::from_secs(30), "a scrape answered", || {
        let stream = UnixStream::connect(&socket).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .ok()?;
        Some(exchange(stream, "GET /stats HTTP/1.1\r\n\r\n").json())
    });
    assert_eq!(json["crashes"], 1, "{json:#}");
    drop((silent, deaf));
}

/// The `HOST:PORT` the master logged for `--stats HOST:0`.
fn logged_stats_addr(server: &Server) -> String {
    let line = server
        .wait_for_log(START_TIMEOUT, |l| l.contains("statistics on "))
        .expect("the stats address is logged");
    line.split("statistics on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("an address")
        .to_owned()
}

#[test]
fn a_scrape_is_answered_at_once_while_a_thousand_silent_and_trickling_clients_are_connected() {
    const SILENT: usize = 1000;
    const TRICKLING: usize = 50;
    raise_open_files(2 * (SILENT + TRICKLING) as u64 + 256);
    // The common default limit: the master runs out of descriptors before the clients do.
    let server = sample_server("hello")
        .args(["--stats", "127.0.0.1:0"])
        .open_files_limit(1024)
        .start();
    let addr: std::net::SocketAddr = logged_stats_addr(&server).parse().unwrap();
    let connect = || TcpStream::connect_timeout(&addr, Duration::from_secs(5));
    let silent: Vec<TcpStream> = (0..SILENT)
        .map(|i| connect().unwrap_or_else(|e| panic!("silent client {i}: {e}")))
        .collect();
    // Slowloris: a head that never ends, one byte every 100 ms on each connection.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut trickling: Vec<TcpStream> = (0..TRICKLING)
        .map(|i| {
            let mut s = connect().unwrap_or_else(|e| panic!("trickling client {i}: {e}"));
            s.write_all(b"GET /stats HTTP/1.1\r\n").unwrap();
            s
        })
        .collect();
    let trickler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for s in &mut trickling {
                    // A client the master dropped only fails here; the others go on.
                    let _ = s.write_all(b"X");
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    for path in ["/stats", "/metrics", "/stats"] {
        let started = Instant::now();
        let stream = connect().unwrap_or_else(|e| panic!("the scrape's connection: {e}"));
        stream
            .set_read_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        stream
            .set_write_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        let scraped = exchange(stream, &format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"));
        let took = started.elapsed();
        eprintln!("{path} with {SILENT} silent and {TRICKLING} trickling clients: {took:?}");
        assert_eq!(scraped.status, 200, "{}", scraped.body);
        assert!(took < Duration::from_secs(1), "{path} took {took:?}");
    }
    // And the master still supervises and the workers serve.
    assert_eq!(fresh_get(&server, "/").unwrap().status, 200);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    trickler.join().unwrap();
    drop(silent);
}

#[test]
fn the_socket_file_is_removed_on_exit_and_a_stale_one_replaced() {
    let dir = fresh_dir("stats-socket-file");
    let socket = dir.join("stats.sock");
    // A socket file nobody listens on, as a master killed with -9 leaves it.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());
    let mut server = sample_server("hello")
        .args([format!("--stats=unix:{}", socket.display())])
        .start();
    assert_eq!(stats_json(&socket)["generation"], 1);
    // A second master cannot take a live socket over.
    let refused = sample_server("hello")
        .args([format!("--stats=unix:{}", socket.display())])
        .run_to_exit();
    assert_load_error(&refused, &["cannot serve --stats on unix:", "in use"]);
    server.signal(libc::SIGTERM);
    server
        .wait_exit(Duration::from_secs(10))
        .expect("the master exits");
    assert!(!socket.exists(), "the socket file is removed on exit");
}

#[test]
fn a_header_timeout_is_a_4xx_the_server_answered_with_its_bytes() {
    let (server, socket) = stats_server("hello", "stats-408", &["--header-timeout", "1"]);
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\nHost:").unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 408 "), "{answer:?}");
    let json = stats_json(&socket);
    assert_eq!(json["responses"]["4xx"], 1, "{json:#}");
    assert_eq!(json["requests"]["served"], 1, "{json:#}");
    assert_eq!(json["requests"]["in_flight"], 0, "{json:#}");
    assert_eq!(json["bytes"]["in"], 21, "{json:#}");
    assert_eq!(json["bytes"]["out"], answer.len(), "{json:#}");
}

#[test]
fn curl_scrapes_the_unix_socket_as_the_metrics_page_shows() {
    if !have_program("curl") {
        // As tests/http_basic.rs: CI uses curl when it is installed.
        eprintln!("curl not installed: skipping the metrics page example's cross-check");
        return;
    }
    let (server, socket) = stats_server("hello", "stats-curl", &[]);
    assert_eq!(server.get("/").status, 200);
    let curl = |path: &str| {
        let output = std::process::Command::new("curl")
            .args(["-sS", "--fail", "--max-time", "10", "--unix-socket"])
            .arg(&socket)
            .arg(format!("http://localhost{path}"))
            .output()
            .expect("run curl");
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    let json: serde_json::Value = serde_json::from_str(&curl("/stats")).unwrap();
    assert_eq!(json["requests"]["served"], 1, "{json:#}");
    let samples = parse_prometheus(&curl("/metrics"));
    assert_eq!(samples.get("webserver_requests_total"), Some(&1.0));
}

#[test]
fn bytes_out_count_a_deferred_apps_responses_too() {
    // An ABI 1.1 app's output goes through the non-blocking write path (it parks rather than
    // wait for room); its bytes are counted like a blocking write's.
    let (server, socket) = stats_server("axum_app", "stats-deferred-bytes", &[]);
    let request = "GET /bytes?n=100000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let (sent, received, status) = raw_request(&server, request);
    assert_eq!(status, 200);
    let json = stats_json(&socket);
    assert_eq!(json["bytes"]["in"], sent, "{json:#}");
    assert_eq!(json["bytes"]["out"], received, "{json:#}");
}

/// `/slow?ms=150` four times and `/pid` six times, one worker: the Prometheus histogram puts the
/// six fast ones at or under 100 ms and the slow ones above it (a sleep never ends early), its
/// buckets only grow, and `/stats` puts p50 among the fast ones and p99 among the slow ones.
#[test]
fn request_durations_land_in_the_buckets_of_their_delay() {
    let (server, socket) = stats_server("crashy", "stats-latency", &["-w", "1"]);
    let close = "Host: x\r\nConnection: close\r\n\r\n";
    for path in [
        "/slow?ms=150",
        "/pid",
        "/pid",
        "/slow?ms=150",
        "/pid",
        "/pid",
    ]
    .iter()
    .chain(&["/slow?ms=150", "/pid", "/pid", "/slow?ms=150"])
    {
        let (_, _, status) = raw_request(&server, &format!("GET {path} HTTP/1.1\r\n{close}"));
        assert_eq!(status, 200, "{path}");
    }

    let samples = metrics(&socket);
    let series = "generation=\"1\",class=\"2xx\"";
    let name = "webserver_request_duration_seconds";
    let bucket = |le: &str| samples[&format!("{name}_bucket{{{series},le=\"{le}\"}}")];
    assert_eq!(samples[&format!("{name}_count{{{series}}}")], 10.0);
    assert_eq!(bucket("+Inf"), 10.0);
    assert_eq!(bucket("0.1"), 6.0, "{samples:#?}");
    assert!(samples[&format!("{name}_sum{{{series}}}")] >= 0.6);
    let mut les: Vec<(f64, f64)> = samples
        .iter()
        .filter(|(k, _)| k.starts_with(&format!("{name}_bucket{{{series}")))
        .map(|(k, &n)| {
            let le = k.rsplit_once("le=\"").unwrap().1.trim_end_matches("\"}");
            (le.parse().unwrap_or(f64::INFINITY), n)
        })
        .collect();
    les.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(les.len() > 10, "{les:?}");
    assert!(les.windows(2).all(|w| w[0].1 <= w[1].1), "{les:?}");

    let json = stats_json(&socket);
    let latency = &json["latency"][0];
    assert_eq!(latency["generation"], 1, "{json:#}");
    assert_eq!(latency["requests"], 10, "{json:#}");
    assert_eq!(latency["classes"]["2xx"]["requests"], 10, "{json:#}");
    assert!(latency["p50"].as_f64().unwrap() <= 0.1, "{json:#}");
    assert!(latency["p99"].as_f64().unwrap() >= 0.1, "{json:#}");
    assert!(latency["sum_seconds"].as_f64().unwrap() >= 0.6, "{json:#}");
}
