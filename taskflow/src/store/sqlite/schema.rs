//! The schema: migrations applied in order, versioned with `PRAGMA user_version`, and the checks
//! that refuse a file that is not a taskflow database or is newer than this code.

use rusqlite::Connection;

use crate::store::StoreError;

/// Marks a file as a taskflow database (`PRAGMA application_id`, "tflw").
pub(super) const APPLICATION_ID: i64 = 0x7466_6c77;

/// Every migration, in order; migration `i` brings the file to version `i + 1`.
pub(super) const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_tasks.sql"),
    include_str!("migrations/0002_stats.sql"),
    include_str!("migrations/0003_tags.sql"),
];

/// The version this code writes.
pub(super) const LATEST: i64 = MIGRATIONS.len() as i64;

/// Checks that `conn` is empty, or a taskflow database this code can read, without writing.
/// Returns its version.
pub(super) fn check(conn: &Connection, path: &str) -> Result<i64, StoreError> {
    let open_error = |e: rusqlite::Error| StoreError::Open {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    let application_id: i64 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(open_error)?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(open_error)?;
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'",
            [],
            |r| r.get(0),
        )
        .map_err(open_error)?;
    if application_id != 0 && application_id != APPLICATION_ID {
        return Err(StoreError::NotTaskflow {
            path: path.to_owned(),
            reason: format!("its application id is {application_id:#x}"),
        });
    }
    if application_id == 0 && (tables > 0 || version != 0) {
        return Err(StoreError::NotTaskflow {
            path: path.to_owned(),
            reason: format!("it already holds {tables} other tables or indexes"),
        });
    }
    if version > LATEST {
        return Err(StoreError::NewerSchema {
            path: path.to_owned(),
            found: version,
            supported: LATEST,
        });
    }
    Ok(version)
}

/// Applies the migrations after `from`, each in its own transaction with its version bump.
/// Each transaction reads the version again once it holds the write lock: another process that
/// opened the same file at the same time may have applied the migration meanwhile, and a second
/// run of it would fail (its tables exist).
pub(super) fn migrate(conn: &mut Connection, from: i64) -> Result<(), rusqlite::Error> {
    for (index, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(from).unwrap_or(usize::MAX))
    {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let current: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if current > index as i64 {
            continue;
        }
        tx.execute_batch(sql)?;
        if index == 1 {
            super::stats::backfill_durations(&tx)?;
        }
        tx.pragma_update(None, "application_id", APPLICATION_ID)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table_names(conn: &Connection) -> Vec<String> {
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn applies_every_migration_to_an_empty_file_and_from_each_older_version() {
        let dir = std::env::temp_dir().join(format!("taskflow-migrate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for start in 0..=LATEST {
            let path = dir.join(format!("v{start}.db"));
            let _ = std::fs::remove_file(&path);
            let mut conn = Connection::open(&path).unwrap();
            migrate_to(&mut conn, start);
            let version = check(&conn, "test").unwrap();
            assert_eq!(version, start);
            migrate(&mut conn, version).unwrap();
            assert_eq!(check(&conn, "test").unwrap(), LATEST);
            assert_eq!(
                table_names(&conn),
                [
                    "idempotency_keys",
                    "instances",
                    "locks",
                    "task_counts",
                    "task_durations",
                    "task_tags",
                    "tasks"
                ]
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn migrate_to(conn: &mut Connection, version: i64) {
        for (index, sql) in MIGRATIONS
            .iter()
            .enumerate()
            .take(usize::try_from(version).unwrap())
        {
            conn.execute_batch(sql).unwrap();
            conn.pragma_update(None, "application_id", APPLICATION_ID)
                .unwrap();
            conn.pragma_update(None, "user_version", index as i64 + 1)
                .unwrap();
        }
    }

    fn insert_task(conn: &Connection, id: u8, tags: &str) {
        conn.execute(
            "INSERT INTO tasks (id, name, status, created_at, instance_id, queue, persist, tags, record)
             VALUES (?1, 't', 'success', 0, 'i', 'default', 0, ?2, '{}')",
            rusqlite::params![[id; 16], tags],
        )
        .unwrap();
    }

    #[test]
    fn the_tags_table_is_filled_from_the_rows_of_an_older_file() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate_to(&mut conn, 2);
        insert_task(&conn, 1, r#"{"tenant":"acme","user":"7"}"#);
        insert_task(&conn, 2, "{}");
        insert_task(&conn, 3, r#"{"tenant":"#);
        insert_task(&conn, 4, r#"["tenant"]"#);
        migrate(&mut conn, 2).unwrap();
        let mut stmt = conn
            .prepare("SELECT task_id, key, value FROM task_tags ORDER BY task_id, key")
            .unwrap();
        let tags: Vec<(Vec<u8>, String, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            tags,
            [
                (vec![1; 16], "tenant".to_owned(), "acme".to_owned()),
                (vec![1; 16], "user".to_owned(), "7".to_owned()),
            ],
            "a corrupt row's tags (3) and tags that are not an object (4) do not stop the migration"
        );
    }

    /// Two processes that open a file at once both read its old version before either migrates;
    /// the second to take the write lock used to run the migrations again and fail on their
    /// tables.
    #[test]
    fn a_file_migrated_meanwhile_by_another_connection_is_left_as_it_is() {
        let dir = std::env::temp_dir().join(format!("taskflow-race-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tasks.db");
        let _ = std::fs::remove_file(&path);
        let mut first = Connection::open(&path).unwrap();
        let mut second = Connection::open(&path).unwrap();
        let first_saw = check(&first, "test").unwrap();
        let second_saw = check(&second, "test").unwrap();
        assert_eq!((first_saw, second_saw), (0, 0));
        migrate(&mut first, first_saw).unwrap();
        migrate(&mut second, second_saw).unwrap();
        assert_eq!(check(&second, "test").unwrap(), LATEST);
        drop((first, second));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refuses_foreign_and_newer_files() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE users (id INTEGER)")
            .unwrap();
        assert!(matches!(
            check(&conn, "x"),
            Err(StoreError::NotTaskflow { .. })
        ));
        let conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "application_id", 42).unwrap();
        assert!(matches!(
            check(&conn, "x"),
            Err(StoreError::NotTaskflow { .. })
        ));
        let conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "application_id", APPLICATION_ID)
            .unwrap();
        conn.pragma_update(None, "user_version", LATEST + 1)
            .unwrap();
        assert!(matches!(
            check(&conn, "x"),
            Err(StoreError::NewerSchema { .. })
        ));
    }
}
