//! The console's HTML, server-rendered by maud: every value is escaped
//! unless marked otherwise, and no page has an inline script or style (the
//! Content-Security-Policy forbids them).

use maud::{html, Markup, DOCTYPE};

/// The one stylesheet, served from /console/style.css.
pub(super) const STYLE: &str = "\
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d1d1f;background:#f5f5f7}\
header{background:#1d1d1f;color:#fff;padding:.6em 1.2em;display:flex;justify-content:space-between;align-items:center}\
header form{margin:0}main{max-width:60em;margin:2em auto;padding:0 1.2em}\
.card{background:#fff;border-radius:8px;padding:1.5em;max-width:24em;margin:3em auto;box-shadow:0 1px 3px #0002}\
label{display:block;margin:.8em 0 .2em}input{width:100%;padding:.5em;box-sizing:border-box;font:inherit}\
button{margin-top:1em;padding:.5em 1.2em;font:inherit;cursor:pointer}\
.error{color:#b00020;margin:.8em 0}";

fn page(title: &str, signed_in: Option<(&str, &str, &str)>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · appstore-ledger" }
                link rel="stylesheet" href="/console/style.css";
            }
            body {
                header {
                    strong { "appstore-ledger console" }
                    @if let Some((name, role, csrf)) = signed_in {
                        form method="post" action="/console/logout" {
                            span { (name) " (" (role) ") " }
                            input type="hidden" name="csrf" value=(csrf);
                            button type="submit" id="logout" { "Sign out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// The sign-in form; `error` says why the last attempt failed.
pub(super) fn login(csrf: &str, user_name: &str, error: Option<&str>) -> Markup {
    page(
        "Sign in",
        None,
        html! {
            form.card method="post" action="/console/login" {
                h1 { "Sign in" }
                @if let Some(error) = error {
                    p.error id="error" { (error) }
                }
                input type="hidden" name="csrf" value=(csrf);
                label for="username" { "User name" }
                input id="username" name="username" autocomplete="username" required value=(user_name);
                label for="password" { "Password" }
                input id="password" name="password" type="password" autocomplete="current-password" required;
                button type="submit" id="sign-in" { "Sign in" }
            }
        },
    )
}

/// Where a signed-in agent lands.
pub(super) fn home(user_name: &str, role: &str, csrf: &str) -> Markup {
    page(
        "Console",
        Some((user_name, role, csrf)),
        html! {
            h1 { "Signed in as " (user_name) }
            p { "Role: " (role) "." }
        },
    )
}

/// A page that only says something: the console is off, a form expired.
pub(super) fn message(title: &str, text: &str) -> Markup {
    page(
        title,
        None,
        html! {
            div.card {
                h1 { (title) }
                p { (text) }
                p { a href="/console/login" { "Sign in" } }
            }
        },
    )
}
