-- Running figures per task name, kept by the writer on every insert, update and delete, so that
-- metrics over a large history read a few rows instead of scanning the tasks table.
CREATE TABLE task_counts (
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    count INTEGER NOT NULL,
    duration_sum REAL NOT NULL,
    duration_count INTEGER NOT NULL,
    PRIMARY KEY (name, status)
) WITHOUT ROWID;

-- Finished durations per name in logarithmic buckets (each 10% wider than the last), for the 95th
-- percentile. Filled from existing rows by the code that applies this migration.
CREATE TABLE task_durations (
    name TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (name, bucket)
) WITHOUT ROWID;

INSERT INTO task_counts (name, status, count, duration_sum, duration_count)
SELECT name, status, count(*),
       coalesce(sum(CASE WHEN status NOT IN ('pending', 'running') THEN duration END), 0),
       count(CASE WHEN status NOT IN ('pending', 'running') THEN duration END)
FROM tasks GROUP BY name, status;
