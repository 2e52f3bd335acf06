//! The ID token rules, with tokens signed here and the provider's documents served from memory
//! at fixed times. The end-to-end tests run the same against a real OpenID provider.

use mayfly_config::claims::Claims;
use mayfly_config::config::ProvisionerConfig;
use mayfly_pki::jose::jwk::Jwk;
use mayfly_pki::key::KeyAlgorithm;
use mayfly_pki::{PrivateKey, San};
use serde_json::json;

use super::keys::fake::Documents;
use super::*;

const ISSUER: &str = "https://idp.example";
const DISCOVERY: &str = "https://idp.example/.well-known/openid-configuration";
const JWKS: &str = "https://idp.example/jwks";
const NOW: i64 = 1_800_000_000;

struct Idp {
    key: PrivateKey,
    documents: Documents,
    provisioners: Vec<Provisioner>,
}

fn provisioner(name: &str, client_id: &str, extra: serde_json::Value) -> Provisioner {
    let mut other: std::collections::BTreeMap<String, serde_json::Value> = [
        ("clientID".to_string(), json!(client_id)),
        ("clientSecret".to_string(), json!("s3cret")),
        ("configurationEndpoint".to_string(), json!(DISCOVERY)),
    ]
    .into_iter()
    .collect();
    if let serde_json::Value::Object(extra) = extra {
        other.extend(extra);
    }
    let config = ProvisionerConfig {
        kind: "OIDC".into(),
        name: name.into(),
        key: None,
        encrypted_key: None,
        claims: None,
        options: None,
        admin: false,
        policy: None,
        other,
    };
    Provisioner::from_config(&config, Claims::DEFAULT).unwrap()
}

impl Idp {
    fn new(extra: serde_json::Value) -> Self {
        let key = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
        let documents = Documents::default();
        documents.serve(DISCOVERY, json!({"issuer": ISSUER, "jwks_uri": JWKS}));
        let mut public = Jwk::public_from_key(&key).unwrap();
        public.kid = Some("k1".into());
        documents.serve(JWKS, json!({"keys": [public]}));
        Self {
            key,
            documents,
            provisioners: vec![provisioner("idp", "mayfly", extra)],
        }
    }

    fn claims(&self) -> serde_json::Value {
        json!({
            "iss": ISSUER,
            "sub": "248289761001",
            "aud": "mayfly",
            "iat": NOW,
            "exp": NOW + 600,
            "nonce": "n-0S6_WzA2Mj",
            "email": "Jane.Doe@Example.com",
            "email_verified": true,
        })
    }

    fn sign(&self, claims: &serde_json::Value) -> String {
        mayfly_pki::jose::jws::sign_compact(&self.key, "k1", claims.to_string().as_bytes()).unwrap()
    }

    async fn verify_at(&self, token: &str, endpoint: Endpoint, now: i64) -> Result<Authorization> {
        let audiences = super::super::Audiences::new(&["ca.example".to_string()]);
        let context = TokenContext {
            provisioners: &self.provisioners,
            audiences: audiences.of(endpoint),
            root_fingerprints: &[],
            now: OffsetDateTime::from_unix_timestamp(now).unwrap(),
            endpoint,
            oidc: Some(&self.documents),
        };
        super::super::verify_token(token, &context).await
    }

    async fn verify(&self, claims: &serde_json::Value) -> Result<Authorization> {
        self.verify_at(&self.sign(claims), Endpoint::Sign, NOW)
            .await
    }
}

fn with(mut claims: serde_json::Value, changes: serde_json::Value) -> serde_json::Value {
    if let (Some(claims), serde_json::Value::Object(changes)) = (claims.as_object_mut(), changes) {
        for (key, value) in changes {
            if value.is_null() {
                claims.remove(&key);
            } else {
                claims.insert(key, value);
            }
        }
    }
    claims
}

#[tokio::test]
async fn a_user_gets_exactly_their_identity() {
    let idp = Idp::new(json!({}));
    let authorization = idp.verify(&idp.claims()).await.unwrap();
    assert_eq!(authorization.subject, "248289761001");
    assert_eq!(
        authorization.grant,
        Grant::Fixed(vec![
            San::Email("Jane.Doe@Example.com".into()),
            San::Uri("https://idp.example#248289761001".into()),
        ])
    );
    assert_eq!(authorization.provisioner.type_code, 2);
    assert_eq!(authorization.provisioner.credential_id, "mayfly");
    assert!(!authorization.provisioner.admin);
    let burn = authorization.burn.unwrap();
    assert_eq!(burn.jti, "n-0S6_WzA2Mj");
    assert_eq!(burn.provisioner, "idp");
    let Some(ssh) = authorization.ssh else {
        panic!("a user's SSH claims are derived")
    };
    assert_eq!(ssh.cert_type, "user");
    assert_eq!(ssh.key_id, "Jane.Doe@Example.com");
    assert_eq!(
        ssh.principals,
        ["janedoe", "Jane.Doe", "Jane.Doe@Example.com"]
    );
}

#[tokio::test]
async fn administrators_by_address_or_group_get_what_they_ask_for() {
    let idp = Idp::new(json!({"admins": ["jane.doe@example.com", "Jane.Doe@example.COM", "ops"]}));
    let by_address = idp.verify(&idp.claims()).await.unwrap();
    assert_eq!(by_address.grant, Grant::Requested);
    assert!(by_address.ssh.is_none(), "the request decides");
    let by_group = idp
        .verify(&with(
            idp.claims(),
            json!({"email": "bob@example.com", "groups": ["ops"]}),
        ))
        .await
        .unwrap();
    assert_eq!(by_group.grant, Grant::Requested);
    // The local part is compared as it is: another case is another mailbox.
    let other = idp
        .verify(&with(
            idp.claims(),
            json!({"email": "JANE.DOE@example.com"}),
        ))
        .await
        .unwrap();
    assert!(matches!(other.grant, Grant::Fixed(_)));
}

#[tokio::test]
async fn the_time_window_has_the_60_second_leeway_and_no_lifetime_cap() {
    let idp = Idp::new(json!({}));
    let token = idp.sign(&with(idp.claims(), json!({"exp": NOW + 86_400})));
    assert!(idp.verify_at(&token, Endpoint::Sign, NOW).await.is_ok());
    let token = idp.sign(&idp.claims());
    assert!(
        idp.verify_at(&token, Endpoint::Sign, NOW + 660)
            .await
            .is_ok()
    );
    assert!(matches!(
        idp.verify_at(&token, Endpoint::Sign, NOW + 661).await,
        Err(Error::TokenExpired { .. })
    ));
    assert!(matches!(
        idp.verify_at(&token, Endpoint::Sign, NOW - 61).await,
        Err(Error::TokenNotYetValid { .. })
    ));
    assert!(matches!(
        idp.verify(&with(idp.claims(), json!({"exp": null}))).await,
        Err(Error::TokenMalformed(_))
    ));
}

#[tokio::test]
async fn wrong_audiences_issuers_and_parties_are_refused() {
    let idp = Idp::new(json!({}));
    let error = idp
        .verify(&with(idp.claims(), json!({"aud": "another-client"})))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::TokenAudienceMismatch { expected, .. } if expected == &["mayfly"]),
        "{error}"
    );
    assert!(matches!(
        idp.verify(&with(idp.claims(), json!({"iss": "https://evil.example"})))
            .await,
        Err(Error::TokenIssuerMismatch { .. })
    ));
    assert!(matches!(
        idp.verify(&with(
            idp.claims(),
            json!({"aud": ["mayfly", "other"], "azp": "other"})
        ))
        .await,
        Err(Error::OidcAuthorizedParty { .. })
    ));
}

#[tokio::test]
async fn signatures_must_be_the_providers() {
    let idp = Idp::new(json!({}));
    let impostor = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
    let forged =
        mayfly_pki::jose::jws::sign_compact(&impostor, "k1", idp.claims().to_string().as_bytes())
            .unwrap();
    assert!(matches!(
        idp.verify_at(&forged, Endpoint::Sign, NOW).await,
        Err(Error::TokenSignatureInvalid)
    ));
    let unknown =
        mayfly_pki::jose::jws::sign_compact(&idp.key, "k9", idp.claims().to_string().as_bytes())
            .unwrap();
    assert!(matches!(
        idp.verify_at(&unknown, Endpoint::Sign, NOW).await,
        Err(Error::TokenUnknownKey { .. })
    ));
}

#[tokio::test]
async fn an_address_the_provider_has_not_verified_is_refused() {
    let idp = Idp::new(json!({}));
    for unverified in [json!(false), json!("false")] {
        assert!(matches!(
            idp.verify(&with(idp.claims(), json!({"email_verified": unverified})))
                .await,
            Err(Error::OidcEmailUnverified { .. })
        ));
    }
    for verified in [json!(true), json!("true"), serde_json::Value::Null] {
        assert!(
            idp.verify(&with(idp.claims(), json!({"email_verified": verified})))
                .await
                .is_ok()
        );
    }
}

#[tokio::test]
async fn domains_and_groups_limit_who_is_let_in() {
    let idp = Idp::new(json!({"domains": ["example.com"], "admins": ["root@elsewhere.org"]}));
    assert!(idp.verify(&idp.claims()).await.is_ok());
    for email in [
        json!("jane@elsewhere.org"),
        json!("jane@notexample.com"),
        serde_json::Value::Null,
    ] {
        assert!(matches!(
            idp.verify(&with(idp.claims(), json!({"email": email})))
                .await,
            Err(Error::OidcEmailDomain { .. })
        ));
    }
    // Administrators are not held to the domains.
    assert!(
        idp.verify(&with(idp.claims(), json!({"email": "root@elsewhere.org"})))
            .await
            .is_ok()
    );
    let grouped = Idp::new(json!({"groups": ["staff"]}));
    assert!(matches!(
        grouped.verify(&grouped.claims()).await,
        Err(Error::OidcGroups { .. })
    ));
    assert!(
        grouped
            .verify(&with(
                grouped.claims(),
                json!({"groups": ["guests", "staff"]})
            ))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn id_tokens_authorize_signing_only() {
    let idp = Idp::new(json!({"admins": ["Jane.Doe@Example.com"]}));
    let token = idp.sign(&idp.claims());
    assert!(idp.verify_at(&token, Endpoint::SshSign, NOW).await.is_ok());
    for endpoint in [
        Endpoint::Revoke,
        Endpoint::SshRevoke,
        Endpoint::Admin,
        Endpoint::Renew,
    ] {
        assert!(matches!(
            idp.verify_at(&token, endpoint, NOW).await,
            Err(Error::OidcEndpoint { .. })
        ));
    }
}

#[tokio::test]
async fn a_token_without_a_nonce_is_burnt_by_its_hash() {
    let idp = Idp::new(json!({}));
    let token = idp.sign(&with(idp.claims(), json!({"nonce": null})));
    let authorization = idp.verify_at(&token, Endpoint::Sign, NOW).await.unwrap();
    assert_eq!(
        authorization.burn.unwrap().jti,
        mayfly_pki::cert::fingerprint_sha256(token.as_bytes())
    );
    let long = idp.sign(&with(idp.claims(), json!({"nonce": "n".repeat(256)})));
    assert!(matches!(
        idp.verify_at(&long, Endpoint::Sign, NOW).await,
        Err(Error::TokenMalformed(_))
    ));
}

/// The nonce is burnt as the token's id: one of the used-token column's 255 bytes is burnt
/// whole; one byte more, or a blank one, is refused with a message that says which.
#[tokio::test]
async fn a_nonce_fits_the_used_token_column_and_is_not_blank() {
    let idp = Idp::new(json!({}));
    let longest = "n".repeat(jwt::MAX_TOKEN_ID_LEN);
    let authorization = idp
        .verify(&with(idp.claims(), json!({"nonce": longest})))
        .await
        .unwrap();
    assert_eq!(authorization.burn.unwrap().jti, longest);
    for (nonce, says) in [
        (
            "n".repeat(jwt::MAX_TOKEN_ID_LEN + 1),
            "longer than 255 bytes",
        ),
        (" ".to_string(), "is blank"),
    ] {
        match idp
            .verify(&with(idp.claims(), json!({"nonce": nonce})))
            .await
        {
            Err(Error::TokenMalformed(message)) => assert!(
                message.contains("claim \"nonce\"") && message.contains(says),
                "{nonce:?}: {message}"
            ),
            other => panic!("nonce {nonce:?}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn other_tokens_are_left_to_their_own_verifiers() {
    let idp = Idp::new(json!({}));
    // A JWK token: aimed at this CA's endpoint, named by its key.
    let jwk_token = idp.sign(&json!({
        "iss": "ops", "aud": "https://ca.example/1.0/sign", "sub": "x",
        "iat": NOW, "exp": NOW + 60, "jti": "j",
    }));
    assert!(matches!(
        idp.verify_at(&jwk_token, Endpoint::Sign, NOW).await,
        Err(Error::TokenUnknownKey { .. })
    ));
    assert_eq!(idp.documents.requests(), 0, "no provider was asked");
}

#[test]
fn names_are_made_as_step_ca_makes_them() {
    assert_eq!(escape_fragment("auth0|5f1a"), "auth0%7C5f1a");
    assert_eq!(escape_fragment("a b/c@d"), "a%20b/c@d");
    assert_eq!(
        principals_of("First.Last+tag@Example.com"),
        [
            "firstlast_tag",
            "First.Last+tag",
            "First.Last+tag@Example.com"
        ]
    );
    assert_eq!(principals_of("bob@example.com"), ["bob", "bob@example.com"]);
    assert!(has_scheme("https://accounts.google.com"));
    assert!(!has_scheme("accounts.google.com"));
}

#[test]
fn configurations_are_checked_when_loaded() {
    let config = |fields: serde_json::Value| ProvisionerConfig {
        kind: "oidc".into(),
        name: "idp".into(),
        key: None,
        encrypted_key: None,
        claims: None,
        options: None,
        admin: false,
        policy: None,
        other: match fields {
            serde_json::Value::Object(map) => map.into_iter().collect(),
            _ => Default::default(),
        },
    };
    for (fields, expected) in [
        (json!({"configurationEndpoint": DISCOVERY}), "clientID"),
        (json!({"clientID": "c"}), "configurationEndpoint"),
        (
            json!({"clientID": "c", "configurationEndpoint": "http://idp.example"}),
            "not an https URL",
        ),
        (
            json!({"clientID": "c", "configurationEndpoint": DISCOVERY, "listenAddress": "10000"}),
            "listenAddress",
        ),
        (
            json!({"clientID": "c", "configurationEndpoint": DISCOVERY, "admins": "a"}),
            "invalid type",
        ),
    ] {
        let error = Provisioner::from_config(&config(fields.clone()), Claims::DEFAULT)
            .unwrap_err()
            .to_string();
        assert!(error.contains(expected), "{fields}: {error}");
    }
    let Provisioner::Oidc(oidc) = Provisioner::from_config(
        &config(json!({"clientID": "c", "clientSecret": "s3cret", "configurationEndpoint": "https://idp.example/", "listenAddress": ":10000"})),
        Claims::DEFAULT,
    )
    .unwrap() else {
        panic!("an OIDC provisioner")
    };
    assert_eq!(oidc.keys.discovery_url(), DISCOVERY);
    assert!(!format!("{oidc:?}").contains("s3cret"), "{oidc:?}");
}

/// The name policy is checked when the template is made, whoever verified the credential: an
/// OIDC user whose provider vouches for an address outside it gets nothing.
#[tokio::test]
async fn an_oidc_user_meets_the_name_policy_like_any_other_credential() {
    let idp = Idp::new(json!({}));
    let authorization = idp.verify(&idp.claims()).await.unwrap();
    let key = PrivateKey::generate(KeyAlgorithm::EcP256).unwrap();
    let csr =
        mayfly_pki::Csr::from_pem(&mayfly_pki::csr::create_pem(&key, "248289761001", &[]).unwrap())
            .unwrap();
    let template = |policy: serde_json::Value| {
        let config: mayfly_config::config::AuthorityConfig = serde_json::from_value(json!({
            "provisioners": [{"type": "OIDC", "name": "idp", "policy": policy}],
        }))
        .unwrap();
        let policies = crate::policy::NamePolicies::from_config(&config).unwrap();
        crate::policy::for_request(
            &authorization,
            &csr,
            crate::policy::ValidityRequest::default(),
            time::Duration::minutes(1),
            OffsetDateTime::from_unix_timestamp(NOW).unwrap(),
            &policies,
        )
    };
    let allowed = json!({"x509": {"allow": {
        "cn": ["248289761001"],
        "email": ["@Example.com"],
        "uri": ["idp.example"],
    }}});
    assert!(template(allowed).is_ok());
    let denied = json!({"x509": {"deny": {"email": ["@Example.com"]}}});
    let error = template(denied).unwrap_err().to_string();
    assert!(error.contains("Jane.Doe@Example.com"), "{error}");
}
