//! The server key that seals secrets at rest, and the access-token signing keys it protects.

use std::{io::Write, path::Path};

use anyhow::{Context, bail};
use zeroize::Zeroizing;

use crate::{
    clock,
    config::{Config, JwtSigning, SecretKeySource, parse_secret_key},
    domain::{
        random,
        seal::Sealer,
        tokens::{Ed25519Key, KeyRing},
    },
    store::{Db, keys},
};

/// The 32-byte sealing key: from `LATCHKEY_SECRET_KEY`, or from the key file, which is created (mode 0600)
/// on first start. Two instances creating it at once both end up reading the one that was written first.
pub fn load_secret_key(source: &SecretKeySource) -> anyhow::Result<Zeroizing<[u8; 32]>> {
    match source {
        SecretKeySource::Inline(key) => Ok(key.clone()),
        SecretKeySource::File(path) => match read_key_file(path) {
            Ok(key) => Ok(key),
            Err(e)
                if e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound) =>
            {
                create_key_file(path)
            }
            Err(e) => Err(e),
        },
    }
}

fn read_key_file(path: &Path) -> anyhow::Result<Zeroizing<[u8; 32]>> {
    let text = Zeroizing::new(std::fs::read_to_string(path)?);
    parse_secret_key(&text).with_context(|| format!("{} does not hold a valid key", path.display()))
}

fn create_key_file(path: &Path) -> anyhow::Result<Zeroizing<[u8; 32]>> {
    let key = Zeroizing::new(random::bytes::<32>());
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            let text = Zeroizing::new(hex::encode(key.as_slice()));
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            tracing::info!(path = %path.display(), "created a new server key file; back it up with the database");
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // Another instance won the race; give it a moment to finish writing.
            std::thread::sleep(std::time::Duration::from_millis(100));
            read_key_file(path)
        }
        Err(e) => Err(e).with_context(|| format!("cannot create the key file {}", path.display())),
    }
}

/// Builds the key ring: HS256 from configuration, or the database's Ed25519 key, created on first start.
pub async fn load_key_ring(config: &Config, db: &Db, sealer: &Sealer) -> anyhow::Result<KeyRing> {
    if let JwtSigning::Hs256(secret) = &config.jwt_signing {
        return Ok(KeyRing::hs256(secret, &config.issuer, &config.audience));
    }
    if keys::current(db.pool()).await?.is_none() {
        let fresh = Ed25519Key::generate();
        let stored = keys::StoredKey {
            public_x: fresh.public_x(),
            sealed_private: sealer.seal(fresh.seed.as_slice(), &purpose(&fresh.kid)),
            kid: fresh.kid,
        };
        let mut tx = db.begin().await?;
        keys::insert_current_if_absent(&mut tx, &stored, "EdDSA", clock::now_ms()).await?;
        tx.commit().await?;
    }
    let Some(stored) = keys::current(db.pool()).await? else { bail!("the signing key vanished after it was created") };
    let seed = sealer.open(&stored.sealed_private, &purpose(&stored.kid)).map_err(|_| {
        anyhow::anyhow!(
            "the server key does not open the signing key in this database: \
             start with the LATCHKEY_SECRET_KEY or key file this database was created with"
        )
    })?;
    let seed: Zeroizing<[u8; 32]> =
        Zeroizing::new(seed.as_slice().try_into().context("the stored signing key has the wrong length")?);
    Ok(KeyRing::eddsa(&Ed25519Key::from_seed(seed), &config.issuer, &config.audience))
}

fn purpose(kid: &str) -> String {
    format!("signing-key:{kid}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latchkey.key");
        let source = SecretKeySource::File(path.clone());
        let first = load_secret_key(&source).unwrap();
        let second = load_secret_key(&source).unwrap();
        assert_eq!(first, second);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }

    #[test]
    fn a_corrupt_key_file_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latchkey.key");
        std::fs::write(&path, "not hex").unwrap();
        assert!(load_secret_key(&SecretKeySource::File(path)).is_err());
    }
}
