//! The transaction ids in a legacy App Store receipt (the base64 PKCS#7
//! blob older apps send). Only read, never trusted: the ids are asked of
//! Apple, whose signed answer is what counts. BER, as Apple encodes it
//! (indefinite lengths, chunked octet strings).

use asn1_rs::{Any, FromBer, Tag};

/// In-app purchase attributes of the receipt payload.
const IN_APP: i64 = 17;
const TRANSACTION_ID: i64 = 1705;
const ORIGINAL_TRANSACTION_ID: i64 = 1703;
/// A receipt nests five levels deep; more is not a receipt.
const MAX_DEPTH: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an App Store receipt: {0}")]
pub struct ReceiptError(String);

impl ReceiptError {
    pub fn code(&self) -> &'static str {
        "MALFORMED_RECEIPT"
    }
}

/// The ids of one in-app purchase in a receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptPurchase {
    pub transaction_id: String,
    pub original_transaction_id: Option<String>,
}

fn fail(why: &str) -> ReceiptError {
    ReceiptError(why.to_owned())
}

fn one(bytes: &[u8]) -> Result<Any<'_>, ReceiptError> {
    Any::from_ber(bytes)
        .map(|(_, any)| any)
        .map_err(|e| ReceiptError(e.to_string()))
}

/// The elements inside a constructed value.
fn children<'a>(any: &Any<'a>) -> Result<Vec<Any<'a>>, ReceiptError> {
    let mut rest: &'a [u8] = any.data;
    let mut out = Vec::new();
    while !rest.is_empty() {
        // The end-of-contents octets of an indefinite length.
        if rest.starts_with(&[0, 0]) {
            break;
        }
        let (next, child) = Any::from_ber(rest).map_err(|e| ReceiptError(e.to_string()))?;
        out.push(child);
        rest = next;
    }
    Ok(out)
}

/// An OCTET STRING's bytes, primitive or in chunks.
fn octets(any: &Any<'_>, depth: usize) -> Result<Vec<u8>, ReceiptError> {
    if any.tag() != Tag::OctetString || depth > MAX_DEPTH {
        return Err(fail("expected an octet string"));
    }
    if !any.header.is_constructed() {
        return Ok(any.data.to_vec());
    }
    let mut bytes = Vec::new();
    for chunk in children(any)? {
        bytes.extend(octets(&chunk, depth.saturating_add(1))?);
    }
    Ok(bytes)
}

fn integer(any: &Any<'_>) -> Option<i64> {
    any.clone().as_i64().ok()
}

/// The receipt attributes of a payload: SET OF SEQUENCE {type, version, value}.
fn attributes(payload: &[u8]) -> Result<Vec<(i64, Vec<u8>)>, ReceiptError> {
    let set = one(payload)?;
    if set.tag() != Tag::Set {
        return Err(fail("the payload is not a set of attributes"));
    }
    let mut out = Vec::new();
    for attribute in children(&set)? {
        let fields = children(&attribute)?;
        let (Some(kind), Some(value)) = (fields.first().and_then(integer), fields.get(2)) else {
            continue;
        };
        out.push((kind, octets(value, 0)?));
    }
    Ok(out)
}

fn text(value: &[u8]) -> Option<String> {
    let any = one(value).ok()?;
    match any.tag() {
        Tag::Utf8String | Tag::Ia5String | Tag::PrintableString => {
            String::from_utf8(any.data.to_vec()).ok()
        }
        _ => None,
    }
}

/// The in-app purchases a receipt lists, in its order.
pub fn receipt_purchases(receipt: &[u8]) -> Result<Vec<ReceiptPurchase>, ReceiptError> {
    // ContentInfo ::= SEQUENCE { contentType, [0] EXPLICIT SignedData }
    let content_info = one(receipt)?;
    let signed_data = children(&content_info)?
        .into_iter()
        .nth(1)
        .ok_or_else(|| fail("no signed data"))
        .and_then(|explicit| {
            children(&explicit)?
                .into_iter()
                .next()
                .ok_or_else(|| fail("empty signed data"))
        })?;
    // SignedData ::= SEQUENCE { version, digestAlgorithms, encapContentInfo, ... }
    let encapsulated = children(&signed_data)?
        .into_iter()
        .nth(2)
        .ok_or_else(|| fail("no encapsulated content"))?;
    // EncapsulatedContentInfo ::= SEQUENCE { eContentType, [0] EXPLICIT OCTET STRING }
    let content = children(&encapsulated)?
        .into_iter()
        .nth(1)
        .ok_or_else(|| fail("no receipt payload"))?;
    let payload_string = children(&content)?
        .into_iter()
        .next()
        .ok_or_else(|| fail("no receipt payload"))?;
    let payload = octets(&payload_string, 0)?;
    let mut purchases = Vec::new();
    for (kind, value) in attributes(&payload)? {
        if kind != IN_APP {
            continue;
        }
        let fields = attributes(&value)?;
        let find = |wanted: i64| {
            fields
                .iter()
                .find(|(kind, _)| *kind == wanted)
                .and_then(|(_, value)| text(value))
        };
        if let Some(transaction_id) = find(TRANSACTION_ID) {
            purchases.push(ReceiptPurchase {
                transaction_id,
                original_transaction_id: find(ORIGINAL_TRANSACTION_ID),
            });
        }
    }
    Ok(purchases)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn len(n: usize) -> Vec<u8> {
        match n {
            0..=127 => vec![n as u8],
            128..=255 => vec![0x81, n as u8],
            _ => vec![0x82, (n >> 8) as u8, n as u8],
        }
    }

    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        out.extend(len(content.len()));
        out.extend(content);
        out
    }

    /// The same, with an indefinite length.
    fn indefinite(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag, 0x80];
        out.extend(content);
        out.extend([0, 0]);
        out
    }

    fn attribute(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut fields = tlv(0x02, &kind.to_be_bytes());
        fields.extend(tlv(0x02, &[1]));
        fields.extend(tlv(0x04, value));
        tlv(0x30, &fields)
    }

    fn in_app(transaction_id: &str, original: &str) -> Vec<u8> {
        let mut set = attribute(1701, &tlv(0x02, &[1]));
        set.extend(attribute(1705, &tlv(0x0c, transaction_id.as_bytes())));
        set.extend(attribute(1703, &tlv(0x0c, original.as_bytes())));
        attribute(17, &tlv(0x31, &set))
    }

    fn receipt(ber: bool) -> Vec<u8> {
        let mut attributes = attribute(2, &tlv(0x0c, b"com.example.app"));
        attributes.extend(in_app("2000000001", "2000000000"));
        attributes.extend(in_app("2000000002", "2000000000"));
        let payload = tlv(0x31, &attributes);
        let oid_data = tlv(
            0x06,
            &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01],
        );
        let oid_signed = tlv(
            0x06,
            &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02],
        );
        type Wrap = fn(u8, &[u8]) -> Vec<u8>;
        let (octets, wrap): (Vec<u8>, Wrap) = if ber {
            // Chunked, in an indefinite-length constructed octet string.
            let (a, b) = payload.split_at(payload.len() / 2);
            let mut chunks = tlv(0x04, a);
            chunks.extend(tlv(0x04, b));
            (indefinite(0x24, &chunks), indefinite)
        } else {
            (tlv(0x04, &payload), tlv)
        };
        let mut encapsulated = oid_data;
        encapsulated.extend(wrap(0xa0, &octets));
        let mut signed = tlv(0x02, &[1]);
        signed.extend(tlv(0x31, &[]));
        signed.extend(wrap(0x30, &encapsulated));
        signed.extend(wrap(0x31, &[]));
        let mut content_info = oid_signed;
        content_info.extend(wrap(0xa0, &wrap(0x30, &signed)));
        wrap(0x30, &content_info)
    }

    #[test]
    fn reads_the_in_app_transaction_ids() {
        for ber in [false, true] {
            let purchases = receipt_purchases(&receipt(ber)).unwrap();
            assert_eq!(
                purchases,
                vec![
                    ReceiptPurchase {
                        transaction_id: "2000000001".into(),
                        original_transaction_id: Some("2000000000".into())
                    },
                    ReceiptPurchase {
                        transaction_id: "2000000002".into(),
                        original_transaction_id: Some("2000000000".into())
                    },
                ],
                "ber: {ber}"
            );
        }
    }

    #[test]
    fn anything_else_is_a_clear_error_not_a_panic() {
        let whole = receipt(false);
        for cut in 0..whole.len() {
            let _ = receipt_purchases(&whole[..cut]);
        }
        assert!(receipt_purchases(b"not a receipt").is_err());
        assert!(receipt_purchases(&[]).is_err());
        let mut flipped = whole.clone();
        for i in 0..flipped.len() {
            flipped[i] ^= 0xff;
            let _ = receipt_purchases(&flipped);
            flipped[i] ^= 0xff;
        }
        assert_eq!(
            receipt_purchases(b"x").unwrap_err().code(),
            "MALFORMED_RECEIPT"
        );
    }
}
