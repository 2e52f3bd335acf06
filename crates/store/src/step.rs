//! step-ca's records, read from its database and copied into mayfly's: what `mayfly-ca
//! import-step` does, so that a CA moved from step-ca keeps refusing what step-ca revoked.
//!
//! step-ca keeps its records through smallstep/nosql, which on MySQL and PostgreSQL is one table
//! per bucket with two columns, `nkey` and `nvalue` (binary). step's own badger-to-SQL tool
//! writes the same layout, so a badger CA's history arrives by that road. The buckets read here:
//!
//! - `x509_certs`: decimal serial → the certificate's DER;
//! - `x509_certs_data`: decimal serial → `{"provisioner": {"name": …}}` (newer step-ca);
//! - `revoked_x509_certs`, `revoked_ssh_certs`: decimal serial → a JSON revocation record;
//! - `used_ott`: token id → the token (a JWT, whose claims give its issuer and expiry);
//! - `ssh_certs`: decimal serial → the SSH certificate's wire blob.
//!
//! Everything is read and decoded before anything is written: a malformed row stops the import
//! with its table and key named, and mayfly's store is left as it was. Writing is idempotent (a
//! record already there is counted, not duplicated), so an import can be run again, for example
//! once more after step-ca is stopped.

use mayfly_authority::audit::{AuditAction, AuditContext, revocation_detail};
use mayfly_authority::revocation::ReasonCode;
use mayfly_authority::ssh::store::IssuedSshCertificate;
use mayfly_authority::store::{IssuedCertificate, Revocation, StoreError, UsedToken};
use mayfly_config::datasource::DataSource;
use serde::Deserialize;
use sqlx::{AnyConnection, AssertSqlSafe, Connection, Row};
use time::OffsetDateTime;

use crate::dialect::Dialect;
use crate::{AnyStore, Error};

/// The credential written in the audit entries of imported records.
const CREDENTIAL: &str = "step-ca import";

/// A step-ca database on a MySQL or PostgreSQL server.
#[derive(Debug, Clone)]
pub struct StepDatabase {
    url: String,
    /// The URL without its password, for messages.
    name: String,
}

impl StepDatabase {
    /// step-ca's `db` block: `kind` (`mysql` or `postgresql`), `dataSource` in any spelling
    /// step accepts, and `database`.
    pub fn new(
        kind: &str,
        data_source: &DataSource,
        database: Option<&str>,
    ) -> Result<StepDatabase, Error> {
        let dialect = match kind.to_ascii_lowercase().as_str() {
            "mysql" | "mariadb" => Dialect::MySql,
            "postgresql" | "postgres" => Dialect::Postgres,
            "badger" | "badgerv1" | "badgerv2" => {
                return Err(Error::Import(
                    "step-ca's badger database cannot be read directly: copy it to MySQL or \
                     PostgreSQL with step-ca's badger-migration tool first, then import from there"
                        .into(),
                ));
            }
            other => {
                return Err(Error::Import(format!(
                    "--db-type {other:?}: expected \"mysql\" or \"postgresql\""
                )));
            }
        };
        let url = crate::dsn::server_url(dialect, data_source, database)?;
        let name = crate::redact(&url);
        Ok(StepDatabase { url, name })
    }

    /// The database for messages, without its password.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads and decodes every record to import. Changes nothing in step-ca's database.
    pub async fn read(&self) -> Result<StepRecords, Error> {
        sqlx::any::install_default_drivers();
        let mut connection =
            AnyConnection::connect(&self.url)
                .await
                .map_err(|source| Error::Open {
                    database: self.name.clone(),
                    source,
                })?;
        let outcome = self.read_from(&mut connection).await;
        let _ = connection.close().await;
        outcome
    }

    async fn read_from(&self, connection: &mut AnyConnection) -> Result<StepRecords, Error> {
        if !has_step_tables(connection)
            .await
            .map_err(|e| self.failed("x509_certs", e))?
        {
            return Err(Error::Import(format!(
                "database {} has no table x509_certs: it is not a step-ca database",
                self.name
            )));
        }
        let data = self.bucket(connection, "x509_certs_data").await?;
        let mut records = StepRecords::default();
        for (key, value) in self.bucket(connection, "x509_certs").await? {
            let row = RowName::new("x509_certs", &key);
            let provisioner = data
                .iter()
                .find(|(data_key, _)| *data_key == key)
                .map(|(_, value)| provisioner_from_data(&row, value))
                .transpose()?
                .flatten();
            records
                .certificates
                .push(certificate(&row, &value, provisioner)?);
        }
        for (key, value) in self.bucket(connection, "revoked_x509_certs").await? {
            let row = RowName::new("revoked_x509_certs", &key);
            records.revocations.push(revocation(&row, &value)?);
        }
        for (key, value) in self.bucket(connection, "used_ott").await? {
            let row = RowName::new("used_ott", &key);
            records.used_tokens.push(used_token(&row, &value)?);
        }
        for (key, value) in self.bucket(connection, "ssh_certs").await? {
            let row = RowName::new("ssh_certs", &key);
            records
                .ssh_certificates
                .push(ssh_certificate(&row, &value)?);
        }
        for (key, value) in self.bucket(connection, "revoked_ssh_certs").await? {
            let row = RowName::new("revoked_ssh_certs", &key);
            let revocation = revocation(&row, &value)?;
            if revocation.serial.parse::<u64>().is_err() {
                return Err(row.malformed("the serial number is not a 64-bit number"));
            }
            records.ssh_revocations.push(revocation);
        }
        Ok(records)
    }

    /// Every row of a bucket; none when step-ca never created its table (older versions).
    async fn bucket(
        &self,
        connection: &mut AnyConnection,
        table: &'static str,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, Error> {
        // `table` is one of this module's constants.
        let rows = sqlx::query(AssertSqlSafe(format!("SELECT nkey, nvalue FROM {table}")))
            .fetch_all(&mut *connection)
            .await;
        let rows = match rows {
            Ok(rows) => rows,
            Err(error) if crate::networked::is_missing_table(&error) => return Ok(Vec::new()),
            Err(error) => return Err(self.failed(table, error)),
        };
        rows.iter()
            .map(|row| {
                let key: Vec<u8> = row.try_get(0)?;
                let value: Vec<u8> = row.try_get(1)?;
                Ok((key, value))
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(|e| self.failed(table, e))
    }

    fn failed(&self, table: &str, error: sqlx::Error) -> Error {
        Error::Import(format!(
            "reading table {table} of step-ca database {}: {error}",
            self.name
        ))
    }
}

/// Whether the database behind `connection` holds step-ca's tables.
pub(crate) async fn has_step_tables(connection: &mut AnyConnection) -> Result<bool, sqlx::Error> {
    match sqlx::query("SELECT nkey FROM x509_certs WHERE 1 = 0")
        .fetch_optional(&mut *connection)
        .await
    {
        Ok(_) => Ok(true),
        Err(error) if crate::networked::is_missing_table(&error) => Ok(false),
        Err(error) => Err(error),
    }
}

/// What step-ca recorded, decoded.
#[derive(Debug, Clone, Default)]
pub struct StepRecords {
    pub certificates: Vec<IssuedCertificate>,
    pub revocations: Vec<Revocation>,
    pub used_tokens: Vec<UsedToken>,
    pub ssh_certificates: Vec<IssuedSshCertificate>,
    pub ssh_revocations: Vec<Revocation>,
}

/// How many records an import wrote, and how many were there already.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub certificates: Counted,
    pub revocations: Counted,
    pub used_tokens: Counted,
    pub ssh_certificates: Counted,
    pub ssh_revocations: Counted,
    /// Revocations of serials step-ca holds no certificate for: nothing to attach them to.
    /// mayfly-ca refuses to renew a certificate it has no record of anyway.
    pub orphan_revocations: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counted {
    pub imported: u64,
    pub present: u64,
}

impl Counted {
    fn add(&mut self, imported: bool) {
        if imported {
            self.imported += 1;
        } else {
            self.present += 1;
        }
    }
}

impl StepRecords {
    /// Writes the records into `store`: certificates, then revocations, then used tokens.
    /// `source` names the step-ca database in the audit entries.
    pub async fn import_into(&self, store: &AnyStore, source: &str) -> Result<ImportReport, Error> {
        let mut report = ImportReport::default();
        let detail = format!("imported from step-ca database {source}");
        let certs = store.full();
        for certificate in &self.certificates {
            let audit = AuditContext::without_client(
                AuditAction::Issued,
                certificate.not_before,
                CREDENTIAL,
                detail.clone(),
            );
            let serial = &certificate.serial;
            let imported = match certs.record_issuance(certificate, None, &audit).await {
                Ok(()) => true,
                Err(StoreError::SerialTaken { .. }) => {
                    let stored = certs
                        .certificate(serial)
                        .await
                        .map_err(|e| write_failed("certificate", serial, e))?;
                    if stored.is_none_or(|s| s.certificate.der != certificate.der) {
                        return Err(Error::Import(format!(
                            "certificate {serial}: mayfly's store holds another certificate with \
                             this serial number"
                        )));
                    }
                    false
                }
                Err(e) => return Err(write_failed("certificate", serial, e)),
            };
            report.certificates.add(imported);
        }
        for revocation in &self.revocations {
            let audit = revocation_audit(revocation, &detail)?;
            match certs.revoke(revocation, None, &audit).await {
                Ok(()) => report.revocations.add(true),
                Err(StoreError::AlreadyRevoked { .. }) => report.revocations.add(false),
                Err(StoreError::CertificateNotFound { .. }) => {
                    report.orphan_revocations.push(revocation.serial.clone());
                }
                Err(e) => return Err(write_failed("revocation of", &revocation.serial, e)),
            }
        }
        let ssh = store.ssh_store();
        for certificate in &self.ssh_certificates {
            let audit = AuditContext::without_client(
                AuditAction::SshIssued,
                certificate.valid_after,
                CREDENTIAL,
                detail.clone(),
            );
            let serial = certificate.serial.to_string();
            let imported = match ssh.record_ssh_issuance(certificate, None, &audit).await {
                Ok(()) => true,
                Err(StoreError::SerialTaken { .. }) => {
                    let stored = ssh
                        .ssh_certificate(certificate.serial)
                        .await
                        .map_err(|e| write_failed("SSH certificate", &serial, e))?;
                    if stored.is_none_or(|s| s.certificate.blob != certificate.blob) {
                        return Err(Error::Import(format!(
                            "SSH certificate {serial}: mayfly's store holds another certificate \
                             with this serial number"
                        )));
                    }
                    false
                }
                Err(e) => return Err(write_failed("SSH certificate", &serial, e)),
            };
            report.ssh_certificates.add(imported);
        }
        for revocation in &self.ssh_revocations {
            let mut audit = revocation_audit(revocation, &detail)?;
            audit.action = AuditAction::SshRevoked;
            match ssh.revoke_ssh(revocation, None, &audit).await {
                Ok(()) => report.ssh_revocations.add(true),
                Err(StoreError::AlreadyRevoked { .. }) => report.ssh_revocations.add(false),
                Err(StoreError::CertificateNotFound { .. }) => {
                    report.orphan_revocations.push(revocation.serial.clone());
                }
                Err(e) => {
                    return Err(write_failed(
                        "revocation of SSH certificate",
                        &revocation.serial,
                        e,
                    ));
                }
            }
        }
        let new = store
            .import_used_tokens(&self.used_tokens)
            .await
            .map_err(|e| Error::Import(format!("recording used tokens: {e}")))?;
        let total = u64::try_from(self.used_tokens.len()).unwrap_or(u64::MAX);
        report.used_tokens = Counted {
            imported: new,
            present: total.saturating_sub(new),
        };
        Ok(report)
    }
}

fn write_failed(what: &str, serial: &str, error: StoreError) -> Error {
    Error::Import(format!(
        "writing {what} {serial} into mayfly's store: {error}"
    ))
}

fn revocation_audit(revocation: &Revocation, detail: &str) -> Result<AuditContext, Error> {
    let code = ReasonCode::from_code(i64::from(revocation.reason_code))
        .map_err(|e| Error::Import(format!("revocation of {}: {e}", revocation.serial)))?;
    Ok(AuditContext::without_client(
        AuditAction::Revoked,
        revocation.revoked_at,
        CREDENTIAL,
        format!("{}; {detail}", revocation_detail(code, &revocation.reason)),
    ))
}

/// A row, by table and key, for messages.
struct RowName {
    table: &'static str,
    key: String,
}

impl RowName {
    fn new(table: &'static str, key: &[u8]) -> RowName {
        RowName {
            table,
            key: String::from_utf8_lossy(key).into_owned(),
        }
    }

    fn malformed(&self, why: impl std::fmt::Display) -> Error {
        Error::Import(format!(
            "step-ca database: {}/{}: {why}",
            self.table, self.key
        ))
    }
}

/// `x509_certs_data`'s provisioner name, when it gives one.
fn provisioner_from_data(row: &RowName, value: &[u8]) -> Result<Option<String>, Error> {
    #[derive(Deserialize)]
    struct Data {
        provisioner: Option<Provisioner>,
    }
    #[derive(Deserialize)]
    struct Provisioner {
        name: String,
    }
    let data: Data = serde_json::from_slice(value)
        .map_err(|e| row.malformed(format!("x509_certs_data is not step's JSON: {e}")))?;
    Ok(data.provisioner.map(|p| p.name))
}

fn certificate(
    row: &RowName,
    der: &[u8],
    provisioner: Option<String>,
) -> Result<IssuedCertificate, Error> {
    let info = mayfly_pki::cert::CertificateInfo::from_der(der)
        .map_err(|e| row.malformed(format!("not a DER certificate: {e}")))?;
    let serial = info.serial.to_decimal();
    if serial != row.key {
        return Err(row.malformed(format!(
            "the certificate's serial number is {serial}, not its key"
        )));
    }
    // Newer step-ca records the provisioner beside the certificate; every step-ca writes it in
    // the certificate's provisioner extension, which is what renewal matches on.
    let provisioner = provisioner
        .or(info.provisioner.map(|p| p.name))
        .unwrap_or_default();
    Ok(IssuedCertificate {
        serial,
        der: der.to_vec(),
        subject: info.common_name,
        sans: info.sans.iter().map(ToString::to_string).collect(),
        not_before: info.not_before,
        not_after: info.not_after,
        provisioner,
        // step-ca's certificates carry its one CRL URL, if any: the complete CRL lists them.
        crl_shard: None,
    })
}

/// step-ca's `RevokedCertificateInfo`, as Go's encoding/json writes it (field names as is).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StepRevocation {
    serial: String,
    #[serde(rename = "ProvisionerID", default)]
    provisioner_id: String,
    #[serde(default)]
    reason_code: i64,
    #[serde(default)]
    reason: String,
    /// RFC 3339, nanoseconds included.
    revoked_at: String,
    #[serde(rename = "MTLS", default)]
    mtls: bool,
    #[serde(rename = "ACME", default)]
    acme: bool,
}

fn revocation(row: &RowName, value: &[u8]) -> Result<Revocation, Error> {
    let step: StepRevocation = serde_json::from_slice(value)
        .map_err(|e| row.malformed(format!("not step's revocation record: {e}")))?;
    if step.serial != row.key {
        return Err(row.malformed(format!(
            "the record's serial number is {}, not its key",
            step.serial
        )));
    }
    let code = ReasonCode::from_code(step.reason_code).map_err(|e| row.malformed(e))?;
    let revoked_at = OffsetDateTime::parse(
        &step.revoked_at,
        &time::format_description::well_known::Rfc3339,
    )
    .map_err(|e| row.malformed(format!("RevokedAt {:?}: {e}", step.revoked_at)))?;
    let revoked_by = if step.mtls {
        "step-ca:mtls".to_owned()
    } else if step.acme {
        "step-ca:acme".to_owned()
    } else if step.provisioner_id.is_empty() {
        "step-ca".to_owned()
    } else {
        format!("step-ca:token:{}", step.provisioner_id)
    };
    Ok(Revocation {
        serial: step.serial,
        reason_code: code.code(),
        reason: step.reason,
        revoked_at,
        // step-ca's provisioner ids have no length bound: cut to the column as every
        // revocation is.
        revoked_by: mayfly_authority::revocation::revoked_by_column(&revoked_by),
    })
}

/// A used token: its id as step-ca kept it, the issuer (the provisioner's name, for the JWK
/// tokens mayfly verifies) and expiry from its claims. The signature is not checked: step-ca
/// checked it when the token was used, and the token only serves to be refused again.
fn used_token(row: &RowName, value: &[u8]) -> Result<UsedToken, Error> {
    use base64::Engine;
    #[derive(Deserialize)]
    struct Claims {
        #[serde(default)]
        iss: String,
        #[serde(default)]
        jti: String,
        exp: i64,
    }
    let token = std::str::from_utf8(value).map_err(|_| row.malformed("the token is not text"))?;
    let payload = token
        .split('.')
        .nth(1)
        .ok_or_else(|| row.malformed("the token is not a JWT"))?;
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|e| row.malformed(format!("the token's claims are not base64url: {e}")))?;
    let claims: Claims = serde_json::from_slice(&payload)
        .map_err(|e| row.malformed(format!("the token's claims: {e}")))?;
    let expires_at = OffsetDateTime::from_unix_timestamp(claims.exp)
        .map_err(|e| row.malformed(format!("the token's exp: {e}")))?;
    // step-ca keys a JWK token by its jti; other kinds by an id of their own.
    let jti = if claims.jti.is_empty() {
        row.key.clone()
    } else {
        claims.jti
    };
    for (what, text) in [("jti", &jti), ("issuer", &claims.iss)] {
        if text.chars().count() > crate::MAX_JTI_LEN {
            return Err(row.malformed(format!(
                "the token's {what} is longer than {} characters",
                crate::MAX_JTI_LEN
            )));
        }
    }
    Ok(UsedToken {
        jti,
        provisioner: claims.iss,
        expires_at,
    })
}

fn ssh_certificate(row: &RowName, blob: &[u8]) -> Result<IssuedSshCertificate, Error> {
    let certificate = mayfly_pki::ssh::cert::SshCertificate::from_blob(blob)
        .map_err(|e| row.malformed(format!("not an SSH certificate: {e}")))?;
    let template = &certificate.template;
    if template.serial.to_string() != row.key {
        return Err(row.malformed(format!(
            "the certificate's serial number is {}, not its key",
            template.serial
        )));
    }
    // OpenSSH's "forever" (2^64 - 1) is past what a date can hold: the latest one stands in.
    let at = |seconds: u64| {
        i64::try_from(seconds)
            .ok()
            .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
            .unwrap_or(time::PrimitiveDateTime::MAX.assume_utc())
    };
    Ok(IssuedSshCertificate {
        serial: template.serial,
        cert_type: template.cert_type,
        key_id: template.key_id.clone(),
        principals: template.principals.clone(),
        valid_after: at(template.valid_after),
        valid_before: at(template.valid_before),
        blob: certificate.blob().to_vec(),
        // step-ca does not record which provisioner signed an SSH certificate.
        provisioner: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(table: &'static str, key: &str) -> RowName {
        RowName::new(table, key.as_bytes())
    }

    #[test]
    fn step_revocation_records_decode() {
        let value = br#"{"Serial":"42","ProvisionerID":"admin:kid","ReasonCode":1,"Reason":"key lost","RevokedAt":"2026-12-04T16:55:42.814443746Z","TokenID":"t","MTLS":false,"ACME":false}"#;
        let decoded = revocation(&row("revoked_x509_certs", "42"), value).unwrap();
        assert_eq!(decoded.serial, "42");
        assert_eq!(decoded.reason_code, 1);
        assert_eq!(decoded.reason, "key lost");
        assert_eq!(decoded.revoked_by, "step-ca:token:admin:kid");
        assert_eq!(decoded.revoked_at.unix_timestamp(), 1_796_403_342);
        // A provisioner id of any length fits the column.
        let long = format!(
            r#"{{"Serial":"43","ProvisionerID":"{}","ReasonCode":1,"RevokedAt":"2026-12-04T16:55:42Z"}}"#,
            "p".repeat(300)
        );
        let decoded = revocation(&row("revoked_x509_certs", "43"), long.as_bytes()).unwrap();
        assert_eq!(decoded.revoked_by.chars().count(), 255);
        assert!(decoded.revoked_by.starts_with("step-ca:token:ppp"));
        for (value, expected) in [
            (
                &br#"{"Serial":"43","RevokedAt":"2026-12-04T16:55:42Z"}"#[..],
                "not its key",
            ),
            (
                &br#"{"Serial":"42","ReasonCode":7,"RevokedAt":"2026-12-04T16:55:42Z"}"#[..],
                "reason code 7",
            ),
            (&br#"{"Serial":"42"}"#[..], "RevokedAt"),
            (
                &br#"{"Serial":"42","RevokedAt":"yesterday"}"#[..],
                "RevokedAt \"yesterday\"",
            ),
            (&b"not json"[..], "not step's revocation record"),
        ] {
            let err = revocation(&row("revoked_x509_certs", "42"), value)
                .unwrap_err()
                .to_string();
            assert!(err.contains("revoked_x509_certs/42"), "{err}");
            assert!(err.contains(expected), "{err}");
        }
    }

    #[test]
    fn used_tokens_decode_from_their_claims() {
        use base64::Engine;
        let encode = |json: &str| {
            format!(
                "eyJhbGciOiJFUzI1NiJ9.{}.c2ln",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
            )
        };
        let token = encode(r#"{"iss":"admin","jti":"abc","exp":1796403342}"#);
        let used = used_token(&row("used_ott", "abc"), token.as_bytes()).unwrap();
        assert_eq!(
            (used.jti.as_str(), used.provisioner.as_str()),
            ("abc", "admin")
        );
        assert_eq!(used.expires_at.unix_timestamp(), 1_796_403_342);
        let token = encode(r#"{"iss":"x5c","exp":1796403342}"#);
        let used = used_token(&row("used_ott", "sha-key"), token.as_bytes()).unwrap();
        assert_eq!(used.jti, "sha-key");
        for (value, expected) in [
            ("no dots".to_owned(), "not a JWT"),
            ("a.!!!.c".to_owned(), "not base64url"),
            (encode(r#"{"iss":"admin"}"#), "missing field `exp`"),
        ] {
            let err = used_token(&row("used_ott", "k"), value.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("used_ott/k") && err.contains(expected),
                "{err}"
            );
        }
    }

    #[test]
    fn bad_certificates_and_data_are_named() {
        let err = certificate(&row("x509_certs", "1"), b"junk", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("x509_certs/1: not a DER certificate"), "{err}");
        let err = provisioner_from_data(&row("x509_certs_data", "1"), b"[]")
            .unwrap_err()
            .to_string();
        assert!(err.contains("x509_certs_data/1"), "{err}");
        let name = provisioner_from_data(
            &row("x509_certs_data", "1"),
            br#"{"provisioner":{"id":"admin:kid","name":"admin","type":"JWK"}}"#,
        )
        .unwrap();
        assert_eq!(name.as_deref(), Some("admin"));
        let err = ssh_certificate(&row("ssh_certs", "1"), b"junk")
            .unwrap_err()
            .to_string();
        assert!(err.contains("ssh_certs/1: not an SSH certificate"), "{err}");
    }

    #[test]
    fn badger_and_unknown_types_are_refused_with_the_way_forward() {
        let source = DataSource::new("/var/lib/step/db");
        let err = StepDatabase::new("badgerv2", &source, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("badger-migration"), "{err}");
        let err = StepDatabase::new("bbolt", &source, None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("expected \"mysql\" or \"postgresql\""),
            "{err}"
        );
        let named = StepDatabase::new(
            "mysql",
            &DataSource::new("root:hunter2@tcp(127.0.0.1:3306)/"),
            Some("stepca"),
        )
        .unwrap();
        assert_eq!(named.name(), "mysql://root:***@127.0.0.1:3306/stepca");
    }
}
