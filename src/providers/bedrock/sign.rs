//! AWS Signature Version 4 for Bedrock Runtime requests, through the
//! `aws-sigv4` crate (the signer the AWS SDK for Rust itself uses).
//!
//! Place in the pipeline: the adapter calls [`sign`] on every attempt, right
//! before sending (the signature covers the time, so a retried request is
//! signed again). Adds `Authorization`, `X-Amz-Date`, `x-amz-content-sha256`
//! and, with temporary credentials, `X-Amz-Security-Token`; the path is
//! double-encoded as SigV4 requires for every service but S3.
//!
//! Must not: read credentials from the environment (they are given as
//! values), log or format the secret key or session token, or panic on odd
//! input: everything the crate would `expect` on is checked first.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign as sigv4_sign,
};
use aws_sigv4::sign::v4;
use bytes::Bytes;

/// The SigV4 signing name of Bedrock Runtime.
pub const SERVICE: &str = "bedrock";

/// Static or temporary AWS credentials. `Debug` never shows the secret key
/// or the session token.
#[derive(Clone, PartialEq, Eq)]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl AwsCredentials {
    pub fn new(
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
    ) -> Self {
        AwsCredentials {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token,
        }
    }
}

impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"** redacted **")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "** redacted **"),
            )
            .finish()
    }
}

/// Why a request could not be signed. Never carries credential values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error("the request URI has no host to sign")]
    MissingHost,
    #[error("header `{0}` is not visible ASCII and cannot be signed")]
    InvalidHeader(String),
    #[error("AWS credentials hold characters not allowed in an HTTP header")]
    InvalidCredentials,
    #[error("AWS region must be non-empty lowercase letters, digits and dashes")]
    InvalidRegion,
    #[error("signing time is out of range")]
    InvalidTime,
    #[error("SigV4 signing failed: {0}")]
    Signing(String),
}

/// Signs `request` for Bedrock Runtime in `region` at time `now`, adding the
/// SigV4 headers to it. The body is hashed as it is (`x-amz-content-sha256`).
pub fn sign(
    request: &mut http::Request<Bytes>,
    creds: &AwsCredentials,
    region: &str,
    now: SystemTime,
) -> Result<(), SignError> {
    sign_with(request, creds, region, SERVICE, now, true)
}

/// [`sign`] with the signing name and the body-hash header chosen (the AWS
/// test suite uses service `service` and both header settings).
fn sign_with(
    request: &mut http::Request<Bytes>,
    creds: &AwsCredentials,
    region: &str,
    service: &str,
    now: SystemTime,
    content_sha_header: bool,
) -> Result<(), SignError> {
    check_inputs(request, creds, region, now)?;
    let headers = request
        .headers()
        .iter()
        .map(|(name, value)| {
            value
                .to_str()
                .map(|v| (name.as_str(), v))
                .map_err(|_| SignError::InvalidHeader(name.as_str().to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let uri = request.uri().to_string();
    let signable = SignableRequest::new(
        request.method().as_str(),
        uri,
        headers.into_iter(),
        SignableBody::Bytes(request.body()),
    )
    .map_err(|e| SignError::Signing(e.to_string()))?;

    let mut settings = SigningSettings::default();
    if content_sha_header {
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    }
    let identity = Credentials::new(
        creds.access_key_id.as_str(),
        creds.secret_access_key.as_str(),
        creds.session_token.clone(),
        None,
        "switchyard",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| SignError::Signing(e.to_string()))?
        .into();
    let (instructions, _signature) = sigv4_sign(signable, &params)
        .map_err(|e| SignError::Signing(e.to_string()))?
        .into_parts();
    instructions.apply_to_request_http1x(request);
    Ok(())
}

/// Rejects what `aws-sigv4` would panic on: a URI without a host, header
/// values it cannot represent, times outside years 1970..=9999.
fn check_inputs(
    request: &http::Request<Bytes>,
    creds: &AwsCredentials,
    region: &str,
    now: SystemTime,
) -> Result<(), SignError> {
    if request.uri().host().is_none() && !request.headers().contains_key(http::header::HOST) {
        return Err(SignError::MissingHost);
    }
    let valid_region = !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !valid_region {
        return Err(SignError::InvalidRegion);
    }
    let key_ok = !creds.access_key_id.is_empty()
        && creds.access_key_id.bytes().all(|b| b.is_ascii_graphic());
    let token_ok = creds
        .session_token
        .as_deref()
        .is_none_or(|t| http::HeaderValue::from_str(t).is_ok());
    if !key_ok || !token_ok || creds.secret_access_key.is_empty() {
        return Err(SignError::InvalidCredentials);
    }
    // 9999-12-31T23:59:59Z: the signer formats four-digit years.
    const LAST: Duration = Duration::from_secs(253_402_300_799);
    match now.duration_since(UNIX_EPOCH) {
        Ok(since) if since <= LAST => Ok(()),
        _ => Err(SignError::InvalidTime),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    // From the AWS SigV4 test suite (aws-sig-v4-test-suite, shipped with
    // aws-sigv4 as aws-signing-test-suite/v4): credentials, time and scope.
    const AK: &str = "AKIDEXAMPLE";
    const SK: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const TOKEN: &str = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==";

    fn t20150830() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_440_938_160) // 2015-08-30T12:36:00Z
    }

    fn auth(req: &http::Request<Bytes>) -> &str {
        req.headers()["authorization"].to_str().unwrap()
    }

    #[test]
    fn aws_test_suite_post_x_www_form_urlencoded() {
        let mut req = http::Request::post("https://example.amazonaws.com/")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("content-length", "13")
            .body(Bytes::from_static(b"Param1=value1"))
            .unwrap();
        let creds = AwsCredentials::new(AK, SK, None);
        sign_with(&mut req, &creds, "us-east-1", "service", t20150830(), true).unwrap();
        assert_eq!(
            auth(&req),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=content-length;content-type;host;x-amz-content-sha256;x-amz-date, \
             Signature=d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b"
        );
        assert_eq!(req.headers()["x-amz-date"], "20150830T123600Z");
        assert_eq!(
            req.headers()["x-amz-content-sha256"],
            "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"
        );
    }

    #[test]
    fn aws_test_suite_post_sts_header_before() {
        let mut req = http::Request::post("https://example.amazonaws.com/")
            .body(Bytes::new())
            .unwrap();
        let creds = AwsCredentials::new(AK, SK, Some(TOKEN.to_string()));
        sign_with(&mut req, &creds, "us-east-1", "service", t20150830(), false).unwrap();
        assert_eq!(
            auth(&req),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date;x-amz-security-token, \
             Signature=85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"
        );
        assert_eq!(req.headers()["x-amz-security-token"], TOKEN);
        assert!(req.headers().get("x-amz-content-sha256").is_none());
    }

    fn sha256_hex(data: &[u8]) -> String {
        hex::encode(Sha256::digest(data))
    }

    /// HMAC-SHA256 (RFC 2104), written out so the check below shares no
    /// code with the crate under test.
    fn hmac(key: &[u8], msg: &[u8]) -> Vec<u8> {
        let mut k = [0u8; 64];
        if key.len() > 64 {
            k[..32].copy_from_slice(&Sha256::digest(key));
        } else {
            k[..key.len()].copy_from_slice(key);
        }
        let mut inner = Sha256::new();
        inner.update(k.map(|b| b ^ 0x36));
        inner.update(msg);
        let inner = inner.finalize();
        let mut outer = Sha256::new();
        outer.update(k.map(|b| b ^ 0x5c));
        outer.update(inner);
        outer.finalize().to_vec()
    }

    #[test]
    fn bedrock_request_matches_an_independent_computation() {
        let body = Bytes::from_static(br#"{"messages":[]}"#);
        let mut req = http::Request::post(
            "https://bedrock-runtime.eu-west-1.amazonaws.com/model/amazon.nova-lite-v1%3A0/converse",
        )
        .header("content-type", "application/json")
        .body(body.clone())
        .unwrap();
        let creds = AwsCredentials::new("AKIDTEST", "c2VjcmV0", Some("tok/en+=".into()));
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000); // 2023-11-14T22:13:20Z
        sign(&mut req, &creds, "eu-west-1", now).unwrap();

        let payload = sha256_hex(&body);
        // The path is encoded a second time: `%3A` becomes `%253A`.
        let canonical = format!(
            "POST\n/model/amazon.nova-lite-v1%253A0/converse\n\n\
             content-type:application/json\n\
             host:bedrock-runtime.eu-west-1.amazonaws.com\n\
             x-amz-content-sha256:{payload}\n\
             x-amz-date:20231114T221320Z\n\
             x-amz-security-token:tok/en+=\n\n\
             content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token\n{payload}"
        );
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n20231114T221320Z\n20231114/eu-west-1/bedrock/aws4_request\n{}",
            sha256_hex(canonical.as_bytes())
        );
        let mut key = hmac(b"AWS4c2VjcmV0", b"20231114");
        for part in ["eu-west-1", "bedrock", "aws4_request"] {
            key = hmac(&key, part.as_bytes());
        }
        let signature = hex::encode(hmac(&key, to_sign.as_bytes()));
        assert_eq!(
            auth(&req),
            format!(
                "AWS4-HMAC-SHA256 Credential=AKIDTEST/20231114/eu-west-1/bedrock/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token, \
                 Signature={signature}"
            )
        );
        assert_eq!(req.headers()["x-amz-content-sha256"], payload.as_str());
    }

    #[test]
    fn refuses_what_the_signer_would_panic_on() {
        let creds = AwsCredentials::new(AK, SK, None);
        let now = t20150830();
        let mut no_host = http::Request::post("/model/x/converse")
            .body(Bytes::new())
            .unwrap();
        assert_eq!(
            sign(&mut no_host, &creds, "us-east-1", now),
            Err(SignError::MissingHost)
        );
        let mut req = http::Request::post("https://h.example/")
            .body(Bytes::new())
            .unwrap();
        assert_eq!(
            sign(&mut req, &creds, "us east 1", now),
            Err(SignError::InvalidRegion)
        );
        let bad_token = AwsCredentials::new(AK, SK, Some("line\nbreak".into()));
        assert_eq!(
            sign(&mut req, &bad_token, "us-east-1", now),
            Err(SignError::InvalidCredentials)
        );
        let far = UNIX_EPOCH + Duration::from_secs(300_000_000_000);
        assert_eq!(
            sign(&mut req, &creds, "us-east-1", far),
            Err(SignError::InvalidTime)
        );
        let mut odd = http::Request::post("https://h.example/")
            .header("x-odd", http::HeaderValue::from_bytes(b"caf\xe9").unwrap())
            .body(Bytes::new())
            .unwrap();
        assert_eq!(
            sign(&mut odd, &creds, "us-east-1", now),
            Err(SignError::InvalidHeader("x-odd".into()))
        );
        assert!(req.headers().get("authorization").is_none());
    }

    #[test]
    fn debug_redacts_secrets() {
        let creds = AwsCredentials::new("AKIDVISIBLE", "very-secret", Some("tok-secret".into()));
        let shown = format!("{creds:?}");
        assert!(shown.contains("AKIDVISIBLE"), "{shown}");
        assert!(
            !shown.contains("very-secret") && !shown.contains("tok-secret"),
            "{shown}"
        );
    }
}
