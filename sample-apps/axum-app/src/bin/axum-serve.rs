//! The same [`axum_app::router`] on plain `axum::serve` (tokio, one worker thread per CPU): the
//! reference the end-to-end tests compare webserver against.
//!
//!     axum-serve [ADDR]        (default 127.0.0.1:8001; prints "listening on ADDR" once bound)

use std::io::Write;

const DEFAULT_ADDR: &str = "127.0.0.1:8001";

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| DEFAULT_ADDR.to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    // The tests read the bound address (ADDR may use port 0) from this line.
    println!("listening on {}", listener.local_addr()?);
    std::io::stdout().flush()?;
    axum::serve(listener, axum_app::router()).await
}
