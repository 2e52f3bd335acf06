//! Test support: a database of its own, on the PostgreSQL or MariaDB server the environment names.
//!
//! `MAYFLY_TEST_POSTGRES_URL` and `MAYFLY_TEST_MYSQL_URL` point at a server and a database the
//! tests may connect to (`.ci/run` sets both). Each [`TestDatabase`] creates a new database
//! beside it and drops it when it goes out of scope, pass or fail, so runs never see each other's
//! rows. Without the variable a test prints that it skipped (or fails, under
//! `MAYFLY_REQUIRE_PEERS=1` as `.ci/run` sets it); with it, an unreachable server fails
//! the test rather than skipping it quietly.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::{AnyConnection, AssertSqlSafe, Connection};

use crate::Dialect;

/// A database created for one test, dropped on drop.
#[derive(Debug)]
pub struct TestDatabase {
    dialect: Dialect,
    admin_url: String,
    name: String,
    url: String,
}

impl TestDatabase {
    /// The environment variable naming the server for `dialect`.
    pub fn variable(dialect: Dialect) -> &'static str {
        match dialect {
            Dialect::Postgres => "MAYFLY_TEST_POSTGRES_URL",
            Dialect::MySql => "MAYFLY_TEST_MYSQL_URL",
            Dialect::Sqlite => "MAYFLY_TEST_SQLITE_URL",
        }
    }

    /// Creates a fresh database; `None` (after saying so on stderr) when the variable is unset.
    pub async fn create(dialect: Dialect, test: &str) -> Option<TestDatabase> {
        let variable = TestDatabase::variable(dialect);
        let Some(admin_url) = std::env::var(variable).ok().filter(|url| !url.is_empty()) else {
            // The same rule as mayfly-testkit's (a normal dependency on that unpublished crate
            // would keep this one from being published): CI requires every peer.
            assert!(
                !std::env::var("MAYFLY_REQUIRE_PEERS").is_ok_and(|v| !v.is_empty() && v != "0"),
                "{test}: {variable} is not set and MAYFLY_REQUIRE_PEERS is set"
            );
            eprintln!("{test}: skipped, {variable} is not set");
            return None;
        };
        sqlx::any::install_default_drivers();
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.subsec_nanos());
        let name = format!(
            "mayfly_test_{}_{}_{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let url = with_database(&admin_url, &name);
        let mut connection = AnyConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("{variable}: cannot connect to {admin_url}: {e}"));
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut connection)
            .await
            .unwrap_or_else(|e| panic!("creating database {name} on {admin_url}: {e}"));
        let _ = connection.close().await;
        Some(TestDatabase {
            dialect,
            admin_url,
            name,
            url,
        })
    }

    /// [`TestDatabase::create`] for tests without a runtime of their own.
    pub fn create_blocking(dialect: Dialect, test: &str) -> Option<TestDatabase> {
        let test = test.to_owned();
        std::thread::spawn(move || runtime().block_on(TestDatabase::create(dialect, &test)))
            .join()
            .unwrap_or_else(|_| panic!("creating a test database panicked"))
    }

    /// The URL of the new database, for a store or a ca.json's `db.dataSource`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }
}

impl TestDatabase {
    /// Drops the database now (a test of what instances do when it disappears); dropping the
    /// value later does nothing more.
    pub fn destroy(&self) {
        let admin_url = self.admin_url.clone();
        let statement = match self.dialect {
            // Connections a failed test left open must not keep the database alive.
            Dialect::Postgres => format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            _ => format!("DROP DATABASE IF EXISTS {}", self.name),
        };
        // Drop runs inside async tests too, where blocking the runtime's thread is not allowed.
        let dropped = std::thread::spawn(move || {
            runtime().block_on(async {
                let mut connection = AnyConnection::connect(&admin_url).await?;
                sqlx::raw_sql(AssertSqlSafe(statement))
                    .execute(&mut connection)
                    .await?;
                connection.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}: {dropped:?}", self.name);
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        self.destroy();
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("starting a runtime for the test database: {e}"))
}

/// `url` with its database (the path) replaced by `name`; the query string is kept.
fn with_database(url: &str, name: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let query = tail.find('?').map_or("", |at| &tail[at..]);
    format!("{scheme}://{authority}/{name}{query}")
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_database_is_replaced_and_the_rest_kept() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            with_database("mysql://root@127.0.0.1:3306", "t1"),
            "mysql://root@127.0.0.1:3306/t1"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "t1"),
            "postgres://u:p@h/t1?sslmode=disable"
        );
    }
}
