//! The object store: every object under one global resourceVersion counter, an event history
//! for watches, and the synchronous parts of deletion (finalizers, ownerReference garbage
//! collection, namespace termination).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::error::ApiError;
use crate::resources::{self, Registry, ResourceType};

/// A watch event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Object created.
    Added,
    /// Object changed.
    Modified,
    /// Object removed.
    Deleted,
}

impl EventType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One change in the store.
#[derive(Debug)]
pub struct Event {
    /// The resourceVersion of the change.
    pub rv: u64,
    /// What happened.
    pub type_: EventType,
    /// `group/plural` of the object.
    pub store_key: String,
    /// The object before the change (modifications and deletions).
    pub old: Option<Arc<Value>>,
    /// The object after the change (for deletions: the last state, with the deletion's RV).
    pub object: Arc<Value>,
}

/// A message to one watcher.
#[derive(Debug)]
pub enum WatchMsg {
    /// A change.
    Event(Arc<Event>),
    /// The history was compacted under the watcher: it must end with 410.
    Expire(u64),
}

struct WatcherSlot {
    id: u64,
    store_key: String,
    tx: mpsc::UnboundedSender<WatchMsg>,
}

/// Where a watch starts.
#[derive(Debug, Clone, Copy)]
pub enum WatchStart {
    /// Synthetic ADDED events for the current state, then changes.
    Current,
    /// Changes after this resourceVersion.
    After(u64),
}

/// What a new watch gets: the events to send first, its channel and the RV it is current at.
pub struct WatchRegistration {
    /// Events to send first (replayed history or synthetic ADDED).
    pub initial: Vec<Arc<Event>>,
    /// Later events.
    pub rx: mpsc::UnboundedReceiver<WatchMsg>,
    /// The store RV at registration.
    pub start_rv: u64,
    /// Watcher id (for unregistering).
    pub id: u64,
}

/// Deletion propagation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    /// Dependents are deleted (synchronously in the simulator).
    Background,
    /// Treated as Background by the simulator.
    Foreground,
    /// Dependents lose their ownerReference to the deleted owner.
    Orphan,
}

/// Where an object is stored: store key, namespace, name.
type Location = (String, String, String);

/// The state behind the store's lock. Objects are shared (`Arc`) between the store, the watch
/// history and the watchers, so that a write copies nothing.
pub struct State {
    /// Served resource types.
    pub registry: Registry,
    rv: u64,
    objects: HashMap<String, BTreeMap<(String, String), Arc<Value>>>,
    /// Owner uid -> the objects whose ownerReferences name it (for garbage collection).
    owned: HashMap<String, BTreeSet<Location>>,
    /// uid -> how many stored objects carry it.
    uids: HashMap<String, usize>,
    history: VecDeque<Arc<Event>>,
    history_limit: usize,
    compacted_rv: u64,
    watchers: Vec<WatcherSlot>,
    next_watcher_id: u64,
}

/// Now, RFC 3339 with seconds.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Namespace and name of an object.
pub fn ns_name(obj: &Value) -> (String, String) {
    let ns = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    (ns, name)
}

fn uid_of(obj: &Value) -> &str {
    obj.pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The uids of an object's ownerReferences (without repeats).
fn owner_uids(obj: &Value) -> BTreeSet<&str> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str))
                .filter(|uid| !uid.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

fn finalizers_empty(obj: &Value) -> bool {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
}

fn set_meta(obj: &mut Value, key: &str, value: Value) {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"][key] = value;
}

impl State {
    /// An empty store with the built-in kinds.
    pub fn new(history_limit: usize) -> Self {
        Self {
            registry: Registry::with_builtins(),
            rv: 1,
            objects: HashMap::new(),
            owned: HashMap::new(),
            uids: HashMap::new(),
            history: VecDeque::new(),
            history_limit: history_limit.max(1),
            compacted_rv: 1,
            watchers: Vec::new(),
            next_watcher_id: 0,
        }
    }

    /// The current global resourceVersion.
    pub fn rv(&self) -> u64 {
        self.rv
    }

    /// The oldest resourceVersion a watch can start after.
    pub fn compacted_rv(&self) -> u64 {
        self.compacted_rv
    }

    /// One object.
    pub fn get(&self, rt: &ResourceType, ns: &str, name: &str) -> Option<&Value> {
        self.get_shared(rt, ns, name).map(|o| &**o)
    }

    /// One object, shared.
    pub fn get_shared(&self, rt: &ResourceType, ns: &str, name: &str) -> Option<&Arc<Value>> {
        self.objects
            .get(&rt.store_key())
            .and_then(|m| m.get(&(ns.to_string(), name.to_string())))
    }

    /// Objects of a type, in one namespace or all, sorted by namespace and name.
    pub fn list(&self, rt: &ResourceType, ns: Option<&str>) -> Vec<&Value> {
        self.list_shared(rt, ns).into_iter().map(|o| &**o).collect()
    }

    /// Objects of a type, shared, in one namespace or all, sorted by namespace and name.
    pub fn list_shared(&self, rt: &ResourceType, ns: Option<&str>) -> Vec<&Arc<Value>> {
        let Some(m) = self.objects.get(&rt.store_key()) else {
            return Vec::new();
        };
        match ns {
            Some(ns) => m
                .range((ns.to_string(), String::new())..)
                .take_while(|((n, _), _)| n == ns)
                .map(|(_, v)| v)
                .collect(),
            None => m.values().collect(),
        }
    }

    /// Stores an object (replacing the one at its place), keeping the uid and owner indexes.
    fn put(&mut self, key: &str, ns: &str, name: &str, obj: Arc<Value>) {
        let previous = self
            .objects
            .entry(key.to_string())
            .or_default()
            .insert((ns.to_string(), name.to_string()), obj.clone());
        if let Some(previous) = previous {
            self.unindex(key, ns, name, &previous);
        }
        let place = (key.to_string(), ns.to_string(), name.to_string());
        for owner in owner_uids(&obj) {
            self.owned
                .entry(owner.to_string())
                .or_default()
                .insert(place.clone());
        }
        *self.uids.entry(uid_of(&obj).to_string()).or_default() += 1;
    }

    /// Removes an object from the store and the indexes.
    fn take(&mut self, key: &str, ns: &str, name: &str) -> Option<Arc<Value>> {
        let obj = self
            .objects
            .get_mut(key)
            .and_then(|m| m.remove(&(ns.to_string(), name.to_string())))?;
        self.unindex(key, ns, name, &obj);
        Some(obj)
    }

    fn unindex(&mut self, key: &str, ns: &str, name: &str, obj: &Value) {
        let place = (key.to_string(), ns.to_string(), name.to_string());
        for owner in owner_uids(obj) {
            if let Some(set) = self.owned.get_mut(owner) {
                set.remove(&place);
                if set.is_empty() {
                    self.owned.remove(owner);
                }
            }
        }
        let uid = uid_of(obj);
        if let Some(n) = self.uids.get_mut(uid) {
            *n -= 1;
            if *n == 0 {
                self.uids.remove(uid);
            }
        }
    }

    /// Whether a namespace exists, and whether it is terminating.
    pub fn namespace_state(&self, ns: &str) -> Option<bool> {
        self.objects
            .get("/namespaces")
            .and_then(|m| m.get(&(String::new(), ns.to_string())))
            .map(|n| n.pointer("/metadata/deletionTimestamp").is_some())
    }

    /// A namespace object.
    pub fn namespace(&self, ns: &str) -> Option<&Value> {
        self.objects
            .get("/namespaces")
            .and_then(|m| m.get(&(String::new(), ns.to_string())))
            .map(|n| &**n)
    }

    fn emit(
        &mut self,
        type_: EventType,
        store_key: String,
        old: Option<Arc<Value>>,
        object: Arc<Value>,
    ) {
        let ev = Arc::new(Event {
            rv: self.rv,
            type_,
            store_key,
            old,
            object,
        });
        self.history.push_back(ev.clone());
        while self.history.len() > self.history_limit {
            if let Some(e) = self.history.pop_front() {
                self.compacted_rv = e.rv;
            }
        }
        self.watchers.retain(|w| {
            if w.store_key != ev.store_key {
                return !w.tx.is_closed();
            }
            w.tx.send(WatchMsg::Event(ev.clone())).is_ok()
        });
    }

    fn bump(&mut self, obj: &mut Value) -> u64 {
        self.rv += 1;
        set_meta(obj, "resourceVersion", Value::String(self.rv.to_string()));
        self.rv
    }

    /// Registers CRD types (and sets the CRD's status) when a CRD object is written.
    fn on_crd_write(&mut self, obj: &mut Value) -> Result<(), ApiError> {
        let types = resources::from_crd(obj).map_err(|e| {
            ApiError::new(
                422,
                "Invalid",
                format!("CustomResourceDefinition.apiextensions.k8s.io is invalid: {e}"),
            )
        })?;
        let (_, name) = ns_name(obj);
        let group = obj
            .pointer("/spec/group")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let plural = obj
            .pointer("/spec/names/plural")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if name != format!("{plural}.{group}") {
            return Err(ApiError::new(
                422,
                "Invalid",
                format!(
                    "CustomResourceDefinition.apiextensions.k8s.io \"{name}\" is invalid: metadata.name: Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"
                ),
            ));
        }
        let now = now_rfc3339();
        let mut accepted = obj.pointer("/spec/names").cloned().unwrap_or(json!({}));
        if accepted.get("singular").is_none()
            && let Some(k) = accepted.get("kind").and_then(Value::as_str)
        {
            accepted["singular"] = json!(k.to_lowercase());
        }
        let stored: Vec<Value> = types
            .iter()
            .map(|t| json!(t.storage_version))
            .take(1)
            .collect();
        obj["status"] = json!({
            "acceptedNames": accepted,
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now},
            ],
            "storedVersions": stored,
        });
        self.registry.set_crd(&group, &plural, types);
        Ok(())
    }

    /// Validates a CRD before admission (so a bad CRD is a 422, not a half-registered type).
    pub fn check_crd(&self, obj: &Value) -> Result<(), ApiError> {
        let mut probe = obj.clone();
        let mut scratch = State::new(1);
        scratch.on_crd_write(&mut probe).map(|_| ())
    }

    /// Stores a new object (uid, timestamps and names already set), in the type's form. Returns
    /// the stored object (in the storage form).
    pub fn commit_create(
        &mut self,
        rt: &ResourceType,
        obj: Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let mut obj = rt.to_storage(obj);
        let (ns, name) = ns_name(&obj);
        if self.get(rt, &ns, &name).is_some() {
            return Err(ApiError::already_exists(rt, &name));
        }
        if rt.namespaced {
            match self.namespace_state(&ns) {
                None => return Err(ApiError::namespace_not_found(&ns)),
                Some(true) => {
                    return Err(ApiError::forbidden(format!(
                        "{} \"{}\" is forbidden: unable to create new content in namespace {} because it is being terminated",
                        rt.qualified_plural(),
                        name,
                        ns
                    )));
                }
                Some(false) => {}
            }
        }
        if rt.group == "apiextensions.k8s.io" && rt.plural == "customresourcedefinitions" {
            if dry_run {
                self.check_crd(&obj)?;
            } else {
                self.on_crd_write(&mut obj)?;
            }
        }
        if dry_run {
            set_meta(&mut obj, "resourceVersion", Value::String(String::new()));
            return Ok(obj);
        }
        self.bump(&mut obj);
        let obj = Arc::new(obj);
        let key = rt.store_key();
        self.put(&key, &ns, &name, obj.clone());
        self.emit(EventType::Added, key, None, obj.clone());
        Ok(Arc::unwrap_or_clone(obj))
    }

    /// Stores an updated object (in the type's form). `expected_rv` is the RV the update was computed from; a
    /// mismatch means a concurrent write and yields `Ok(None)` (the caller retries or fails).
    /// An unchanged object is not written. An object being deleted whose last finalizer went
    /// away is removed.
    pub fn commit_update(
        &mut self,
        rt: &ResourceType,
        expected_rv: &str,
        obj: Value,
        dry_run: bool,
    ) -> Result<Option<Value>, ApiError> {
        let mut obj = rt.to_storage(obj);
        let (ns, name) = ns_name(&obj);
        let Some(old) = self.get_shared(rt, &ns, &name).cloned() else {
            return Err(ApiError::not_found(rt, &name));
        };
        let old_rv = old
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        if old_rv != expected_rv {
            return Ok(None);
        }
        set_meta(
            &mut obj,
            "resourceVersion",
            Value::String(old_rv.to_string()),
        );
        if obj == *old {
            return Ok(Some(Arc::unwrap_or_clone(old)));
        }
        if rt.group == "apiextensions.k8s.io" && rt.plural == "customresourcedefinitions" {
            if dry_run {
                self.check_crd(&obj)?;
            } else {
                self.on_crd_write(&mut obj)?;
            }
        }
        if dry_run {
            return Ok(Some(obj));
        }
        if obj.pointer("/metadata/deletionTimestamp").is_some()
            && finalizers_empty(&obj)
            && !self.blocks_namespace_removal(rt, &obj)
        {
            self.remove(rt, &ns, &name, Propagation::Background);
            return Ok(Some(obj));
        }
        self.bump(&mut obj);
        let obj = Arc::new(obj);
        let key = rt.store_key();
        self.put(&key, &ns, &name, obj.clone());
        self.emit(EventType::Modified, key, Some(old), obj.clone());
        Ok(Some(Arc::unwrap_or_clone(obj)))
    }

    fn blocks_namespace_removal(&self, rt: &ResourceType, obj: &Value) -> bool {
        if rt.group.is_empty() && rt.plural == "namespaces" {
            let (_, name) = ns_name(obj);
            return self.namespace_has_content(&name);
        }
        false
    }

    fn namespace_has_content(&self, ns: &str) -> bool {
        self.registry
            .all()
            .iter()
            .filter(|t| t.namespaced)
            .any(|t| !self.list(t, Some(ns)).is_empty())
    }

    /// Deletes an object: marks it (deletionTimestamp) when finalizers remain, removes it
    /// otherwise, then collects dependents. Returns the object as the response shows it and
    /// whether it is gone.
    pub fn delete(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        propagation: Propagation,
        dry_run: bool,
    ) -> Result<(Value, bool), ApiError> {
        let Some(current) = self.get_shared(rt, ns, name).cloned() else {
            return Err(ApiError::not_found(rt, name));
        };
        if dry_run || current.pointer("/metadata/deletionTimestamp").is_some() {
            return Ok((Arc::unwrap_or_clone(current), false));
        }
        let is_namespace = rt.group.is_empty() && rt.plural == "namespaces";
        let mut marked = (*current).clone();
        let pending =
            !finalizers_empty(&current) || (is_namespace && self.namespace_has_content(name));
        if pending || is_namespace {
            set_meta(&mut marked, "deletionTimestamp", json!(now_rfc3339()));
            set_meta(&mut marked, "deletionGracePeriodSeconds", json!(0));
            if propagation == Propagation::Orphan {
                self.orphan_dependents(uid_of(&current));
            }
            if is_namespace {
                marked["status"] = json!({"phase": "Terminating"});
            }
            self.bump(&mut marked);
            let marked = Arc::new(marked);
            let key = rt.store_key();
            self.put(&key, ns, name, marked.clone());
            self.emit(EventType::Modified, key, Some(current), marked.clone());
            if is_namespace {
                self.empty_namespace(name);
                return match self.get(rt, "", name).cloned() {
                    Some(still) => Ok((still, false)),
                    None => Ok((Arc::unwrap_or_clone(marked), true)),
                };
            }
            return Ok((Arc::unwrap_or_clone(marked), false));
        }
        let gone = self.remove(rt, ns, name, propagation);
        Ok((Arc::unwrap_or_clone(gone.unwrap_or(current)), true))
    }

    /// Removes an object from the store, emits DELETED, and collects dependents.
    fn remove(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        propagation: Propagation,
    ) -> Option<Arc<Value>> {
        let key = rt.store_key();
        let old = self.take(&key, ns, name)?;
        let mut obj = (*old).clone();
        self.bump(&mut obj);
        let obj = Arc::new(obj);
        self.emit(EventType::Deleted, key, Some(old), obj.clone());
        let uid = uid_of(&obj).to_string();
        if rt.group == "apiextensions.k8s.io" && rt.plural == "customresourcedefinitions" {
            let group = obj
                .pointer("/spec/group")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let plural = obj
                .pointer("/spec/names/plural")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if let Some(crt) = self.registry.find_plural(&group, &plural).cloned() {
                let keys: Vec<(String, String)> = self
                    .objects
                    .get(&crt.store_key())
                    .map(|m| m.keys().cloned().collect())
                    .unwrap_or_default();
                for (cns, cname) in keys {
                    self.remove(&crt, &cns, &cname, Propagation::Background);
                }
            }
            self.registry.remove_crd(&group, &plural);
        }
        match propagation {
            Propagation::Orphan => self.orphan_dependents(&uid),
            _ => self.collect_dependents(&uid),
        }
        if rt.namespaced {
            self.try_finalize_namespace(ns);
        }
        Some(obj)
    }

    fn dependents(&self, uid: &str) -> Vec<(ResourceType, String, String)> {
        let Some(places) = self.owned.get(uid) else {
            return Vec::new();
        };
        places
            .iter()
            .filter_map(|(key, ns, name)| {
                let (group, plural) = key.split_once('/')?;
                let rt = self.registry.find_plural(group, plural)?;
                Some((rt.clone(), ns.clone(), name.clone()))
            })
            .collect()
    }

    fn uid_exists(&self, uid: &str) -> bool {
        self.uids.contains_key(uid)
    }

    fn drop_owner_ref(&mut self, rt: &ResourceType, ns: &str, name: &str, uid: &str) {
        let Some(cur) = self.get_shared(rt, ns, name).cloned() else {
            return;
        };
        let mut next = (*cur).clone();
        if let Some(refs) = next
            .pointer_mut("/metadata/ownerReferences")
            .and_then(Value::as_array_mut)
        {
            refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(uid));
            if refs.is_empty()
                && let Some(m) = next.get_mut("metadata").and_then(Value::as_object_mut)
            {
                m.remove("ownerReferences");
            }
        }
        self.bump(&mut next);
        let next = Arc::new(next);
        let key = rt.store_key();
        self.put(&key, ns, name, next.clone());
        self.emit(EventType::Modified, key, Some(cur), next);
    }

    fn orphan_dependents(&mut self, uid: &str) {
        for (rt, ns, name) in self.dependents(uid) {
            self.drop_owner_ref(&rt, &ns, &name, uid);
        }
    }

    fn collect_dependents(&mut self, uid: &str) {
        for (rt, ns, name) in self.dependents(uid) {
            let Some(dep) = self.get(&rt, &ns, &name) else {
                continue;
            };
            let other_owner_alive = dep
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .is_some_and(|refs| {
                    refs.iter()
                        .filter_map(|r| r.get("uid").and_then(Value::as_str))
                        .filter(|u| *u != uid)
                        .any(|u| self.uid_exists(u))
                });
            if other_owner_alive {
                self.drop_owner_ref(&rt, &ns, &name, uid);
            } else {
                // Errors are impossible here: the dependent exists.
                let _ = self.delete(&rt, &ns, &name, Propagation::Background, false);
            }
        }
    }

    fn empty_namespace(&mut self, ns: &str) {
        let types: Vec<ResourceType> = self
            .registry
            .all()
            .iter()
            .filter(|t| t.namespaced && t.is_storage_form())
            .cloned()
            .collect();
        for t in types {
            let names: Vec<String> = self
                .list(&t, Some(ns))
                .iter()
                .map(|o| ns_name(o).1)
                .collect();
            for name in names {
                let _ = self.delete(&t, ns, &name, Propagation::Background, false);
            }
        }
        self.try_finalize_namespace(ns);
    }

    fn try_finalize_namespace(&mut self, ns: &str) {
        let Some(nsobj) = self.namespace(ns) else {
            return;
        };
        if nsobj.pointer("/metadata/deletionTimestamp").is_none() || !finalizers_empty(nsobj) {
            return;
        }
        if self.namespace_has_content(ns) {
            return;
        }
        if let Some(rt) = self.registry.find("", "v1", "namespaces").cloned() {
            self.remove(&rt, "", ns, Propagation::Background);
        }
    }

    /// Registers a watch on one type.
    pub fn register_watch(
        &mut self,
        rt: &ResourceType,
        start: WatchStart,
    ) -> Result<WatchRegistration, ApiError> {
        let store_key = rt.store_key();
        let initial: Vec<Arc<Event>> = match start {
            WatchStart::After(rv) => {
                if rv < self.compacted_rv {
                    return Err(ApiError::gone(format!(
                        "too old resource version: {} ({})",
                        rv, self.compacted_rv
                    )));
                }
                self.history
                    .iter()
                    .filter(|e| e.rv > rv && e.store_key == store_key)
                    .cloned()
                    .collect()
            }
            WatchStart::Current => self
                .list_shared(rt, None)
                .into_iter()
                .map(|o| {
                    Arc::new(Event {
                        rv: o
                            .pointer("/metadata/resourceVersion")
                            .and_then(Value::as_str)
                            .and_then(|s| s.parse().ok())
                            .unwrap_or(0),
                        type_: EventType::Added,
                        store_key: store_key.clone(),
                        old: None,
                        object: o.clone(),
                    })
                })
                .collect(),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        self.next_watcher_id += 1;
        let id = self.next_watcher_id;
        self.watchers.push(WatcherSlot { id, store_key, tx });
        Ok(WatchRegistration {
            initial,
            rx,
            start_rv: self.rv,
            id,
        })
    }

    /// Forgets a watcher.
    pub fn unregister_watch(&mut self, id: u64) {
        self.watchers.retain(|w| w.id != id);
    }

    /// Number of open watches.
    pub fn watch_count(&self) -> usize {
        self.watchers.iter().filter(|w| !w.tx.is_closed()).count()
    }

    /// Drops all history: watches from an older RV get 410, and every open watch ends with 410.
    pub fn compact(&mut self) {
        self.history.clear();
        self.compacted_rv = self.rv;
        for w in self.watchers.drain(..) {
            let _ = w.tx.send(WatchMsg::Expire(self.rv));
        }
    }

    /// Closes every open watch (streams end normally, as on an API server restart or timeout).
    pub fn close_watches(&mut self) {
        self.watchers.clear();
    }
}
