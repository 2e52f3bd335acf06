//! Group commit of issuances, for SQLite and PostgreSQL.
//!
//! One writer task per store takes whatever issuances are queued (up to [`MAX_GROUP`]) and
//! records them in one transaction with one multi-row statement per table, so concurrent
//! requests share the transaction's round trips and its commit (one fsync on SQLite, one WAL
//! flush on PostgreSQL) instead of paying for them one by one. Every caller is answered only
//! after the commit: "durable before returned" holds for each. Each issuance keeps its own
//! outcome: a used token or a taken serial refuses that one only, while a backend failure fails
//! the whole group, since nothing of it is committed.
//!
//! The statements need `RETURNING` (after `ON CONFLICT DO NOTHING`, or MariaDB's `INSERT IGNORE`)
//! to learn which rows of a group went in; MySQL has none, so a MySQL store records each issuance
//! in a transaction of its own ([`crate::networked`]). Between instances nothing changes: a
//! group's token burns meet other instances' in the database, row by row, as single issuances
//! did.

use mayfly_authority::audit::AuditContext;
use mayfly_authority::store::{IssuedCertificate, StoreError, UsedToken};
use tokio::sync::{mpsc, oneshot};

use crate::Dialect;
use crate::codec::{self, Insert};

/// Most issuances committed in one transaction. Large enough that a burst of concurrent
/// requests shares one commit; small enough that the first in a group does not wait long, and
/// that a group's statements stay far below every engine's limit on bound values.
pub(crate) const MAX_GROUP: usize = 64;

/// How a store's writer task writes: its engine, how it begins a write transaction, and which
/// failures are worth running a group again for (a PostgreSQL deadlock victim).
#[derive(Clone, Copy)]
pub(crate) struct Writer {
    pub(crate) dialect: Dialect,
    pub(crate) begin: &'static str,
    pub(crate) retryable: fn(&sqlx::Error) -> bool,
}

/// An issuance on its way to the writer task.
pub(crate) struct Pending {
    certificate: IssuedCertificate,
    token: Option<UsedToken>,
    /// The names as the `sans` column holds them.
    sans: String,
    audit: AuditContext,
    reply: oneshot::Sender<Result<(), StoreError>>,
}

/// Queues an issuance for the writer task behind `queue` and waits for its outcome, which comes
/// after the group's commit.
pub(crate) async fn record(
    queue: &mpsc::Sender<Pending>,
    certificate: &IssuedCertificate,
    token: Option<&UsedToken>,
    audit: &AuditContext,
) -> Result<(), StoreError> {
    codec::check_lengths(certificate, token)?;
    let sans = codec::encode_sans(&certificate.sans)?;
    let (reply, answer) = oneshot::channel();
    let pending = Pending {
        certificate: certificate.clone(),
        token: token.cloned(),
        sans,
        audit: audit.clone(),
        reply,
    };
    let stopped = || StoreError::Backend("the store's writer task has stopped".into());
    queue.send(pending).await.map_err(|_| stopped())?;
    answer.await.map_err(|_| stopped())?
}

/// `insert` of `rows` rows, skipping the rows whose key is taken, and giving back `returning`
/// of the rows that went in.
fn insert_returning(dialect: Dialect, insert: &Insert, rows: usize, returning: &str) -> String {
    let insert = dialect.insert_unless_present(&insert.rows(rows));
    format!("{insert} RETURNING {returning}")
}

/// The token burns of `rows` issuances; the rows that went in come back.
fn tokens_insert(dialect: Dialect, rows: usize) -> String {
    insert_returning(dialect, &codec::USED_TOKEN, rows, "provisioner, jti")
}

/// The certificates of `rows` issuances; the serials that went in come back.
fn certificates_insert(dialect: Dialect, rows: usize) -> String {
    insert_returning(dialect, &codec::ISSUED_CERTIFICATE, rows, "serial")
}

/// Gives back the token of an issuance whose serial was taken, in the group's transaction.
const TOKEN_GIVEN_BACK: &str = "DELETE FROM used_tokens WHERE provisioner = ? AND jti = ?";

/// The writer task and its transaction, generated for each driver (as [`crate::shared`] is):
/// sqlx types a pool by its driver.
macro_rules! group_calls {
    ($db:ty) => {
        use std::collections::HashSet;

        use mayfly_authority::store::{CertificateStatus, StoreError};
        use sqlx::{AssertSqlSafe, Pool, Transaction};
        use time::OffsetDateTime;
        use tokio::sync::mpsc;

        use crate::bulk::audit_insert;
        use crate::codec::{self, backend};
        use crate::engine::RETRIES;
        use crate::group::{
            MAX_GROUP, Pending, TOKEN_GIVEN_BACK, Writer, certificates_insert, tokens_insert,
        };

        /// Starts the task that owns all writes of issuances on `pool`; see [`crate::group`].
        pub(crate) fn spawn_writer(pool: Pool<$db>, writer: Writer) -> mpsc::Sender<Pending> {
            let (queue, mut incoming) = mpsc::channel::<Pending>(4 * MAX_GROUP);
            tokio::spawn(async move {
                let mut group = Vec::with_capacity(MAX_GROUP);
                while incoming.recv_many(&mut group, MAX_GROUP).await > 0 {
                    let outcomes = commit_group(&pool, writer, &group).await;
                    for (pending, outcome) in group.drain(..).zip(outcomes) {
                        // A caller that went away still had its issuance recorded.
                        let _ = pending.reply.send(outcome);
                    }
                }
            });
            queue
        }

        /// Records a group in one transaction, run again from the start (up to
        /// [`RETRIES`] times) when the engine chose it as a deadlock victim.
        async fn commit_group(
            pool: &Pool<$db>,
            writer: Writer,
            group: &[Pending],
        ) -> Vec<Result<(), StoreError>> {
            let mut attempt = 0;
            loop {
                attempt += 1;
                let error = match try_group(pool, writer, group).await {
                    Ok(outcomes) => return outcomes,
                    Err(error) => error,
                };
                if attempt <= RETRIES && (writer.retryable)(&error) {
                    tracing::debug!(%error, attempt, "recording certificates: retrying");
                    continue;
                }
                let error = backend("recording certificates", error);
                return group
                    .iter()
                    .map(|_| Err(StoreError::Backend(error.to_string())))
                    .collect();
            }
        }

        /// One attempt: begin, the group's statements, commit; rolled back on a failure.
        async fn try_group(
            pool: &Pool<$db>,
            writer: Writer,
            group: &[Pending],
        ) -> Result<Vec<Result<(), StoreError>>, sqlx::Error> {
            let mut tx = pool.begin_with(writer.begin).await?;
            match record_group(&mut tx, writer.dialect, group).await {
                Ok(outcomes) => {
                    tx.commit().await?;
                    Ok(outcomes)
                }
                Err(error) => {
                    if let Err(rollback) = tx.rollback().await {
                        tracing::warn!(%rollback, "rolling back a failed group of issuances failed");
                    }
                    Err(error)
                }
            }
        }

        /// The statements of one group, inside its transaction: burn the tokens, insert the
        /// certificates of the issuances whose token was fresh, give back the tokens of any
        /// whose serial was taken, and write the audit entries of those stored.
        async fn record_group(
            tx: &mut Transaction<'static, $db>,
            dialect: crate::Dialect,
            group: &[Pending],
        ) -> Result<Vec<Result<(), StoreError>>, sqlx::Error> {
            let mut outcomes: Vec<Result<(), StoreError>> =
                group.iter().map(|_| Ok(())).collect();

            // Tokens. A jti twice in one group: the first use wins, as it would one at a time.
            let mut seen = HashSet::new();
            let mut burning = Vec::new();
            for (index, pending) in group.iter().enumerate() {
                if let Some(token) = &pending.token {
                    if seen.insert((token.provisioner.as_str(), token.jti.as_str())) {
                        burning.push(index);
                    } else {
                        outcomes[index] = Err(StoreError::TokenAlreadyUsed {
                            jti: token.jti.clone(),
                        });
                    }
                }
            }
            if !burning.is_empty() {
                let sql = tokens_insert(dialect, burning.len());
                let mut insert = sqlx::query_as::<_, (String, String)>(AssertSqlSafe(sql));
                for &index in &burning {
                    if let Some(token) = &group[index].token {
                        insert = insert
                            .bind(token.provisioner.as_str())
                            .bind(token.jti.as_str())
                            .bind(codec::to_unix(token.expires_at));
                    }
                }
                let burnt: HashSet<(String, String)> =
                    insert.fetch_all(&mut **tx).await?.into_iter().collect();
                for &index in &burning {
                    if let Some(token) = &group[index].token
                        && !burnt.contains(&(token.provisioner.clone(), token.jti.clone()))
                    {
                        outcomes[index] = Err(StoreError::TokenAlreadyUsed {
                            jti: token.jti.clone(),
                        });
                    }
                }
            }

            // Certificates of the issuances still standing.
            let storing: Vec<usize> = (0..group.len()).filter(|&i| outcomes[i].is_ok()).collect();
            if storing.is_empty() {
                return Ok(outcomes);
            }
            let created_at = codec::to_unix(OffsetDateTime::now_utc());
            let sql = certificates_insert(dialect, storing.len());
            let mut insert = sqlx::query_scalar::<_, String>(AssertSqlSafe(sql));
            for &index in &storing {
                let pending = &group[index];
                let certificate = &pending.certificate;
                insert = insert
                    .bind(certificate.serial.as_str())
                    .bind(certificate.der.as_slice())
                    .bind(certificate.subject.as_str())
                    .bind(pending.sans.as_str())
                    .bind(codec::to_unix(certificate.not_before))
                    .bind(codec::to_unix(certificate.not_after))
                    .bind(certificate.provisioner.as_str())
                    .bind(CertificateStatus::Valid.as_str())
                    .bind(created_at)
                    .bind(codec::shard_column(certificate.crl_shard));
            }
            let stored: HashSet<String> = insert.fetch_all(&mut **tx).await?.into_iter().collect();

            // A serial already taken (or twice in the group): refuse that issuance whole,
            // token included.
            let mut kept = HashSet::new();
            let mut audited = Vec::with_capacity(storing.len());
            for index in storing {
                let pending = &group[index];
                let serial = &pending.certificate.serial;
                if stored.contains(serial) && kept.insert(serial.as_str()) {
                    audited.push(pending);
                    continue;
                }
                if let Some(token) = &pending.token {
                    sqlx::query(dialect.sql(TOKEN_GIVEN_BACK))
                        .bind(token.provisioner.as_str())
                        .bind(token.jti.as_str())
                        .execute(&mut **tx)
                        .await?;
                }
                outcomes[index] = Err(StoreError::SerialTaken {
                    serial: serial.clone(),
                });
            }

            // The audit entries of the certificates stored, in the same transaction.
            if !audited.is_empty() {
                let mut insert =
                    sqlx::query(AssertSqlSafe(audit_insert(dialect, audited.len())));
                for pending in &audited {
                    let certificate = &pending.certificate;
                    let audit = &pending.audit;
                    insert = insert
                        .bind(codec::to_unix(audit.at))
                        .bind(audit.action.as_str())
                        .bind(certificate.serial.as_str())
                        .bind(certificate.subject.as_str())
                        .bind(pending.sans.as_str())
                        .bind(certificate.provisioner.as_str())
                        .bind(audit.credential.as_str())
                        .bind(codec::audit_address(audit))
                        .bind(audit.detail.as_str());
                }
                insert.execute(&mut **tx).await?;
            }
            Ok(outcomes)
        }
    };
}

/// For the SQLite store.
pub(crate) mod sqlite {
    group_calls!(sqlx::Sqlite);
}

/// For the PostgreSQL and MariaDB store, through the `Any` pool.
pub(crate) mod any {
    group_calls!(sqlx::Any);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_statements_number_their_placeholders_per_engine() {
        let sqlite = tokens_insert(Dialect::Sqlite, 2);
        assert_eq!(
            sqlite,
            "INSERT INTO used_tokens (provisioner, jti, expires_at) VALUES (?, ?, ?), (?, ?, ?) \
             ON CONFLICT DO NOTHING RETURNING provisioner, jti"
        );
        let postgres = certificates_insert(Dialect::Postgres, 3);
        assert!(
            postgres.contains("$30) ON CONFLICT DO NOTHING RETURNING serial"),
            "{postgres}"
        );
        assert!(!postgres.contains('?'));
        let mariadb = tokens_insert(Dialect::MySql, 2);
        assert_eq!(
            mariadb,
            "INSERT IGNORE INTO used_tokens (provisioner, jti, expires_at) \
             VALUES (?, ?, ?), (?, ?, ?) RETURNING provisioner, jti"
        );
        // The largest group stays far below SQLite's limit on bound values.
        const { assert!(MAX_GROUP * 10 < 32_766) };
    }
}
