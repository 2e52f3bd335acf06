//! [`SshStore`] on both stores: SSH certificates in `ssh_certificates` (migration 4), their
//! tokens burnt in the same `used_tokens` table as X.509 issuances, with the same one-statement
//! check-and-record. Written once and generated for each store, as [`crate::shared`]; each store's
//! [`Engine`](crate::engine::Engine) opens the transactions (`BEGIN IMMEDIATE` on SQLite) and
//! retries them where that engine can pick a deadlock victim.

use mayfly_authority::ssh::store::{IssuedSshCertificate, StoredSshCertificate};
use mayfly_authority::store::{Revocation, StoreError};
use mayfly_pki::ssh::CertType;

use crate::codec::{self, RevocationStatements, backend};

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
/// An SSH certificate's revocation: its key id and principals stand for subject and SANs in
/// the audit entry.
const REVOCATION: RevocationStatements = RevocationStatements {
    what: "SSH certificate",
    update: "UPDATE ssh_certificates SET status = ?, revoked_at = ?, revocation_reason = ?, \
             revocation_text = ?, revoked_by = ? WHERE serial = ? AND status = ?",
    status: "SELECT status FROM ssh_certificates WHERE serial = ?",
    audit: codec::AUDIT_SSH_REVOCATION,
    // The KRL is made from the SSH table whole; nothing reads SSH revocations by number.
    number: None,
};
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

/// The calls, generated per store like [`crate::shared`]; `$shared` is that store's module there.
macro_rules! ssh_calls {
    ($store:ty, $shared:ident) => {
        use mayfly_authority::audit::AuditContext;
        use mayfly_authority::ssh::store::{
            IssuedSshCertificate, RevokedSsh, SshStore, StoredSshCertificate,
        };
        use mayfly_authority::store::{
            BoxFuture, CertificateStatus, Revocation, StoreError, UsedToken,
        };
        use mayfly_pki::ssh::CertType;
        use sqlx::Transaction;
        use time::OffsetDateTime;

        use crate::Dialect;
        use crate::codec::{self, backend};
        use crate::engine::{Engine, Outcome, in_transaction};
        use crate::shared::$shared::{audit_issued_in, spend};

        type Db = <$store as Engine>::Db;

        /// The statements of an SSH issuance in `tx`.
        async fn record_in(
            tx: &mut Transaction<'static, Db>,
            dialect: Dialect,
            certificate: &IssuedSshCertificate,
            token: Option<&UsedToken>,
            audit: &AuditContext,
        ) -> Outcome<()> {
            let serial = certificate.serial.to_string();
            if let Err(refusal) = spend(tx, dialect, token).await? {
                return Ok(Err(refusal));
            }
            let principals = match codec::encode_sans(&certificate.principals) {
                Ok(principals) => principals,
                Err(refusal) => return Ok(Err(refusal)),
            };
            let inserted = sqlx::query(dialect.insert_sql(super::INSERT))
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
            audit_issued_in(
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

        impl SshStore for $store {
            fn record_ssh_issuance<'a>(
                &'a self,
                certificate: &'a IssuedSshCertificate,
                token: Option<&'a UsedToken>,
                audit: &'a AuditContext,
            ) -> BoxFuture<'a, Result<(), StoreError>> {
                Box::pin(async move {
                    let context = format!("recording SSH certificate {}", certificate.serial);
                    let dialect = self.dialect();
                    in_transaction(self, &context, |mut tx| async move {
                        let outcome = record_in(&mut tx, dialect, certificate, token, audit).await;
                        (tx, outcome)
                    })
                    .await
                })
            }

            fn ssh_certificate(
                &self,
                serial: u64,
            ) -> BoxFuture<'_, Result<Option<StoredSshCertificate>, StoreError>> {
                Box::pin(async move {
                    let row = sqlx::query(self.dialect().sql(super::SELECT))
                        .bind(serial.to_string())
                        .fetch_optional(self.reads())
                        .await
                        .map_err(|e| backend(&format!("looking up SSH certificate {serial}"), e))?;
                    row.as_ref().map(super::decode).transpose()
                })
            }

            fn revoke_ssh<'a>(
                &'a self,
                revocation: &'a Revocation,
                token: Option<&'a UsedToken>,
                audit: &'a AuditContext,
            ) -> BoxFuture<'a, Result<(), StoreError>> {
                Box::pin(self.revoke_with(&super::REVOCATION, revocation, token, audit))
            }

            fn revoked_ssh(
                &self,
                now: OffsetDateTime,
            ) -> BoxFuture<'_, Result<Vec<RevokedSsh>, StoreError>> {
                Box::pin(async move {
                    let context = "listing revoked SSH certificates";
                    let rows: Vec<(String, String)> =
                        sqlx::query_as(self.dialect().sql(super::REVOKED))
                            .bind(CertificateStatus::Revoked.as_str())
                            .bind(codec::to_unix(now))
                            .fetch_all(self.reads())
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
                })
            }

            fn ssh_hosts(
                &self,
                now: OffsetDateTime,
            ) -> BoxFuture<'_, Result<Vec<IssuedSshCertificate>, StoreError>> {
                Box::pin(async move {
                    let rows = sqlx::query(self.dialect().sql(super::HOSTS))
                        .bind(CertificateStatus::Valid.as_str())
                        .bind(CertType::Host.as_str())
                        .bind(codec::to_unix(now))
                        .bind(codec::to_unix(now))
                        .fetch_all(self.reads())
                        .await
                        .map_err(|e| backend("listing SSH hosts", e))?;
                    rows.iter()
                        .map(|row| super::decode(row).map(|stored| stored.certificate))
                        .collect()
                })
            }
        }
    };
}

mod on_sqlite {
    ssh_calls!(crate::SqliteStore, sqlite);
}

mod on_any {
    ssh_calls!(crate::NetworkedStore, any);
}
