//! Names shared on the wire between the browser runtime and the server.

/// The request header that makes a replayed request exactly-once on the
/// server (IETF httpapi Idempotency-Key draft).
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// Longest idempotency key a server must accept (and the longest we make).
pub const IDEMPOTENCY_KEY_MAX_LEN: usize = 255;

/// Whether `key` is acceptable as an idempotency key: 1 to 255 printable
/// ASCII characters. Checked on both sides so that a key the browser made is
/// never refused by the server.
pub fn is_valid_idempotency_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= IDEMPOTENCY_KEY_MAX_LEN
        && key.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_printable_ascii_and_bounded() {
        assert!(is_valid_idempotency_key(
            "3f1c2a9e-0d7b-4e55-9a51-2f3c4d5e6f70"
        ));
        assert!(!is_valid_idempotency_key(""));
        assert!(!is_valid_idempotency_key("has space"));
        assert!(!is_valid_idempotency_key("tab\there"));
        assert!(!is_valid_idempotency_key("ünïcode"));
        assert!(is_valid_idempotency_key(&"k".repeat(255)));
        assert!(!is_valid_idempotency_key(&"k".repeat(256)));
    }
}
