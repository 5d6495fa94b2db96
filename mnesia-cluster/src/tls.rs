//! TLS for the nodes' connections (feature `tls`): rustls, both ways. Every node holds a
//! certificate signed by the cluster's CA and naming the cluster (one DNS name every node
//! certificate carries, `mnesia` unless told); a connection is TLS from its first byte, each
//! side checks the other's certificate against the CA and the name, and then the cookie's
//! handshake runs inside it as without TLS.

use std::path::Path;
use std::sync::Arc;

use mnesia_runtime::{Error, Result};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls::client::danger::HandshakeSignatureValid;
use tokio_rustls::rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use tokio_rustls::rustls::{
    self, ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig,
    SignatureScheme,
};

/// A node's TLS settings: its certificate and key, and the CA every node's certificate
/// must come from ([`Options::tls`](crate::Options::tls)).
///
/// ```
/// let ca = rcgen::generate_simple_self_signed(vec!["mnesia".into()]).expect("a certificate");
/// let (cert, key) = (ca.cert.pem(), ca.key_pair.serialize_pem());
/// let tls = mnesia_cluster::Tls::from_pem(cert.as_bytes(), key.as_bytes(), cert.as_bytes())?;
/// assert_eq!(tls.name(), "mnesia");
/// assert!(mnesia_cluster::Tls::from_pem(b"garbage", key.as_bytes(), cert.as_bytes()).is_err());
/// # Ok::<(), mnesia::Error>(())
/// ```
#[derive(Clone)]
pub struct Tls {
    pub(crate) acceptor: tokio_rustls::TlsAcceptor,
    pub(crate) connector: tokio_rustls::TlsConnector,
    name: ServerName<'static>,
    parts: Arc<Parts>,
}

/// What a node's TLS is made of.
struct Parts {
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    roots: Arc<RootCertStore>,
}

fn invalid(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("TLS: {what}: {e}"))
}

impl Tls {
    /// From PEM: this node's certificate chain (its certificate first), its private key,
    /// and the certificates of the CA (one or more) that sign every node's certificate.
    /// The certificates must name `mnesia` (a DNS name), unless [`Tls::with_name`] says
    /// otherwise.
    ///
    /// ```
    /// let ca = rcgen::generate_simple_self_signed(vec!["mnesia".into()]).expect("a certificate");
    /// let pem = ca.cert.pem();
    /// mnesia_cluster::Tls::from_pem(pem.as_bytes(), ca.key_pair.serialize_pem().as_bytes(), pem.as_bytes())?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn from_pem(cert_chain: &[u8], key: &[u8], ca: &[u8]) -> Result<Tls> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_chain)
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| invalid("the certificate chain", e))?;
        if certs.is_empty() {
            return Err(invalid("the certificate chain", "no certificate in it"));
        }
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| invalid("the private key", e))?;
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca) {
            roots.add(cert.map_err(|e| invalid("the CA", e))?).map_err(|e| invalid("the CA", e))?;
        }
        if roots.is_empty() {
            return Err(invalid("the CA", "no certificate in it"));
        }
        let name = ServerName::try_from("mnesia").map_err(|e| invalid("the name", e))?;
        Tls::build(Arc::new(Parts { certs, key, roots: Arc::new(roots) }), name)
    }

    /// The configurations of both sides, for certificates naming `name`.
    fn build(parts: Arc<Parts>, name: ServerName<'static>) -> Result<Tls> {
        // ring: it builds with a C compiler alone (aws-lc-rs, with the post-quantum key
        // exchange rustls now prefers, needs more of the build machine).
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::clone(&parts.roots),
            Arc::clone(&provider),
        )
        .build()
        .map_err(|e| invalid("the CA", e))?;
        let clients = Arc::new(NamedClients { chain, name: name.clone() });
        let server = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid("the protocol versions", e))?
            .with_client_cert_verifier(clients)
            .with_single_cert(parts.certs.clone(), parts.key.clone_key())
            .map_err(|e| invalid("the certificate and key", e))?;
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid("the protocol versions", e))?
            .with_root_certificates(Arc::clone(&parts.roots))
            .with_client_auth_cert(parts.certs.clone(), parts.key.clone_key())
            .map_err(|e| invalid("the certificate and key", e))?;
        Ok(Tls {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
            connector: tokio_rustls::TlsConnector::from(Arc::new(client)),
            name,
            parts,
        })
    }

    /// [`Tls::from_pem`] from three files (each PEM).
    ///
    /// ```no_run
    /// let tls = mnesia_cluster::Tls::from_pem_files("node.pem", "node.key", "ca.pem")?;
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn from_pem_files(
        cert_chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
        ca: impl AsRef<Path>,
    ) -> Result<Tls> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })
        };
        Tls::from_pem(&read(cert_chain.as_ref())?, &read(key.as_ref())?, &read(ca.as_ref())?)
    }

    /// The DNS name every node's certificate carries, checked on each connection (`mnesia`
    /// unless told).
    ///
    /// ```
    /// # let ca = rcgen::generate_simple_self_signed(vec!["db.internal".into()]).expect("a certificate");
    /// # let (cert, key) = (ca.cert.pem(), ca.key_pair.serialize_pem());
    /// let tls = mnesia_cluster::Tls::from_pem(cert.as_bytes(), key.as_bytes(), cert.as_bytes())?
    ///     .with_name("db.internal")?;
    /// assert_eq!(tls.name(), "db.internal");
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn with_name(self, name: &str) -> Result<Tls> {
        let name = ServerName::try_from(name.to_owned()).map_err(|e| invalid("the name", e))?;
        Tls::build(self.parts, name)
    }

    /// The name the nodes' certificates must carry.
    ///
    /// ```
    /// # let ca = rcgen::generate_simple_self_signed(vec!["mnesia".into()]).expect("a certificate");
    /// # let (cert, key) = (ca.cert.pem(), ca.key_pair.serialize_pem());
    /// # let tls = mnesia_cluster::Tls::from_pem(cert.as_bytes(), key.as_bytes(), cert.as_bytes())?;
    /// assert_eq!(tls.name(), "mnesia");
    /// # Ok::<(), mnesia::Error>(())
    /// ```
    pub fn name(&self) -> String {
        self.name.to_str().into_owned()
    }

    pub(crate) fn server_name(&self) -> ServerName<'static> {
        self.name.clone()
    }

    /// `Err` unless this node's own certificate names the cluster (the others would refuse
    /// each of its connections, which it would learn only from their logs).
    pub(crate) fn names_the_cluster(&self) -> Result<()> {
        let own = self.parts.certs.first().ok_or_else(|| invalid("the certificate", "none given"))?;
        let cert = webpki::EndEntityCert::try_from(own).map_err(|e| invalid("the certificate", e))?;
        cert.verify_is_valid_for_subject_name(&self.name).map_err(|_| {
            Error::Invalid(format!(
                "TLS: this node's certificate does not name the cluster ({}): every node's must, or the others refuse it",
                self.name()
            ))
        })
    }
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("name", &self.name()).finish_non_exhaustive()
    }
}

/// Checks a dialing node's certificate: its chain to the CA (rustls' verifier), then that
/// it names the cluster.
#[derive(Debug)]
struct NamedClients {
    chain: Arc<dyn ClientCertVerifier>,
    name: ServerName<'static>,
}

impl ClientCertVerifier for NamedClients {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.chain.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> std::result::Result<ClientCertVerified, rustls::Error> {
        let verified = self.chain.verify_client_cert(end_entity, intermediates, now)?;
        let cert = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding))?;
        cert.verify_is_valid_for_subject_name(&self.name)
            .map_err(|_| rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.chain.supported_verify_schemes()
    }
}
