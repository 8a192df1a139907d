//! Backup codes: 12 characters of Crockford's base32 (60 bits), shown as `XXXX-XXXX-XXXX`, accepted in any case
//! with or without spaces and dashes (and O for 0, I or L for 1). Stored as a server-keyed HMAC-SHA256, so
//! the database alone does not reveal them and a code is found by one lookup, not by trying every hash.

use super::{mac::Keyed, random};

pub const COUNT: usize = 10;
const LEN: usize = 12;
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

pub fn generate() -> Vec<String> {
    (0..COUNT)
        .map(|_| {
            // 32 symbols divide 256 evenly, so masking keeps every symbol equally likely.
            let raw: Vec<char> = random::bytes::<LEN>().iter().map(|b| ALPHABET[(b & 31) as usize] as char).collect();
            raw.chunks(4).map(|c| c.iter().collect::<String>()).collect::<Vec<_>>().join("-")
        })
        .collect()
}

/// The canonical form of what a person typed, or `None` if it cannot be a backup code.
pub fn normalize(input: &str) -> Option<String> {
    let canonical: String = input
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| match c.to_ascii_uppercase() {
            'O' => '0',
            'I' | 'L' => '1',
            other => other,
        })
        .collect();
    (canonical.len() == LEN && canonical.bytes().all(|b| ALPHABET.contains(&b))).then_some(canonical)
}

/// Keyed digest of a normalized code, hex.
#[derive(Clone)]
pub struct CodeHasher {
    key: Keyed,
}

impl CodeHasher {
    pub fn new(server_key: &[u8; 32]) -> Self {
        Self { key: Keyed::derive(server_key, "latchkey/backup-codes/v1") }
    }

    pub fn digest(&self, normalized: &str) -> String {
        hex::encode(self.key.tag(&[normalized.as_bytes()]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_distinct_well_formed_codes() {
        let codes = generate();
        assert_eq!(codes.len(), 10);
        let unique: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(unique.len(), 10);
        for code in &codes {
            assert_eq!(code.len(), 14);
            assert_eq!(normalize(code).unwrap().len(), 12);
        }
    }

    #[test]
    fn formatting_is_ignored() {
        let expected = Some("ABCD0123EFGH".to_string());
        assert_eq!(normalize("abcd-0123-efgh"), expected);
        assert_eq!(normalize(" ABCD 0123 EFGH "), expected);
        assert_eq!(normalize("abcdO123efgh"), expected, "O reads as 0");
        assert_eq!(normalize("ABCD-01I3-EFGH").as_deref(), Some("ABCD0113EFGH"));
        assert_eq!(normalize("ABCD-0123-EFG"), None);
        assert_eq!(normalize("ABCD-0123-EFGU"), None, "U is not in the alphabet");
        assert_eq!(normalize("123456"), None);
    }

    #[test]
    fn digests_depend_on_the_server_key() {
        let a = CodeHasher::new(&[1; 32]);
        let b = CodeHasher::new(&[2; 32]);
        assert_eq!(a.digest("ABCD0123EFGH"), a.digest("ABCD0123EFGH"));
        assert_ne!(a.digest("ABCD0123EFGH"), b.digest("ABCD0123EFGH"));
        assert_ne!(a.digest("ABCD0123EFGH"), a.digest("ABCD0123EFGJ"));
    }
}
