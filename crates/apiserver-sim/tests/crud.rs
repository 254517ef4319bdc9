//! CRUD, conflicts, patches, deletion semantics, selectors, discovery and tables through a
//! real `kube::Client`.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::{sim, within};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams,
};
use kube::discovery::Discovery;
use kube::{Client, ResourceExt};
use kyverno_e2e_support::cluster;
use serde_json::{Value, json};

fn api_err(e: kube::Error) -> Box<kube::core::Status> {
    match e {
        kube::Error::Api(s) => s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn cm(name: &str, data: Value) -> ConfigMap {
    serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}),
    )
    .unwrap()
}

#[tokio::test]
async fn configmap_crud_and_conflicts() {
    let c = cluster().await;
    let client = c.client.clone();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &c.ns);
    within("crud", async {
        let created = cms.create(&PostParams::default(), &cm("a", json!({"k": "v"}))).await.unwrap();
        assert!(created.metadata.uid.is_some());
        assert!(created.metadata.creation_timestamp.is_some());
        let rv1 = created.resource_version().unwrap();
        assert!(rv1.parse::<u64>().unwrap() > 0);

        let got = cms.get("a").await.unwrap();
        assert_eq!(got.data.unwrap()["k"], "v");

        // An update from the current version succeeds and bumps the resourceVersion.
        let mut next = created.clone();
        next.data = Some([("k".to_string(), "w".to_string())].into());
        let updated = cms.replace("a", &PostParams::default(), &next).await.unwrap();
        let rv2 = updated.resource_version().unwrap();
        assert!(rv2.parse::<u64>().unwrap() > rv1.parse::<u64>().unwrap());

        // The same stale object again: 409 Conflict, worded as the real server does.
        let e = api_err(cms.replace("a", &PostParams::default(), &next).await.unwrap_err());
        assert_eq!(e.code, 409);
        assert_eq!(e.reason, "Conflict");
        assert_eq!(
            e.message,
            "Operation cannot be fulfilled on configmaps \"a\": the object has been modified; please apply your changes to the latest version and try again"
        );

        // Creating it again: 409 AlreadyExists.
        let e = api_err(cms.create(&PostParams::default(), &cm("a", json!({}))).await.unwrap_err());
        assert_eq!((e.code, e.reason.as_str()), (409, "AlreadyExists"));
        assert_eq!(e.message, "configmaps \"a\" already exists");

        // An unchanged update is not a write.
        let same = cms.replace("a", &PostParams::default(), &updated).await.unwrap();
        assert_eq!(same.resource_version(), updated.resource_version());

        cms.delete("a", &DeleteParams::default()).await.unwrap();
        let e = api_err(cms.get("a").await.unwrap_err());
        assert_eq!((e.code, e.reason.as_str()), (404, "NotFound"));
        assert_eq!(e.message, "configmaps \"a\" not found");
        let details = e.details.unwrap();
        assert_eq!((details.name.as_str(), details.kind.as_str()), ("a", "configmaps"));
    })
    .await;
    c.cleanup().await;
}

#[tokio::test]
async fn validation_errors_and_scopes() {
    let sim = sim().await;
    let client = sim.client().await.unwrap();
    within("validation", async {
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let e = api_err(
            cms.create(&PostParams::default(), &cm("Bad_Name", json!({})))
                .await
                .unwrap_err(),
        );
        assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
        assert!(
            e.message
                .starts_with("ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value"),
            "{}",
            e.message
        );

        let missing: Api<ConfigMap> = Api::namespaced(client.clone(), "nope");
        let e = api_err(
            missing
                .create(&PostParams::default(), &cm("x", json!({})))
                .await
                .unwrap_err(),
        );
        assert_eq!(e.code, 404);
        assert_eq!(e.message, "namespaces \"nope\" not found");

        // Deployments are in a named group: the message qualifies the resource.
        let deps: Api<Deployment> = Api::namespaced(client.clone(), "default");
        let e = api_err(deps.get("none").await.unwrap_err());
        assert_eq!(e.message, "deployments.apps \"none\" not found");

        // generateName.
        let mut g = cm("", json!({}));
        g.metadata.name = None;
        g.metadata.generate_name = Some("gen-".into());
        let made = cms.create(&PostParams::default(), &g).await.unwrap();
        assert!(made.name_any().starts_with("gen-") && made.name_any().len() == 9);

        // A namespace is cluster-scoped and gets its metadata.name label.
        let nss: Api<Namespace> = Api::all(client.clone());
        let ns: Namespace =
            serde_json::from_value(json!({"metadata": {"name": "team-a"}})).unwrap();
        let ns = nss.create(&PostParams::default(), &ns).await.unwrap();
        assert_eq!(ns.labels()["kubernetes.io/metadata.name"], "team-a");
        assert_eq!(ns.status.unwrap().phase.as_deref(), Some("Active"));

        // Cluster-wide list of a namespaced kind.
        let all: Api<ConfigMap> = Api::all(client.clone());
        let list = all.list(&ListParams::default()).await.unwrap();
        assert_eq!(list.items.len(), 1);

        // Unknown token: 401.
        let bad = sim.client_for("wrong-token").await.unwrap();
        let e = api_err(
            Api::<ConfigMap>::namespaced(bad, "default")
                .list(&ListParams::default())
                .await
                .unwrap_err(),
        );
        assert_eq!(e.code, 401);

        // dryRun=All stores nothing.
        let dry = PostParams {
            dry_run: true,
            ..Default::default()
        };
        cms.create(&dry, &cm("dry", json!({}))).await.unwrap();
        assert_eq!(api_err(cms.get("dry").await.unwrap_err()).code, 404);
    })
    .await;
}

fn widget_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.sim.test"},
        "spec": {
            "group": "sim.test",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "shortNames": ["wd"]},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                "subresources": {"status": {}},
                "additionalPrinterColumns": [{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}]
            }]
        }
    })
}

async fn create_widget_crd(client: &Client) {
    let crds: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            "customresourcedefinitions",
        ),
    );
    let crd: DynamicObject = serde_json::from_value(widget_crd()).unwrap();
    let created = crds.create(&PostParams::default(), &crd).await.unwrap();
    let conds = created.data["status"]["conditions"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        conds
            .iter()
            .any(|c| c["type"] == "Established" && c["status"] == "True")
    );
}

fn widgets(client: &Client) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        "default",
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("sim.test", "v1", "Widget"),
            "widgets",
        ),
    )
}

#[tokio::test]
async fn custom_resources_generation_and_status() {
    let sim = sim().await;
    let client = sim.client().await.unwrap();
    within("custom resources", async {
        create_widget_crd(&client).await;
        let api = widgets(&client);
        let w: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "sim.test/v1", "kind": "Widget",
            "metadata": {"name": "w1"}, "spec": {"size": 1}, "status": {"ignored": true}
        }))
        .unwrap();
        let created = api.create(&PostParams::default(), &w).await.unwrap();
        assert_eq!(created.metadata.generation, Some(1));
        assert!(created.data.get("status").is_none(), "status is dropped on create");

        // Status through the main resource is ignored; spec changes bump generation.
        let patched = api
            .patch("w1", &PatchParams::default(), &Patch::Merge(json!({"spec": {"size": 2}, "status": {"x": 1}})))
            .await
            .unwrap();
        assert_eq!(patched.metadata.generation, Some(2));
        assert!(patched.data.get("status").is_none());

        // Status through /status does not bump generation.
        let st = api
            .patch_status("w1", &PatchParams::default(), &Patch::Merge(json!({"status": {"ready": true}})))
            .await
            .unwrap();
        assert_eq!(st.metadata.generation, Some(2));
        assert_eq!(st.data["status"]["ready"], true);

        // Strategic merge is refused for custom resources, as on a real server.
        let e = api_err(
            api.patch("w1", &PatchParams::default(), &Patch::Strategic(json!({"spec": {"size": 3}})))
                .await
                .unwrap_err(),
        );
        assert_eq!(e.code, 415);

        // A CR from the repository's crds/ (PolicyReport, wgpolicyk8s.io/v1alpha2).
        let polr: Api<DynamicObject> = Api::namespaced_with(
            client.clone(),
            "default",
            &ApiResource::from_gvk_with_plural(
                &GroupVersionKind::gvk("wgpolicyk8s.io", "v1alpha2", "PolicyReport"),
                "policyreports",
            ),
        );
        let r: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReport",
            "metadata": {"name": "r1"}, "summary": {"pass": 2, "fail": 1, "warn": 0, "error": 0, "skip": 0}
        }))
        .unwrap();
        polr.create(&PostParams::default(), &r).await.unwrap();
        let mut stale = polr.get("r1").await.unwrap();
        polr.patch("r1", &PatchParams::default(), &Patch::Merge(json!({"summary": {"pass": 3}})))
            .await
            .unwrap();
        stale.data["summary"]["fail"] = json!(5);
        let e = api_err(polr.replace("r1", &PostParams::default(), &stale).await.unwrap_err());
        assert_eq!(e.code, 409);
        assert_eq!(
            e.message,
            "Operation cannot be fulfilled on policyreports.wgpolicyk8s.io \"r1\": the object has been modified; please apply your changes to the latest version and try again"
        );

        // Deleting the CRD removes its objects and its API.
        let crds: Api<DynamicObject> = Api::all_with(
            client.clone(),
            &ApiResource::from_gvk_with_plural(
                &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
                "customresourcedefinitions",
            ),
        );
        crds.delete("widgets.sim.test", &DeleteParams::default()).await.unwrap();
        let e = api_err(api.list(&ListParams::default()).await.unwrap_err());
        assert_eq!(e.code, 404);
    })
    .await;
}

#[tokio::test]
async fn patches_merge_json_strategic_apply() {
    let c = cluster().await;
    let client = c.client.clone();
    within("patches", async {
        let deps: Api<Deployment> = Api::namespaced(client.clone(), &c.ns);
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "a", "image": "nginx:1"}, {"name": "b", "image": "busybox"}]}}}
        }))
        .unwrap();
        deps.create(&PostParams::default(), &d).await.unwrap();

        // Strategic merge: containers merge by name.
        let p = deps
            .patch(
                "web",
                &PatchParams::default(),
                &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "busybox:2"}]}}}})),
            )
            .await
            .unwrap();
        let cs = p.spec.as_ref().unwrap().template.spec.as_ref().unwrap().containers.clone();
        assert_eq!(cs.len(), 2);
        assert_eq!(cs[1].image.as_deref(), Some("busybox:2"));
        assert_eq!(p.metadata.generation, Some(2));

        // JSON merge patch: lists are replaced.
        let p = deps
            .patch(
                "web",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}}})),
            )
            .await
            .unwrap();
        assert_eq!(p.spec.as_ref().unwrap().template.spec.as_ref().unwrap().containers.len(), 1);

        // JSON patch, including a failing test op (422).
        let jp: json_patch::Patch =
            serde_json::from_value(json!([{"op": "replace", "path": "/spec/replicas", "value": 3}])).unwrap();
        let p = deps.patch("web", &PatchParams::default(), &Patch::Json::<()>(jp)).await.unwrap();
        assert_eq!(p.spec.as_ref().unwrap().replicas, Some(3));
        let bad: json_patch::Patch =
            serde_json::from_value(json!([{"op": "test", "path": "/spec/replicas", "value": 9}])).unwrap();
        let e = api_err(deps.patch("web", &PatchParams::default(), &Patch::Json::<()>(bad)).await.unwrap_err());
        assert_eq!(e.code, 422);

        // A patch pinning a stale resourceVersion conflicts.
        let e = api_err(
            deps.patch("web", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"resourceVersion": "1"}})))
                .await
                .unwrap_err(),
        );
        assert_eq!(e.code, 409);

        // Server-side apply: create, ownership, conflicts, force, removal of dropped fields.
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &c.ns);
        let cfg = |data: Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": data});
        let a = cms
            .patch("applied", &PatchParams::apply("alice"), &Patch::Apply(cfg(json!({"x": "1", "y": "2"}))))
            .await
            .unwrap();
        let mf = a.metadata.managed_fields.clone().unwrap();
        assert_eq!(mf[0].manager.as_deref(), Some("alice"));
        assert_eq!(mf[0].operation.as_deref(), Some("Apply"));
        let e = api_err(
            cms.patch("applied", &PatchParams::apply("bob"), &Patch::Apply(cfg(json!({"x": "9"}))))
                .await
                .unwrap_err(),
        );
        assert_eq!(e.code, 409);
        assert_eq!(e.message, "Apply failed with 1 conflict: conflict with \"alice\": .data.x");
        let b = cms
            .patch("applied", &PatchParams::apply("bob").force(), &Patch::Apply(cfg(json!({"x": "9"}))))
            .await
            .unwrap();
        assert_eq!(b.data.as_ref().unwrap()["x"], "9");
        // alice drops y: it goes away; x now belongs to bob and stays.
        let a2 = cms
            .patch("applied", &PatchParams::apply("alice"), &Patch::Apply(cfg(json!({}))))
            .await
            .unwrap();
        let data = a2.data.unwrap_or_default();
        assert_eq!(data.get("x").map(String::as_str), Some("9"));
        assert!(!data.contains_key("y"));
        // Missing fieldManager is rejected.
        let e = api_err(
            cms.patch("applied", &PatchParams::default(), &Patch::Apply(cfg(json!({}))))
                .await
                .unwrap_err(),
        );
        assert_eq!(e.code, 422);
    })
    .await;
    c.cleanup().await;
}

#[tokio::test]
async fn finalizers_garbage_collection_and_namespaces() {
    let sim = sim().await;
    let client = sim.client().await.unwrap();
    within("deletion", async {
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let mut f = cm("fin", json!({}));
        f.metadata.finalizers = Some(vec!["sim.test/hold".into()]);
        cms.create(&PostParams::default(), &f).await.unwrap();
        cms.delete("fin", &DeleteParams::default()).await.unwrap();
        let held = cms.get("fin").await.unwrap();
        assert!(held.metadata.deletion_timestamp.is_some());
        // No new finalizers on an object being deleted.
        let e = api_err(
            cms.patch("fin", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": ["sim.test/hold", "other"]}})))
                .await
                .unwrap_err(),
        );
        assert_eq!(e.code, 422);
        cms.patch("fin", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}})))
            .await
            .unwrap();
        assert_eq!(api_err(cms.get("fin").await.unwrap_err()).code, 404);

        // ownerReference garbage collection.
        let owner = cms.create(&PostParams::default(), &cm("owner", json!({}))).await.unwrap();
        let oref = json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.uid().unwrap()}]);
        for name in ["dep1", "dep2"] {
            let mut d = cm(name, json!({}));
            d.metadata.owner_references = Some(serde_json::from_value(oref.clone()).unwrap());
            cms.create(&PostParams::default(), &d).await.unwrap();
        }
        cms.delete("owner", &DeleteParams::default()).await.unwrap();
        assert_eq!(api_err(cms.get("dep1").await.unwrap_err()).code, 404);
        assert_eq!(api_err(cms.get("dep2").await.unwrap_err()).code, 404);

        // Orphan propagation keeps dependents and drops the reference.
        let owner = cms.create(&PostParams::default(), &cm("owner2", json!({}))).await.unwrap();
        let mut d = cm("dep3", json!({}));
        d.metadata.owner_references = Some(
            serde_json::from_value(json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner2", "uid": owner.uid().unwrap()}]))
                .unwrap(),
        );
        cms.create(&PostParams::default(), &d).await.unwrap();
        cms.delete("owner2", &DeleteParams::orphan()).await.unwrap();
        let kept = cms.get("dep3").await.unwrap();
        assert!(kept.metadata.owner_references.is_none());

        // Deleting a namespace deletes its content, then the namespace.
        let nss: Api<Namespace> = Api::all(client.clone());
        nss.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "tmp"}})).unwrap())
            .await
            .unwrap();
        let tmp: Api<Pod> = Api::namespaced(client.clone(), "tmp");
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}}))
            .unwrap();
        let created = tmp.create(&PostParams::default(), &pod).await.unwrap();
        assert_eq!(created.status.unwrap().phase.as_deref(), Some("Pending"));
        nss.delete("tmp", &DeleteParams::default()).await.unwrap();
        assert_eq!(api_err(tmp.get("p").await.unwrap_err()).code, 404);
        assert_eq!(api_err(nss.get("tmp").await.unwrap_err()).code, 404);
    })
    .await;
}

#[tokio::test]
async fn list_selectors_and_pagination() {
    let c = cluster().await;
    let client = c.client.clone();
    within("list", async {
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &c.ns);
        for i in 0..25 {
            let mut c = cm(&format!("cm-{i:02}"), json!({}));
            c.metadata.labels = Some(
                [(
                    "tier".to_string(),
                    if i % 2 == 0 { "even" } else { "odd" }.to_string(),
                )]
                .into(),
            );
            cms.create(&PostParams::default(), &c).await.unwrap();
        }
        let even = cms
            .list(&ListParams::default().labels("tier=even"))
            .await
            .unwrap();
        assert_eq!(even.items.len(), 13);
        let set = cms
            .list(&ListParams::default().labels("tier in (odd),tier!=even"))
            .await
            .unwrap();
        assert_eq!(set.items.len(), 12);
        let by_name = cms
            .list(&ListParams::default().fields("metadata.name=cm-07"))
            .await
            .unwrap();
        assert_eq!(by_name.items.len(), 1);
        let not_ns = cms
            .list(&ListParams::default().fields(&format!("metadata.namespace!={}", c.ns)))
            .await
            .unwrap();
        assert!(not_ns.items.is_empty());

        let mut names = Vec::new();
        let mut lp = ListParams::default().limit(10);
        let mut pages = 0;
        loop {
            let page = cms.list(&lp).await.unwrap();
            pages += 1;
            names.extend(page.items.iter().map(ResourceExt::name_any));
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(c) => lp = lp.continue_token(&c),
                None => break,
            }
        }
        assert_eq!(pages, 3);
        assert_eq!(names.len(), 25);
        let mut sorted = names.clone();
        sorted.dedup();
        assert_eq!(sorted.len(), 25);
    })
    .await;
    c.cleanup().await;
}

#[tokio::test]
async fn discovery_and_tables() {
    let sim = sim().await;
    let client = sim.client().await.unwrap();
    within("discovery", async {
        let discovery = Discovery::new(client.clone()).run().await.unwrap();
        let groups: Vec<String> = discovery.groups().map(|g| g.name().to_string()).collect();
        for g in ["", "apps", "batch", "coordination.k8s.io", "admissionregistration.k8s.io", "kyverno.io", "wgpolicyk8s.io", "reports.kyverno.io"] {
            assert!(groups.iter().any(|x| x == g), "group {g:?} missing from {groups:?}");
        }
        let (ar, caps) = discovery
            .resolve_gvk(&GroupVersionKind::gvk("wgpolicyk8s.io", "v1alpha2", "PolicyReport"))
            .unwrap();
        assert_eq!(ar.plural, "policyreports");
        assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);
        let kyverno = discovery.get("kyverno.io").unwrap();
        assert_eq!(kyverno.preferred_version_or_latest(), "v2");

        // A Table with the CRD's printer columns.
        let polr: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar);
        let r: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReport",
            "metadata": {"name": "r1"}, "summary": {"pass": 4, "fail": 1, "warn": 0, "error": 0, "skip": 2}
        }))
        .unwrap();
        polr.create(&PostParams::default(), &r).await.unwrap();
        let req = http::Request::get("/apis/wgpolicyk8s.io/v1alpha2/namespaces/default/policyreports")
            .header("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io,application/json")
            .body(Vec::new())
            .unwrap();
        let table: Value = client.request(req).await.unwrap();
        assert_eq!(table["kind"], "Table");
        let cols: Vec<&str> = table["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(cols, ["Name", "Kind", "Name", "Pass", "Fail", "Warn", "Error", "Skip", "Age"]);
        let cells = &table["rows"][0]["cells"];
        assert_eq!(cells[0], "r1");
        assert_eq!((cells[3].clone(), cells[4].clone(), cells[7].clone()), (json!(4), json!(1), json!(2)));
        assert!(cells[8].as_str().unwrap().ends_with('s'));
        assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    })
    .await;
}

/// An `events.k8s.io/v1` Event as the admission controller writes it.
fn policy_violation(ns: &str) -> k8s_openapi::api::events::v1::Event {
    serde_json::from_value(json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"generateName": "bad.", "namespace": ns},
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "action": "Resource Passed", "reason": "PolicyViolation", "type": "Warning",
        "note": "policy require-tier/check-tier fail: the label tier is required",
        "reportingController": "kyverno-admission", "reportingInstance": "kyverno-admission-1",
        "regarding": {"apiVersion": "v1", "kind": "Pod", "name": "bad", "namespace": ns},
        "related": {"apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy", "name": "require-tier"},
    }))
    .unwrap()
}

#[tokio::test]
async fn events_are_one_kind_in_two_group_versions() {
    use k8s_openapi::api::core::v1::Event as CoreEvent;
    use k8s_openapi::api::events::v1::Event as EventV1;
    let c = cluster().await;
    let core: Api<CoreEvent> = Api::namespaced(c.client.clone(), &c.ns);
    let v1: Api<EventV1> = Api::namespaced(c.client.clone(), &c.ns);
    let names = |events: Vec<String>| {
        let mut events = events;
        events.sort();
        events
    };
    within("events in both group-versions", async {
        // Written as events.k8s.io/v1, read as core v1.
        let written = v1
            .create(&PostParams::default(), &policy_violation(&c.ns))
            .await
            .unwrap();
        let name = written.name_any();
        let seen = core.get(&name).await.unwrap();
        assert_eq!(
            seen.message.as_deref(),
            Some("policy require-tier/check-tier fail: the label tier is required")
        );
        assert_eq!(seen.involved_object.kind.as_deref(), Some("Pod"));
        assert_eq!(seen.involved_object.name.as_deref(), Some("bad"));
        assert_eq!(
            seen.reporting_component.as_deref(),
            Some("kyverno-admission")
        );
        assert_eq!(
            seen.reporting_instance.as_deref(),
            Some("kyverno-admission-1")
        );
        assert_eq!(seen.reason.as_deref(), Some("PolicyViolation"));
        assert_eq!(seen.type_.as_deref(), Some("Warning"));
        assert_eq!(seen.action.as_deref(), Some("Resource Passed"));
        assert!(seen.event_time.is_some());
        assert_eq!(
            seen.related.and_then(|r| r.name).as_deref(),
            Some("require-tier")
        );
        assert_eq!(
            seen.metadata.resource_version,
            written.metadata.resource_version
        );

        // Written as core v1 (the legacy fields), read as events.k8s.io/v1.
        let legacy: CoreEvent = serde_json::from_value(json!({
            "metadata": {"name": "legacy", "namespace": c.ns},
            "involvedObject": {"kind": "ConfigMap", "name": "cfg", "namespace": c.ns},
            "reason": "Updated", "message": "the config changed", "type": "Normal",
            "source": {"component": "tester"}, "count": 3,
            "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:01:00Z",
        }))
        .unwrap();
        core.create(&PostParams::default(), &legacy).await.unwrap();
        let seen = v1.get("legacy").await.unwrap();
        assert_eq!(seen.note.as_deref(), Some("the config changed"));
        assert_eq!(
            seen.regarding.as_ref().and_then(|r| r.name.as_deref()),
            Some("cfg")
        );
        assert_eq!(
            seen.deprecated_source
                .as_ref()
                .and_then(|s| s.component.as_deref()),
            Some("tester")
        );
        assert_eq!(seen.deprecated_count, Some(3));
        assert!(
            seen.deprecated_first_timestamp.is_some() && seen.deprecated_last_timestamp.is_some()
        );

        // A patch through one version keeps the fields only the other one names.
        v1.patch(
            "legacy",
            &PatchParams::default(),
            &Patch::Merge(json!({"note": "changed again"})),
        )
        .await
        .unwrap();
        let seen = core.get("legacy").await.unwrap();
        assert_eq!(seen.message.as_deref(), Some("changed again"));
        assert_eq!(
            seen.source.and_then(|s| s.component).as_deref(),
            Some("tester")
        );
        assert_eq!(seen.count, Some(3));

        // Field selectors of both versions, over the events written through either.
        let listed =
            |events: Vec<CoreEvent>| names(events.into_iter().map(|e| e.name_any()).collect());
        let select = |s: &str| ListParams::default().fields(s);
        assert_eq!(
            listed(
                core.list(&select("reason=PolicyViolation"))
                    .await
                    .unwrap()
                    .items
            ),
            [name.as_str()]
        );
        assert_eq!(
            listed(core.list(&select("type=Normal")).await.unwrap().items),
            ["legacy"]
        );
        assert_eq!(
            listed(
                core.list(&select("involvedObject.kind=Pod,involvedObject.name=bad"))
                    .await
                    .unwrap()
                    .items
            ),
            [name.as_str()]
        );
        assert_eq!(
            listed(core.list(&select("source=tester")).await.unwrap().items),
            ["legacy"]
        );
        assert_eq!(
            listed(
                core.list(&select("reportingComponent=kyverno-admission"))
                    .await
                    .unwrap()
                    .items
            ),
            [name.as_str()]
        );
        assert_eq!(
            listed(
                core.list(&select("reason!=PolicyViolation"))
                    .await
                    .unwrap()
                    .items
            ),
            ["legacy"]
        );
        let listed_v1 =
            |events: Vec<EventV1>| names(events.into_iter().map(|e| e.name_any()).collect());
        assert_eq!(
            listed_v1(v1.list(&select("regarding.name=cfg")).await.unwrap().items),
            ["legacy"]
        );
        assert_eq!(
            listed_v1(
                v1.list(&select("reportingController=kyverno-admission"))
                    .await
                    .unwrap()
                    .items
            ),
            [name.as_str()]
        );
        assert_eq!(
            listed_v1(
                v1.list(&select("reason=PolicyViolation,type=Warning"))
                    .await
                    .unwrap()
                    .items
            ),
            [name.as_str()]
        );

        // Labels the real server does not support for Events are refused.
        let e = api_err(core.list(&select("message=x")).await.unwrap_err());
        assert_eq!(e.code, 400);
        assert!(
            e.message.contains("field label not supported: message"),
            "{}",
            e.message
        );
        let e = api_err(
            v1.list(&select("involvedObject.name=bad"))
                .await
                .unwrap_err(),
        );
        assert_eq!(e.code, 400);

        // Deleted through one version, gone from both.
        core.delete(&name, &DeleteParams::default()).await.unwrap();
        assert_eq!(api_err(v1.get(&name).await.unwrap_err()).code, 404);
        assert_eq!(
            listed_v1(v1.list(&ListParams::default()).await.unwrap().items),
            ["legacy"]
        );
    })
    .await;
    c.cleanup().await;
}
