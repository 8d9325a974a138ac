//! The greeter on tonic's own server (`tonic::transport::Server`) on a single-threaded tokio
//! runtime: the reference `bench/grpc.sh` compares webserver with.
//!
//!     grpc-serve [ADDR]        (default 127.0.0.1:50051; prints "listening on ADDR" once bound)

use std::io::Write;

const DEFAULT_ADDR: &str = "127.0.0.1:50051";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| DEFAULT_ADDR.to_owned());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        // Whoever started it reads the bound address (ADDR may use port 0) from this line.
        println!("listening on {}", listener.local_addr()?);
        std::io::stdout().flush()?;
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        tonic::transport::Server::builder()
            .add_service(grpc_app::service())
            .serve_with_incoming(incoming)
            .await?;
        Ok(())
    })
}
