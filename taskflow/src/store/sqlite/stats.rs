//! Running figures per task name (counts by status, duration sums, duration histograms), kept in
//! step with the tasks table by the writer, so that unfiltered metrics never scan the history.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};

use crate::store::StoreError;
use crate::task::{TaskId, TaskStatus};

/// Each bucket's upper bound is 10% above the previous one.
const GROWTH: f64 = 1.1;
/// Bucket 1 ends at 1.1 µs; bucket 400 at about 2.4e10 s.
const MAX_BUCKET: i64 = 400;

fn backend(error: rusqlite::Error) -> StoreError {
    StoreError::Backend(error.to_string())
}

/// The histogram bucket of a duration in seconds.
pub(super) fn bucket(seconds: f64) -> i64 {
    let micros = seconds * 1e6;
    if micros.is_nan() || micros < 1.0 {
        return 0;
    }
    ((micros.ln() / GROWTH.ln()).floor() as i64).clamp(0, MAX_BUCKET)
}

/// The upper bound of a bucket, in seconds.
pub(super) fn upper_bound(bucket: i64) -> f64 {
    GROWTH.powi(i32::try_from(bucket + 1).unwrap_or(i32::MAX)) / 1e6
}

/// What a row contributes to the figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Contribution<'a> {
    pub(super) name: &'a str,
    pub(super) status: TaskStatus,
    pub(super) duration: Option<f64>,
}

impl Contribution<'_> {
    /// The duration that counts: only a finished run's.
    fn timed(&self) -> Option<f64> {
        self.duration.filter(|_| self.status.is_finished())
    }
}

/// The changes to the figures made by one transaction, written once before it commits: a batch
/// of thousands of rows for a few names updates a few figures rows, not thousands.
#[derive(Debug, Default)]
pub(super) struct Delta {
    names: Vec<NameDelta>,
    /// Where each name is in `names`.
    index: HashMap<String, usize>,
    /// The name changed last: rows of a batch mostly share it, so most changes skip the lookup.
    last: usize,
}

/// The changes to one name's figures.
#[derive(Debug)]
struct NameDelta {
    name: String,
    /// The change of each status's figures.
    statuses: Vec<(TaskStatus, Count)>,
    /// The change of each duration bucket.
    buckets: Vec<(i64, i64)>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Count {
    count: i64,
    duration_sum: f64,
    duration_count: i64,
}

impl Delta {
    /// Adds (`sign` = 1) or removes (`sign` = -1) a row's contribution.
    pub(super) fn apply(&mut self, row: Contribution<'_>, sign: i64) {
        let timed = row.timed();
        let name = self.name(row.name);
        let at = match name.statuses.iter().position(|(s, _)| *s == row.status) {
            Some(at) => at,
            None => {
                name.statuses.push((row.status, Count::default()));
                name.statuses.len() - 1
            }
        };
        let count = &mut name.statuses[at].1;
        count.count += sign;
        count.duration_sum += timed.unwrap_or(0.0) * sign as f64;
        count.duration_count += i64::from(timed.is_some()) * sign;
        if let Some(duration) = timed {
            let bucket = bucket(duration);
            match name.buckets.iter_mut().find(|(b, _)| *b == bucket) {
                Some((_, count)) => *count += sign,
                None => name.buckets.push((bucket, sign)),
            }
        }
    }

    /// The changes of `name`, made empty on first use (a name is allocated once per
    /// transaction, not once per row).
    fn name(&mut self, name: &str) -> &mut NameDelta {
        if self
            .names
            .get(self.last)
            .is_none_or(|last| last.name != name)
        {
            self.last = match self.index.get(name) {
                Some(&at) => at,
                None => {
                    self.names.push(NameDelta {
                        name: name.to_owned(),
                        statuses: Vec::new(),
                        buckets: Vec::new(),
                    });
                    self.index.insert(name.to_owned(), self.names.len() - 1);
                    self.names.len() - 1
                }
            };
        }
        &mut self.names[self.last]
    }

    /// Writes the accumulated changes and clears them.
    pub(super) fn write(&mut self, conn: &Connection) -> Result<(), StoreError> {
        self.index.clear();
        self.last = 0;
        for NameDelta {
            name,
            statuses,
            buckets,
        } in self.names.drain(..)
        {
            for (status, count) in statuses {
                if count.count == 0 && count.duration_count == 0 {
                    continue;
                }
                conn.prepare_cached(
                    "INSERT INTO task_counts (name, status, count, duration_sum, duration_count) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (name, status) DO UPDATE SET count = count + excluded.count,
                         duration_sum = duration_sum + excluded.duration_sum,
                         duration_count = duration_count + excluded.duration_count",
                )
                .and_then(|mut stmt| {
                    stmt.execute(params![
                        name,
                        status.as_str(),
                        count.count,
                        count.duration_sum,
                        count.duration_count
                    ])
                })
                .map_err(backend)?;
            }
            for (bucket, count) in buckets {
                if count == 0 {
                    continue;
                }
                conn.prepare_cached(
                    "INSERT INTO task_durations (name, bucket, count) VALUES (?1, ?2, ?3)
                     ON CONFLICT (name, bucket) DO UPDATE SET count = count + excluded.count",
                )
                .and_then(|mut stmt| stmt.execute(params![name, bucket, count]))
                .map_err(backend)?;
            }
        }
        Ok(())
    }
}

/// What the tasks table holds of a run before it is written again.
#[derive(Debug, Clone, Copy)]
pub(super) struct Stored {
    /// Its row id.
    pub(super) seq: i64,
    /// `None` when the stored status is not one this code knows: such a row counts in none of
    /// the figures.
    pub(super) status: Option<TaskStatus>,
    pub(super) duration: Option<f64>,
}

/// The stored row of task `id`, if any.
pub(super) fn current(conn: &Connection, id: TaskId) -> Result<Option<Stored>, StoreError> {
    let found: Option<(i64, String, Option<f64>)> = conn
        .prepare_cached("SELECT seq, status, duration FROM tasks WHERE id = ?1")
        .and_then(|mut stmt| {
            stmt.query_row([id.to_bytes()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()
        })
        .map_err(backend)?;
    Ok(found.map(|(seq, status, duration)| Stored {
        seq,
        status: status.parse().ok(),
        duration,
    }))
}

/// Removes the contributions of the rows `selection` (a `SELECT name, status, duration …`)
/// returns, before they are deleted.
pub(super) fn remove_selected(
    conn: &Connection,
    delta: &mut Delta,
    selection: &str,
    param: i64,
) -> Result<(), StoreError> {
    let rows: Vec<(String, String, Option<f64>)> = conn
        .prepare(selection)
        .and_then(|mut stmt| {
            stmt.query_map([param], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect()
        })
        .map_err(backend)?;
    for (name, status, duration) in rows {
        if let Ok(status) = status.parse() {
            delta.apply(
                Contribution {
                    name: &name,
                    status,
                    duration,
                },
                -1,
            );
        }
    }
    Ok(())
}

/// Fills the duration histograms from the existing rows (after migration 2).
pub(super) fn backfill_durations(conn: &Connection) -> Result<(), rusqlite::Error> {
    let rows: Vec<(String, f64)> = conn
        .prepare("SELECT name, duration FROM tasks WHERE duration IS NOT NULL AND status NOT IN ('pending', 'running')")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (name, duration) in rows {
        conn.execute(
            "INSERT INTO task_durations (name, bucket, count) VALUES (?1, ?2, 1)
             ON CONFLICT (name, bucket) DO UPDATE SET count = count + 1",
            params![name, bucket(duration)],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_bound_durations_within_ten_percent() {
        for seconds in [0.000_01, 0.003, 0.2, 1.0, 17.5, 3_600.0] {
            let upper = upper_bound(bucket(seconds));
            assert!(
                upper >= seconds && upper <= seconds * 1.1 + 1e-9,
                "{seconds} -> {upper}"
            );
        }
        assert_eq!(bucket(0.0), 0);
    }

    #[test]
    fn changes_of_interleaved_names_add_up_across_transactions() {
        let mut conn = Connection::open_in_memory().expect("opens");
        super::super::schema::migrate(&mut conn, 0).expect("migrates");
        let row = |name, status, duration| Contribution {
            name,
            status,
            duration,
        };
        let mut delta = Delta::default();
        delta.apply(row("a", TaskStatus::Pending, None), 1);
        delta.apply(row("b", TaskStatus::Pending, None), 1);
        delta.apply(row("a", TaskStatus::Pending, None), -1);
        delta.apply(row("a", TaskStatus::Success, Some(0.5)), 1);
        delta.apply(row("b", TaskStatus::Pending, None), 1);
        delta.write(&conn).expect("written");
        delta.apply(row("a", TaskStatus::Success, Some(0.25)), 1);
        delta.write(&conn).expect("written");

        let counts: Vec<(String, String, i64, f64, i64)> = conn
            .prepare("SELECT name, status, count, duration_sum, duration_count FROM task_counts ORDER BY name, status")
            .and_then(|mut stmt| {
                stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
                    .collect()
            })
            .expect("counts");
        assert_eq!(
            counts,
            [
                ("a".to_owned(), "success".to_owned(), 2, 0.75, 2),
                ("b".to_owned(), "pending".to_owned(), 2, 0.0, 0),
            ]
        );
        let buckets: Vec<(String, i64, i64)> = conn
            .prepare("SELECT name, bucket, count FROM task_durations ORDER BY bucket")
            .and_then(|mut stmt| {
                stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect()
            })
            .expect("buckets");
        assert_eq!(
            buckets,
            [
                ("a".to_owned(), bucket(0.25), 1),
                ("a".to_owned(), bucket(0.5), 1),
            ]
        );
    }
}
