//! Conversions between the authority's types and the columns of the portable schema.
//!
//! Kept apart from any one backend so that every backend encodes a certificate the same way and
//! refuses the same inputs: a database written by one must read back identically through another.

use mayfly_authority::audit::{AuditAction, AuditContext, AuditEntry, AuditQuery};
use mayfly_authority::store::{
    CertificatePage, CertificateStatus, CrlScopeName, CrlShard, IssuedCertificate, ListStatus,
    Revocation, RevocationNews, RevocationSeq, RevokedEntry, RevokedKey, RevokedQuery, StoreCounts,
    StoreError, StoredCertificate, StoredCrl, UsedToken,
};
use time::OffsetDateTime;

use crate::{MAX_JTI_LEN, MAX_PROVISIONER_LEN, MAX_SERIAL_LEN};

/// Refuses keys longer than the schema's `VARCHAR` columns.
///
/// SQLite would store them anyway and MySQL in non-strict mode would silently truncate them (so
/// two distinct `jti`s could collide); checking here makes all backends agree.
pub(crate) fn check_lengths(
    certificate: &IssuedCertificate,
    token: Option<&UsedToken>,
) -> Result<(), StoreError> {
    check_length("serial number", &certificate.serial, MAX_SERIAL_LEN)?;
    check_length(
        "provisioner name",
        &certificate.provisioner,
        MAX_PROVISIONER_LEN,
    )?;
    if let Some(token) = token {
        check_token_lengths(token)?;
    }
    Ok(())
}

/// [`check_lengths`] for a token alone.
pub(crate) fn check_token_lengths(token: &UsedToken) -> Result<(), StoreError> {
    check_length("token jti", &token.jti, MAX_JTI_LEN)?;
    check_length(
        "token provisioner name",
        &token.provisioner,
        MAX_PROVISIONER_LEN,
    )
}

fn check_length(what: &str, value: &str, max: usize) -> Result<(), StoreError> {
    // VARCHAR(n) counts characters in PostgreSQL and MySQL, not bytes.
    let length = value.chars().count();
    if length > max {
        return Err(StoreError::Backend(format!(
            "{what} is {length} characters long; at most {max} can be stored"
        )));
    }
    Ok(())
}

/// Unix seconds. Sub-second parts are dropped: X.509 times carry whole seconds only, and flooring
/// never makes a token's recorded expiry later than the real one.
pub(crate) fn to_unix(instant: OffsetDateTime) -> i64 {
    instant.unix_timestamp()
}

pub(crate) fn from_unix(
    column: &str,
    serial: &str,
    seconds: i64,
) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp(seconds).map_err(|error| {
        StoreError::Backend(format!(
            "certificate {serial}: column {column} holds {seconds}, not a usable time: {error}"
        ))
    })
}

pub(crate) fn encode_sans(sans: &[String]) -> Result<String, StoreError> {
    serde_json::to_string(sans)
        .map_err(|error| StoreError::Backend(format!("cannot encode the SAN list: {error}")))
}

pub(crate) fn decode_sans(serial: &str, text: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(|error| {
        StoreError::Backend(format!(
            "certificate {serial}: column sans is not a JSON array of strings: {error}"
        ))
    })
}

pub(crate) fn decode_status(serial: &str, text: &str) -> Result<CertificateStatus, StoreError> {
    CertificateStatus::parse(text).ok_or_else(|| {
        StoreError::Backend(format!(
            "certificate {serial}: column status holds unknown status {text:?}"
        ))
    })
}

/// A backend failure with what was being done, for the logs.
pub(crate) fn backend(context: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("{context}: {error}"))
}

/// Every column of a stored certificate, as [`stored_from_row`] reads them.
macro_rules! certificate_columns {
    () => {
        "serial, der, subject, sans, not_before, not_after, provisioner, status, revoked_at, \
         revocation_reason, revocation_text, revoked_by, crl_shard"
    };
}

/// A stored certificate by serial (one `?`).
pub(crate) const SELECT_CERTIFICATE: &str = concat!(
    "SELECT ",
    certificate_columns!(),
    " FROM certificates WHERE serial = ?"
);

/// A page of certificates: binds the serial to start after (`""` for the first page), then the
/// listing's `now` when `status` is active or expired, then the limit.
pub(crate) fn list_query(status: Option<ListStatus>) -> &'static str {
    match status {
        None => concat!(
            "SELECT ",
            certificate_columns!(),
            " FROM certificates WHERE serial > ? ORDER BY serial LIMIT ?"
        ),
        Some(ListStatus::Active) => concat!(
            "SELECT ",
            certificate_columns!(),
            " FROM certificates WHERE serial > ? AND status = 'valid' AND not_after >= ? \
             ORDER BY serial LIMIT ?"
        ),
        Some(ListStatus::Expired) => concat!(
            "SELECT ",
            certificate_columns!(),
            " FROM certificates WHERE serial > ? AND status = 'valid' AND not_after < ? \
             ORDER BY serial LIMIT ?"
        ),
        Some(ListStatus::Revoked) => concat!(
            "SELECT ",
            certificate_columns!(),
            " FROM certificates WHERE serial > ? AND status = 'revoked' ORDER BY serial LIMIT ?"
        ),
    }
}

/// Whether [`list_query`] for `status` binds a `now`.
pub(crate) fn list_binds_now(status: Option<ListStatus>) -> bool {
    matches!(status, Some(ListStatus::Active | ListStatus::Expired))
}

/// Deletes used-token records whose token expired before the bound time.
pub(crate) const PRUNE_USED_TOKENS: &str = "DELETE FROM used_tokens WHERE expires_at < ?";

/// Deletes certificates expired before the bound time.
pub(crate) const PRUNE_CERTIFICATES: &str = "DELETE FROM certificates WHERE not_after < ?";

/// Both row counts in one statement.
pub(crate) const COUNTS: &str =
    "SELECT (SELECT COUNT(*) FROM certificates), (SELECT COUNT(*) FROM used_tokens)";

/// Takes a free lease: name, holder, until.
pub(crate) const LEASE_INSERT: &str = "leases (name, holder, expires_at) VALUES (?, ?, ?)";

/// Takes an expired lease or extends one's own: holder, until, name, holder, now.
pub(crate) const LEASE_UPDATE: &str = "UPDATE leases SET holder = ?, expires_at = ? \
     WHERE name = ? AND (holder = ? OR expires_at < ?)";

/// Row counts from the two `COUNT(*)`s of [`COUNTS`].
pub(crate) fn counts(certificates: i64, used_tokens: i64) -> StoreCounts {
    StoreCounts {
        certificates: u64::try_from(certificates).unwrap_or(0),
        used_tokens: u64::try_from(used_tokens).unwrap_or(0),
    }
}

/// The limit of a page as the engines bind it.
pub(crate) fn page_limit(page: &CertificatePage) -> i64 {
    i64::from(page.limit)
}

/// Marks a valid certificate revoked: status, time, reason code, reason text, requester, serial,
/// and the status it must still have (so a second revocation changes nothing).
/// The revocation takes the number [`REVOCATION_SEQ_BUMP`] just took, in the same transaction.
pub(crate) const REVOKE: &str = "UPDATE certificates SET status = ?, revoked_at = ?, revocation_reason = ?, \
     revocation_text = ?, revoked_by = ?, \
     revocation_seq = (SELECT revocation_seq FROM crl_state WHERE id = 1) \
     WHERE serial = ? AND status = ?";

/// Takes the next revocation number. Its row lock, held to the commit, makes revocations on
/// every instance take numbers one after another and commit in that order (schema 11).
pub(crate) const REVOCATION_SEQ_BUMP: &str =
    "UPDATE crl_state SET revocation_seq = revocation_seq + 1 WHERE id = 1";
/// Takes as many numbers as the binding says at once (a bulk load's revocations).
pub(crate) const REVOCATION_SEQ_BUMP_BY: &str =
    "UPDATE crl_state SET revocation_seq = revocation_seq + ? WHERE id = 1";
/// The last revocation number taken.
pub(crate) const REVOCATION_SEQ: &str = "SELECT revocation_seq FROM crl_state WHERE id = 1";
/// The revocations numbered after the one `?`, in their order: a row of [`REVOKED`] and the
/// number.
pub(crate) const REVOCATIONS_AFTER: &str = "SELECT serial, revoked_at, revocation_reason, not_after, \
     crl_shard, revocation_seq FROM certificates WHERE revocation_seq IS NOT NULL \
     AND revocation_seq > ? ORDER BY revocation_seq";

/// A revocation number read back, which the schema keeps non-negative.
pub(crate) fn revocation_seq(seq: i64) -> Result<RevocationSeq, StoreError> {
    u64::try_from(seq).map(RevocationSeq).map_err(|_| {
        StoreError::Backend(format!("revocation number {seq} in the store is negative"))
    })
}

/// A row of [`REVOCATIONS_AFTER`].
pub(crate) type RevocationRow = (String, i64, Option<i64>, i64, Option<i64>, i64);

/// The rows of [`REVOCATIONS_AFTER`] and the last one's number, `after` when there is none.
pub(crate) fn revocation_news(
    after: RevocationSeq,
    rows: Vec<RevocationRow>,
) -> Result<RevocationNews, StoreError> {
    let mut last = after;
    let mut entries = Vec::with_capacity(rows.len());
    for (serial, revoked_at, reason, not_after, shard, seq) in rows {
        last = last.max(revocation_seq(seq)?);
        entries.push(revoked_entry((
            serial, revoked_at, reason, not_after, shard,
        ))?);
    }
    Ok(RevocationNews { entries, last })
}

/// The statements of a revocation in one table of certificates; see [`X509_REVOCATION`].
pub(crate) struct RevocationStatements {
    /// What is revoked, for messages.
    pub(crate) what: &'static str,
    /// Marks a valid certificate revoked, binding as [`REVOKE`] does.
    pub(crate) update: &'static str,
    /// Whether the serial is there at all (one `?`), to say why nothing was updated.
    pub(crate) status: &'static str,
    /// The audit entry, binding as [`AUDIT_REVOCATION`] does.
    pub(crate) audit: &'static str,
    /// Run first, when revocations of this kind are numbered ([`REVOCATION_SEQ_BUMP`]).
    pub(crate) number: Option<&'static str>,
}

/// An X.509 certificate's revocation.
pub(crate) const X509_REVOCATION: RevocationStatements = RevocationStatements {
    what: "certificate",
    update: REVOKE,
    status: "SELECT status FROM certificates WHERE serial = ?",
    audit: AUDIT_REVOCATION,
    number: Some(REVOCATION_SEQ_BUMP),
};

/// Why a revocation that updated no row was refused.
pub(crate) fn revocation_refused(serial: &str, exists: bool) -> StoreError {
    if exists {
        StoreError::AlreadyRevoked {
            serial: serial.to_owned(),
        }
    } else {
        StoreError::CertificateNotFound {
            serial: serial.to_owned(),
        }
    }
}

/// A row of [`SELECT_CERTIFICATE`] (or of any query with its columns), from any backend.
pub(crate) fn stored_from_row<R>(row: &R, serial: &str) -> Result<StoredCertificate, StoreError>
where
    R: sqlx::Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let context = format!("reading certificate {serial}");
    let column = |e| backend(&context, e);
    let stored_serial: String = row.try_get("serial").map_err(column)?;
    let der: Vec<u8> = row.try_get("der").map_err(column)?;
    let subject: String = row.try_get("subject").map_err(column)?;
    let sans: String = row.try_get("sans").map_err(column)?;
    let not_before: i64 = row.try_get("not_before").map_err(column)?;
    let not_after: i64 = row.try_get("not_after").map_err(column)?;
    let provisioner: String = row.try_get("provisioner").map_err(column)?;
    let status: String = row.try_get("status").map_err(column)?;
    let revoked_at: Option<i64> = row.try_get("revoked_at").map_err(column)?;
    let reason_code: Option<i64> = row.try_get("revocation_reason").map_err(column)?;
    let reason: Option<String> = row.try_get("revocation_text").map_err(column)?;
    let revoked_by: Option<String> = row.try_get("revoked_by").map_err(column)?;
    let crl_shard: Option<i64> = row.try_get("crl_shard").map_err(column)?;
    let revocation = match revoked_at {
        Some(at) => Some(Revocation {
            serial: stored_serial.clone(),
            reason_code: decode_reason(serial, reason_code)?,
            reason: reason.unwrap_or_default(),
            revoked_at: from_unix("revoked_at", serial, at)?,
            revoked_by: revoked_by.unwrap_or_default(),
        }),
        None => None,
    };
    Ok(StoredCertificate {
        certificate: IssuedCertificate {
            sans: decode_sans(serial, &sans)?,
            not_before: from_unix("not_before", serial, not_before)?,
            not_after: from_unix("not_after", serial, not_after)?,
            serial: stored_serial,
            der,
            subject,
            provisioner,
            crl_shard: decode_shard(serial, crl_shard)?,
        },
        status: decode_status(serial, &status)?,
        revocation,
    })
}

/// A stored CRLReason code. A value outside 0..=255 means the row was written by something else
/// and is reported, never silently turned into "unspecified".
pub(crate) fn decode_reason(serial: &str, code: Option<i64>) -> Result<u8, StoreError> {
    let code = code.unwrap_or(0);
    u8::try_from(code).map_err(|_| {
        StoreError::Backend(format!(
            "certificate {serial}: stored revocation reason {code} is not a CRLReason"
        ))
    })
}

/// A stored CRL shard: NULL for none, else an index [`CrlShard::new`] accepts.
pub(crate) fn decode_shard(
    serial: &str,
    shard: Option<i64>,
) -> Result<Option<CrlShard>, StoreError> {
    shard
        .map(|index| {
            u16::try_from(index)
                .ok()
                .and_then(CrlShard::new)
                .ok_or_else(|| {
                    StoreError::Backend(format!(
                        "certificate {serial}: stored CRL shard {index} is out of range"
                    ))
                })
        })
        .transpose()
}

/// The column value of a shard.
pub(crate) fn shard_column(shard: Option<CrlShard>) -> Option<i64> {
    shard.map(|shard| i64::from(shard.index()))
}

/// Revoked certificates for a CRL: binds the earliest revocation time, then the instant they must
/// still be valid at (`i64::MIN` for "any").
pub(crate) const REVOKED: &str = "SELECT serial, revoked_at, revocation_reason, not_after, crl_shard \
     FROM certificates WHERE revoked_at IS NOT NULL AND revoked_at >= ? AND not_after >= ?";

/// [`REVOKED`] of one shard: binds the shard after its two bounds.
pub(crate) const REVOKED_IN_SHARD: &str = "SELECT serial, revoked_at, revocation_reason, not_after, \
     crl_shard FROM certificates WHERE crl_shard = ? AND revoked_at IS NOT NULL AND revoked_at >= ? \
     AND not_after >= ?";

/// [`REVOKED`] on SQLite, where sqlx hands every row from its worker thread to the caller one
/// message at a time (about 2 µs a row, most of a million-entry CRL): up to
/// [`REVOKED_CHUNK`] rows as one text, a line per row (`revoked_at serial not_after reason
/// shard`, `-` for NULL), after the key (revoked_at, serial) of the last row of the previous
/// chunk, in the order of the covering index. Binds: after revoked_at, after serial, since,
/// unexpired, then the shard for [`REVOKED_CHUNK_IN_SHARD`].
pub(crate) const REVOKED_CHUNK: &str = "SELECT group_concat(revoked_at || ' ' || serial || ' ' || \
     not_after || ' ' || IFNULL(revocation_reason, '-') || ' ' || IFNULL(crl_shard, '-'), \
     char(10) ORDER BY revoked_at, serial) FROM (SELECT revoked_at, serial, not_after, \
     revocation_reason, crl_shard FROM certificates WHERE revoked_at IS NOT NULL \
     AND (revoked_at, serial) > (?, ?) AND revoked_at >= ? AND not_after >= ? \
     ORDER BY revoked_at, serial LIMIT 20000)";
/// A page of [`REVOKED`] on PostgreSQL, in the covering index's order, after a key: binds
/// after revoked_at, after serial, then unexpired. The row comparison is what PostgreSQL scans
/// an index in order from; spelled out with `OR` it sorts every revoked row for each page.
pub(crate) const REVOKED_PAGE: &str = "SELECT serial, revoked_at, revocation_reason, not_after, \
     crl_shard FROM certificates WHERE revoked_at IS NOT NULL AND (revoked_at, serial) > (?, ?) \
     AND not_after >= ? ORDER BY revoked_at, serial LIMIT 20000";
/// [`REVOKED_PAGE`] for MySQL, which scans a range only from a plain bound: binds after
/// revoked_at twice, after serial, then unexpired.
pub(crate) const REVOKED_PAGE_MYSQL: &str = "SELECT serial, revoked_at, revocation_reason, \
     not_after, crl_shard FROM certificates WHERE revoked_at IS NOT NULL AND revoked_at >= ? \
     AND (revoked_at > ? OR serial > ?) AND not_after >= ? ORDER BY revoked_at, serial LIMIT 20000";

/// [`REVOKED_CHUNK`] of one shard.
pub(crate) const REVOKED_CHUNK_IN_SHARD: &str = "SELECT group_concat(revoked_at || ' ' || serial \
     || ' ' || not_after || ' ' || IFNULL(revocation_reason, '-') || ' ' || IFNULL(crl_shard, '-'), \
     char(10) ORDER BY revoked_at, serial) FROM (SELECT revoked_at, serial, not_after, \
     revocation_reason, crl_shard FROM certificates WHERE revoked_at IS NOT NULL \
     AND (revoked_at, serial) > (?, ?) AND revoked_at >= ? AND not_after >= ? AND crl_shard = ? \
     ORDER BY revoked_at, serial LIMIT 20000)";
/// Rows a [`REVOKED_CHUNK`] holds at most.
pub(crate) const REVOKED_CHUNK_ROWS: usize = 20_000;

/// The rows of one [`REVOKED_CHUNK`] text, appended to `entries`; the key of the last one.
pub(crate) fn revoked_chunk(
    text: &str,
    entries: &mut Vec<RevokedEntry>,
) -> Result<Option<(i64, String)>, StoreError> {
    let mut last = None;
    for line in text.lines() {
        let bad = || StoreError::Backend(format!("a revoked certificate's row {line:?}"));
        let mut fields = line.split(' ');
        let mut next = || fields.next().ok_or_else(bad);
        let revoked_at: i64 = next()?.parse().map_err(|_| bad())?;
        let serial = next()?.to_owned();
        let not_after: i64 = next()?.parse().map_err(|_| bad())?;
        let optional = |field: &str| -> Result<Option<i64>, StoreError> {
            match field {
                "-" => Ok(None),
                number => number.parse().map(Some).map_err(|_| bad()),
            }
        };
        let reason = optional(next()?)?;
        let shard = optional(next()?)?;
        let entry = revoked_entry((serial, revoked_at, reason, not_after, shard))?;
        last = Some((revoked_at, entry.serial.clone()));
        entries.push(entry);
    }
    Ok(last)
}

/// Remembers a shard's URL unless it is remembered already (an insert that ignores conflicts).
pub(crate) const CRL_URL_INSERT: &str = "crl_urls (url, shard, first_used) VALUES (?, ?, ?)";
/// Every remembered shard URL, oldest first.
pub(crate) const CRL_URLS: &str = "SELECT shard, url FROM crl_urls ORDER BY first_used, url";

/// A row of [`CRL_URLS`].
pub(crate) fn crl_url((shard, url): (i64, String)) -> Result<(CrlShard, String), StoreError> {
    let shard = decode_shard(&url, Some(shard))?
        .ok_or_else(|| StoreError::Backend(format!("CRL URL {url}: no shard stored")))?;
    Ok((shard, url))
}

/// The key of the last entry of a full page, where the next one starts.
pub(crate) fn next_page(entries: &[RevokedEntry]) -> Option<RevokedKey> {
    if entries.len() < REVOKED_CHUNK_ROWS {
        return None;
    }
    entries.last().map(|entry| RevokedKey {
        revoked_at: entry.revoked_at,
        serial: entry.serial.clone(),
    })
}

/// The key [`REVOKED_PAGE`] and [`REVOKED_CHUNK`] bind for the first page.
pub(crate) fn page_after(after: Option<&RevokedKey>) -> (i64, String) {
    after.map_or((i64::MIN, String::new()), |key| {
        (to_unix(key.revoked_at), key.serial.clone())
    })
}

/// The bounds [`REVOKED`] binds for `query`.
pub(crate) fn revoked_bounds(query: &RevokedQuery) -> (i64, i64) {
    (
        query.revoked_since.map_or(i64::MIN, to_unix),
        query.unexpired_at.map_or(i64::MIN, to_unix),
    )
}

/// A row of [`REVOKED`].
pub(crate) fn revoked_entry(
    (serial, revoked_at, reason, not_after, shard): (String, i64, Option<i64>, i64, Option<i64>),
) -> Result<RevokedEntry, StoreError> {
    Ok(RevokedEntry {
        revoked_at: from_unix("revoked_at", &serial, revoked_at)?,
        not_after: from_unix("not_after", &serial, not_after)?,
        reason_code: decode_reason(&serial, reason)?,
        crl_shard: decode_shard(&serial, shard)?,
        serial,
    })
}

/// Bumps the CRL number; run with [`CRL_NUMBER`] in one transaction, so concurrent callers (on
/// any instance) queue on the row lock and each reads its own number.
pub(crate) const CRL_NUMBER_BUMP: &str =
    "UPDATE crl_state SET crl_number = crl_number + 1 WHERE id = 1";
/// Reads the CRL number just taken.
pub(crate) const CRL_NUMBER: &str = "SELECT crl_number FROM crl_state WHERE id = 1";

/// The CRL number read back, which the schema keeps non-negative.
pub(crate) fn crl_number(number: i64) -> Result<u64, StoreError> {
    u64::try_from(number).map_err(|_| {
        StoreError::Backend(format!(
            "taking the next CRL number: stored number {number} is negative"
        ))
    })
}

/// The kept CRL of `scope` from its row's columns and its DER.
pub(crate) fn stored_crl(
    scope: CrlScopeName,
    (number, this_update, next_update, der): (i64, i64, i64, Vec<u8>),
) -> Result<StoredCrl, StoreError> {
    let what = format!("{} CRL", scope.key());
    Ok(StoredCrl {
        scope,
        number: crl_number(number)?,
        this_update: from_unix("this_update", &what, this_update)?,
        next_update: from_unix("next_update", &what, next_update)?,
        der,
    })
}

/// A CRL number as the engines bind it.
pub(crate) fn crl_number_column(number: u64) -> Result<i64, StoreError> {
    i64::try_from(number)
        .map_err(|_| StoreError::Backend(format!("CRL number {number} does not fit the schema")))
}

/// Appends an audit entry: at, action, serial, subject, SANs (JSON), provisioner, credential,
/// address, detail.
pub(crate) const AUDIT_INSERT: &str = "INSERT INTO audit_log \
     (at, action, serial, subject, sans, provisioner, credential, address, detail) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// A table and the columns a write fills, as `INSERT INTO` continues, and one row's
/// placeholders: the same insert for one row or many.
pub(crate) struct Insert {
    pub(crate) into: &'static str,
    pub(crate) row: &'static str,
}

impl Insert {
    /// `{into} VALUES` and `rows` rows, `?` placeholders (see [`crate::Dialect::placeholders`]).
    pub(crate) fn rows(&self, rows: usize) -> String {
        format!("{} VALUES {}", self.into, vec![self.row; rows].join(", "))
    }
}

/// The certificate row an issuance writes.
pub(crate) const ISSUED_CERTIFICATE: Insert = Insert {
    into: "certificates (serial, der, subject, sans, not_before, not_after, provisioner, status, \
           created_at, crl_shard)",
    row: "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
};

/// The record of a one-time token's use.
pub(crate) const USED_TOKEN: Insert = Insert {
    into: "used_tokens (provisioner, jti, expires_at)",
    row: "(?, ?, ?)",
};

/// The columns of [`AUDIT_INSERT`], for a multi-row insert.
pub(crate) const AUDIT_COLUMNS: &str = "INSERT INTO audit_log \
     (at, action, serial, subject, sans, provisioner, credential, address, detail) ";

/// Appends a revocation's audit entry with the certificate's own columns copied from its row, in
/// the revocation's transaction: at, action, credential, address, detail, serial.
pub(crate) const AUDIT_REVOCATION: &str = "INSERT INTO audit_log \
     (at, action, serial, subject, sans, provisioner, credential, address, detail) \
     SELECT ?, ?, serial, subject, sans, provisioner, ?, ?, ? FROM certificates WHERE serial = ?";

/// [`AUDIT_REVOCATION`] for an SSH certificate: its key id and principals stand for subject
/// and SANs.
pub(crate) const AUDIT_SSH_REVOCATION: &str = "INSERT INTO audit_log \
     (at, action, serial, subject, sans, provisioner, credential, address, detail) \
     SELECT ?, ?, serial, key_id, principals, provisioner, ?, ?, ? FROM ssh_certificates \
     WHERE serial = ?";

/// A page of the audit log: binds the id to start after, the earliest time, (the serial when
/// `by_serial`), then the limit.
pub(crate) fn audit_query(by_serial: bool) -> &'static str {
    if by_serial {
        "SELECT id, at, action, serial, subject, sans, provisioner, credential, address, detail \
         FROM audit_log WHERE id > ? AND at >= ? AND serial = ? ORDER BY id LIMIT ?"
    } else {
        "SELECT id, at, action, serial, subject, sans, provisioner, credential, address, detail \
         FROM audit_log WHERE id > ? AND at >= ? ORDER BY id LIMIT ?"
    }
}

/// The bounds [`audit_query`] binds for `query`: after, since, limit.
pub(crate) fn audit_bounds(query: &AuditQuery) -> Result<(i64, i64, i64), StoreError> {
    let after = match query.after {
        Some(after) => i64::try_from(after)
            .map_err(|_| StoreError::Backend(format!("audit entry id {after} is out of range")))?,
        None => 0,
    };
    Ok((
        after,
        query.since.map_or(i64::MIN, to_unix),
        i64::from(query.limit),
    ))
}

/// The client address as the audit log stores it.
pub(crate) fn audit_address(audit: &AuditContext) -> String {
    audit.address.map(|a| a.to_string()).unwrap_or_default()
}

/// A row of [`audit_query`], from any backend.
pub(crate) fn audit_entry<R>(row: &R) -> Result<AuditEntry, StoreError>
where
    R: sqlx::Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let column = |e| backend("reading the audit log", e);
    let id: i64 = row.try_get("id").map_err(column)?;
    let at: i64 = row.try_get("at").map_err(column)?;
    let action: String = row.try_get("action").map_err(column)?;
    let serial: String = row.try_get("serial").map_err(column)?;
    let sans: String = row.try_get("sans").map_err(column)?;
    let what = format!("audit entry {id}");
    Ok(AuditEntry {
        id: u64::try_from(id).map_err(|_| StoreError::Backend(format!("{what}: negative id")))?,
        at: from_unix("at", &what, at)?,
        action: AuditAction::parse(&action).ok_or_else(|| {
            StoreError::Backend(format!("{what}: column action holds {action:?}"))
        })?,
        sans: decode_sans(&what, &sans)?,
        serial,
        subject: row.try_get("subject").map_err(column)?,
        provisioner: row.try_get("provisioner").map_err(column)?,
        credential: row.try_get("credential").map_err(column)?,
        address: row.try_get("address").map_err(column)?,
        detail: row.try_get("detail").map_err(column)?,
    })
}
