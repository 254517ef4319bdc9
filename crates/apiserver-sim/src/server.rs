//! The HTTPS front: authentication, routing, and the REST verbs on top of the store.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rand::Rng;
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::UserInfo;
use crate::admission::{self, Attributes};
use crate::error::ApiError;
use crate::events;
use crate::merge;
use crate::resources::ResourceType;
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{self, EventType, Propagation, State, WatchMsg, WatchStart, now_rfc3339};
use crate::table;

/// The HTTP body type of responses.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// State shared by all connections.
pub struct Shared {
    /// The object store.
    pub state: Mutex<State>,
    /// Bearer token -> user.
    pub users: HashMap<String, UserInfo>,
    /// `name.namespace` (services) or host names -> local addresses, for webhook calls.
    pub services: Mutex<HashMap<String, SocketAddr>>,
    /// The CA certificate (PEM), used for webhooks that give no caBundle.
    pub ca_pem: String,
    /// How often watches with `allowWatchBookmarks` get a BOOKMARK.
    pub bookmark_interval: Duration,
    /// Flips to `true` on shutdown.
    pub shutdown: watch::Receiver<bool>,
    /// Compiled webhook `matchConditions`, per configuration version.
    pub matchers: crate::matchconditions::MatcherCache,
}

impl Shared {
    /// Locks the store.
    pub fn lock(&self) -> Result<MutexGuard<'_, State>, ApiError> {
        self.state
            .lock()
            .map_err(|_| ApiError::internal("store lock poisoned"))
    }

    /// The local address a service (`name.namespace`) or host is mapped to.
    pub fn service_addr(&self, key: &str) -> Option<SocketAddr> {
        let map = self.services.lock().ok()?;
        map.get(key)
            .or_else(|| map.get(key.trim_end_matches(".svc")))
            .copied()
    }
}

/// Accepts TLS connections until shutdown.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            res = listener.accept() => {
                let Ok((tcp, _)) = res else { continue };
                let acceptor = acceptor.clone();
                let shared = shared.clone();
                conns.spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let svc = service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(handle(shared, req).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(tls), svc)
                        .await;
                });
            }
        }
    }
    conns.abort_all();
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

fn json_response(code: u16, v: &impl Serialize, warnings: &[String]) -> Response<Body> {
    let body = serde_json::to_vec(v).unwrap_or_default();
    let mut resp = Response::new(full(body));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    add_warnings(resp.headers_mut(), warnings);
    resp
}

fn add_warnings(headers: &mut HeaderMap, warnings: &[String]) {
    for w in warnings {
        let text: String = w
            .chars()
            .map(|c| {
                if c.is_ascii() && !c.is_ascii_control() {
                    c
                } else {
                    '?'
                }
            })
            .collect::<String>()
            .replace('\\', "\\\\")
            .replace('"', "\\\"");
        if let Ok(v) = HeaderValue::from_str(&format!("299 - \"{text}\"")) {
            headers.append(http::header::WARNING, v);
        }
    }
}

fn error_response(e: &ApiError) -> Response<Body> {
    json_response(e.code, &e.to_status(), &e.warnings)
}

/// A parsed request.
struct Req {
    method: Method,
    query: HashMap<String, String>,
    headers: HeaderMap,
    body: Bytes,
    user: UserInfo,
}

impl Req {
    fn q(&self, k: &str) -> Option<&str> {
        self.query
            .get(k)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    fn flag(&self, k: &str) -> bool {
        matches!(self.q(k), Some("true" | "1"))
    }

    fn dry_run(&self) -> bool {
        self.q("dryRun") == Some("All")
    }

    fn accept_table(&self) -> bool {
        self.headers
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("as=Table"))
    }

    fn content_type(&self) -> String {
        self.headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json")
            .to_string()
    }

    fn body_value(&self) -> Result<Value, ApiError> {
        if self.body.is_empty() {
            return Err(ApiError::bad_request("the request body is empty"));
        }
        let ct = self.content_type();
        if ct.contains("protobuf") || ct.contains("cbor") {
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got {ct})"
                ),
            ));
        }
        let text = std::str::from_utf8(&self.body)
            .map_err(|_| ApiError::bad_request("the request body is not UTF-8"))?;
        if ct.contains("yaml") {
            if let Ok(v) = serde_json::from_str::<Value>(text) {
                return Ok(v);
            }
            serde_saphyr::from_str::<Value>(text)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
        } else {
            serde_json::from_str(text).map_err(|e| {
                ApiError::bad_request(format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml: {e}"
                ))
            })
        }
    }
}

fn authenticate(shared: &Shared, headers: &HeaderMap) -> Option<UserInfo> {
    let auth = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let token = auth.strip_prefix("Bearer ")?.trim();
    let mut user = shared.users.get(token)?.clone();
    if let Some(imp) = headers
        .get("Impersonate-User")
        .and_then(|v| v.to_str().ok())
        && user.groups.iter().any(|g| g == "system:masters")
    {
        let groups: Vec<String> = headers
            .get_all("Impersonate-Group")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect();
        user = UserInfo {
            username: imp.to_string(),
            uid: String::new(),
            groups: if groups.is_empty() {
                vec!["system:authenticated".to_string()]
            } else {
                groups
            },
        };
    }
    Some(user)
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let open = matches!(
        path.as_str(),
        "/healthz" | "/livez" | "/readyz" | "/version"
    );
    let user = match authenticate(&shared, &parts.headers) {
        Some(u) => u,
        None if open => UserInfo::default(),
        None => {
            let mut e = ApiError::new(401, "Unauthorized", "Unauthorized");
            e.details = None;
            return error_response(&e);
        }
    };
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return error_response(&ApiError::bad_request(format!("reading body: {e}"))),
    };
    let query: HashMap<String, String> = parts
        .uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let r = Req {
        method: parts.method,
        query,
        headers: parts.headers,
        body,
        user,
    };
    match route(&shared, &path, &r).await {
        Ok(resp) => resp,
        Err(e) => error_response(&e),
    }
}

/// A resolved resource path.
struct Target {
    rt: ResourceType,
    ns: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

async fn route(shared: &Arc<Shared>, path: &str, r: &Req) -> Result<Response<Body>, ApiError> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["healthz"] | ["livez"] | ["readyz"] => {
            let mut resp = Response::new(full("ok"));
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain"),
            );
            return Ok(resp);
        }
        ["version"] => {
            return Ok(json_response(
                200,
                &json!({
                    "major": "1", "minor": "36", "gitVersion": "v1.36.0-apiserver-sim",
                    "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
                    "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.25.0", "compiler": "gc",
                    "platform": "linux/amd64"
                }),
                &[],
            ));
        }
        ["api"] => {
            return Ok(json_response(
                200,
                &json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:443"}]}),
                &[],
            ));
        }
        ["openapi", "v3"] => {
            return Ok(json_response(
                200,
                &openapi_index(&shared.lock()?.registry),
                &[],
            ));
        }
        ["openapi", "v3", "api", "v1"] => {
            let doc = openapi_doc(&shared.lock()?.registry, "", "v1");
            return doc
                .map(|d| json_response(200, &d, &[]))
                .ok_or_else(|| ApiError::no_route(path));
        }
        ["openapi", "v3", "apis", group, version] => {
            let doc = openapi_doc(&shared.lock()?.registry, group, version);
            return doc
                .map(|d| json_response(200, &d, &[]))
                .ok_or_else(|| ApiError::no_route(path));
        }
        ["apis"] => {
            return Ok(json_response(
                200,
                &shared.lock()?.registry.group_list(),
                &[],
            ));
        }
        ["apis", group] => {
            let doc = shared.lock()?.registry.group_doc(group);
            return match doc {
                Some(d) => Ok(json_response(200, &d, &[])),
                None => Err(ApiError::no_route(path)),
            };
        }
        ["api", "v1"] => {
            let doc = shared.lock()?.registry.resource_list("", "v1");
            return doc
                .map(|d| json_response(200, &d, &[]))
                .ok_or_else(|| ApiError::no_route(path));
        }
        ["apis", group, version] => {
            let doc = shared.lock()?.registry.resource_list(group, version);
            return doc
                .map(|d| json_response(200, &d, &[]))
                .ok_or_else(|| ApiError::no_route(path));
        }
        _ => {}
    }
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(ApiError::no_route(path)),
    };
    let target = {
        let st = shared.lock()?;
        let reg = &st.registry;
        let namespaced_path = rest.len() >= 3
            && rest[0] == "namespaces"
            && reg
                .find(group, version, rest[2])
                .is_some_and(|t| t.namespaced);
        let (ns, plural, name, sub, extra) = if namespaced_path {
            (
                Some(rest[1]),
                rest[2],
                rest.get(3),
                rest.get(4),
                rest.len() > 5,
            )
        } else {
            (None, rest[0], rest.get(1), rest.get(2), rest.len() > 3)
        };
        let rt = reg
            .find(group, version, plural)
            .cloned()
            .ok_or_else(|| ApiError::no_route(path))?;
        if extra || (rt.namespaced && name.is_some() && ns.is_none()) {
            return Err(ApiError::no_route(path));
        }
        if let Some(s) = sub
            && !(*s == "status" && rt.status_subresource)
        {
            return Err(ApiError::no_route(path));
        }
        Target {
            rt,
            ns: ns.map(|s| (*s).to_string()),
            name: name.map(|s| (*s).to_string()),
            sub: sub.map(|s| (*s).to_string()),
        }
    };
    dispatch(shared, target, r).await
}

async fn dispatch(shared: &Arc<Shared>, t: Target, r: &Req) -> Result<Response<Body>, ApiError> {
    let rt = &t.rt;
    let sub = t.sub.as_deref().unwrap_or("");
    match (&r.method, &t.name) {
        (&Method::GET, Some(name)) => {
            let ns = t.ns.clone().unwrap_or_default();
            let obj = shared
                .lock()?
                .get(rt, &ns, name)
                .cloned()
                .ok_or_else(|| ApiError::not_found(rt, name))?;
            let obj = rt.present(obj);
            if r.accept_table() {
                let meta = json!({"resourceVersion": rv_of(&obj)});
                return Ok(json_response(
                    200,
                    &table::table(rt, &[obj], meta, r.q("includeObject").unwrap_or("Metadata")),
                    &[],
                ));
            }
            Ok(json_response(200, &obj, &[]))
        }
        (&Method::GET, None) => {
            if r.flag("watch") {
                watch(shared, rt, t.ns.clone(), r)
            } else {
                list(shared, rt, t.ns.as_deref(), r)
            }
        }
        (&Method::POST, None) => {
            let obj = r.body_value()?;
            let ns = t.ns.clone().unwrap_or_default();
            let (created, warnings) = create_object(shared, &r.user, rt, &ns, obj, r, None).await?;
            Ok(json_response(201, &created, &warnings))
        }
        (&Method::PUT, Some(name)) => {
            let obj = r.body_value()?;
            let ns = t.ns.clone().unwrap_or_default();
            let (updated, warnings) = update_object(shared, r, rt, &ns, name, sub, obj).await?;
            Ok(json_response(200, &updated, &warnings))
        }
        (&Method::PATCH, Some(name)) => {
            let ns = t.ns.clone().unwrap_or_default();
            let (obj, warnings, created) = patch_object(shared, r, rt, &ns, name, sub).await?;
            Ok(json_response(
                if created { 201 } else { 200 },
                &obj,
                &warnings,
            ))
        }
        (&Method::DELETE, Some(name)) => {
            let ns = t.ns.clone().unwrap_or_default();
            let (obj, warnings) = delete_object(shared, r, rt, &ns, name).await?;
            Ok(json_response(200, &obj, &warnings))
        }
        (&Method::DELETE, None) => delete_collection(shared, r, rt, t.ns.as_deref()).await,
        _ => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!(
                "the server does not allow this method on the requested resource ({})",
                r.method
            ),
        )),
    }
}

fn gv_hash(reg: &crate::resources::Registry, group: &str, version: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    reg.resource_list(group, version)
        .map(|l| l.to_string())
        .unwrap_or_default()
        .hash(&mut h);
    format!("{:016X}", h.finish())
}

/// The OpenAPI v3 index: one entry per served group/version.
fn openapi_index(reg: &crate::resources::Registry) -> Value {
    let mut paths = serde_json::Map::new();
    if reg.resource_list("", "v1").is_some() {
        paths.insert(
            "api/v1".into(),
            json!({"serverRelativeURL": format!("/openapi/v3/api/v1?hash={}", gv_hash(reg, "", "v1"))}),
        );
    }
    for (g, versions) in reg.groups() {
        for v in versions {
            paths.insert(
                format!("apis/{g}/{v}"),
                json!({"serverRelativeURL": format!("/openapi/v3/apis/{g}/{v}?hash={}", gv_hash(reg, &g, &v))}),
            );
        }
    }
    json!({"paths": paths})
}

/// A minimal OpenAPI v3 document of one group/version: every object path with PATCH and PUT
/// operations that declare `fieldValidation` (so kubectl leaves validation to the server,
/// which the simulator accepts without checking) and a permissive schema per kind.
fn openapi_doc(reg: &crate::resources::Registry, group: &str, version: &str) -> Option<Value> {
    let types: Vec<&ResourceType> = reg
        .all()
        .iter()
        .filter(|t| t.group == group && t.version == version)
        .collect();
    if types.is_empty() {
        return None;
    }
    let prefix = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    let mut paths = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    for t in types {
        let gvk = json!({"group": t.group, "version": t.version, "kind": t.kind});
        let path = if t.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", t.plural)
        } else {
            format!("{prefix}/{}/{{name}}", t.plural)
        };
        let params = json!([
            {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
            {"name": "force", "in": "query", "schema": {"type": "boolean"}},
        ]);
        paths.insert(
            path,
            json!({
                "patch": {
                    "operationId": format!("patch{}", t.kind),
                    "parameters": params,
                    "responses": {"200": {"description": "OK"}},
                    "x-kubernetes-action": "patch",
                    "x-kubernetes-group-version-kind": gvk,
                },
                "put": {
                    "operationId": format!("replace{}", t.kind),
                    "parameters": params,
                    "responses": {"200": {"description": "OK"}},
                    "x-kubernetes-action": "put",
                    "x-kubernetes-group-version-kind": gvk,
                },
            }),
        );
        let id = if t.group.is_empty() {
            format!("io.k8s.api.core.{}.{}", t.version, t.kind)
        } else {
            format!("{}.{}.{}", t.group, t.version, t.kind)
        };
        schemas.insert(
            id,
            json!({
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": true,
                "x-kubernetes-group-version-kind": [gvk],
            }),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (apiserver-sim)", "version": "v1.36.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

fn rv_of(obj: &Value) -> String {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

fn check_type(rt: &ResourceType, obj: &mut Value) -> Result<(), ApiError> {
    if !obj.is_object() {
        return Err(ApiError::bad_request("the object must be a JSON object"));
    }
    if let Some(av) = obj.get("apiVersion").and_then(Value::as_str)
        && !av.is_empty()
    {
        let (g, _) = av.rsplit_once('/').unwrap_or(("", av));
        if g != rt.group {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({})",
                rt.api_version()
            )));
        }
    }
    if let Some(k) = obj.get("kind").and_then(Value::as_str)
        && !k.is_empty()
        && k != rt.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({k}) does not match the expected kind ({})",
            rt.kind
        )));
    }
    let obj_map = obj
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("not an object"))?;
    obj_map.insert("apiVersion".into(), Value::String(rt.api_version()));
    obj_map.insert("kind".into(), Value::String(rt.kind.clone()));
    if !obj_map.get("metadata").is_some_and(Value::is_object) {
        obj_map.insert("metadata".into(), json!({}));
    }
    Ok(())
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn validate_name(rt: &ResourceType, name: &str) -> Result<(), ApiError> {
    if name.is_empty() {
        return Err(ApiError::invalid(
            rt,
            name,
            &[(
                "metadata.name",
                "Required value: name or generateName is required".into(),
            )],
        ));
    }
    let ok = if rt.group == "rbac.authorization.k8s.io" {
        !name.contains('/') && !name.contains('%') && name != "." && name != ".."
    } else if rt.group.is_empty() && rt.plural == "namespaces" {
        is_dns_label(name)
    } else {
        is_dns_subdomain(name)
    };
    if ok {
        return Ok(());
    }
    let msg = if rt.group.is_empty() && rt.plural == "namespaces" {
        format!(
            "Invalid value: \"{name}\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
        )
    } else {
        format!(
            "Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        )
    };
    Err(ApiError::invalid(rt, name, &[("metadata.name", msg)]))
}

fn validate_labels(rt: &ResourceType, name: &str, obj: &Value) -> Result<(), ApiError> {
    let mut causes = Vec::new();
    if let Some(labels) = obj.pointer("/metadata/labels").and_then(Value::as_object) {
        for (k, v) in labels {
            let Some(v) = v.as_str() else {
                causes.push((
                    "metadata.labels",
                    format!("Invalid value: {v}: label values must be strings"),
                ));
                continue;
            };
            let valid = v.len() <= 63
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                && (v.is_empty()
                    || (v.starts_with(|c: char| c.is_ascii_alphanumeric())
                        && v.ends_with(|c: char| c.is_ascii_alphanumeric())));
            if !valid {
                causes.push(("metadata.labels", format!(
                    "Invalid value: \"{v}\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
                )));
            }
            let key_name = k.rsplit('/').next().unwrap_or("");
            if key_name.is_empty() || key_name.len() > 63 {
                causes.push(("metadata.labels", format!("Invalid value: \"{k}\": name part must be non-empty and at most 63 characters")));
            }
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        let causes: Vec<(&str, String)> = causes.iter().map(|(f, m)| (*f, m.clone())).collect();
        Err(ApiError::invalid(rt, name, &causes))
    }
}

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn meta_str<'a>(obj: &'a Value, key: &str) -> &'a str {
    obj.get("metadata")
        .and_then(|m| m.get(key))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn options(kind: &str, r: &Req) -> Value {
    let mut o = json!({"kind": kind, "apiVersion": "meta.k8s.io/v1"});
    if let Some(fm) = r.q("fieldManager") {
        o["fieldManager"] = json!(fm);
    }
    if r.dry_run() {
        o["dryRun"] = json!(["All"]);
    }
    o
}

/// Creates an object through admission. `managed` is set for server-side apply creations.
async fn create_object(
    shared: &Arc<Shared>,
    user: &UserInfo,
    rt: &ResourceType,
    path_ns: &str,
    mut obj: Value,
    r: &Req,
    managed: Option<Value>,
) -> Result<(Value, Vec<String>), ApiError> {
    check_type(rt, &mut obj)?;
    let body_ns = meta_str(&obj, "namespace").to_string();
    let ns = if rt.namespaced {
        if !body_ns.is_empty() && body_ns != path_ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        if path_ns.is_empty() {
            return Err(ApiError::no_route("namespaced resource without namespace"));
        }
        path_ns.to_string()
    } else {
        String::new()
    };
    let mut name = meta_str(&obj, "name").to_string();
    let generate = meta_str(&obj, "generateName").to_string();
    if name.is_empty() && !generate.is_empty() {
        name = format!("{generate}{}", random_suffix());
    }
    validate_name(rt, &name)?;
    validate_labels(rt, &name, &obj)?;
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.insert("name".into(), json!(name));
        if rt.namespaced {
            m.insert("namespace".into(), json!(ns));
        } else {
            m.remove("namespace");
        }
        for k in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "selfLink",
        ] {
            m.remove(k);
        }
        match managed {
            Some(mf) => {
                m.insert("managedFields".into(), mf);
            }
            None => {
                m.remove("managedFields");
            }
        }
    }
    if rt.custom
        && rt.status_subresource
        && let Some(m) = obj.as_object_mut()
    {
        m.remove("status");
    }
    apply_defaults(rt, &name, &mut obj);
    if rt.group == "apiextensions.k8s.io" {
        shared.lock()?.check_crd(&obj)?;
    }
    let dry_run = r.dry_run();
    let attrs = Attributes {
        rt,
        sub: "",
        operation: "CREATE",
        namespace: &ns,
        name: &name,
        old: None,
        user,
        dry_run,
        options: options("CreateOptions", r),
    };
    let mut warnings = admission::mutate(shared, &attrs, &mut obj).await?;
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.insert("name".into(), json!(name));
        m.insert("uid".into(), json!(crate::new_uid()));
        m.insert("creationTimestamp".into(), json!(now_rfc3339()));
        if rt.generation {
            m.insert("generation".into(), json!(1));
        }
    }
    warnings.extend(admission::validate(shared, &attrs, Some(&obj)).await?);
    let stored = shared.lock()?.commit_create(rt, obj, dry_run)?;
    Ok((rt.present(stored), warnings))
}

fn apply_defaults(rt: &ResourceType, name: &str, obj: &mut Value) {
    if !rt.group.is_empty() {
        return;
    }
    match rt.plural.as_str() {
        "namespaces" => {
            obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
            obj["spec"] = json!({"finalizers": ["kubernetes"]});
            obj["status"] = json!({"phase": "Active"});
        }
        "pods" => {
            if obj.pointer("/status/phase").is_none() {
                obj["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
            }
            if obj.pointer("/spec/serviceAccountName").is_none()
                && obj.get("spec").is_some_and(Value::is_object)
            {
                obj["spec"]["serviceAccountName"] = json!("default");
            }
        }
        "secrets" if obj.get("type").is_none() => {
            obj["type"] = json!("Opaque");
        }
        _ => {}
    }
}

/// Whether two objects are equal but for metadata, apiVersion, kind and (with a `/status`
/// subresource) status: the parts whose change bumps `metadata.generation` (compared in
/// place: the objects may be large reports).
fn same_spec(rt: &ResourceType, a: &Value, b: &Value) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return a == b;
    };
    let counted = |k: &str| {
        !(matches!(k, "metadata" | "apiVersion" | "kind")
            || (rt.status_subresource && k == "status"))
    };
    a.keys().filter(|k| counted(k)).count() == b.keys().filter(|k| counted(k)).count()
        && a.iter()
            .filter(|(k, _)| counted(k))
            .all(|(k, v)| b.get(k) == Some(v))
}

/// Builds the object to store from the current one and the client's version (update rules:
/// immutable metadata kept, status only through `/status`, generation bumped on spec changes).
fn prepare_update(
    rt: &ResourceType,
    sub: &str,
    current: &Value,
    incoming: Value,
) -> Result<Value, ApiError> {
    let name = meta_str(current, "name").to_string();
    let mut new = if sub == "status" {
        let mut n = current.clone();
        if let Some(mf) = incoming.pointer("/metadata/managedFields") {
            n["metadata"]["managedFields"] = mf.clone();
        }
        match incoming.get("status") {
            Some(s) => n["status"] = s.clone(),
            None => {
                if let Some(m) = n.as_object_mut() {
                    m.remove("status");
                }
            }
        }
        n
    } else {
        let mut n = incoming;
        check_type(rt, &mut n)?;
        let in_name = meta_str(&n, "name");
        if !in_name.is_empty() && in_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({in_name}) does not match the name on the URL ({name})"
            )));
        }
        let in_ns = meta_str(&n, "namespace");
        let cur_ns = meta_str(current, "namespace");
        if rt.namespaced && !in_ns.is_empty() && in_ns != cur_ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let cur_meta = current.get("metadata").cloned().unwrap_or(json!({}));
        if let Some(m) = n.get_mut("metadata").and_then(Value::as_object_mut) {
            for k in [
                "name",
                "namespace",
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ] {
                match cur_meta.get(k) {
                    Some(v) => {
                        m.insert(k.into(), v.clone());
                    }
                    None => {
                        m.remove(k);
                    }
                }
            }
            if !m.contains_key("managedFields")
                && let Some(mf) = cur_meta.get("managedFields")
            {
                m.insert("managedFields".into(), mf.clone());
            }
        }
        validate_labels(rt, &name, &n)?;
        if rt.status_subresource {
            match current.get("status") {
                Some(s) => n["status"] = s.clone(),
                None => {
                    if let Some(m) = n.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
        }
        if rt.group.is_empty() && rt.plural == "namespaces" {
            n["spec"] = current.get("spec").cloned().unwrap_or(json!({}));
        }
        n
    };
    if current.pointer("/metadata/deletionTimestamp").is_some() {
        let old: Vec<&Value> = current
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        let added: Vec<String> = new
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter(|f| !old.contains(f))
                    .map(|f| f.to_string())
                    .collect()
            })
            .unwrap_or_default();
        if !added.is_empty() {
            return Err(ApiError::invalid(
                rt,
                &name,
                &[(
                    "metadata.finalizers",
                    format!(
                        "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers [{}]",
                        added.join(" ")
                    ),
                )],
            ));
        }
    }
    if rt.generation {
        let g = current
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let g = if !same_spec(rt, &new, current) {
            g + 1
        } else {
            g
        };
        new["metadata"]["generation"] = json!(g);
    }
    new["metadata"]["resourceVersion"] = json!(rv_of(current));
    if let Some(m) = new.get_mut("metadata").and_then(Value::as_object_mut)
        && m.get("finalizers")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty)
    {
        m.remove("finalizers");
    }
    Ok(new)
}

/// Runs an update computed from the current object, with admission and optimistic
/// concurrency: retried on a concurrent write unless the client pinned a resourceVersion.
#[allow(clippy::too_many_arguments)]
async fn update_loop<F>(
    shared: &Arc<Shared>,
    r: &Req,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    sub: &str,
    options_kind: &str,
    mut compute: F,
) -> Result<(Value, Vec<String>), ApiError>
where
    F: FnMut(&Value) -> Result<Value, ApiError>,
{
    let dry_run = r.dry_run();
    for _ in 0..20 {
        let current = shared
            .lock()?
            .get(rt, ns, name)
            .cloned()
            .map(|stored| rt.present(stored))
            .ok_or_else(|| ApiError::not_found(rt, name))?;
        let current_rv = rv_of(&current);
        let incoming = compute(&current)?;
        let pinned = incoming
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        if let Some(p) = &pinned
            && *p != current_rv
        {
            return Err(ApiError::conflict(rt, name));
        }
        let mut new = prepare_update(rt, sub, &current, incoming)?;
        let attrs = Attributes {
            rt,
            sub,
            operation: "UPDATE",
            namespace: ns,
            name,
            old: Some(&current),
            user: &r.user,
            dry_run,
            options: options(options_kind, r),
        };
        let mut warnings = admission::mutate(shared, &attrs, &mut new).await?;
        warnings.extend(admission::validate(shared, &attrs, Some(&new)).await?);
        let committed = shared
            .lock()?
            .commit_update(rt, &current_rv, new, dry_run)?;
        match committed {
            Some(obj) => return Ok((rt.present(obj), warnings)),
            None if pinned.is_some() => return Err(ApiError::conflict(rt, name)),
            None => continue,
        }
    }
    Err(ApiError::conflict(rt, name))
}

async fn update_object(
    shared: &Arc<Shared>,
    r: &Req,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    sub: &str,
    obj: Value,
) -> Result<(Value, Vec<String>), ApiError> {
    update_loop(shared, r, rt, ns, name, sub, "UpdateOptions", |_| {
        Ok(obj.clone())
    })
    .await
}

#[derive(Clone, Copy, PartialEq)]
enum PatchKind {
    Json,
    Merge,
    Strategic,
    Apply,
}

async fn patch_object(
    shared: &Arc<Shared>,
    r: &Req,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    sub: &str,
) -> Result<(Value, Vec<String>, bool), ApiError> {
    let ct = r.content_type();
    let kind = if ct.starts_with("application/json-patch+json") {
        PatchKind::Json
    } else if ct.starts_with("application/merge-patch+json") {
        PatchKind::Merge
    } else if ct.starts_with("application/strategic-merge-patch+json") {
        PatchKind::Strategic
    } else if ct.starts_with("application/apply-patch+yaml") {
        PatchKind::Apply
    } else {
        return Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {ct})"
            ),
        ));
    };
    if kind == PatchKind::Strategic && rt.custom {
        return Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
        ));
    }
    let patch = r.body_value()?;
    let now = now_rfc3339();
    if kind == PatchKind::Apply {
        let manager = r.q("fieldManager").ok_or_else(|| {
            ApiError::new(
                422,
                "Invalid",
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
            )
        })?;
        let force = r.flag("force");
        let mut applied = patch.clone();
        check_type(rt, &mut applied)?;
        let applied_name = meta_str(&applied, "name").to_string();
        if applied_name.is_empty() {
            applied["metadata"]["name"] = json!(name);
        } else if applied_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({applied_name}) does not match the name on the URL ({name})"
            )));
        }
        let applied = if sub == "status" {
            json!({"apiVersion": rt.api_version(), "kind": rt.kind, "metadata": {"name": name}, "status": applied.get("status").cloned().unwrap_or(json!({}))})
        } else {
            applied
        };
        let exists = shared.lock()?.get(rt, ns, name).is_some();
        if !exists {
            if sub == "status" {
                return Err(ApiError::not_found(rt, name));
            }
            let mf = merge::initial_managed_fields(
                &applied,
                manager,
                "",
                !rt.custom,
                &rt.api_version(),
                &now,
            );
            let mut obj = applied.clone();
            if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("resourceVersion");
            }
            let (created, warnings) =
                create_object(shared, &r.user, rt, ns, obj, r, Some(mf)).await?;
            return Ok((created, warnings, true));
        }
        let api_version = rt.api_version();
        let pinned_rv = applied
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string);
        let (obj, warnings) =
            update_loop(shared, r, rt, ns, name, sub, "PatchOptions", |current| {
                let mut out = merge::server_side_apply(
                    current,
                    &applied,
                    manager,
                    sub,
                    force,
                    !rt.custom,
                    &api_version,
                    &now,
                )
                .map_err(|conflicts| {
                    let list: Vec<String> = conflicts
                        .iter()
                        .map(|c| format!("conflict with \"{}\": {}", c.manager, c.field))
                        .collect();
                    let msg = if list.len() == 1 {
                        format!("Apply failed with 1 conflict: {}", list.join(""))
                    } else {
                        format!(
                            "Apply failed with {} conflicts: {}",
                            list.len(),
                            list.join("\n")
                        )
                    };
                    ApiError::conflict_msg(rt, name, msg)
                })?
                .object;
                if let Some(rv) = &pinned_rv {
                    out["metadata"]["resourceVersion"] = json!(rv);
                }
                Ok(out)
            })
            .await?;
        return Ok((obj, warnings, false));
    }
    let (obj, warnings) = update_loop(shared, r, rt, ns, name, sub, "PatchOptions", |current| {
        let mut out = current.clone();
        match kind {
            PatchKind::Json => merge::json_patch_apply(&mut out, &patch).map_err(|e| {
                ApiError::new(
                    422,
                    "Invalid",
                    format!("the server rejected our request due to an error in our request: {e}"),
                )
            })?,
            PatchKind::Merge => merge::json_merge(&mut out, &patch),
            PatchKind::Strategic => {
                merge::strategic_merge(&mut out, &patch).map_err(ApiError::bad_request)?
            }
            PatchKind::Apply => {}
        }
        Ok(out)
    })
    .await?;
    Ok((obj, warnings, false))
}

struct DeleteOpts {
    propagation: Propagation,
    uid: Option<String>,
    rv: Option<String>,
}

fn delete_opts(r: &Req) -> Result<DeleteOpts, ApiError> {
    let body: Value = if r.body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&r.body)
            .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?
    };
    let policy = r
        .q("propagationPolicy")
        .map(str::to_string)
        .or_else(|| {
            body.get("propagationPolicy")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .or_else(|| {
            match body.get("orphanDependents").and_then(Value::as_bool).or(
                match r.q("orphanDependents") {
                    Some("true") => Some(true),
                    _ => None,
                },
            ) {
                Some(true) => Some("Orphan".to_string()),
                _ => None,
            }
        });
    let propagation = match policy.as_deref() {
        None | Some("Background") => Propagation::Background,
        Some("Foreground") => Propagation::Foreground,
        Some("Orphan") => Propagation::Orphan,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"{other}\""
            )));
        }
    };
    let pre = body.get("preconditions");
    Ok(DeleteOpts {
        propagation,
        uid: pre
            .and_then(|p| p.get("uid"))
            .and_then(Value::as_str)
            .map(str::to_string),
        rv: pre
            .and_then(|p| p.get("resourceVersion"))
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

async fn delete_object(
    shared: &Arc<Shared>,
    r: &Req,
    rt: &ResourceType,
    ns: &str,
    name: &str,
) -> Result<(Value, Vec<String>), ApiError> {
    let opts = delete_opts(r)?;
    let current = shared
        .lock()?
        .get(rt, ns, name)
        .cloned()
        .map(|stored| rt.present(stored))
        .ok_or_else(|| ApiError::not_found(rt, name))?;
    if let Some(uid) = &opts.uid {
        let actual = meta_str(&current, "uid");
        if uid != actual {
            return Err(ApiError::conflict_msg(
                rt,
                name,
                format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"
                ),
            ));
        }
    }
    if let Some(rv) = &opts.rv {
        let actual = rv_of(&current);
        if *rv != actual {
            return Err(ApiError::conflict_msg(
                rt,
                name,
                format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {actual}"
                ),
            ));
        }
    }
    let attrs = Attributes {
        rt,
        sub: "",
        operation: "DELETE",
        namespace: ns,
        name,
        old: Some(&current),
        user: &r.user,
        dry_run: r.dry_run(),
        options: options("DeleteOptions", r),
    };
    let warnings = admission::validate(shared, &attrs, None).await?;
    let (obj, _gone) = shared
        .lock()?
        .delete(rt, ns, name, opts.propagation, r.dry_run())?;
    Ok((rt.present(obj), warnings))
}

async fn delete_collection(
    shared: &Arc<Shared>,
    r: &Req,
    rt: &ResourceType,
    ns: Option<&str>,
) -> Result<Response<Body>, ApiError> {
    let labels =
        LabelSelector::parse(r.q("labelSelector").unwrap_or("")).map_err(ApiError::bad_request)?;
    let fields = field_selector(rt, r)?;
    let targets: Vec<(String, String)> = shared
        .lock()?
        .list(rt, ns)
        .into_iter()
        .filter(|o| labels.matches_object(o) && fields.matches(o))
        .map(store::ns_name)
        .collect();
    let mut items = Vec::new();
    let mut warnings = Vec::new();
    for (ons, oname) in targets {
        match delete_object(shared, r, rt, &ons, &oname).await {
            Ok((o, w)) => {
                items.push(o);
                warnings.extend(w);
            }
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let rv = shared.lock()?.rv().to_string();
    Ok(json_response(
        200,
        &json!({"kind": format!("{}List", rt.kind), "apiVersion": rt.api_version(), "metadata": {"resourceVersion": rv}, "items": items}),
        &warnings,
    ))
}

/// The request's field selector, over the stored form (Events: the labels the real server
/// supports, mapped to the core fields).
fn field_selector(rt: &ResourceType, r: &Req) -> Result<FieldSelector, ApiError> {
    let parsed =
        FieldSelector::parse(r.q("fieldSelector").unwrap_or("")).map_err(ApiError::bad_request)?;
    if events::is_event(rt) {
        return parsed
            .map_paths(|label| events::field_path(rt, label))
            .map_err(ApiError::bad_request);
    }
    Ok(parsed)
}

fn list(
    shared: &Arc<Shared>,
    rt: &ResourceType,
    ns: Option<&str>,
    r: &Req,
) -> Result<Response<Body>, ApiError> {
    use base64::Engine;
    let labels =
        LabelSelector::parse(r.q("labelSelector").unwrap_or("")).map_err(ApiError::bad_request)?;
    let fields = field_selector(rt, r)?;
    let limit: Option<usize> = match r.q("limit") {
        Some(l) => Some(
            l.parse::<usize>()
                .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
        )
        .filter(|n| *n > 0),
        None => None,
    };
    let (start_after, token_rv) = match r.q("continue") {
        Some(tok) => {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(tok)
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .ok_or_else(|| ApiError::bad_request("continue key is not valid"))?;
            let start = raw
                .get("start")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let rv = raw.get("rv").and_then(Value::as_u64).unwrap_or(0);
            (Some(start), Some(rv))
        }
        None => (None, None),
    };
    let st = shared.lock()?;
    if let Some(rv) = token_rv
        && rv < st.compacted_rv()
    {
        return Err(ApiError::gone(
            "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
        ));
    }
    let list_rv = token_rv.unwrap_or(st.rv());
    let mut matching: Vec<Arc<Value>> = st
        .list_shared(rt, ns)
        .into_iter()
        .filter(|o| {
            start_after.as_ref().is_none_or(|s| {
                let (n, m) = store::ns_name(o);
                format!("{n}\u{0}{m}") > *s
            })
        })
        .filter(|o| labels.matches_object(o) && fields.matches(o))
        .cloned()
        .collect();
    drop(st);
    let mut meta = json!({"resourceVersion": list_rv.to_string()});
    if let Some(limit) = limit
        && matching.len() > limit
    {
        let remaining = matching.len() - limit;
        matching.truncate(limit);
        if let Some(last) = matching.last() {
            let (n, m) = store::ns_name(last);
            let token =
                json!({"v": "meta.k8s.io/v1", "rv": list_rv, "start": format!("{n}\u{0}{m}")});
            meta["continue"] =
                json!(base64::engine::general_purpose::STANDARD.encode(token.to_string()));
            meta["remainingItemCount"] = json!(remaining);
        }
    }
    if r.accept_table() {
        let items: Vec<Value> = matching
            .into_iter()
            .map(|o| rt.present(Arc::unwrap_or_clone(o)))
            .collect();
        return Ok(json_response(
            200,
            &table::table(rt, &items, meta, r.q("includeObject").unwrap_or("Metadata")),
            &[],
        ));
    }
    let api_version = rt.api_version();
    let items: Vec<Served<'_>> = matching
        .iter()
        .map(|o| Served::new(rt, &api_version, o))
        .collect();
    Ok(json_response(
        200,
        &ListBody {
            kind: format!("{}List", rt.kind),
            api_version: &api_version,
            metadata: meta,
            items,
        },
        &[],
    ))
}

/// A LIST response body.
#[derive(Serialize)]
struct ListBody<'a> {
    kind: String,
    #[serde(rename = "apiVersion")]
    api_version: &'a str,
    metadata: Value,
    items: Vec<Served<'a>>,
}

/// A stored object in a response, as its type shows it ([`ResourceType::present`]): serialized
/// in place with the type's `apiVersion` and `kind`, or converted first (Events).
enum Served<'a> {
    /// Stored in the type's form.
    Stored {
        obj: &'a Value,
        api_version: &'a str,
        kind: &'a str,
    },
    /// Converted to the type's form.
    Converted(Value),
}

impl<'a> Served<'a> {
    fn new(rt: &'a ResourceType, api_version: &'a str, obj: &'a Value) -> Self {
        if events::is_events_v1(rt) {
            Self::Converted(rt.present(obj.clone()))
        } else {
            Self::Stored {
                obj,
                api_version,
                kind: &rt.kind,
            }
        }
    }
}

impl Serialize for Served<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (obj, api_version, kind) = match self {
            Self::Converted(v) => return v.serialize(serializer),
            Self::Stored {
                obj,
                api_version,
                kind,
            } => (*obj, *api_version, *kind),
        };
        let Some(fields) = obj.as_object() else {
            return obj.serialize(serializer);
        };
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("apiVersion", api_version)?;
        map.serialize_entry("kind", kind)?;
        for (k, v) in fields {
            if k != "apiVersion" && k != "kind" {
                map.serialize_entry(k, v)?;
            }
        }
        map.end()
    }
}

/// One line of a watch stream.
#[derive(Serialize)]
struct WatchLine<'a, T: Serialize> {
    #[serde(rename = "type")]
    type_: &'a str,
    object: &'a T,
}

fn watch_line(type_: &str, object: &impl Serialize) -> Bytes {
    let mut s = serde_json::to_vec(&WatchLine { type_, object }).unwrap_or_default();
    s.push(b'\n');
    Bytes::from(s)
}

struct WatchFilter {
    rt: ResourceType,
    ns: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl WatchFilter {
    fn matches(&self, o: &Value) -> bool {
        if let Some(ns) = &self.ns
            && meta_str(o, "namespace") != ns
        {
            return false;
        }
        self.labels.matches_object(o) && self.fields.matches(o)
    }

    fn render(&self, ev: &store::Event) -> Option<Bytes> {
        let now = self.matches(&ev.object);
        let type_ = match ev.type_ {
            EventType::Added => now.then_some("ADDED")?,
            EventType::Deleted => now.then_some("DELETED")?,
            EventType::Modified => {
                let before = ev.old.as_ref().is_some_and(|o| self.matches(o));
                match (before, now) {
                    (true, true) => "MODIFIED",
                    (false, true) => "ADDED",
                    (true, false) => "DELETED",
                    (false, false) => return None,
                }
            }
        };
        let api_version = self.rt.api_version();
        Some(watch_line(
            type_,
            &Served::new(&self.rt, &api_version, &ev.object),
        ))
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        watch_line(
            "BOOKMARK",
            &json!({"kind": self.rt.kind, "apiVersion": self.rt.api_version(), "metadata": meta}),
        )
    }
}

fn streaming_response(rx: mpsc::Receiver<Bytes>) -> Response<Body> {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    let mut resp = Response::new(StreamBody::new(stream).boxed_unsync());
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    resp
}

fn watch(
    shared: &Arc<Shared>,
    rt: &ResourceType,
    ns: Option<String>,
    r: &Req,
) -> Result<Response<Body>, ApiError> {
    let filter = WatchFilter {
        rt: rt.clone(),
        ns,
        labels: LabelSelector::parse(r.q("labelSelector").unwrap_or(""))
            .map_err(ApiError::bad_request)?,
        fields: field_selector(rt, r)?,
    };
    let send_initial = r.flag("sendInitialEvents");
    let bookmarks = r.flag("allowWatchBookmarks");
    if send_initial && !bookmarks {
        return Err(ApiError::new(
            422,
            "Invalid",
            "ListOptions.meta.k8s.io \"\" is invalid: allowWatchBookmarks: Required value: allowWatchBookmarks must be set to true when sendInitialEvents is set",
        ));
    }
    let start = match r.q("resourceVersion") {
        _ if send_initial => WatchStart::Current,
        None | Some("0") => WatchStart::Current,
        Some(v) => WatchStart::After(
            v.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {v}")))?,
        ),
    };
    let timeout = r
        .q("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(1800);
    let (tx, rx) = mpsc::channel::<Bytes>(512);
    let registration = shared.lock()?.register_watch(rt, start);
    let mut reg = match registration {
        Ok(reg) => reg,
        Err(e) if e.code == 410 => {
            let _ = tx.try_send(watch_line("ERROR", &e.to_status()));
            drop(tx);
            return Ok(streaming_response(rx));
        }
        Err(e) => return Err(e),
    };
    let shared = shared.clone();
    let interval = shared.bookmark_interval;
    let mut shutdown = shared.shutdown.clone();
    tokio::spawn(async move {
        let mut last_rv = reg.start_rv;
        let mut ok = true;
        for ev in &reg.initial {
            if let Some(line) = filter.render(ev)
                && tx.send(line).await.is_err()
            {
                ok = false;
                break;
            }
        }
        if ok && send_initial && tx.send(filter.bookmark(last_rv, true)).await.is_err() {
            ok = false;
        }
        let deadline = tokio::time::sleep(Duration::from_secs(timeout));
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        if ok {
            loop {
                tokio::select! {
                    _ = &mut deadline => break,
                    _ = shutdown.changed() => break,
                    _ = tx.closed() => break,
                    _ = tick.tick(), if bookmarks => {
                        if tx.send(filter.bookmark(last_rv, false)).await.is_err() {
                            break;
                        }
                    }
                    msg = reg.rx.recv() => match msg {
                        None => break,
                        Some(WatchMsg::Expire(rv)) => {
                            let e = ApiError::gone(format!("too old resource version: {last_rv} ({rv})"));
                            let _ = tx.send(watch_line("ERROR", &e.to_status())).await;
                            break;
                        }
                        Some(WatchMsg::Event(ev)) => {
                            last_rv = last_rv.max(ev.rv);
                            if let Some(line) = filter.render(&ev)
                                && tx.send(line).await.is_err()
                            {
                                break;
                            }
                        }
                    },
                }
            }
        }
        if let Ok(mut st) = shared.state.lock() {
            st.unregister_watch(reg.id);
        }
    });
    Ok(streaming_response(rx))
}
