//! HMAC-SHA256 under keys derived from the server key, one per purpose, so that no derived key is ever
//! the key that seals secrets.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

#[derive(Clone)]
pub struct Keyed {
    key: Zeroizing<[u8; 32]>,
}

impl Keyed {
    /// The key for `purpose` (e.g. `latchkey/backup-codes/v1`): HMAC(server key, purpose).
    pub fn derive(server_key: &[u8; 32], purpose: &str) -> Self {
        Self { key: Zeroizing::new(hmac(server_key, &[purpose.as_bytes()])) }
    }

    /// HMAC of the concatenated parts, each preceded by its length so that parts cannot shift into one another.
    pub fn tag(&self, parts: &[&[u8]]) -> [u8; 32] {
        let framed: Vec<Vec<u8>> =
            parts.iter().map(|p| [(p.len() as u64).to_be_bytes().as_slice(), p].concat()).collect();
        let refs: Vec<&[u8]> = framed.iter().map(Vec::as_slice).collect();
        hmac(self.key.as_slice(), &refs)
    }
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purposes_and_framing_separate_tags() {
        let a = Keyed::derive(&[1; 32], "a");
        let b = Keyed::derive(&[1; 32], "b");
        assert_ne!(a.tag(&[b"x"]), b.tag(&[b"x"]));
        assert_ne!(a.tag(&[b"ab", b"c"]), a.tag(&[b"a", b"bc"]));
        assert_eq!(a.tag(&[b"x"]), Keyed::derive(&[1; 32], "a").tag(&[b"x"]));
    }

    /// RFC 4231 test case 2, through the unframed helper.
    #[test]
    fn hmac_sha256_vector() {
        let tag = hmac(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(hex::encode(tag), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }
}
