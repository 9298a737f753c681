-- Every run's tags, one row each, ordered by key, value and run id, so that a `key:value` tag
-- filter walks the runs holding that tag, newest first, instead of parsing the `tags` column of
-- every row (a tag few runs hold used to read the whole table). A filter on a key alone counts
-- the key's rows here first: few, it looks those runs up by id; many, it reads the `tags` column
-- of the runs newest first, which meets the key within a few rows. Ordered by value first, this
-- table cannot give one key's runs in id order, and a second ordering by key and id would cost
-- every tagged write another b-tree.
-- A run's tags are fixed at enqueue: the writer adds its rows with the run's row and deletes
-- them with it (`write.rs`; statements rather than triggers, which cost more per insert than
-- the insert itself, BENCHMARKS.md, session 29). Filled from the existing rows below; a row whose
-- tags are not a JSON object (a corrupt row) gets none.
CREATE TABLE task_tags (
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    task_id BLOB NOT NULL,
    PRIMARY KEY (key, value, task_id)
) WITHOUT ROWID;

INSERT OR REPLACE INTO task_tags (key, value, task_id)
SELECT each.key, each.value, tasks.id FROM tasks, json_each(tasks.tags) AS each
WHERE tasks.tags <> '{}' AND json_valid(tasks.tags) AND json_type(tasks.tags) = 'object';
