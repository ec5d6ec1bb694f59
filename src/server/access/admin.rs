//! The admin token: who may reload the policy and watch the live page.
//!
//! Place in the pipeline: asked by the admin and dashboard endpoints. With
//! `server.admin_token_env` set, a request must carry that token, either as
//! a bearer token (`Authorization: Bearer <token>`, for scripts) or as the
//! password of HTTP Basic authentication (any user name; what a browser
//! sends after its login prompt, and on every fetch of the page after);
//! compared in constant time. Without a token everything is open. Must not
//! log or echo what was presented.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use http::{HeaderMap, header};

use super::keys::constant_time_eq;
use crate::api::{ErrorKind, GatewayError};
use crate::config::Secret;

/// Whether `headers` carry the admin token (or none is configured).
pub(crate) fn authorized(token: Option<&Secret>, headers: &HeaderMap) -> bool {
    let Some(token) = token else {
        return true;
    };
    let want = token.expose().as_bytes();
    headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| match presented(v) {
            // Length-independent comparison of the whole token.
            Some(given) => constant_time_eq(want, &given),
            None => false,
        })
}

/// The token in one `Authorization` value: a bearer token, or a Basic
/// password.
fn presented(value: &str) -> Option<Vec<u8>> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        Some(rest.as_bytes().to_vec())
    } else if scheme.eq_ignore_ascii_case("basic") {
        let decoded = B64.decode(rest).ok()?;
        let colon = decoded.iter().position(|&b| b == b':')?;
        Some(decoded[colon + 1..].to_vec())
    } else {
        None
    }
}

/// The refusal: 401, with a Basic challenge so that a browser asks for it.
pub(crate) fn refused() -> GatewayError {
    GatewayError::new(
        ErrorKind::Unauthorized,
        "A valid admin token is required (as a bearer token, or as the password of HTTP Basic \
         authentication).",
    )
    .with_code(ADMIN_TOKEN_CODE)
}

/// The error code of [`refused`]; `server::http` adds the challenge for it.
pub(crate) const ADMIN_TOKEN_CODE: &str = "invalid_admin_token";

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn bearer_or_basic_password_is_accepted() {
        let token = Secret::new("admin-token-123".into());
        let t = Some(&token);
        assert!(authorized(t, &with("Bearer admin-token-123")));
        let basic = B64.encode("anyone:admin-token-123");
        assert!(authorized(t, &with(&format!("Basic {basic}"))));
        for wrong in [
            "Bearer admin-token-12".to_string(),
            "Bearer admin-token-1234".to_string(),
            format!("Basic {}", B64.encode("admin-token-123:nope")),
            format!("Basic {}", B64.encode("admin-token-123")),
            "Basic !!!".to_string(),
            "admin-token-123".to_string(),
        ] {
            assert!(!authorized(t, &with(&wrong)), "{wrong}");
        }
        assert!(!authorized(t, &HeaderMap::new()));
        assert!(authorized(None, &HeaderMap::new()), "no token: open");
    }
}
