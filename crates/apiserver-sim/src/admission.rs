//! Calls to Mutating- and ValidatingWebhookConfigurations, as the API server's admission chain
//! makes them: rules, namespaceSelector, objectSelector, failurePolicy, timeoutSeconds,
//! `matchConditions` (CEL, see [`crate::matchconditions`]), caBundle-verified HTTPS, JSONPatch
//! responses, warnings and denials.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::matchconditions::{MatchInput, Matcher};
use crate::resources::ResourceType;
use crate::selector::{LabelSelector, labels_of};
use crate::server::Shared;
use crate::{UserInfo, merge};

/// Everything a webhook learns about a request.
pub struct Attributes<'a> {
    /// The resource type.
    pub rt: &'a ResourceType,
    /// Subresource (`""` or `status`).
    pub sub: &'a str,
    /// `CREATE`, `UPDATE` or `DELETE`.
    pub operation: &'a str,
    /// Namespace (`""` for cluster-scoped).
    pub namespace: &'a str,
    /// Object name.
    pub name: &'a str,
    /// The old object (UPDATE, DELETE).
    pub old: Option<&'a Value>,
    /// The requesting user.
    pub user: &'a UserInfo,
    /// Whether this is a dry run.
    pub dry_run: bool,
    /// The `options` object (CreateOptions, UpdateOptions, DeleteOptions).
    pub options: Value,
}

fn strs(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn rule_matches(rule: &Value, attrs: &Attributes<'_>) -> bool {
    let any = |list: Vec<String>, want: &str| list.iter().any(|x| x == "*" || x == want);
    if !any(strs(rule.get("operations")), attrs.operation) {
        return false;
    }
    if !any(strs(rule.get("apiGroups")), &attrs.rt.group) {
        return false;
    }
    if !any(strs(rule.get("apiVersions")), &attrs.rt.version) {
        return false;
    }
    let res_ok = strs(rule.get("resources")).iter().any(|r| {
        let (res, sub) = match r.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (r.as_str(), None),
        };
        let res_match = res == "*" || res == attrs.rt.plural;
        let sub_match = match sub {
            None => attrs.sub.is_empty(),
            Some("*") => true,
            Some(s) => s == attrs.sub,
        };
        res_match && sub_match
    });
    if !res_ok {
        return false;
    }
    match rule.get("scope").and_then(Value::as_str).unwrap_or("*") {
        "Cluster" => !attrs.rt.namespaced,
        "Namespaced" => attrs.rt.namespaced,
        _ => true,
    }
}

/// Whether a webhook applies to a request.
fn webhook_applies(
    hook: &Value,
    attrs: &Attributes<'_>,
    object: Option<&Value>,
    namespace: Option<&Value>,
) -> Result<bool, ApiError> {
    let rules = hook
        .get("rules")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !rules.iter().any(|r| rule_matches(r, attrs)) {
        return Ok(false);
    }
    let bad = |e: String| ApiError::internal(format!("invalid selector in webhook: {e}"));
    let ns_sel = LabelSelector::from_object(hook.get("namespaceSelector")).map_err(bad)?;
    if !ns_sel.is_empty() {
        let is_ns = attrs.rt.group.is_empty() && attrs.rt.plural == "namespaces";
        let ok = if is_ns {
            object.is_some_and(|o| ns_sel.matches_object(o))
                || attrs.old.is_some_and(|o| ns_sel.matches_object(o))
        } else if attrs.rt.namespaced {
            ns_sel.matches(&namespace.map(labels_of).unwrap_or_default())
        } else {
            true
        };
        if !ok {
            return Ok(false);
        }
    }
    let obj_sel = LabelSelector::from_object(hook.get("objectSelector")).map_err(bad)?;
    if !obj_sel.is_empty() {
        let ok = object.is_some_and(|o| obj_sel.matches_object(o))
            || attrs.old.is_some_and(|o| obj_sel.matches_object(o));
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

fn review(attrs: &Attributes<'_>, object: Option<&Value>, uid: &str, version: &str) -> Value {
    let rt = attrs.rt;
    let kind = json!({"group": rt.group, "version": rt.version, "kind": rt.kind});
    let resource = json!({"group": rt.group, "version": rt.version, "resource": rt.plural});
    let mut req = json!({
        "uid": uid,
        "kind": kind,
        "resource": resource,
        "requestKind": kind,
        "requestResource": resource,
        "name": attrs.name,
        "operation": attrs.operation,
        "userInfo": {
            "username": attrs.user.username,
            "uid": attrs.user.uid,
            "groups": attrs.user.groups,
        },
        "object": object.cloned().unwrap_or(Value::Null),
        "oldObject": attrs.old.cloned().unwrap_or(Value::Null),
        "dryRun": attrs.dry_run,
        "options": attrs.options,
    });
    if !attrs.sub.is_empty() {
        req["subResource"] = json!(attrs.sub);
        req["requestSubResource"] = json!(attrs.sub);
    }
    if !attrs.namespace.is_empty() {
        req["namespace"] = json!(attrs.namespace);
    }
    json!({"apiVersion": format!("admission.k8s.io/{version}"), "kind": "AdmissionReview", "request": req})
}

/// Where and how to reach a webhook.
struct Target {
    addr: SocketAddr,
    server_name: String,
    host: String,
    path: String,
    display_url: String,
}

fn resolve(shared: &Shared, cc: &Value, timeout: u64) -> Result<Target, String> {
    if let Some(url) = cc.get("url").and_then(Value::as_str) {
        let u = url::Url::parse(url).map_err(|e| format!("invalid webhook url {url:?}: {e}"))?;
        if u.scheme() != "https" {
            return Err(format!("webhook url {url:?} must use https"));
        }
        let host = u.host_str().ok_or("webhook url without host")?.to_string();
        let port = u.port().unwrap_or(443);
        let host_trim = host.trim_start_matches('[').trim_end_matches(']');
        let addr = if let Ok(ip) = host_trim.parse::<std::net::IpAddr>() {
            SocketAddr::new(ip, port)
        } else if host == "localhost" {
            SocketAddr::from(([127, 0, 0, 1], port))
        } else {
            shared
                .service_addr(&host)
                .ok_or_else(|| format!("no address mapped for host {host:?}"))?
        };
        let mut path = u.path().to_string();
        if let Some(q) = u.query() {
            path = format!("{path}?{q}&timeout={timeout}s");
        } else {
            path = format!("{path}?timeout={timeout}s");
        }
        return Ok(Target {
            addr,
            server_name: host_trim.to_string(),
            host: format!("{host}:{port}"),
            path,
            display_url: format!("{url}?timeout={timeout}s"),
        });
    }
    let svc = cc
        .get("service")
        .ok_or("webhook clientConfig has neither url nor service")?;
    let name = svc.get("name").and_then(Value::as_str).unwrap_or("");
    let ns = svc.get("namespace").and_then(Value::as_str).unwrap_or("");
    let port = svc.get("port").and_then(Value::as_u64).unwrap_or(443);
    let path = svc.get("path").and_then(Value::as_str).unwrap_or("/");
    let dns = format!("{name}.{ns}.svc");
    let addr = shared
        .service_addr(&format!("{name}.{ns}"))
        .ok_or_else(|| format!("service \"{ns}/{name}\" has no address mapped in the simulator"))?;
    Ok(Target {
        addr,
        server_name: dns.clone(),
        host: format!("{dns}:{port}"),
        path: format!("{path}?timeout={timeout}s"),
        display_url: format!("https://{dns}:{port}{path}?timeout={timeout}s"),
    })
}

async fn post(
    target: &Target,
    tls: std::sync::Arc<rustls::ClientConfig>,
    body: Vec<u8>,
) -> Result<Value, String> {
    let tcp = tokio::net::TcpStream::connect(target.addr)
        .await
        .map_err(|e| format!("dial tcp {}: {e}", target.addr))?;
    let name = rustls::pki_types::ServerName::try_from(target.server_name.clone())
        .map_err(|e| format!("invalid server name: {e}"))?;
    let tls_stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("tls: failed to verify certificate: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls_stream))
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(conn);
    let req = http::Request::post(&target.path)
        .header(http::header::HOST, &target.host)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    driver.abort();
    if !status.is_success() {
        return Err(format!(
            "expected webhook response status 200, got {}: {}",
            status.as_u16(),
            String::from_utf8_lossy(&bytes)
        ));
    }
    serde_json::from_slice(&bytes).map_err(|e| format!("failed to decode webhook response: {e}"))
}

/// The outcome of one webhook call.
enum Outcome {
    Allowed {
        patch: Option<Value>,
        warnings: Vec<String>,
    },
    Denied(ApiError, Vec<String>),
}

async fn call(
    shared: &Shared,
    hook: &Value,
    attrs: &Attributes<'_>,
    object: Option<&Value>,
) -> Result<Outcome, String> {
    let timeout = hook
        .get("timeoutSeconds")
        .and_then(Value::as_u64)
        .unwrap_or(10)
        .clamp(1, 30);
    let cc = hook.get("clientConfig").cloned().unwrap_or(json!({}));
    let target = resolve(shared, &cc, timeout)?;
    let ca = match cc.get("caBundle").and_then(Value::as_str) {
        Some(b) if !b.is_empty() => base64::engine::general_purpose::STANDARD
            .decode(b)
            .map_err(|e| format!("invalid caBundle: {e}"))?,
        _ => shared.ca_pem.as_bytes().to_vec(),
    };
    let tls = crate::tls::client_config(&ca).map_err(|e| e.to_string())?;
    let versions = strs(hook.get("admissionReviewVersions"));
    let version = if versions.is_empty() || versions.iter().any(|v| v == "v1") {
        "v1"
    } else {
        "v1beta1"
    };
    let uid = crate::new_uid();
    let body =
        serde_json::to_vec(&review(attrs, object, &uid, version)).map_err(|e| e.to_string())?;
    let fut = post(&target, tls, body);
    let resp = match tokio::time::timeout(Duration::from_secs(timeout), fut).await {
        Ok(r) => r.map_err(|e| format!("Post \"{}\": {e}", target.display_url))?,
        Err(_) => {
            return Err(format!(
                "Post \"{}\": context deadline exceeded",
                target.display_url
            ));
        }
    };
    let r = resp
        .get("response")
        .ok_or("webhook response has no response field")?;
    if r.get("uid").and_then(Value::as_str) != Some(uid.as_str()) {
        return Err(format!(
            "expected response.uid={uid:?}, got {:?}",
            r.get("uid").and_then(Value::as_str).unwrap_or("")
        ));
    }
    let warnings = strs(r.get("warnings"));
    let name = hook.get("name").and_then(Value::as_str).unwrap_or("");
    if r.get("allowed").and_then(Value::as_bool) != Some(true) {
        let status = r.get("status").cloned().unwrap_or(json!({}));
        let code = status.get("code").and_then(Value::as_u64).unwrap_or(0);
        let code = if code < 400 {
            400
        } else {
            code.min(599) as u16
        };
        let reason = status.get("reason").and_then(Value::as_str).unwrap_or("");
        let msg = status.get("message").and_then(Value::as_str).unwrap_or("");
        let denied = format!("admission webhook \"{name}\" denied the request");
        let message = if !msg.is_empty() {
            format!("{denied}: {msg}")
        } else if !reason.is_empty() {
            format!("{denied}: {reason}")
        } else {
            format!("{denied} without explanation")
        };
        let mut err = ApiError::new(code, reason, message);
        err.details = status.get("details").cloned();
        return Ok(Outcome::Denied(err, warnings));
    }
    let patch = match r.get("patch").and_then(Value::as_str) {
        Some(p) if !p.is_empty() => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(p)
                .map_err(|e| format!("invalid patch encoding: {e}"))?;
            Some(serde_json::from_slice(&bytes).map_err(|e| format!("invalid patch: {e}"))?)
        }
        _ => None,
    };
    Ok(Outcome::Allowed { patch, warnings })
}

/// The webhooks of all configurations of a kind, each with its compiled `matchConditions`.
fn webhook_configs(shared: &Shared, plural: &str) -> Vec<(Value, Arc<Matcher>)> {
    let Ok(state) = shared.state.lock() else {
        return Vec::new();
    };
    let Some(rt) = state
        .registry
        .find("admissionregistration.k8s.io", "v1", plural)
        .cloned()
    else {
        return Vec::new();
    };
    let mut hooks = Vec::new();
    let mut live = HashSet::new();
    for cfg in state.list(&rt, None) {
        let matchers = shared.matchers.get(plural, cfg);
        if let Some(uid) = cfg.pointer("/metadata/uid").and_then(Value::as_str) {
            live.insert(uid.to_string());
        }
        if let Some(ws) = cfg.get("webhooks").and_then(Value::as_array) {
            hooks.extend(ws.iter().cloned().zip(matchers.iter().cloned()));
        }
    }
    shared.matchers.retain(plural, &live);
    hooks
}

/// The `request` variable of match conditions: the AdmissionRequest fields the API server
/// binds (every field present, empty when unset).
fn cel_request(attrs: &Attributes<'_>) -> Value {
    let rt = attrs.rt;
    let kind = json!({"group": rt.group, "version": rt.version, "kind": rt.kind});
    let resource = json!({"group": rt.group, "version": rt.version, "resource": rt.plural});
    json!({
        "kind": kind,
        "resource": resource,
        "subResource": attrs.sub,
        "requestKind": kind,
        "requestResource": resource,
        "requestSubResource": attrs.sub,
        "name": attrs.name,
        "namespace": attrs.namespace,
        "operation": attrs.operation,
        "userInfo": {
            "username": attrs.user.username,
            "uid": attrs.user.uid,
            "groups": attrs.user.groups,
            "extra": {},
        },
        "dryRun": attrs.dry_run,
        "options": attrs.options,
    })
}

/// Evaluates a webhook's `matchConditions`: `Ok(true)` to call it, `Ok(false)` to skip it. An
/// evaluation error skips it under `failurePolicy: Ignore` and rejects the request (403, as
/// the API server's `NewForbidden`) otherwise.
fn conditions_match(
    hook: &Value,
    matcher: &Matcher,
    attrs: &Attributes<'_>,
    object: Option<&Value>,
) -> Result<bool, ApiError> {
    if matcher.is_empty() {
        return Ok(true);
    }
    let request = cel_request(attrs);
    let input = MatchInput {
        object: object.unwrap_or(&Value::Null),
        old_object: attrs.old.unwrap_or(&Value::Null),
        request: &request,
    };
    let err = match matcher.matches(&input) {
        Ok(m) => return Ok(m),
        Err(e) => e,
    };
    let name = hook.get("name").and_then(Value::as_str).unwrap_or("");
    if hook.get("failurePolicy").and_then(Value::as_str) == Some("Ignore") {
        tracing::warn!(
            webhook = name,
            "match conditions failed, skipping webhook: {err}"
        );
        return Ok(false);
    }
    tracing::warn!(
        webhook = name,
        "Failed evaluating match conditions, failing closed: {err}"
    );
    let rt = attrs.rt;
    let message = if attrs.name.is_empty() {
        format!("{} is forbidden: {err}", rt.qualified_plural())
    } else {
        format!(
            "{} \"{}\" is forbidden: {err}",
            rt.qualified_plural(),
            attrs.name
        )
    };
    let mut e = ApiError::forbidden(message);
    let mut details = json!({"name": attrs.name, "kind": rt.plural});
    if !rt.group.is_empty() {
        details["group"] = json!(rt.group);
    }
    e.details = Some(details);
    Err(e)
}

fn namespace_of(shared: &Shared, attrs: &Attributes<'_>) -> Option<Value> {
    if !attrs.rt.namespaced || attrs.namespace.is_empty() {
        return None;
    }
    shared
        .state
        .lock()
        .ok()?
        .namespace(attrs.namespace)
        .cloned()
}

fn exempt(rt: &ResourceType) -> bool {
    rt.group == "admissionregistration.k8s.io"
}

fn failure(hook: &Value, msg: String) -> Option<ApiError> {
    let name = hook.get("name").and_then(Value::as_str).unwrap_or("");
    tracing::warn!(webhook = name, "webhook call failed: {msg}");
    match hook.get("failurePolicy").and_then(Value::as_str) {
        Some("Ignore") => None,
        _ => Some(ApiError::internal(format!(
            "failed calling webhook \"{name}\": failed to call webhook: {msg}"
        ))),
    }
}

/// Runs the mutating webhooks in order (configurations by name, webhooks in order), applying
/// their JSON patches to `object`. Returns the warnings.
pub async fn mutate(
    shared: &Shared,
    attrs: &Attributes<'_>,
    object: &mut Value,
) -> Result<Vec<String>, ApiError> {
    let mut warnings = Vec::new();
    if exempt(attrs.rt) {
        return Ok(warnings);
    }
    let hooks = webhook_configs(shared, "mutatingwebhookconfigurations");
    if hooks.is_empty() {
        return Ok(warnings);
    }
    let ns = namespace_of(shared, attrs);
    for (hook, matcher) in hooks {
        if !webhook_applies(&hook, attrs, Some(object), ns.as_ref())? {
            continue;
        }
        if !conditions_match(&hook, &matcher, attrs, Some(object))
            .map_err(|e| with_warnings(e, warnings.clone()))?
        {
            continue;
        }
        match call(shared, &hook, attrs, Some(object)).await {
            Ok(Outcome::Allowed { patch, warnings: w }) => {
                warnings.extend(w);
                if let Some(p) = patch {
                    merge::json_patch_apply(object, &p).map_err(|e| {
                        ApiError::internal(format!(
                            "failed to apply patch from webhook \"{}\": {e}",
                            hook.get("name").and_then(Value::as_str).unwrap_or("")
                        ))
                    })?;
                }
            }
            Ok(Outcome::Denied(e, w)) => {
                warnings.extend(w);
                return Err(with_warnings(e, warnings));
            }
            Err(msg) => {
                if let Some(e) = failure(&hook, msg) {
                    return Err(with_warnings(e, warnings));
                }
            }
        }
    }
    Ok(warnings)
}

fn with_warnings(mut e: ApiError, warnings: Vec<String>) -> ApiError {
    e.warnings.extend(warnings);
    e
}

/// Runs the validating webhooks (all of them, concurrently, as the API server does).
pub async fn validate(
    shared: &Shared,
    attrs: &Attributes<'_>,
    object: Option<&Value>,
) -> Result<Vec<String>, ApiError> {
    let mut warnings = Vec::new();
    if exempt(attrs.rt) {
        return Ok(warnings);
    }
    let hooks = webhook_configs(shared, "validatingwebhookconfigurations");
    if hooks.is_empty() {
        return Ok(warnings);
    }
    let ns = namespace_of(shared, attrs);
    let mut applicable = Vec::new();
    for (hook, matcher) in hooks {
        if webhook_applies(&hook, attrs, object, ns.as_ref())?
            && conditions_match(&hook, &matcher, attrs, object)?
        {
            applicable.push(hook);
        }
    }
    let results =
        futures::future::join_all(applicable.iter().map(|h| call(shared, h, attrs, object))).await;
    let mut first_err = None;
    for (hook, r) in applicable.iter().zip(results) {
        match r {
            Ok(Outcome::Allowed { warnings: w, .. }) => warnings.extend(w),
            Ok(Outcome::Denied(e, w)) => {
                warnings.extend(w);
                first_err.get_or_insert(e);
            }
            Err(msg) => {
                if let Some(e) = failure(hook, msg) {
                    first_err.get_or_insert(e);
                }
            }
        }
    }
    match first_err {
        Some(e) => Err(with_warnings(e, warnings)),
        None => Ok(warnings),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs<'a>(rt: &'a ResourceType, user: &'a UserInfo, sub: &'a str) -> Attributes<'a> {
        Attributes {
            rt,
            sub,
            operation: "CREATE",
            namespace: "default",
            name: "x",
            old: None,
            user,
            dry_run: false,
            options: json!({}),
        }
    }

    #[test]
    fn rules() {
        let reg = crate::resources::Registry::with_builtins();
        let pods = reg
            .find("", "v1", "pods")
            .cloned()
            .unwrap_or_else(|| unreachable!());
        let user = UserInfo::default();
        let a = attrs(&pods, &user, "");
        let r = |res: &str| json!({"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": [res]});
        assert!(rule_matches(&r("pods"), &a));
        assert!(rule_matches(&r("*"), &a));
        assert!(rule_matches(&r("*/*"), &a));
        assert!(!rule_matches(&r("pods/status"), &a));
        let s = attrs(&pods, &user, "status");
        assert!(rule_matches(&r("pods/status"), &s));
        assert!(rule_matches(&r("*/*"), &s));
        assert!(!rule_matches(&r("pods"), &s));
        let scoped = json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"], "scope": "Cluster"});
        assert!(!rule_matches(&scoped, &a));
    }
}
