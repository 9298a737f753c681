//! [`MemoryStore`]: the [`Store`] contract kept in process memory. Nothing survives a restart,
//! but several managers in one process can share it, as instances share a database.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Inserted, Instance, Store, StoreFuture};
use crate::history::{self, ListPage, Metrics, TaskFilter};
use crate::task::{TaskId, TaskRecord, TaskStatus};

/// A store in process memory: the same semantics as a database store, without persistence.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), taskflow::store::StoreError> {
/// use taskflow::store::{MemoryStore, Store};
/// let store = MemoryStore::new();
/// assert!(store.try_lock("scheduler", "a", std::time::Duration::from_secs(5)).await?);
/// assert!(!store.try_lock("scheduler", "b", std::time::Duration::from_secs(5)).await?);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: parking_lot::Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    records: BTreeMap<TaskId, TaskRecord>,
    keys: HashMap<String, KeyHold>,
    instances: HashMap<String, Instance>,
    locks: HashMap<String, (String, DateTime<Utc>)>,
}

#[derive(Debug, Clone, Copy)]
struct KeyHold {
    id: TaskId,
    ttl: Option<Duration>,
    expires_at: Option<DateTime<Utc>>,
}

impl KeyHold {
    fn is_live(&self) -> bool {
        self.expires_at.is_none_or(|at| at > Utc::now())
    }
}

impl Inner {
    fn reserve(&mut self, key: &str, id: TaskId, ttl: Option<Duration>) -> Inserted {
        match self.keys.get(key) {
            Some(hold) if hold.is_live() => Inserted::Duplicate(hold.id),
            _ => {
                self.keys.insert(
                    key.to_owned(),
                    KeyHold {
                        id,
                        ttl,
                        expires_at: None,
                    },
                );
                Inserted::New
            }
        }
    }

    fn apply_key_state(&mut self, record: &TaskRecord) {
        let Some(key) = record.idempotency_key.as_deref() else {
            return;
        };
        let Some(hold) = self
            .keys
            .get_mut(key)
            .filter(|hold| hold.id == record.task_id)
        else {
            return;
        };
        if !record.status.holds_idempotency_key() {
            self.keys.remove(key);
        } else if record.status == TaskStatus::Success
            && let Some(ttl) = hold.ttl
        {
            let end = record.end_time.unwrap_or_else(Utc::now);
            hold.expires_at =
                Some(end + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX));
        }
    }
}

impl Inner {
    /// Deletes a record and frees the key it holds.
    fn remove_record(&mut self, id: TaskId) {
        if let Some(record) = self.records.remove(&id)
            && let Some(key) = record.idempotency_key
            && self.keys.get(&*key).is_some_and(|hold| hold.id == id)
        {
            self.keys.remove(&*key);
        }
    }
}

impl MemoryStore {
    /// An empty store.
    ///
    /// # Examples
    ///
    /// See [`MemoryStore`].
    pub fn new() -> Self {
        Self::default()
    }
}

fn ready<'a, T: Send + 'a>(value: T) -> StoreFuture<'a, T> {
    Box::pin(std::future::ready(Ok(value)))
}

impl Store for MemoryStore {
    fn register_instance(&self, instance: &Instance) -> StoreFuture<'_, ()> {
        self.inner
            .lock()
            .instances
            .insert(instance.id.clone(), instance.clone());
        ready(())
    }

    fn heartbeat(&self, instance_id: &str) -> StoreFuture<'_, ()> {
        if let Some(instance) = self.inner.lock().instances.get_mut(instance_id) {
            instance.heartbeat_at = Utc::now();
        }
        ready(())
    }

    fn deregister_instance(&self, instance_id: &str) -> StoreFuture<'_, ()> {
        self.inner.lock().instances.remove(instance_id);
        ready(())
    }

    fn instances(&self) -> StoreFuture<'_, Vec<Instance>> {
        ready(self.inner.lock().instances.values().cloned().collect())
    }

    fn insert(&self, record: TaskRecord, key_ttl: Option<Duration>) -> StoreFuture<'_, Inserted> {
        let mut inner = self.inner.lock();
        if let Some(key) = record.idempotency_key.as_deref()
            && let Inserted::Duplicate(holder) = inner.reserve(key, record.task_id, key_ttl)
        {
            return ready(Inserted::Duplicate(holder));
        }
        inner.records.insert(record.task_id, record);
        ready(Inserted::New)
    }

    fn reserve_key(
        &self,
        key: &str,
        id: TaskId,
        key_ttl: Option<Duration>,
    ) -> StoreFuture<'_, Inserted> {
        ready(self.inner.lock().reserve(key, id, key_ttl))
    }

    fn save<'a>(&'a self, records: &'a [TaskRecord]) -> StoreFuture<'a, ()> {
        let mut inner = self.inner.lock();
        for record in records {
            inner.apply_key_state(record);
            inner.records.insert(record.task_id, record.clone());
        }
        ready(())
    }

    fn get(&self, id: TaskId) -> StoreFuture<'_, Option<TaskRecord>> {
        ready(self.inner.lock().records.get(&id).cloned())
    }

    fn list(&self, filter: &TaskFilter) -> StoreFuture<'_, ListPage> {
        ready(history::page_of(
            self.inner.lock().records.values().rev(),
            filter,
        ))
    }

    fn metrics(&self, filter: &TaskFilter) -> StoreFuture<'_, Metrics> {
        ready(history::metrics_of(
            self.inner
                .lock()
                .records
                .values()
                .filter(|r| filter.matches(r)),
        ))
    }

    fn claim(&self, dead: Vec<String>, claimer: &str) -> StoreFuture<'_, Vec<TaskRecord>> {
        let mut inner = self.inner.lock();
        let mut claimed = Vec::new();
        let known: Vec<String> = inner.instances.keys().cloned().collect();
        for record in inner.records.values_mut() {
            let owner = record.instance_id.as_str();
            let orphaned = dead.iter().any(|d| d == owner) || !known.iter().any(|k| k == owner);
            if !record.status.is_finished() && orphaned {
                record.instance_id = claimer.into();
                claimed.push(record.clone());
            }
        }
        for id in &dead {
            inner.instances.remove(id);
        }
        ready(claimed)
    }

    fn try_lock(&self, name: &str, owner: &str, ttl: Duration) -> StoreFuture<'_, bool> {
        let mut inner = self.inner.lock();
        let now = Utc::now();
        let free = inner
            .locks
            .get(name)
            .is_none_or(|(holder, until)| holder == owner || *until <= now);
        if free {
            let until = now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
            inner
                .locks
                .insert(name.to_owned(), (owner.to_owned(), until));
        }
        ready(free)
    }

    fn unlock(&self, name: &str, owner: &str) -> StoreFuture<'_, ()> {
        let mut inner = self.inner.lock();
        if inner
            .locks
            .get(name)
            .is_some_and(|(holder, _)| holder == owner)
        {
            inner.locks.remove(name);
        }
        ready(())
    }

    fn purge(&self, before: DateTime<Utc>) -> StoreFuture<'_, usize> {
        let mut inner = self.inner.lock();
        let old: Vec<TaskId> = inner
            .records
            .values()
            .filter(|r| r.status.is_finished() && r.end_time.unwrap_or(r.created_at) < before)
            .map(|r| r.task_id)
            .collect();
        for id in &old {
            inner.remove_record(*id);
        }
        ready(old.len())
    }

    fn trim(&self, max_rows: usize) -> StoreFuture<'_, usize> {
        let mut inner = self.inner.lock();
        let finished: Vec<TaskId> = inner
            .records
            .values()
            .filter(|r| r.status.is_finished())
            .map(|r| r.task_id)
            .collect();
        let excess = finished.len().saturating_sub(max_rows);
        for id in &finished[..excess] {
            inner.remove_record(*id);
        }
        ready(excess)
    }
}
