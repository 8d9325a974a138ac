//! The TLS flags of `webserver` (serve mode).

use std::path::PathBuf;

use clap::Args;

/// `--certfile`/`--keyfile`: serve TLS (HTTPS) on the listener.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct TlsArgs {
    /// PEM file with the server certificate, followed by its chain (intermediates); re-read on
    /// HUP with the app. Serves TLS (HTTPS) with --keyfile. E.g. --certfile /etc/ws/fullchain.pem
    #[arg(
        long,
        value_name = "FILE",
        env = "WEBSERVER_CERTFILE",
        requires = "keyfile",
        help_heading = "TLS"
    )]
    pub(crate) certfile: Option<PathBuf>,

    /// PEM file with the certificate's private key: RSA, ECDSA or Ed25519, in PKCS#8
    /// ("PRIVATE KEY"), PKCS#1 ("RSA PRIVATE KEY") or SEC1 ("EC PRIVATE KEY") form; re-read on
    /// HUP with the app. E.g. --keyfile /etc/ws/privkey.pem
    #[arg(
        long,
        value_name = "FILE",
        env = "WEBSERVER_KEYFILE",
        requires = "certfile",
        help_heading = "TLS"
    )]
    pub(crate) keyfile: Option<PathBuf>,

    /// Only these cipher suites, in this order of preference (comma- or colon-separated; rustls
    /// or OpenSSL names). Default: every suite of rustls's ring provider (TLS 1.3 AES-256-GCM,
    /// AES-128-GCM, CHACHA20-POLY1305, then their TLS 1.2 ECDHE forms), the client's order.
    /// E.g. --ciphers TLS_AES_128_GCM_SHA256
    #[arg(
        long,
        value_name = "LIST",
        env = "WEBSERVER_CIPHERS",
        value_parser = ciphers,
        requires = "certfile",
        help_heading = "TLS"
    )]
    pub(crate) ciphers: Option<String>,
}

/// A `--ciphers` list, refused as a usage error if it names a suite rustls does not offer.
fn ciphers(list: &str) -> Result<String, String> {
    super::material::cipher_suites(list).map(|_| list.to_owned())
}

impl TlsArgs {
    /// The certificate and key files, if TLS is asked for.
    pub(crate) fn files(&self) -> Option<(&std::path::Path, &std::path::Path)> {
        Some((self.certfile.as_deref()?, self.keyfile.as_deref()?))
    }
}
