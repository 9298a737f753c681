//! [`SqliteStore`]: the embedded default store. One file, WAL mode, one writer thread applying
//! queued writes in batched transactions (group commit), and read-only connections for queries.

mod checkpoint;
mod read;
mod rfc3339;
mod row;
mod schema;
mod stats;
mod write;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, oneshot};

use self::checkpoint::Checkpointer;
use self::read::Readers;
use self::row::Row;
use self::write::Op;
use super::{Inserted, Instance, Store, StoreError, StoreFuture};
use crate::history::{ListPage, Metrics, TaskFilter};
use crate::task::{TaskId, TaskRecord};

/// How hard SQLite works to make each commit durable.
///
/// # Examples
///
/// ```
/// let options = taskflow::store::SqliteOptions::new().synchronous(taskflow::store::Synchronous::Full);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// Durable across a crash of the process (the default in WAL mode); the last commits can be
    /// lost on power failure.
    #[default]
    Normal,
    /// Durable across power failure too, at the cost of an fsync per commit.
    Full,
}

/// Options of [`SqliteStore::open_with`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let options = taskflow::store::SqliteOptions::new().busy_timeout(Duration::from_secs(2)).readers(2);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SqliteOptions {
    /// Commit durability.
    pub synchronous: Synchronous,
    /// How long to wait for another process's lock before failing.
    pub busy_timeout: Duration,
    /// Read-only connections kept open for queries.
    pub readers: usize,
    /// Write operations that may wait for the writer thread before callers wait.
    pub queue_capacity: usize,
}

impl SqliteOptions {
    /// `synchronous = NORMAL`, a 5 s busy timeout, 4 readers, 16,384 queued writes.
    ///
    /// # Examples
    ///
    /// See [`SqliteOptions`].
    pub fn new() -> Self {
        Self {
            synchronous: Synchronous::Normal,
            busy_timeout: Duration::from_secs(5),
            readers: 4,
            queue_capacity: 16_384,
        }
    }

    /// Sets commit durability.
    ///
    /// # Examples
    ///
    /// See [`Synchronous`].
    pub fn synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }

    /// Sets how long to wait for another process's lock.
    ///
    /// # Examples
    ///
    /// See [`SqliteOptions`].
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// Sets how many read-only connections are kept.
    ///
    /// # Examples
    ///
    /// See [`SqliteOptions`].
    pub fn readers(mut self, readers: usize) -> Self {
        self.readers = readers.max(1);
        self
    }
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// The writer thread's name. Linux shows a thread's first 15 bytes (in `top -H`, `ps -L`,
/// `perf`), so the names of the store's threads fit in 15 bytes and differ within them.
const WRITER_THREAD: &str = "taskflow-sqlite";

/// The embedded SQLite store.
///
/// One file in WAL mode. Writes go through one writer thread that applies every operation
/// queued meanwhile in one transaction (group commit), so concurrent `add`s of `persist` tasks
/// share a commit and each returns once its row is committed. Copying the log back into the
/// file (checkpoints) runs on a thread of its own; queries run on a small pool of read-only
/// connections on the blocking pool, and never wait for the writer. The two threads are named
/// `taskflow-sqlite` (the writer) and `taskflow-ckpt` (checkpoints), as `top -H` and `perf`
/// show them.
///
/// Opening checks the file before writing anything: a path that cannot be opened, a read-only or
/// locked file, a file that is not a taskflow database, or a schema newer than this code is an
/// error, and such a file is left as it was.
///
/// A query filtered by status, by name or by tag (`key:value`) walks an index of the runs that
/// match that filter, newest first, and checks any other filter on each until it has a page, so
/// its time does not grow with the rest of the history (BENCHMARKS.md, "Scale"). The tag index
/// costs the writer a row per tag of each tagged run, written in the run's first commit:
/// `persist` tasks with two tags each commit about a quarter fewer runs per second than without
/// the index. Runs without tags cost it nothing. A filter on a tag's key alone looks up the runs
/// holding the key when they are few (up to 20,000), and otherwise checks each run's tags in
/// turn, newest first, until it has a page, as a filter on text (`q`) does.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use taskflow::store::{SqliteStore, Store};
/// let dir = std::env::temp_dir().join(format!("taskflow-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let store = SqliteStore::open(dir.join("tasks.db")).await?;
/// assert!(store.instances().await?.is_empty());
/// # drop(store);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
pub struct SqliteStore {
    path: PathBuf,
    writer: mpsc::Sender<Op>,
    readers: Arc<Readers>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (or creates) the database at `path` with the default options.
    ///
    /// # Errors
    ///
    /// See [`SqliteStore`].
    ///
    /// # Examples
    ///
    /// See [`SqliteStore`].
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, SqliteOptions::new()).await
    }

    /// Opens (or creates) the database at `path`.
    ///
    /// # Errors
    ///
    /// See [`SqliteStore`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use taskflow::store::{SqliteOptions, SqliteStore, StoreError};
    /// let err = SqliteStore::open_with("/no/such/dir/tasks.db", SqliteOptions::new()).await.unwrap_err();
    /// assert!(matches!(err, StoreError::Open { .. }));
    /// # }
    /// ```
    pub async fn open_with(
        path: impl AsRef<Path>,
        options: SqliteOptions,
    ) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let open_path = path.clone();
        let opened = tokio::task::spawn_blocking(move || {
            open_writer(&open_path, &options).map(|c| (c, options))
        })
        .await
        .map_err(|e| StoreError::Backend(format!("the opening thread failed: {e}")))?;
        let (conn, options) = opened?;
        let checkpointer = Checkpointer::start(&path, options.busy_timeout)?;
        let (sender, receiver) = mpsc::channel(options.queue_capacity.max(1));
        std::thread::Builder::new()
            .name(WRITER_THREAD.to_owned())
            .spawn(move || write::run(conn, receiver, checkpointer))
            .map_err(|e| StoreError::Backend(format!("cannot start the writer thread: {e}")))?;
        let readers = Arc::new(Readers::new(path.clone(), options.readers));
        tracing::debug!(target: "taskflow::store", path = %path.display(), "sqlite store opened");
        Ok(Self {
            path,
            writer: sender,
            readers,
        })
    }

    /// The database file.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), taskflow::store::StoreError> {
    /// let store = taskflow::store::SqliteStore::open("tasks.db").await?;
    /// assert_eq!(store.path(), std::path::Path::new("tasks.db"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn send<T: Send + 'static>(
        &self,
        op: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Op,
    ) -> StoreFuture<'_, T> {
        let (reply, answer) = oneshot::channel();
        let op = op(reply);
        Box::pin(async move {
            self.writer.send(op).await.map_err(|_| StoreError::Closed)?;
            answer.await.map_err(|_| StoreError::Closed)?
        })
    }

    fn read<T: Send + 'static>(
        &self,
        query: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> StoreFuture<'_, T> {
        Box::pin(Arc::clone(&self.readers).run(query))
    }
}

/// Opens and checks the file, then (only if it is empty or ours) sets WAL mode and migrates.
fn open_writer(path: &Path, options: &SqliteOptions) -> Result<Connection, StoreError> {
    let shown = path.display().to_string();
    let open_error = |reason: String| StoreError::Open {
        path: shown.clone(),
        reason,
    };
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn =
        Connection::open_with_flags(path, flags).map_err(|e| open_error(e.to_string()))?;
    conn.busy_timeout(options.busy_timeout)
        .map_err(|e| open_error(e.to_string()))?;
    let version = schema::check(&conn, &shown).map_err(|error| match error {
        StoreError::Open { reason, .. } if reason.contains("not a database") => {
            StoreError::NotTaskflow {
                path: shown.clone(),
                reason: "it is not an SQLite database".to_owned(),
            }
        }
        other => other,
    })?;
    if conn
        .is_readonly(rusqlite::MAIN_DB)
        .map_err(|e| open_error(e.to_string()))?
    {
        return Err(open_error("the file is read-only".to_owned()));
    }
    // Take the write lock once before changing anything: a locked file fails here, untouched.
    conn.execute_batch("BEGIN IMMEDIATE; COMMIT;")
        .map_err(|e| open_error(e.to_string()))?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(|e| open_error(e.to_string()))?;
    let synchronous = match options.synchronous {
        Synchronous::Normal => "NORMAL",
        Synchronous::Full => "FULL",
    };
    conn.pragma_update(None, "synchronous", synchronous)
        .map_err(|e| open_error(e.to_string()))?;
    // Checkpoints run on a thread of their own (see `checkpoint`), not inside the writer's commits.
    conn.pragma_update(None, "wal_autocheckpoint", 0)
        .map_err(|e| open_error(e.to_string()))?;
    schema::migrate(&mut conn, version)
        .map_err(|e| open_error(format!("migration failed: {e}")))?;
    Ok(conn)
}

/// Unix microseconds of `time`.
fn micros(time: DateTime<Utc>) -> i64 {
    time.timestamp_micros()
}

/// The time at Unix microseconds `micros`.
fn from_micros(micros: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(micros).single().unwrap_or_default()
}

/// The task id stored as `bytes`, if they are one.
fn id_from_blob(bytes: Vec<u8>) -> Option<TaskId> {
    <[u8; 16]>::try_from(bytes).ok().map(TaskId::from_bytes)
}

impl Store for SqliteStore {
    fn register_instance(&self, instance: &Instance) -> StoreFuture<'_, ()> {
        let instance = instance.clone();
        self.send(|reply| Op::Register { instance, reply })
    }

    fn heartbeat(&self, instance_id: &str) -> StoreFuture<'_, ()> {
        let id = instance_id.to_owned();
        self.send(|reply| Op::Heartbeat { id, reply })
    }

    fn deregister_instance(&self, instance_id: &str) -> StoreFuture<'_, ()> {
        let id = instance_id.to_owned();
        self.send(|reply| Op::Deregister { id, reply })
    }

    fn instances(&self) -> StoreFuture<'_, Vec<Instance>> {
        self.read(read::instances)
    }

    fn insert(&self, record: TaskRecord, key_ttl: Option<Duration>) -> StoreFuture<'_, Inserted> {
        match Row::encode(&record) {
            Ok(row) => self.send(|reply| Op::Insert {
                row: Box::new(row),
                ttl: key_ttl,
                reply,
            }),
            Err(error) => Box::pin(std::future::ready(Err(error))),
        }
    }

    fn reserve_key(
        &self,
        key: &str,
        id: TaskId,
        key_ttl: Option<Duration>,
    ) -> StoreFuture<'_, Inserted> {
        let key = key.to_owned();
        self.send(|reply| Op::Reserve {
            key,
            id,
            ttl: key_ttl,
            reply,
        })
    }

    fn save<'a>(&'a self, records: &'a [TaskRecord]) -> StoreFuture<'a, ()> {
        match records
            .iter()
            .map(Row::encode)
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(rows) => self.send(|reply| Op::Save { rows, reply }),
            Err(error) => Box::pin(std::future::ready(Err(error))),
        }
    }

    fn get(&self, id: TaskId) -> StoreFuture<'_, Option<TaskRecord>> {
        self.read(move |conn| read::get(conn, id))
    }

    fn list(&self, filter: &TaskFilter) -> StoreFuture<'_, ListPage> {
        let filter = filter.clone();
        self.read(move |conn| read::list(conn, &filter))
    }

    fn metrics(&self, filter: &TaskFilter) -> StoreFuture<'_, Metrics> {
        let filter = filter.clone();
        self.read(move |conn| read::metrics(conn, &filter))
    }

    fn claim(&self, dead: Vec<String>, claimer: &str) -> StoreFuture<'_, Vec<TaskRecord>> {
        let claimer = claimer.to_owned();
        self.send(|reply| Op::Claim {
            dead,
            claimer,
            reply,
        })
    }

    fn try_lock(&self, name: &str, owner: &str, ttl: Duration) -> StoreFuture<'_, bool> {
        let (name, owner) = (name.to_owned(), owner.to_owned());
        self.send(|reply| Op::Lock {
            name,
            owner,
            ttl,
            reply,
        })
    }

    fn unlock(&self, name: &str, owner: &str) -> StoreFuture<'_, ()> {
        let (name, owner) = (name.to_owned(), owner.to_owned());
        self.send(|reply| Op::Unlock { name, owner, reply })
    }

    fn purge(&self, before: DateTime<Utc>) -> StoreFuture<'_, usize> {
        let before = micros(before);
        self.send(|reply| Op::Purge { before, reply })
    }

    fn trim(&self, max_rows: usize) -> StoreFuture<'_, usize> {
        self.send(|reply| Op::Trim { max_rows, reply })
    }

    fn close(&self) -> StoreFuture<'_, ()> {
        self.readers.close();
        self.send(|reply| Op::Close { reply })
    }
}
