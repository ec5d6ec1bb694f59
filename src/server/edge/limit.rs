//! A concurrency limit whose size a reload can change.
//!
//! Place in the pipeline: `server` holds two, one for requests
//! (`server.max_concurrent_requests`) and one for client connections
//! (`server.connections.max`). Growing adds permits at once; shrinking
//! takes back the free permits at once and the busy ones as they are
//! returned. Must not queue requests: callers choose `try_acquire` (shed)
//! or `acquire` (wait).

use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug)]
pub struct Resizable {
    sem: Arc<Semaphore>,
    size: Mutex<usize>,
}

impl Resizable {
    pub fn new(size: usize) -> Self {
        Resizable {
            sem: Arc::new(Semaphore::new(size)),
            size: Mutex::new(size),
        }
    }

    pub fn try_acquire(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.sem).try_acquire_owned().ok()
    }

    pub async fn acquire(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.sem).acquire_owned().await.ok()
    }

    pub fn size(&self) -> usize {
        *self.size.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn resize(&self, new: usize) {
        let mut size = self.size.lock().unwrap_or_else(|p| p.into_inner());
        let old = *size;
        *size = new;
        if new > old {
            self.sem.add_permits(new - old);
        } else if new < old {
            let rest = (old - new) - self.sem.forget_permits(old - new);
            if rest > 0 {
                let sem = Arc::clone(&self.sem);
                tokio::spawn(async move {
                    if let Ok(p) = sem.acquire_many_owned(rest as u32).await {
                        p.forget();
                    }
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn grows_at_once_and_shrinks_as_permits_return() {
        let l = Resizable::new(2);
        let a = l.try_acquire().unwrap();
        let b = l.try_acquire().unwrap();
        assert!(l.try_acquire().is_none());
        l.resize(3);
        let c = l.try_acquire().expect("grown");
        l.resize(1);
        drop((a, b));
        tokio::task::yield_now().await;
        assert!(l.try_acquire().is_none(), "two returned permits taken back");
        drop(c);
        assert!(l.try_acquire().is_some());
    }
}
