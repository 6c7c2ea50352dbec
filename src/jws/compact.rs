//! The compact JWS serialization, parsed strictly: three base64url parts, a
//! header that asks for ES256 with a three-certificate x5c, and a 64-byte
//! JOSE signature.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Deserialize;
use serde_json::Value;

use super::error::{CertPosition, VerifyError};

/// The largest token accepted. A notification with its nested tokens is about
/// 20 KB; anything near this limit is not from Apple.
pub const MAX_TOKEN_BYTES: usize = 1 << 20;

/// The number of certificates Apple puts in `x5c`: leaf, intermediate, root.
pub const CHAIN_LENGTH: usize = 3;

/// A token split into its three parts. Nothing here is checked beyond the
/// shape and the parts' base64url, and nothing is authenticated yet.
#[derive(Debug)]
pub(crate) struct CompactJws<'a> {
    /// The base64url header, as sent. All the header checks are a function of
    /// these bytes alone, which is what lets the chain cache key on them.
    pub header_b64: &'a str,
    /// `header.payload`: the bytes the signature covers.
    pub signing_input: &'a str,
    /// The payload's bytes, decoded once by the form check (the largest
    /// part: decoding it twice cost about 4% of a notification's
    /// verification); read as JSON only once the signature holds.
    payload: Vec<u8>,
    signature: Vec<u8>,
}

#[derive(Deserialize)]
struct RawHeader {
    alg: Option<Value>,
    x5c: Option<Value>,
    crit: Option<Value>,
    // `jku`, `jwk` and `x5u` would name keys other than x5c[0]; Apple never
    // sends them, and ignoring them would let a token claim one key while
    // being checked with another.
    jku: Option<Value>,
    jwk: Option<Value>,
    x5u: Option<Value>,
}

pub(crate) fn split(token: &str) -> Result<CompactJws<'_>, VerifyError> {
    split_knowing(token, |_| false)
}

/// As [`split`], where `header_known` says whether a header is one whose
/// form was already checked (the chain cache holds it, keyed by these very
/// bytes): it is not decoded again.
pub(crate) fn split_knowing(
    token: &str,
    header_known: impl FnOnce(&str) -> bool,
) -> Result<CompactJws<'_>, VerifyError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(VerifyError::TokenTooLarge {
            limit: MAX_TOKEN_BYTES,
        });
    }
    let Some(Parts {
        header_b64,
        payload_b64,
        signature_b64,
        signing_input,
    }) = parts(token)
    else {
        return Err(VerifyError::MalformedToken(
            "expected three dot-separated parts",
        ));
    };
    // Every part's form is checked before anything is verified, so that a
    // padded or non-canonical payload or signature is called malformed
    // rather than failing the signature check over the text as sent.
    if !header_known(header_b64) && decode_base64url(header_b64).is_none() {
        return Err(VerifyError::MalformedToken("the header is not base64url"));
    }
    let payload = decode_base64url(payload_b64)
        .ok_or(VerifyError::MalformedToken("the payload is not base64url"))?;
    let signature = decode_base64url(signature_b64).ok_or(VerifyError::MalformedToken(
        "the signature is not base64url",
    ))?;
    Ok(CompactJws {
        header_b64,
        signing_input,
        payload,
        signature,
    })
}

/// A token's three dot-separated parts, and `header.payload`.
struct Parts<'a> {
    header_b64: &'a str,
    payload_b64: &'a str,
    signature_b64: &'a str,
    signing_input: &'a str,
}

/// `token` cut at its two dots, or `None` when it has another number.
fn parts(token: &str) -> Option<Parts<'_>> {
    // The dots found with memchr's vectorised search: a notification is
    // about 13 KB, and the standard library's byte search was a few
    // percent of `verify`'s time with the line search.
    let mut dots = memchr::memchr_iter(b'.', token.as_bytes());
    let (Some(first), Some(second), None) = (dots.next(), dots.next(), dots.next()) else {
        return None;
    };
    // '.' is ASCII, so each part starts and ends on a character boundary;
    // the dots are within `token`, so adding one cannot overflow.
    Some(Parts {
        header_b64: token.get(..first)?,
        payload_b64: token.get(first.saturating_add(1)..second)?,
        signature_b64: token.get(second.saturating_add(1)..)?,
        signing_input: token.get(..second)?,
    })
}

/// Checks the header: ES256, no header naming another key, no critical
/// extension; returns `x5c` as sent (standard base64 DER, leaf first).
pub(crate) fn parse_header(header_b64: &str) -> Result<[String; CHAIN_LENGTH], VerifyError> {
    parse_x5c(checked_header(header_b64)?.x5c)
}

/// The header's `x5c` entries, however many (Xcode signs with one
/// certificate), after the same checks as [`parse_header`].
pub(crate) fn parse_header_chain(header_b64: &str) -> Result<Vec<String>, VerifyError> {
    match checked_header(header_b64)?.x5c {
        Some(Value::Array(entries)) if entries.len() <= CHAIN_LENGTH => entries
            .into_iter()
            .map(|entry| match entry {
                Value::String(text) => Ok(text),
                _ => Err(VerifyError::MalformedCertificate(CertPosition::Leaf)),
            })
            .collect(),
        Some(Value::Array(entries)) => Err(VerifyError::InvalidChainLength(entries.len())),
        Some(_) => Err(VerifyError::MalformedToken("x5c is not an array")),
        None => Err(VerifyError::InvalidChainLength(0)),
    }
}

fn checked_header(header_b64: &str) -> Result<RawHeader, VerifyError> {
    let header_json = decode_base64url(header_b64)
        .ok_or(VerifyError::MalformedToken("the header is not base64url"))?;
    let header: RawHeader = serde_json::from_slice(&header_json)
        .map_err(|_| VerifyError::MalformedToken("the header is not a JSON object"))?;

    match &header.alg {
        Some(Value::String(alg)) if alg == "ES256" => {}
        Some(Value::String(alg)) => return Err(VerifyError::InvalidAlgorithm(alg.clone())),
        Some(other) => return Err(VerifyError::InvalidAlgorithm(other.to_string())),
        None => return Err(VerifyError::InvalidAlgorithm("nothing".into())),
    }
    let unsupported = [
        ("crit", &header.crit),
        ("jku", &header.jku),
        ("jwk", &header.jwk),
        ("x5u", &header.x5u),
    ];
    if let Some((name, _)) = unsupported.iter().find(|(_, value)| value.is_some()) {
        return Err(VerifyError::UnsupportedHeader(name));
    }
    Ok(header)
}

fn parse_x5c(x5c: Option<Value>) -> Result<[String; CHAIN_LENGTH], VerifyError> {
    let entries = match x5c {
        Some(Value::Array(entries)) => entries,
        Some(_) => return Err(VerifyError::MalformedToken("x5c is not an array")),
        None => return Err(VerifyError::InvalidChainLength(0)),
    };
    let count = entries.len();
    let [leaf, intermediate, root]: [Value; CHAIN_LENGTH] = entries
        .try_into()
        .map_err(|_| VerifyError::InvalidChainLength(count))?;
    let as_string = |value: Value, position| match value {
        Value::String(text) => Ok(text),
        _ => Err(VerifyError::MalformedCertificate(position)),
    };
    Ok([
        as_string(leaf, CertPosition::Leaf)?,
        as_string(intermediate, CertPosition::Intermediate)?,
        as_string(root, CertPosition::Root)?,
    ])
}

/// Decodes base64url without padding, rejecting non-canonical encodings, so
/// that a token has exactly one textual form. base64-simd's vectorised
/// decoder: a notification's payload and nested tokens are about 12 KB of
/// base64url, and the scalar decoder was 2.5% of `verify`'s time.
pub(crate) fn decode_base64url(text: &str) -> Option<Vec<u8>> {
    base64_simd::URL_SAFE_NO_PAD
        .decode_to_vec(text.as_bytes())
        .ok()
}

/// Decodes one `x5c` entry (standard base64 with padding, RFC 7515 §4.1.6).
pub(crate) fn decode_certificate(
    text: &str,
    position: CertPosition,
) -> Result<Vec<u8>, VerifyError> {
    STANDARD
        .decode(text)
        .map_err(|_| VerifyError::MalformedCertificate(position))
}

impl CompactJws<'_> {
    /// The JOSE `r||s` signature. A DER-encoded ECDSA signature (70 to 72
    /// bytes) is rejected.
    pub(crate) fn signature(&self) -> Result<[u8; 64], VerifyError> {
        self.signature
            .as_slice()
            .try_into()
            .map_err(|_| VerifyError::InvalidSignature)
    }

    /// The payload's bytes (authenticated only once the signature holds).
    pub(crate) fn into_payload(self) -> Vec<u8> {
        self.payload
    }
}

/// A token's payload bytes, decoded with no other check, or `None` for
/// anything amiss (then [`unverified_payload`] says what). Never trust what
/// this returns.
pub(crate) fn payload_alone(token: &str) -> Option<Vec<u8>> {
    if token.len() > MAX_TOKEN_BYTES {
        return None;
    }
    decode_base64url(parts(token)?.payload_b64)
}

/// Decodes a token's payload without verifying anything. Only for choosing the
/// verification time of a stored payload (its own `signedDate`); never trust
/// what this returns.
pub(crate) fn unverified_payload(token: &str) -> Result<Vec<u8>, VerifyError> {
    Ok(split(token)?.into_payload())
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    /// All the checks a token gets before its chain, in the verifier's order.
    fn parse(token: &str) -> Result<([String; CHAIN_LENGTH], [u8; 64], &str), VerifyError> {
        let jws = split(token)?;
        let x5c = parse_header(jws.header_b64)?;
        Ok((x5c, jws.signature()?, jws.signing_input))
    }

    fn b64(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    fn token_with_header(header: &str) -> String {
        format!(
            "{}.{}.{}",
            b64(header),
            b64("{}"),
            URL_SAFE_NO_PAD.encode([7u8; 64])
        )
    }

    const X5C: &str = r#""x5c":["AA==","AA==","AA=="]"#;

    #[test]
    fn accepts_a_well_formed_token() {
        let token = token_with_header(&format!(r#"{{"alg":"ES256",{X5C}}}"#));
        let (x5c, signature, signing_input) = parse(&token).unwrap();
        assert_eq!(signature, [7u8; 64]);
        assert_eq!(x5c[0], "AA==");
        assert!(token.starts_with(signing_input));
    }

    #[test]
    fn rejects_other_algorithms() {
        for alg in ["none", "HS256", "ES384", "RS256", "es256"] {
            let token = token_with_header(&format!(r#"{{"alg":"{alg}",{X5C}}}"#));
            assert_eq!(
                parse(&token).unwrap_err(),
                VerifyError::InvalidAlgorithm(alg.into())
            );
        }
        let token = token_with_header(&format!(r#"{{{X5C}}}"#));
        assert_eq!(parse(&token).unwrap_err().code(), "INVALID_ALGORITHM");
        let token = token_with_header(&format!(r#"{{"alg":256,{X5C}}}"#));
        assert_eq!(parse(&token).unwrap_err().code(), "INVALID_ALGORITHM");
    }

    #[test]
    fn rejects_wrong_number_of_parts() {
        for token in ["", "a", "a.b", "a.b.c.d", "a.b.c.d.e"] {
            assert_eq!(
                parse(token).unwrap_err().code(),
                "MALFORMED_TOKEN",
                "{token}"
            );
        }
    }

    #[test]
    fn rejects_padding_and_non_canonical_base64() {
        let good = token_with_header(&format!(r#"{{"alg":"ES256",{X5C}}}"#));
        let padded = good.replacen('.', "=.", 1);
        assert_eq!(parse(&padded).unwrap_err().code(), "MALFORMED_TOKEN");
        let header = b64(&format!(r#"{{"alg":"ES256",{X5C}}}"#));
        let standard_alphabet = format!("{header}.e30.{}", "+/+/");
        assert_eq!(
            parse(&standard_alphabet).unwrap_err().code(),
            "MALFORMED_TOKEN"
        );
        // Padding or stray bits in any part, the payload and signature
        // included: malformed, before any signature is checked.
        let [header, payload, signature]: [&str; 3] =
            good.split('.').collect::<Vec<_>>().try_into().unwrap();
        for (token, part) in [
            (format!("{header}.{payload}==.{signature}"), "payload"),
            (format!("{header}.{payload}.{signature}=="), "signature"),
            (format!("{header}.e31.{signature}"), "payload"),
        ] {
            assert_eq!(
                split(&token).unwrap_err(),
                VerifyError::MalformedToken(match part {
                    "payload" => "the payload is not base64url",
                    _ => "the signature is not base64url",
                }),
                "{token}"
            );
        }
        // "e30" is "{}"; "e31" decodes to the same bytes with non-zero trailing bits.
        assert!(decode_base64url("e30").is_some());
        assert!(decode_base64url("e31").is_none());
    }

    #[test]
    fn rejects_wrong_chain_lengths() {
        for (x5c, n) in [
            ("[]", 0),
            (r#"["AA=="]"#, 1),
            (r#"["AA==","AA=="]"#, 2),
            (r#"["AA==","AA==","AA==","AA=="]"#, 4),
        ] {
            let token = token_with_header(&format!(r#"{{"alg":"ES256","x5c":{x5c}}}"#));
            assert_eq!(
                parse(&token).unwrap_err(),
                VerifyError::InvalidChainLength(n)
            );
        }
        let token = token_with_header(r#"{"alg":"ES256"}"#);
        assert_eq!(
            parse(&token).unwrap_err(),
            VerifyError::InvalidChainLength(0)
        );
    }

    #[test]
    fn rejects_headers_naming_other_keys_or_critical_extensions() {
        for field in ["crit", "jku", "jwk", "x5u"] {
            let token = token_with_header(&format!(r#"{{"alg":"ES256",{X5C},"{field}":[]}}"#));
            assert_eq!(
                parse(&token).unwrap_err().code(),
                "UNSUPPORTED_HEADER",
                "{field}"
            );
        }
    }

    #[test]
    fn rejects_signatures_that_are_not_64_bytes() {
        let header = b64(&format!(r#"{{"alg":"ES256",{X5C}}}"#));
        for len in [0usize, 63, 65, 70, 72] {
            let token = format!("{header}.e30.{}", URL_SAFE_NO_PAD.encode(vec![1u8; len]));
            assert_eq!(
                parse(&token).unwrap_err(),
                VerifyError::InvalidSignature,
                "{len}"
            );
        }
    }

    #[test]
    fn rejects_huge_tokens_before_looking_at_them() {
        let token = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(parse(&token).unwrap_err().code(), "TOKEN_TOO_LARGE");
    }
}
