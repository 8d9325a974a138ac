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

    /// PEM file of the CAs whose client certificates are accepted (mutual TLS); re-read on HUP.
    /// With --cert-reqs optional or required. E.g. --ca-certs /etc/ws/clients-ca.pem
    #[arg(
        long,
        value_name = "FILE",
        env = "WEBSERVER_CA_CERTS",
        requires = "certfile",
        help_heading = "TLS"
    )]
    pub(crate) ca_certs: Option<PathBuf>,

    /// Client certificates: none (not asked for), optional (asked for; a client without one is
    /// served with SSL_CLIENT_VERIFY=NONE), required (a client without a valid one is refused
    /// in the handshake). optional and required need --ca-certs.
    #[arg(
        long,
        value_name = "WHEN",
        env = "WEBSERVER_CERT_REQS",
        default_value = "none",
        requires_if("optional", "ca_certs"),
        requires_if("required", "ca_certs"),
        help_heading = "TLS"
    )]
    pub(crate) cert_reqs: CertReqs,

    /// PEM file of certificate revocation lists for --ca-certs: a client certificate they
    /// revoke is refused; re-read on HUP. E.g. --crl /etc/ws/clients.crl.pem
    #[arg(
        long,
        value_name = "FILE",
        env = "WEBSERVER_CRL",
        requires = "ca_certs",
        help_heading = "TLS"
    )]
    pub(crate) crl: Option<PathBuf>,

    /// The oldest TLS version served: 1.2 (the default; 1.3 too) or 1.3 (only).
    /// gunicorn's --ssl-version spellings work too (TLSv1_2, TLSv1_3).
    #[arg(
        long,
        visible_alias = "ssl-version",
        value_name = "VERSION",
        env = "WEBSERVER_TLS_MIN",
        default_value = "1.2",
        value_parser = tls_min,
        help_heading = "TLS"
    )]
    pub(crate) tls_min: TlsMin,
}

/// `--cert-reqs`: whether clients are asked for a certificate, and whether they must have one.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum CertReqs {
    #[default]
    None,
    Optional,
    Required,
}

/// `--tls-min`: the oldest protocol version served.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum TlsMin {
    #[default]
    Tls12,
    Tls13,
}

impl TlsMin {
    /// As the sealed copy and the log spell it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TlsMin::Tls12 => "1.2",
            TlsMin::Tls13 => "1.3",
        }
    }
}

impl CertReqs {
    /// As the command line and the sealed copy spell it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            CertReqs::None => "none",
            CertReqs::Optional => "optional",
            CertReqs::Required => "required",
        }
    }

    pub(crate) fn parse(word: &str) -> Option<CertReqs> {
        [CertReqs::None, CertReqs::Optional, CertReqs::Required]
            .into_iter()
            .find(|r| r.as_str() == word)
    }
}

/// A `--tls-min` version: 1.2 or 1.3, also as gunicorn's `--ssl-version` names them.
pub(crate) fn tls_min(word: &str) -> Result<TlsMin, String> {
    let word = word.trim().to_ascii_lowercase();
    let word = word
        .trim_start_matches("tlsv")
        .trim_start_matches("tls")
        .replace('_', ".");
    match word.as_str() {
        "1.2" => Ok(TlsMin::Tls12),
        "1.3" => Ok(TlsMin::Tls13),
        _ => Err(
            "rustls serves TLS 1.2 and 1.3 only: give 1.2 (1.2 and 1.3) or 1.3 (1.3 only)".into(),
        ),
    }
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
