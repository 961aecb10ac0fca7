//! TOTP (RFC 6238): SHA-1, six digits, 30-second steps, one step of clock skew either way. The
//! caller keeps the last accepted step so that each code is accepted once.

use hmac::{Hmac, Mac};
use sha1::Sha1;

pub const STEP_SECONDS: u64 = 30;
const DIGITS: u32 = 6;

/// A new 160-bit secret (the RFC's recommended length).
pub fn new_secret() -> Vec<u8> {
    let mut secret = vec![0u8; 20];
    getrandom::fill(&mut secret).expect("the operating system's random source failed");
    secret
}

pub fn step_at(unix_seconds: u64) -> u64 {
    unix_seconds / STEP_SECONDS
}

pub fn code(secret: &[u8], step: u64) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let binary =
        u32::from_be_bytes([digest[offset] & 0x7f, digest[offset + 1], digest[offset + 2], digest[offset + 3]]);
    format!("{:0width$}", binary % 10u32.pow(DIGITS), width = DIGITS as usize)
}

/// The step `presented` is the code of, among `now - 1 ..= now + 1` and after `last_used_step`.
pub fn matching_step(secret: &[u8], presented: &str, now: u64, last_used_step: u64) -> Option<u64> {
    let presented = presented.trim().replace(' ', "");
    if presented.len() != DIGITS as usize {
        return None;
    }
    let mut found = None;
    // Every candidate is computed and compared in constant time, so timing tells nothing.
    for step in now.saturating_sub(1)..=now + 1 {
        let matches: bool = subtle::ConstantTimeEq::ct_eq(code(secret, step).as_bytes(), presented.as_bytes()).into();
        if matches && step > last_used_step && found.is_none() {
            found = Some(step);
        }
    }
    found
}

pub fn base32(secret: &[u8]) -> String {
    data_encoding::BASE32_NOPAD.encode(secret)
}

/// The `otpauth://` URI that authenticator apps read from a QR code.
pub fn provisioning_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    let label = format!("{}:{}", encode(issuer), encode(account));
    format!(
        "otpauth://totp/{label}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
        base32(secret),
        encode(issuer)
    )
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'@' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 rows (8 digits there; the last six here).
    #[test]
    fn matches_the_rfc_6238_test_vectors() {
        let secret = b"12345678901234567890";
        for (time, expected) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
        ] {
            assert_eq!(code(secret, step_at(time)), expected, "time {time}");
        }
    }

    #[test]
    fn accepts_one_step_of_skew_and_each_code_once() {
        let secret = new_secret();
        let now = 1_000_000;
        let current = code(&secret, now);
        assert_eq!(matching_step(&secret, &current, now, 0), Some(now));
        assert_eq!(matching_step(&secret, &current, now, now), None, "a used code is refused");
        assert_eq!(matching_step(&secret, &code(&secret, now + 1), now, now), Some(now + 1));
        assert_eq!(matching_step(&secret, &code(&secret, now - 2), now, 0), None);
        assert_eq!(matching_step(&secret, "12345", now, 0), None);
    }

    #[test]
    fn provisioning_uri_escapes_the_label() {
        let uri = provisioning_uri("Gatehouse", "a b@x.example", b"12345678901234567890");
        assert!(
            uri.starts_with("otpauth://totp/Gatehouse:a%20b@x.example?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"),
            "{uri}"
        );
    }
}
