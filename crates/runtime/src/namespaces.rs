//! The labels of every namespace, for `namespaceSelector`s (kept in step by [`crate::watch`]).
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

/// Labels by namespace name.
#[derive(Debug, Default)]
pub struct NamespaceLabels {
    labels: RwLock<HashMap<String, Arc<BTreeMap<String, String>>>>,
}

impl NamespaceLabels {
    /// The labels of `namespace` (none when it is unknown).
    pub fn get(&self, namespace: &str) -> Arc<BTreeMap<String, String>> {
        let labels = match self.labels.read() {
            Ok(labels) => labels,
            Err(poisoned) => poisoned.into_inner(),
        };
        labels.get(namespace).cloned().unwrap_or_default()
    }

    /// Sets the labels of a namespace.
    pub fn set(&self, namespace: String, labels: BTreeMap<String, String>) {
        self.write(|all| {
            all.insert(namespace, Arc::new(labels));
        });
    }

    /// Forgets a namespace.
    pub fn remove(&self, namespace: &str) {
        self.write(|all| {
            all.remove(namespace);
        });
    }

    /// Replaces every namespace.
    pub fn replace(
        &self,
        namespaces: impl IntoIterator<Item = (String, BTreeMap<String, String>)>,
    ) {
        let fresh = namespaces
            .into_iter()
            .map(|(name, labels)| (name, Arc::new(labels)))
            .collect();
        self.write(|all| *all = fresh);
    }

    fn write(&self, change: impl FnOnce(&mut HashMap<String, Arc<BTreeMap<String, String>>>)) {
        let mut labels = match self.labels.write() {
            Ok(labels) => labels,
            Err(poisoned) => poisoned.into_inner(),
        };
        change(&mut labels);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_remove_replace() {
        let store = NamespaceLabels::default();
        store.set("a".into(), BTreeMap::from([("team".into(), "x".into())]));
        assert_eq!(store.get("a").get("team").map(String::as_str), Some("x"));
        assert!(store.get("b").is_empty());
        store.remove("a");
        assert!(store.get("a").is_empty());
        store.replace([("b".to_owned(), BTreeMap::new())]);
        assert!(store.get("b").is_empty());
    }
}
