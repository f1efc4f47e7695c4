//! TLS to PostgreSQL, asked for with libpq's URL parameters, so a URL that works with `psql`
//! works here:
//!
//! - `sslmode=disable`: no TLS.
//! - `sslmode=prefer` (the default, as in libpq): TLS when the server offers it, else plain.
//! - `sslmode=require`: TLS or no connection. The server's certificate is not checked, unless
//!   `sslrootcert` names a file, when it is checked as with `verify-ca` (libpq's rule).
//! - `sslmode=verify-ca`: TLS, and the certificate must chain to a trusted root.
//! - `sslmode=verify-full`: `verify-ca`, and the certificate must name the host connected to.
//!
//! Trusted roots come from the PEM file `sslrootcert` names, else from the system's store.
//! tokio-postgres knows only `disable`, `prefer` and `require`: the two verifying modes and
//! `sslrootcert` are taken out of the URL here and become the rustls configuration.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, SignatureScheme};
use std::sync::Arc;
use tokio_postgres_rustls::MakeRustlsConnect;

/// How much of the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// Nothing: the connection is encrypted, not authenticated (`prefer`, `require`).
    Nothing,
    /// The chain to a trusted root (`verify-ca`).
    Chain,
    /// The chain and the host name (`verify-full`).
    Full,
}

/// What the URL asks for, and the URL tokio-postgres is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsRequest {
    /// The URL without `sslrootcert`, with `sslmode` one tokio-postgres knows.
    pub uri: String,
    pub verify: Verify,
    /// `sslrootcert`, percent-decoded.
    pub root_cert: Option<String>,
}

/// Reads the TLS parameters of a `postgres://` URL. A `key=value` connection string is passed
/// through as it is (tokio-postgres reads its `sslmode`; the verifying modes need the URL form).
pub fn parse(uri: &str) -> Result<TlsRequest, String> {
    let plain = |uri: &str| TlsRequest {
        uri: uri.to_string(),
        verify: Verify::Nothing,
        root_cert: None,
    };
    let is_url = uri.starts_with("postgres://") || uri.starts_with("postgresql://");
    let Some((base, query)) = uri.split_once('?').filter(|_| is_url) else {
        return Ok(plain(uri));
    };
    let mut kept = Vec::new();
    let mut mode = None;
    let mut root_cert = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslmode" => mode = Some(value.to_string()),
            "sslrootcert" => root_cert = Some(percent_decode(value)?),
            _ => kept.push(pair),
        }
    }
    let (tokio_mode, mut verify) = match mode.as_deref() {
        None => (None, Verify::Nothing),
        Some("disable") => (Some("disable"), Verify::Nothing),
        // libpq's `allow` tries plain first; the nearest tokio-postgres offers is `prefer`.
        Some("allow" | "prefer") => (Some("prefer"), Verify::Nothing),
        Some("require") => (Some("require"), Verify::Nothing),
        Some("verify-ca") => (Some("require"), Verify::Chain),
        Some("verify-full") => (Some("require"), Verify::Full),
        Some(other) => {
            return Err(format!(
                "sslmode={other} is not one of disable, allow, prefer, require, verify-ca, \
                 verify-full"
            ))
        }
    };
    if verify == Verify::Nothing && root_cert.is_some() && tokio_mode == Some("require") {
        verify = Verify::Chain;
    }
    if let Some(m) = tokio_mode {
        kept.push(match m {
            "disable" => "sslmode=disable",
            "prefer" => "sslmode=prefer",
            _ => "sslmode=require",
        });
    }
    let uri = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok(TlsRequest {
        uri,
        verify,
        root_cert,
    })
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("sslrootcert={s}: a bad percent escape"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("sslrootcert={s}: not UTF-8 once decoded"))
}

/// The connector for tokio-postgres that does what `request` asks.
pub fn connector(request: &TlsRequest) -> Result<MakeRustlsConnect, String> {
    // ring, whose provider rustls marks deprecated for lacking post-quantum key exchange: the
    // other provider (aws-lc) is a C and CMake build on every machine that compiles us, and
    // the OpenSSL of the PostgreSQL releases we target (3.0 in Debian 12) offers no such
    // exchange to agree on.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let chain = match request.verify {
        Verify::Nothing => None,
        Verify::Chain | Verify::Full => {
            let roots = Arc::new(crate::tls_roots::roots(
                request.root_cert.as_deref(),
                "sslrootcert",
            )?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| format!("TLS setup: {e}"))?;
            Some(webpki)
        }
    };
    let verifier: Arc<dyn ServerCertVerifier> = match (request.verify, chain) {
        (Verify::Full, Some(webpki)) => webpki,
        (_, chain) => Arc::new(Lenient { provider, chain }),
    };
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// What libpq checks short of `verify-full`: with `chain`, that the certificate chains to a
/// trusted root whatever host it names (`verify-ca`); without, nothing (`prefer`, `require`:
/// encryption without authentication). The handshake must still be signed by the key the
/// certificate holds.
#[derive(Debug)]
struct Lenient {
    provider: Arc<CryptoProvider>,
    chain: Option<Arc<WebPkiServerVerifier>>,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_modes_become_what_tokio_postgres_reads() {
        let p = |u: &str| parse(u).unwrap();
        let base = "postgres://u:p@h:5432/db";
        assert_eq!(
            p(base),
            TlsRequest {
                uri: base.into(),
                verify: Verify::Nothing,
                root_cert: None
            }
        );
        let r = p(&format!("{base}?application_name=a&sslmode=verify-full"));
        assert_eq!(r.uri, format!("{base}?application_name=a&sslmode=require"));
        assert_eq!(r.verify, Verify::Full);
        let r = p(&format!(
            "{base}?sslmode=verify-ca&sslrootcert=%2Fetc%2Froot.pem"
        ));
        assert_eq!(r.uri, format!("{base}?sslmode=require"));
        assert_eq!(
            (r.verify, r.root_cert.as_deref()),
            (Verify::Chain, Some("/etc/root.pem"))
        );
        // libpq's rule: `require` with a root file verifies the chain.
        let r = p(&format!("{base}?sslmode=require&sslrootcert=/r.pem"));
        assert_eq!(r.verify, Verify::Chain);
        assert_eq!(
            p(&format!("{base}?sslmode=allow")).uri,
            format!("{base}?sslmode=prefer")
        );
        assert_eq!(
            p(&format!("{base}?sslmode=disable")).verify,
            Verify::Nothing
        );
        let e = parse(&format!("{base}?sslmode=strict")).unwrap_err();
        assert!(e.contains("sslmode=strict"), "{e}");
        // A key=value string is tokio-postgres's to read.
        assert_eq!(p("host=h sslmode=require").uri, "host=h sslmode=require");
    }

    #[test]
    fn a_missing_root_file_is_named() {
        let r =
            parse("postgres://h/db?sslmode=verify-full&sslrootcert=/nonexistent/root.pem").unwrap();
        let e = connector(&r).err().unwrap();
        assert!(e.contains("/nonexistent/root.pem"), "{e}");
    }
}
