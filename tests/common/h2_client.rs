//! One HTTP/2 exchange with the h2 crate's client (prior knowledge, plain TCP), for tests that
//! look at what HTTP/1.1 clients cannot show: trailing HEADERS both ways.

use bytes::Bytes;
use std::net::SocketAddr;

/// A current-thread tokio runtime to drive [`h2_exchange`] from a `#[test]`.
pub fn h2_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Sends `request` on a new connection, with `upload`'s body and (optionally) trailers, or none:
/// the response's body and trailers.
pub async fn h2_exchange(
    addr: SocketAddr,
    request: http::Request<()>,
    upload: Option<(&'static [u8], Option<http::HeaderMap>)>,
) -> (Vec<u8>, Option<http::HeaderMap>) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (send, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut send = send.ready().await.unwrap();
    let (response, mut stream) = send.send_request(request, upload.is_none()).unwrap();
    if let Some((data, trailers)) = upload {
        let data = Bytes::from_static(data);
        match trailers {
            Some(trailers) => {
                stream.send_data(data, false).unwrap();
                stream.send_trailers(trailers).unwrap();
            }
            None => stream.send_data(data, true).unwrap(),
        }
    }
    let mut body = response.await.unwrap().into_body();
    let mut all = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        all.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await.unwrap();
    (all, trailers)
}
