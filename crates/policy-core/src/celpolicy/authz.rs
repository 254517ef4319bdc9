//! The authorization modes of ValidatingPolicies (`evaluation.mode: Envoy` and `HTTP`, from
//! Kyverno's authz servers), as upstream's CLI evaluates them on `envoyPayloads` and
//! `httpPayloads`.
//!
//! The payload (an Envoy or HTTP `CheckRequest`) is `object`. Each validation evaluates to a
//! response or null; the first response decides: built from `envoy.Allowed()` /
//! `http.Allowed()` the request passes, from `envoy.Denied(code)` / `http.Denied(reason)` it
//! fails. When every validation gives null (or a match condition is false) the request is
//! skipped. The builders take `WithBody(text)` and `WithHeader(name, value)` and end with
//! `Response()`. `jwt.Decode(token, key)` reads an HS256-signed JSON Web Token into
//! `{Valid, Header, Claims}`; `Valid` is false for a wrong signature or outside `nbf`..`exp`.
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use kube_cel::cel::extractors::This;
use kube_cel::cel::objects::Opaque;
use kube_cel::cel::{Context, FunctionContext, ResolveResult, Value as CelValue};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::cel;

/// Registers the authorization functions in the root environment.
pub fn register(context: &mut Context<'_>) {
    context.add_function("envoy.Allowed", envoy_allowed);
    context.add_function("envoy.Denied", envoy_denied);
    context.add_function("http.Allowed", http_allowed);
    context.add_function("http.Denied", http_denied);
    context.add_function("WithBody", with_body);
    context.add_function("WithHeader", with_header);
    context.add_function("Response", response);
    context.add_function("jwt.Decode", jwt_decode);
}

/// What an authorization response decides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The request is allowed.
    Allowed,
    /// Envoy denies with an HTTP status code.
    DeniedWithStatus(i64),
    /// The HTTP authorizer denies with a reason.
    DeniedWithReason(String),
}

/// An authorization response (or its builder), as CEL sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthorizationResponse {
    /// The decision.
    pub decision: Decision,
    /// Headers added to the response.
    pub headers: Vec<(String, String)>,
    /// The response body.
    pub body: String,
}

impl Opaque for AuthorizationResponse {
    fn runtime_type_name(&self) -> &str {
        "kyverno.authz.response"
    }
}

impl AuthorizationResponse {
    fn value(decision: Decision) -> CelValue {
        CelValue::Opaque(Arc::new(Self {
            decision,
            headers: Vec::new(),
            body: String::new(),
        }))
    }

    /// The response a validation evaluated to, if it is one.
    pub fn of(value: &CelValue) -> Option<&Self> {
        match value {
            CelValue::Opaque(opaque) => opaque.downcast_ref::<Self>(),
            _ => None,
        }
    }

    /// The upstream CLI's status and message for this response.
    pub fn outcome(&self) -> (bool, String) {
        match &self.decision {
            Decision::Allowed => (true, "request allowed".to_owned()),
            Decision::DeniedWithStatus(code) => {
                (false, format!("request denied with status code {code}"))
            }
            Decision::DeniedWithReason(reason) => {
                (false, format!("request denied, reason: {reason}"))
            }
        }
    }
}

fn envoy_allowed() -> ResolveResult {
    Ok(AuthorizationResponse::value(Decision::Allowed))
}

fn envoy_denied(code: i64) -> ResolveResult {
    Ok(AuthorizationResponse::value(Decision::DeniedWithStatus(
        code,
    )))
}

fn http_allowed() -> ResolveResult {
    Ok(AuthorizationResponse::value(Decision::Allowed))
}

fn http_denied(reason: Arc<String>) -> ResolveResult {
    Ok(AuthorizationResponse::value(Decision::DeniedWithReason(
        reason.as_ref().clone(),
    )))
}

fn builder<'v>(
    ftx: &FunctionContext,
    this: &'v CelValue,
) -> Result<&'v AuthorizationResponse, kube_cel::cel::ExecutionError> {
    AuthorizationResponse::of(this).ok_or_else(|| {
        ftx.error(format!(
            "{} needs an authorization response, got {}",
            ftx.name,
            cel::type_name(this)
        ))
    })
}

fn with_body(
    ftx: &FunctionContext,
    This(this): This<CelValue>,
    body: Arc<String>,
) -> ResolveResult {
    let mut response = builder(ftx, &this)?.clone();
    response.body = body.as_ref().clone();
    Ok(CelValue::Opaque(Arc::new(response)))
}

fn with_header(
    ftx: &FunctionContext,
    This(this): This<CelValue>,
    name: Arc<String>,
    value: Arc<String>,
) -> ResolveResult {
    let mut response = builder(ftx, &this)?.clone();
    response
        .headers
        .push((name.as_ref().clone(), value.as_ref().clone()));
    Ok(CelValue::Opaque(Arc::new(response)))
}

fn response(ftx: &FunctionContext, This(this): This<CelValue>) -> ResolveResult {
    builder(ftx, &this)?;
    Ok(this)
}

/// `jwt.Decode(token, key)`: the token's header and claims, and whether its HS256 signature
/// matches `key` and the current time is within its `nbf`/`exp` claims.
fn jwt_decode(ftx: &FunctionContext, token: Arc<String>, key: Arc<String>) -> ResolveResult {
    let decoded = decode_jwt(&token, key.as_bytes(), chrono::Utc::now().timestamp())
        .map_err(|error| ftx.error(error))?;
    Ok(cel::from_json(&decoded))
}

fn decode_jwt(token: &str, key: &[u8], now: i64) -> Result<Value, String> {
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("token is malformed: token contains an invalid number of segments".to_owned());
    };
    let segment = |text: &str| -> Result<Value, String> {
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .map_err(|error| format!("token is malformed: {error}"))?;
        serde_json::from_slice(&bytes).map_err(|error| format!("token is malformed: {error}"))
    };
    let header_value = segment(header)?;
    let claims_value = segment(claims)?;
    let signed = header_value.get("alg").and_then(Value::as_str) == Some("HS256")
        && URL_SAFE_NO_PAD
            .decode(signature.trim_end_matches('='))
            .ok()
            .is_some_and(|signature| {
                Hmac::<Sha256>::new_from_slice(key).is_ok_and(|mut mac| {
                    mac.update(format!("{header}.{claims}").as_bytes());
                    mac.verify_slice(&signature).is_ok()
                })
            });
    let claim = |name| claims_value.get(name).and_then(Value::as_f64);
    let current = claim("exp").is_none_or(|exp| (now as f64) < exp)
        && claim("nbf").is_none_or(|nbf| (now as f64) >= nbf);
    Ok(json!({
        "Valid": signed && current,
        "Header": header_value,
        "Claims": claims_value,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// HS256 with key `secret`: exp 2241081539, nbf 1514851139, role admin.
    const TOKEN: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJleHAiOjIyNDEwODE1MzksIm5iZiI6MTUxNDg1MTEzOSwicm9sZSI6ImFkbWluIiwic3ViIjoiWVd4cFkyVT0ifQ.veMeVDYlulTdieeX-jxFZ_tCmqQ_K8rwx2OktUHv5Z0";

    fn evaluate(expression: &str) -> Result<CelValue, crate::cel::CelError> {
        crate::cel::Program::compile(expression)
            .expect("compiles")
            .evaluate(&crate::cel::scope())
    }

    fn decision(expression: &str) -> AuthorizationResponse {
        let value = evaluate(expression).expect("evaluates");
        AuthorizationResponse::of(&value)
            .expect("a response")
            .clone()
    }

    #[test]
    fn builders_make_responses() {
        assert_eq!(
            decision("envoy.Allowed().Response()").outcome(),
            (true, "request allowed".to_owned())
        );
        let denied =
            decision("envoy.Denied(403).WithBody('Unauthorized').WithHeader('a', 'b').Response()");
        assert_eq!(denied.decision, Decision::DeniedWithStatus(403));
        assert_eq!(denied.body, "Unauthorized");
        assert_eq!(denied.headers, [("a".to_owned(), "b".to_owned())]);
        assert_eq!(
            denied.outcome(),
            (false, "request denied with status code 403".to_owned())
        );
        assert_eq!(
            decision("http.Denied('not allowed').Response()").outcome(),
            (false, "request denied, reason: not allowed".to_owned())
        );
        assert!(decision("http.Allowed().Response()").outcome().0);
        assert!(evaluate("'x'.Response()").is_err());
    }

    #[test]
    fn jwt_signature_and_time_window() {
        let decoded = decode_jwt(TOKEN, b"secret", 1_700_000_000).expect("decodes");
        assert_eq!(decoded["Valid"], json!(true));
        assert_eq!(decoded["Claims"]["role"], json!("admin"));
        assert_eq!(decoded["Header"]["alg"], json!("HS256"));
        assert_eq!(
            decode_jwt(TOKEN, b"wrong", 1_700_000_000).expect("decodes")["Valid"],
            json!(false)
        );
        assert_eq!(
            decode_jwt(TOKEN, b"secret", 2_300_000_000).expect("decodes")["Valid"],
            json!(false)
        );
        assert_eq!(
            decode_jwt(TOKEN, b"secret", 1_000_000_000).expect("decodes")["Valid"],
            json!(false)
        );
        assert!(decode_jwt("not-a-token", b"secret", 0).is_err());
        let value = evaluate(&format!("jwt.Decode('{TOKEN}', 'secret').Claims.role")).expect("ok");
        assert_eq!(value, CelValue::String(Arc::new("admin".to_owned())));
    }
}
