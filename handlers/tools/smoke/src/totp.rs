//! The smoke run's authenticator app: RFC 6238 TOTP (SHA-1, 6 digits, 30 s) over the base32 secret an
//! enrolment shows. Written here rather than taken from keygate's core, so the deployment's codes
//! are checked against a second implementation, as a phone app would check them.

use aws_lc_rs::hmac;

/// RFC 4648 base32 (no padding, case-insensitive) to bytes; `None` for any other character.
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut bits, mut value, mut out) = (0u32, 0u64, Vec::new());
    for c in text.bytes() {
        let digit = ALPHABET.iter().position(|a| *a == c.to_ascii_uppercase())? as u64;
        value = (value << 5) | digit;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((value >> bits) as u8);
            value &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// The 6-digit code of `secret` for the 30-second step containing `unix_secs`.
pub fn code_at(secret: &[u8], unix_secs: i64) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let step = unix_secs.div_euclid(30) as u64;
    let tag = hmac::sign(&key, &step.to_be_bytes());
    let mac = tag.as_ref();
    let at = (mac[mac.len() - 1] & 0x0f) as usize;
    let value = u32::from_be_bytes([mac[at] & 0x7f, mac[at + 1], mac[at + 2], mac[at + 3]]);
    format!("{:06}", value % 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6238_appendix_b_sha1_vectors_truncated_to_six_digits() {
        // The SHA-1 seed "12345678901234567890"; Appendix B lists 8 digits, of which the last 6.
        let secret = base32_decode("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
        assert_eq!(secret, b"12345678901234567890");
        for (time, eight) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
        ] {
            assert_eq!(code_at(&secret, time), eight[2..]);
        }
        assert_eq!(base32_decode("not base32!"), None);
    }
}
