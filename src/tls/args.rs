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
}

impl TlsArgs {
    /// The certificate and key files, if TLS is asked for.
    pub(crate) fn files(&self) -> Option<(&std::path::Path, &std::path::Path)> {
        Some((self.certfile.as_deref()?, self.keyfile.as_deref()?))
    }
}
