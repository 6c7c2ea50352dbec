//! Which app and environment a token must belong to.

use crate::model::Environment;

use super::error::VerifyError;

/// What the caller expects of a token's content. An empty list or `None`
/// checks nothing: the CLI checks only what it is told to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpectedIdentity {
    /// Accepted bundle ids; empty accepts any.
    pub bundle_ids: Vec<String>,
    /// Accepted environments; empty accepts any.
    pub environments: Vec<Environment>,
    /// The app's Apple ID. Required to be present and equal in Production
    /// payloads; Sandbox payloads may omit it, but may not contradict it.
    pub app_apple_id: Option<i64>,
}

/// The app and environment a payload names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PayloadIdentity {
    pub bundle_id: Option<String>,
    pub environment: Option<Environment>,
    pub app_apple_id: Option<i64>,
}

impl ExpectedIdentity {
    /// Accepts any app in any environment.
    pub fn any() -> Self {
        ExpectedIdentity::default()
    }

    pub fn check(&self, found: &PayloadIdentity) -> Result<(), VerifyError> {
        self.check_bundle_id(found.bundle_id.as_deref())?;
        self.check_environment(found.environment.as_ref())?;
        self.check_app_apple_id(found.environment.as_ref(), found.app_apple_id)
    }

    pub(crate) fn check_bundle_id(&self, found: Option<&str>) -> Result<(), VerifyError> {
        if self.bundle_ids.is_empty()
            || found.is_some_and(|b| self.bundle_ids.iter().any(|e| e == b))
        {
            return Ok(());
        }
        Err(VerifyError::BundleMismatch {
            expected: self.bundle_ids.join(" or "),
            found: found.unwrap_or("nothing").to_owned(),
        })
    }

    pub(crate) fn check_environment(&self, found: Option<&Environment>) -> Result<(), VerifyError> {
        if self.environments.is_empty() || found.is_some_and(|f| self.environments.contains(f)) {
            return Ok(());
        }
        Err(VerifyError::EnvironmentMismatch {
            expected: self
                .environments
                .iter()
                .map(Environment::as_str)
                .collect::<Vec<_>>()
                .join(" or "),
            found: found.map_or("nothing", Environment::as_str).to_owned(),
        })
    }

    fn check_app_apple_id(
        &self,
        environment: Option<&Environment>,
        found: Option<i64>,
    ) -> Result<(), VerifyError> {
        let Some(expected) = self.app_apple_id else {
            return Ok(());
        };
        let required = environment == Some(&Environment::Production);
        match found {
            Some(found) if found == expected => Ok(()),
            None if !required => Ok(()),
            other => Err(VerifyError::AppAppleIdMismatch {
                expected: expected.to_string(),
                found: other.map_or("nothing".to_owned(), |id| id.to_string()),
            }),
        }
    }
}

/// Checks that a nested token agrees with its envelope on a value both carry.
pub(crate) fn agree<T: PartialEq + ToString>(
    envelope: Option<&T>,
    nested: Option<&T>,
    mismatch: impl FnOnce(String, String) -> VerifyError,
) -> Result<(), VerifyError> {
    match (envelope, nested) {
        (Some(e), Some(n)) if e != n => Err(mismatch(e.to_string(), n.to_string())),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(bundle: &str, env: Environment, app: Option<i64>) -> PayloadIdentity {
        PayloadIdentity {
            bundle_id: Some(bundle.into()),
            environment: Some(env),
            app_apple_id: app,
        }
    }

    #[test]
    fn empty_expectation_accepts_anything() {
        assert!(ExpectedIdentity::any()
            .check(&PayloadIdentity::default())
            .is_ok());
    }

    #[test]
    fn app_apple_id_is_required_in_production_only() {
        let expected = ExpectedIdentity {
            app_apple_id: Some(42),
            ..ExpectedIdentity::any()
        };
        assert!(expected
            .check(&found("a", Environment::Sandbox, None))
            .is_ok());
        assert!(expected
            .check(&found("a", Environment::Production, Some(42)))
            .is_ok());
        assert_eq!(
            expected
                .check(&found("a", Environment::Production, None))
                .unwrap_err()
                .code(),
            "APP_APPLE_ID_MISMATCH"
        );
        assert_eq!(
            expected
                .check(&found("a", Environment::Sandbox, Some(7)))
                .unwrap_err()
                .code(),
            "APP_APPLE_ID_MISMATCH"
        );
    }

    #[test]
    fn several_bundles_and_environments() {
        let expected = ExpectedIdentity {
            bundle_ids: vec!["a".into(), "b".into()],
            environments: vec![Environment::Sandbox],
            app_apple_id: None,
        };
        assert!(expected
            .check(&found("b", Environment::Sandbox, None))
            .is_ok());
        assert_eq!(
            expected
                .check(&found("c", Environment::Sandbox, None))
                .unwrap_err(),
            VerifyError::BundleMismatch {
                expected: "a or b".into(),
                found: "c".into()
            }
        );
        assert_eq!(
            expected
                .check(&found("a", Environment::Production, None))
                .unwrap_err()
                .code(),
            "ENVIRONMENT_MISMATCH"
        );
    }
}
