//! The PostgreSQL and MySQL/MariaDB backend against the conformance suite, each on a database of
//! its own (see `mayfly_store::testing`), plus what only a shared server has: several stores
//! (several mayfly instances) on one database, migrations run by instances starting at once,
//! and a schema from a newer mayfly.

mod column_limits;

use mayfly_authority::store::CertStore;
use mayfly_store::testing::TestDatabase;
use mayfly_store::{Dialect, Error, NetworkedStore, conformance};

async fn open(database: &TestDatabase) -> NetworkedStore {
    NetworkedStore::open(database.url())
        .await
        .unwrap_or_else(|error| panic!("opening {}: {error}", database.url()))
}

async fn conformance_suite(dialect: Dialect, test: &str) {
    let Some(database) = TestDatabase::create(dialect, test).await else {
        return;
    };
    let store = open(&database).await;
    // PostgreSQL and MariaDB group concurrent issuances; MySQL, without RETURNING, cannot.
    let mut connection = <sqlx::AnyConnection as sqlx::Connection>::connect(database.url())
        .await
        .expect("a connection of the test's own");
    let version: String = sqlx::query_scalar("SELECT VERSION()")
        .fetch_one(&mut connection)
        .await
        .expect("the server's version");
    assert_eq!(
        store.records_issuances_in_groups(),
        dialect == Dialect::Postgres || version.contains("MariaDB"),
        "{version}"
    );
    conformance::run_all(&store).await;
    // More revoked certificates than one page holds, half with one revocation time.
    let records = conformance::many_revoked(45_000);
    store.bulk_load(&records).await.expect("bulk load");
    conformance::revoked_pages_cover_every_entry(&store, &records).await;
    mayfly_store::conformance_ssh::run_all(&store).await;
    store.close().await;
}

/// Three stores on one database stand for three mayfly instances: each has its own pool, so
/// the races meet in the database, not in one process.
async fn instances_share_one_database(dialect: Dialect, test: &str) {
    let Some(database) = TestDatabase::create(dialect, test).await else {
        return;
    };
    // Opened at once: the migrations must be applied once, not fail on each other's tables.
    let (first, second, third) = tokio::join!(open(&database), open(&database), open(&database));
    let stores: [&dyn CertStore; 3] = [&first, &second, &third];
    for _ in 0..10 {
        conformance::concurrent_token_use(&stores).await;
    }
    conformance::concurrent_distinct_issuances(&stores).await;
    conformance::concurrent_lease(&[&first, &second, &third]).await;
    conformance::crl_numbers_only_grow(&stores).await;
    conformance::revocations_are_numbered(&stores).await;
    mayfly_store::acme_conformance::run_all(&first, &second).await;
    for store in [first, second, third] {
        store.close().await;
    }
}

/// The longest values the checks upstream let through fit the engine's `VARCHAR` columns: a
/// revocation by the longest provisioner name, the longest ACME identifier.
async fn values_at_their_longest_fit_their_columns(dialect: Dialect, test: &str) {
    let Some(database) = TestDatabase::create(dialect, test).await else {
        return;
    };
    let store = open(&database).await;
    column_limits::revoked_by_at_the_longest_provisioner_name(&store).await;
    column_limits::acme_identifier_at_its_longest(&store).await;
    store.close().await;
}

async fn migrations_recorded_and_newer_schema_refused(dialect: Dialect, test: &str) {
    let Some(database) = TestDatabase::create(dialect, test).await else {
        return;
    };
    let known = mayfly_store::schema_version();
    let location = mayfly_store::Location::Server {
        dialect,
        url: database.url().to_owned(),
    };
    let before = mayfly_store::schema_status(&location)
        .await
        .expect("reading the version of an empty database");
    assert_eq!(before.found, 0, "an empty database has no schema");
    let after = mayfly_store::migrate(&location).await.expect("migrating");
    assert_eq!((after.found, after.known), (known, known));
    // Reopening neither re-runs a migration nor records one again.
    let store = open(&database).await;
    assert_eq!(store.schema_version().await.expect("version"), known);

    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(database.url())
        .await
        .expect("raw pool");
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM schema_migrations ORDER BY version")
            .fetch_all(&pool)
            .await
            .expect("read schema_migrations");
    assert_eq!(versions, mayfly_store::migration_versions());
    sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES (999, 0)")
        .execute(&pool)
        .await
        .expect("pretend a newer mayfly migrated the database");
    pool.close().await;
    store.close().await;

    let error = NetworkedStore::open(database.url())
        .await
        .expect_err("a database from a newer mayfly should be refused");
    assert!(
        matches!(error, Error::SchemaTooNew { found: 999, known: k, .. } if k == known),
        "got {error:?}"
    );
    assert!(error.to_string().contains("upgrade mayfly"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_conformance() {
    conformance_suite(Dialect::Postgres, "postgres_conformance").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_conformance() {
    conformance_suite(Dialect::MySql, "mysql_conformance").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_instances_share_one_database() {
    instances_share_one_database(Dialect::Postgres, "postgres_instances_share_one_database").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_instances_share_one_database() {
    instances_share_one_database(Dialect::MySql, "mysql_instances_share_one_database").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_migrations_and_newer_schema() {
    migrations_recorded_and_newer_schema_refused(
        Dialect::Postgres,
        "postgres_migrations_and_newer_schema",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_migrations_and_newer_schema() {
    migrations_recorded_and_newer_schema_refused(
        Dialect::MySql,
        "mysql_migrations_and_newer_schema",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_values_at_their_longest_fit_their_columns() {
    values_at_their_longest_fit_their_columns(
        Dialect::Postgres,
        "postgres_values_at_their_longest_fit_their_columns",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_values_at_their_longest_fit_their_columns() {
    values_at_their_longest_fit_their_columns(
        Dialect::MySql,
        "mysql_values_at_their_longest_fit_their_columns",
    )
    .await;
}
