//! API key format: `db_sk_` + 40 base62 characters from the OS random number generator
//! (about 238 bits). The database keeps a SHA-256 hash and a short prefix for display; a
//! plain fast hash is enough because the keys themselves are long random strings, not
//! passwords a person chose.

use rand::rngs::OsRng;
use rand::Rng;
use sha2::{Digest, Sha256};

pub const KEY_PREFIX: &str = "db_sk_";
const RANDOM_CHARS: usize = 40;
/// `db_sk_` plus this many random characters are shown by `keys list`.
const DISPLAY_CHARS: usize = 8;
const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A freshly generated key; `plain` is shown once and never stored.
pub struct GeneratedKey {
    pub plain: String,
    pub prefix: String,
    pub hash: String,
}

pub fn generate() -> GeneratedKey {
    let mut rng = OsRng;
    let random: String = (0..RANDOM_CHARS).map(|_| BASE62[rng.gen_range(0..BASE62.len())] as char).collect();
    let plain = format!("{KEY_PREFIX}{random}");
    GeneratedKey { prefix: display_prefix(&plain), hash: hash(&plain), plain }
}

pub fn hash(plain: &str) -> String {
    hex::encode(Sha256::digest(plain.as_bytes()))
}

pub fn display_prefix(plain: &str) -> String {
    plain.chars().take(KEY_PREFIX.len() + DISPLAY_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_documented_shape_and_differ() {
        let a = generate();
        let b = generate();
        assert!(a.plain.starts_with(KEY_PREFIX));
        assert_eq!(a.plain.len(), KEY_PREFIX.len() + RANDOM_CHARS);
        assert!(a.plain[KEY_PREFIX.len()..].chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a.plain, b.plain);
        assert_eq!(a.hash, hash(&a.plain));
        assert!(a.plain.starts_with(&a.prefix));
        assert_eq!(a.prefix.len(), 14);
    }
}
