//! The server key that seals secrets at rest, and the access-token signing keys it protects.

use std::{io::Write, path::Path, sync::Arc, time::Duration};

use anyhow::{Context, bail};
use zeroize::Zeroizing;

use super::Services;
use crate::{
    clock,
    config::{Config, JwtSigning, SecretKeySource, parse_secret_key},
    domain::{
        random,
        seal::Sealer,
        signing::{self, SigningKey},
        tokens::{HS256_KID, KeyRing},
    },
    error::{Error, Result},
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

/// How long a retired key stays published and accepted: past the life of the last token it signed.
fn retired_keys_kept(config: &Config) -> std::time::Duration {
    config.access_ttl + std::time::Duration::from_secs(300)
}

/// Builds the key ring from the database's keys, creating the missing ones on first start (and the RSA
/// and P-256 keys on the first start of a database that had only Ed25519). HS256 from configuration
/// signs the API's access tokens instead of the Ed25519 key.
pub async fn load_key_ring(config: &Config, db: &Db, sealer: &Sealer) -> anyhow::Result<KeyRing> {
    let now = clock::now_ms();
    let kept_since = now - retired_keys_kept(config).as_millis() as i64;
    let present = keys::usable(db.pool(), kept_since).await?;
    let missing: Vec<_> = signing::ALGORITHMS
        .into_iter()
        .filter(|alg| !present.iter().any(|k| k.current && k.alg == signing::alg_name(*alg)))
        .collect();
    if !missing.is_empty() {
        let mut tx = db.begin().await?;
        for alg in missing {
            keys::insert_current_if_absent(&mut tx, &stored(&SigningKey::generate(alg)?, sealer), now).await?;
        }
        tx.commit().await?;
    }
    ring_of(config, keys::usable(db.pool(), kept_since).await?, sealer)
}

fn ring_of(config: &Config, stored: Vec<keys::StoredKey>, sealer: &Sealer) -> anyhow::Result<KeyRing> {
    let (mut current, mut retired) = (vec![], vec![]);
    for stored in stored {
        let key = open(&stored, sealer)?;
        if stored.current { current.push(key) } else { retired.push(key) }
    }
    let hs256 = match &config.jwt_signing {
        JwtSigning::Hs256(secret) => Some(secret.as_slice()),
        JwtSigning::EdDsa => None,
    };
    Ok(KeyRing::new(current, retired, hs256, &config.issuer, &config.audience)?)
}

impl Services {
    /// Picks up what `latchkey keys rotate` (another process) wrote, and lets retired keys go once every token
    /// they signed has expired: the ring is rebuilt when the set of usable keys changed. True when it was.
    pub async fn reload_keys(&self) -> Result<bool> {
        let kept_since = clock::now_ms() - retired_keys_kept(&self.config).as_millis() as i64;
        let stored = keys::usable(self.db.pool(), kept_since).await?;
        let mut kids: Vec<&str> = stored.iter().map(|k| k.kid.as_str()).collect();
        if matches!(self.config.jwt_signing, JwtSigning::Hs256(_)) {
            kids.push(HS256_KID);
        }
        kids.sort_unstable();
        if kids == self.keys.load().kids() {
            return Ok(false);
        }
        let ring = ring_of(&self.config, stored, &self.sealer).map_err(Error::Internal)?;
        self.keys.store(Arc::new(ring));
        // A token remembered as verified may be signed by a key that just left the ring.
        self.verified_tokens.clear();
        self.verified_oauth_tokens.clear();
        tracing::info!(keys = ?self.keys.load().kids(), "signing keys reloaded");
        Ok(true)
    }

    pub fn spawn_key_reload(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let this = Arc::clone(self);
        super::spawn_periodic(every, "reloading signing keys", move || {
            let this = this.clone();
            async move { this.reload_keys().await.map(|_| ()) }
        })
    }
}

/// `latchkey keys rotate`: a new key of every algorithm becomes current; the old ones stay published and
/// accepted until the tokens they signed have expired. Running instances pick the new keys up within
/// `key_reload` ([`Services::reload_keys`]).
pub async fn rotate(db: &Db, sealer: &Sealer) -> anyhow::Result<Vec<String>> {
    let fresh = signing::ALGORITHMS.into_iter().map(SigningKey::generate).collect::<Result<Vec<_>, _>>()?;
    let now = clock::now_ms();
    let mut tx = db.begin().await?;
    keys::retire_current(&mut tx, now).await?;
    for key in &fresh {
        keys::insert_current_if_absent(&mut tx, &stored(key, sealer), now).await?;
    }
    tx.commit().await?;
    Ok(fresh.into_iter().map(|key| key.kid).collect())
}

fn stored(key: &SigningKey, sealer: &Sealer) -> keys::StoredKey {
    let public = match key.public_jwk()["x"].as_str() {
        Some(x) if key.alg == jsonwebtoken::Algorithm::EdDSA => x.to_string(),
        _ => key.public_jwk().to_string(),
    };
    keys::StoredKey {
        kid: key.kid.clone(),
        alg: signing::alg_name(key.alg).into(),
        public,
        sealed_private: sealer.seal(&key.private_bytes(), &purpose(&key.kid)),
        current: true,
    }
}

fn open(stored: &keys::StoredKey, sealer: &Sealer) -> anyhow::Result<SigningKey> {
    let private = sealer.open(&stored.sealed_private, &purpose(&stored.kid)).map_err(|_| {
        anyhow::anyhow!(
            "the server key does not open the signing keys in this database: \
             start with the LATCHKEY_SECRET_KEY or key file this database was created with"
        )
    })?;
    let Some(alg) = signing::parse_alg(&stored.alg) else {
        bail!("signing key {} has an unknown algorithm", stored.kid)
    };
    let key = SigningKey::from_private(alg, &private)?;
    if key.kid != stored.kid {
        bail!("signing key {} does not match its stored id", stored.kid);
    }
    Ok(key)
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
