//! A tonic gRPC greeter (`proto/greeter.proto`): `SayHello` (unary) and `SayHelloStream`
//! (server-streaming), the same service served two ways:
//!
//! - by webserver, through webserver-tower, unchanged: `webserver --http2 on
//!   target/release/libgrpc_app.so:app` (gRPC is HTTP/2 with trailers: ABI 1.3);
//! - by tonic's own server, `grpc-serve` (the bench's reference).
//!
//! `grpc-client` calls either one (the tests and `bench/grpc.sh` use it).

// tonic's generated trait fixes `Status` (large) as the error type of every call.
#![allow(clippy::result_large_err)]

use std::pin::Pin;

use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// The generated messages, service trait and client.
pub mod proto {
    tonic::include_proto!("greeter");
}

use proto::greeter_server::{Greeter, GreeterServer};
use proto::{HelloReply, HelloRequest};

/// The name `SayHello` refuses with INVALID_ARGUMENT: a gRPC error status for the tests.
pub const REFUSED_NAME: &str = "fail";

/// The greeter.
#[derive(Debug, Default, Clone, Copy)]
pub struct MyGreeter;

type ReplyStream = Pin<Box<dyn Stream<Item = Result<HelloReply, Status>> + Send>>;

#[tonic::async_trait]
impl Greeter for MyGreeter {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        let name = request.into_inner().name;
        if name == REFUSED_NAME {
            return Err(Status::invalid_argument(format!(
                "the name {REFUSED_NAME:?} is refused"
            )));
        }
        Ok(Response::new(HelloReply {
            message: format!("Hello, {name}!"),
        }))
    }

    type SayHelloStreamStream = ReplyStream;

    async fn say_hello_stream(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<ReplyStream>, Status> {
        let HelloRequest { name, count } = request.into_inner();
        let replies = (0..count).map(move |i| {
            Ok(HelloReply {
                message: format!("Hello #{i}, {name}!"),
            })
        });
        Ok(Response::new(Box::pin(tokio_stream::iter(replies))))
    }
}

/// The service as a tower `Service`, for webserver-tower and tonic's server alike.
pub fn service() -> GreeterServer<MyGreeter> {
    GreeterServer::new(MyGreeter)
}

webserver_tower::export_service!(app, service);
