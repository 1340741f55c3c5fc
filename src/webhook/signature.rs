//! Authenticity checks for Meta's webhook: the `X-Hub-Signature-256` body signature and the
//! verify token of the subscription handshake, both compared in constant time.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// The header Meta signs every webhook POST with.
pub const SIGNATURE_HEADER: &str = "X-Hub-Signature-256";

const PREFIX: &[u8] = b"sha256=";

/// Why a webhook signature was refused. Every variant means "answer 401, publish nothing".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("signature header is missing")]
    Missing,
    #[error("signature header is malformed: {0}")]
    Malformed(&'static str),
    #[error("signature does not match the body")]
    Mismatch,
}

/// Checks `header` (the raw value of `X-Hub-Signature-256`, `sha256=<hex>`) against
/// HMAC-SHA256 of `body` keyed with the app secret.
///
/// `body` must be the bytes exactly as received: any re-serialisation (a proxy reformatting the
/// JSON, a framework parsing and re-encoding it) changes the digest. The header is taken as bytes
/// so a non-ASCII value is just another malformed header, not a separate failure path.
pub fn verify_signature(
    app_secret: &[u8],
    header: Option<&[u8]>,
    body: &[u8],
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?.trim_ascii();
    if header.is_empty() {
        return Err(SignatureError::Missing);
    }
    let hex_digest = strip_prefix_ignore_case(header, PREFIX)
        .ok_or(SignatureError::Malformed("expected the sha256= prefix"))?;
    let tag =
        hex::decode(hex_digest).map_err(|_| SignatureError::Malformed("digest is not hex"))?;
    if tag.len() != 32 {
        return Err(SignatureError::Malformed("digest is not 32 bytes"));
    }
    mac(app_secret, body)
        .verify_slice(&tag)
        .map_err(|_| SignatureError::Mismatch)
}

/// The header value Meta would send for `body`: `sha256=<lower-case hex>`. For tests and the
/// mock provider.
pub fn sign(app_secret: &[u8], body: &[u8]) -> String {
    let digest = mac(app_secret, body).finalize().into_bytes();
    format!("sha256={}", hex::encode(digest))
}

/// Whether the `hub.verify_token` of a subscription handshake equals the configured token.
///
/// Both sides are hashed first so the comparison takes the same time whatever the lengths; an
/// empty configured token never matches, so a missing setting cannot be satisfied by an empty
/// query parameter.
pub fn verify_token_matches(expected: &str, given: &str) -> bool {
    if expected.is_empty() {
        return false;
    }
    let expected = Sha256::digest(expected.as_bytes());
    let given = Sha256::digest(given.as_bytes());
    expected.as_slice().ct_eq(given.as_slice()).into()
}

fn mac(app_secret: &[u8], body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(app_secret).expect("HMAC accepts any key length");
    mac.update(body);
    mac
}

fn strip_prefix_ignore_case<'a>(value: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let head = value.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &value[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"app-secret-for-tests";
    const BODY: &[u8] =
        br#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[]}]}"#;

    fn header(value: &str) -> Option<&[u8]> {
        Some(value.as_bytes())
    }

    #[test]
    fn right_signature_passes() {
        let signature = sign(SECRET, BODY);
        assert!(signature.starts_with("sha256="));
        assert_eq!(signature.len(), 7 + 64);
        assert_eq!(verify_signature(SECRET, header(&signature), BODY), Ok(()));
    }

    #[test]
    fn matches_an_independently_computed_digest() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let expected = "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        assert_eq!(sign(b"Jefe", b"what do ya want for nothing?"), expected);
        assert_eq!(
            verify_signature(b"Jefe", header(expected), b"what do ya want for nothing?"),
            Ok(())
        );
    }

    #[test]
    fn upper_case_hex_prefix_and_surrounding_space_are_accepted() {
        let signature = sign(SECRET, BODY);
        let shouted = format!("  SHA256={}  ", signature[7..].to_ascii_uppercase());
        assert_eq!(verify_signature(SECRET, header(&shouted), BODY), Ok(()));
    }

    #[test]
    fn missing_header_fails() {
        assert_eq!(
            verify_signature(SECRET, None, BODY),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify_signature(SECRET, header("  "), BODY),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn wrong_prefix_fails() {
        let signature = sign(SECRET, BODY).replace("sha256=", "sha1=");
        assert!(matches!(
            verify_signature(SECRET, header(&signature), BODY),
            Err(SignatureError::Malformed(_))
        ));
        let bare = &sign(SECRET, BODY)[7..];
        assert!(matches!(
            verify_signature(SECRET, header(bare), BODY),
            Err(SignatureError::Malformed(_))
        ));
    }

    #[test]
    fn bad_hex_fails() {
        let not_hex = format!("sha256={}", "zz".repeat(32));
        assert!(matches!(
            verify_signature(SECRET, header(&not_hex), BODY),
            Err(SignatureError::Malformed(_))
        ));
        let odd = format!("sha256={}", "a".repeat(63));
        assert!(matches!(
            verify_signature(SECRET, header(&odd), BODY),
            Err(SignatureError::Malformed(_))
        ));
        let short = format!("sha256={}", "ab".repeat(20));
        assert!(matches!(
            verify_signature(SECRET, header(&short), BODY),
            Err(SignatureError::Malformed(_))
        ));
        assert!(matches!(
            verify_signature(SECRET, Some(b"sha256=\xff\xfe"), BODY),
            Err(SignatureError::Malformed(_))
        ));
    }

    #[test]
    fn wrong_secret_fails() {
        let signature = sign(b"another-app-secret", BODY);
        assert_eq!(
            verify_signature(SECRET, header(&signature), BODY),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn reserialised_body_fails() {
        let signature = sign(SECRET, BODY);
        // The same JSON value, as a proxy that parses and re-encodes it might send it on.
        let value: serde_json::Value = serde_json::from_slice(BODY).unwrap();
        let pretty = serde_json::to_vec_pretty(&value).unwrap();
        assert_ne!(pretty.as_slice(), BODY);
        assert_eq!(
            verify_signature(SECRET, header(&signature), &pretty),
            Err(SignatureError::Mismatch)
        );
        let reordered =
            br#"{"entry":[{"changes":[],"id":"102290129340398"}],"object":"whatsapp_business_account"}"#;
        assert_eq!(
            verify_signature(SECRET, header(&signature), reordered),
            Err(SignatureError::Mismatch)
        );
        let with_newline = [BODY, b"\n"].concat();
        assert_eq!(
            verify_signature(SECRET, header(&signature), &with_newline),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn verify_token_compares_whole_values() {
        assert!(verify_token_matches("s3cret-token", "s3cret-token"));
        assert!(!verify_token_matches("s3cret-token", "s3cret-toke"));
        assert!(!verify_token_matches("s3cret-token", "s3cret-token2"));
        assert!(!verify_token_matches("s3cret-token", ""));
        assert!(!verify_token_matches("", ""));
    }
}
