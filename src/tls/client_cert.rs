//! What the app learns about a TLS client's certificate: the environ variables mod_ssl names
//! (`SSL_CLIENT_VERIFY`, `SSL_CLIENT_S_DN`, `SSL_CLIENT_S_DN_CN`, `SSL_CLIENT_I_DN`,
//! `SSL_CLIENT_M_SERIAL`, `SSL_CLIENT_SAN_DNS_n`, `SSL_CLIENT_SAN_Email_n`,
//! `SSL_CLIENT_SAN_URI_n`, `SSL_CLIENT_SAN_IPaddr_n`), made once per connection when its
//! handshake completes.
//!
//! rustls verified the certificate (`--ca-certs`, `--crl`) before the handshake completed; it
//! hands over the DER only, so the names are read with `x509-parser`. Distinguished names are
//! written as RFC 4514 strings, the most specific part first (`CN=alice,O=Example`), as nginx's
//! `$ssl_client_s_dn` and Apache's `SSL_CLIENT_S_DN` (without `SSLOptions +LegacyDNStringFormat`)
//! spell them.

use std::fmt::Write;
use std::net::IpAddr;

use x509_parser::asn1_rs::Tag;
use x509_parser::extensions::GeneralName;
use x509_parser::objects::{oid2abbrev, oid_registry};
use x509_parser::x509::{AttributeTypeAndValue, X509Name};

/// One connection's client-certificate variables, (name, value).
#[derive(Clone, Debug, Default)]
pub(crate) struct ClientCert {
    vars: Vec<(String, String)>,
}

impl ClientCert {
    /// The variables for a connection whose client presented `leaf` (verified), or none.
    pub(crate) fn new(leaf: Option<&[u8]>) -> ClientCert {
        let mut vars = Vec::new();
        let parsed = leaf.and_then(|der| x509_parser::parse_x509_certificate(der).ok());
        let Some((_, cert)) = parsed else {
            // Verified certificates always parse; a client without one is `NONE` (mod_ssl).
            vars.push(("SSL_CLIENT_VERIFY".into(), "NONE".into()));
            return ClientCert { vars };
        };
        vars.push(("SSL_CLIENT_VERIFY".into(), "SUCCESS".into()));
        vars.push(("SSL_CLIENT_S_DN".into(), rfc4514(cert.subject())));
        if let Some(cn) = cert.subject().iter_common_name().last() {
            vars.push(("SSL_CLIENT_S_DN_CN".into(), attribute_value(cn)));
        }
        vars.push(("SSL_CLIENT_I_DN".into(), rfc4514(cert.issuer())));
        let mut serial = String::new();
        for byte in cert.raw_serial() {
            let _ = write!(serial, "{byte:02X}");
        }
        vars.push(("SSL_CLIENT_M_SERIAL".into(), serial));
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            let mut counts = [0usize; 4];
            for name in &san.value.general_names {
                let (kind, value) = match name {
                    GeneralName::DNSName(dns) => (0, dns.to_string()),
                    GeneralName::RFC822Name(email) => (1, email.to_string()),
                    GeneralName::URI(uri) => (2, uri.to_string()),
                    GeneralName::IPAddress(bytes) => match ip(bytes) {
                        Some(ip) => (3, ip.to_string()),
                        None => continue,
                    },
                    _ => continue,
                };
                let label = ["DNS", "Email", "URI", "IPaddr"][kind];
                vars.push((format!("SSL_CLIENT_SAN_{label}_{}", counts[kind]), value));
                counts[kind] += 1;
            }
        }
        ClientCert { vars }
    }

    /// The (name, value) pairs, for the environ.
    pub(crate) fn vars(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.vars
            .iter()
            .map(|(name, value)| (name.as_bytes(), value.as_bytes()))
    }
}

/// An IP address SAN (4 or 16 bytes).
fn ip(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => None,
    }
}

/// A distinguished name as RFC 4514 writes it: the last RDN (the most specific) first,
/// comma-separated, multi-valued RDNs joined with `+`.
fn rfc4514(name: &X509Name<'_>) -> String {
    let mut out = String::new();
    let rdns: Vec<_> = name.iter_rdn().collect();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, attr) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            match oid2abbrev(attr.attr_type(), oid_registry()) {
                Ok(abbrev) => out.push_str(abbrev),
                Err(_) => out.push_str(&attr.attr_type().to_id_string()),
            }
            out.push('=');
            escape_into(&mut out, &attribute_value(attr));
        }
    }
    out
}

/// An attribute's text: the string types as they are (BMPString decoded from UTF-16), any
/// other value as `#` and its hex (RFC 4514 §2.4).
fn attribute_value(attr: &AttributeTypeAndValue<'_>) -> String {
    if let Ok(text) = attr.as_str() {
        return text.to_owned();
    }
    let bytes = attr.as_slice();
    if attr.attr_value().tag() == Tag::BmpString {
        let units: Vec<u16> = bytes
            .chunks_exact(2)
            .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
            .collect();
        return String::from_utf16_lossy(&units);
    }
    let mut hex = String::from("#");
    for byte in bytes {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// RFC 4514 §2.4 escaping of a value: the special characters with a backslash, a leading `#`
/// or space and a trailing space too, control characters as `\XX`.
fn escape_into(out: &mut String, value: &str) {
    if value.starts_with('#')
        && value.len() > 1
        && value[1..].bytes().all(|b| b.is_ascii_hexdigit())
    {
        // A hex value (`attribute_value`'s own) stays as it is.
        out.push_str(value);
        return;
    }
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            c if c.is_control() => {
                let mut buf = [0; 4];
                for byte in c.encode_utf8(&mut buf).bytes() {
                    let _ = write!(out, "\\{byte:02X}");
                }
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4514_escapes_specials_and_edges() {
        let escaped = |v: &str| {
            let mut out = String::new();
            escape_into(&mut out, v);
            out
        };
        assert_eq!(escaped("Smith, John+Co"), "Smith\\, John\\+Co");
        assert_eq!(escaped(" x "), "\\ x\\ ");
        assert_eq!(escaped("#1"), "#1");
        assert_eq!(escaped("#no"), "\\#no");
        assert_eq!(escaped("a\nb"), "a\\0Ab");
    }

    #[test]
    fn no_certificate_is_verify_none() {
        let vars: Vec<_> = ClientCert::new(None)
            .vars()
            .map(|(n, v)| (n.to_vec(), v.to_vec()))
            .collect();
        assert_eq!(vars, [(b"SSL_CLIENT_VERIFY".to_vec(), b"NONE".to_vec())]);
    }
}
