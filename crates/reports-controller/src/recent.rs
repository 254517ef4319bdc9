//! Keys remembered for a while: the uids of deleted resources, so that an ephemeral report
//! about one of them arriving after its deletion is not aggregated. Forgetting them after a
//! while keeps memory bounded however many resources come and go; by then the API server's
//! garbage collector has deleted the late reports (they are owned by their resource), and a
//! later listing of the resources prunes any result left.
use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

/// How long the uid of a deleted resource is remembered by default.
pub const DEFAULT_REMEMBERED_FOR: Duration = Duration::from_secs(600);

/// A set whose keys are forgotten `remembered_for` after they were inserted.
#[derive(Debug)]
pub struct Recent {
    remembered_for: Duration,
    /// Keys in insertion order.
    order: VecDeque<(Instant, String)>,
    members: HashSet<String>,
}

impl Recent {
    /// An empty set whose keys are forgotten after `remembered_for`.
    pub fn new(remembered_for: Duration) -> Self {
        Self {
            remembered_for,
            order: VecDeque::new(),
            members: HashSet::new(),
        }
    }

    /// Remembers `key` from `now` on, and forgets the keys older than `remembered_for`.
    pub fn insert(&mut self, key: String, now: Instant) {
        while let Some((inserted, _)) = self.order.front() {
            if now.saturating_duration_since(*inserted) < self.remembered_for {
                break;
            }
            if let Some((_, expired)) = self.order.pop_front() {
                self.members.remove(&expired);
            }
        }
        if self.members.insert(key.clone()) {
            self.order.push_back((now, key));
        }
    }

    /// Whether `key` is remembered.
    pub fn contains(&self, key: &str) -> bool {
        self.members.contains(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_forgotten_after_a_while() {
        let start = Instant::now();
        let mut recent = Recent::new(Duration::from_secs(10));
        recent.insert("a".into(), start);
        recent.insert("b".into(), start + Duration::from_secs(5));
        assert!(recent.contains("a") && recent.contains("b"));
        recent.insert("c".into(), start + Duration::from_secs(12));
        assert!(!recent.contains("a"), "a is older than 10 s");
        assert!(recent.contains("b") && recent.contains("c"));
        recent.insert("d".into(), start + Duration::from_secs(30));
        assert!(!recent.contains("b") && !recent.contains("c"));
        assert!(recent.contains("d"));
    }

    #[test]
    fn a_key_inserted_twice_is_kept_once() {
        let start = Instant::now();
        let mut recent = Recent::new(Duration::from_secs(10));
        recent.insert("a".into(), start);
        recent.insert("a".into(), start + Duration::from_secs(1));
        assert_eq!(recent.order.len(), 1);
        assert_eq!(recent.members.len(), 1);
    }
}
