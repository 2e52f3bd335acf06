//! `mayfly-ca import-step`'s reading and writing, on step-ca's table layout (smallstep/nosql:
//! one `nkey`/`nvalue` table per bucket) written here row by row, on MariaDB and PostgreSQL.
//!
//! The step-ca available to the tests has no PostgreSQL driver compiled in, so this is where
//! PostgreSQL is covered; the end-to-end test in the server crate has the real step-ca fill a
//! MariaDB database. Both engines run the same checks here, each with step's data source
//! spelling (the Go MySQL DSN with `database`, PostgreSQL's key=value string).

use base64::Engine;
use mayfly_authority::store::{CertificateStatus, StoreError, UsedToken};
use mayfly_config::config::DataSource;
use mayfly_pki::key::{KeyAlgorithm, PrivateKey};
use mayfly_pki::ssh::cert::{CertType, SshCertTemplate};
use mayfly_store::step::{Counted, StepDatabase};
use mayfly_store::testing::TestDatabase;
use mayfly_store::{AnyStore, Dialect, SqliteStore};
use sqlx::{AnyConnection, AssertSqlSafe, Connection};
use time::OffsetDateTime;

const TABLES: &[&str] = &[
    "x509_certs",
    "x509_certs_data",
    "revoked_x509_certs",
    "used_ott",
    "ssh_certs",
    "revoked_ssh_certs",
];

/// A step-ca database written in step's layout, with what each row should become.
struct StepFixture {
    database: TestDatabase,
    revoked_serial: String,
    valid_serial: String,
    ssh_serial: u64,
    token: UsedToken,
}

/// `database`'s URL in the spelling step-ca's users write: `(dataSource, database)`.
fn step_spelling(dialect: Dialect, url: &str) -> (String, String) {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let name = path.split('?').next().unwrap_or_default().to_owned();
    let (user_info, host) = authority.rsplit_once('@').unwrap_or(("", authority));
    let (user, password) = user_info.split_once(':').unwrap_or((user_info, ""));
    match dialect {
        Dialect::MySql => {
            let credentials = match password {
                "" => user.to_owned(),
                password => format!("{user}:{password}"),
            };
            (format!("{credentials}@tcp({host})/"), name)
        }
        _ => {
            let (host, port) = host.split_once(':').unwrap_or((host, "5432"));
            let mut text = format!("host={host} port={port} user={user}");
            if !password.is_empty() {
                text.push_str(&format!(" password='{password}'"));
            }
            // The name goes in `database`, as step's `"database"` overrides the string's dbname.
            (format!("{text} dbname=ignored"), name)
        }
    }
}

fn jwt(claims: &serde_json::Value) -> String {
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    format!(
        "{}.{}.{}",
        b64(br#"{"alg":"ES256","kid":"k"}"#),
        b64(claims.to_string().as_bytes()),
        b64(b"not checked")
    )
}

async fn execute(connection: &mut AnyConnection, statement: String) {
    sqlx::raw_sql(AssertSqlSafe(statement.clone()))
        .execute(&mut *connection)
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
}

async fn insert(
    connection: &mut AnyConnection,
    dialect: Dialect,
    table: &str,
    key: &[u8],
    value: &[u8],
) {
    let statement = match dialect {
        Dialect::Postgres => format!("INSERT INTO {table} (nkey, nvalue) VALUES ($1, $2)"),
        _ => format!("INSERT INTO {table} (nkey, nvalue) VALUES (?, ?)"),
    };
    sqlx::query(AssertSqlSafe(statement))
        .bind(key.to_vec())
        .bind(value.to_vec())
        .execute(&mut *connection)
        .await
        .unwrap_or_else(|e| panic!("inserting into {table}: {e}"));
}

impl StepFixture {
    async fn create(dialect: Dialect, test: &str) -> Option<StepFixture> {
        let database = TestDatabase::create(dialect, test).await?;
        let mut connection = AnyConnection::connect(database.url()).await.unwrap();
        for table in TABLES {
            // The statements smallstep/nosql runs for a bucket.
            execute(
                &mut connection,
                match dialect {
                    Dialect::Postgres => format!(
                        "CREATE TABLE IF NOT EXISTS {table} (nkey BYTEA CHECK \
                         (octet_length(nkey) <= 255), nvalue BYTEA, PRIMARY KEY (nkey))"
                    ),
                    _ => format!(
                        "CREATE TABLE IF NOT EXISTS `{table}`(nkey VARBINARY(255), nvalue BLOB, \
                         PRIMARY KEY (nkey))"
                    ),
                },
            )
            .await;
        }
        let key = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
        let not_after = OffsetDateTime::now_utc() + time::Duration::days(1);
        let mut serials = Vec::new();
        for name in ["revoked.example", "valid.example"] {
            let der = mayfly_pki::cert::create_root(name, &key, not_after).unwrap();
            let serial = mayfly_pki::cert::CertificateInfo::from_der(&der)
                .unwrap()
                .serial
                .to_decimal();
            insert(
                &mut connection,
                dialect,
                "x509_certs",
                serial.as_bytes(),
                &der,
            )
            .await;
            serials.push(serial);
        }
        let (revoked_serial, valid_serial) = (serials[0].clone(), serials[1].clone());
        insert(
            &mut connection,
            dialect,
            "x509_certs_data",
            revoked_serial.as_bytes(),
            br#"{"provisioner":{"id":"admin:kid","name":"admin","type":"JWK"}}"#,
        )
        .await;
        for (serial, reason) in [(revoked_serial.as_str(), 1), ("999", 4)] {
            let record = serde_json::json!({
                "Serial": serial, "ProvisionerID": "admin:kid", "ReasonCode": reason,
                "Reason": "key lost", "RevokedAt": "2026-12-04T16:55:42.814443746Z",
                "TokenID": "", "MTLS": false, "ACME": false
            });
            insert(
                &mut connection,
                dialect,
                "revoked_x509_certs",
                serial.as_bytes(),
                record.to_string().as_bytes(),
            )
            .await;
        }
        let exp = OffsetDateTime::now_utc().unix_timestamp() + 3600;
        let token = UsedToken {
            jti: "6d61796679".into(),
            provisioner: "admin".into(),
            expires_at: OffsetDateTime::from_unix_timestamp(exp).unwrap(),
        };
        let text = jwt(&serde_json::json!({"iss": "admin", "jti": token.jti, "exp": exp}));
        insert(
            &mut connection,
            dialect,
            "used_ott",
            token.jti.as_bytes(),
            text.as_bytes(),
        )
        .await;
        let ssh_serial = 4_242_424_242_u64;
        let template = SshCertTemplate {
            cert_type: CertType::Host,
            serial: ssh_serial,
            key_id: "host.example".into(),
            principals: vec!["host.example".into()],
            valid_after: 1_750_000_000,
            valid_before: u64::MAX,
            critical_options: Default::default(),
            extensions: Default::default(),
        };
        let host_key = mayfly_pki::ssh::key::SshPublicKey::from_private_key(
            &PrivateKey::generate(KeyAlgorithm::EcP256).unwrap(),
        )
        .unwrap();
        let ssh = mayfly_pki::ssh::cert::sign_certificate(&template, &host_key, &key).unwrap();
        let serial_text = ssh_serial.to_string();
        insert(
            &mut connection,
            dialect,
            "ssh_certs",
            serial_text.as_bytes(),
            ssh.blob(),
        )
        .await;
        let record = serde_json::json!({
            "Serial": serial_text, "ReasonCode": 0, "RevokedAt": "2026-12-04T16:55:42Z", "MTLS": true
        });
        insert(
            &mut connection,
            dialect,
            "revoked_ssh_certs",
            serial_text.as_bytes(),
            record.to_string().as_bytes(),
        )
        .await;
        connection.close().await.unwrap();
        Some(StepFixture {
            database,
            revoked_serial,
            valid_serial,
            ssh_serial,
            token,
        })
    }

    fn source(&self, dialect: Dialect) -> StepDatabase {
        let (data_source, database) = step_spelling(dialect, self.database.url());
        StepDatabase::new(
            dialect.name(),
            &DataSource::new(data_source),
            Some(&database),
        )
        .unwrap()
    }
}

async fn records_are_copied(dialect: Dialect, test: &str) {
    let Some(fixture) = StepFixture::create(dialect, test).await else {
        return;
    };
    let source = fixture.source(dialect);
    let records = source.read().await.expect("reading step-ca's tables");
    let store = AnyStore::Sqlite(SqliteStore::open_in_memory().await.unwrap());
    let report = records.import_into(&store, source.name()).await.unwrap();
    let copied = |n| Counted {
        imported: n,
        present: 0,
    };
    assert_eq!(report.certificates, copied(2));
    assert_eq!(report.revocations, copied(1));
    assert_eq!(report.ssh_certificates, copied(1));
    assert_eq!(report.ssh_revocations, copied(1));
    assert_eq!(report.used_tokens, copied(1));
    assert_eq!(report.orphan_revocations, ["999"]);

    let certs = store.full();
    let revoked = certs
        .certificate(&fixture.revoked_serial)
        .await
        .unwrap()
        .expect("the revoked certificate is copied");
    assert_eq!(revoked.status, CertificateStatus::Revoked);
    assert_eq!(revoked.certificate.provisioner, "admin");
    assert_eq!(revoked.certificate.subject, "revoked.example");
    let revocation = revoked.revocation.expect("with its revocation");
    assert_eq!(revocation.reason_code, 1);
    assert_eq!(revocation.reason, "key lost");
    assert_eq!(revocation.revoked_by, "step-ca:token:admin:kid");
    assert_eq!(revocation.revoked_at.unix_timestamp(), 1_796_403_342);
    let valid = certs
        .certificate(&fixture.valid_serial)
        .await
        .unwrap()
        .expect("the valid certificate is copied");
    assert_eq!(valid.status, CertificateStatus::Valid);
    let ssh = store
        .ssh_store()
        .ssh_certificate(fixture.ssh_serial)
        .await
        .unwrap()
        .expect("the SSH certificate is copied");
    assert_eq!(ssh.status, CertificateStatus::Revoked);
    assert_eq!(ssh.certificate.principals, ["host.example"]);
    assert_eq!(
        ssh.revocation.map(|r| r.revoked_by).as_deref(),
        Some("step-ca:mtls")
    );

    // The token step-ca burnt is burnt here too.
    let another = mayfly_store::conformance::sample_certificate("admin");
    let audit = mayfly_authority::audit::AuditContext::without_client(
        mayfly_authority::audit::AuditAction::Issued,
        OffsetDateTime::now_utc(),
        "test",
        "",
    );
    let replay = certs
        .record_issuance(&another, Some(&fixture.token), &audit)
        .await;
    assert!(
        matches!(replay, Err(StoreError::TokenAlreadyUsed { .. })),
        "{replay:?}"
    );

    // Again: nothing new, nothing duplicated.
    let report = records.import_into(&store, source.name()).await.unwrap();
    let present = |n| Counted {
        imported: 0,
        present: n,
    };
    assert_eq!(report.certificates, present(2));
    assert_eq!(report.revocations, present(1));
    assert_eq!(report.ssh_certificates, present(1));
    assert_eq!(report.ssh_revocations, present(1));
    assert_eq!(report.used_tokens, present(1));
    let counts = mayfly_authority::store::AdminStore::counts(&*certs)
        .await
        .unwrap();
    assert_eq!(counts.certificates, 2, "{counts:?}");
}

/// One bad row stops the import while reading, naming its table and key: nothing is written.
async fn a_malformed_row_is_named(dialect: Dialect, test: &str) {
    let Some(fixture) = StepFixture::create(dialect, test).await else {
        return;
    };
    let mut connection = AnyConnection::connect(fixture.database.url())
        .await
        .unwrap();
    insert(
        &mut connection,
        dialect,
        "used_ott",
        b"bad-token",
        b"no JWT here",
    )
    .await;
    connection.close().await.unwrap();
    let err = fixture
        .source(dialect)
        .read()
        .await
        .expect_err("a malformed row must stop the import")
        .to_string();
    assert!(
        err.contains("used_ott/bad-token: the token is not a JWT"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// A database without step-ca's tables is not taken for one.
async fn another_database_is_refused(dialect: Dialect, test: &str) {
    let Some(database) = TestDatabase::create(dialect, test).await else {
        return;
    };
    let (data_source, name) = step_spelling(dialect, database.url());
    let err = StepDatabase::new(dialect.name(), &DataSource::new(data_source), Some(&name))
        .unwrap()
        .read()
        .await
        .expect_err("an empty database is no step-ca database")
        .to_string();
    assert!(
        err.contains("has no table x509_certs: it is not a step-ca database"),
        "{err}"
    );
}

#[tokio::test]
async fn step_records_are_copied_from_mariadb() {
    records_are_copied(Dialect::MySql, "step_records_are_copied_from_mariadb").await;
}

#[tokio::test]
async fn step_records_are_copied_from_postgresql() {
    records_are_copied(Dialect::Postgres, "step_records_are_copied_from_postgresql").await;
}

#[tokio::test]
async fn a_malformed_step_row_is_named_on_mariadb() {
    a_malformed_row_is_named(Dialect::MySql, "a_malformed_step_row_is_named_on_mariadb").await;
}

#[tokio::test]
async fn a_malformed_step_row_is_named_on_postgresql() {
    a_malformed_row_is_named(
        Dialect::Postgres,
        "a_malformed_step_row_is_named_on_postgresql",
    )
    .await;
}

#[tokio::test]
async fn a_database_without_step_tables_is_refused_on_mariadb() {
    another_database_is_refused(
        Dialect::MySql,
        "a_database_without_step_tables_is_refused_on_mariadb",
    )
    .await;
}

#[tokio::test]
async fn a_database_without_step_tables_is_refused_on_postgresql() {
    another_database_is_refused(
        Dialect::Postgres,
        "a_database_without_step_tables_is_refused_on_postgresql",
    )
    .await;
}
