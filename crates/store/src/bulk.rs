//! Loading many certificate records at once, for measurements at scale (`mayfly-bench fill`):
//! a store of ten million certificates has to be made in minutes, not in the days that ten
//! million issuances through the authority would take.
//!
//! The rows are the ones an issuance and a revocation write (the same columns and encodings, from
//! [`crate::codec`], and an audit entry for each change), so that what is measured on a filled
//! database (the size per certificate, the cost of the next issuance, a CRL's query) is what a
//! CA that issued them would see. Only the way in differs: a thousand rows per statement, and
//! as many per transaction as the caller hands over at once. Not for a CA's own use: nothing checks a serial against the ones stored
//! before it, so a batch with a serial already there fails whole.

use mayfly_authority::audit::AuditContext;
use mayfly_authority::store::{IssuedCertificate, Revocation};
use time::OffsetDateTime;

use crate::Dialect;

/// One certificate as [`SqliteStore::bulk_load`] and [`NetworkedStore::bulk_load`] write it.
///
/// [`SqliteStore::bulk_load`]: crate::SqliteStore::bulk_load
/// [`NetworkedStore::bulk_load`]: crate::NetworkedStore::bulk_load
#[derive(Debug, Clone)]
pub struct BulkCertificate {
    pub certificate: IssuedCertificate,
    /// When it was recorded (`created_at`).
    pub recorded_at: OffsetDateTime,
    /// Its issuance's audit entry.
    pub issued: AuditContext,
    /// Its revocation and that one's audit entry, when it is revoked.
    pub revoked: Option<(Revocation, AuditContext)>,
}

/// Certificates per multi-row statement: 15 values a row stays below every engine's limit on
/// bound values (SQLite 32,766; PostgreSQL and MySQL 65,535), audit rows (9 values, up to two a
/// certificate) included.
pub(crate) const ROWS_PER_STATEMENT: usize = 1000;

/// The columns of a certificate row as a bulk load writes them: an issuance's, and a
/// revocation's already applied.
const CERTIFICATE_COLUMNS: &str = "INSERT INTO certificates (serial, der, subject, sans, \
     not_before, not_after, provisioner, status, created_at, crl_shard, revoked_at, \
     revocation_reason, revocation_text, revoked_by, revocation_seq) VALUES ";
const CERTIFICATE_VALUES: &str = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
const AUDIT_VALUES: &str = "(?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// `INSERT ... VALUES (...), (...)` with `rows` rows of `values`, in `dialect`'s placeholders.
fn multi_row(dialect: Dialect, head: &str, values: &str, rows: usize) -> String {
    let mut sql = String::with_capacity(head.len() + rows * (values.len() + 2));
    sql.push_str(head);
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push_str(values);
    }
    dialect.placeholders(&sql)
}

/// The certificate insert for `rows` rows.
pub(crate) fn certificate_insert(dialect: Dialect, rows: usize) -> String {
    multi_row(dialect, CERTIFICATE_COLUMNS, CERTIFICATE_VALUES, rows)
}

/// The audit insert for `rows` rows, binding as [`crate::codec::AUDIT_INSERT`] does.
pub(crate) fn audit_insert(dialect: Dialect, rows: usize) -> String {
    let head = format!("{}VALUES ", crate::codec::AUDIT_COLUMNS);
    multi_row(dialect, &head, AUDIT_VALUES, rows)
}

/// What [`SqliteStore::database_size`](crate::SqliteStore::database_size) and its
/// counterparts ask: the bytes the database takes, tables and indexes, as the engine counts them.
pub(crate) fn size_query(dialect: Dialect) -> &'static str {
    match dialect {
        // Pages as this connection sees the database: the WAL's committed frames included.
        Dialect::Sqlite => {
            "SELECT p.page_count * s.page_size FROM pragma_page_count() AS p, \
             pragma_page_size() AS s"
        }
        Dialect::Postgres => "SELECT pg_database_size(current_database())",
        Dialect::MySql => {
            "SELECT CAST(COALESCE(SUM(data_length + index_length), 0) AS SIGNED) \
             FROM information_schema.tables WHERE table_schema = DATABASE()"
        }
    }
}

macro_rules! bulk_calls {
    ($store:ty) => {
        use mayfly_authority::store::{CertificateStatus, StoreError};
        use sqlx::AssertSqlSafe;

        use crate::bulk::{BulkCertificate, ROWS_PER_STATEMENT, audit_insert, certificate_insert};
        use crate::codec::{self, backend};
        use crate::engine::Engine;

        impl $store {
            /// Writes `records` in one transaction, a thousand rows a statement; returns how
            /// many certificates were stored. See [`crate::bulk`]: for measurements, not for a
            /// CA's own records.
            pub async fn bulk_load(&self, records: &[BulkCertificate]) -> Result<u64, StoreError> {
                let context = |e| backend("bulk loading certificates", e);
                let mut sans = Vec::with_capacity(records.len());
                for record in records {
                    codec::check_lengths(&record.certificate, None)?;
                    sans.push(codec::encode_sans(&record.certificate.sans)?);
                }
                let dialect = self.dialect();
                let mut tx = self.begin_write().await.map_err(context)?;
                // The revocations take numbers as a revocation does (schema 11), all at once.
                let revocations = records.iter().filter(|r| r.revoked.is_some()).count();
                sqlx::query(dialect.sql(codec::REVOCATION_SEQ_BUMP_BY))
                    .bind(i64::try_from(revocations).unwrap_or(i64::MAX))
                    .execute(&mut *tx)
                    .await
                    .map_err(context)?;
                let last: i64 = sqlx::query_scalar(codec::REVOCATION_SEQ)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(context)?;
                let mut next_seq = last.saturating_sub(i64::try_from(revocations).unwrap_or(0));
                let mut stored = 0;
                for (chunk, sans) in records
                    .chunks(ROWS_PER_STATEMENT)
                    .zip(sans.chunks(ROWS_PER_STATEMENT))
                {
                    let statement = certificate_insert(dialect, chunk.len());
                    let mut insert = sqlx::query(AssertSqlSafe(statement));
                    for (record, sans) in chunk.iter().zip(sans) {
                        let certificate = &record.certificate;
                        let revocation = record.revoked.as_ref().map(|(r, _)| r);
                        let status = match revocation {
                            Some(_) => CertificateStatus::Revoked,
                            None => CertificateStatus::Valid,
                        };
                        insert = insert
                            .bind(certificate.serial.as_str())
                            .bind(certificate.der.as_slice())
                            .bind(certificate.subject.as_str())
                            .bind(sans.as_str())
                            .bind(codec::to_unix(certificate.not_before))
                            .bind(codec::to_unix(certificate.not_after))
                            .bind(certificate.provisioner.as_str())
                            .bind(status.as_str())
                            .bind(codec::to_unix(record.recorded_at))
                            .bind(codec::shard_column(certificate.crl_shard))
                            .bind(revocation.map(|r| codec::to_unix(r.revoked_at)))
                            .bind(revocation.map(|r| i64::from(r.reason_code)))
                            .bind(revocation.map(|r| r.reason.as_str()))
                            .bind(revocation.map(|r| r.revoked_by.as_str()))
                            .bind(revocation.map(|_| {
                                next_seq += 1;
                                next_seq
                            }));
                    }
                    stored += insert
                        .execute(&mut *tx)
                        .await
                        .map_err(context)?
                        .rows_affected();

                    // The audit entries: every issuance, then the revocations.
                    let entries: Vec<(&BulkCertificate, &str, &AuditContext)> = chunk
                        .iter()
                        .zip(sans)
                        .map(|(record, sans)| (record, sans.as_str(), &record.issued))
                        .chain(chunk.iter().zip(sans).filter_map(|(record, sans)| {
                            record
                                .revoked
                                .as_ref()
                                .map(|(_, audit)| (record, sans.as_str(), audit))
                        }))
                        .collect();
                    let statement = audit_insert(dialect, entries.len());
                    let mut insert = sqlx::query(AssertSqlSafe(statement));
                    for (record, sans, audit) in entries {
                        let certificate = &record.certificate;
                        insert = insert
                            .bind(codec::to_unix(audit.at))
                            .bind(audit.action.as_str())
                            .bind(certificate.serial.as_str())
                            .bind(certificate.subject.as_str())
                            .bind(sans)
                            .bind(certificate.provisioner.as_str())
                            .bind(audit.credential.as_str())
                            .bind(codec::audit_address(audit))
                            .bind(audit.detail.as_str());
                    }
                    insert.execute(&mut *tx).await.map_err(context)?;
                }
                tx.commit().await.map_err(context)?;
                Ok(stored)
            }

            /// The bytes the database takes (tables and indexes), as the engine counts them.
            pub async fn database_size(&self) -> Result<u64, StoreError> {
                if self.dialect() == crate::Dialect::MySql {
                    // InnoDB's sizes in information_schema are statistics, refreshed now and
                    // then; without this a table just filled still shows its old size.
                    sqlx::raw_sql("ANALYZE TABLE certificates, audit_log")
                        .execute(self.writes())
                        .await
                        .map_err(|e| backend("updating the table statistics", e))?;
                }
                let bytes: i64 =
                    sqlx::query_scalar(AssertSqlSafe(crate::bulk::size_query(self.dialect())))
                        .fetch_one(self.reads())
                        .await
                        .map_err(|e| backend("reading the database size", e))?;
                Ok(u64::try_from(bytes).unwrap_or(0))
            }
        }
    };
}

/// For the SQLite store.
mod sqlite {
    use mayfly_authority::audit::AuditContext;
    bulk_calls!(crate::SqliteStore);
}

/// For the PostgreSQL and MySQL store.
mod any {
    use mayfly_authority::audit::AuditContext;
    bulk_calls!(crate::NetworkedStore);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_have_a_placeholder_for_every_value() {
        let sqlite = certificate_insert(Dialect::Sqlite, 3);
        assert_eq!(sqlite.matches('?').count(), 3 * 15);
        assert!(sqlite.ends_with("?, ?), (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
        let postgres = certificate_insert(Dialect::Postgres, 2);
        assert!(postgres.contains("$30)"), "{postgres}");
        assert!(!postgres.contains('?'));
        let audit = audit_insert(Dialect::MySql, 2);
        assert_eq!(audit.matches('?').count(), 18);
        assert!(audit.contains(") VALUES (?"), "{audit}");
        // The largest statement stays within SQLite's limit on bound values.
        const { assert!(ROWS_PER_STATEMENT * 2 * 9 < 32_766) };
        const { assert!(ROWS_PER_STATEMENT * 15 < 32_766) };
    }
}
