//! `user add|remove|list`: the support console's users, kept in the
//! database with an argon2id hash of their password.

use appstore_ledger::console::users::verify_password;

use crate::helpers::TestApp;

async fn hash_of(app: &TestApp, name: &str) -> String {
    sqlx::query_scalar("SELECT password_hash FROM console_users WHERE name = $1")
        .bind(name)
        .fetch_one(&mut app.db().await)
        .await
        .unwrap()
}

fn listed(app: &TestApp) -> Vec<(String, String)> {
    let list = app.cli(&["user", "list"]);
    assert_eq!(list.code, Some(0), "{}", list.stderr);
    list.stdout
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            assert_eq!(fields.len(), 3, "{line}");
            assert!(fields[2].ends_with('Z'), "{line}");
            (fields[0].to_owned(), fields[1].to_owned())
        })
        .collect()
}

// Multi-threaded: the server keeps running (its startup check may be
// writing) while the test waits for the command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_users_are_added_with_a_hashed_password_listed_and_removed() {
    let app = TestApp::spawn().await;
    let added = app.cli_input(
        &["user", "add", "ana", "--role", "support"],
        "correct horse battery\n",
    );
    assert_eq!(added.code, Some(0), "{}", added.stderr);
    assert_eq!(added.stdout.trim(), "added ana (support)");
    let added = app.cli_input(
        &["user", "add", "bo@example", "--role", "admin"],
        "another long password\r\n",
    );
    assert_eq!(added.code, Some(0), "{}", added.stderr);
    assert_eq!(
        listed(&app),
        [
            ("ana".to_owned(), "support".to_owned()),
            ("bo@example".to_owned(), "admin".to_owned())
        ]
    );

    // Only a salted argon2id hash is kept, and it verifies the password
    // (without the line ending).
    let hash = hash_of(&app, "ana").await;
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains("horse"));
    assert!(verify_password(&hash, "correct horse battery"));
    assert!(!verify_password(&hash, "correct horse battery\n"));
    assert!(verify_password(
        &hash_of(&app, "bo@example").await,
        "another long password"
    ));

    // Refused: a name taken (the user unchanged), a short or missing
    // password, a name that is not one, a role that does not exist.
    let taken = app.cli_input(
        &["user", "add", "ana", "--role", "admin"],
        "a different password\n",
    );
    assert_eq!(taken.code, Some(1), "{}", taken.stdout);
    assert!(taken.stderr.contains("exists"), "{}", taken.stderr);
    assert_eq!(hash_of(&app, "ana").await, hash);
    for (name, role, input, needle) in [
        ("cy", "support", "eleven char\n", "PASSWORD_TOO_SHORT"),
        ("cy", "support", "", "no password"),
        (
            "<script>",
            "support",
            "correct horse battery\n",
            "INVALID_USER_NAME",
        ),
        ("cy", "owner", "correct horse battery\n", "owner"),
    ] {
        let refused = app.cli_input(&["user", "add", name, "--role", role], input);
        assert_eq!(refused.code, Some(2), "{name} {role}: {}", refused.stderr);
        assert!(refused.stderr.contains(needle), "{}", refused.stderr);
    }
    assert_eq!(listed(&app).len(), 2);

    let removed = app.cli(&["user", "remove", "ana"]);
    assert_eq!(removed.code, Some(0), "{}", removed.stderr);
    assert_eq!(removed.stdout.trim(), "removed ana");
    let again = app.cli(&["user", "remove", "ana"]);
    assert_eq!(again.code, Some(1));
    assert!(
        again.stderr.contains("no user named ana"),
        "{}",
        again.stderr
    );
    assert_eq!(
        listed(&app),
        [("bo@example".to_owned(), "admin".to_owned())]
    );
}

// The same tests on PostgreSQL, each on a fresh database there.
on_postgres! {
    console_users_are_added_with_a_hashed_password_listed_and_removed,
}
