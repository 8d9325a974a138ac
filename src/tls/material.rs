//! A generation's certificate chain and key: read and checked by the master, sealed in memory,
//! handed to the generation's workers as `TLS_FD`, and turned into a rustls server
//! configuration by each worker.
//!
//! The sealed copy is framed as `MAGIC`, the `--ciphers` list and a newline, the certificate PEM's length (u64, little-endian), the
//! certificate PEM, then the key PEM: the two files exactly as read, so the worker parses the
//! same bytes the master checked. Workers read it with `pread` at offset 0: the descriptor's
//! file offset is shared by every process holding it.

use std::fmt;
use std::fs::{self, File};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, SupportedCipherSuite};

use crate::sys::memfd::sealed_file;
use crate::sys::process::{claim_inherited, dup_at_or_above};

/// Where a worker finds its generation's certificate and key (when it serves TLS).
pub(crate) const TLS_FD: RawFd = 6;

/// The only application protocol spoken over TLS (ALPN, RFC 7301).
const ALPN_HTTP_1_1: &[u8] = b"http/1.1";

/// The first bytes of the sealed copy (its format's version).
const MAGIC: &[u8] = b"webserver-tls-1\n";

/// Length of the certificate PEM's length field.
const LEN_BYTES: usize = 8;

/// `--ciphers`: the named suites of the ring provider, in the order given.
pub(crate) fn cipher_suites(list: &str) -> Result<Vec<SupportedCipherSuite>, String> {
    let all = rustls::crypto::ring::ALL_CIPHER_SUITES;
    let named = |name: &str| {
        let name = name.trim().to_ascii_uppercase();
        // OpenSSL and the IANA registry call the TLS 1.3 suites TLS_...; rustls TLS13_...
        let tls13 = name.replacen("TLS_", "TLS13_", 1);
        all.iter()
            .find(|s| s.suite().as_str().is_some_and(|n| n == name || n == tls13))
            .copied()
            .ok_or_else(|| {
                let known: Vec<&str> = all.iter().filter_map(|s| s.suite().as_str()).collect();
                format!("unknown cipher suite '{name}'; known: {}", known.join(", "))
            })
    };
    let suites = list
        .split([',', ':'])
        .filter(|n| !n.trim().is_empty())
        .map(named)
        .collect::<Result<Vec<_>, _>>()?;
    if suites.is_empty() {
        return Err("no cipher suite named".into());
    }
    Ok(suites)
}

/// Why a certificate and key cannot be served.
#[derive(Debug)]
pub(crate) enum TlsError {
    Read {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// The certificate file holds no (readable) `CERTIFICATE` block.
    NoCertificate { path: PathBuf, detail: String },
    /// The key file holds no (readable) private key block.
    NoKey { path: PathBuf, detail: String },
    /// rustls refused the pair: a key it cannot use, a key that is not the certificate's.
    Refused { detail: rustls::Error },
    /// `--ciphers` names a suite rustls does not offer.
    Ciphers(String),
    /// The in-memory copy could not be made.
    Memory(io::Error),
    /// A worker's inherited copy is missing or damaged (only the master starts workers).
    Inherited(String),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Read { what, path, source } => write!(
                f,
                "cannot read the TLS {what} {}: {source} (check --certfile/--keyfile and permissions)",
                path.display()
            ),
            TlsError::NoCertificate { path, detail } => write!(
                f,
                "no certificate in --certfile {}: {detail} (expected PEM \"-----BEGIN CERTIFICATE-----\" blocks, the server's first, then its chain)",
                path.display()
            ),
            TlsError::NoKey { path, detail } => write!(
                f,
                "no private key in --keyfile {}: {detail} (expected a PEM \"PRIVATE KEY\", \"RSA PRIVATE KEY\" or \"EC PRIVATE KEY\" block)",
                path.display()
            ),
            TlsError::Refused { detail } => match detail {
                rustls::Error::InconsistentKeys(_) => write!(
                    f,
                    "the TLS key does not belong to the certificate ({detail}); give --keyfile the key of --certfile's first certificate"
                ),
                _ => write!(f, "the TLS certificate or key cannot be used: {detail}"),
            },
            TlsError::Ciphers(detail) => write!(f, "--ciphers: {detail}"),
            TlsError::Memory(e) => write!(
                f,
                "cannot keep the TLS certificate in memory: {e} (is the system out of memory or descriptors?)"
            ),
            TlsError::Inherited(detail) => write!(
                f,
                "no usable TLS certificate at descriptor {TLS_FD} ({detail}); only the master starts workers"
            ),
        }
    }
}

impl std::error::Error for TlsError {}

/// A checked certificate chain and key, sealed for a generation's workers.
#[derive(Clone, Debug)]
pub(crate) struct TlsMaterial {
    /// The framed bytes, at or above the master's descriptor floor.
    image: Arc<OwnedFd>,
    /// What the log says about it: the files and the number of certificates.
    pub(crate) summary: String,
}

impl TlsMaterial {
    /// Read `certfile` and `keyfile`, check that a worker could serve them with `ciphers`
    /// (`--ciphers`, already checked by the command line), and seal them in memory, with the
    /// cipher list, at a descriptor at or above `floor`.
    pub(crate) fn load(
        certfile: &Path,
        keyfile: &Path,
        ciphers: Option<&str>,
        floor: RawFd,
    ) -> Result<TlsMaterial, TlsError> {
        let read = |what, path: &Path| {
            fs::read(path).map_err(|source| TlsError::Read {
                what,
                path: path.to_path_buf(),
                source,
            })
        };
        let cert_pem = read("certificate", certfile)?;
        let key_pem = read("key", keyfile)?;
        let ciphers = ciphers.unwrap_or_default();
        let (_, certificates) = server_config(&cert_pem, &key_pem, ciphers, certfile, keyfile)?;
        let mut framed =
            Vec::with_capacity(MAGIC.len() + LEN_BYTES + cert_pem.len() + key_pem.len());
        framed.extend_from_slice(MAGIC);
        framed.extend_from_slice(ciphers.as_bytes());
        framed.push(b'\n');
        framed.extend_from_slice(&(cert_pem.len() as u64).to_le_bytes());
        framed.extend_from_slice(&cert_pem);
        framed.extend_from_slice(&key_pem);
        let image = sealed_file("webserver-tls", &framed).map_err(TlsError::Memory)?;
        let image = dup_at_or_above(image.as_fd(), floor).map_err(TlsError::Memory)?;
        Ok(TlsMaterial {
            image: Arc::new(image),
            summary: format!(
                "{} certificate(s) from {}, key from {}",
                certificates,
                certfile.display(),
                keyfile.display()
            ),
        })
    }

    /// The sealed copy, to hand down to a worker as `TLS_FD`.
    pub(crate) fn image(&self) -> BorrowedFd<'_> {
        self.image.as_fd()
    }
}

/// In a worker: the server configuration from the copy the master handed down at `TLS_FD`.
pub(crate) fn claim_server_config() -> Result<Arc<ServerConfig>, TlsError> {
    let inherited = |e: io::Error| TlsError::Inherited(e.to_string());
    let file = File::from(claim_inherited(TLS_FD).map_err(inherited)?);
    let len = file.metadata().map_err(inherited)?.len();
    let mut framed = vec![0; usize::try_from(len).map_err(|e| TlsError::Inherited(e.to_string()))?];
    file.read_exact_at(&mut framed, 0).map_err(inherited)?;
    let damaged = || TlsError::Inherited("not a webserver TLS copy".into());
    let rest = framed.strip_prefix(MAGIC).ok_or_else(damaged)?;
    let line = rest.iter().position(|&b| b == b'\n').ok_or_else(damaged)?;
    let ciphers = std::str::from_utf8(&rest[..line]).map_err(|_| damaged())?;
    let rest = &rest[line + 1..];
    let (len, rest) = rest.split_at_checked(LEN_BYTES).ok_or_else(damaged)?;
    let len = u64::from_le_bytes(len.try_into().map_err(|_| damaged())?);
    let (cert_pem, key_pem) = rest
        .split_at_checked(usize::try_from(len).map_err(|_| damaged())?)
        .ok_or_else(damaged)?;
    let origin = Path::new("(inherited)");
    let (config, _) = server_config(cert_pem, key_pem, ciphers, origin, origin)?;
    Ok(Arc::new(config))
}

/// The rustls server configuration for a certificate chain and key (PEM), and the number of
/// certificates in the chain; building it is what refuses a key that does not match.
fn server_config(
    cert_pem: &[u8],
    key_pem: &[u8],
    ciphers: &str,
    certfile: &Path,
    keyfile: &Path,
) -> Result<(ServerConfig, usize), TlsError> {
    let no_certificate = |detail: String| TlsError::NoCertificate {
        path: certfile.to_path_buf(),
        detail,
    };
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, pem::Error>>()
        .map_err(|e| no_certificate(e.to_string()))?;
    if chain.is_empty() {
        return Err(no_certificate("the file has no CERTIFICATE block".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::NoKey {
        path: keyfile.to_path_buf(),
        detail: match e {
            pem::Error::NoItemsFound => "the file has no private key block".into(),
            e => e.to_string(),
        },
    })?;
    let certificates = chain.len();
    let refused = |detail| TlsError::Refused { detail };
    let mut provider = rustls::crypto::ring::default_provider();
    if !ciphers.is_empty() {
        provider = CryptoProvider {
            cipher_suites: cipher_suites(ciphers).map_err(TlsError::Ciphers)?,
            ..provider
        };
    }
    let provider = Arc::new(provider);
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(refused)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(refused)?;
    config.alpn_protocols = vec![ALPN_HTTP_1_1.to_vec()];
    // A pinned list is the server's order of preference.
    config.ignore_client_order = !ciphers.is_empty();
    Ok((config, certificates))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cipher_names_rustls_and_openssl_spellings() {
        let names = |list: &str| -> Vec<&'static str> {
            cipher_suites(list)
                .unwrap()
                .iter()
                .filter_map(|s| s.suite().as_str())
                .collect()
        };
        assert_eq!(
            names("TLS_AES_128_GCM_SHA256"),
            ["TLS13_AES_128_GCM_SHA256"]
        );
        assert_eq!(
            names("tls13_chacha20_poly1305_sha256:TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"),
            [
                "TLS13_CHACHA20_POLY1305_SHA256",
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
            ]
        );
        assert!(cipher_suites("TLS_AES_128_CCM_SHA256").is_err());
        assert!(cipher_suites(" , ").is_err());
    }
}
