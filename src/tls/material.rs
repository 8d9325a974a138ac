//! A generation's TLS material (certificate chain and key, and for client certificates the CA
//! bundle and revocation lists): read and checked by the master, sealed in memory, handed to
//! the generation's workers as `TLS_FD`, and turned into a rustls server configuration by each
//! worker.
//!
//! The sealed copy is framed as `MAGIC`, one line of settings (`--ciphers`, `--cert-reqs`,
//! `--tls-min`, tab-separated), then four sections, each its length (u64, little-endian) and
//! its bytes: the certificate PEM, the key PEM, the `--ca-certs` PEM and the `--crl` PEM (the
//! last two empty when not given): the files exactly as read, so the worker parses the same
//! bytes the master checked. Workers read it with `pread` at offset 0: the descriptor's file
//! offset is shared by every process holding it.

use std::fmt;
use std::fs::{self, File};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ServerConfig, SupportedCipherSuite};

use super::args::{CertReqs, TlsArgs, TlsMin};
use crate::sys::memfd::sealed_file;
use crate::sys::process::{claim_inherited, dup_at_or_above};

/// Where a worker finds its generation's certificate and key (when it serves TLS).
pub(crate) const TLS_FD: RawFd = 6;

/// The only application protocol spoken over TLS (ALPN, RFC 7301).
const ALPN_HTTP_1_1: &[u8] = b"http/1.1";

/// The first bytes of the sealed copy (its format's version).
const MAGIC: &[u8] = b"webserver-tls-2\n";

/// Length of a section's length field.
const LEN_BYTES: usize = 8;

/// What the master read for a generation, as the worker gets it back.
struct Files<'a> {
    cert_pem: &'a [u8],
    key_pem: &'a [u8],
    /// Empty: no `--ca-certs`.
    ca_pem: &'a [u8],
    /// Empty: no `--crl`.
    crl_pem: &'a [u8],
}

/// Where the files came from, for messages.
struct Origin<'a> {
    certfile: &'a Path,
    keyfile: &'a Path,
    ca_certs: &'a Path,
    crl: &'a Path,
}

/// The settings sealed with the files.
struct Settings<'a> {
    ciphers: &'a str,
    cert_reqs: CertReqs,
    tls_min: TlsMin,
}

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
    /// `--ca-certs` holds no usable CA certificate.
    NoCa { path: PathBuf, detail: String },
    /// `--crl` holds no usable revocation list, or rustls refused the client verifier.
    ClientAuth { path: PathBuf, detail: String },
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
            TlsError::NoCa { path, detail } => write!(
                f,
                "no usable CA certificate in --ca-certs {}: {detail} (expected PEM \"-----BEGIN CERTIFICATE-----\" blocks of the CAs that issue client certificates)",
                path.display()
            ),
            TlsError::ClientAuth { path, detail } => write!(
                f,
                "client certificates cannot be checked with --ca-certs/--crl ({}): {detail} (--crl wants PEM \"-----BEGIN X509 CRL-----\" blocks issued by a --ca-certs CA)",
                path.display()
            ),
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
    /// Read the files `tls` names (certificate and key, and the CA bundle and revocation lists
    /// when given), check that a worker could serve them with its settings (`--ciphers`,
    /// already checked by the command line, `--cert-reqs`, `--tls-min`), and seal them in
    /// memory, with the settings, at a descriptor at or above `floor`. `None`: no TLS.
    pub(crate) fn load(tls: &TlsArgs, floor: RawFd) -> Result<Option<TlsMaterial>, TlsError> {
        let Some((certfile, keyfile)) = tls.files() else {
            return Ok(None);
        };
        let read = |what, path: &Path| {
            fs::read(path).map_err(|source| TlsError::Read {
                what,
                path: path.to_path_buf(),
                source,
            })
        };
        let optional = |what, path: &Option<PathBuf>| match path {
            Some(path) => read(what, path),
            None => Ok(Vec::new()),
        };
        let cert_pem = read("certificate", certfile)?;
        let key_pem = read("key", keyfile)?;
        let ca_pem = optional("CA bundle (--ca-certs)", &tls.ca_certs)?;
        let crl_pem = optional("revocation list (--crl)", &tls.crl)?;
        let none = Path::new("");
        let origin = Origin {
            certfile,
            keyfile,
            ca_certs: tls.ca_certs.as_deref().unwrap_or(none),
            crl: tls.crl.as_deref().unwrap_or(none),
        };
        let settings = Settings {
            ciphers: tls.ciphers.as_deref().unwrap_or_default(),
            cert_reqs: tls.cert_reqs,
            tls_min: tls.tls_min,
        };
        let files = Files {
            cert_pem: &cert_pem,
            key_pem: &key_pem,
            ca_pem: &ca_pem,
            crl_pem: &crl_pem,
        };
        let (_, certificates) = server_config(&files, &settings, &origin)?;
        let mut framed = Vec::with_capacity(
            MAGIC.len()
                + 4 * LEN_BYTES
                + cert_pem.len()
                + key_pem.len()
                + ca_pem.len()
                + crl_pem.len()
                + 64,
        );
        framed.extend_from_slice(MAGIC);
        framed.extend_from_slice(
            format!(
                "{}\t{}\t{}\n",
                settings.ciphers,
                settings.cert_reqs.as_str(),
                settings.tls_min.as_str()
            )
            .as_bytes(),
        );
        for section in [&cert_pem, &key_pem, &ca_pem, &crl_pem] {
            framed.extend_from_slice(&(section.len() as u64).to_le_bytes());
            framed.extend_from_slice(section);
        }
        let image = sealed_file("webserver-tls", &framed).map_err(TlsError::Memory)?;
        let image = dup_at_or_above(image.as_fd(), floor).map_err(TlsError::Memory)?;
        let mut summary = format!(
            "{} certificate(s) from {}, key from {}, TLS {}+",
            certificates,
            certfile.display(),
            keyfile.display(),
            settings.tls_min.as_str()
        );
        if tls.ca_certs.is_some() && settings.cert_reqs == CertReqs::None {
            log::warn!("--ca-certs is given but --cert-reqs is none: clients are not asked for a certificate (add --cert-reqs optional or required)");
        }
        if let Some(ca) = &tls.ca_certs {
            summary += &format!(
                ", client certificates {} by {}",
                settings.cert_reqs.as_str(),
                ca.display()
            );
        }
        if let Some(crl) = &tls.crl {
            summary += &format!(", revocations from {}", crl.display());
        }
        Ok(Some(TlsMaterial {
            image: Arc::new(image),
            summary,
        }))
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
    let line = std::str::from_utf8(&rest[..line]).map_err(|_| damaged())?;
    let mut rest = &rest[line.len() + 1..];
    let mut words = line.split('\t');
    let ciphers = words.next().ok_or_else(damaged)?;
    let cert_reqs = words.next().and_then(CertReqs::parse).ok_or_else(damaged)?;
    let tls_min = words
        .next()
        .and_then(|w| super::args::tls_min(w).ok())
        .ok_or_else(damaged)?;
    let mut section = || -> Result<&[u8], TlsError> {
        let (len, after) = rest.split_at_checked(LEN_BYTES).ok_or_else(damaged)?;
        let len = u64::from_le_bytes(len.try_into().map_err(|_| damaged())?);
        let (bytes, after) = after
            .split_at_checked(usize::try_from(len).map_err(|_| damaged())?)
            .ok_or_else(damaged)?;
        rest = after;
        Ok(bytes)
    };
    let files = Files {
        cert_pem: section()?,
        key_pem: section()?,
        ca_pem: section()?,
        crl_pem: section()?,
    };
    let inherited = Path::new("(inherited)");
    let origin = Origin {
        certfile: inherited,
        keyfile: inherited,
        ca_certs: inherited,
        crl: inherited,
    };
    let settings = Settings {
        ciphers,
        cert_reqs,
        tls_min,
    };
    let (config, _) = server_config(&files, &settings, &origin)?;
    Ok(Arc::new(config))
}

/// The rustls server configuration for a certificate chain and key (PEM), checking client
/// certificates as the settings say, and the number of certificates in the chain; building it
/// is what refuses a key that does not match, or a CA bundle or revocation list that is not one.
fn server_config(
    files: &Files<'_>,
    settings: &Settings<'_>,
    origin: &Origin<'_>,
) -> Result<(ServerConfig, usize), TlsError> {
    let no_certificate = |detail: String| TlsError::NoCertificate {
        path: origin.certfile.to_path_buf(),
        detail,
    };
    let chain = CertificateDer::pem_slice_iter(files.cert_pem)
        .collect::<Result<Vec<_>, pem::Error>>()
        .map_err(|e| no_certificate(e.to_string()))?;
    if chain.is_empty() {
        return Err(no_certificate("the file has no CERTIFICATE block".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(files.key_pem).map_err(|e| TlsError::NoKey {
        path: origin.keyfile.to_path_buf(),
        detail: match e {
            pem::Error::NoItemsFound => "the file has no private key block".into(),
            e => e.to_string(),
        },
    })?;
    let certificates = chain.len();
    let refused = |detail| TlsError::Refused { detail };
    let mut provider = rustls::crypto::ring::default_provider();
    if !settings.ciphers.is_empty() {
        provider = CryptoProvider {
            cipher_suites: cipher_suites(settings.ciphers).map_err(TlsError::Ciphers)?,
            ..provider
        };
    }
    let provider = Arc::new(provider);
    let versions: &[&rustls::SupportedProtocolVersion] = match settings.tls_min {
        TlsMin::Tls12 => rustls::DEFAULT_VERSIONS,
        TlsMin::Tls13 => &[&rustls::version::TLS13],
    };
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(versions)
        .map_err(refused)?;
    let builder = match settings.cert_reqs {
        CertReqs::None => builder.with_no_client_auth(),
        reqs => builder.with_client_cert_verifier(client_verifier(files, reqs, origin, provider)?),
    };
    let mut config = builder.with_single_cert(chain, key).map_err(refused)?;
    config.alpn_protocols = vec![ALPN_HTTP_1_1.to_vec()];
    // A pinned list is the server's order of preference.
    config.ignore_client_order = !settings.ciphers.is_empty();
    Ok((config, certificates))
}

/// The verifier of client certificates: chains to a `--ca-certs` CA, for client
/// authentication, not revoked by a `--crl` list (the client's own certificate is checked, as
/// OpenSSL's CRL check does; one whose issuer has no list there is refused: a list that does not
/// cover a CA is a mistake to say, not to pass over).
fn client_verifier(
    files: &Files<'_>,
    reqs: CertReqs,
    origin: &Origin<'_>,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    let no_ca = |detail: String| TlsError::NoCa {
        path: origin.ca_certs.to_path_buf(),
        detail,
    };
    let cas = CertificateDer::pem_slice_iter(files.ca_pem)
        .collect::<Result<Vec<_>, pem::Error>>()
        .map_err(|e| no_ca(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(cas);
    if added == 0 {
        return Err(no_ca(if ignored > 0 {
            format!("none of its {ignored} certificate(s) parses as a CA")
        } else {
            "the file has no CERTIFICATE block".into()
        }));
    }
    let crl_error = |detail: String| TlsError::ClientAuth {
        path: origin.crl.to_path_buf(),
        detail,
    };
    let crls = CertificateRevocationListDer::pem_slice_iter(files.crl_pem)
        .collect::<Result<Vec<_>, pem::Error>>()
        .map_err(|e| crl_error(e.to_string()))?;
    if !files.crl_pem.is_empty() && crls.is_empty() {
        return Err(crl_error("the file has no X509 CRL block".into()));
    }
    let mut builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
    if !crls.is_empty() {
        builder = builder.with_crls(crls).only_check_end_entity_revocation();
    }
    if reqs == CertReqs::Optional {
        builder = builder.allow_unauthenticated();
    }
    builder.build().map_err(|e| crl_error(e.to_string()))
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
