//! The pure stages of an issuance, without a server, a network or a store: a regression in one
//! of them shows here (`cargo bench -p mayfly-bench`) before it drowns in a load test's noise.
//!
//! Each stage runs on what the one before it made, as `/1.0/sign` chains them: the JWK
//! provisioner's token is verified into an authorization, the PEM CSR is parsed and its
//! signature checked, the template is made from both (names, validity, policy, a fresh serial),
//! and the leaf is signed with the intermediate's key. Beside them, a CRL of 1,000 entries is
//! encoded and signed; the CRL with no entry is the signature's share of it.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use mayfly_authority::credential::{Audiences, Endpoint, TokenContext, verify_token};
use mayfly_authority::policy::{NamePolicies, ValidityRequest, for_request};
use mayfly_authority::provisioner::{JwkProvisioner, Provisioner};
use mayfly_authority::token::NewToken;
use mayfly_config::claims::Claims;
use mayfly_pki::crl::{CrlEntry, CrlParams, CrlScope, RevocationUrls, build_crl};
use mayfly_pki::issuer::IssuerIdentity;
use mayfly_pki::jose::jwk::Jwk;
use mayfly_pki::{Csr, KeyAlgorithm, LeafSigner, LeafTemplate, PrivateKey, San, SerialNumber};
use time::{Duration, OffsetDateTime};

const CA_URL: &str = "https://ca.internal:9000";
const NAME: &str = "svc.internal";

/// The pieces a `/sign` request meets: the CA's keys, its JWK provisioner, one request.
struct Fixture {
    provisioners: Vec<Provisioner>,
    audiences: Vec<String>,
    root_fingerprints: Vec<String>,
    token: String,
    csr_pem: String,
    spki_der: Vec<u8>,
    signer: LeafSigner,
    intermediate_der: Vec<u8>,
    intermediate_key: Arc<PrivateKey>,
}

fn fixture() -> Fixture {
    let later = OffsetDateTime::now_utc() + Duration::days(365);
    let root_key = PrivateKey::generate(KeyAlgorithm::EcP256).expect("root key");
    let root = mayfly_pki::cert::create_root("Bench Root CA", &root_key, later).expect("root");
    let intermediate_key = Arc::new(PrivateKey::generate(KeyAlgorithm::EcP256).expect("key"));
    let intermediate_der = mayfly_pki::cert::create_intermediate(
        "Bench Intermediate CA",
        &intermediate_key,
        &root,
        &root_key,
        later,
        None,
    )
    .expect("intermediate");
    let signer = LeafSigner::new(&intermediate_der, intermediate_key.clone())
        .expect("leaf signer")
        .with_revocation_urls(RevocationUrls {
            crl: Some("http://ca.internal/1.0/crl".into()),
            delta_crl: None,
            ocsp: Some("http://ca.internal/ocsp".into()),
            ca_issuers: None,
        });

    let provisioner_key = PrivateKey::generate(KeyAlgorithm::EcP256).expect("provisioner key");
    let public = Jwk::public_from_key(&provisioner_key).expect("public JWK");
    let kid = public.kid.clone().expect("a kid");
    let provisioners = vec![Provisioner::Jwk(Box::new(JwkProvisioner {
        name: "bench".into(),
        key: public,
        kid: kid.clone(),
        encrypted_key: None,
        claims: Claims::DEFAULT,
        admin: false,
    }))];
    let root_fingerprint = mayfly_pki::cert::fingerprint_sha256(&root);
    let now = OffsetDateTime::now_utc();
    let token = NewToken {
        issuer: "bench",
        ca_url: CA_URL,
        endpoint: "sign",
        subject: NAME,
        sans: &[],
        root_fingerprint: &root_fingerprint,
        not_before: now,
        expires_at: now + Duration::minutes(50),
    }
    .sign(&provisioner_key, &kid)
    .expect("token");

    let subject_key = PrivateKey::generate(KeyAlgorithm::EcP256).expect("subject key");
    let csr_pem =
        mayfly_pki::csr::create_pem(&subject_key, NAME, &[San::parse(NAME).expect("SAN")])
            .expect("CSR");
    Fixture {
        provisioners,
        audiences: Audiences::new(&["ca.internal".to_owned()])
            .of(Endpoint::Sign)
            .to_vec(),
        root_fingerprints: vec![root_fingerprint],
        token,
        csr_pem,
        spki_der: subject_key.public_key_spki_der().expect("SPKI"),
        signer,
        intermediate_der,
        intermediate_key,
    }
}

fn stages(c: &mut Criterion) {
    let f = fixture();
    // verify_token is async only for OIDC key fetches; a JWK token completes on first poll.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let context = || TokenContext {
        provisioners: &f.provisioners,
        audiences: &f.audiences,
        root_fingerprints: &f.root_fingerprints,
        now: OffsetDateTime::now_utc(),
        endpoint: Endpoint::Sign,
        oidc: None,
    };
    let authorization = runtime
        .block_on(verify_token(&f.token, &context()))
        .expect("the token verifies");
    let csr = Csr::from_pem(&f.csr_pem).expect("the CSR parses");
    let policies = NamePolicies::default();
    let template = || {
        for_request(
            &authorization,
            &csr,
            ValidityRequest::default(),
            Duration::minutes(1),
            OffsetDateTime::now_utc(),
            &policies,
        )
    };
    template().expect("the template is made");

    c.bench_function("token verify (JWK provisioner)", |b| {
        b.iter(|| runtime.block_on(verify_token(black_box(&f.token), &context())))
    });
    c.bench_function("CSR parse and signature check (PEM, P-256)", |b| {
        b.iter(|| Csr::from_pem(black_box(&f.csr_pem)))
    });
    c.bench_function("template (names, validity, policy, serial)", |b| {
        b.iter(template)
    });
    let now = OffsetDateTime::now_utc();
    let leaf = LeafTemplate {
        common_name: NAME.into(),
        sans: vec![San::parse(NAME).expect("SAN")],
        not_before: now,
        not_after: now + Duration::hours(24),
        serial: SerialNumber::random().expect("serial"),
        rsa_key: false,
        provisioner: Some(mayfly_pki::ProvisionerExtension {
            type_code: mayfly_pki::cert::STEP_PROVISIONER_TYPE_JWK,
            name: "bench".into(),
            credential_id: "0".repeat(43),
        }),
    };
    c.bench_function("leaf sign (P-256, CRL and OCSP URLs)", |b| {
        b.iter(|| f.signer.sign(black_box(&leaf), &f.spki_der))
    });

    let issuer = IssuerIdentity::from_certificate(&f.intermediate_der).expect("issuer");
    let entries: Vec<CrlEntry> = (0..1000u32)
        .map(|i| CrlEntry {
            serial: SerialNumber::random()
                .expect("serial")
                .as_be_bytes()
                .to_vec(),
            revoked_at: now - Duration::minutes(i64::from(i)),
            reason_code: [0u8, 1, 4, 5][i as usize % 4],
        })
        .collect();
    let params = CrlParams {
        number: 42,
        this_update: now,
        next_update: now + Duration::hours(24),
        distribution_points: &[],
        scope: CrlScope::Full { freshest: None },
    };
    let key: &dyn mayfly_pki::Signer = f.intermediate_key.as_ref();
    c.bench_function("CRL DER, 1,000 entries (encode and sign)", |b| {
        b.iter(|| build_crl(&issuer, key, &params, black_box(&entries)))
    });
    c.bench_function("CRL DER, no entry (the signature's share)", |b| {
        b.iter(|| build_crl(&issuer, key, &params, black_box(&[] as &[CrlEntry])))
    });
}

criterion_group!(benches, stages);
criterion_main!(benches);
