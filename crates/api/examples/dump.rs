//! temp
use kube::CustomResourceExt;
fn main() {
    let c = kyverno_api::kyverno::v1::policy::Policy::crd();
    println!("{}", serde_json::to_string_pretty(&c).unwrap());
}
