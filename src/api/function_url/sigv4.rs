//! Checking the SigV4 signature of a request to an `AWS_IAM` function URL, as Lambda
//! does: it "calculates the SigV4 signature" itself and "processes the request only if
//! the signatures match" (AWS "Invoking Lambda function URLs").
//!
//! The expected signature is computed by `aws-sigv4` (the AWS SDK's signer) over exactly
//! the headers the client listed in `SignedHeaders`, with the client's `X-Amz-Date`, for
//! service `lambda` in the emulator's region, with the secret of one of the accepted
//! credentials ([`crate::urls::DUMMY_ACCESS_KEY_ID`] and the SDK client's pair). Lambda's
//! 15-minute limit on clock skew applies.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use axum::http::request::Parts;

use crate::urls::ACCEPTED_CREDENTIALS;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const SERVICE: &str = "lambda";
/// How far the request's `X-Amz-Date` may be from now.
const MAX_SKEW: Duration = Duration::from_secs(15 * 60);

/// Who signed a request that passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Caller {
    pub(super) access_key: String,
}

impl Caller {
    /// The IAM user id the caller is reported as (`authorizer.iam.userId`).
    pub(super) fn user_id(&self) -> String {
        format!(
            "AIDA{}",
            self.access_key.to_ascii_uppercase().replace('-', "")
        )
    }

    /// The IAM user ARN the caller is reported as.
    pub(super) fn user_arn(&self, account_id: &str) -> String {
        format!("arn:aws:iam::{account_id}:user/lambda-testkit")
    }
}

/// Why a request was refused (all answered `403 Forbidden`, as Lambda answers them).
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    Unsigned,
    Malformed(&'static str),
    UnknownAccessKey,
    Scope(&'static str),
    Skewed,
    Mismatch,
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…,
/// Signature=…` header.
struct Authorization<'a> {
    access_key: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn parse_authorization(value: &str) -> Result<Authorization<'_>, Refusal> {
    let rest = value
        .strip_prefix(ALGORITHM)
        .ok_or(Refusal::Malformed("not AWS4-HMAC-SHA256"))?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        match part.trim().split_once('=') {
            Some(("Credential", v)) => credential = Some(v),
            Some(("SignedHeaders", v)) => signed = Some(v),
            Some(("Signature", v)) => signature = Some(v),
            _ => {}
        }
    }
    let credential = credential.ok_or(Refusal::Malformed("no Credential"))?;
    let mut scope = credential.split('/');
    let (Some(access_key), Some(date), Some(region), Some(service), Some("aws4_request"), None) = (
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
    ) else {
        return Err(Refusal::Malformed("bad credential scope"));
    };
    Ok(Authorization {
        access_key,
        date,
        region,
        service,
        signed_headers: signed
            .ok_or(Refusal::Malformed("no SignedHeaders"))?
            .split(';')
            .collect(),
        signature: signature.ok_or(Refusal::Malformed("no Signature"))?,
    })
}

/// `X-Amz-Date`: `20240501T120000Z`.
fn parse_amz_date(value: &str) -> Option<SystemTime> {
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let at = time::PrimitiveDateTime::parse(value, &format).ok()?;
    Some(at.assume_utc().into())
}

/// Verifies the signature of the request `parts` with `body`; `region` is the emulator's.
pub(super) fn verify(
    parts: &Parts,
    body: &[u8],
    region: &str,
    now: SystemTime,
) -> Result<Caller, Refusal> {
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let auth = parse_authorization(header("authorization").ok_or(Refusal::Unsigned)?)?;
    let secret = ACCEPTED_CREDENTIALS
        .iter()
        .find(|(key, _)| *key == auth.access_key)
        .map(|(_, secret)| *secret)
        .ok_or(Refusal::UnknownAccessKey)?;
    if auth.service != SERVICE {
        return Err(Refusal::Scope("service is not lambda"));
    }
    if auth.region != region {
        return Err(Refusal::Scope("region is not the emulator's"));
    }
    let amz_date = header("x-amz-date").ok_or(Refusal::Malformed("no X-Amz-Date"))?;
    if !auth.signed_headers.contains(&"x-amz-date") || !auth.signed_headers.contains(&"host") {
        return Err(Refusal::Malformed("host and x-amz-date must be signed"));
    }
    let time = parse_amz_date(amz_date).ok_or(Refusal::Malformed("bad X-Amz-Date"))?;
    if !amz_date.starts_with(auth.date) {
        return Err(Refusal::Scope("credential date is not X-Amz-Date's"));
    }
    let skew = now
        .duration_since(time)
        .or_else(|_| time.duration_since(now))
        .unwrap_or_default();
    if skew > MAX_SKEW {
        return Err(Refusal::Skewed);
    }

    // Exactly the headers the client signed (`host` and `x-amz-date` are added by the
    // signer from the URI and the time).
    let mut signed: Vec<(&str, String)> = Vec::new();
    for name in auth.signed_headers.iter().filter(|n| **n != "x-amz-date") {
        let values: Vec<&str> = parts
            .headers
            .get_all(*name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if values.is_empty() {
            return Err(Refusal::Malformed("a signed header is missing"));
        }
        signed.push((name, values.join(",")));
    }
    let host = header("host").ok_or(Refusal::Malformed("no Host"))?;
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let uri = format!("http://{host}{path_and_query}");
    let body = match header("x-amz-content-sha256") {
        Some(hash) => SignableBody::Precomputed(hash.to_string()),
        None => SignableBody::Bytes(body),
    };
    let signable = SignableRequest::new(
        parts.method.as_str(),
        uri,
        signed.iter().map(|(k, v)| (*k, v.as_str())),
        body,
    )
    .map_err(|_| Refusal::Malformed("unsignable request"))?;

    let identity = Credentials::new(auth.access_key, secret, None, None, "lambda-testkit").into();
    let mut settings = SigningSettings::default();
    // Sign what the client signed, whatever it is (the default leaves out user-agent).
    settings.excluded_headers = None;
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SERVICE)
        .time(time)
        .settings(settings)
        .build()
        .map_err(|_| Refusal::Malformed("signing parameters"))?
        .into();
    let expected = sign(signable, &params).map_err(|_| Refusal::Malformed("unsignable request"))?;
    if expected.signature() != auth.signature {
        return Err(Refusal::Mismatch);
    }
    Ok(Caller {
        access_key: auth.access_key.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::urls::{DUMMY_ACCESS_KEY_ID, DUMMY_SECRET_ACCESS_KEY};

    /// A request signed by aws-sigv4 as a client would sign it.
    fn signed(
        key: &str,
        secret: &str,
        region: &str,
        at: SystemTime,
        body: &'static [u8],
    ) -> axum::http::Request<()> {
        let mut request = axum::http::Request::post("http://127.0.0.1:8080/path/a%20b?x=1&y=%2F")
            .header("host", "127.0.0.1:8080")
            .header("content-type", "application/json")
            .header("x-amz-security-token", "token")
            .body(())
            .unwrap();
        let identity = Credentials::new(key, secret, None, None, "test").into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name("lambda")
            .time(at)
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let signable = SignableRequest::new(
            "POST",
            request.uri().to_string(),
            request
                .headers()
                .iter()
                .map(|(k, v)| (k.as_str(), v.to_str().unwrap())),
            SignableBody::Bytes(body),
        )
        .unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        instructions.apply_to_request_http1x(&mut request);
        // What arrives at a server: origin-form target.
        *request.uri_mut() = "/path/a%20b?x=1&y=%2F".parse().unwrap();
        request
    }

    fn check(
        request: axum::http::Request<()>,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Caller, Refusal> {
        let (parts, ()) = request.into_parts();
        verify(&parts, body, "us-east-1", now)
    }

    #[test]
    fn a_request_signed_with_the_dummy_credentials_passes() {
        let now = SystemTime::now();
        let request = signed(
            DUMMY_ACCESS_KEY_ID,
            DUMMY_SECRET_ACCESS_KEY,
            "us-east-1",
            now,
            b"{}",
        );
        let caller = check(request, b"{}", now).unwrap();
        assert_eq!(caller.access_key, DUMMY_ACCESS_KEY_ID);
    }

    #[test]
    fn tampering_other_keys_regions_and_old_dates_are_refused() {
        let now = SystemTime::now();
        let ok = || {
            signed(
                DUMMY_ACCESS_KEY_ID,
                DUMMY_SECRET_ACCESS_KEY,
                "us-east-1",
                now,
                b"{}",
            )
        };
        assert_eq!(
            check(ok(), b"{\"x\":1}", now),
            Err(Refusal::Mismatch),
            "body changed"
        );
        let mut request = ok();
        *request.uri_mut() = "/path/a%20b?x=2&y=%2F".parse().unwrap();
        assert_eq!(
            check(request, b"{}", now),
            Err(Refusal::Mismatch),
            "query changed"
        );
        let wrong_secret = signed(DUMMY_ACCESS_KEY_ID, "other", "us-east-1", now, b"{}");
        assert_eq!(check(wrong_secret, b"{}", now), Err(Refusal::Mismatch));
        let unknown = signed(
            "AKIAOTHER",
            DUMMY_SECRET_ACCESS_KEY,
            "us-east-1",
            now,
            b"{}",
        );
        assert_eq!(check(unknown, b"{}", now), Err(Refusal::UnknownAccessKey));
        let region = signed(
            DUMMY_ACCESS_KEY_ID,
            DUMMY_SECRET_ACCESS_KEY,
            "eu-west-1",
            now,
            b"{}",
        );
        assert!(matches!(check(region, b"{}", now), Err(Refusal::Scope(_))));
        let old = now - Duration::from_secs(3600);
        let stale = signed(
            DUMMY_ACCESS_KEY_ID,
            DUMMY_SECRET_ACCESS_KEY,
            "us-east-1",
            old,
            b"{}",
        );
        assert_eq!(check(stale, b"{}", now), Err(Refusal::Skewed));
        let unsigned = axum::http::Request::get("/").body(()).unwrap();
        assert_eq!(check(unsigned, b"", now), Err(Refusal::Unsigned));
    }
}
