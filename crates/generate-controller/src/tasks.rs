//! Tasks that end with their owner.

/// Aborts its tasks when dropped.
#[derive(Debug, Default)]
pub struct AbortOnDrop(pub Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}
