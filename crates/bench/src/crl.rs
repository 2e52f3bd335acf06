//! `mayfly-bench crl`: how long CRLs take to make (store query, encoding, signature) and how
//! much memory they need: the complete CRL, every shard, their publication as files, and the
//! time from a revocation to its shard's new CRL. The store is seeded directly with SQL, far
//! faster than issuing N certificates, or an existing one is used (`--db`, filled with
//! `mayfly-bench fill` for millions of certificates).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use mayfly_authority::audit::{AuditAction, AuditContext};
use mayfly_authority::clock::SystemClock;
use mayfly_authority::crl::{CrlKind, CrlPublisher, CrlSettings};
use mayfly_authority::static_site::{Published, StaticSite};
use mayfly_authority::store::{CertStore, CrlShard, IssuedCertificate, Revocation};
use mayfly_pki::issuer::IssuerIdentity;
use mayfly_pki::{KeyAlgorithm, PrivateKey, SerialNumber};

#[derive(Debug, clap::Args)]
pub struct CrlArgs {
    /// Revoked certificates to seed a new SQLite store with (ignored with --db).
    #[arg(long, value_name = "N", default_value_t = 100_000,
          value_parser = clap::value_parser!(u32).range(0..=10_000_000))]
    pub entries: u32,
    /// Use this existing store instead of seeding one: a SQLite file, or a postgres:// or
    /// mysql:// URL (fill it with `mayfly-bench fill`).
    #[arg(long, value_name = "PATH|URL")]
    pub db: Option<String>,
    /// Shards to spread certificates over (crl.shards); with more than one, every shard's CRL
    /// is made and timed, and a revocation's latency to its shard is measured.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=4096))]
    pub shards: u16,
    /// Also write the CRLs as files (as `mayfly ca publish` does) and time it.
    #[arg(long)]
    pub publish: bool,
    /// Directory for the seeded SQLite database and the published files [default: a new one
    /// under the OS temp dir, removed afterwards].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Print the report as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: CrlArgs) -> anyhow::Result<()> {
    let (dir, remove) = match &args.dir {
        Some(dir) => (dir.clone(), false),
        None => (
            std::env::temp_dir().join(format!("mayfly-bench-crl-{}", std::process::id())),
            true,
        ),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let result = measure(&args, &dir).await;
    if remove {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn settings(shards: u16) -> CrlSettings {
    CrlSettings {
        url: "http://ca.internal:8080/1.0/crl".into(),
        lifetime: time::Duration::hours(24),
        renew_after: time::Duration::hours(16),
        generate_on_revoke: true,
        keep_expired: false,
        delta: None,
        shards,
        shard_base: "http://ca.internal:8080/1.0/crls".into(),
    }
}

/// One timed step: seconds, and the peak RSS above the RSS before it (KiB).
struct Step {
    seconds: f64,
    peak_kib: Option<u64>,
}

impl Step {
    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "seconds": (self.seconds * 1000.0).round() / 1000.0,
            "peak_rss_kib": self.peak_kib,
        })
    }
}

/// Runs `step`, with the process's peak RSS reset first (Linux: `clear_refs` 5), so each step's
/// peak is its own.
async fn timed<T>(
    step: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<(T, Step)> {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let start = Instant::now();
    let value = step.await?;
    let seconds = start.elapsed().as_secs_f64();
    Ok((
        value,
        Step {
            seconds,
            peak_kib: memory_kib("VmHWM:"),
        },
    ))
}

async fn open_store(
    args: &CrlArgs,
    dir: &Path,
) -> anyhow::Result<(Arc<dyn CertStore>, Option<f64>)> {
    use mayfly_store::{AnyStore, Dialect, Location};
    let location = match args.db.as_deref() {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Location::Server {
                dialect: Dialect::Postgres,
                url: url.to_owned(),
            }
        }
        Some(url) if url.starts_with("mysql://") => Location::Server {
            dialect: Dialect::MySql,
            url: url.to_owned(),
        },
        Some(path) => Location::Sqlite(PathBuf::from(path)),
        None => {
            let db = dir.join("bench.db");
            let store = AnyStore::open(&Location::Sqlite(db.clone())).await?;
            let entries = usize::try_from(args.entries).context("--entries is too large")?;
            let seeding = Instant::now();
            seed(&db, entries, &settings(args.shards)).await?;
            return Ok((store.cert_store(), Some(seeding.elapsed().as_secs_f64())));
        }
    };
    let store = AnyStore::open(&location)
        .await
        .with_context(|| format!("--db {}", args.db.as_deref().unwrap_or_default()))?;
    Ok((store.cert_store(), None))
}

async fn measure(args: &CrlArgs, dir: &Path) -> anyhow::Result<()> {
    let (store, seed_seconds) = open_store(args, dir).await?;
    let key = Arc::new(PrivateKey::generate(KeyAlgorithm::EcP256)?);
    let later = time::OffsetDateTime::now_utc() + time::Duration::days(365);
    let ca = mayfly_pki::cert::create_root("Bench CA", &key, later)?;
    let publisher = |shards: u16| -> anyhow::Result<CrlPublisher> {
        Ok(CrlPublisher::new(
            settings(shards),
            IssuerIdentity::from_certificate(&ca)?,
            Arc::clone(&key) as Arc<dyn mayfly_pki::Signer>,
            Arc::clone(&store),
            Arc::new(SystemClock),
            time::Duration::minutes(1),
        ))
    };
    // Whether the first complete CRL below reads a saved revoked set (an earlier run saved
    // one) or every revoked row.
    let full_source = match store
        .revoked_snapshot(mayfly_authority::store::RevokedSetKind::Unexpired)
        .await?
    {
        Some(_) => "snapshot",
        None => "rows",
    };
    let rss_before = memory_kib("VmRSS:");

    // The complete CRL alone, as a CA without shards makes it.
    let full_only = publisher(1)?;
    let (full, full_step) = timed(async { Ok(full_only.current(CrlKind::Full).await?) }).await?;
    // Not held by the bench during the next step: the publisher keeps its own, as a CA does.
    let (full_number, full_entries, full_bytes) =
        (full.number, count_entries(&full.der)?, full.der.len());
    drop(full);
    // The next one, after a revocation: the revoked set is in memory and only the news are
    // read, as in a CA that has made its first CRL.
    let probe = record_probe(store.as_ref(), &SerialNumber::random()?, None).await?;
    let (next, next_step) = timed(async {
        revoke_probe(store.as_ref(), &probe).await?;
        full_only.revoked(None);
        Ok(full_only.current(CrlKind::Full).await?)
    })
    .await?;
    anyhow::ensure!(
        next.number > full_number && count_entries(&next.der)? == full_entries + 1,
        "the complete CRL after a revocation does not list it"
    );
    // Saved for the next start, as the server does after a refresh; then a new publisher, as
    // after a restart, makes its first complete CRL from the saved set and the news.
    // Not saved when the publisher read a snapshot under ten minutes old (an earlier run's).
    let (saved, save_step) = timed(async { Ok(full_only.save_revoked_set().await?) }).await?;
    drop((full_only, next));
    let restarted = publisher(1)?;
    let (after_restart, restart_step) =
        timed(async { Ok(restarted.current(CrlKind::Full).await?) }).await?;
    anyhow::ensure!(
        count_entries(&after_restart.der)? == full_entries + 1,
        "the complete CRL after a restart does not list every revocation"
    );
    drop((restarted, after_restart));

    let mut report = serde_json::json!({
        "entries": full_entries,
        "seed_seconds": seed_seconds.map(|s| (s * 1000.0).round() / 1000.0),
        "full": full_step.json(),
        "full_source": full_source,
        "full_next": next_step.json(),
        "save_set": save_step.json(),
        "set_saved": saved,
        "full_after_restart": restart_step.json(),
        "crl_bytes": full_bytes,
        "rss_before_kib": rss_before,
        "shards": args.shards,
    });

    let sharded = publisher(args.shards)?;
    if args.shards > 1 {
        // Every shard, then the complete CRL: one refresh, as the server's first one.
        let ((), all_step) = timed(async { Ok(sharded.refresh().await?) }).await?;
        report["all_shards_and_full"] = all_step.json();
        let mut largest = 0;
        for index in 0..args.shards {
            if let Some(shard) = CrlShard::new(index) {
                largest = largest.max(sharded.current(CrlKind::Shard(shard)).await?.der.len());
            }
        }
        report["largest_shard_bytes"] = largest.into();
        let latency = revocation_latency(&sharded, store.as_ref()).await?;
        report["revocation_to_shard_seconds"] = ((latency * 10_000.0).round() / 10_000.0).into();
    }
    if args.publish {
        let site = StaticSite::new(dir.join("site"));
        let (written, step) = timed(async {
            let mut written = Published::default();
            site.write_crls(&sharded, &mut written).await?;
            Ok(written)
        })
        .await?;
        report["publish"] = step.json();
        report["published_files"] = written.crls.into();
        report["published_bytes"] = written.bytes.into();
    }
    // The store's part alone: every revoked row in one query, as the complete CRL read them
    // before it kept them in memory. Last, so that the memory of its rows does not count in
    // the steps above.
    let (rows, query_step) = timed(async {
        let query = mayfly_authority::store::RevokedQuery {
            unexpired_at: Some(time::OffsetDateTime::now_utc()),
            ..Default::default()
        };
        Ok(store.revoked_certificates(query).await?.len())
    })
    .await?;
    report["query"] = query_step.json();
    report["query_rows"] = rows.into();
    report["peak_rss_kib"] = memory_kib("VmHWM:").into();
    if args.json {
        say!("{report}");
    } else {
        say!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}

/// Records and revokes one more certificate, then times how long until its shard's CRL, as
/// the server would serve it next, lists it: the revocation's commit and the shard's remaking.
async fn revocation_latency(
    publisher: &CrlPublisher,
    store: &dyn CertStore,
) -> anyhow::Result<f64> {
    let serial = SerialNumber::random()?;
    let shard = publisher
        .settings()
        .shard_for(&serial)
        .context("no shard for the probe certificate")?;
    let probe = record_probe(store, &serial, Some(shard)).await?;
    let before = publisher.current(CrlKind::Shard(shard)).await?.number;
    let start = Instant::now();
    revoke_probe(store, &probe).await?;
    publisher.revoked(Some(shard));
    let crl = publisher.current(CrlKind::Shard(shard)).await?;
    let seconds = start.elapsed().as_secs_f64();
    anyhow::ensure!(crl.number > before, "the shard was not remade");
    Ok(seconds)
}

/// Stores a certificate of `shard` with `serial`, valid for a day; its decimal serial.
async fn record_probe(
    store: &dyn CertStore,
    serial: &SerialNumber,
    shard: Option<CrlShard>,
) -> anyhow::Result<String> {
    let now = time::OffsetDateTime::now_utc();
    let decimal = serial.to_decimal();
    let certificate = IssuedCertificate {
        serial: decimal.clone(),
        der: vec![0x30, 0x00],
        subject: "latency.bench".into(),
        sans: Vec::new(),
        not_before: now - time::Duration::minutes(1),
        not_after: now + time::Duration::hours(24),
        provisioner: "bench".into(),
        crl_shard: shard,
    };
    let audit = AuditContext::without_client(AuditAction::Issued, now, "bench", "");
    store.record_issuance(&certificate, None, &audit).await?;
    Ok(decimal)
}

/// Revokes the certificate [`record_probe`] stored.
async fn revoke_probe(store: &dyn CertStore, serial: &str) -> anyhow::Result<()> {
    let now = time::OffsetDateTime::now_utc();
    let revocation = Revocation {
        serial: serial.to_owned(),
        reason_code: 1,
        reason: String::new(),
        revoked_at: now,
        revoked_by: "bench".into(),
    };
    let audit = AuditContext::without_client(AuditAction::Revoked, now, "bench", "");
    store.revoke(&revocation, None, &audit).await?;
    Ok(())
}

/// How many entries a DER CRL lists (without a parser's copy of each: the bench measures
/// memory).
fn count_entries(der: &[u8]) -> anyhow::Result<usize> {
    Ok(mayfly_pki::crl::count_entries(der)?)
}

/// Inserts `entries` revoked, unexpired certificates in one transaction of multi-row INSERTs,
/// each in the shard `settings` gives its serial.
async fn seed(db: &Path, entries: usize, settings: &CrlSettings) -> anyhow::Result<()> {
    use sqlx::Connection;
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(db);
    let mut connection = sqlx::SqliteConnection::connect_with(&options).await?;
    let mut tx = connection.begin().await?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut done = 0;
    while done < entries {
        // 12 bound values a row; SQLite allows 32,766 in one statement.
        let chunk = (entries - done).min(2_000);
        let mut insert = sqlx::QueryBuilder::new(
            "INSERT INTO certificates (serial, der, subject, sans, not_before, not_after, \
             provisioner, status, created_at, revoked_at, revocation_reason, crl_shard) ",
        );
        let serials = (0..chunk)
            .map(|_| {
                SerialNumber::random().map(|s| {
                    let shard = settings.shard_for(&s).map(|shard| i64::from(shard.index()));
                    (s.to_decimal(), shard)
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        insert.push_values(
            serials.iter().enumerate(),
            |mut row, (i, (serial, shard))| {
                row.push_bind(serial.as_str())
                    .push_bind(&[0x30u8, 0x00][..])
                    .push_bind("bench")
                    .push_bind("[]")
                    .push_bind(now - 3600)
                    .push_bind(now + 86_400)
                    .push_bind("bench")
                    .push_bind("revoked")
                    .push_bind(now)
                    .push_bind(now - 60)
                    .push_bind(i64::from([1u8, 4, 5][i % 3]))
                    .push_bind(*shard);
            },
        );
        insert.build().execute(&mut *tx).await?;
        done += chunk;
    }
    tx.commit().await?;
    // A store that has been running is checkpointed; without this the first write measured
    // would copy the whole seed from the write-ahead log into the database.
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut connection)
        .await?;
    Ok(())
}

/// A memory figure of this process from /proc/self/status, in KiB.
fn memory_kib(field: &str) -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix(field))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}
