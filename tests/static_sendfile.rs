//! Apps hand files to the server (ABI 1.2 `send_file`), end to end over real sockets: a C app
//! (`tests/fixtures/send_file.c`) as an ABI 1.2 app whose requests may park and as a 1.0
//! descriptor driven on one thread; the Python and Rust users are in `wsgi.rs`-style tests
//! below. The server sends the bytes (sendfile) and answers Range, HEAD and conditional requests.

mod common;
mod wsgi_support;

use std::path::PathBuf;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::*;

/// A file of `size` bytes and the server running the fixture's `symbol` on it.
fn serve(tag: &str, symbol: &str, size: usize, args: &[&str]) -> (Server, Vec<u8>, PathBuf) {
    let dir = fresh_dir(tag);
    let path = dir.join("data.bin");
    let data = pattern(size, 9);
    std::fs::write(&path, &data).unwrap();
    let mut target = fixture("send_file").into_os_string();
    target.push(format!(":{symbol}"));
    let server = server(target)
        .args(args)
        .app_args([path.to_str().unwrap()])
        .start();
    (server, data, path)
}

fn get(server: &Server, path: &str, headers: &str) -> Response {
    let mut conn = server.connect();
    conn.send(format!(
        "GET {path} HTTP/1.1\r\nHost: t\r\n{headers}Connection: close\r\n\r\n"
    ));
    conn.read_response()
}

fn check_answers(server: &Server, data: &[u8]) {
    let whole = get(server, "/file", "");
    assert_eq!(whole.status, 200);
    assert!(whole.body == data, "the handed-over file differs");
    assert_eq!(whole.header("accept-ranges"), Some("bytes"));
    let etag = whole
        .header("etag")
        .expect("WS_FILE_VALIDATORS adds an ETag")
        .to_owned();
    assert!(whole.header("last-modified").is_some());

    let part = get(server, "/file", "Range: bytes=1000000-1000099\r\n");
    assert_eq!(part.status, 206);
    assert_eq!(
        part.header("content-range"),
        Some(format!("bytes 1000000-1000099/{}", data.len()).as_str())
    );
    assert_eq!(part.body, data[1_000_000..1_000_100]);
    let past = get(server, "/file", "Range: bytes=99999999-\r\n");
    assert_eq!(past.status, 416);
    assert_eq!(
        past.header("content-range"),
        Some(format!("bytes */{}", data.len()).as_str())
    );
    let current = get(server, "/file", &format!("If-None-Match: {etag}\r\n"));
    assert_eq!((current.status, current.body.len()), (304, 0));

    // HEAD: the length GET would have, no body.
    let mut conn = server.connect();
    conn.send("HEAD /file HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let head = conn.read_head_response();
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length"),
        Some(data.len().to_string().as_str())
    );

    // The app's range of the file, with the app's own validator; ranges are relative to it.
    let slice = get(server, "/part", "");
    assert_eq!(slice.body, data[100..1100]);
    assert_eq!(slice.header("etag"), Some("\"part-v1\""));
    assert_eq!(slice.header("last-modified"), None);
    let sub = get(server, "/part", "Range: bytes=-10\r\n");
    assert_eq!(sub.status, 206);
    assert_eq!(sub.header("content-range"), Some("bytes 990-999/1000"));
    assert_eq!(sub.body, data[1090..1100]);
    let same = get(server, "/part", "If-None-Match: W/\"part-v1\"\r\n");
    assert_eq!(same.status, 304);

    // Without WS_FILE_RANGES a Range is not the server's to answer.
    let plain = get(server, "/plain", "Range: bytes=0-9\r\n");
    assert_eq!(plain.status, 200);
    assert_eq!(plain.body.len(), data.len());
    assert_eq!(plain.header("etag"), None);

    // Refusals leave the response to the app.
    assert_eq!(get(server, "/bad", "").text(), "fallback -5");
    assert_eq!(get(server, "/early", "").text(), "early -6");

    // Keep-alive and pipelining around a file body: in order, on one connection.
    let mut conn = server.connect();
    conn.send(
        "GET /part HTTP/1.1\r\nHost: t\r\n\r\nGET /file HTTP/1.1\r\nHost: t\r\n\r\nGET /part HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(conn.read_response().body, data[100..1100]);
    assert!(conn.read_response().body == data);
    assert_eq!(conn.read_response().body, data[100..1100]);
}

#[test]
fn an_abi_1_2_app_hands_a_file_to_the_server() {
    let (server, data, _) = serve("sendfile-c", "app", 3 << 20, &[]);
    check_answers(&server, &data);
    // From a later `next` of a deferred body.
    let later = get(&server, "/later", "Range: bytes=5-9\r\n");
    assert_eq!(later.status, 206);
    assert_eq!(later.body, data[5..10]);
    assert!(get(&server, "/later", "").body == data);
}

#[test]
fn a_1_0_descriptor_driven_on_one_thread_hands_a_file_too() {
    let (server, data, _) = serve("sendfile-legacy", "legacy", 3 << 20, &[]);
    check_answers(&server, &data);
}

/// The file is the app's until the call returns: the server's duplicate keeps sending the bytes
/// asked for after the app closed its descriptor and the file was replaced; a client that does
/// not read holds no thread (`--threads 1`).
#[test]
fn a_slow_reader_of_a_handed_file_holds_no_thread_and_a_replaced_file_keeps_its_bytes() {
    let (server, data, path) = serve("sendfile-slow", "app", 48 << 20, &["--threads", "1"]);
    let mut slow = server.connect();
    slow.send("GET /file HTTP/1.1\r\nHost: t\r\n\r\n");
    // Long enough for the socket buffers (a few MiB on loopback) to fill.
    thread::sleep(Duration::from_millis(500));
    // A deploy replaces the file (a new inode under the same name).
    let replacement = path.with_extension("new");
    std::fs::write(&replacement, pattern(4000, 1)).unwrap();
    std::fs::rename(&replacement, &path).unwrap();
    let addr = server.addr();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut conn = Conn::connect(addr);
        conn.send("GET /part HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        let _ = tx.send(conn.read_response().status);
    });
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)),
        Ok(200),
        "another request waited behind a client that does not read"
    );
    let head = slow.read_head();
    assert_eq!(head.status, 200);
    let body = slow.read_exact_raw(data.len());
    assert!(body == data, "the download in flight changed with the file");
}

/// Python apps whose file objects must never be read by the app: `NoRead` delegates everything a
/// file wrapper needs (fileno, tell, seek, close) and fails `read`, so an answer with the right
/// bytes proves the server sent them from the descriptor.
const FLASK_APP: &str = r#"
import io, os
from flask import Flask, request, send_file

DATA = os.path.join(os.path.dirname(__file__), "data.bin")

class NoRead:
    def __init__(self, f): self.f = f
    def read(self, *a): raise RuntimeError("the app read the file")
    def fileno(self): return self.f.fileno()
    def tell(self): return self.f.tell()
    def seek(self, *a): return self.f.seek(*a)
    def seekable(self): return True
    def close(self): self.f.close()

app = Flask(__name__)

@app.before_request
def no_reads():
    wrap = request.environ["wsgi.file_wrapper"]
    request.environ["wsgi.file_wrapper"] = lambda f, size=8192: wrap(
        f if isinstance(f, io.BytesIO) else NoRead(f), size)

@app.route("/path")
def by_path():
    # werkzeug answers Range and If-None-Match itself (a 206 in its range wrapper).
    return send_file(DATA, mimetype="application/octet-stream")

@app.route("/object")
def by_object():
    # No size known to werkzeug: a plain 200 of the file wrapper, ranged by the server.
    f = open(DATA, "rb")
    f.seek(10)
    return send_file(f, mimetype="application/octet-stream")

@app.route("/memory")
def in_memory():
    # No descriptor: iterated as PEP 3333 says.
    return send_file(io.BytesIO(b"in memory"), mimetype="text/plain")

def plain(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return environ["wsgi.file_wrapper"](NoRead(open(DATA, "rb")))
"#;

#[test]
fn wsgi_file_wrapper_bodies_are_sent_by_the_server_flask_send_file_included() {
    let dir = fresh_dir("sendfile-flask");
    let data = pattern(2 << 20, 4);
    std::fs::write(dir.join("data.bin"), &data).unwrap();
    std::fs::write(dir.join("flaskfiles.py"), FLASK_APP).unwrap();
    let server = wsgi_support::wsgi_server(&dir, "flaskfiles:app").start();

    let whole = get(&server, "/path", "");
    assert_eq!(whole.status, 200, "{}", server.stderr());
    assert!(whole.body == data, "send_file(path) differs");
    let etag = whole.header("etag").expect("werkzeug's ETag").to_owned();
    let part = get(&server, "/path", "Range: bytes=1000-1999\r\n");
    assert_eq!(part.status, 206);
    assert_eq!(part.body, data[1000..2000]);
    let current = get(&server, "/path", &format!("If-None-Match: {etag}\r\n"));
    assert_eq!(current.status, 304);
    let mut conn = server.connect();
    conn.send("HEAD /path HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let head = conn.read_head_response();
    assert_eq!(
        head.header("content-length"),
        Some(data.len().to_string().as_str())
    );

    let object = get(&server, "/object", "");
    assert_eq!(object.status, 200);
    assert!(object.body == data[10..], "send_file(file) differs");
    let ranged = get(&server, "/object", "Range: bytes=0-99\r\n");
    assert_eq!(ranged.status, 206);
    assert_eq!(ranged.body, data[10..110]);

    assert_eq!(get(&server, "/memory", "").text(), "in memory");
    assert!(
        !server.stderr().contains("the app read the file"),
        "{}",
        server.stderr()
    );
    drop(server);

    let server = wsgi_support::wsgi_server(&dir, "flaskfiles:plain").start();
    let plain = get(&server, "/", "Range: bytes=-5\r\n");
    assert_eq!(plain.status, 206, "{}", server.stderr());
    assert_eq!(plain.body, data[data.len() - 5..]);
    assert!(get(&server, "/", "").body == data);
}

/// The tower adapter's helper (`webserver_tower::file_response`): the axum sample app's `/file`
/// hands `AXUM_APP_FILE` to the server, which answers Range, HEAD and If-None-Match.
#[test]
fn an_axum_handler_hands_a_file_to_the_server_with_the_tower_helper() {
    let dir = fresh_dir("sendfile-axum");
    let data = pattern(1 << 20, 6);
    let path = dir.join("data.bin");
    std::fs::write(&path, &data).unwrap();
    let server = sample_server("axum_app")
        .env("AXUM_APP_FILE", path.to_str().unwrap())
        .start();
    let whole = get(&server, "/file", "");
    assert_eq!(whole.status, 200, "{}", server.stderr());
    assert_eq!(
        whole.header("content-type"),
        Some("application/octet-stream")
    );
    assert!(whole.body == data, "the axum file differs");
    let etag = whole.header("etag").expect("the server's ETag").to_owned();
    let part = get(&server, "/file", "Range: bytes=100-199\r\n");
    assert_eq!(part.status, 206);
    assert_eq!(part.body, data[100..200]);
    assert_eq!(
        get(&server, "/file", &format!("If-None-Match: {etag}\r\n")).status,
        304
    );
    let mut conn = server.connect();
    conn.send("HEAD /file HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let head = conn.read_head_response();
    assert_eq!(head.header("content-length"), Some("1048576"));
}

/// ASGI's `http.response.pathsend`: the bridge opens the path and the server sends the file.
const ASGI_APP: &str = r#"
import os
DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data.bin")

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    assert "http.response.pathsend" in scope["extensions"]
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/octet-stream")]})
    if scope["path"] == "/missing":
        await send({"type": "http.response.pathsend", "path": DATA + ".nope"})
    else:
        await send({"type": "http.response.pathsend", "path": DATA})
"#;

#[test]
fn asgi_pathsend_is_sent_by_the_server() {
    let dir = fresh_dir("sendfile-asgi");
    let data = pattern(1 << 20, 8);
    std::fs::write(dir.join("data.bin"), &data).unwrap();
    std::fs::write(dir.join("pathsendapp.py"), ASGI_APP).unwrap();
    let venv = wsgi_support::make_venv(
        "asgi-venv",
        &workspace_dir().join("examples/asgi/requirements.txt"),
        "install the ASGI frameworks (FastAPI, Starlette, uvloop) the tests serve",
    );
    let mut lib = debug_dir().join("libasgi.so").into_os_string();
    lib.push(":app");
    let server = server(lib)
        .cwd(&dir)
        .app_args(["pathsendapp:app", "--venv", venv.to_str().unwrap()])
        .start();
    let whole = get(&server, "/", "");
    assert_eq!(whole.status, 200, "{}", server.stderr());
    assert!(whole.body == data, "the pathsend body differs");
    let part = get(&server, "/", "Range: bytes=10-19\r\n");
    assert_eq!(part.status, 206);
    assert_eq!(part.body, data[10..20]);
    // A path that cannot be opened is the app's exception: 500, nothing was sent.
    assert_eq!(get(&server, "/missing", "").status, 500);
}
