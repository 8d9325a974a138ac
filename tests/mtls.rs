//! Client certificates end to end (`--ca-certs`, `--cert-reqs`, `--crl`, `--tls-min`): a CA,
//! client certificates from it and from another CA, and a revocation list made at test time
//! (rcgen), curl with `--cert`/`--key` as the client, the echo app showing the `SSL_CLIENT_*`
//! variables it was handed; the revocation list re-read on HUP.

mod common;
mod wsgi_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, CertificateRevocationListParams,
    DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair,
    KeyUsagePurpose, RevocationReason, RevokedCertParams, SanType, SerialNumber,
};

/// A test CA: it signs the server's certificate, client certificates and revocation lists.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
    dir: PathBuf,
    name: String,
}

/// A certificate and its key, as PEM files.
struct Issued {
    certfile: PathBuf,
    keyfile: PathBuf,
}

impl Ca {
    fn new(dir: &Path, name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        Ca {
            cert,
            key,
            dir: dir.to_path_buf(),
            name: name.to_owned(),
        }
    }

    fn file(&self) -> PathBuf {
        self.dir.join(format!("{}.pem", self.name))
    }

    /// The server's certificate, for `localhost`.
    fn server(&self) -> Issued {
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        self.write("server", params)
    }

    /// A client certificate for `cn` (organization "Example, Inc." to see the escaping) with
    /// `serial`, an e-mail and a DNS alternative name.
    fn client(&self, cn: &str, serial: u64) -> Issued {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        // Without rcgen's default CN, so the order is the one pushed here.
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CountryName, "FR");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Example, Inc.");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.serial_number = Some(SerialNumber::from(serial));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.subject_alt_names = vec![
            SanType::Rfc822Name(format!("{cn}@example.com").try_into().unwrap()),
            SanType::DnsName(format!("{cn}.example.com").try_into().unwrap()),
        ];
        self.write(cn, params)
    }

    fn write(&self, name: &str, params: CertificateParams) -> Issued {
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let certfile = self.dir.join(format!("{name}.crt"));
        let keyfile = self.dir.join(format!("{name}.key"));
        std::fs::write(&certfile, cert.pem()).unwrap();
        std::fs::write(&keyfile, key.serialize_pem()).unwrap();
        Issued { certfile, keyfile }
    }

    /// A revocation list revoking `serials`, written to `file`.
    fn revoke(&self, serials: &[u64], number: u64, file: &Path) {
        let params = CertificateRevocationListParams {
            this_update: date_time_ymd(2025, 1, 1),
            next_update: date_time_ymd(2040, 1, 1),
            crl_number: SerialNumber::from(number),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|&serial| RevokedCertParams {
                    serial_number: SerialNumber::from(serial),
                    revocation_time: date_time_ymd(2025, 6, 1),
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.cert, &self.key).unwrap();
        let tmp = file.with_extension("tmp");
        std::fs::write(&tmp, crl.pem().unwrap()).unwrap();
        std::fs::rename(&tmp, file).unwrap();
    }
}

/// The test's files: the server's CA (which also issues the clients' certificates), another CA.
struct Pki {
    ca: Ca,
    other: Ca,
    server: Issued,
}

fn pki(tag: &str) -> Pki {
    assert!(
        have_program("curl"),
        "curl is needed (apt-get install curl)"
    );
    let dir = fresh_dir(tag);
    let ca = Ca::new(&dir, "ca");
    let other = Ca::new(&dir, "other-ca");
    let server = ca.server();
    Pki { ca, other, server }
}

/// The echo app over TLS, asking clients for no certificate.
fn tls_server(pki: &Pki) -> ServerBuilder {
    sample_server("echo")
        .args(["--certfile".as_ref(), pki.server.certfile.as_os_str()])
        .args(["--keyfile".as_ref(), pki.server.keyfile.as_os_str()])
}

/// The echo app over TLS, asking clients for certificates from `pki.ca`.
fn mtls_server(pki: &Pki, cert_reqs: &str) -> ServerBuilder {
    tls_server(pki)
        .args(["--ca-certs".as_ref(), pki.ca.file().as_os_str()])
        .args(["--cert-reqs", cert_reqs])
}

/// `curl https://localhost:PORT/` with the client certificate `client` (and `extra` flags):
/// the JSON the echo app answered, or curl's error.
fn curl(
    pki: &Pki,
    port: u16,
    client: Option<&Issued>,
    extra: &[&str],
) -> Result<serde_json::Value, String> {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "10", "--cacert"])
        .arg(pki.ca.file())
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
        .args(extra);
    if let Some(client) = client {
        cmd.arg("--cert").arg(&client.certfile);
        cmd.arg("--key").arg(&client.keyfile);
    }
    cmd.arg(format!("https://localhost:{port}/who"));
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!(
            "curl exit {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    serde_json::from_str(&stdout).map_err(|e| format!("not the echo app's JSON ({e}): {stdout}"))
}

#[test]
fn required_refuses_no_certificate_another_cas_and_a_revoked_one_and_names_the_accepted() {
    let pki = pki("mtls-required");
    let alice = pki.ca.client("alice", 10);
    let mallory = pki.other.client("mallory", 11);
    let revoked = pki.ca.client("revoked", 12);
    let crl = pki.ca.dir.join("ca.crl.pem");
    pki.ca.revoke(&[12], 1, &crl);
    let server = mtls_server(&pki, "required")
        .args(["--crl".as_ref(), crl.as_os_str()])
        .start();
    let port = server.port();

    let json = curl(&pki, port, Some(&alice), &[]).expect("alice's certificate is accepted");
    let vars = &json["ssl_client"];
    assert_eq!(vars["SSL_CLIENT_VERIFY"], "SUCCESS", "{json}");
    assert_eq!(
        vars["SSL_CLIENT_S_DN"], "CN=alice,O=Example\\, Inc.,C=FR",
        "{json}"
    );
    // As OpenSSL spells it (nginx's $ssl_client_s_dn, Apache's SSL_CLIENT_S_DN).
    let openssl = Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in"])
        .arg(&alice.certfile)
        .output()
        .expect("openssl (the command) is needed (apt-get install openssl)");
    let openssl = String::from_utf8_lossy(&openssl.stdout);
    assert_eq!(
        Some(vars["SSL_CLIENT_S_DN"].as_str().unwrap()),
        openssl.trim().strip_prefix("subject="),
        "{openssl}"
    );
    assert_eq!(vars["SSL_CLIENT_S_DN_CN"], "alice", "{json}");
    assert_eq!(vars["SSL_CLIENT_I_DN"], "CN=ca", "{json}");
    assert_eq!(vars["SSL_CLIENT_M_SERIAL"], "0A", "{json}");
    assert_eq!(
        vars["SSL_CLIENT_SAN_Email_0"], "alice@example.com",
        "{json}"
    );
    assert_eq!(vars["SSL_CLIENT_SAN_DNS_0"], "alice.example.com", "{json}");
    assert_eq!(json["url_scheme"], "https");

    for (who, client) in [
        ("no certificate", None),
        ("another CA's certificate", Some(&mallory)),
        ("a revoked certificate", Some(&revoked)),
    ] {
        let refused = curl(&pki, port, client, &[]);
        assert!(refused.is_err(), "{who} must be refused: {refused:?}");
    }
    // Each refusal is a log line that says why.
    for why in ["no certificates", "UnknownIssuer", "Revoked"] {
        server
            .wait_for_log(IO_TIMEOUT, |l| {
                l.contains("TLS client certificate refused") && l.contains(why)
            })
            .unwrap_or_else(|| panic!("a log line for {why}"));
    }
    // And alice is still served.
    assert!(curl(&pki, port, Some(&alice), &[]).is_ok());
}

#[test]
fn optional_serves_a_client_without_a_certificate_as_verify_none() {
    let pki = pki("mtls-optional");
    let bob = pki.ca.client("bob", 20);
    let mallory = pki.other.client("mallory", 21);
    let server = mtls_server(&pki, "optional").start();

    let json = curl(&pki, server.port(), None, &[]).expect("no certificate is served");
    assert_eq!(json["ssl_client"]["SSL_CLIENT_VERIFY"], "NONE", "{json}");
    assert!(
        json["ssl_client"].get("SSL_CLIENT_S_DN").is_none(),
        "{json}"
    );

    let json = curl(&pki, server.port(), Some(&bob), &[]).expect("bob is served");
    assert_eq!(json["ssl_client"]["SSL_CLIENT_VERIFY"], "SUCCESS", "{json}");
    assert_eq!(json["ssl_client"]["SSL_CLIENT_S_DN_CN"], "bob", "{json}");

    // Optional is not "anything goes": a certificate that does not verify is refused.
    assert!(curl(&pki, server.port(), Some(&mallory), &[]).is_err());
}

#[test]
fn without_client_certificates_the_environ_says_verify_none() {
    let pki = pki("mtls-none");
    let server = tls_server(&pki).start();
    let json = curl(&pki, server.port(), None, &[]).unwrap();
    assert_eq!(json["ssl_client"]["SSL_CLIENT_VERIFY"], "NONE", "{json}");
    // Plain HTTP has no SSL_CLIENT_* at all.
    let plain = sample_server("echo").start();
    let json = plain.get("/").json();
    assert_eq!(json["ssl_client"], serde_json::json!({}), "{json}");
}

#[test]
fn a_revocation_list_is_re_read_on_hup() {
    let pki = pki("mtls-crl-hup");
    let carol = pki.ca.client("carol", 30);
    let crl = pki.ca.dir.join("ca.crl.pem");
    pki.ca.revoke(&[], 1, &crl);
    let pid_file = pki.ca.dir.join("ws.pid");
    let server = mtls_server(&pki, "required")
        .args(["--crl".as_ref(), crl.as_os_str()])
        .args(["--pid".as_ref(), pid_file.as_os_str()])
        .start();
    wait_first_ready(&pid_file);
    assert!(curl(&pki, server.port(), Some(&carol), &[]).is_ok());

    pki.ca.revoke(&[30], 2, &crl);
    server.signal(libc::SIGHUP);
    poll(SWAP_TIMEOUT, "generation 2 ready", || {
        read_status(&pid_file).filter(|(state, generation, _)| state == "ready" && *generation == 2)
    });
    let refused = curl(&pki, server.port(), Some(&carol), &[]);
    assert!(refused.is_err(), "carol is revoked after HUP: {refused:?}");

    // A broken list refuses the swap, and the last good one keeps serving.
    std::fs::write(&crl, "-----BEGIN X509 CRL-----\nnot base64!\n").unwrap();
    server.signal(libc::SIGHUP);
    let (_, _, reason) = poll(SWAP_TIMEOUT, "generation 3 failed", || {
        read_status(&pid_file)
            .filter(|(state, generation, _)| state == "failed" && *generation == 3)
    });
    assert!(reason.contains("--crl"), "status reason: {reason}");
    assert!(curl(&pki, server.port(), Some(&carol), &[]).is_err());
}

#[test]
fn tls_min_1_3_refuses_a_tls_1_2_client() {
    let pki = pki("mtls-tls-min");
    let server = tls_server(&pki).args(["--ssl-version", "TLSv1_3"]).start();
    let port = server.port();
    assert!(curl(&pki, port, None, &["--tls-max", "1.3", "--tlsv1.3"]).is_ok());
    let refused = curl(&pki, port, None, &["--tls-max", "1.2"]);
    assert!(refused.is_err(), "a TLS 1.2 client: {refused:?}");
    // The default serves it.
    let server = tls_server(&pki).start();
    assert!(curl(&pki, server.port(), None, &["--tls-max", "1.2"]).is_ok());
}

#[test]
fn cert_reqs_required_without_ca_certs_is_a_usage_error_that_names_it() {
    let pki = pki("mtls-usage");
    let exited = tls_server(&pki)
        .args(["--cert-reqs", "required"])
        .run_to_exit();
    assert_eq!(exited.status.code(), Some(2), "{}", exited.stderr);
    assert!(exited.stderr.contains("--ca-certs"), "{}", exited.stderr);
}

#[test]
fn ca_certs_and_cert_reqs_come_from_the_config_file_and_the_environment() {
    let pki = pki("mtls-config");
    let dave = pki.ca.client("dave", 40);
    let config = pki.ca.dir.join("webserver.toml");
    std::fs::write(
        &config,
        format!(
            "certfile = {:?}\nkeyfile = {:?}\nca-certs = {:?}\n",
            pki.server.certfile,
            pki.server.keyfile,
            pki.ca.file()
        ),
    )
    .unwrap();
    let server = sample_server("echo")
        .args(["--config".as_ref(), config.as_os_str()])
        .env("WEBSERVER_CERT_REQS", "required")
        .start();
    assert!(curl(&pki, server.port(), None, &[]).is_err());
    let json = curl(&pki, server.port(), Some(&dave), &[]).unwrap();
    assert_eq!(json["ssl_client"]["SSL_CLIENT_S_DN_CN"], "dave", "{json}");
}

#[test]
fn ca_certs_without_cert_reqs_asks_for_nothing_and_says_so() {
    let pki = pki("mtls-ca-only");
    let server = tls_server(&pki)
        .args(["--ca-certs".as_ref(), pki.ca.file().as_os_str()])
        .start();
    let json = curl(&pki, server.port(), None, &[]).unwrap();
    assert_eq!(json["ssl_client"]["SSL_CLIENT_VERIFY"], "NONE", "{json}");
    server
        .wait_for_log(IO_TIMEOUT, |l| {
            l.contains(" WARN ") && l.contains("--cert-reqs is none")
        })
        .expect("a warning naming --cert-reqs");
}

#[test]
fn a_wsgi_app_sees_the_client_certificate_in_its_environ() {
    let pki = pki("mtls-wsgi");
    let erin = pki.ca.client("erin", 50);
    let server = wsgi_support::wsgi_server(&wsgi_support::examples_dir(), "echoapp:app")
        .args(["--certfile".as_ref(), pki.server.certfile.as_os_str()])
        .args(["--keyfile".as_ref(), pki.server.keyfile.as_os_str()])
        .args(["--ca-certs".as_ref(), pki.ca.file().as_os_str()])
        .args(["--cert-reqs", "required"])
        .start();
    let json = curl(&pki, server.port(), Some(&erin), &[]).unwrap();
    let vars = &json["ssl_client"];
    assert_eq!(vars["SSL_CLIENT_VERIFY"], "SUCCESS", "{json}");
    assert_eq!(
        vars["SSL_CLIENT_S_DN"], "CN=erin,O=Example\\, Inc.,C=FR",
        "{json}"
    );
    assert_eq!(json["wsgi"]["url_scheme"], "https", "{json}");
    assert!(curl(&pki, server.port(), None, &[]).is_err());
}
