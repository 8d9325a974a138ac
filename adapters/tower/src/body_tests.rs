//! Unit tests of `body.rs`: the bridge, and the body read whole in `call`.

use super::*;
use http_body_util::BodyExt;
use std::collections::VecDeque;
use std::sync::atomic::AtomicUsize;

#[derive(Default)]
struct CountingWake(AtomicUsize);

impl Wake for CountingWake {
    fn wake(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A server that has some answers buffered, then says Pending.
struct Script(VecDeque<TryRead>, Vec<u8>, usize);

impl TryReadSource for Script {
    fn try_read(&mut self, buf: &mut [u8]) -> TryRead {
        self.2 += 1;
        match self.0.pop_front().unwrap_or(TryRead::Pending) {
            TryRead::Data(n) => {
                buf[..n].copy_from_slice(&self.1[..n]);
                self.1.drain(..n);
                TryRead::Data(n)
            }
            other => other,
        }
    }
}

fn script(answers: Vec<TryRead>, bytes: &[u8]) -> Script {
    Script(answers.into(), bytes.to_vec(), 0)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn nothing_is_read_before_the_service_polls_its_body() {
    let wake = Arc::new(CountingWake::default());
    let (_body, mut upload) = channel(Some(3), wake.clone());
    let mut server = script(vec![TryRead::Data(3), TryRead::End], b"abc");
    upload.pump(&mut server);
    assert_eq!(server.2, 0, "try_read called before the service asked");
    assert_eq!(wake.0.load(Ordering::SeqCst), 0);
}

#[test]
fn at_most_the_buffered_chunks_are_read_ahead_and_a_drain_wakes_the_server() {
    let wake = Arc::new(CountingWake::default());
    let (mut body, mut upload) = channel(Some(6), wake.clone());
    let rt = runtime();
    // The service polls: nothing there yet, and the server is told to start reading.
    let first = rt.block_on(async {
        tokio::time::timeout(std::time::Duration::from_millis(20), body.frame()).await
    });
    assert!(first.is_err(), "a frame before the server read anything");
    assert_eq!(wake.0.load(Ordering::SeqCst), 1);

    let mut server = script(
        vec![TryRead::Data(2), TryRead::Data(2), TryRead::Data(2)],
        b"abcdef",
    );
    upload.pump(&mut server);
    assert_eq!(server.2, 1, "read past the channel's one slot");

    let frame = rt.block_on(body.frame()).unwrap().unwrap();
    assert_eq!(frame.into_data().unwrap(), "ab");
    assert_eq!(
        wake.0.load(Ordering::SeqCst),
        2,
        "a drained slot wakes the server"
    );
    assert_eq!(http_body::Body::size_hint(&body).exact(), Some(4));

    upload.pump(&mut server);
    let frame = rt.block_on(body.frame()).unwrap().unwrap();
    assert_eq!(frame.into_data().unwrap(), "cd");
}

/// A server whose body ends with trailer fields.
struct WithTrailers(Script);

impl TryReadSource for WithTrailers {
    fn try_read(&mut self, buf: &mut [u8]) -> TryRead {
        self.0.try_read(buf)
    }

    fn trailers(&mut self) -> Option<http::HeaderMap> {
        let mut map = http::HeaderMap::new();
        map.insert("x-check", "abc".parse().unwrap());
        Some(map)
    }
}

#[test]
fn the_request_trailers_follow_the_last_data_frame() {
    let wake = Arc::new(CountingWake::default());
    let (body, mut upload) = channel(None, wake);
    let collector = std::thread::spawn(move || {
        runtime().block_on(async move { body.collect().await.map(|c| c.trailers().cloned()) })
    });
    let mut server = WithTrailers(script(vec![TryRead::Data(2), TryRead::End], b"ab"));
    while !upload.is_finished() {
        upload.pump(&mut server);
        std::thread::yield_now();
    }
    let trailers = collector
        .join()
        .unwrap()
        .unwrap()
        .expect("a trailers frame");
    assert_eq!(trailers["x-check"], "abc");
}

/// The whole body as the service collects it on its own thread, while this one plays the
/// server: `next` (the pump) until the upload is finished.
fn pumped_whole(body: RequestBody, mut upload: Upload, mut server: Script) -> Bytes {
    let collector = std::thread::spawn(move || {
        runtime().block_on(async move { body.collect().await.map(|c| c.to_bytes()) })
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !upload.is_finished() {
        assert!(
            std::time::Instant::now() < deadline,
            "upload never finished"
        );
        upload.pump(&mut server);
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    collector.join().unwrap().unwrap()
}

#[test]
fn the_whole_body_arrives_in_order_and_ends() {
    let wake = Arc::new(CountingWake::default());
    let (body, upload) = channel(None, wake);
    let server = script(
        vec![
            TryRead::Data(3),
            TryRead::Pending,
            TryRead::Data(4),
            TryRead::End,
        ],
        b"abcdefg",
    );
    assert_eq!(pumped_whole(body, upload, server), "abcdefg");
}

#[test]
fn a_host_error_reaches_the_service_as_a_body_error() {
    let wake = Arc::new(CountingWake::default());
    let (mut body, mut upload) = channel(None, wake);
    let rt = runtime();
    let _ = rt.block_on(async {
        tokio::time::timeout(std::time::Duration::from_millis(1), body.frame()).await
    });
    let mut server = script(vec![TryRead::Failed(AbiError::TooLarge)], b"");
    upload.pump(&mut server);
    let err = rt.block_on(body.frame()).unwrap().unwrap_err();
    assert_eq!(err.abi_error(), AbiError::TooLarge);
    assert!(upload.is_finished());
}

#[test]
fn a_body_held_whole_reaches_the_service_as_it_is_with_its_trailers() {
    let wake = Arc::new(CountingWake::default());
    let mut buf = vec![0; 8];
    let mut server = WithTrailers(script(
        vec![TryRead::Data(3), TryRead::Data(2), TryRead::End],
        b"hello",
    ));
    let (body, upload) = arrived(&mut server, &mut buf, None, wake.clone());
    assert!(upload.is_none(), "a body read whole needs no pump");
    assert_eq!(http_body::Body::size_hint(&body).exact(), Some(5));
    let collected = runtime().block_on(body.collect()).unwrap();
    assert_eq!(collected.trailers().unwrap()["x-check"], "abc");
    assert_eq!(collected.to_bytes(), "hello");
    assert_eq!(wake.0.load(Ordering::SeqCst), 0, "no wake without a bridge");
}

#[test]
fn a_body_held_whole_without_trailers_ends_with_its_data() {
    let wake = Arc::new(CountingWake::default());
    let mut server = script(vec![TryRead::Data(5), TryRead::End], b"hello");
    let (mut body, upload) = arrived(&mut server, &mut [0; 8], Some(5), wake);
    assert!(upload.is_none());
    let frame = runtime().block_on(body.frame()).unwrap().unwrap();
    assert_eq!(frame.into_data().unwrap(), "hello");
    assert!(
        http_body::Body::is_end_stream(&body),
        "ended with its last frame, as h2's body with END_STREAM"
    );
    let (empty, upload) = arrived(
        &mut script(vec![TryRead::End], b""),
        &mut [0; 8],
        Some(0),
        Arc::new(CountingWake::default()),
    );
    assert!(upload.is_none() && http_body::Body::is_end_stream(&empty));
}

#[test]
fn what_arrived_of_a_longer_body_goes_first_and_the_pump_brings_the_rest() {
    let wake = Arc::new(CountingWake::default());
    let (body, upload) = arrived(
        &mut script(vec![TryRead::Data(3), TryRead::Pending], b"abc"),
        &mut [0; 8],
        Some(7),
        wake,
    );
    let upload = upload.expect("the rest is pumped");
    let server = script(vec![TryRead::Data(4), TryRead::End], b"defg");
    assert_eq!(pumped_whole(body, upload, server), "abcdefg");
}

#[test]
fn a_body_that_fills_the_buffer_is_read_no_further_before_the_service_asks() {
    let wake = Arc::new(CountingWake::default());
    let mut server = script(vec![TryRead::Data(4), TryRead::Data(4)], b"abcdefgh");
    let (mut body, upload) = arrived(&mut server, &mut [0; 4], None, wake);
    assert_eq!(server.2, 1, "read past one buffer before the service asked");
    assert!(upload.is_some());
    let frame = runtime().block_on(body.frame()).unwrap().unwrap();
    assert_eq!(frame.into_data().unwrap(), "abcd");
}

#[test]
fn a_failure_met_while_reading_ahead_reaches_the_service_and_ends_the_body() {
    let wake = Arc::new(CountingWake::default());
    let mut server = script(
        vec![TryRead::Data(2), TryRead::Failed(AbiError::TooLarge)],
        b"ab",
    );
    let (mut body, upload) = arrived(&mut server, &mut [0; 8], None, wake);
    assert!(upload.is_none(), "nothing more is read after a failure");
    let rt = runtime();
    let err = rt.block_on(body.frame()).unwrap().unwrap_err();
    assert_eq!(err.abi_error(), AbiError::TooLarge);
    assert!(rt.block_on(body.frame()).is_none());
}

#[test]
fn an_empty_body_ends_at_once() {
    let body = RequestBody::empty();
    assert!(http_body::Body::is_end_stream(&body));
    let got = runtime().block_on(body.collect()).unwrap().to_bytes();
    assert!(got.is_empty());
}
