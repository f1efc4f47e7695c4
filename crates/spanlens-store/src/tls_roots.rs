//! The certificates a TLS client trusts, for the PostgreSQL and ClickHouse backends alike.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

/// The trusted roots: the certificates of the PEM file `path`, else the system's. `param` is
/// the URI parameter that names the file, for the messages.
pub(crate) fn roots(path: Option<&str>, param: &str) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match path {
        Some(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("{param}={path}: {e}"))?
                .collect::<Result<_, _>>()
                .map_err(|e| format!("{param}={path}: {e}"))?;
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!("{param}={path}: no certificate in it"));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                return Err(format!(
                    "verifying the server needs trusted roots, and the system has none: name \
                     them with {param}=/path/to/root.pem"
                ));
            }
        }
    }
    Ok(store)
}
