//! Standard Webhooks signatures (<https://www.standardwebhooks.com/>): a secret is `whsec_`
//! plus the base64 of random bytes; a message is signed as
//! `v1,base64(HMAC-SHA256(secret bytes, "{webhook-id}.{webhook-timestamp}.{body}"))`, and during
//! a secret rotation one signature per valid secret is sent, separated by spaces, so receivers
//! that still hold the old secret keep verifying.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

const PREFIX: &str = "whsec_";
/// 32 bytes: the HMAC-SHA256 block-size guidance and what common providers issue.
const SECRET_BYTES: usize = 32;

/// A new random signing secret.
pub fn new_secret() -> String {
    let mut bytes = [0u8; SECRET_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{PREFIX}{}", STANDARD.encode(bytes))
}

/// The key bytes of a secret (stored secrets are always ones this module made).
fn key_bytes(secret: &str) -> Vec<u8> {
    STANDARD.decode(secret.strip_prefix(PREFIX).unwrap_or(secret)).unwrap_or_else(|_| secret.as_bytes().to_vec())
}

/// One `v1,<base64>` signature of a message.
pub fn sign(secret: &str, message_id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(&key_bytes(secret)).expect("HMAC takes keys of any length");
    mac.update(message_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The `webhook-signature` header value: one signature per secret, space-separated.
pub fn signature_header(secrets: &[&str], message_id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets.iter().map(|s| sign(s, message_id, timestamp, body)).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_specification_example() {
        // The example of the Standard Webhooks reference libraries.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn secrets_are_random_and_prefixed() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        assert!(a.starts_with("whsec_"));
        assert_eq!(STANDARD.decode(&a[6..]).unwrap().len(), 32);
    }

    #[test]
    fn rotation_sends_both_signatures() {
        let header = signature_header(&["whsec_AAAA", "whsec_BBBB"], "msg_1", 1, b"{}");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.starts_with("v1,")));
        assert_ne!(parts[0], parts[1]);
    }
}
