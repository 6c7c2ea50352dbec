//! Console users: names, roles and argon2id password hashes. Pure
//! functions; the store keeps the users, the CLI adds and removes them.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// Fewer characters than this are refused: the console shows customers'
/// purchases.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Bounds the work a login asks of argon2.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// What a console user may see: support the customer pages, admin also
/// the access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    Support,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Support => "support",
            Role::Admin => "admin",
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UserError {
    #[error("a user name is 1 to 64 letters, digits, '.', '_', '-' or '@'")]
    InvalidName,
    #[error("the password is shorter than {MIN_PASSWORD_CHARS} characters")]
    PasswordTooShort,
    #[error("the password is longer than {MAX_PASSWORD_BYTES} bytes")]
    PasswordTooLong,
    #[error("the password cannot be hashed: {0}")]
    Hash(String),
}

impl UserError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            UserError::InvalidName => "INVALID_USER_NAME",
            UserError::PasswordTooShort => "PASSWORD_TOO_SHORT",
            UserError::PasswordTooLong => "PASSWORD_TOO_LONG",
            UserError::Hash(_) => "PASSWORD_HASH_FAILED",
        }
    }
}

pub fn check_name(name: &str) -> Result<(), UserError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@');
    if (1..=64).contains(&name.len()) && name.chars().all(allowed) {
        Ok(())
    } else {
        Err(UserError::InvalidName)
    }
}

/// The most characters of a typed user name that sign-in keeps to count
/// failures by: a name is at most 64, and a longer one is no user's.
const MAX_KEY_CHARS: usize = 80;

/// What failed sign-ins are counted by for the name typed: its lower case
/// (names are unique regardless of case, so `ANA` and `ana` share one
/// count), control characters written as `\u{..}` escapes (a NUL cannot be
/// stored in PostgreSQL's text), at most [`MAX_KEY_CHARS`] characters.
pub fn failure_key(typed: &str) -> String {
    typed
        .chars()
        .take(MAX_KEY_CHARS)
        .flat_map(char::to_lowercase)
        .map(|c| {
            if c.is_control() {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// An argon2id hash of `password` with a fresh salt, as a PHC string.
pub fn hash_password(password: &str) -> Result<String, UserError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(UserError::PasswordTooShort);
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(UserError::PasswordTooLong);
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| UserError::Hash(e.to_string()))
}

/// Whether `password` is the one `hash` was made from; false for a hash
/// that does not parse.
pub fn verify_password(hash: &str, password: &str) -> bool {
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    PasswordHash::new(hash).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_is_argon2id_salted_and_verifies_only_its_password() {
        let first = hash_password("correct horse battery").unwrap();
        let second = hash_password("correct horse battery").unwrap();
        assert!(first.starts_with("$argon2id$v=19$"), "{first}");
        assert_ne!(first, second, "a fresh salt each time");
        assert!(verify_password(&first, "correct horse battery"));
        assert!(!verify_password(&first, "correct horse batterY"));
        assert!(!verify_password("not a hash", "correct horse battery"));
    }

    #[test]
    fn failures_are_counted_by_a_bounded_lower_case_key_without_control_characters() {
        assert_eq!(failure_key("Ana.Support"), "ana.support");
        assert_eq!(failure_key("ana\0x\nINFO"), "ana\\u{0}x\\u{a}info");
        assert_eq!(failure_key(&"A".repeat(1000)), "a".repeat(80));
    }

    #[test]
    fn names_and_passwords_are_checked() {
        assert_eq!(check_name("ana.support@example"), Ok(()));
        for name in ["", "has space", "<script>", &"a".repeat(65)] {
            assert_eq!(check_name(name), Err(UserError::InvalidName), "{name}");
        }
        assert_eq!(
            hash_password("eleven char"),
            Err(UserError::PasswordTooShort)
        );
        assert_eq!(
            hash_password(&"x".repeat(MAX_PASSWORD_BYTES + 1)),
            Err(UserError::PasswordTooLong)
        );
    }
}
