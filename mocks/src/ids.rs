//! Identifiers in the formats the real APIs use.

use rand::distributions::Alphanumeric;
use rand::Rng as _;

/// `prefix` followed by `len` random alphanumeric characters (`cus_Nf3...`).
pub(crate) fn alnum_id(prefix: &str, len: usize) -> String {
    let mut id = String::with_capacity(prefix.len() + len);
    id.push_str(prefix);
    id.extend(
        rand::thread_rng()
            .sample_iter(&Alphanumeric)
            .take(len)
            .map(char::from),
    );
    id
}

/// `prefix` followed by `len` random lower-case hex digits.
pub(crate) fn hex_id(prefix: &str, len: usize) -> String {
    const HEX: &[u8] = b"0123456789abcdef";
    let mut rng = rand::thread_rng();
    let mut id = String::with_capacity(prefix.len() + len);
    id.push_str(prefix);
    id.extend((0..len).map(|_| char::from(HEX[rng.gen_range(0..16)])));
    id
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}
