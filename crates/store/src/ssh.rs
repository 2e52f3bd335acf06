//! [`SshStore`] on every backend: SSH certificates in `ssh_certificates` (migration 4), their
//! tokens burnt in the same `used_tokens` table as X.509 issuances, with the same one-statement
//! check-and-record. The statements and row decoding are written once; each backend only opens
//! its transaction (`BEGIN IMMEDIATE` on SQLite) and commits it.

use mayfly_authority::audit::AuditContext;
use mayfly_authority::ssh::store::{
    IssuedSshCertificate, RevokedSsh, SshStore, StoredSshCertificate,
};
use mayfly_authority::store::{BoxFuture, Revocation, StoreError, UsedToken};
use mayfly_pki::ssh::CertType;
use time::OffsetDateTime;

use crate::codec::{self, backend};
use crate::networked::Write;
use crate::{NetworkedStore, SqliteStore};

/// The columns [`decode`] reads, as a literal so queries stay static strings.
macro_rules! ssh_columns {
    () => {
        "serial, cert_type, key_id, principals, cert, valid_after, valid_before, provisioner, \
         status, revoked_at, revocation_reason, revocation_text, revoked_by"
    };
}

const INSERT: &str = "ssh_certificates (serial, cert_type, key_id, principals, cert, \
     valid_after, valid_before, provisioner, status, created_at) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
const SELECT: &str = concat!(
    "SELECT ",
    ssh_columns!(),
    " FROM ssh_certificates WHERE serial = ?"
);
const REVOKE: &str = "UPDATE ssh_certificates SET status = ?, revoked_at = ?, \
     revocation_reason = ?, revocation_text = ?, revoked_by = ? WHERE serial = ? AND status = ?";
const STATUS: &str = "SELECT status FROM ssh_certificates WHERE serial = ?";
const REVOKED: &str =
    "SELECT serial, cert_type FROM ssh_certificates WHERE status = ? AND valid_before > ?";
const HOSTS: &str = concat!(
    "SELECT ",
    ssh_columns!(),
    " FROM ssh_certificates \
     WHERE status = ? AND cert_type = ? AND valid_after <= ? AND valid_before > ?"
);

fn cert_type(serial: &str, text: &str) -> Result<CertType, StoreError> {
    CertType::parse(text).map_err(|_| {
        StoreError::Backend(format!(
            "SSH certificate {serial}: column cert_type holds {text:?}"
        ))
    })
}

fn serial_number(text: &str) -> Result<u64, StoreError> {
    text.parse().map_err(|_| {
        StoreError::Backend(format!("SSH certificate serial {text:?} is not a number"))
    })
}

/// A row of [`SELECT`] or [`HOSTS`], from any backend.
fn decode<R>(row: &R) -> Result<StoredSshCertificate, StoreError>
where
    R: sqlx::Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let column = |e| backend("reading an SSH certificate", e);
    let serial: String = row.try_get("serial").map_err(column)?;
    let kind: String = row.try_get("cert_type").map_err(column)?;
    let key_id: String = row.try_get("key_id").map_err(column)?;
    let principals: String = row.try_get("principals").map_err(column)?;
    let blob: Vec<u8> = row.try_get("cert").map_err(column)?;
    let valid_after: i64 = row.try_get("valid_after").map_err(column)?;
    let valid_before: i64 = row.try_get("valid_before").map_err(column)?;
    let provisioner: String = row.try_get("provisioner").map_err(column)?;
    let status: String = row.try_get("status").map_err(column)?;
    let revoked_at: Option<i64> = row.try_get("revoked_at").map_err(column)?;
    let reason_code: Option<i64> = row.try_get("revocation_reason").map_err(column)?;
    let reason: Option<String> = row.try_get("revocation_text").map_err(column)?;
    let revoked_by: Option<String> = row.try_get("revoked_by").map_err(column)?;
    let revocation = match revoked_at {
        Some(at) => Some(Revocation {
            serial: serial.clone(),
            reason_code: codec::decode_reason(&serial, reason_code)?,
            reason: reason.unwrap_or_default(),
            revoked_at: codec::from_unix("revoked_at", &serial, at)?,
            revoked_by: revoked_by.unwrap_or_default(),
        }),
        None => None,
    };
    Ok(StoredSshCertificate {
        certificate: IssuedSshCertificate {
            cert_type: cert_type(&serial, &kind)?,
            key_id,
            principals: codec::decode_sans(&serial, &principals)?,
            blob,
            valid_after: codec::from_unix("valid_after", &serial, valid_after)?,
            valid_before: codec::from_unix("valid_before", &serial, valid_before)?,
            provisioner,
            serial: serial_number(&serial)?,
        },
        status: codec::decode_status(&serial, &status)?,
        revocation,
    })
}

/// The calls, generated per pool type like [`crate::shared`].
macro_rules! ssh_calls {
    ($database:ty, $shared:ident) => {
        use mayfly_authority::audit::AuditContext;
        use mayfly_authority::ssh::store::{IssuedSshCertificate, RevokedSsh};
        use mayfly_authority::store::{CertificateStatus, Revocation, StoreError, UsedToken};
        use mayfly_pki::ssh::CertType;
        use sqlx::{AssertSqlSafe, Pool, Transaction};
        use time::OffsetDateTime;

        use crate::Dialect;
        use crate::codec::{self, backend};

        type Db = $database;

        fn sql(dialect: Dialect, query: &str) -> AssertSqlSafe<String> {
            AssertSqlSafe(dialect.placeholders(query))
        }

        /// The statements of an SSH issuance in `tx`; `Ok(Err(_))` is a refusal.
        pub(crate) async fn record_in(
            tx: &mut Transaction<'static, Db>,
            dialect: Dialect,
            certificate: &IssuedSshCertificate,
            token: Option<&UsedToken>,
            audit: &AuditContext,
        ) -> Result<Result<(), StoreError>, sqlx::Error> {
            let serial = certificate.serial.to_string();
            if let Some(token) = token
                && !crate::shared::$shared::burn(tx, dialect, token).await?
            {
                return Ok(Err(StoreError::TokenAlreadyUsed {
                    jti: token.jti.clone(),
                }));
            }
            let principals = match codec::encode_sans(&certificate.principals) {
                Ok(principals) => principals,
                Err(refusal) => return Ok(Err(refusal)),
            };
            let inserted = sqlx::query(AssertSqlSafe(dialect.insert_unless_present(super::INSERT)))
                .bind(&serial)
                .bind(certificate.cert_type.as_str())
                .bind(&certificate.key_id)
                .bind(&principals)
                .bind(certificate.blob.as_slice())
                .bind(codec::to_unix(certificate.valid_after))
                .bind(codec::to_unix(certificate.valid_before))
                .bind(&certificate.provisioner)
                .bind(CertificateStatus::Valid.as_str())
                .bind(codec::to_unix(OffsetDateTime::now_utc()))
                .execute(&mut **tx)
                .await?;
            if inserted.rows_affected() == 0 {
                return Ok(Err(StoreError::SerialTaken { serial }));
            }
            crate::shared::$shared::audit_issued_in(
                tx,
                dialect,
                audit,
                &serial,
                &certificate.key_id,
                &principals,
                &certificate.provisioner,
            )
            .await?;
            Ok(Ok(()))
        }

        /// The statements of an SSH revocation in `tx`; `Ok(Err(_))` is a refusal.
        pub(crate) async fn revoke_in(
            tx: &mut Transaction<'static, Db>,
            dialect: Dialect,
            revocation: &Revocation,
            token: Option<&UsedToken>,
            audit: &AuditContext,
        ) -> Result<Result<(), StoreError>, sqlx::Error> {
            let serial = revocation.serial.as_str();
            if let Some(token) = token
                && !crate::shared::$shared::burn(tx, dialect, token).await?
            {
                return Ok(Err(StoreError::TokenAlreadyUsed {
                    jti: token.jti.clone(),
                }));
            }
            let updated = sqlx::query(sql(dialect, super::REVOKE))
                .bind(CertificateStatus::Revoked.as_str())
                .bind(codec::to_unix(revocation.revoked_at))
                .bind(i64::from(revocation.reason_code))
                .bind(revocation.reason.as_str())
                .bind(revocation.revoked_by.as_str())
                .bind(serial)
                .bind(CertificateStatus::Valid.as_str())
                .execute(&mut **tx)
                .await?;
            if updated.rows_affected() == 1 {
                crate::shared::$shared::audit_revocation_in(
                    tx,
                    dialect,
                    codec::AUDIT_SSH_REVOCATION,
                    audit,
                    serial,
                )
                .await?;
                return Ok(Ok(()));
            }
            let exists: Option<String> = sqlx::query_scalar(sql(dialect, super::STATUS))
                .bind(serial)
                .fetch_optional(&mut **tx)
                .await?;
            Ok(Err(codec::revocation_refused(serial, exists.is_some())))
        }

        pub(crate) async fn load(
            pool: &Pool<Db>,
            dialect: Dialect,
            serial: u64,
        ) -> Result<Option<mayfly_authority::ssh::store::StoredSshCertificate>, StoreError> {
            let row = sqlx::query(sql(dialect, super::SELECT))
                .bind(serial.to_string())
                .fetch_optional(pool)
                .await
                .map_err(|e| backend(&format!("looking up SSH certificate {serial}"), e))?;
            row.as_ref().map(super::decode).transpose()
        }

        pub(crate) async fn revoked(
            pool: &Pool<Db>,
            dialect: Dialect,
            now: OffsetDateTime,
        ) -> Result<Vec<RevokedSsh>, StoreError> {
            let context = "listing revoked SSH certificates";
            let rows: Vec<(String, String)> = sqlx::query_as(sql(dialect, super::REVOKED))
                .bind(CertificateStatus::Revoked.as_str())
                .bind(codec::to_unix(now))
                .fetch_all(pool)
                .await
                .map_err(|e| backend(context, e))?;
            rows.iter()
                .map(|(serial, kind)| {
                    Ok(RevokedSsh {
                        cert_type: super::cert_type(serial, kind)?,
                        serial: super::serial_number(serial)?,
                    })
                })
                .collect()
        }

        pub(crate) async fn hosts(
            pool: &Pool<Db>,
            dialect: Dialect,
            now: OffsetDateTime,
        ) -> Result<Vec<IssuedSshCertificate>, StoreError> {
            let rows = sqlx::query(sql(dialect, super::HOSTS))
                .bind(CertificateStatus::Valid.as_str())
                .bind(CertType::Host.as_str())
                .bind(codec::to_unix(now))
                .bind(codec::to_unix(now))
                .fetch_all(pool)
                .await
                .map_err(|e| backend("listing SSH hosts", e))?;
            rows.iter()
                .map(|row| super::decode(row).map(|stored| stored.certificate))
                .collect()
        }
    };
}

mod on_sqlite {
    ssh_calls!(sqlx::Sqlite, sqlite);
}

pub(crate) mod on_any {
    ssh_calls!(sqlx::Any, any);
}

impl SshStore for SqliteStore {
    fn record_ssh_issuance<'a>(
        &'a self,
        certificate: &'a IssuedSshCertificate,
        token: Option<&'a UsedToken>,
        audit: &'a AuditContext,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let context = format!("recording SSH certificate {}", certificate.serial);
            let mut tx = self
                .writer
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map_err(|e| backend(&context, e))?;
            let outcome =
                on_sqlite::record_in(&mut tx, crate::Dialect::Sqlite, certificate, token, audit)
                    .await;
            finish(tx, outcome, &context).await
        })
    }

    fn ssh_certificate(
        &self,
        serial: u64,
    ) -> BoxFuture<'_, Result<Option<StoredSshCertificate>, StoreError>> {
        Box::pin(on_sqlite::load(
            &self.reader,
            crate::Dialect::Sqlite,
            serial,
        ))
    }

    fn revoke_ssh<'a>(
        &'a self,
        revocation: &'a Revocation,
        token: Option<&'a UsedToken>,
        audit: &'a AuditContext,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let context = format!("revoking SSH certificate {}", revocation.serial);
            let mut tx = self
                .writer
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map_err(|e| backend(&context, e))?;
            let outcome =
                on_sqlite::revoke_in(&mut tx, crate::Dialect::Sqlite, revocation, token, audit)
                    .await;
            finish(tx, outcome, &context).await
        })
    }

    fn revoked_ssh(
        &self,
        now: OffsetDateTime,
    ) -> BoxFuture<'_, Result<Vec<RevokedSsh>, StoreError>> {
        Box::pin(on_sqlite::revoked(
            &self.reader,
            crate::Dialect::Sqlite,
            now,
        ))
    }

    fn ssh_hosts(
        &self,
        now: OffsetDateTime,
    ) -> BoxFuture<'_, Result<Vec<IssuedSshCertificate>, StoreError>> {
        Box::pin(on_sqlite::hosts(&self.reader, crate::Dialect::Sqlite, now))
    }
}

/// Commits on success; rolls back a refusal or a failure, so neither changes anything.
async fn finish(
    tx: sqlx::Transaction<'static, sqlx::Sqlite>,
    outcome: Result<Result<(), StoreError>, sqlx::Error>,
    context: &str,
) -> Result<(), StoreError> {
    match outcome {
        Ok(Ok(())) => tx.commit().await.map_err(|e| backend(context, e)),
        Ok(Err(refusal)) => {
            let _ = tx.rollback().await;
            Err(refusal)
        }
        Err(error) => {
            let _ = tx.rollback().await;
            Err(backend(context, error))
        }
    }
}

impl SshStore for NetworkedStore {
    fn record_ssh_issuance<'a>(
        &'a self,
        certificate: &'a IssuedSshCertificate,
        token: Option<&'a UsedToken>,
        audit: &'a AuditContext,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let context = format!("recording SSH certificate {}", certificate.serial);
            self.in_transaction(
                &context,
                Write::SshIssue {
                    certificate,
                    token,
                    audit,
                },
            )
            .await
        })
    }

    fn ssh_certificate(
        &self,
        serial: u64,
    ) -> BoxFuture<'_, Result<Option<StoredSshCertificate>, StoreError>> {
        Box::pin(on_any::load(&self.pool, self.dialect, serial))
    }

    fn revoke_ssh<'a>(
        &'a self,
        revocation: &'a Revocation,
        token: Option<&'a UsedToken>,
        audit: &'a AuditContext,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let context = format!("revoking SSH certificate {}", revocation.serial);
            self.in_transaction(
                &context,
                Write::SshRevoke {
                    revocation,
                    token,
                    audit,
                },
            )
            .await
        })
    }

    fn revoked_ssh(
        &self,
        now: OffsetDateTime,
    ) -> BoxFuture<'_, Result<Vec<RevokedSsh>, StoreError>> {
        Box::pin(on_any::revoked(&self.pool, self.dialect, now))
    }

    fn ssh_hosts(
        &self,
        now: OffsetDateTime,
    ) -> BoxFuture<'_, Result<Vec<IssuedSshCertificate>, StoreError>> {
        Box::pin(on_any::hosts(&self.pool, self.dialect, now))
    }
}
