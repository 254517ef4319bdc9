//! A work queue of UpdateRequest names, as client-go's: a name is queued at most once, and a
//! name added while a worker processes it is queued again once the worker is done, so that no
//! two workers ever process the same request at once.
use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use tokio::sync::Notify;

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<String>,
    queued: HashSet<String>,
    processing: HashSet<String>,
    dirty: HashSet<String>,
}

/// The names waiting for a worker.
#[derive(Debug, Default)]
pub struct WorkQueue {
    state: Mutex<State>,
    ready: Notify,
}

impl WorkQueue {
    /// Queues `name` unless it is queued already (or marks it to be queued again when a worker
    /// has it).
    pub fn add(&self, name: &str) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if state.processing.contains(name) {
            state.dirty.insert(name.to_owned());
            return;
        }
        if state.queued.insert(name.to_owned()) {
            state.queue.push_back(name.to_owned());
            drop(state);
            self.ready.notify_one();
        }
    }

    fn try_take(&self) -> Option<String> {
        let mut state = self.state.lock().ok()?;
        let name = state.queue.pop_front()?;
        state.queued.remove(&name);
        state.processing.insert(name.clone());
        Some(name)
    }

    /// The next name to process; the worker calls [`Self::done`] with it when finished.
    pub async fn next(&self) -> String {
        loop {
            let notified = self.ready.notified();
            if let Some(name) = self.try_take() {
                return name;
            }
            notified.await;
        }
    }

    /// Marks `name` processed: queued again if it was added meanwhile.
    pub fn done(&self, name: &str) {
        let again = self.state.lock().is_ok_and(|mut state| {
            state.processing.remove(name);
            state.dirty.remove(name)
        });
        if again {
            self.add(name);
        }
    }

    /// How many names wait.
    pub fn len(&self) -> usize {
        self.state.lock().map_or(0, |state| state.queue.len())
    }

    /// Whether no name waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn names_are_queued_once_and_never_processed_twice_at_once() {
        let queue = WorkQueue::default();
        queue.add("a");
        queue.add("b");
        queue.add("a");
        assert_eq!(queue.len(), 2);
        let first = queue.next().await;
        assert_eq!(first, "a");
        queue.add("a");
        assert_eq!(queue.len(), 1, "a is being processed: only marked");
        assert_eq!(queue.next().await, "b");
        assert!(queue.is_empty());
        queue.done("a");
        assert_eq!(queue.len(), 1, "a queued again once done");
        queue.done("b");
        assert_eq!(queue.next().await, "a");
        queue.done("a");
        assert!(queue.is_empty());
    }

    #[tokio::test]
    async fn a_waiting_worker_wakes_up() {
        let queue = std::sync::Arc::new(WorkQueue::default());
        let waiting = tokio::spawn({
            let queue = std::sync::Arc::clone(&queue);
            async move { queue.next().await }
        });
        tokio::task::yield_now().await;
        queue.add("late");
        assert_eq!(waiting.await.expect("the worker ends"), "late");
    }
}
