//! Background checkpoints: a thread of its own copies the write-ahead log back into the database
//! file, so the writer thread spends its time on commits and never stalls on that copy (or on the
//! fsyncs around it). The writer hints after every few thousand written rows; hints arriving
//! during a checkpoint coalesce into one.

use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;

use rusqlite::{Connection, OpenFlags};

use crate::store::StoreError;

/// Rows the writer writes between two hints.
pub(super) const ROWS_PER_HINT: usize = 2_048;

/// A write-ahead log longer than this many pages after a passive checkpoint (which cannot pass a
/// writer) is checkpointed again in RESTART mode, which waits for the writer, so the log stays
/// bounded under sustained load.
const MAX_WAL_PAGES: i64 = 65_536;

/// The checkpointer thread's name: 15 bytes at most, as Linux shows no more, and unlike the
/// writer's within them (see `WRITER_THREAD`).
pub(super) const THREAD: &str = "taskflow-ckpt";

/// The checkpointer thread; dropping the handle stops it.
pub(super) struct Checkpointer {
    hints: Option<SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Opens a connection of its own to `path` and starts the thread.
    pub(super) fn start(
        path: &Path,
        busy_timeout: std::time::Duration,
    ) -> Result<Self, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .and_then(|conn| conn.busy_timeout(busy_timeout).map(|()| conn))
        .map_err(|e| StoreError::Backend(format!("cannot open the checkpoint connection: {e}")))?;
        let (hints, received) = std::sync::mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name(THREAD.to_owned())
            .spawn(move || run(&conn, &received))
            .map_err(|e| StoreError::Backend(format!("cannot start the checkpoint thread: {e}")))?;
        Ok(Self {
            hints: Some(hints),
            thread: Some(thread),
        })
    }

    /// Asks for a checkpoint soon; never blocks.
    pub(super) fn hint(&self) {
        if let Some(hints) = &self.hints {
            match hints.try_send(()) {
                Ok(()) | Err(TrySendError::Full(())) | Err(TrySendError::Disconnected(())) => {}
            }
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.hints.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!(target: "taskflow::store", "the checkpoint thread panicked");
        }
    }
}

fn run(conn: &Connection, hints: &Receiver<()>) {
    while hints.recv().is_ok() {
        match checkpoint(conn, "PASSIVE") {
            Ok(log) if log > MAX_WAL_PAGES => {
                if let Err(error) = checkpoint(conn, "RESTART") {
                    tracing::warn!(target: "taskflow::store", %error, "a restart checkpoint failed");
                }
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(target: "taskflow::store", %error, "a background checkpoint failed");
            }
        }
    }
}

/// Runs one checkpoint; returns the log's length in pages.
fn checkpoint(conn: &Connection, mode: &str) -> Result<i64, rusqlite::Error> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
        row.get::<_, i64>(1)
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use crate::store::{SqliteStore, Store};
    use crate::task::{TaskId, TaskRecord};

    /// Linux keeps the first 15 bytes of a thread's name: the writer and the checkpointer, once
    /// both shown as `taskflow-sqlite`, must be told apart in `top -H` and `perf`.
    #[cfg(target_os = "linux")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_writer_and_the_checkpointer_have_names_of_their_own() {
        let dir = std::env::temp_dir().join(format!("taskflow-threads-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let store = SqliteStore::open(&dir.join("tasks.db"))
            .await
            .expect("opens");
        let names = [super::super::WRITER_THREAD, super::THREAD];
        assert_ne!(names[0], names[1]);
        for name in names {
            assert!(name.len() <= 15, "`{name}` is longer than Linux shows");
        }
        // A new thread names itself once it runs: look until both names show, or for 5 s.
        let deadline = Instant::now() + Duration::from_secs(5);
        let shown = loop {
            let shown: Vec<String> = std::fs::read_dir("/proc/self/task")
                .expect("the process's threads")
                .filter_map(|thread| {
                    let comm = thread.ok()?.path().join("comm");
                    Some(std::fs::read_to_string(comm).ok()?.trim_end().to_owned())
                })
                .collect();
            if names.iter().all(|name| shown.iter().any(|s| s == name)) || Instant::now() > deadline
            {
                break shown;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        for name in names {
            assert!(
                shown.iter().any(|shown| shown == name),
                "no thread shown as `{name}` among {shown:?}"
            );
        }
        store.close().await.expect("closes");
        std::fs::remove_dir_all(&dir).expect("cleaned up");
    }

    /// The writer never checkpoints by itself: without this thread the log would only grow and
    /// the database file would stay empty until the store is closed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn written_rows_reach_the_database_file_while_the_store_is_open() {
        let dir = std::env::temp_dir().join(format!("taskflow-checkpoint-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("tasks.db");
        let store = SqliteStore::open(&path).await.expect("opens");
        let empty = std::fs::metadata(&path).expect("file").len();
        let records: Vec<TaskRecord> = (0..4 * super::ROWS_PER_HINT)
            .map(|_| TaskRecord::pending(TaskId::new(), "job", "me"))
            .collect();
        store.save(&records).await.expect("saved");
        let deadline = Instant::now() + Duration::from_secs(10);
        let grown = loop {
            let size = std::fs::metadata(&path).expect("file").len();
            if size > empty + 512 * 1024 || Instant::now() > deadline {
                break size;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(
            grown > empty + 512 * 1024,
            "the database file is {grown} bytes (was {empty}): nothing was checkpointed"
        );
        store.close().await.expect("closes");
        std::fs::remove_dir_all(&dir).expect("cleaned up");
    }
}
