//! Answers that were costly to reach and stay good for a while, kept in memory: access tokens that passed
//! verification (the Ed25519 check is most of an authenticated request's CPU time), user views
//! (`user_views`), and who a forward-auth session is.
//!
//! Only answers that came out valid are stored, so the maps cannot be filled by forged tokens or cookies;
//! they are still bounded. Revocation is not cached: callers check the revocation set on every hit.

use std::{borrow::Borrow, collections::HashMap, hash::Hash, sync::RwLock};

use crate::domain::tokens::{AccessClaims, LEEWAY_SECONDS};

const MAX_ENTRIES: usize = 100_000;

/// A bounded map whose entries each say until when they may be used (in the caller's clock unit).
pub struct Expiring<K, V> {
    entries: RwLock<HashMap<K, (i64, V)>>,
}

impl<K, V> Default for Expiring<K, V> {
    fn default() -> Self {
        Self { entries: RwLock::default() }
    }
}

impl<K: Eq + Hash, V: Clone> Expiring<K, V> {
    pub fn get<Q: Eq + Hash + ?Sized>(&self, key: &Q, now: i64) -> Option<V>
    where
        K: Borrow<Q>,
    {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        entries.get(key).filter(|(until, _)| now <= *until).map(|(_, value)| value.clone())
    }

    pub fn insert(&self, key: K, value: V, until: i64, now: i64) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, (until, _)| now <= *until);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, (until, value));
    }

    pub fn clear(&self) {
        self.entries.write().unwrap_or_else(|p| p.into_inner()).clear();
    }

    pub fn remove_all<'k>(&self, keys: impl IntoIterator<Item = &'k K>)
    where
        K: 'k,
    {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        for key in keys {
            entries.remove(key);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.read().unwrap().len()
    }
}

/// Verified access tokens by their whole text: the same bytes always verify the same way, so only the
/// time check is redone on a hit (Unix seconds).
#[derive(Default)]
pub struct VerifiedTokens(Expiring<Box<str>, AccessClaims>);

impl VerifiedTokens {
    /// The claims of `token` if it verified before and has not expired since.
    pub fn get(&self, token: &str, now: i64) -> Option<AccessClaims> {
        self.0.get(token, now)
    }

    pub fn insert(&self, token: &str, claims: &AccessClaims, now: i64) {
        self.0.insert(token.into(), claims.clone(), claims.exp + LEEWAY_SECONDS as i64, now);
    }

    pub fn clear(&self) {
        self.0.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::roles::Role;

    fn claims(exp: i64) -> AccessClaims {
        AccessClaims {
            iss: "i".into(),
            sub: uuid::Uuid::nil(),
            aud: "a".into(),
            exp,
            iat: 0,
            jti: uuid::Uuid::nil(),
            sid: uuid::Uuid::nil(),
            role: Role::Viewer,
            mfa: false,
            amr: vec![],
            orgs: vec![],
        }
    }

    #[test]
    fn hits_until_expiry_then_misses() {
        let cache = VerifiedTokens::default();
        cache.insert("t", &claims(100), 50);
        assert!(cache.get("t", 100).is_some());
        assert!(cache.get("t", 100 + LEEWAY_SECONDS as i64 + 1).is_none());
        assert!(cache.get("other", 50).is_none());
    }

    #[test]
    fn stays_bounded() {
        let cache: Expiring<String, ()> = Expiring::default();
        for i in 0..MAX_ENTRIES + 10 {
            cache.insert(i.to_string(), (), 10, 0);
        }
        assert!(cache.len() <= MAX_ENTRIES);
    }

    #[test]
    fn when_full_drops_expired_entries_first() {
        let cache: Expiring<String, ()> = Expiring::default();
        cache.insert("keeps".into(), (), 1_000, 0);
        for i in 1..MAX_ENTRIES {
            cache.insert(i.to_string(), (), 10, 0);
        }
        cache.insert("late".into(), (), 1_000, 500);
        assert_eq!(cache.len(), 2);
        assert!(cache.get("keeps", 500).is_some() && cache.get("late", 500).is_some());
    }
}
