//! The one place HTTP clients are built: rustls with the ring crypto provider.
//!
//! reqwest is compiled with `rustls-no-provider`, so a process-wide rustls provider must be
//! installed before the first client is built; every HTTP user goes through here so that
//! happens exactly once, whoever comes first.

use std::sync::Once;

/// A reqwest client builder with the crypto provider installed; add timeouts and policies to it.
pub fn http_client_builder() -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder()
}

/// A reqwest client with default settings (redirects followed, no overall timeout).
pub fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    http_client_builder().build()
}

fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Err means another provider is already the process default: that one is used.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_twice_without_panicking() {
        assert!(http_client().is_ok());
        assert!(http_client().is_ok());
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }
}
