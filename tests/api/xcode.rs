//! StoreKit testing in Xcode: tokens signed with the StoreKit test
//! certificate (self-signed, made here as Xcode makes one) are accepted
//! for an app that lists `Xcode`, and only for that environment.

use serde_json::{json, Value};

use crate::common::payloads::BUNDLE_ID;
use crate::common::pki::XcodeSigner;
use crate::helpers::{config, pki, TempDir, TestApp, APP_APPLE_ID};
use crate::ledger::{now, subscription, tx, DAY};

/// The service with the app listing Xcode, trusting `signer`'s certificate.
async fn app_trusting(signer: &XcodeSigner) -> TestApp {
    let (pki, dir) = (pki(), TempDir::new());
    let certificate = dir.path("StoreKitTestCertificate.cer");
    std::fs::write(&certificate, &signer.cert_der).unwrap();
    let text = config(&dir, &pki, "", "")
        .replace(
            r#"environments = ["Production", "Sandbox"]"#,
            r#"environments = ["Production", "Sandbox", "Xcode"]"#,
        )
        .replace(
            "[verification]\n",
            &format!(
                "[verification]\n        xcode_certificate = \"{}\"\n",
                certificate.display()
            ),
        );
    TestApp::spawn_text(pki, dir, &text).await
}

/// A SUBSCRIBED notification as Xcode signs it, every token by `signer`.
fn subscribed(signer: &XcodeSigner, environment: &str, otid: &str, at: i64) -> String {
    let mut t = tx(otid, &format!("{otid}-1"), "monthly", at, at + 30 * DAY);
    t["environment"] = json!(environment);
    let payload = json!({
        "notificationType": "SUBSCRIBED", "subtype": "INITIAL_BUY",
        "notificationUUID": format!("00000000-0000-4000-8000-{:012}", otid.len() + at as usize % 1000),
        "data": {
            "bundleId": BUNDLE_ID, "environment": environment, "appAppleId": APP_APPLE_ID,
            "signedTransactionInfo": signer.sign(&t), "status": 1,
        },
        "version": "2.0", "signedDate": at,
    });
    signer.sign(&payload)
}

#[tokio::test]
async fn an_xcode_token_is_accepted_for_xcode_and_refused_for_sandbox() {
    let signer = XcodeSigner::new();
    let app = app_trusting(&signer).await;
    let at = now() - DAY;

    let (status, body) = app.post(&subscribed(&signer, "Xcode", "xc-1", at)).await;
    assert_eq!(status, 200, "{body}");
    let answer = subscription(&app, "xc-1").await;
    assert_eq!(
        (answer["entitled"].clone(), answer["environment"].clone()),
        (json!(true), json!("Xcode")),
        "{answer}"
    );

    // The same certificate vouches for nothing in Sandbox or Production.
    for environment in ["Sandbox", "Production"] {
        let (status, body) = app
            .post(&subscribed(
                &signer,
                environment,
                &format!("xc-{environment}"),
                at,
            ))
            .await;
        assert_eq!(status, 403, "{environment}: {body}");
        assert_eq!(
            body["error"]["code"], "XCODE_CERTIFICATE_OUTSIDE_XCODE",
            "{body}"
        );
    }
    // A certificate Xcode made elsewhere is not the configured one.
    let other = XcodeSigner::new();
    let (status, body) = app.post(&subscribed(&other, "Xcode", "xc-2", at)).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "UNTRUSTED_CHAIN", "{body}");
    assert_eq!(app.count("notifications").await, 1);
    assert_eq!(app.count("quarantined_notifications").await, 0);
}

#[tokio::test]
async fn apple_s_chain_is_still_what_sandbox_needs_beside_xcode() {
    let signer = XcodeSigner::new();
    let app = app_trusting(&signer).await;
    // A Sandbox notification signed by Apple's (the test PKI's) chain.
    let at = now() - DAY;
    let (status, body) = app
        .post(
            &crate::ledger::Post::new(&app, "SUBSCRIBED", at)
                .status(1)
                .tx(tx("xc-3", "xc-3-1", "monthly", at, at + 30 * DAY))
                .token(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let answer: Value = subscription(&app, "xc-3").await;
    assert_eq!(answer["entitled"], true, "{answer}");
}

// The same tests on PostgreSQL, each on a fresh database there.
on_postgres! {
    an_xcode_token_is_accepted_for_xcode_and_refused_for_sandbox,
    apple_s_chain_is_still_what_sandbox_needs_beside_xcode,
}
