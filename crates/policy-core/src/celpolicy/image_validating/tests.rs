use std::sync::Arc;

use kyverno_api::kyverno::v1::match_resources::AdmissionOperation;
use kyverno_api::policies::image_validating::ImageValidatingPolicy;
use serde_json::{Value, json};

use super::*;
use crate::celpolicy::generating::tests::Cluster;
use crate::celpolicy::resources::ResourceTable;
use crate::request::GroupVersionKind;
use crate::request::ResourceRequest;

fn compile(
    spec: &str,
    exceptions: &[Arc<PolicyException>],
) -> Result<CompiledImageValidatingPolicy, CelPolicyLoadError> {
    // `attestors` is required by the schema.
    let attestors = if spec.contains("attestors:") {
        ""
    } else {
        "  attestors: []\n"
    };
    let yaml = format!(
        "apiVersion: policies.kyverno.io/v1beta1\nkind: ImageValidatingPolicy\nmetadata:\n  name: ivpol\nspec:\n{attestors}{spec}"
    );
    let policy: ImageValidatingPolicy =
        serde_json::from_value(serde_saphyr::from_str(&yaml).expect("yaml")).expect("policy");
    CompiledImageValidatingPolicy::compile("ivpol", None, &policy.spec, exceptions)
}

fn policy(spec: &str) -> CompiledImageValidatingPolicy {
    compile(spec, &[]).expect("compiles")
}

const PODS: &str = r#"  matchConstraints:
    resourceRules:
    - apiGroups: [""]
      apiVersions: ["v1"]
      operations: ["CREATE"]
      resources: ["pods"]
    - apiGroups: ["apps"]
      apiVersions: ["v1"]
      operations: ["CREATE"]
      resources: ["deployments"]
"#;

fn evaluate(
    policy: &CompiledImageValidatingPolicy,
    object: Value,
    images: &[&str],
) -> Option<ImageValidation> {
    let gvk = GroupVersionKind::from_api_version(
        object["apiVersion"].as_str().unwrap_or_default(),
        object["kind"].as_str().unwrap_or_default(),
    );
    let resource = ResourceTable::builtin()
        .mapping(&gvk)
        .expect("known kind")
        .resource;
    let request = ResourceRequest::new(object).with_operation(AdmissionOperation::Create);
    let provider: Arc<dyn ContextProvider> = Arc::new(Cluster {
        objects: Vec::new(),
        images: images.iter().map(|image| (*image).to_owned()).collect(),
    });
    policy.evaluate(&RequestInput::new(&request, &resource, None), &provider)
}

fn pod(name: &str, image: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": "default", "labels": {"prod": "true"}},
           "spec": {"containers": [{"name": "c", "image": image}],
                    "initContainers": [{"name": "i", "image": "busybox"}]}})
}

fn status(outcome: Option<ImageValidation>) -> (RuleStatus, String) {
    match outcome {
        Some(ImageValidation::Evaluated { rule, .. }) => (rule.status, rule.message),
        other => panic!("expected an evaluated result, got {other:?}"),
    }
}

#[test]
fn validations_over_unmatched_images_run_offline() {
    let policy = policy(&format!(
        r#"{PODS}  matchImageReferences:
  - glob: ghcr.io/*
  validations:
  - expression: images.containers.all(i, !i.startsWith("bad"))
    message: bad image
  - expression: size(images.initContainers) == 1 && size(images.ephemeralContainers) == 0
"#
    ));
    assert_eq!(
        status(evaluate(&policy, pod("ok", "nginx"), &[])),
        (RuleStatus::Pass, "success".to_owned())
    );
    assert_eq!(
        status(evaluate(&policy, pod("ko", "bad/nginx"), &[])),
        (RuleStatus::Fail, "bad image".to_owned())
    );
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "d", "namespace": "default"},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "bad/x"}],
                                       "initContainers": [{"name": "i", "image": "init"}]}}}});
    assert_eq!(
        status(evaluate(&policy, deployment, &[])).0,
        RuleStatus::Fail
    );
}

#[test]
fn matched_images_need_their_registry() {
    let policy = policy(&format!(
        r#"{PODS}  matchImageReferences:
  - glob: ghcr.io/*
  attestors:
  - name: notary
    notary:
      certs:
        value: cert
  validations:
  - expression: images.containers.map(image, verifyImageSignatures(image, [attestors.notary])).all(e, e > 0)
    message: failed to verify image with notary cert
"#
    ));
    let image = "ghcr.io/kyverno/test-verify-image:signed";
    let Some(ImageValidation::NeedsRegistry { reason }) = evaluate(&policy, pod("p", image), &[])
    else {
        panic!("expected the registry to be needed");
    };
    assert!(reason.contains(image), "{reason}");
    // With the image's data at hand, the signature check still needs the registry.
    let Some(ImageValidation::NeedsRegistry { reason }) =
        evaluate(&policy, pod("p", image), &[image])
    else {
        panic!("expected the registry to be needed");
    };
    assert!(reason.contains(NEEDS_REGISTRY), "{reason}");
}

#[test]
fn references_by_expression_and_custom_extractors() {
    let policy = policy(&format!(
        r#"{PODS}  matchImageReferences:
  - expression: ref == "registry.io/app"
  images:
  - name: annotated
    expression: "[object.metadata.annotations.image]"
  validations:
  - expression: images.annotated[0] == "registry.io/app"
"#
    ));
    let mut annotated = pod("p", "nginx");
    annotated["metadata"]["annotations"] = json!({"image": "registry.io/app"});
    assert!(matches!(
        evaluate(&policy, annotated.clone(), &[]),
        Some(ImageValidation::NeedsRegistry { .. })
    ));
    assert_eq!(
        status(evaluate(&policy, annotated, &["registry.io/app"])).0,
        RuleStatus::Pass
    );
    let error = status(evaluate(&policy, pod("p", "nginx"), &[]));
    assert_eq!(error.0, RuleStatus::Error, "{error:?}");
}

#[test]
fn conditions_failure_policy_and_exceptions() {
    let conditional = |failure_policy: &str| {
        policy(&format!(
            "  failurePolicy: {failure_policy}\n{PODS}  matchConditions:\n  - name: prod\n    expression: object.metadata.labels.prod == 'true'\n  validations:\n  - expression: 'true'\n"
        ))
    };
    let mut unlabelled = pod("p", "nginx");
    unlabelled["metadata"]
        .as_object_mut()
        .expect("metadata")
        .remove("labels");
    assert!(evaluate(&conditional("Ignore"), unlabelled.clone(), &[]).is_none());
    let failed = status(evaluate(&conditional("Fail"), unlabelled, &[]));
    assert_eq!(failed.0, RuleStatus::Error);
    assert!(
        failed.1.starts_with("failed to evaluate policy: "),
        "{failed:?}"
    );
    let mut dev = pod("p", "nginx");
    dev["metadata"]["labels"]["prod"] = json!("false");
    assert!(evaluate(&conditional("Fail"), dev, &[]).is_none());
    let secret =
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "d"}});
    assert!(evaluate(&conditional("Fail"), secret, &[]).is_none());

    let exception: PolicyException = serde_json::from_value(json!({
        "metadata": {"name": "check-name"},
        "spec": {"policyRefs": [{"name": "ivpol", "kind": "ImageValidatingPolicy"}],
                 "matchConditions": [{"name": "n", "expression": "object.metadata.name == 'skipped-pod'"}]}
    }))
    .expect("exception");
    let policy = compile(
        &format!("{PODS}  matchImageReferences:\n  - glob: ghcr.io/*\n  validations:\n  - expression: 'true'\n"),
        &[Arc::new(exception)],
    )
    .expect("compiles");
    let Some(ImageValidation::Evaluated { rule, .. }) =
        evaluate(&policy, pod("skipped-pod", "ghcr.io/x:unsigned"), &[])
    else {
        panic!("expected a skip");
    };
    assert_eq!(rule.status, RuleStatus::Skip);
    assert_eq!(
        rule.message,
        "rule is skipped due to policy exception: check-name"
    );
    assert!(matches!(
        evaluate(&policy, pod("other", "ghcr.io/x:unsigned"), &[]),
        Some(ImageValidation::NeedsRegistry { .. })
    ));
}

#[test]
fn compile_errors_name_the_field() {
    let error = compile(
        &format!("{PODS}  validations:\n  - expression: 'true'\n  - expression: 'images.('\n"),
        &[],
    )
    .expect_err("does not compile")
    .to_string();
    assert!(
        error.starts_with("ImageValidatingPolicy \"ivpol\": spec.validations[1].expression"),
        "{error}"
    );
    assert!(error.contains("<input>:1:"), "{error}");
    let error = compile(
        &format!("{PODS}  matchImageReferences:\n  - {{}}\n  validations: []\n"),
        &[],
    )
    .expect_err("rejected")
    .to_string();
    assert!(
        error.contains("spec.matchImageReferences[0]: exactly one of glob or expression"),
        "{error}"
    );
}
