//! The dedicated pool of threads that runs synchronous tasks, so a burst of blocking work never
//! takes threads from the async runtime or from `spawn_blocking` users such as request handlers.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A lazily grown pool of at most `max_threads` named threads fed by one channel.
pub(crate) struct BlockingPool {
    sender: parking_lot::Mutex<Option<mpsc::Sender<Job>>>,
    receiver: Arc<parking_lot::Mutex<mpsc::Receiver<Job>>>,
    max_threads: usize,
    threads: AtomicUsize,
    idle: Arc<AtomicUsize>,
}

impl BlockingPool {
    pub(crate) fn new(max_threads: usize) -> Self {
        let (sender, receiver) = mpsc::channel();
        Self {
            sender: parking_lot::Mutex::new(Some(sender)),
            receiver: Arc::new(parking_lot::Mutex::new(receiver)),
            max_threads: max_threads.max(1),
            threads: AtomicUsize::new(0),
            idle: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Queues `job`; the dispatcher never hands the pool more jobs than it has threads.
    ///
    /// Returns the job back when the pool is closed or no thread could be started.
    pub(crate) fn execute(&self, job: Job) -> Result<(), Job> {
        if self.idle.load(Ordering::Acquire) == 0
            && self.threads.load(Ordering::Acquire) < self.max_threads
        {
            self.spawn_thread();
        }
        let sender = self.sender.lock();
        match sender.as_ref() {
            Some(sender) => sender.send(job).map_err(|mpsc::SendError(job)| job),
            None => Err(job),
        }
    }

    fn spawn_thread(&self) {
        let number = self.threads.fetch_add(1, Ordering::AcqRel);
        if number >= self.max_threads {
            self.threads.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        let receiver = Arc::clone(&self.receiver);
        let idle = Arc::clone(&self.idle);
        let spawned = std::thread::Builder::new()
            .name(format!("taskflow-blocking-{number}"))
            .spawn(move || worker(&receiver, &idle));
        if let Err(error) = spawned {
            self.threads.fetch_sub(1, Ordering::AcqRel);
            tracing::error!(target: "taskflow::executor", %error, "could not start a blocking-pool thread");
        }
    }

    /// Stops accepting jobs; threads exit once the queue is drained.
    pub(crate) fn close(&self) {
        self.sender.lock().take();
    }
}

fn worker(receiver: &parking_lot::Mutex<mpsc::Receiver<Job>>, idle: &AtomicUsize) {
    loop {
        idle.fetch_add(1, Ordering::AcqRel);
        let job = receiver.lock().recv();
        idle.fetch_sub(1, Ordering::AcqRel);
        match job {
            Ok(job) => job(),
            Err(mpsc::RecvError) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_jobs_on_at_most_max_threads() {
        let pool = BlockingPool::new(2);
        let (tx, rx) = mpsc::channel();
        for _ in 0..8 {
            let tx = tx.clone();
            let job: Job = Box::new(move || {
                let name = std::thread::current().name().map(str::to_owned);
                let _ = tx.send(name);
            });
            assert!(pool.execute(job).is_ok());
        }
        let names: std::collections::HashSet<_> =
            (0..8).map(|_| rx.recv().ok().flatten()).collect();
        assert!(names.len() <= 2, "{names:?}");
        assert!(names.iter().all(|n| {
            n.as_deref()
                .is_some_and(|n| n.starts_with("taskflow-blocking-"))
        }));
        pool.close();
        assert!(pool.execute(Box::new(|| ())).is_err());
    }
}
