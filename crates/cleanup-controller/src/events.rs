//! `events.k8s.io/v1` Events about the controller's work, as upstream's cleanup controller
//! reports them (`reportingController` `kyverno-cleanup`): a resource cleaned up by a policy
//! (or not), a TTL label that cannot be read.
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};

/// The controller upstream's cleanup controller reports Events as.
pub const REPORTING_CONTROLLER: &str = "kyverno-cleanup";

/// Longest note the Events API accepts, in bytes.
const MAX_NOTE: usize = 1024;

/// Whether an Event reports normal operation or a problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// Normal operation.
    Normal,
    /// A problem.
    Warning,
}

/// What an Event says.
#[derive(Clone, Debug)]
pub struct EventInfo {
    /// The object the Event is about.
    pub regarding: ObjectReference,
    /// Normal or Warning.
    pub event_type: EventType,
    /// A short CamelCase reason.
    pub reason: &'static str,
    /// What was done.
    pub action: &'static str,
    /// The message.
    pub note: String,
}

/// A reference to an object of the API (for an Event).
pub fn reference(
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
    uid: Option<&str>,
) -> ObjectReference {
    ObjectReference {
        api_version: Some(api_version.to_owned()),
        kind: Some(kind.to_owned()),
        namespace: namespace.filter(|ns| !ns.is_empty()).map(str::to_owned),
        name: Some(name.to_owned()),
        uid: uid.map(str::to_owned),
        ..ObjectReference::default()
    }
}

/// `text` cut to at most `max` bytes, on a character boundary.
fn truncated(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// Creates an Event in the namespace of the object it is about (`default` for cluster-scoped
/// objects), reported by `instance`; a failure is logged, never fatal.
pub async fn publish(client: &Client, instance: &str, info: EventInfo) {
    let namespace = info
        .regarding
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_owned());
    let event = Event {
        metadata: ObjectMeta {
            generate_name: Some(format!(
                "{}.",
                info.regarding.name.as_deref().unwrap_or("kyverno")
            )),
            namespace: Some(namespace.clone()),
            ..ObjectMeta::default()
        },
        event_time: Some(MicroTime(Timestamp::now())),
        action: Some(info.action.to_owned()),
        reason: Some(info.reason.to_owned()),
        note: Some(truncated(info.note, MAX_NOTE)),
        type_: Some(
            match info.event_type {
                EventType::Normal => "Normal",
                EventType::Warning => "Warning",
            }
            .to_owned(),
        ),
        regarding: Some(info.regarding),
        reporting_controller: Some(REPORTING_CONTROLLER.to_owned()),
        reporting_instance: Some(instance.to_owned()),
        ..Event::default()
    };
    let api: Api<Event> = Api::namespaced(client.clone(), &namespace);
    if let Err(error) = api.create(&PostParams::default(), &event).await {
        tracing::warn!(%error, "event not recorded");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_cut_on_character_boundaries() {
        assert_eq!(truncated("short".to_owned(), 10), "short");
        assert_eq!(truncated("ééé".to_owned(), 3), "é");
    }
}
