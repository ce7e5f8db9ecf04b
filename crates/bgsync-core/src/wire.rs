//! Names and types shared on the wire between the browser runtime and the
//! server.

/// The request header that makes a replayed request exactly-once on the
/// server (IETF httpapi Idempotency-Key draft).
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// Marks a request as a replay by bgsync itself (sent on same-origin
/// requests only), so that a service worker's auto-capture lets it through:
/// a replay that fails must fail, not be queued a second time.
pub const REPLAY_HEADER: &str = "Bgsync-Replay";

/// The browser's client id (a UUID bgsync makes once per browser profile),
/// sent with every same-origin replay. Servers scope idempotency keys by it,
/// so a key learnt by someone else cannot be claimed for another client.
pub const CLIENT_HEADER: &str = "Bgsync-Client";

/// Longest idempotency key a server must accept (and the longest we make).
pub const IDEMPOTENCY_KEY_MAX_LEN: usize = 255;

/// Whether `key` is acceptable as an idempotency key: 1 to 255 printable
/// ASCII characters. Checked on both sides so that a key the browser made is
/// never refused by the server.
pub fn is_valid_idempotency_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= IDEMPOTENCY_KEY_MAX_LEN && key.bytes().all(|b| b.is_ascii_graphic())
}

/// Where a server says what it offers background-sync clients.
pub const WELL_KNOWN_PATH: &str = "/.well-known/bgsync";

/// The document at [`WELL_KNOWN_PATH`]. A client that finds no batch
/// endpoint there sends one request per entry.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Advertisement {
    pub batch: Option<BatchEndpoint>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct BatchEndpoint {
    pub url: String,
    pub max_entries: usize,
    pub max_bytes: usize,
    /// Entries must target paths under this prefix (such as `/api/`); an
    /// entry elsewhere is sent on its own. Empty: any path of the origin.
    #[cfg_attr(feature = "serde", serde(default))]
    pub prefix: String,
}

/// A batch replay request: entries the server runs one by one, each as if
/// it had arrived alone with its own `Idempotency-Key`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct BatchRequest {
    /// Stop at the first entry that does not succeed and report the rest as
    /// not attempted, so an ordered queue stays in order.
    pub ordered: bool,
    pub entries: Vec<BatchEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct BatchEntry {
    pub key: String,
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// The `Prefer` preference (RFC 7240) a client sends with a batch when it
/// keeps nothing of a successful entry's answer but its status: the server
/// then leaves out the bodies of entries answered 2xx (about half of a
/// batch's answer when every entry succeeds), keeps those of the others,
/// and says so with `Preference-Applied: return=minimal`. bgsync's worker
/// always sends it.
pub const RETURN_MINIMAL: &str = "return=minimal";

/// Whether the `Prefer` header values `values` hold `return=minimal`
/// (names and values compared without case, the value bare or quoted,
/// space around `=`, other preferences and parameters ignored).
pub fn prefers_minimal<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> bool {
    values.into_iter().flat_map(|value| value.split(|b| *b == b',')).any(|preference| {
        let preference = preference.split(|b| *b == b';').next().unwrap_or_default();
        let mut parts = preference.splitn(2, |b| *b == b'=');
        let (name, value) =
            (parts.next().unwrap_or_default().trim_ascii(), parts.next().unwrap_or_default().trim_ascii());
        let value = value.strip_prefix(b"\"").and_then(|v| v.strip_suffix(b"\"")).unwrap_or(value);
        name.eq_ignore_ascii_case(b"return") && value.eq_ignore_ascii_case(b"minimal")
    })
}

/// The header of a batch's answer that says how many of its entries were
/// answered 2xx (once the batch's transaction is committed; 0 when it was
/// rolled back). A client that finds the number of entries it sent knows
/// that every one of them succeeded without reading the answer's body:
/// bgsync's worker then sends its next batch at once, and reads that body
/// only to leave the connection free. (Across origins a page's script sees
/// the header only where the server's CORS exposes it; without it, the
/// body is read.)
pub const BATCH_SUCCEEDED_HEADER: &str = "Bgsync-Batch-Succeeded";

/// The answer to a [`BatchRequest`], one result per entry, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct BatchResponse {
    pub results: Vec<BatchResult>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct BatchResult {
    pub key: String,
    /// `None`: not attempted (after a failure in an ordered batch).
    pub status: Option<u16>,
    pub retry_after: Option<String>,
    pub body: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_minimal_is_found_among_preferences() {
        let yes: [&[&str]; 5] = [
            &["return=minimal"],
            &["respond-async, RETURN = \"Minimal\""],
            &["wait=10", "return=minimal; x=1"],
            &["a,return=minimal"],
            &[" return=minimal "],
        ];
        for values in yes {
            assert!(prefers_minimal(values.iter().map(|v| v.as_bytes())), "{values:?}");
        }
        let no: [&[&str]; 5] = [&[], &["return=representation"], &["returns=minimal"], &["return"], &["minimal"]];
        for values in no {
            assert!(!prefers_minimal(values.iter().map(|v| v.as_bytes())), "{values:?}");
        }
    }

    #[test]
    fn keys_are_printable_ascii_and_bounded() {
        assert!(is_valid_idempotency_key("3f1c2a9e-0d7b-4e55-9a51-2f3c4d5e6f70"));
        assert!(!is_valid_idempotency_key(""));
        assert!(!is_valid_idempotency_key("has space"));
        assert!(!is_valid_idempotency_key("tab\there"));
        assert!(!is_valid_idempotency_key("ünïcode"));
        assert!(is_valid_idempotency_key(&"k".repeat(255)));
        assert!(!is_valid_idempotency_key(&"k".repeat(256)));
    }
}
