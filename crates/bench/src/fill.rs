//! `mayfly-bench fill`: N synthetic certificate records, M of them revoked, written straight
//! into a store (SQLite or PostgreSQL/MySQL) through its bulk loader, so that issuance, start-up
//! and CRLs can be measured against a database of ten million certificates.
//!
//! The records look like a CA's own: one real leaf is signed (P-256, with the extensions mayfly
//! writes, a CRL distribution point among them) and every record carries a copy with its own
//! serial written over the template's, so rows have a real certificate's size (the signature
//! no longer matches: nothing reads it back to verify). Serials are made as the authority makes
//! them, the issuance time in their high bits, with issuance spread evenly over the 12 hours
//! before the run and 24 hours of validity (step's default), so every certificate is unexpired
//! when the load ends and none is pruned by the retention job for a month. Each record has its
//! issuance's audit entry, and each revoked one its revocation's. CRL shards are assigned by the
//! authority's own rule ([`CrlSettings::shard_for`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use mayfly_authority::audit::{AuditAction, AuditContext};
use mayfly_authority::crl::CrlSettings;
use mayfly_authority::revocation::ReasonCode;
use mayfly_authority::store::{IssuedCertificate, Revocation};
use mayfly_pki::crl::RevocationUrls;
use mayfly_pki::{KeyAlgorithm, LeafSigner, LeafTemplate, PrivateKey, San, SerialNumber};
use mayfly_store::{AnyStore, BulkCertificate, Dialect, Location};
use time::{Duration, OffsetDateTime};

#[derive(Debug, clap::Args)]
pub struct FillArgs {
    /// The database: a PostgreSQL or MySQL URL (postgres://user@host:port/db, mysql://...), or
    /// the path of a SQLite file (created when missing). Its schema is brought up to date;
    /// records already there stay.
    #[arg(long, value_name = "URL|PATH")]
    pub db: String,
    /// Certificates to write.
    #[arg(long, value_name = "N", default_value_t = 100_000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    pub count: u64,
    /// How many of them are revoked: spread evenly over the N, with reason codes cycling
    /// through superseded, cessationOfOperation, unspecified, keyCompromise,
    /// affiliationChanged and privilegeWithdrawn.
    #[arg(long, value_name = "M", default_value_t = 0)]
    pub revoked: u64,
    /// CRL shards the certificates are spread over, as the authority's crl.shards does (1: no
    /// shard, every certificate on the complete CRL).
    #[arg(long, value_name = "S", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=4096))]
    pub shards: u16,
    /// Print the report as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Certificates per transaction: large enough that the commit's fsync is noise, small enough
/// that a batch's rows (about 2 KB each in memory) stay a few tens of megabytes.
const BATCH: u64 = 10_000;
/// The provisioner the records name.
const PROVISIONER: &str = "fill";
/// Issuance is spread over this long before the run.
const SPAN: Duration = Duration::hours(12);
/// Each certificate's validity, from its issuance (after a one-minute backdate).
const VALIDITY: Duration = Duration::hours(24);
const BACKDATE: Duration = Duration::minutes(1);
/// Revocation reasons in turn: mostly the everyday ones, some key compromises.
const REASONS: [u8; 10] = [4, 5, 0, 4, 5, 1, 4, 0, 3, 9];

pub async fn run(args: FillArgs) -> anyhow::Result<()> {
    if args.revoked > args.count {
        bail!(
            "--revoked {} is more than --count {}",
            args.revoked,
            args.count
        );
    }
    let location = location(&args.db)?;
    let store = AnyStore::open(&location)
        .await
        .with_context(|| format!("opening {}", location.display_name()))?;
    let result = fill(&store, &location, &args).await;
    store.close().await;
    result
}

/// `--db` as a store location: a URL by its scheme, anything else a SQLite file.
fn location(db: &str) -> anyhow::Result<Location> {
    let Some((scheme, _)) = db.split_once("://") else {
        return Ok(Location::Sqlite(PathBuf::from(db)));
    };
    let dialect = match scheme.to_ascii_lowercase().as_str() {
        "postgres" | "postgresql" => Dialect::Postgres,
        "mysql" => Dialect::MySql,
        "sqlite" => bail!("--db: give a SQLite database as a file path, not a sqlite:// URL"),
        other => bail!("--db: {other}:// is not a database this store knows (postgres, mysql)"),
    };
    Ok(Location::Server {
        dialect,
        url: db.to_owned(),
    })
}

async fn fill(store: &AnyStore, location: &Location, args: &FillArgs) -> anyhow::Result<()> {
    let size_before = store.database_size().await?;
    let generator = Generator::new(args.count, args.revoked, args.shards)?;
    // Records are made on a thread of their own while the previous batch is written.
    let (batches, mut incoming) = tokio::sync::mpsc::channel::<anyhow::Result<Vec<_>>>(2);
    let count = args.count;
    let making = std::thread::spawn(move || {
        let mut start = 0;
        while start < count {
            let end = (start + BATCH).min(count);
            let batch = generator.batch(start..end);
            let failed = batch.is_err();
            if batches.blocking_send(batch).is_err() || failed {
                break;
            }
            start = end;
        }
    });

    let began = Instant::now();
    let mut stored = 0u64;
    let mut reported = Instant::now();
    while let Some(batch) = incoming.recv().await {
        let batch = batch?;
        stored += store.bulk_load(&batch).await?;
        if !args.json && reported.elapsed().as_secs() >= 10 {
            reported = Instant::now();
            let seconds = began.elapsed().as_secs_f64();
            note!(
                "{stored} of {count} certificates, {:.0} a second",
                stored as f64 / seconds
            );
        }
    }
    let seconds = began.elapsed().as_secs_f64();
    if making.join().is_err() {
        bail!("the thread making the records panicked");
    }
    let size_after = store.database_size().await?;
    let per_second = if seconds > 0.0 {
        stored as f64 / seconds
    } else {
        0.0
    };
    let grown = size_after.saturating_sub(size_before);
    let per_certificate = if stored > 0 {
        grown as f64 / stored as f64
    } else {
        0.0
    };
    if args.json {
        say!(
            "{}",
            serde_json::json!({
                "database": location.display_name(),
                "certificates": stored,
                "revoked": args.revoked,
                "shards": args.shards,
                "seconds": (seconds * 1000.0).round() / 1000.0,
                "certs_per_second": per_second.round(),
                "size_before_bytes": size_before,
                "size_after_bytes": size_after,
                "bytes_per_certificate": per_certificate.round(),
            })
        );
    } else {
        say!("database:        {}", location.display_name());
        say!(
            "certificates:    {stored} ({} revoked, {} shard{})",
            args.revoked,
            args.shards,
            if args.shards == 1 { "" } else { "s" }
        );
        say!("time:            {seconds:.1} s");
        say!("rate:            {per_second:.0} certificates/s");
        say!(
            "database size:   {} -> {} ({per_certificate:.0} bytes per certificate)",
            human_bytes(size_before),
            human_bytes(size_after)
        );
    }
    Ok(())
}

fn human_bytes(bytes: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    format!("{bytes} bytes, {:.1} MiB", bytes as f64 / MIB)
}

/// A signed leaf records copy, and where its serial's bytes and its name (subject and SAN) are
/// in it.
struct Template {
    der: Vec<u8>,
    serial_at: std::ops::Range<usize>,
    name_at: Vec<std::ops::Range<usize>>,
}

/// The name of record `index`: always as long as [`TEMPLATE_NAME`] (`--count` stays below
/// 10^9), so that it can be written over the template's.
fn name_of(index: u64) -> String {
    format!("host-{index:09}.fill.internal")
}

const TEMPLATE_NAME: &str = "host-000000000.fill.internal";

/// Makes the records: the template leaves, and what each record's index decides.
struct Generator {
    /// One template for each shard (its URL differs), or one with no shard.
    templates: Vec<Template>,
    count: u64,
    revoked: u64,
    shards: CrlSettings,
    /// When the first record was issued; the others follow at even intervals.
    first_issued: OffsetDateTime,
    now: OffsetDateTime,
}

impl Generator {
    fn new(count: u64, revoked: u64, shards: u16) -> anyhow::Result<Generator> {
        let now = OffsetDateTime::now_utc();
        let settings = CrlSettings {
            url: "http://ca.internal/1.0/crl".into(),
            lifetime: Duration::hours(24),
            renew_after: Duration::hours(16),
            generate_on_revoke: true,
            keep_expired: false,
            delta: None,
            shards,
            shard_base: "http://ca.internal/1.0/crls".into(),
        };
        let templates = templates(&settings, now)?;
        Ok(Generator {
            templates,
            count,
            revoked,
            shards: settings,
            first_issued: now - SPAN,
            now,
        })
    }

    /// Whether record `index` is revoked: exactly `revoked` of the `count`, evenly spread.
    fn is_revoked(&self, index: u64) -> bool {
        let before = u128::from(index) * u128::from(self.revoked) / u128::from(self.count);
        let after = u128::from(index + 1) * u128::from(self.revoked) / u128::from(self.count);
        after > before
    }

    fn issued_at(&self, index: u64) -> OffsetDateTime {
        let step = SPAN.whole_milliseconds() * i128::from(index) / i128::from(self.count.max(1));
        self.first_issued + Duration::milliseconds(i64::try_from(step).unwrap_or(i64::MAX))
    }

    fn batch(&self, indexes: std::ops::Range<u64>) -> anyhow::Result<Vec<BulkCertificate>> {
        let len = usize::try_from(indexes.end - indexes.start).context("batch too large")?;
        let random = mayfly_pki::random::random_bytes(len * 10)?;
        let mut records = Vec::with_capacity(len);
        let mut revocations = 0usize;
        for (index, random) in indexes.zip(random.chunks_exact(10)) {
            let issued_at = self.issued_at(index);
            let serial = serial_at_time(issued_at, random);
            let name = name_of(index);
            let crl_shard = self.shards.shard_for(&serial);
            let template = crl_shard
                .and_then(|shard| self.templates.get(usize::from(shard.index())))
                .or(self.templates.first())
                .context("no template leaf")?;
            let mut der = template.der.clone();
            let serial_bytes = serial.as_be_bytes();
            // Serials of this century are always 16 bytes, as the template's is.
            if let Some(at) = der
                .get_mut(template.serial_at.clone())
                .filter(|at| at.len() == serial_bytes.len())
            {
                at.copy_from_slice(serial_bytes);
            }
            for range in &template.name_at {
                if let Some(at) = der
                    .get_mut(range.clone())
                    .filter(|at| at.len() == name.len())
                {
                    at.copy_from_slice(name.as_bytes());
                }
            }
            let serial_text = serial.to_decimal();
            let issued = AuditContext {
                action: AuditAction::Issued,
                at: issued_at,
                credential: format!("token:{PROVISIONER}"),
                address: Some(std::net::IpAddr::from([10, 0, 0, 1])),
                // Like a token's `jti`: 64 hex digits.
                detail: format!("jti {}", hex_of(random).repeat(4)),
            };
            let revoked = if self.is_revoked(index) {
                let code = REASONS[revocations % REASONS.len()];
                revocations += 1;
                let revoked_at = issued_at + (self.now - issued_at) / 2;
                let reason = ReasonCode::from_code(i64::from(code))?;
                let revocation = Revocation {
                    serial: serial_text.clone(),
                    reason_code: code,
                    reason: String::new(),
                    revoked_at,
                    revoked_by: format!("token:{PROVISIONER}"),
                };
                let audit = AuditContext {
                    action: AuditAction::Revoked,
                    at: revoked_at,
                    credential: format!("token:{PROVISIONER}"),
                    address: Some(std::net::IpAddr::from([10, 0, 0, 1])),
                    detail: mayfly_authority::audit::revocation_detail(reason, ""),
                };
                Some((revocation, audit))
            } else {
                None
            };
            records.push(BulkCertificate {
                certificate: IssuedCertificate {
                    crl_shard,
                    serial: serial_text,
                    der,
                    subject: name.clone(),
                    sans: vec![name],
                    not_before: issued_at - BACKDATE,
                    not_after: issued_at + VALIDITY,
                    provisioner: PROVISIONER.to_owned(),
                },
                recorded_at: issued_at,
                issued,
                revoked,
            });
        }
        Ok(records)
    }
}

/// A serial as `SerialNumber::random` makes them at `at`: 47 bits of milliseconds above 80
/// random bits (`random`, 10 bytes).
fn serial_at_time(at: OffsetDateTime, random: &[u8]) -> SerialNumber {
    let millis = u128::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    let low = random
        .iter()
        .take(10)
        .fold(0u128, |acc, &b| (acc << 8) | u128::from(b));
    let value = ((millis & ((1 << 47) - 1)) << 80) | low;
    SerialNumber::from_be_bytes(&value.to_be_bytes())
}

fn hex_of(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .take(8)
        .fold(String::with_capacity(16), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

/// Signs the template leaves as the authority signs a leaf (CRL distribution point, OCSP and
/// CA issuer URLs, step's provisioner extension): one a shard, whose URL it carries, or one
/// with the complete CRL's URL.
fn templates(settings: &CrlSettings, now: OffsetDateTime) -> anyhow::Result<Vec<Template>> {
    let key = PrivateKey::generate(KeyAlgorithm::EcP256)?;
    let ca = mayfly_pki::cert::create_root("Fill Intermediate CA", &key, now + VALIDITY * 2)?;
    let signer = LeafSigner::new(&ca, Arc::new(key))?.with_revocation_urls(RevocationUrls {
        crl: Some(settings.url.clone()),
        delta_crl: None,
        ocsp: Some("http://ca.internal/ocsp".into()),
        ca_issuers: Some("http://ca.internal/1.0/intermediate.crt".into()),
    });
    let subject = PrivateKey::generate(KeyAlgorithm::EcP256)?.public_key_spki_der()?;
    let name = TEMPLATE_NAME;
    let serial = serial_at_time(now, &[0x5a; 10]);
    let template = LeafTemplate {
        common_name: name.into(),
        sans: vec![San::parse(name)?],
        not_before: now - BACKDATE,
        not_after: now + VALIDITY,
        serial: serial.clone(),
        rsa_key: false,
        provisioner: Some(mayfly_pki::ProvisionerExtension {
            type_code: mayfly_pki::cert::STEP_PROVISIONER_TYPE_JWK,
            name: PROVISIONER.into(),
            // A JWK thumbprint's length.
            credential_id: "0".repeat(43),
        }),
    };
    let ders = if settings.shards <= 1 {
        vec![signer.sign(&template, &subject)?]
    } else {
        (0..settings.shards)
            .filter_map(mayfly_authority::store::CrlShard::new)
            .map(|shard| signer.sign_in_shard(&template, &subject, &settings.shard_url(shard)))
            .collect::<Result<_, _>>()?
    };
    ders.into_iter()
        .map(|der| {
            let at = der
                .windows(serial.as_be_bytes().len())
                .position(|window| window == serial.as_be_bytes())
                .context("the template leaf does not hold its serial")?;
            let name_at = der
                .windows(name.len())
                .enumerate()
                .filter(|(_, window)| *window == name.as_bytes())
                .map(|(at, _)| at..at + name.len())
                .collect();
            Ok(Template {
                serial_at: at..at + serial.as_be_bytes().len(),
                name_at,
                der,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoked_exactly_m_spread_out() {
        let generator = Generator::new(1000, 7, 1).unwrap();
        let revoked: Vec<u64> = (0..1000).filter(|&i| generator.is_revoked(i)).collect();
        assert_eq!(revoked.len(), 7);
        assert!(
            revoked.windows(2).all(|w| w[1] - w[0] >= 100),
            "{revoked:?}"
        );
        let all = Generator::new(5, 5, 1).unwrap();
        assert!((0..5).all(|i| all.is_revoked(i)));
        let none = Generator::new(5, 0, 1).unwrap();
        assert!(!(0..5).any(|i| none.is_revoked(i)));
    }

    #[test]
    fn records_carry_their_serial_and_shard() {
        let generator = Generator::new(100, 10, 8).unwrap();
        let batch = generator.batch(0..100).unwrap();
        assert_eq!(batch.len(), 100);
        assert_eq!(batch.iter().filter(|r| r.revoked.is_some()).count(), 10);
        let mut serials: Vec<&str> = batch
            .iter()
            .map(|r| r.certificate.serial.as_str())
            .collect();
        serials.dedup();
        assert_eq!(serials.len(), 100);
        let mut shards = std::collections::BTreeSet::new();
        for record in &batch {
            let certificate = &record.certificate;
            let info = mayfly_pki::cert::CertificateInfo::from_der(&certificate.der).unwrap();
            assert_eq!(info.serial.to_decimal(), certificate.serial);
            assert_eq!(info.common_name, certificate.subject);
            let sans: Vec<String> = info.sans.iter().map(ToString::to_string).collect();
            assert_eq!(sans, certificate.sans);
            // The template of the certificate's own shard: its URL is the shard's.
            let shard = certificate.crl_shard.unwrap();
            let urls = mayfly_pki::verify::revocation_urls(&certificate.der).unwrap();
            assert_eq!(urls.crl.unwrap(), generator.shards.shard_url(shard));
            let serial = SerialNumber::from_decimal(&certificate.serial).unwrap();
            assert_eq!(certificate.crl_shard, generator.shards.shard_for(&serial));
            shards.extend(certificate.crl_shard);
            assert!(certificate.not_after > generator.now);
            if let Some((revocation, _)) = &record.revoked {
                assert!(revocation.revoked_at <= generator.now);
                assert!(revocation.revoked_at >= record.recorded_at);
            }
        }
        // 100 serials over 8 shards: all of them get some.
        assert_eq!(shards.len(), 8);
        // Serials grow with issuance time.
        let first = SerialNumber::from_decimal(&batch[0].certificate.serial).unwrap();
        let last = SerialNumber::from_decimal(&batch[99].certificate.serial).unwrap();
        assert!(first.as_be_bytes() < last.as_be_bytes());
    }

    #[test]
    fn names_keep_their_length() {
        assert_eq!(name_of(0), TEMPLATE_NAME);
        assert_eq!(name_of(999_999_999).len(), TEMPLATE_NAME.len());
    }

    #[test]
    fn locations() {
        assert!(matches!(
            location("/tmp/x.db").unwrap(),
            Location::Sqlite(_)
        ));
        assert!(matches!(
            location("postgres://postgres@127.0.0.1/db").unwrap(),
            Location::Server {
                dialect: Dialect::Postgres,
                ..
            }
        ));
        assert!(location("sqlite:///tmp/x.db").is_err());
        assert!(location("redis://h").is_err());
    }
}
