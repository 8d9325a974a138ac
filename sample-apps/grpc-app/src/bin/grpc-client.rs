//! A tonic client for the greeter, over h2c (`http://`) or TLS with ALPN h2 (`https://`):
//!
//!     grpc-client URL [--ca CERT.pem] COMMAND ...
//!                                         `--ca`: trust this certificate (PEM) for an https://
//!                                         URL, whose server name is then `localhost`
//!     grpc-client URL unary NAME          prints the reply's message, or `status CODE: MESSAGE`
//!     grpc-client URL stream NAME COUNT   prints each reply's message, one a line
//!     grpc-client URL load SECONDS CONNS STREAMS
//!                                         unary calls for SECONDS on CONNS connections with
//!                                         STREAMS calls in flight on each; prints
//!                                         `calls N failed F seconds S`
//!
//! Exits 0 when every call got an answer (a gRPC error status is an answer), 1 otherwise.

use std::time::{Duration, Instant};

use grpc_app::proto::greeter_client::GreeterClient;
use grpc_app::proto::HelloRequest;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(run(&args)) {
        Ok(()) => {}
        Err(e) => {
            eprintln!("grpc-client: {e}");
            std::process::exit(1);
        }
    }
}

/// Where to call: the URL and, for TLS, the certificate to trust.
struct Target {
    url: String,
    ca: Option<Certificate>,
}

async fn connect(target: &Target) -> Result<GreeterClient<Channel>, Error> {
    let mut endpoint = Endpoint::from_shared(target.url.clone())?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(20));
    if let Some(ca) = &target.ca {
        // tonic offers ALPN h2 (and only h2) on its TLS connections.
        let tls = ClientTlsConfig::new()
            .ca_certificate(ca.clone())
            .domain_name("localhost");
        endpoint = endpoint.tls_config(tls)?;
    }
    let channel = endpoint.connect().await?;
    Ok(GreeterClient::new(channel))
}

async fn run(args: &[String]) -> Result<(), Error> {
    let usage = "usage: grpc-client URL [--ca CERT.pem] unary NAME | stream NAME COUNT | load SECONDS CONNS STREAMS";
    let (url, ca, args) = match args {
        [url, flag, file, rest @ ..] if flag == "--ca" => {
            let pem = std::fs::read(file).map_err(|e| format!("cannot read {file}: {e}"))?;
            (url, Some(Certificate::from_pem(pem)), rest)
        }
        [url, rest @ ..] => (url, None, rest),
        [] => return Err(usage.into()),
    };
    let url = &Target {
        url: url.clone(),
        ca,
    };
    let [command, rest @ ..] = args else {
        return Err(usage.into());
    };
    match (command.as_str(), rest) {
        ("unary", [name]) => {
            let mut client = connect(url).await?;
            let request = HelloRequest {
                name: name.clone(),
                count: 0,
            };
            match client.say_hello(request).await {
                Ok(reply) => println!("{}", reply.into_inner().message),
                Err(status) => println!("status {}: {}", status.code() as i32, status.message()),
            }
        }
        ("stream", [name, count]) => {
            let mut client = connect(url).await?;
            let request = HelloRequest {
                name: name.clone(),
                count: count.parse()?,
            };
            let mut replies = client.say_hello_stream(request).await?.into_inner();
            while let Some(reply) = replies.message().await? {
                println!("{}", reply.message);
            }
        }
        ("load", [seconds, conns, streams]) => {
            let (calls, failed, took) =
                load(url, seconds.parse()?, conns.parse()?, streams.parse()?).await?;
            println!("calls {calls} failed {failed} seconds {took:.3}");
        }
        _ => return Err(usage.into()),
    }
    Ok(())
}

/// Unary calls for `seconds` from `conns` connections, `streams` in flight on each.
async fn load(
    url: &Target,
    seconds: f64,
    conns: usize,
    streams: usize,
) -> Result<(u64, u64, f64), Error> {
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let client = connect(url).await?;
        for _ in 0..streams {
            let mut client = client.clone();
            tasks.push(tokio::spawn(async move {
                let (mut calls, mut failed) = (0u64, 0u64);
                while Instant::now() < until {
                    let request = HelloRequest {
                        name: "bench".to_owned(),
                        count: 0,
                    };
                    match client.say_hello(request).await {
                        Ok(_) => calls += 1,
                        Err(_) => failed += 1,
                    }
                }
                (calls, failed)
            }));
        }
    }
    let (mut calls, mut failed) = (0, 0);
    for task in tasks {
        let (c, f) = task.await?;
        calls += c;
        failed += f;
    }
    Ok((calls, failed, started.elapsed().as_secs_f64()))
}
