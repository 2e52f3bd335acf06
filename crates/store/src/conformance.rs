//! The behaviour every backend must show, as runnable checks.
//!
//! Written once against the [`CertStore`] trait so that each backend's tests (SQLite now,
//! PostgreSQL and MySQL later) run the very same checks rather than each growing its own idea of
//! what "the token was already used" means. This is test support: every function panics with a
//! message saying which rule was broken.
//!
//! Run them against an empty database. Serial numbers and `jti`s are made unique per run, so a
//! database left over from an earlier run does not make them fail, except [`prune`], which
//! counts what it deletes.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::{SystemTime, UNIX_EPOCH};

use mayfly_authority::audit::{AuditAction, AuditContext, AuditQuery};
use mayfly_authority::store::{
    AdminStore, BoxFuture, CertStore, CertificatePage, CertificateStatus, CrlShard,
    IssuedCertificate, ListStatus, Revocation, RevocationSeq, RevokedQuery, StoreError,
    StoredCertificate, UsedToken,
};
use time::OffsetDateTime;

use crate::{MAX_JTI_LEN, MAX_SERIAL_LEN};

/// How many issuances race each other in the concurrency checks.
pub const RACERS: usize = 16;

/// Runs every check against `store`, one after the other. Retention runs last: it deletes what
/// the others stored.
pub async fn run_all<S: CertStore + AdminStore>(full: &S) {
    let store: &dyn CertStore = full;
    round_trip(store).await;
    replayed_token_refused(store).await;
    duplicate_serial_refused(store).await;
    same_jti_other_provisioner(store).await;
    oversized_keys_refused(store).await;
    prune(store).await;
    concurrent_token_use(&[store]).await;
    concurrent_distinct_issuances(&[store]).await;
    mixed_outcomes_submitted_together(full).await;
    revocation(store).await;
    revoked_listing(store).await;
    revoked_listing_by_shard(store).await;
    crl_urls_are_remembered(store).await;
    crl_numbers_only_grow(&[store]).await;
    revocations_are_numbered(&[store]).await;
    published_crls_keep_the_highest(store).await;
    revoked_snapshots_keep_the_latest(store).await;
    large_objects(store).await;
    keys_compare_exactly(store).await;
    listing(full).await;
    audit_log(full).await;
    leases(full).await;
    concurrent_lease(&[full]).await;
    retention_keeps_the_database_flat(full).await;
}

/// Every certificate stored and every revocation made has exactly one audit entry, written with
/// it; a refused change leaves none; entries read back whole, page by id, filter by serial and
/// time, and outlive the retention job.
pub async fn audit_log<S: CertStore + AdminStore>(store: &S) {
    let entries = |serial: &str, after: Option<u64>| {
        let query = AuditQuery {
            after,
            serial: Some(serial.to_owned()),
            since: None,
            limit: 100,
        };
        async move {
            store
                .audit_entries(&query)
                .await
                .expect("reading the audit log")
        }
    };
    let issued = AuditContext {
        action: AuditAction::Renewed,
        at: at(1_800_000_100),
        credential: "mtls:host.example.test".into(),
        address: Some("2001:db8::7".parse().expect("an IPv6 address")),
        detail: "replaces 42".into(),
    };
    let mut certificate = sample_certificate("conformance-audit");
    // Long expired, so the retention run below deletes it (and nothing stored by other checks).
    certificate.not_after = at(1_000);
    let token = fresh_token("conformance-audit");
    store
        .record_issuance(&certificate, Some(&token), &issued)
        .await
        .expect("storing the audited certificate");
    let found = entries(&certificate.serial, None).await;
    assert_eq!(found.len(), 1, "one entry for one issuance: {found:?}");
    let entry = &found[0];
    assert_eq!(entry.action, AuditAction::Renewed);
    assert_eq!(entry.at, issued.at);
    assert_eq!(entry.serial, certificate.serial);
    assert_eq!(entry.subject, certificate.subject);
    assert_eq!(entry.sans, certificate.sans);
    assert_eq!(entry.provisioner, certificate.provisioner);
    assert_eq!(entry.credential, issued.credential);
    assert_eq!(entry.address, "2001:db8::7");
    assert_eq!(entry.detail, issued.detail);

    // Refusals write nothing: a replayed token, a taken serial, a revocation of the unknown.
    let replay = sample_certificate("conformance-audit");
    assert_token_used(
        store.record_issuance(&replay, Some(&token), &issued).await,
        &token.jti,
        "replay of an audited issuance",
    );
    assert!(
        entries(&replay.serial, None).await.is_empty(),
        "a refused issuance was audited"
    );
    let mut taken = sample_certificate("conformance-audit");
    taken.serial = certificate.serial.clone();
    assert!(store.record_issuance(&taken, None, &issued).await.is_err());
    assert_eq!(
        entries(&certificate.serial, None).await.len(),
        1,
        "a refused serial was audited"
    );

    let revocation = Revocation {
        serial: certificate.serial.clone(),
        reason_code: 1,
        reason: "lost".into(),
        revoked_at: at(1_800_000_200),
        revoked_by: "offline".into(),
    };
    let revoked = AuditContext {
        action: AuditAction::Revoked,
        at: revocation.revoked_at,
        credential: "offline".into(),
        address: None,
        detail: "keyCompromise: lost".into(),
    };
    store
        .revoke(&revocation, None, &revoked)
        .await
        .expect("revoking the audited certificate");
    assert!(matches!(
        store.revoke(&revocation, None, &revoked).await,
        Err(StoreError::AlreadyRevoked { .. })
    ));
    let unknown = Revocation {
        serial: fresh_serial(),
        ..revocation.clone()
    };
    assert!(store.revoke(&unknown, None, &revoked).await.is_err());
    assert!(
        entries(&unknown.serial, None).await.is_empty(),
        "a refused revocation was audited"
    );

    let found = entries(&certificate.serial, None).await;
    assert_eq!(found.len(), 2, "issuance and one revocation: {found:?}");
    let entry = &found[1];
    assert!(found[0].id < entry.id, "ids grow: {found:?}");
    assert_eq!(entry.action, AuditAction::Revoked);
    assert_eq!(entry.at, revoked.at);
    assert_eq!(
        entry.subject, certificate.subject,
        "copied from the certificate"
    );
    assert_eq!(entry.sans, certificate.sans, "copied from the certificate");
    assert_eq!(entry.provisioner, certificate.provisioner);
    assert_eq!(entry.credential, "offline");
    assert_eq!(entry.address, "", "no address when none was known");
    assert_eq!(entry.detail, "keyCompromise: lost");

    // Paging and filters.
    assert_eq!(
        entries(&certificate.serial, Some(found[0].id)).await,
        found[1..]
    );
    let page = store
        .audit_entries(&AuditQuery {
            after: None,
            serial: None,
            since: Some(at(1_800_000_150)),
            limit: 1000,
        })
        .await
        .expect("reading the audit log since a time");
    assert!(page.iter().any(|e| e.id == found[1].id), "{page:?}");
    assert!(page.iter().all(|e| e.at >= at(1_800_000_150)), "{page:?}");
    let one = store
        .audit_entries(&AuditQuery {
            after: None,
            serial: None,
            since: None,
            limit: 1,
        })
        .await
        .expect("reading one entry");
    assert_eq!(one.len(), 1, "the limit holds");

    // Retention deletes the expired certificate, never its history.
    store
        .prune_certificates(at(1_001))
        .await
        .expect("pruning the expired certificate");
    assert!(
        store
            .certificate(&certificate.serial)
            .await
            .expect("lookup")
            .is_none()
    );
    assert_eq!(
        entries(&certificate.serial, None).await,
        found,
        "retention touched the log"
    );
}

/// Listing pages through every stored certificate once, in serial order, and the status filter
/// tells active, expired and revoked apart.
pub async fn listing<S: CertStore + AdminStore>(store: &S) {
    let now = at(1_900_000_000);
    let mut active = sample_certificate("conformance-list");
    active.not_after = now + time::Duration::days(1);
    let mut expired = sample_certificate("conformance-list");
    expired.not_after = now - time::Duration::seconds(1);
    let mut revoked = sample_certificate("conformance-list");
    revoked.not_after = now + time::Duration::days(1);
    for certificate in [&active, &expired, &revoked] {
        record_ok(store, certificate, None, "a certificate to list").await;
    }
    store
        .revoke(
            &Revocation {
                serial: revoked.serial.clone(),
                reason_code: 0,
                reason: String::new(),
                revoked_at: now,
                revoked_by: "conformance".into(),
            },
            None,
            &REVOKED_AUDIT,
        )
        .await
        .expect("revoking a certificate to list");

    let all = list_all(store, None, now).await;
    let counts = store.counts().await.expect("counting rows");
    assert_eq!(
        all.len() as u64,
        counts.certificates,
        "paging returned a different number of certificates than are stored"
    );
    let serials: Vec<&str> = all.iter().map(|c| c.certificate.serial.as_str()).collect();
    let mut sorted = serials.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(
        serials, sorted,
        "pages are not in serial order, or repeat one"
    );
    for listed in all
        .iter()
        .filter(|c| c.certificate.provisioner == "conformance-list")
    {
        assert_eq!(
            Some(listed),
            load(store, &listed.certificate.serial).await.as_ref(),
            "a listed certificate differs from its lookup"
        );
    }
    for (status, expected, others) in [
        (ListStatus::Active, &active, [&expired, &revoked]),
        (ListStatus::Expired, &expired, [&active, &revoked]),
        (ListStatus::Revoked, &revoked, [&active, &expired]),
    ] {
        let listed: Vec<String> = list_all(store, Some(status), now)
            .await
            .into_iter()
            .map(|c| c.certificate.serial)
            .collect();
        assert!(
            listed.contains(&expected.serial),
            "{} listing misses its certificate",
            status.as_str()
        );
        for other in others {
            assert!(
                !listed.contains(&other.serial),
                "{} listing holds a certificate of another status",
                status.as_str()
            );
        }
    }
    let empty = store
        .list_certificates(&CertificatePage {
            status: None,
            now,
            after: Some("999999999999999999999999999999999999999999999999999999".into()),
            limit: 10,
        })
        .await
        .expect("listing past the last serial");
    assert!(
        empty.is_empty(),
        "a page after the last serial is not empty"
    );
}

async fn list_all<S: AdminStore>(
    store: &S,
    status: Option<ListStatus>,
    now: OffsetDateTime,
) -> Vec<StoredCertificate> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_certificates(&CertificatePage {
                status,
                now,
                after: after.clone(),
                limit: 7,
            })
            .await
            .unwrap_or_else(|error| panic!("listing certificates failed: {error}"));
        assert!(page.len() <= 7, "a page is longer than its limit");
        let Some(last) = page.last() else {
            return all;
        };
        after = Some(last.certificate.serial.clone());
        all.extend(page);
    }
}

/// A lease is held by one holder until it expires, extended by its holder, then free for
/// another.
pub async fn leases<S: AdminStore>(store: &S) {
    let name = format!("conformance-{}", fresh_serial());
    let now = at(1_900_000_000);
    let later = now + time::Duration::minutes(10);
    let take = |holder: &'static str, at: OffsetDateTime, until: OffsetDateTime| {
        let name = name.clone();
        async move {
            store
                .acquire_lease(&name, holder, at, until)
                .await
                .unwrap_or_else(|error| panic!("taking a lease failed: {error}"))
        }
    };
    assert!(take("a", now, later).await, "a free lease was refused");
    assert!(
        !take("b", now, later).await,
        "a held lease was given to another"
    );
    assert!(
        take("a", now + time::Duration::seconds(1), later).await,
        "the holder could not extend its lease"
    );
    assert!(
        !take("b", later - time::Duration::seconds(1), later).await,
        "a lease was taken before it expired"
    );
    assert!(
        take(
            "b",
            later + time::Duration::seconds(1),
            later + time::Duration::hours(1)
        )
        .await,
        "an expired lease was not given to another"
    );
    assert!(
        !take("a", later + time::Duration::seconds(2), later).await,
        "the former holder kept a lease it lost"
    );
}

/// [`RACERS`] holders ask for one free lease at once, spread over `stores` (sharing one
/// database): exactly one gets it.
pub async fn concurrent_lease<S: AdminStore>(stores: &[&S]) {
    let name = format!("conformance-{}", fresh_serial());
    let now = at(1_900_000_000);
    let holders: Vec<String> = (0..RACERS).map(|i| format!("holder-{i}")).collect();
    let attempts = holders
        .iter()
        .enumerate()
        .map(|(i, holder)| {
            stores[i % stores.len()].acquire_lease(
                &name,
                holder,
                now,
                now + time::Duration::minutes(1),
            )
        })
        .collect();
    let results = join_all(attempts).await;
    let winners = results.iter().filter(|r| matches!(r, Ok(true))).count();
    assert_eq!(
        winners, 1,
        "{RACERS} holders raced for a lease: {results:?}"
    );
}

/// Sixty simulated days of 24-hour certificates (each from a one-time token) with the
/// retention job run daily on a moved clock: after the first few days the row counts stay flat,
/// and only certificates expired for longer than the kept period are gone.
///
/// Deletes every other check's certificates expired before 2033: run it last.
pub async fn retention_keeps_the_database_flat<S: CertStore + AdminStore>(store: &S) {
    use mayfly_authority::clock::{Clock, FixedClock};
    use mayfly_authority::retention::{RetentionPolicy, run_once};

    const PER_DAY: usize = 5;
    let policy = RetentionPolicy {
        keep_expired: time::Duration::days(2),
        interval: time::Duration::minutes(10),
    };
    let start = at(2_000_000_000);
    let clock = FixedClock::new(start);
    let holder = format!("conformance-{}", fresh_serial());
    let mut counts = Vec::new();
    let mut issued: Vec<IssuedCertificate> = Vec::new();
    for day in 0..60 {
        let morning = start + time::Duration::days(day);
        for _ in 0..PER_DAY {
            let mut certificate = sample_certificate("conformance-retention");
            certificate.not_before = morning;
            certificate.not_after = morning + time::Duration::days(1);
            let token = UsedToken {
                expires_at: morning + time::Duration::minutes(5),
                ..fresh_token("conformance-retention")
            };
            record_ok(store, &certificate, Some(&token), "a day's certificate").await;
            issued.push(certificate);
        }
        clock.set(morning + time::Duration::hours(1));
        let pruned = run_once(store, &clock, &policy, &holder)
            .await
            .unwrap_or_else(|error| panic!("day {day}: the retention job failed: {error}"));
        assert!(
            pruned.is_some(),
            "day {day}: the only holder lost its lease"
        );
        counts.push(store.counts().await.expect("counting rows"));
    }
    let steady = counts[5];
    for (day, count) in counts.iter().enumerate().skip(5) {
        assert_eq!(
            *count, steady,
            "day {day}: the row counts moved from {steady:?} to {count:?}"
        );
    }
    // Each day's tokens are gone by the end of that day (the other checks' expire in 2100).
    assert_eq!(
        steady.used_tokens, counts[0].used_tokens,
        "expired token records were kept"
    );
    // Kept: the certificates of the last three days (expired less than 2 days ago, or valid).
    let now = clock.now();
    for certificate in &issued {
        let kept = load(store, &certificate.serial).await.is_some();
        let should_keep = certificate.not_after >= now - policy.keep_expired;
        assert_eq!(
            kept, should_keep,
            "certificate expiring {} at {now}: kept {kept}",
            certificate.not_after
        );
    }
}

/// Keys are compared byte for byte: a `jti` differing from a used one only in case (or accents)
/// is another token. MySQL's default collation would call them equal and refuse a fresh token.
pub async fn keys_compare_exactly(store: &dyn CertStore) {
    let lower = UsedToken {
        jti: format!("case-{}-abc", fresh_serial()),
        ..fresh_token("conformance-case")
    };
    record_ok(
        store,
        &sample_certificate("conformance-case"),
        Some(&lower),
        "a lower-case jti",
    )
    .await;
    for jti in [lower.jti.to_uppercase(), lower.jti.replace("abc", "ábc")] {
        let other = UsedToken {
            jti,
            ..lower.clone()
        };
        record_ok(
            store,
            &sample_certificate("conformance-case"),
            Some(&other),
            "a jti differing from a used one only in case or accents",
        )
        .await;
    }
}

/// The kept CRL of each scope is the highest-numbered one published, whatever the order of
/// publication, and the scopes are kept apart. A CRL of 17 MiB (above MariaDB's default 16 MiB
/// packet) is kept in parts and read back whole; a smaller one replacing it leaves no part of
/// it behind.
pub async fn published_crls_keep_the_highest(store: &dyn CertStore) {
    use mayfly_authority::store::{CrlScopeName, StoredCrl};
    let crl = |scope, number: u64, size: usize| StoredCrl {
        scope,
        number,
        this_update: at(1_900_000_000 + number as i64),
        next_update: at(1_900_086_400 + number as i64),
        der: (0..size).map(|i| (i as u64 + number) as u8).collect(),
    };
    let latest = |scope| async move {
        store
            .latest_crl(scope, 0)
            .await
            .unwrap_or_else(|e| panic!("reading the latest CRL: {e:?}"))
    };
    let publish = |crl: StoredCrl| async move {
        store
            .publish_crl(&crl)
            .await
            .unwrap_or_else(|e| panic!("publishing CRL {}: {e:?}", crl.number));
    };
    assert_eq!(
        latest(CrlScopeName::Full).await,
        None,
        "a CRL before any was published"
    );
    publish(crl(CrlScopeName::Full, 5, 100)).await;
    publish(crl(CrlScopeName::Full, 3, 100)).await;
    assert_eq!(
        latest(CrlScopeName::Full).await,
        Some(crl(CrlScopeName::Full, 5, 100)),
        "a lower number replaced a higher one"
    );
    publish(crl(CrlScopeName::Delta, 6, 10)).await;
    publish(crl(CrlScopeName::Full, 7, 1024 * 1024)).await;
    assert_eq!(
        latest(CrlScopeName::Full).await,
        Some(crl(CrlScopeName::Full, 7, 1024 * 1024))
    );
    assert_eq!(
        latest(CrlScopeName::Delta).await,
        Some(crl(CrlScopeName::Delta, 6, 10)),
        "the scopes are mixed up"
    );
    let shard = |index| CrlScopeName::Shard(CrlShard::new(index).expect("a valid shard"));
    publish(crl(shard(3), 8, 10)).await;
    publish(crl(shard(30), 9, 10)).await;
    assert_eq!(latest(shard(3)).await, Some(crl(shard(3), 8, 10)));
    assert_eq!(latest(shard(30)).await, Some(crl(shard(30), 9, 10)));
    assert_eq!(latest(shard(4)).await, None, "shards are mixed up");
    // Read only when newer than what the caller holds.
    let newer_than = |number| async move {
        store
            .latest_crl(CrlScopeName::Full, number)
            .await
            .unwrap_or_else(|e| panic!("reading the latest CRL above {number}: {e:?}"))
            .map(|crl| crl.number)
    };
    assert_eq!(newer_than(6).await, Some(7));
    assert_eq!(newer_than(7).await, None, "the caller's own CRL read back");
    assert_eq!(newer_than(8).await, None);

    let large = crl(CrlScopeName::Full, 10, 17 << 20);
    publish(large.clone()).await;
    assert!(
        latest(CrlScopeName::Full).await == Some(large),
        "a 17 MiB CRL did not read back whole"
    );
    publish(crl(CrlScopeName::Full, 11, 3)).await;
    assert_eq!(
        latest(CrlScopeName::Full).await,
        Some(crl(CrlScopeName::Full, 11, 3)),
        "parts of the larger CRL were left behind"
    );
}

/// The revoked-set snapshot of each kind is the one as of the latest revocation kept, whatever
/// the order they were kept in; its parts read back in order; an older one changes nothing.
pub async fn revoked_snapshots_keep_the_latest(store: &dyn CertStore) {
    use mayfly_authority::store::{
        MAX_STORED_PART, RevocationSeq, RevokedSetKind, RevokedSnapshot, RevokedSnapshotMeta,
    };
    let snapshot = |kind, seq: u64, parts: &[usize]| RevokedSnapshot {
        meta: RevokedSnapshotMeta {
            kind,
            seq: RevocationSeq(seq),
            taken_at: at(1_900_000_000 + seq as i64),
        },
        parts: parts
            .iter()
            .enumerate()
            .map(|(i, &len)| (0..len).map(|b| (b + i + seq as usize) as u8).collect())
            .collect(),
    };
    let keep = |snapshot: RevokedSnapshot| async move {
        let mut parts = snapshot.parts.into_iter();
        store
            .keep_revoked_snapshot(&snapshot.meta, &mut parts)
            .await
            .unwrap_or_else(|e| panic!("keeping snapshot {:?}: {e:?}", snapshot.meta.seq))
    };
    let read = |kind| async move {
        store
            .revoked_snapshot(kind)
            .await
            .unwrap_or_else(|e| panic!("reading the {kind:?} snapshot: {e:?}"))
    };
    for kind in [RevokedSetKind::Unexpired, RevokedSetKind::WithExpired] {
        assert_eq!(read(kind).await, None, "a snapshot before any was kept");
    }
    let big = [4, MAX_STORED_PART, MAX_STORED_PART, 7];
    assert!(keep(snapshot(RevokedSetKind::Unexpired, 9, &big)).await);
    assert!(!keep(snapshot(RevokedSetKind::Unexpired, 4, &[4, 5])).await);
    assert!(
        read(RevokedSetKind::Unexpired).await == Some(snapshot(RevokedSetKind::Unexpired, 9, &big)),
        "an older snapshot replaced a newer one, or the parts came back out of order"
    );
    assert_eq!(
        read(RevokedSetKind::WithExpired).await,
        None,
        "kinds are mixed up"
    );
    assert!(keep(snapshot(RevokedSetKind::WithExpired, 2, &[4])).await);
    assert!(keep(snapshot(RevokedSetKind::Unexpired, 12, &[4, 1])).await);
    assert_eq!(
        read(RevokedSetKind::Unexpired).await,
        Some(snapshot(RevokedSetKind::Unexpired, 12, &[4, 1])),
        "parts of the larger snapshot were left behind"
    );
    assert_eq!(
        read(RevokedSetKind::WithExpired).await,
        Some(snapshot(RevokedSetKind::WithExpired, 2, &[4]))
    );
    // A part above the limit is refused, and the kept snapshot stays as it was.
    let mut oversized = vec![vec![0u8; MAX_STORED_PART + 1]].into_iter();
    let meta = snapshot(RevokedSetKind::Unexpired, 13, &[]).meta;
    assert!(
        store
            .keep_revoked_snapshot(&meta, &mut oversized)
            .await
            .is_err(),
        "an oversized part was kept"
    );
    assert_eq!(
        read(RevokedSetKind::Unexpired).await,
        Some(snapshot(RevokedSetKind::Unexpired, 12, &[4, 1])),
        "a refused snapshot changed the kept one"
    );
}

/// Nothing the CA stores hits a size cap: a 1 MiB DER (a certificate with a huge extension, or
/// later a CRL) and a 100 000-character subject round-trip unchanged. MySQL's BLOB and TEXT stop
/// at 64 KB, which is why the migrations are translated there.
pub async fn large_objects(store: &dyn CertStore) {
    let mut certificate = sample_certificate("conformance-large");
    certificate.der = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    certificate.subject = "é".repeat(100_000);
    certificate.sans = (0..2000)
        .map(|i| format!("host-{i}.example.test"))
        .collect();
    record_ok(store, &certificate, None, "storing a 1 MiB certificate").await;
    assert_stored(store, &certificate, "a 1 MiB certificate").await;
}

/// Revoked certificates are listed with their reason, filtered by revocation time (delta CRLs)
/// and by expiry (expired ones leave the CRL); valid ones never appear.
pub async fn revoked_listing(store: &dyn CertStore) {
    let mut expired = sample_certificate("listing");
    expired.not_after = at(1_700_000_000);
    let early = sample_certificate("listing");
    let late = sample_certificate("listing");
    let untouched = sample_certificate("listing");
    for certificate in [&expired, &early, &late, &untouched] {
        record_ok(store, certificate, None, "revoked listing").await;
    }
    for (certificate, when, reason) in [
        (&expired, 1_690_000_000, 4),
        (&early, 1_720_000_000, 1),
        (&late, 1_740_000_000, 5),
    ] {
        let revocation = Revocation {
            serial: certificate.serial.clone(),
            reason_code: reason,
            reason: String::new(),
            revoked_at: at(when),
            revoked_by: "offline".into(),
        };
        store
            .revoke(&revocation, None, &REVOKED_AUDIT)
            .await
            .unwrap_or_else(|e| panic!("revoking {}: {e:?}", certificate.serial));
    }
    let mine = [&expired, &early, &late, &untouched].map(|c| c.serial.clone());
    let mine = &mine;
    let list = |query: RevokedQuery| async move {
        let mut found: Vec<(String, u8)> = store
            .revoked_certificates(query)
            .await
            .unwrap_or_else(|e| panic!("listing revoked certificates ({query:?}): {e:?}"))
            .into_iter()
            .filter(|entry| mine.contains(&entry.serial))
            .map(|entry| (entry.serial, entry.reason_code))
            .collect();
        found.sort();
        found
    };
    let sorted = |mut v: Vec<(String, u8)>| {
        v.sort();
        v
    };
    assert_eq!(
        list(RevokedQuery::default()).await,
        sorted(vec![
            (expired.serial.clone(), 4),
            (early.serial.clone(), 1),
            (late.serial.clone(), 5)
        ]),
        "every revoked certificate, none of the valid ones"
    );
    assert_eq!(
        list(RevokedQuery {
            unexpired_at: Some(at(1_745_000_000)),
            ..Default::default()
        })
        .await,
        sorted(vec![(early.serial.clone(), 1), (late.serial.clone(), 5)]),
        "expired certificates are left out"
    );
    assert_eq!(
        list(RevokedQuery {
            revoked_since: Some(at(1_740_000_000)),
            unexpired_at: Some(at(1_745_000_000)),
            shard: None,
        })
        .await,
        vec![(late.serial.clone(), 5)],
        "only revocations at or after the instant"
    );
}

/// A shard's CRL lists the revoked certificates of that shard only: not those of other shards,
/// nor those carrying the complete CRL's URL; the complete CRL lists them all, with their shard.
pub async fn revoked_listing_by_shard(store: &dyn CertStore) {
    let shard = |index| CrlShard::new(index);
    let in_shard = |index| IssuedCertificate {
        crl_shard: shard(index),
        ..sample_certificate("listing-shards")
    };
    let certificates = [
        in_shard(7),
        in_shard(7),
        in_shard(8),
        sample_certificate("listing-shards"),
    ];
    for certificate in &certificates {
        record_ok(store, certificate, None, "revoked listing by shard").await;
        let revocation = Revocation {
            serial: certificate.serial.clone(),
            reason_code: 1,
            reason: String::new(),
            revoked_at: at(1_750_000_100),
            revoked_by: "offline".into(),
        };
        store
            .revoke(&revocation, None, &REVOKED_AUDIT)
            .await
            .unwrap_or_else(|e| panic!("revoking {}: {e:?}", certificate.serial));
    }
    let mine: Vec<String> = certificates.iter().map(|c| c.serial.clone()).collect();
    let mine = &mine;
    let list = |shard: Option<CrlShard>| async move {
        let mut found: Vec<(String, Option<CrlShard>)> = store
            .revoked_certificates(RevokedQuery {
                shard,
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("listing revoked certificates of {shard:?}: {e:?}"))
            .into_iter()
            .filter(|entry| mine.contains(&entry.serial))
            .map(|entry| (entry.serial, entry.crl_shard))
            .collect();
        found.sort();
        found
    };
    let expected = |wanted: &[usize]| {
        let mut v: Vec<(String, Option<CrlShard>)> = wanted
            .iter()
            .map(|&i| (certificates[i].serial.clone(), certificates[i].crl_shard))
            .collect();
        v.sort();
        v
    };
    assert_eq!(list(shard(7)).await, expected(&[0, 1]), "shard 7");
    assert_eq!(list(shard(8)).await, expected(&[2]), "shard 8");
    assert_eq!(list(shard(9)).await, expected(&[]), "an empty shard");
    assert_eq!(
        list(None).await,
        expected(&[0, 1, 2, 3]),
        "the complete list"
    );
}

/// Shard URLs are remembered once each, with their shard, oldest first; remembering one again
/// keeps its first use. A URL longer than the column is refused, not cut.
pub async fn crl_urls_are_remembered(store: &dyn CertStore) {
    let shard = |index| CrlShard::new(index).expect("a valid shard");
    let unique = fresh_serial();
    let url = |n: u16| format!("http://ca-{unique}.example.test/1.0/crls/{n}");
    let remember = |index: u16, url: String, when: i64| async move {
        store
            .remember_crl_url(shard(index), &url, at(when))
            .await
            .unwrap_or_else(|e| panic!("remembering {url}: {e:?}"));
    };
    remember(1, url(1), 1_800_000_000).await;
    remember(0, url(0), 1_800_000_001).await;
    remember(1, url(1), 1_800_000_002).await;
    let moved = format!("http://moved-{unique}.example.test/1.0/crls/1");
    remember(1, moved.clone(), 1_800_000_003).await;
    let mine: Vec<(CrlShard, String)> = store
        .crl_urls()
        .await
        .unwrap_or_else(|e| panic!("reading the CRL URLs: {e:?}"))
        .into_iter()
        .filter(|(_, u)| u.contains(&unique))
        .collect();
    assert_eq!(
        mine,
        vec![(shard(1), url(1)), (shard(0), url(0)), (shard(1), moved)],
        "each URL once, oldest first"
    );
    let long = format!(
        "http://{}.example.test/",
        "a".repeat(crate::MAX_CRL_URL_LEN)
    );
    assert!(
        store
            .remember_crl_url(shard(2), &long, at(1_800_000_004))
            .await
            .is_err(),
        "a URL longer than the column was accepted"
    );
}

/// CRL numbers handed out, also concurrently and through several handles on one database, are
/// all distinct and each caller's are increasing.
pub async fn crl_numbers_only_grow(stores: &[&dyn CertStore]) {
    let mut futures: Vec<BoxFuture<'_, Vec<u64>>> = Vec::new();
    for i in 0..RACERS {
        let store = stores[i % stores.len()];
        futures.push(Box::pin(async move {
            let mut numbers = Vec::new();
            for _ in 0..4 {
                numbers.push(
                    store
                        .next_crl_number()
                        .await
                        .unwrap_or_else(|e| panic!("taking a CRL number: {e:?}")),
                );
            }
            numbers
        }));
    }
    let results = join_all(futures).await;
    let mut all = Vec::new();
    for numbers in &results {
        assert!(
            numbers.windows(2).all(|w| w[0] < w[1]),
            "one caller's CRL numbers went backwards: {numbers:?}"
        );
        all.extend_from_slice(numbers);
    }
    let count = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), count, "a CRL number was handed out twice");
    assert!(all[0] > 0, "CRL numbers start at 1");
}

/// Revocations take numbers one after another on every instance: a reader following the numbers
/// while revocations race on all instances sees each once and misses none, whatever its
/// revocation time (these are dated years back, as an import writes them); a refused
/// revocation takes no number.
pub async fn revocations_are_numbered(stores: &[&dyn CertStore]) {
    let first = stores[0];
    let start = first
        .revocation_seq()
        .await
        .unwrap_or_else(|e| panic!("reading the last revocation number: {e:?}"));
    let certificates: Vec<IssuedCertificate> = (0..RACERS * 2)
        .map(|_| sample_certificate("numbered"))
        .collect();
    for certificate in &certificates {
        record_ok(first, certificate, None, "numbered revocations").await;
    }
    let revocation = |i: usize| Revocation {
        serial: certificates[i].serial.clone(),
        reason_code: 1,
        reason: String::new(),
        revoked_at: at(1_500_000_000 + i as i64),
        revoked_by: "offline".into(),
    };
    let mut futures: Vec<BoxFuture<'_, Vec<String>>> = Vec::new();
    for i in 0..certificates.len() {
        let store = stores[i % stores.len()];
        let revocation = revocation(i);
        futures.push(Box::pin(async move {
            store
                .revoke(&revocation, None, &REVOKED_AUDIT)
                .await
                .unwrap_or_else(|e| panic!("revoking {}: {e:?}", revocation.serial));
            Vec::new()
        }));
    }
    let wanted = certificates.len();
    let reader = stores[stores.len() - 1];
    futures.push(Box::pin(async move {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut seen = start;
        let mut read = Vec::new();
        while read.len() < wanted {
            assert!(
                std::time::Instant::now() < deadline,
                "the reader found {} of {wanted} revocations",
                read.len()
            );
            let news = reader
                .revocations_after(seen)
                .await
                .unwrap_or_else(|e| panic!("reading revocations after {seen:?}: {e:?}"));
            assert!(news.last >= seen, "the revocation number went back");
            assert_eq!(
                news.last == seen,
                news.entries.is_empty(),
                "news without a newer number, or a newer number without news"
            );
            read.extend(news.entries.into_iter().map(|entry| entry.serial));
            seen = news.last;
            tokio::task::yield_now().await;
        }
        read
    }));
    let read = join_all(futures).await.pop().unwrap_or_default();
    let mut sorted = read.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), read.len(), "a revocation was read twice");
    let mut expected: Vec<String> = certificates.iter().map(|c| c.serial.clone()).collect();
    expected.sort();
    assert_eq!(
        sorted, expected,
        "the reader saw exactly the revocations made"
    );
    let last = first
        .revocation_seq()
        .await
        .unwrap_or_else(|e| panic!("reading the last revocation number: {e:?}"));
    assert_eq!(
        last,
        RevocationSeq(start.0 + wanted as u64),
        "one number a revocation"
    );
    // Refused: already revoked. No number taken, nothing new to read.
    let refused = first.revoke(&revocation(0), None, &REVOKED_AUDIT).await;
    assert!(
        matches!(refused, Err(StoreError::AlreadyRevoked { .. })),
        "{refused:?}"
    );
    let after = first
        .revocations_after(last)
        .await
        .unwrap_or_else(|e| panic!("reading revocations after {last:?}: {e:?}"));
    assert!(after.entries.is_empty() && after.last == last, "{after:?}");
}

/// `count` revoked certificates for a bulk load, half of them revoked at one and the same
/// instant (paging must then go by serial), the rest a second apart, all valid until 2100.
pub fn many_revoked(count: usize) -> Vec<crate::BulkCertificate> {
    (0..count)
        .map(|i| {
            let certificate = IssuedCertificate {
                not_after: at(4_102_444_800),
                ..sample_certificate("paged")
            };
            let revoked_at = if i % 2 == 0 {
                at(1_760_000_000)
            } else {
                at(1_760_000_000 + i as i64)
            };
            let revocation = Revocation {
                serial: certificate.serial.clone(),
                reason_code: 4,
                reason: String::new(),
                revoked_at,
                revoked_by: "offline".into(),
            };
            crate::BulkCertificate {
                certificate,
                recorded_at: at(1_750_000_000),
                issued: ISSUED_AUDIT.clone(),
                revoked: Some((revocation, REVOKED_AUDIT.clone())),
            }
        })
        .collect()
}

/// Paging through the revoked certificates ([`CertStore::revoked_page`]) yields every one of
/// `loaded` (bulk loaded before) exactly once, and no certificate twice, over pages the store
/// sizes.
pub async fn revoked_pages_cover_every_entry(
    store: &dyn CertStore,
    loaded: &[crate::BulkCertificate],
) {
    let expected: Vec<&String> = loaded.iter().map(|r| &r.certificate.serial).collect();
    let mut after = None;
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = store
            .revoked_page(Some(at(1_800_000_000)), after.clone())
            .await
            .unwrap_or_else(|e| panic!("reading page {pages} of revoked certificates: {e:?}"));
        pages += 1;
        seen.extend(page.entries.into_iter().map(|entry| entry.serial));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert!(pages > 1, "{} entries came in one page", seen.len());
    let total = seen.len();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), total, "a revoked certificate came on two pages");
    let missing = expected
        .iter()
        .filter(|serial| seen.binary_search(serial).is_err())
        .count();
    assert_eq!(missing, 0, "certificates on no page");
}

/// A revocation is recorded with its details, happens once, needs an issued serial, burns its
/// token atomically, and gives the token back when it is refused.
pub async fn revocation(store: &dyn CertStore) {
    let certificate = sample_certificate("revoke");
    store
        .record_issuance(&certificate, None, &ISSUED_AUDIT)
        .await
        .expect("storing the certificate to revoke");
    let revocation = Revocation {
        serial: certificate.serial.clone(),
        reason_code: 1,
        reason: "laptop stolen, key on it".into(),
        revoked_at: OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("a valid time"),
        revoked_by: "token:revoke".into(),
    };
    let token = fresh_token("revoke");
    store
        .revoke(&revocation, Some(&token), &REVOKED_AUDIT)
        .await
        .expect("the first revocation");
    let loaded = store
        .certificate(&certificate.serial)
        .await
        .expect("lookup")
        .expect("stored");
    assert_eq!(loaded.status, CertificateStatus::Revoked);
    assert_eq!(
        loaded.revocation.as_ref(),
        Some(&revocation),
        "revocation details"
    );
    assert_eq!(
        loaded.certificate, certificate,
        "revoking changes nothing else"
    );

    let again = fresh_token("revoke");
    match store
        .revoke(&revocation, Some(&again), &REVOKED_AUDIT)
        .await
    {
        Err(StoreError::AlreadyRevoked { serial }) if serial == certificate.serial => {}
        other => panic!("a second revocation returned {other:?}, expected AlreadyRevoked"),
    }
    store
        .record_issuance(&sample_certificate("revoke"), Some(&again), &ISSUED_AUDIT)
        .await
        .expect("the token of a refused revocation is not burnt");

    let mut unknown = revocation.clone();
    unknown.serial = fresh_serial();
    match store.revoke(&unknown, None, &REVOKED_AUDIT).await {
        Err(StoreError::CertificateNotFound { serial }) if serial == unknown.serial => {}
        other => {
            panic!("revoking an unknown serial returned {other:?}, expected CertificateNotFound")
        }
    }

    let other = sample_certificate("revoke");
    store
        .record_issuance(&other, None, &ISSUED_AUDIT)
        .await
        .expect("storing another certificate");
    let mut replay = revocation.clone();
    replay.serial = other.serial.clone();
    assert_token_used(
        store.revoke(&replay, Some(&token), &REVOKED_AUDIT).await,
        &token.jti,
        "a replayed revocation token",
    );
    let loaded = store
        .certificate(&other.serial)
        .await
        .expect("lookup")
        .expect("stored");
    assert_eq!(
        loaded.status,
        CertificateStatus::Valid,
        "a refused revocation revoked anyway"
    );
}

/// Issuances submitted at the same moment (a backend may commit them as one group) keep their
/// own outcomes: a replay and a taken serial are refused, the fresh ones stored, and the refused
/// issuance with the taken serial gets its token back.
pub async fn mixed_outcomes_submitted_together<S: CertStore + AdminStore>(store: &S) {
    let existing = sample_certificate("mixed");
    store
        .record_issuance(&existing, None, &ISSUED_AUDIT)
        .await
        .expect("storing the existing certificate");

    let first = sample_certificate("mixed");
    let first_token = fresh_token("mixed");
    let replay = sample_certificate("mixed");
    let mut taken = sample_certificate("mixed");
    taken.serial = existing.serial.clone();
    let taken_token = fresh_token("mixed");
    let last = sample_certificate("mixed");
    let last_token = fresh_token("mixed");
    let attempts: Vec<BoxFuture<'_, Result<(), StoreError>>> = vec![
        store.record_issuance(&first, Some(&first_token), &ISSUED_AUDIT),
        store.record_issuance(&replay, Some(&first_token), &ISSUED_AUDIT),
        store.record_issuance(&taken, Some(&taken_token), &ISSUED_AUDIT),
        store.record_issuance(&last, Some(&last_token), &ISSUED_AUDIT),
    ];
    let results = join_all(attempts).await;
    let mut results = results.into_iter();
    let mut next = || {
        results
            .next()
            .unwrap_or_else(|| unreachable!("four results"))
    };
    // One of the two uses of a token wins: in a group the first submitted, on a backend that
    // runs them side by side whichever commits first. The other is refused, and not stored.
    let (first_result, replay_result) = (next(), next());
    let (winner, loser, lost) = match (&first_result, &replay_result) {
        (Ok(()), _) => (&first, &replay, replay_result),
        (_, Ok(())) => (&replay, &first, first_result),
        _ => panic!("both uses of one token failed: {first_result:?} / {replay_result:?}"),
    };
    assert_token_used(lost, &first_token.jti, "the replay submitted together");
    match next() {
        Err(StoreError::SerialTaken { serial }) if serial == existing.serial => {}
        other => panic!("the taken serial returned {other:?}, expected SerialTaken"),
    }
    next().expect("the other fresh issuance is stored");
    for (certificate, what) in [(winner, "winning"), (&last, "last")] {
        let stored = store
            .certificate(&certificate.serial)
            .await
            .expect("lookup");
        assert!(stored.is_some(), "the {what} certificate was not stored");
    }
    assert!(
        store
            .certificate(&loser.serial)
            .await
            .expect("lookup")
            .is_none(),
        "the replay was stored"
    );
    let loaded = store
        .certificate(&existing.serial)
        .await
        .expect("lookup")
        .expect("existing");
    assert_eq!(
        loaded.certificate, existing,
        "the taken serial's certificate was changed"
    );
    // In a group too, what was stored has its audit entry and what was refused has none.
    for (serial, expected, what) in [
        (&winner.serial, 1, "the winning issuance"),
        (&last.serial, 1, "the last issuance"),
        (&loser.serial, 0, "the refused replay"),
        (
            &existing.serial,
            1,
            "the taken serial (its own issuance only)",
        ),
    ] {
        let query = AuditQuery {
            after: None,
            serial: Some(serial.clone()),
            since: None,
            limit: 10,
        };
        let entries = store
            .audit_entries(&query)
            .await
            .expect("reading the audit log");
        assert_eq!(
            entries.len(),
            expected,
            "audit entries of {what}: {entries:?}"
        );
    }
    store
        .record_issuance(
            &sample_certificate("mixed"),
            Some(&taken_token),
            &ISSUED_AUDIT,
        )
        .await
        .expect("the token of the refused issuance is usable again");
}

/// What is stored is what is loaded, every field; an unknown serial is `None`.
pub async fn round_trip(store: &dyn CertStore) {
    let rich = IssuedCertificate {
        serial: fresh_serial(),
        // Every byte value, leading zeros included, so no backend gets away with text encoding.
        der: [0u8, 0].into_iter().chain(0..=255).chain([0]).collect(),
        subject: "café ☕ \"quoted\", 'single'; -- not SQL".to_owned(),
        sans: vec![
            "example.test".to_owned(),
            "*.example.test".to_owned(),
            "192.0.2.1".to_owned(),
            "2001:db8::1".to_owned(),
            "admin@example.test".to_owned(),
            "spiffe://example.test/ns/default/sa/web".to_owned(),
            "with,comma and \"quotes\"".to_owned(),
            String::new(),
        ],
        not_before: at(1_750_000_000),
        not_after: at(1_750_086_400),
        provisioner: "conformance-admin".to_owned(),
        crl_shard: CrlShard::new(CrlShard::MAX_COUNT - 1),
    };
    let token = fresh_token("conformance-admin");
    record_ok(
        store,
        &rich,
        Some(&token),
        "storing a certificate with a token",
    )
    .await;
    assert_stored(
        store,
        &rich,
        "round trip of a certificate with every field set",
    )
    .await;

    // Empty subject and SANs, times before the epoch and RFC 5280's "no expiry" 9999-12-31, and
    // no token at all (an issuance that did not come from a one-time token).
    let bare = IssuedCertificate {
        serial: fresh_serial(),
        der: vec![0x30, 0x00],
        subject: String::new(),
        sans: Vec::new(),
        not_before: at(-1_000_000),
        not_after: at(253_402_300_799),
        provisioner: "conformance-acme".to_owned(),
        crl_shard: None,
    };
    record_ok(store, &bare, None, "storing a certificate without a token").await;
    assert_stored(
        store,
        &bare,
        "round trip of a certificate with empty fields",
    )
    .await;

    let missing = fresh_serial();
    let loaded = load(store, &missing).await;
    assert!(
        loaded.is_none(),
        "looking up serial {missing}, never stored, returned {loaded:?} instead of None"
    );
}

/// A token's `jti` recorded once is refused the second time, and the second certificate is not
/// stored.
pub async fn replayed_token_refused(store: &dyn CertStore) {
    let token = fresh_token("conformance-admin");
    let first = sample_certificate("conformance-admin");
    record_ok(store, &first, Some(&token), "first use of a token").await;

    let second = sample_certificate("conformance-admin");
    let result = store
        .record_issuance(&second, Some(&token), &ISSUED_AUDIT)
        .await;
    assert_token_used(result, &token.jti, "replaying a token");
    assert_absent(
        store,
        &second.serial,
        "after its token was refused as replayed",
    )
    .await;
    assert_stored(
        store,
        &first,
        "the first certificate after a refused replay",
    )
    .await;
}

/// A serial stored once is refused the second time; the refused issuance burns no token and
/// leaves the first certificate as it was.
pub async fn duplicate_serial_refused(store: &dyn CertStore) {
    let first = sample_certificate("conformance-admin");
    let first_token = fresh_token("conformance-admin");
    record_ok(store, &first, Some(&first_token), "first use of a serial").await;

    let mut clash = sample_certificate("conformance-admin");
    clash.serial = first.serial.clone();
    clash.der = vec![0x30, 0x03, 0x02, 0x01, 0x07];
    let clash_token = fresh_token("conformance-admin");
    let result = store
        .record_issuance(&clash, Some(&clash_token), &ISSUED_AUDIT)
        .await;
    match result {
        Err(StoreError::SerialTaken { ref serial }) if *serial == first.serial => {}
        other => panic!(
            "storing serial {} a second time returned {other:?}, expected SerialTaken for it",
            first.serial
        ),
    }
    assert_stored(
        store,
        &first,
        "the first certificate after a refused duplicate serial",
    )
    .await;

    // The token was written before the certificate in the same transaction; it must have been
    // rolled back with it, or a client retrying with a fresh serial would be refused.
    let retry = sample_certificate("conformance-admin");
    record_ok(
        store,
        &retry,
        Some(&clash_token),
        "reusing the token of an issuance refused for its serial (it must not have been burnt)",
    )
    .await;
}

/// `jti`s are scoped per provisioner: the same `jti` from another provisioner is a different
/// token, while the same provisioner's is still refused.
pub async fn same_jti_other_provisioner(store: &dyn CertStore) {
    let first_token = fresh_token("conformance-provisioner-a");
    let first = sample_certificate("conformance-provisioner-a");
    record_ok(
        store,
        &first,
        Some(&first_token),
        "a token of provisioner a",
    )
    .await;

    let other_token = UsedToken {
        provisioner: "conformance-provisioner-b".to_owned(),
        ..first_token.clone()
    };
    let other = sample_certificate("conformance-provisioner-b");
    record_ok(
        store,
        &other,
        Some(&other_token),
        "the same jti from provisioner b (jtis are scoped per provisioner)",
    )
    .await;

    let replay = sample_certificate("conformance-provisioner-a");
    let result = store
        .record_issuance(&replay, Some(&first_token), &ISSUED_AUDIT)
        .await;
    assert_token_used(result, &first_token.jti, "replaying provisioner a's token");
    assert_absent(
        store,
        &replay.serial,
        "after its token was refused as replayed",
    )
    .await;
}

/// Keys longer than the schema's columns are refused, the same way by every backend, and nothing
/// is stored; keys of exactly the maximum length are stored.
pub async fn oversized_keys_refused(store: &dyn CertStore) {
    let mut token = fresh_token("conformance-admin");
    token.jti = format!(
        "{}{}",
        token.jti,
        "j".repeat(MAX_JTI_LEN + 1 - token.jti.len())
    );
    let certificate = sample_certificate("conformance-admin");
    let result = store
        .record_issuance(&certificate, Some(&token), &ISSUED_AUDIT)
        .await;
    assert!(
        matches!(result, Err(StoreError::Backend(_))),
        "storing a {}-character jti returned {result:?}, expected a Backend error",
        token.jti.chars().count()
    );
    assert_absent(
        store,
        &certificate.serial,
        "after its jti was refused as too long",
    )
    .await;

    token.jti.truncate(MAX_JTI_LEN);
    record_ok(
        store,
        &certificate,
        Some(&token),
        "a jti of the maximum length",
    )
    .await;

    let mut long_serial = sample_certificate("conformance-admin");
    long_serial.serial = format!(
        "{}{}",
        long_serial.serial,
        "9".repeat(MAX_SERIAL_LEN + 1 - long_serial.serial.len())
    );
    let result = store
        .record_issuance(&long_serial, None, &ISSUED_AUDIT)
        .await;
    assert!(
        matches!(result, Err(StoreError::Backend(_))),
        "storing a {}-digit serial returned {result:?}, expected a Backend error",
        long_serial.serial.len()
    );
}

/// Pruning deletes exactly the tokens that expired strictly before `now`; a pruned `jti` can be
/// used again, a kept one still cannot.
///
/// Counts what it deletes, so it needs a database holding no token that expired before 2001
/// (the other checks' tokens expire in 2100).
pub async fn prune(store: &dyn CertStore) {
    let now = at(1_000_000_000);
    let mut expired = Vec::new();
    let mut kept = Vec::new();
    for (expires_at, is_expired) in [
        (now - time::Duration::hours(1), true),
        (now - time::Duration::seconds(1), true),
        (now, false),
        (now + time::Duration::seconds(1), false),
    ] {
        let token = UsedToken {
            expires_at,
            ..fresh_token("conformance-admin")
        };
        let certificate = sample_certificate("conformance-admin");
        record_ok(store, &certificate, Some(&token), "a token to prune later").await;
        if is_expired {
            expired.push(token);
        } else {
            kept.push(token);
        }
    }

    let pruned = store
        .prune_used_tokens(now)
        .await
        .unwrap_or_else(|error| panic!("pruning used tokens failed: {error}"));
    assert_eq!(
        pruned,
        expired.len() as u64,
        "pruning at {now} should delete the {} tokens that expired before it, and keep the one \
         expiring exactly then and the one expiring after",
        expired.len()
    );
    let again = store
        .prune_used_tokens(now)
        .await
        .unwrap_or_else(|error| panic!("pruning used tokens a second time failed: {error}"));
    assert_eq!(
        again, 0,
        "pruning twice at the same instant deleted tokens twice"
    );

    for token in &expired {
        let certificate = sample_certificate("conformance-admin");
        record_ok(
            store,
            &certificate,
            Some(token),
            "reusing the jti of a pruned token",
        )
        .await;
    }
    for token in &kept {
        let certificate = sample_certificate("conformance-admin");
        let result = store
            .record_issuance(&certificate, Some(token), &ISSUED_AUDIT)
            .await;
        assert_token_used(
            result,
            &token.jti,
            &format!(
                "reusing a token expiring at {} after pruning at {now}",
                token.expires_at
            ),
        );
    }
}

/// [`RACERS`] issuances with the same token at once, spread over `stores` (which must share one
/// database: several handles stand for several mayfly instances): exactly one succeeds, the rest
/// are refused as replays, and only the winner's certificate is stored.
pub async fn concurrent_token_use(stores: &[&dyn CertStore]) {
    assert!(
        !stores.is_empty(),
        "concurrent_token_use needs at least one store"
    );
    let token = fresh_token("conformance-admin");
    let certificates: Vec<IssuedCertificate> = (0..RACERS)
        .map(|_| sample_certificate("conformance-admin"))
        .collect();
    let attempts = certificates
        .iter()
        .enumerate()
        .map(|(i, certificate)| {
            stores[i % stores.len()].record_issuance(certificate, Some(&token), &ISSUED_AUDIT)
        })
        .collect();
    let results = join_all(attempts).await;

    let winners: Vec<&IssuedCertificate> = certificates
        .iter()
        .zip(&results)
        .filter(|(_, result)| result.is_ok())
        .map(|(certificate, _)| certificate)
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "{RACERS} concurrent issuances with one token: expected exactly one to succeed, got \
         {results:?}"
    );
    for (certificate, result) in certificates.iter().zip(results) {
        if result.is_ok() {
            assert_stored(stores[0], certificate, "the winner of a race for one token").await;
        } else {
            assert_token_used(result, &token.jti, "losing a race for one token");
            assert_absent(
                stores[0],
                &certificate.serial,
                "after losing a race for its token",
            )
            .await;
        }
    }
}

/// [`RACERS`] unrelated issuances at once, spread over `stores` (sharing one database): all
/// succeed. Contention between writers must be waited out, not reported as a failure.
pub async fn concurrent_distinct_issuances(stores: &[&dyn CertStore]) {
    assert!(
        !stores.is_empty(),
        "concurrent_distinct_issuances needs at least one store"
    );
    let issuances: Vec<(IssuedCertificate, UsedToken)> = (0..RACERS)
        .map(|_| {
            (
                sample_certificate("conformance-admin"),
                fresh_token("conformance-admin"),
            )
        })
        .collect();
    let attempts = issuances
        .iter()
        .enumerate()
        .map(|(i, (certificate, token))| {
            stores[i % stores.len()].record_issuance(certificate, Some(token), &ISSUED_AUDIT)
        })
        .collect();
    let results = join_all(attempts).await;
    for ((certificate, _), result) in issuances.iter().zip(results) {
        if let Err(error) = result {
            panic!(
                "one of {RACERS} concurrent unrelated issuances (serial {}) failed: {error:?}",
                certificate.serial
            );
        }
        assert_stored(
            stores[0],
            certificate,
            "after concurrent unrelated issuances",
        )
        .await;
    }
}

/// A decimal serial number no other call in any run has used: the process's start time in
/// nanoseconds, then a counter.
pub fn fresh_serial() -> String {
    static START: OnceLock<u128> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let start = START.get_or_init(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |elapsed| elapsed.as_nanos())
    });
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{start}{count:06}")
}

/// A token of `provisioner` with a fresh `jti`, expiring in 2100.
pub fn fresh_token(provisioner: &str) -> UsedToken {
    UsedToken {
        jti: format!("conformance-{}", fresh_serial()),
        provisioner: provisioner.to_owned(),
        expires_at: at(4_102_444_800),
    }
}

/// A plausible certificate of `provisioner` with a fresh serial.
pub fn sample_certificate(provisioner: &str) -> IssuedCertificate {
    let serial = fresh_serial();
    IssuedCertificate {
        der: [0x30, 0x82, 0x01, 0x0a]
            .into_iter()
            .chain(serial.bytes())
            .collect(),
        subject: format!("host-{serial}.example.test"),
        sans: vec![
            format!("host-{serial}.example.test"),
            "192.0.2.7".to_owned(),
        ],
        not_before: at(1_750_000_000),
        not_after: at(1_750_003_600),
        provisioner: provisioner.to_owned(),
        crl_shard: None,
        serial,
    }
}

fn at(unix_seconds: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix_seconds)
        .unwrap_or_else(|error| panic!("test time {unix_seconds} out of range: {error}"))
}

async fn record_ok(
    store: &dyn CertStore,
    certificate: &IssuedCertificate,
    token: Option<&UsedToken>,
    what: &str,
) {
    if let Err(error) = store
        .record_issuance(certificate, token, &ISSUED_AUDIT)
        .await
    {
        panic!(
            "{what}: storing serial {} failed: {error:?}",
            certificate.serial
        );
    }
}

async fn load(store: &dyn CertStore, serial: &str) -> Option<StoredCertificate> {
    store
        .certificate(serial)
        .await
        .unwrap_or_else(|error| panic!("looking up serial {serial} failed: {error:?}"))
}

async fn assert_stored(store: &dyn CertStore, expected: &IssuedCertificate, what: &str) {
    let expected = StoredCertificate {
        certificate: expected.clone(),
        status: CertificateStatus::Valid,
        revocation: None,
    };
    let loaded = load(store, &expected.certificate.serial).await;
    assert_eq!(
        loaded.as_ref(),
        Some(&expected),
        "{what}: serial {} does not load back as it was stored",
        expected.certificate.serial
    );
}

async fn assert_absent(store: &dyn CertStore, serial: &str, what: &str) {
    let loaded = load(store, serial).await;
    assert!(
        loaded.is_none(),
        "{what}: serial {serial} should not be stored, but loads as {loaded:?}"
    );
}

fn assert_token_used(result: Result<(), StoreError>, jti: &str, what: &str) {
    match result {
        Err(StoreError::TokenAlreadyUsed { jti: ref refused }) if refused == jti => {}
        other => panic!("{what}: returned {other:?}, expected TokenAlreadyUsed for jti {jti:?}"),
    }
}

/// Drives the futures concurrently on the current task and collects their outputs in order.
///
/// The futures borrow the store, so they cannot be spawned as tasks; they still overlap at the
/// database, which is what the races need.
async fn join_all<'a, T>(mut futures: Vec<BoxFuture<'a, T>>) -> Vec<T> {
    let mut outputs: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs
        .into_iter()
        .map(|output| output.unwrap_or_else(|| unreachable!("every future completed")))
        .collect()
}

/// The audit context of the issuances in these checks.
pub static ISSUED_AUDIT: std::sync::LazyLock<AuditContext> =
    std::sync::LazyLock::new(|| AuditContext {
        action: AuditAction::Issued,
        at: at(1_800_000_000),
        credential: "token:conformance".into(),
        address: Some(std::net::IpAddr::from([192, 0, 2, 10])),
        detail: "jti conformance".into(),
    });

/// The audit context of the revocations in these checks.
pub static REVOKED_AUDIT: std::sync::LazyLock<AuditContext> =
    std::sync::LazyLock::new(|| AuditContext {
        action: AuditAction::Revoked,
        detail: "keyCompromise".into(),
        ..ISSUED_AUDIT.clone()
    });

/// The audit context of the SSH issuances in these checks.
pub static SSH_ISSUED_AUDIT: std::sync::LazyLock<AuditContext> =
    std::sync::LazyLock::new(|| AuditContext {
        action: AuditAction::SshIssued,
        ..ISSUED_AUDIT.clone()
    });

/// The audit context of the SSH revocations in these checks.
pub static SSH_REVOKED_AUDIT: std::sync::LazyLock<AuditContext> =
    std::sync::LazyLock::new(|| AuditContext {
        action: AuditAction::SshRevoked,
        ..REVOKED_AUDIT.clone()
    });
