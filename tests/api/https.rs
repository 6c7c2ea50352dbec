use serde_json::json;

use crate::helpers::{pki, uuid, NotificationSpec, TempDir, TestApp};

#[tokio::test]
async fn the_service_serves_https_itself_when_given_a_certificate() {
    let dir = TempDir::new();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_path = dir.path("cert.pem");
    let key_path = dir.path("key.pem");
    std::fs::write(&cert_path, certified.cert.pem()).unwrap();
    std::fs::write(&key_path, certified.signing_key.serialize_pem()).unwrap();
    let app = TestApp::spawn_tls(pki(), dir, &cert_path, &key_path).await;
    assert!(app.address.starts_with("https://"));

    let root = reqwest::Certificate::from_der(certified.cert.der()).unwrap();
    let client = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(root)
        .build()
        .unwrap();
    let token = NotificationSpec::new("DID_RENEW", uuid()).sign(&app.pki);
    let response = client
        .post(format!("{}/v2/notifications", app.address))
        .json(&json!({ "signedPayload": token }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(app.count("notifications").await, 1);

    // Plain HTTP to the TLS port gets no answer.
    let plain = app.address.replace("https://", "http://");
    assert!(reqwest::get(format!("{plain}/health")).await.is_err());
}
