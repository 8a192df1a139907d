//! RFC 6238 TOTP as authenticator apps implement it (SHA-1, 6 digits, 30 s), with the replay rule: a code
//! is accepted only for a time step later than the last one accepted for that user. Also the otpauth URI
//! and its QR code as a PNG.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, TOTP};
use zeroize::Zeroizing;

use super::random;

pub const DIGITS: usize = 6;
pub const PERIOD: u64 = 30;
/// RFC 4226 R6 recommends 160 bits.
pub const SECRET_BYTES: usize = 20;
/// Steps either side of now that are accepted (RFC 6238 §5.2: at most one for network delay).
const SKEW_STEPS: i64 = 1;

pub fn generate_secret() -> Zeroizing<Vec<u8>> {
    Zeroizing::new(random::bytes::<SECRET_BYTES>().to_vec())
}

fn totp(secret: &[u8], digits: usize) -> Option<TOTP> {
    TOTP::new(Algorithm::SHA1, digits, 0, PERIOD, secret.to_vec()).ok()
}

/// The code for time step `step` (Unix time ÷ 30).
pub fn code_at_step(secret: &[u8], step: i64) -> Option<String> {
    let step = u64::try_from(step).ok()?;
    Some(totp(secret, DIGITS)?.generate(step.checked_mul(PERIOD)?))
}

pub fn step_at(unix_seconds: i64) -> i64 {
    unix_seconds.div_euclid(PERIOD as i64)
}

/// The time step `code` belongs to, among now ± one step, if that step is later than `last_used_step`.
/// Every candidate is compared, in constant time, whatever matched earlier.
pub fn matching_step(secret: &[u8], code: &str, unix_seconds: i64, last_used_step: i64) -> Option<i64> {
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = step_at(unix_seconds);
    let mut found = None;
    for step in (now - SKEW_STEPS)..=(now + SKEW_STEPS) {
        let expected = code_at_step(secret, step)?;
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) && step > last_used_step {
            found = Some(step);
        }
    }
    found
}

/// Base32 without padding, as authenticator apps expect it.
pub fn secret_base32(secret: &[u8]) -> String {
    totp(secret, DIGITS).map(|t| t.get_secret_base32()).unwrap_or_default()
}

/// RFC 3986 unreserved characters stay; everything else in the label and issuer is percent-encoded.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// `otpauth://totp/Issuer:account?secret=...&issuer=...&algorithm=SHA1&digits=6&period=30`
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    let issuer = utf8_percent_encode(issuer, COMPONENT).to_string();
    let account = utf8_percent_encode(account, COMPONENT);
    format!(
        "otpauth://totp/{issuer}:{account}?secret={}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={PERIOD}",
        secret_base32(secret)
    )
}

/// A QR code of `text` as a greyscale PNG: 8 pixels per module and the standard 4-module quiet zone.
pub fn qr_png(text: &str) -> Result<Vec<u8>, String> {
    const SCALE: usize = 8;
    const QUIET: usize = 4;
    let code =
        qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M).map_err(|e| e.to_string())?;
    let modules = code.width();
    let colors = code.to_colors();
    let side = (modules + 2 * QUIET) * SCALE;
    let mut pixels = vec![255u8; side * side];
    for (i, color) in colors.iter().enumerate() {
        if *color == qrcode::Color::Dark {
            let (mx, my) = (i % modules + QUIET, i / modules + QUIET);
            for y in my * SCALE..(my + 1) * SCALE {
                pixels[y * side + mx * SCALE..y * side + (mx + 1) * SCALE].fill(0);
            }
        }
    }
    let mut png = Vec::new();
    let side32 = u32::try_from(side).map_err(|e| e.to_string())?;
    let mut encoder = png::Encoder::new(&mut png, side32, side32);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
    writer.write_image_data(&pixels).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    Ok(png)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_SEED: &[u8] = b"12345678901234567890";

    /// RFC 6238 Appendix B, SHA-1 rows (8 digits), and the same values cut to Latchkey's 6 digits.
    #[test]
    fn rfc6238_appendix_b_vectors() {
        let rows = [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ];
        let eight = TOTP::new(Algorithm::SHA1, 8, 0, PERIOD, RFC_SEED.to_vec()).unwrap();
        for (time, expected) in rows {
            assert_eq!(eight.generate(time), expected, "8 digits at {time}");
            assert_eq!(code_at_step(RFC_SEED, step_at(time as i64)).unwrap(), expected[2..], "6 digits at {time}");
        }
    }

    /// RFC 4226 Appendix D: HOTP is TOTP at step = counter.
    #[test]
    fn rfc4226_appendix_d_vectors() {
        let expected =
            ["755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"];
        for (counter, code) in expected.iter().enumerate() {
            assert_eq!(code_at_step(RFC_SEED, counter as i64).unwrap(), *code);
        }
    }

    #[test]
    fn window_and_replay_rule() {
        let now = 1_234_567_890;
        let step = step_at(now);
        let code = |s| code_at_step(RFC_SEED, s).unwrap();
        assert_eq!(matching_step(RFC_SEED, &code(step), now, -1), Some(step));
        assert_eq!(matching_step(RFC_SEED, &code(step - 1), now, -1), Some(step - 1));
        assert_eq!(matching_step(RFC_SEED, &code(step + 1), now, -1), Some(step + 1));
        assert_eq!(matching_step(RFC_SEED, &code(step - 2), now, -1), None, "outside the window");
        assert_eq!(matching_step(RFC_SEED, &code(step), now, step), None, "already used");
        assert_eq!(matching_step(RFC_SEED, &code(step - 1), now, step), None, "older than the last used");
        for bad in ["", "12345", "1234567", "abcdef", "٣٣٣٣٣٣"] {
            assert_eq!(matching_step(RFC_SEED, bad, now, -1), None);
        }
    }

    #[test]
    fn secrets_and_uri() {
        assert_eq!(secret_base32(RFC_SEED), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(generate_secret().len(), 20);
        assert_ne!(generate_secret(), generate_secret());
        assert_eq!(
            otpauth_uri("Latchkey", "ana@example.com", RFC_SEED),
            "otpauth://totp/Latchkey:ana%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Latchkey&algorithm=SHA1&digits=6&period=30"
        );
        assert!(otpauth_uri("Acme Corp", "a:b@x.io", RFC_SEED).starts_with("otpauth://totp/Acme%20Corp:a%3Ab%40x.io?"));
    }

    #[test]
    fn qr_png_is_a_png() {
        let png = qr_png("otpauth://totp/x").unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    }
}
