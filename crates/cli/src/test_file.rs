//! The `kyverno-test.yaml` document (`cli.kyverno.io/v1alpha1` Test) and the files it points at:
//! Values, UserInfo and ClusterResource.
//!
//! Upstream matches field names case-insensitively and rejects unknown fields; so do we.
use std::collections::BTreeMap;

use kyverno_api::policy_report::v1alpha2::PolicyResult;
use serde::Deserialize;
use serde_json::{Map, Value};

/// A test: policies and resources to load, and the results expected per (policy, rule, resource).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Test {
    /// `cli.kyverno.io/v1alpha1` (older files say `kyverno.io/v1`); required, but checked after
    /// parsing so that its absence is reported as the deprecated schema.
    #[serde(default)]
    pub api_version: String,
    /// `Test`; required as `apiVersion` is.
    #[serde(default)]
    pub kind: String,
    /// Object metadata; `name` names the test in reports.
    #[serde(default)]
    pub metadata: Option<Value>,
    /// The deprecated schema's test name; its presence is an error.
    #[serde(default)]
    pub name: Option<String>,
    /// Policy files, relative to the test file.
    #[serde(default)]
    pub policies: Vec<String>,
    /// Resource files, relative to the test file.
    #[serde(default)]
    pub resources: Vec<String>,
    /// Existing resources that mutate-existing rules patch.
    #[serde(default)]
    pub target_resources: Vec<String>,
    /// Parameter resources of admission policies.
    #[serde(default)]
    pub param_resources: Vec<String>,
    /// ClusterResource files: CRDs and resources of the simulated cluster.
    #[serde(default)]
    pub cluster_resources: Vec<String>,
    /// PolicyException files.
    #[serde(default)]
    pub exceptions: Vec<String>,
    /// A Values file.
    #[serde(default)]
    pub variables: Option<String>,
    /// Values given inline.
    #[serde(default)]
    pub values: Option<Values>,
    /// A UserInfo file: the requester of the simulated admission requests.
    #[serde(default)]
    pub userinfo: Option<String>,
    /// A CEL Context file.
    #[serde(default)]
    pub context: Option<String>,
    /// A JSON payload file (for JSON policies).
    #[serde(default)]
    pub json_payload: Option<String>,
    /// JSON payload files.
    #[serde(default)]
    pub json_payloads: Vec<String>,
    /// HTTP request payload files.
    #[serde(default)]
    pub http_payloads: Vec<String>,
    /// Envoy request payload files.
    #[serde(default)]
    pub envoy_payloads: Vec<String>,
    /// Mocked responses of API calls.
    #[serde(default)]
    pub api_call_responses: Vec<ApiCallResponse>,
    /// Mocked GlobalContextEntries.
    #[serde(default)]
    pub global_context_entries: Vec<GlobalContextEntryValue>,
    /// The expected results.
    #[serde(default)]
    pub results: Vec<TestResult>,
    /// Assertions on rule responses (kyverno-json style); not supported yet.
    #[serde(default)]
    pub checks: Vec<Value>,
}

/// A mocked response of an API call, matched by URL or URL path and, optionally, method.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiCallResponse {
    /// An absolute URL (service calls).
    #[serde(default)]
    pub url: Option<String>,
    /// A path on the Kubernetes API server (`/api/v1/namespaces`).
    #[serde(default)]
    pub url_path: Option<String>,
    /// `GET` or `POST`; empty matches any method.
    #[serde(default)]
    pub method: Option<String>,
    /// The response returned.
    pub response: MockResponse,
}

/// The static response of a mocked API call.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MockResponse {
    /// The HTTP status code (200 when absent).
    #[serde(default)]
    pub status_code: Option<u16>,
    /// The response body.
    pub body: Value,
}

/// Static data for a named GlobalContextEntry.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GlobalContextEntryValue {
    /// The GlobalContextEntry's name.
    pub name: String,
    /// Arbitrary data, the root of the entry.
    #[serde(default)]
    pub data: Option<Value>,
    /// Kubernetes resources given inline; the root is their list.
    #[serde(default)]
    pub resources: Vec<Value>,
    /// Files of Kubernetes resources, relative to the test file; the root is their list.
    #[serde(default)]
    pub resource_files: Vec<String>,
    /// A JMESPath expression applied to the root first.
    #[serde(default)]
    pub field_path: Option<String>,
    /// Named JMESPath extracts; when given, the entry is an object of them.
    #[serde(default)]
    pub projections: Vec<Projection>,
}

/// One named extract of a mocked GlobalContextEntry.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Projection {
    /// The key policies see.
    pub name: String,
    /// A JMESPath expression evaluated against the entry's root.
    pub path: String,
}

/// The resources of the simulated cluster (`kind: ClusterResource`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterResource {
    /// `cli.kyverno.io/v1alpha1`.
    #[serde(default)]
    pub api_version: Option<String>,
    /// `ClusterResource`.
    #[serde(default)]
    pub kind: Option<String>,
    /// Object metadata.
    #[serde(default)]
    pub metadata: Option<Value>,
    /// The CRDs and resources.
    #[serde(default)]
    pub spec: ClusterResourceSpec,
}

/// The content of a ClusterResource file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterResourceSpec {
    /// CustomResourceDefinition files, relative to the test file.
    #[serde(default)]
    pub crds: Vec<String>,
    /// Resources given inline.
    #[serde(default)]
    pub resources: Vec<Value>,
}

/// The data the CEL libraries read in an offline run (`kind: Context`): Kubernetes resources
/// for the `resource` library and image data for the `image` library.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContextFile {
    /// `cli.kyverno.io/v1alpha1`.
    #[serde(default)]
    pub api_version: Option<String>,
    /// `Context`.
    #[serde(default)]
    pub kind: Option<String>,
    /// Object metadata.
    #[serde(default)]
    pub metadata: Option<Value>,
    /// The resources and images.
    pub spec: ContextSpec,
}

/// The content of a Context file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContextSpec {
    /// Resources the `resource` library finds.
    #[serde(default)]
    pub resources: Vec<Value>,
    /// Metadata of images, as the `image` library would fetch it from their registries.
    #[serde(default)]
    pub images: Vec<ImageData>,
}

/// The metadata of one image. Every field but `image` is kept as given.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageData {
    /// The image reference policies look up.
    pub image: String,
    /// The other fields: `resolvedImage`, `registry`, `repository`, `tag`, `digest`,
    /// `imageIndex`, `manifest`, `config`.
    #[serde(flatten)]
    pub data: Map<String, Value>,
}

/// One expected result: a policy (and rule) applied to resources.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TestResult {
    /// The policy name (`namespace/name` for a namespaced Policy).
    pub policy: String,
    /// The rule name; absent for the CEL policy kinds.
    #[serde(default)]
    pub rule: Option<String>,
    /// The resources' kind.
    #[serde(default)]
    pub kind: String,
    /// Resource names, `name` or `namespace/name`.
    #[serde(default)]
    pub resources: Vec<String>,
    /// Resources given by group, version, kind, namespace and name.
    #[serde(default)]
    pub resource_specs: Vec<ResourceSpec>,
    /// The expected outcome.
    pub result: PolicyResult,
    /// The admission operation to simulate (CREATE by default).
    #[serde(default)]
    pub operation: Option<String>,
    /// A file with the expected mutated resource.
    #[serde(default)]
    pub patched_resources: Option<String>,
    /// A file with the expected generated resource.
    #[serde(default)]
    pub generated_resource: Option<String>,
    /// Files with the expected generated resources.
    #[serde(default)]
    pub generated_resources: Vec<String>,
    /// A file with the source of a clone rule.
    #[serde(default)]
    pub clone_source_resource: Option<String>,
    /// Fail when a listed resource is not found (the default).
    #[serde(default)]
    pub fail_on_missing_resources: Option<bool>,
    /// The policy is a ValidatingPolicy.
    #[serde(default)]
    pub is_validating_policy: bool,
    /// The policy is a MutatingPolicy.
    #[serde(default)]
    pub is_mutating_policy: bool,
    /// The policy is a GeneratingPolicy.
    #[serde(default)]
    pub is_generating_policy: bool,
    /// The policy is a DeletingPolicy.
    #[serde(default)]
    pub is_deleting_policy: bool,
    /// The policy is an ImageValidatingPolicy.
    #[serde(default)]
    pub is_image_validating_policy: bool,
    /// The policy is a ValidatingAdmissionPolicy.
    #[serde(default)]
    pub is_validating_admission_policy: bool,
    /// The policy is a MutatingAdmissionPolicy.
    #[serde(default)]
    pub is_mutating_admission_policy: bool,
}

/// A resource identified by its group, version, kind, namespace and name.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceSpec {
    /// API group.
    #[serde(default)]
    pub group: String,
    /// API version.
    #[serde(default)]
    pub version: String,
    /// Kind.
    #[serde(default)]
    pub kind: String,
    /// Namespace.
    #[serde(default)]
    pub namespace: String,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Subresource.
    #[serde(default)]
    pub subresource: String,
}

/// Variable values for the policies under test (`kind: Values`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Values {
    /// `cli.kyverno.io/v1alpha1` when given as a file.
    #[serde(default)]
    pub api_version: Option<String>,
    /// `Values` (or `Value`) when given as a file.
    #[serde(default)]
    pub kind: Option<String>,
    /// Object metadata.
    #[serde(default)]
    pub metadata: Option<Value>,
    /// Variables for every policy and resource; keys may be dotted paths.
    #[serde(default)]
    pub global_values: Map<String, Value>,
    /// Variables per policy, rule and resource.
    #[serde(default)]
    pub policies: Vec<PolicyValues>,
    /// Namespace labels, for namespaceSelector matching.
    #[serde(default)]
    pub namespace_selector: Vec<NamespaceLabels>,
    /// Namespace objects.
    #[serde(default)]
    pub namespaces: Vec<Value>,
    /// Subresources and their parent resources.
    #[serde(default)]
    pub subresources: Vec<Subresource>,
}

/// A subresource kind and the resource it belongs to (`deployments/scale` of `Deployment`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Subresource {
    /// The subresource's API resource.
    pub subresource: ApiResource,
    /// The parent's API resource.
    pub parent_resource: ApiResource,
}

/// The parts of a Kubernetes `APIResource` that identify a kind; the others are accepted and
/// ignored.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiResource {
    /// Plural resource name, `deployments/scale` for a subresource.
    #[serde(default)]
    pub name: String,
    /// API group.
    #[serde(default)]
    pub group: String,
    /// API version.
    #[serde(default)]
    pub version: String,
    /// Kind.
    #[serde(default)]
    pub kind: String,
}

/// Variables of one policy.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyValues {
    /// The policy name.
    pub name: String,
    /// Variables per rule.
    #[serde(default)]
    pub rules: Vec<RuleValues>,
    /// Variables per resource.
    #[serde(default)]
    pub resources: Vec<ResourceValues>,
}

/// Variables of one rule.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleValues {
    /// The rule name.
    pub name: String,
    /// Variables; keys may be dotted paths.
    #[serde(default)]
    pub values: Map<String, Value>,
    /// Variables per foreach element: a list of value maps per foreach variable name.
    #[serde(default)]
    pub foreach_values: Map<String, Value>,
}

/// Variables of one resource.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceValues {
    /// The resource name.
    pub name: String,
    /// Variables; keys may be dotted paths.
    #[serde(default)]
    pub values: Map<String, Value>,
}

/// The labels of one namespace.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamespaceLabels {
    /// The namespace name.
    pub name: String,
    /// Its labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// The requester of simulated admission requests (`kind: UserInfo`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserInfo {
    /// `cli.kyverno.io/v1alpha1`.
    #[serde(default)]
    pub api_version: Option<String>,
    /// `UserInfo`.
    #[serde(default)]
    pub kind: Option<String>,
    /// Object metadata.
    #[serde(default)]
    pub metadata: Option<Value>,
    /// Namespaced roles held by the user, as `namespace:name`.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Cluster roles held by the user.
    #[serde(default)]
    pub cluster_roles: Vec<String>,
    /// The user as the API server authenticated it.
    #[serde(default)]
    pub user_info: Option<Value>,
    /// Unused by the CLI; accepted for compatibility.
    #[serde(default)]
    pub synchronize: Option<bool>,
}

impl UserInfo {
    /// The requester as the engine sees it.
    pub fn into_request_info(
        self,
    ) -> Result<kyverno_policy_core::request::RequestInfo, serde_json::Error> {
        Ok(kyverno_policy_core::request::RequestInfo {
            roles: self.roles,
            cluster_roles: self.cluster_roles,
            user_info: match self.user_info {
                Some(value) => serde_json::from_value(value)?,
                None => Default::default(),
            },
        })
    }
}

/// Field names of every struct above, for case-insensitive matching.
const TEST_FIELDS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "name",
    "policies",
    "resources",
    "targetResources",
    "paramResources",
    "clusterResources",
    "exceptions",
    "variables",
    "values",
    "userinfo",
    "context",
    "jsonPayload",
    "jsonPayloads",
    "httpPayloads",
    "envoyPayloads",
    "apiCallResponses",
    "globalContextEntries",
    "results",
];
const RESULT_FIELDS: &[&str] = &[
    "policy",
    "rule",
    "kind",
    "resources",
    "resourceSpecs",
    "result",
    "operation",
    "patchedResources",
    "generatedResource",
    "generatedResources",
    "cloneSourceResource",
    "failOnMissingResources",
    "isValidatingPolicy",
    "isMutatingPolicy",
    "isGeneratingPolicy",
    "isDeletingPolicy",
    "isImageValidatingPolicy",
    "isValidatingAdmissionPolicy",
    "isMutatingAdmissionPolicy",
];

/// Renames keys that match a known field name case-insensitively to its canonical spelling.
fn canonical_keys(object: &mut Map<String, Value>, fields: &[&str]) {
    let renames: Vec<(String, &str)> = object
        .keys()
        .filter_map(|key| {
            fields
                .iter()
                .find(|field| field.eq_ignore_ascii_case(key) && **field != key)
                .map(|field| (key.clone(), *field))
        })
        .collect();
    for (from, to) in renames {
        if let Some(value) = object.remove(&from) {
            object.insert(to.to_owned(), value);
        }
    }
}

/// Puts a Test document's field names into canonical spelling (upstream reads them
/// case-insensitively), including those of its results.
pub fn canonicalize_test(document: &mut Value) {
    let Some(object) = document.as_object_mut() else {
        return;
    };
    canonical_keys(object, TEST_FIELDS);
    if let Some(results) = object.get_mut("results").and_then(Value::as_array_mut) {
        for result in results.iter_mut().filter_map(Value::as_object_mut) {
            canonical_keys(result, RESULT_FIELDS);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Test, serde_json::Error> {
        let mut value: Value = serde_saphyr::from_str(yaml).expect("valid YAML");
        canonicalize_test(&mut value);
        serde_json::from_value(value)
    }

    #[test]
    fn field_names_are_case_insensitive() {
        let test = parse(
            "apiVersion: cli.kyverno.io/v1alpha1\nkind: Test\nPolicies: [p.yaml]\nresults:\n- policy: p\n  isMUtatingPolicy: true\n  result: pass\n",
        )
        .expect("valid test");
        assert_eq!(test.policies, ["p.yaml"]);
        assert!(test.results[0].is_mutating_policy);
    }

    #[test]
    fn unknown_fields_are_errors() {
        let error = parse("apiVersion: v\nkind: Test\nresultz: []\n").expect_err("unknown field");
        assert!(error.to_string().contains("resultz"), "{error}");
    }

    #[test]
    fn user_infos_become_request_infos() {
        let user_info: UserInfo = serde_saphyr::from_str(
            "apiVersion: cli.kyverno.io/v1alpha1\nkind: UserInfo\nclusterRoles: [admin]\nuserInfo:\n  username: alice\n  groups: [devs]\n",
        )
        .expect("valid");
        let info = user_info.into_request_info().expect("converts");
        assert_eq!(info.cluster_roles, ["admin"]);
        assert_eq!(info.user_info.username, "alice");
        assert_eq!(info.user_info.groups, ["devs"]);
        let bad: UserInfo =
            serde_saphyr::from_str("userInfo:\n  groups: admin\n").expect("valid yaml");
        assert!(bad.into_request_info().is_err());
    }

    #[test]
    fn outcomes_are_lowercase() {
        let error = parse("apiVersion: v\nkind: Test\nresults:\n- policy: p\n  result: Maybe\n")
            .expect_err("unknown outcome");
        assert!(error.to_string().contains("Maybe"), "{error}");
    }
}
