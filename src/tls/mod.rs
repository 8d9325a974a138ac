//! TLS: `--certfile`/`--keyfile` served with rustls, and client certificates checked against
//! `--ca-certs` and `--crl` (`--cert-reqs`).
//!
//! - `args.rs`: the flags (help heading "TLS").
//! - `material.rs`: the master reads the certificate chain and key once per generation, checks
//!   them by building the server configuration a worker would build (so a bad or mismatched pair
//!   refuses the swap, or the start, with one line), and seals the bytes in memory; the workers
//!   of that generation get the sealed copy as an inherited descriptor (`TLS_FD`), as they get
//!   the library, so every worker of a generation serves the same certificate, and a worker
//!   replaced later does not read a file that may have changed (or broken) since.
//! - `client_cert.rs`: the verified client certificate's names as environ variables
//!   (`--ca-certs`, `--cert-reqs`, `--crl`: mutual TLS).
//! - `session.rs`: one connection's TLS state and its non-blocking I/O, which `server::conn`
//!   calls instead of the plain socket's when the connection is TLS.
//!
//! Why rustls with the `ring` provider: no OpenSSL (issue 12), and ring builds from the crate
//! alone with `cc` in seconds; aws-lc-rs compiles AWS-LC's C sources (and wants cmake, which
//! this machine lacks) on a 2-core machine shared with seven other builds, for handshake
//! speed-ups on RSA that an ECDSA or Ed25519 certificate does not need. PEM is parsed with
//! `rustls-pki-types` (re-exported by rustls; `rustls-pemfile` is unmaintained and now a thin
//! wrapper over it): PKCS#8, PKCS#1 (RSA) and SEC1 (EC) keys, RSA, ECDSA and Ed25519.

mod args;
mod client_cert;
mod material;
mod session;

pub(crate) use args::TlsArgs;
pub(crate) use client_cert::ClientCert;
pub(crate) use material::{claim_server_config, TlsMaterial, TLS_FD};
pub(crate) use session::TlsSession;
