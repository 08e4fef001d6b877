//! The TLS configuration of every outbound HTTP client (webhooks, LLMs, speech, embeddings).
//!
//! reqwest's default builds a platform verifier per client, and that reads and parses the
//! system's CA roots at once: about 5 ms of start-up per client, and the parsed roots held for
//! the life of the process even by a server that never leaves loopback. One shared
//! configuration whose verifier reads the roots at the first certificate it checks costs
//! nothing until then, and reads them once for every client.

use std::fmt;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// The configuration every outbound client is built with: the process's crypto provider, TLS
/// 1.2 and 1.3, HTTP/2 and HTTP/1.1 offered by ALPN (what reqwest's own default offers), and
/// the system's roots read at the first handshake.
pub fn client_config() -> rustls::ClientConfig {
    static SHARED: OnceLock<rustls::ClientConfig> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            crate::install_crypto_provider();
            let provider = CryptoProvider::get_default()
                .cloned()
                .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
            let verifier = Arc::new(LazyPlatformVerifier::new(provider.clone()));
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                // The ring provider supports every safe default version.
                .expect("the provider supports TLS 1.2 and 1.3")
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth();
            config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            config
        })
        .clone()
}

/// The platform's verifier (the system's roots, as reqwest uses by default), made when the
/// first certificate is checked. The signature checks need no roots and use the provider's
/// algorithms directly, as the platform verifier does.
struct LazyPlatformVerifier {
    provider: Arc<CryptoProvider>,
    platform: OnceLock<Result<rustls_platform_verifier::Verifier, rustls::Error>>,
}

impl LazyPlatformVerifier {
    fn new(provider: Arc<CryptoProvider>) -> Self {
        LazyPlatformVerifier { provider, platform: OnceLock::new() }
    }

    fn platform(&self) -> Result<&rustls_platform_verifier::Verifier, rustls::Error> {
        self.platform
            .get_or_init(|| rustls_platform_verifier::Verifier::new(self.provider.clone()))
            .as_ref()
            .map_err(Clone::clone)
    }
}

impl fmt::Debug for LazyPlatformVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LazyPlatformVerifier")
            .field("roots_read", &self.platform.get().is_some())
            .finish()
    }
}

impl ServerCertVerifier for LazyPlatformVerifier {
    fn verify_server_cert(
        &self, end_entity: &CertificateDer<'_>, intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>, ocsp_response: &[u8], now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.platform()?.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
    }

    fn verify_tls12_signature(
        &self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_roots_are_read_at_the_first_certificate_checked_not_before() {
        let verifier =
            LazyPlatformVerifier::new(Arc::new(rustls::crypto::ring::default_provider()));
        assert!(!verifier.supported_verify_schemes().is_empty());
        assert!(verifier.platform.get().is_none(), "no roots read by building or negotiating");

        // A certificate that is not one: checking it reads the roots, then refuses it.
        let name = ServerName::try_from("example.com").unwrap();
        let refused = verifier.verify_server_cert(
            &CertificateDer::from(vec![0x30, 0x00]),
            &[],
            &name,
            &[],
            UnixTime::now(),
        );
        assert!(refused.is_err());
        assert!(verifier.platform.get().is_some());
    }

    #[test]
    fn every_client_shares_one_configuration_offering_h2_and_http1() {
        let config = client_config();
        assert_eq!(config.alpn_protocols, [b"h2".to_vec(), b"http/1.1".to_vec()]);
        assert!(Arc::ptr_eq(config.crypto_provider(), client_config().crypto_provider()));
    }
}
