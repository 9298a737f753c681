-- Task records, idempotency keys, instances and locks.
-- Times are Unix microseconds (UTC). Task ids are their 16 bytes (UUID v7, so byte order is
-- creation order). The columns hold what queries filter and sort on; `record` holds the rest of
-- the task record as a JSON object without null or empty values (see `row.rs`). Unfinished work
-- is found through `tasks_by_status`.
CREATE TABLE tasks (
    seq INTEGER PRIMARY KEY,
    id BLOB NOT NULL UNIQUE,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    ended_at INTEGER,
    duration REAL,
    instance_id TEXT NOT NULL,
    idempotency_key TEXT,
    queue TEXT NOT NULL,
    persist INTEGER NOT NULL,
    tags TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX tasks_by_status ON tasks (status, id);
CREATE INDEX tasks_by_name ON tasks (name, id);
CREATE INDEX tasks_by_end ON tasks (ended_at) WHERE ended_at IS NOT NULL;

CREATE TABLE idempotency_keys (
    key TEXT PRIMARY KEY NOT NULL,
    task_id BLOB NOT NULL,
    ttl_ms INTEGER,
    expires_at INTEGER
);

CREATE TABLE instances (
    id TEXT PRIMARY KEY NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL
);

CREATE TABLE locks (
    name TEXT PRIMARY KEY NOT NULL,
    owner TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
