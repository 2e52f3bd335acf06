//! The bulk loader (`mayfly-bench fill`) on SQLite and PostgreSQL: what it writes reads back
//! through the store's own calls as an issuance's and a revocation's rows would, revoked
//! certificates on their shard's CRL, and every change in the audit log.

use mayfly_authority::audit::{AuditAction, AuditContext, AuditQuery};
use mayfly_authority::store::{
    CertificateStatus, CrlShard, IssuedCertificate, Revocation, RevokedQuery,
};
use mayfly_store::testing::TestDatabase;
use mayfly_store::{AnyStore, BulkCertificate, Dialect, Location};
use time::{Duration, OffsetDateTime};

const SHARDS: u16 = 3;

/// `count` records from `first` on; every `revoke_every`-th is revoked, reasons cycling.
fn records(first: usize, count: usize, revoke_every: usize) -> Vec<BulkCertificate> {
    let now =
        OffsetDateTime::from_unix_timestamp(OffsetDateTime::now_utc().unix_timestamp()).unwrap();
    (first..first + count)
        .map(|i| {
            let serial = format!("{}", 1_000_000_000_000u64 + i as u64);
            let name = format!("host-{i}.bulk.test");
            let issued_at = now - Duration::seconds(600) + Duration::milliseconds(i as i64);
            let issued_at =
                OffsetDateTime::from_unix_timestamp(issued_at.unix_timestamp()).unwrap();
            let revoked = (i % revoke_every == 0).then(|| {
                let at = issued_at + Duration::seconds(60);
                (
                    Revocation {
                        serial: serial.clone(),
                        reason_code: [1u8, 4, 5][i % 3],
                        reason: format!("reason {i}"),
                        revoked_at: at,
                        revoked_by: "token:bulk".into(),
                    },
                    AuditContext {
                        action: AuditAction::Revoked,
                        at,
                        credential: "token:bulk".into(),
                        address: None,
                        detail: "keyCompromise".into(),
                    },
                )
            });
            BulkCertificate {
                certificate: IssuedCertificate {
                    serial,
                    der: vec![0x30, 0x03, 0x02, 0x01, (i % 200) as u8],
                    subject: name.clone(),
                    sans: vec![name, "10.0.0.1".into()],
                    not_before: issued_at,
                    not_after: issued_at + Duration::hours(24),
                    provisioner: "bulk".into(),
                    crl_shard: CrlShard::new((i % usize::from(SHARDS)) as u16),
                },
                recorded_at: issued_at,
                issued: AuditContext {
                    action: AuditAction::Issued,
                    at: issued_at,
                    credential: "token:bulk".into(),
                    address: Some(std::net::IpAddr::from([10, 1, 2, 3])),
                    detail: format!("jti {i}"),
                },
                revoked,
            }
        })
        .collect()
}

async fn loads_and_reads_back(store: &AnyStore) {
    let size_before = store.database_size().await.unwrap();
    assert!(size_before > 0, "an empty schema still takes pages");
    // 2,500 records: a full statement, a second one and a partial third, in two transactions.
    let first = records(0, 1500, 7);
    let second = records(1500, 1000, 7);
    assert_eq!(store.bulk_load(&first).await.unwrap(), 1500);
    assert_eq!(store.bulk_load(&second).await.unwrap(), 1000);
    let all: Vec<&BulkCertificate> = first.iter().chain(&second).collect();
    let revoked = all.iter().filter(|r| r.revoked.is_some()).count();
    assert_eq!(revoked, 2500usize.div_ceil(7));

    let full = store.full();
    assert_eq!(full.counts().await.unwrap().certificates, 2500);
    let listed = full
        .revoked_certificates(RevokedQuery::default())
        .await
        .unwrap();
    assert_eq!(listed.len(), revoked);
    let mut on_shards = 0;
    for shard in (0..SHARDS).filter_map(CrlShard::new) {
        let entries = full
            .revoked_certificates(RevokedQuery {
                shard: Some(shard),
                ..RevokedQuery::default()
            })
            .await
            .unwrap();
        assert!(entries.iter().all(|e| e.crl_shard == Some(shard)));
        on_shards += entries.len();
    }
    assert_eq!(on_shards, revoked);

    // A record reads back as the store's own lookup sees an issued or revoked certificate.
    for record in [all[7], all[8], all[2499]] {
        let stored = full
            .certificate(&record.certificate.serial)
            .await
            .unwrap()
            .expect("a loaded certificate is there");
        assert_eq!(stored.certificate, record.certificate);
        match &record.revoked {
            Some((revocation, _)) => {
                assert_eq!(stored.status, CertificateStatus::Revoked);
                assert_eq!(stored.revocation.as_ref(), Some(revocation));
            }
            None => {
                assert_eq!(stored.status, CertificateStatus::Valid);
                assert!(stored.revocation.is_none());
            }
        }
    }

    // Every issuance and every revocation has its audit entry.
    let mut issued = 0;
    let mut revocations = 0;
    let mut after = None;
    loop {
        let page = full
            .audit_entries(&AuditQuery {
                after,
                serial: None,
                since: None,
                limit: 1000,
            })
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for entry in &page {
            match entry.action {
                AuditAction::Issued => issued += 1,
                AuditAction::Revoked => revocations += 1,
                other => panic!("unexpected audit action {other:?}"),
            }
        }
    }
    assert_eq!((issued, revocations), (2500, revoked));
    let entry = full
        .audit_entries(&AuditQuery {
            after: None,
            serial: Some(all[7].certificate.serial.clone()),
            since: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(entry.len(), 2, "{entry:?}");
    assert_eq!(entry[0].sans, all[7].certificate.sans);
    assert_eq!(entry[0].address, "10.1.2.3");

    // A serial already there fails the whole batch: nothing of it is kept.
    let again = records(2499, 2, 7);
    assert!(store.bulk_load(&again).await.is_err());
    assert_eq!(full.counts().await.unwrap().certificates, 2500);
    assert!(store.database_size().await.unwrap() > size_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_load_on_sqlite() {
    let dir = std::env::temp_dir().join(format!("mayfly-store-bulk-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = AnyStore::open(&Location::Sqlite(dir.join("bulk.db")))
        .await
        .unwrap();
    loads_and_reads_back(&store).await;
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

async fn on_server(dialect: Dialect, test: &str) {
    let Some(database) = TestDatabase::create(dialect, test).await else {
        return;
    };
    let store = AnyStore::open(&Location::Server {
        dialect,
        url: database.url().to_owned(),
    })
    .await
    .unwrap();
    loads_and_reads_back(&store).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_load_on_postgres() {
    on_server(Dialect::Postgres, "bulk_load_on_postgres").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_load_on_mysql() {
    on_server(Dialect::MySql, "bulk_load_on_mysql").await;
}

/// SQLite lists revoked certificates in chunks of 20,000 (one text each): across chunk
/// boundaries nothing is lost or repeated, and the bounds and the shard filter still apply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_revoked_listings_span_chunks() {
    let dir = std::env::temp_dir().join(format!("mayfly-store-chunks-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = AnyStore::open(&Location::Sqlite(dir.join("chunks.db")))
        .await
        .unwrap();
    // 45,000 records, every one revoked: more than two chunks, and a short third one.
    for batch in 0..9 {
        store
            .bulk_load(&records(batch * 5_000, 5_000, 1))
            .await
            .unwrap();
    }
    let full = store.cert_store();
    let all = full
        .revoked_certificates(RevokedQuery::default())
        .await
        .unwrap();
    assert_eq!(all.len(), 45_000);
    let distinct: std::collections::HashSet<&str> = all.iter().map(|e| e.serial.as_str()).collect();
    assert_eq!(distinct.len(), 45_000);
    for shard in 0..SHARDS {
        let of_shard = full
            .revoked_certificates(RevokedQuery {
                shard: CrlShard::new(shard),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(of_shard.len(), 15_000, "shard {shard}");
        assert!(of_shard.iter().all(|e| e.crl_shard == CrlShard::new(shard)));
    }
    // The first record's revocation is the earliest (times grow with the index).
    let first = all.iter().map(|e| e.revoked_at).min().unwrap();
    let later = full
        .revoked_certificates(RevokedQuery {
            revoked_since: Some(first + Duration::seconds(30)),
            ..Default::default()
        })
        .await
        .unwrap();
    let expected = all
        .iter()
        .filter(|e| e.revoked_at >= first + Duration::seconds(30))
        .count();
    assert_eq!(later.len(), expected);
    assert!(later.len() < all.len() && !later.is_empty());
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}
