//! `--static` keeps the files it served open, with their validators and a small file's bytes
//! (src/static_files/cache.rs). These tests change the files under a running server, each way a
//! deploy or an editor does, and check that every answer describes the file on disk now.

mod common;

use std::path::Path;
use std::thread;
use std::time::{Duration, SystemTime};

use common::*;

/// One GET on a connection of its own: (status, ETag, body).
fn get(server: &Server, path: &str) -> (u16, Option<String>, Vec<u8>) {
    let mut conn = server.connect();
    conn.send(format!(
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    ));
    let response = conn.read_response();
    let etag = response.header("etag").map(str::to_owned);
    (response.status, etag, response.body)
}

/// Writes `bytes` into the existing file `path` in place (same inode), then puts its
/// modification time back to `mtime`: only its change time tells that it changed.
fn rewrite_in_place(path: &Path, bytes: &[u8], mtime: SystemTime) {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .unwrap();
    std::io::Write::write_all(&mut &file, bytes).unwrap();
    file.set_modified(mtime).unwrap();
}

/// Replaces `path` by a new file, as a deploy does (write beside, rename over).
fn replace(path: &Path, bytes: &[u8]) {
    let beside = path.with_extension("new");
    std::fs::write(&beside, bytes).unwrap();
    std::fs::rename(&beside, path).unwrap();
}

#[test]
fn a_cached_file_that_changes_on_disk_is_served_fresh() {
    let root = fresh_dir("static-cache");
    let small = root.join("app.css");
    let big = root.join("big.bin");
    std::fs::write(&small, "body { color: #123456 }\n").unwrap();
    let big_v1 = pattern(1 << 20, 1);
    std::fs::write(&big, &big_v1).unwrap();
    // Files changed in the last 2 s keep no bytes in the cache: let these settle, so the first
    // answers below come from cached bytes.
    thread::sleep(Duration::from_millis(2200));
    // One worker: every request meets the same cache.
    let server = sample_server("hello")
        .args([
            "--workers",
            "1",
            "--static",
            &format!("/s/={}", root.display()),
        ])
        .start();

    let (status, etag_v1, body) = get(&server, "/s/app.css");
    assert_eq!(
        (status, body.as_slice()),
        (200, &b"body { color: #123456 }\n"[..])
    );
    let again = get(&server, "/s/app.css");
    assert_eq!(
        (again.1.as_ref(), again.2.as_slice()),
        (etag_v1.as_ref(), body.as_slice())
    );

    // Edited in place with the same size and the old modification time: the ETag (nginx's
    // form, seconds and size) cannot change, the body must.
    let mtime = std::fs::metadata(&small).unwrap().modified().unwrap();
    rewrite_in_place(&small, b"body { color: #654321 }\n", mtime);
    let (status, etag, body) = get(&server, "/s/app.css");
    assert_eq!(
        (status, body.as_slice()),
        (200, &b"body { color: #654321 }\n"[..])
    );
    assert_eq!(etag, etag_v1);

    // Replaced by a new file of another size: new ETag, new body, twice in a row (the second
    // from the cache again).
    replace(&small, b"body { color: #abcdef; margin: 0 }\n");
    for _ in 0..2 {
        let (status, etag, body) = get(&server, "/s/app.css");
        assert_eq!(
            (status, body.as_slice()),
            (200, &b"body { color: #abcdef; margin: 0 }\n"[..])
        );
        assert_ne!(etag, etag_v1);
    }

    // A large file (sent from its descriptor) replaced between two downloads.
    assert!(get(&server, "/s/big.bin").2 == big_v1);
    let big_v2 = pattern(1 << 20, 2);
    replace(&big, &big_v2);
    assert!(
        get(&server, "/s/big.bin").2 == big_v2,
        "the old big.bin was served"
    );

    // Deleted: 404, not the cached copy.
    std::fs::remove_file(&small).unwrap();
    assert_eq!(get(&server, "/s/app.css").0, 404);

    // Replaced by a directory, then by a symlink that leads out: 404 both.
    std::fs::create_dir(&small).unwrap();
    assert_eq!(get(&server, "/s/app.css").0, 404);
    std::fs::remove_dir(&small).unwrap();
    let outside = fresh_dir("static-cache-outside").join("secret.css");
    std::fs::write(&outside, "SECRET").unwrap();
    std::os::unix::fs::symlink(&outside, &small).unwrap();
    assert_eq!(get(&server, "/s/app.css").0, 404);
}

/// Under a low descriptor limit the cache keeps at most an eighth of it open, so serving many
/// files never starves the connections.
#[test]
fn the_cache_keeps_at_most_an_eighth_of_the_descriptor_limit_open() {
    let root = fresh_dir("static-cache-limit");
    for i in 0..300 {
        std::fs::write(root.join(format!("{i}.txt")), format!("file {i}\n")).unwrap();
    }
    let server = sample_server("hello")
        .args([
            "--workers",
            "1",
            "--limit-open-files",
            "200",
            "--static",
            &format!("/s/={}", root.display()),
        ])
        .start();
    let worker = worker_pid(&server);
    let open_now = || {
        std::fs::read_dir(format!("/proc/{worker}/fd"))
            .unwrap()
            .count()
    };
    // The worker opens a few descriptors of its own while it starts (a fresh clone's CI run
    // counted 13 instead of 15 when it looked at once): count after it has answered.
    assert_eq!(get(&server, "/").0, 200);
    let before = open_now();
    for round in 0..2 {
        for i in 0..300 {
            let (status, _, body) = get(&server, &format!("/s/{i}.txt"));
            assert_eq!(
                (status, body),
                (200, format!("file {i}\n").into_bytes()),
                "round {round}"
            );
        }
    }
    // 200 / 8 = 25 files at most, beside what the worker had open before. The last request's
    // connection may still be open for a moment after its answer arrived (a fresh clone's CI run
    // counted 26), so the count is given a second to settle.
    let settled_by = std::time::Instant::now() + Duration::from_secs(1);
    let mut after = open_now();
    while after > before + 25 && std::time::Instant::now() < settled_by {
        thread::sleep(Duration::from_millis(20));
        after = open_now();
    }
    let targets: Vec<String> = std::fs::read_dir(format!("/proc/{worker}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|t| t.display().to_string())
        .filter(|t| !t.starts_with(&root.display().to_string()))
        .collect();
    assert!(
        after <= before + 25,
        "{before} descriptors before, {after} after; besides the cached files: {targets:?}"
    );
}
