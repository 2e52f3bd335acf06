//! [`SshStore`] on the SQLite backend: SSH certificates in `ssh_certificates` (migration 4),
//! their tokens burnt in the same `used_tokens` table as X.509 issuances.

use mayfly_authority::ssh::store::{
    IssuedSshCertificate, RevokedSsh, SshStore, StoredSshCertificate,
};
use mayfly_authority::store::{BoxFuture, CertificateStatus, Revocation, StoreError, UsedToken};
use mayfly_pki::ssh::CertType;
use sqlx::Row;
use time::OffsetDateTime;

use crate::SqliteStore;
use crate::codec::{self, backend};

/// The columns [`decode`] reads, as a literal so queries stay static strings.
macro_rules! columns {
    () => {
        "serial, cert_type, key_id, principals, cert, valid_after, valid_before, provisioner, \
         status, revoked_at, revocation_reason, revocation_text, revoked_by"
    };
}

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

fn decode(row: &sqlx::sqlite::SqliteRow) -> Result<StoredSshCertificate, StoreError> {
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
            reason_code: u8::try_from(reason_code.unwrap_or(0)).unwrap_or(0),
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

impl SqliteStore {
    async fn record_ssh(
        &self,
        certificate: &IssuedSshCertificate,
        token: Option<&UsedToken>,
    ) -> Result<(), StoreError> {
        let serial = certificate.serial.to_string();
        let context = format!("recording SSH certificate {serial}");
        let principals = codec::encode_sans(&certificate.principals)?;
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| backend(&context, e))?;
        let outcome: Result<Result<(), StoreError>, sqlx::Error> = async {
            if let Some(token) = token
                && burn(&mut tx, token).await? == 0
            {
                return Ok(Err(StoreError::TokenAlreadyUsed {
                    jti: token.jti.clone(),
                }));
            }
            let inserted = sqlx::query(
                "INSERT INTO ssh_certificates (serial, cert_type, key_id, principals, cert, \
                 valid_after, valid_before, provisioner, status, created_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            )
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
            .execute(&mut *tx)
            .await?;
            if inserted.rows_affected() == 0 {
                return Ok(Err(StoreError::SerialTaken {
                    serial: serial.clone(),
                }));
            }
            Ok(Ok(()))
        }
        .await;
        finish(tx, outcome, &context).await
    }

    async fn load_ssh(&self, serial: u64) -> Result<Option<StoredSshCertificate>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM ssh_certificates WHERE serial = ?"
        ))
        .bind(serial.to_string())
        .fetch_optional(&self.reader)
        .await
        .map_err(|e| backend(&format!("looking up SSH certificate {serial}"), e))?;
        row.as_ref().map(decode).transpose()
    }

    async fn revoke_ssh_certificate(
        &self,
        revocation: &Revocation,
        token: Option<&UsedToken>,
    ) -> Result<(), StoreError> {
        let serial = revocation.serial.as_str();
        let context = format!("revoking SSH certificate {serial}");
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| backend(&context, e))?;
        let outcome: Result<Result<(), StoreError>, sqlx::Error> = async {
            if let Some(token) = token
                && burn(&mut tx, token).await? == 0
            {
                return Ok(Err(StoreError::TokenAlreadyUsed {
                    jti: token.jti.clone(),
                }));
            }
            let updated = sqlx::query(
                "UPDATE ssh_certificates SET status = ?, revoked_at = ?, revocation_reason = ?, \
                 revocation_text = ?, revoked_by = ? WHERE serial = ? AND status = ?",
            )
            .bind(CertificateStatus::Revoked.as_str())
            .bind(codec::to_unix(revocation.revoked_at))
            .bind(i64::from(revocation.reason_code))
            .bind(revocation.reason.as_str())
            .bind(revocation.revoked_by.as_str())
            .bind(serial)
            .bind(CertificateStatus::Valid.as_str())
            .execute(&mut *tx)
            .await?;
            if updated.rows_affected() == 1 {
                return Ok(Ok(()));
            }
            let exists: Option<String> =
                sqlx::query_scalar("SELECT status FROM ssh_certificates WHERE serial = ?")
                    .bind(serial)
                    .fetch_optional(&mut *tx)
                    .await?;
            Ok(Err(match exists {
                Some(_) => StoreError::AlreadyRevoked {
                    serial: serial.to_string(),
                },
                None => StoreError::CertificateNotFound {
                    serial: serial.to_string(),
                },
            }))
        }
        .await;
        finish(tx, outcome, &context).await
    }

    async fn list_revoked_ssh(&self, now: OffsetDateTime) -> Result<Vec<RevokedSsh>, StoreError> {
        let context = "listing revoked SSH certificates";
        let rows = sqlx::query(
            "SELECT serial, cert_type FROM ssh_certificates WHERE status = ? AND valid_before > ?",
        )
        .bind(CertificateStatus::Revoked.as_str())
        .bind(codec::to_unix(now))
        .fetch_all(&self.reader)
        .await
        .map_err(|e| backend(context, e))?;
        rows.iter()
            .map(|row| {
                let serial: String = row.try_get("serial").map_err(|e| backend(context, e))?;
                let kind: String = row.try_get("cert_type").map_err(|e| backend(context, e))?;
                Ok(RevokedSsh {
                    cert_type: cert_type(&serial, &kind)?,
                    serial: serial_number(&serial)?,
                })
            })
            .collect()
    }

    async fn list_ssh_hosts(
        &self,
        now: OffsetDateTime,
    ) -> Result<Vec<IssuedSshCertificate>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM ssh_certificates \
             WHERE status = ? AND cert_type = ? AND valid_after <= ? AND valid_before > ?"
        ))
        .bind(CertificateStatus::Valid.as_str())
        .bind(CertType::Host.as_str())
        .bind(codec::to_unix(now))
        .bind(codec::to_unix(now))
        .fetch_all(&self.reader)
        .await
        .map_err(|e| backend("listing SSH hosts", e))?;
        rows.iter()
            .map(|row| decode(row).map(|stored| stored.certificate))
            .collect()
    }
}

/// Burns a token inside `tx`; returns 0 when it was burnt before.
async fn burn(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    token: &UsedToken,
) -> Result<u64, sqlx::Error> {
    let burnt = sqlx::query(
        "INSERT INTO used_tokens (provisioner, jti, expires_at) VALUES (?, ?, ?) \
         ON CONFLICT DO NOTHING",
    )
    .bind(token.provisioner.as_str())
    .bind(token.jti.as_str())
    .bind(codec::to_unix(token.expires_at))
    .execute(&mut **tx)
    .await?;
    Ok(burnt.rows_affected())
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

impl SshStore for SqliteStore {
    fn record_ssh_issuance<'a>(
        &'a self,
        certificate: &'a IssuedSshCertificate,
        token: Option<&'a UsedToken>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.record_ssh(certificate, token))
    }

    fn ssh_certificate(
        &self,
        serial: u64,
    ) -> BoxFuture<'_, Result<Option<StoredSshCertificate>, StoreError>> {
        Box::pin(self.load_ssh(serial))
    }

    fn revoke_ssh<'a>(
        &'a self,
        revocation: &'a Revocation,
        token: Option<&'a UsedToken>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.revoke_ssh_certificate(revocation, token))
    }

    fn revoked_ssh(
        &self,
        now: OffsetDateTime,
    ) -> BoxFuture<'_, Result<Vec<RevokedSsh>, StoreError>> {
        Box::pin(self.list_revoked_ssh(now))
    }

    fn ssh_hosts(
        &self,
        now: OffsetDateTime,
    ) -> BoxFuture<'_, Result<Vec<IssuedSshCertificate>, StoreError>> {
        Box::pin(self.list_ssh_hosts(now))
    }
}
