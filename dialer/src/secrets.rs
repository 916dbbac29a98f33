//! The phones' digest nonce secrets from a file, which the engine reads at start and again at every
//! reload, so that a rotation needs no restart and drops no registration (see
//! `sip::auth::NonceKeys` for the rotation itself and the file's format).

use std::path::{Path, PathBuf};

use sip::auth::{KeyError, NonceKeys};

/// Why the secrets could not be had. Neither variant holds a secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("reading the nonce secret file {path}: {error}")]
    Read { path: PathBuf, error: std::io::Error },
    #[error("the nonce secret file {path}: {error}")]
    Invalid { path: PathBuf, error: KeyError },
}

/// The secrets in `path`: one a line, the current one first.
pub async fn load_nonce_keys(path: &Path) -> Result<NonceKeys, SecretError> {
    let text =
        tokio::fs::read_to_string(path).await.map_err(|error| SecretError::Read { path: path.to_path_buf(), error })?;
    NonceKeys::parse(&text).map_err(|error| SecretError::Invalid { path: path.to_path_buf(), error })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_file_is_read_again_and_never_printed() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("sip-nonce-keys");
        std::fs::write(&path, "first-secret-0123456789\n").expect("write");
        let one = load_nonce_keys(&path).await.expect("one key");
        std::fs::write(&path, "second-secret-987654321\nfirst-secret-0123456789\n").expect("rotate");
        let two = load_nonce_keys(&path).await.expect("two keys");
        assert_eq!((one.len(), two.len()), (1, 2));
        // No configuration holding a secret shows it.
        let mut engine = crate::engine::EngineConfig::new("127.0.0.1:5060".parse().expect("addr"));
        engine.phones.nonce_keys = one;
        engine.carrier_credentials =
            Some(sip::auth::Credentials { username: "trunk".into(), password: "carrier-secret-0123".into() });
        let mut shard = crate::calls::Config::new("127.0.0.1:5060".parse().expect("addr"), engine.carrier);
        shard.phones = crate::calls::PhoneSettings::new(two);
        let shown = format!("{engine:?} {shard:?}");
        assert!(!shown.contains("secret-0123") && shown.contains("redacted"), "{shown}");
        std::fs::write(&path, "short\n").expect("write");
        assert!(matches!(load_nonce_keys(&path).await, Err(SecretError::Invalid { .. })));
        assert!(matches!(load_nonce_keys(&dir.path().join("none")).await, Err(SecretError::Read { .. })));
    }
}
