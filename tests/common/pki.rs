//! A test PKI shaped like Apple's: a P-384 root, a P-384 intermediate with
//! Apple's WWDR marker, a P-256 leaf with Apple's receipt-signing marker. Every
//! property the verifier checks can be turned off one at a time.
#![allow(dead_code)]

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SignatureAlgorithm, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384,
};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use time::OffsetDateTime;

use appstore_ledger::jws::{TrustAnchor, TrustAnchors};
use appstore_ledger::model::Timestamp;

pub const LEAF_MARKER: &[u64] = &[1, 2, 840, 113635, 100, 6, 11, 1];
pub const INTERMEDIATE_MARKER: &[u64] = &[1, 2, 840, 113635, 100, 6, 2, 1];

/// 2025-06-01T00:00:00Z: inside every default validity period.
pub const AT: Timestamp = Timestamp::from_millis(1_748_736_000_000);

pub fn date(year: i32) -> OffsetDateTime {
    OffsetDateTime::new_utc(
        time::Date::from_calendar_date(year, time::Month::January, 1).unwrap(),
        time::Time::MIDNIGHT,
    )
}

pub fn millis(at: OffsetDateTime) -> Timestamp {
    Timestamp::from_millis((at.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// How to build a chain. `Default` is a chain like Apple's.
#[derive(Clone)]
pub struct ChainSpec {
    pub root_name: &'static str,
    pub root_path_len: Option<u8>,
    pub root_validity: (OffsetDateTime, OffsetDateTime),
    pub intermediate_name: &'static str,
    pub intermediate_is_ca: bool,
    pub intermediate_marker: bool,
    pub intermediate_key_usage: Vec<KeyUsagePurpose>,
    pub intermediate_validity: (OffsetDateTime, OffsetDateTime),
    /// The issuer name the leaf claims; `None` is the intermediate's name.
    pub leaf_issuer_name: Option<&'static str>,
    pub leaf_is_ca: bool,
    pub leaf_marker: bool,
    pub leaf_key_usage: Vec<KeyUsagePurpose>,
    pub leaf_validity: (OffsetDateTime, OffsetDateTime),
    pub leaf_algorithm: &'static SignatureAlgorithm,
    pub leaf_unknown_critical_extension: bool,
    /// The leaf's serial number; `None` lets rcgen derive one.
    pub leaf_serial: Option<Vec<u8>>,
}

impl Default for ChainSpec {
    fn default() -> Self {
        ChainSpec {
            root_name: "Test Root CA - G3",
            root_path_len: None,
            root_validity: (date(2014), date(2039)),
            intermediate_name: "Test Worldwide Developer Relations CA",
            intermediate_is_ca: true,
            intermediate_marker: true,
            intermediate_key_usage: vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign],
            intermediate_validity: (date(2020), date(2036)),
            leaf_issuer_name: None,
            leaf_is_ca: false,
            leaf_marker: true,
            leaf_key_usage: vec![KeyUsagePurpose::DigitalSignature],
            leaf_validity: (date(2024), date(2027)),
            leaf_algorithm: &PKCS_ECDSA_P256_SHA256,
            leaf_unknown_critical_extension: false,
            leaf_serial: None,
        }
    }
}

#[derive(Clone)]
pub struct TestPki {
    pub root_der: Vec<u8>,
    pub intermediate_der: Vec<u8>,
    pub leaf_der: Vec<u8>,
    leaf_pkcs8: Vec<u8>,
    leaf_signs_es256: bool,
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "appstore-ledger tests");
    dn
}

fn marker(oid: &[u64]) -> CustomExtension {
    // Apple's markers carry an ASN.1 NULL.
    CustomExtension::from_oid_content(oid, vec![0x05, 0x00])
}

impl TestPki {
    pub fn new() -> Self {
        TestPki::build(ChainSpec::default())
    }

    pub fn build(spec: ChainSpec) -> Self {
        let root_key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap();
        let mut root = CertificateParams::new(Vec::<String>::new()).unwrap();
        root.distinguished_name = name(spec.root_name);
        root.is_ca = IsCa::Ca(match spec.root_path_len {
            Some(n) => BasicConstraints::Constrained(n),
            None => BasicConstraints::Unconstrained,
        });
        root.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        (root.not_before, root.not_after) = spec.root_validity;
        let root_der = root.self_signed(&root_key).unwrap().der().to_vec();

        let intermediate_key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap();
        let mut intermediate = CertificateParams::new(Vec::<String>::new()).unwrap();
        intermediate.distinguished_name = name(spec.intermediate_name);
        intermediate.is_ca = if spec.intermediate_is_ca {
            IsCa::Ca(BasicConstraints::Constrained(0))
        } else {
            IsCa::ExplicitNoCa
        };
        intermediate.key_usages = spec.intermediate_key_usage.clone();
        (intermediate.not_before, intermediate.not_after) = spec.intermediate_validity;
        if spec.intermediate_marker {
            intermediate
                .custom_extensions
                .push(marker(INTERMEDIATE_MARKER));
        }
        let root_issuer = Issuer::from_params(&root, &root_key);
        let intermediate_der = intermediate
            .signed_by(&intermediate_key, &root_issuer)
            .unwrap()
            .der()
            .to_vec();

        let leaf_key = KeyPair::generate_for(spec.leaf_algorithm).unwrap();
        let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
        leaf.distinguished_name = name("Test Mac App Store and iTunes Store Receipt Signing");
        leaf.serial_number = spec.leaf_serial.clone().map(Into::into);
        leaf.is_ca = if spec.leaf_is_ca {
            IsCa::Ca(BasicConstraints::Unconstrained)
        } else {
            IsCa::ExplicitNoCa
        };
        leaf.key_usages = spec.leaf_key_usage.clone();
        (leaf.not_before, leaf.not_after) = spec.leaf_validity;
        if spec.leaf_marker {
            leaf.custom_extensions.push(marker(LEAF_MARKER));
        }
        if spec.leaf_unknown_critical_extension {
            let mut ext =
                CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 99999, 1], vec![0x05, 0x00]);
            ext.set_criticality(true);
            leaf.custom_extensions.push(ext);
        }
        // The leaf's issuer name comes from the issuer params; to make it claim
        // another issuer, sign it with params carrying that name.
        let mut issuer_params = intermediate.clone();
        if let Some(other) = spec.leaf_issuer_name {
            issuer_params.distinguished_name = name(other);
        }
        let intermediate_issuer = Issuer::from_params(&issuer_params, &intermediate_key);
        let leaf_der = leaf
            .signed_by(&leaf_key, &intermediate_issuer)
            .unwrap()
            .der()
            .to_vec();

        TestPki {
            root_der,
            intermediate_der,
            leaf_der,
            leaf_pkcs8: leaf_key.serialize_der(),
            leaf_signs_es256: std::ptr::eq(spec.leaf_algorithm, &PKCS_ECDSA_P256_SHA256),
        }
    }

    pub fn anchors(&self) -> TrustAnchors {
        TrustAnchors::new(vec![TrustAnchor::from_der(&self.root_der).unwrap()]).unwrap()
    }

    pub fn x5c(&self) -> [String; 3] {
        [
            STANDARD.encode(&self.leaf_der),
            STANDARD.encode(&self.intermediate_der),
            STANDARD.encode(&self.root_der),
        ]
    }

    pub fn header(&self) -> String {
        let [a, b, c] = self.x5c();
        format!(r#"{{"alg":"ES256","x5c":["{a}","{b}","{c}"]}}"#)
    }

    /// A compact JWS of `payload` with this chain.
    pub fn sign(&self, payload: &serde_json::Value) -> String {
        self.sign_raw(&self.header(), payload.to_string().as_bytes())
    }

    /// A compact JWS of any header and payload bytes, signed with the leaf key.
    pub fn sign_raw(&self, header: &str, payload: &[u8]) -> String {
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let signature = self.es256(signing_input.as_bytes());
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// An ES256 (r||s) signature with the leaf key.
    pub fn es256(&self, message: &[u8]) -> Vec<u8> {
        assert!(self.leaf_signs_es256, "this leaf does not have a P-256 key");
        let rng = SystemRandom::new();
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &self.leaf_pkcs8, &rng)
                .unwrap();
        key.sign(&rng, message).unwrap().as_ref().to_vec()
    }
}

/// What StoreKit testing in Xcode signs with: one self-signed P-256
/// certificate (the one a StoreKit configuration holds and Xcode exports),
/// alone in `x5c`.
pub struct XcodeSigner {
    pub cert_der: Vec<u8>,
    pkcs8: Vec<u8>,
}

impl XcodeSigner {
    pub fn new() -> Self {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = name("StoreKit Testing in Xcode");
        let cert_der = params.self_signed(&key).unwrap().der().to_vec();
        XcodeSigner {
            cert_der,
            pkcs8: key.serialize_der(),
        }
    }

    /// A compact JWS of `payload`, `x5c` holding the certificate alone.
    pub fn sign(&self, payload: &serde_json::Value) -> String {
        let header = format!(
            r#"{{"alg":"ES256","x5c":["{}"]}}"#,
            STANDARD.encode(&self.cert_der)
        );
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload.to_string())
        );
        let rng = SystemRandom::new();
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &self.pkcs8, &rng).unwrap();
        let signature = key.sign(&rng, signing_input.as_bytes()).unwrap();
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        )
    }
}
