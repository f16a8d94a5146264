use uuid::Uuid;

use super::*;
use crate::identity::Lifecycle;
use crate::platform::AppKind;
use crate::policy::dangerously_admit_without_caller;

fn app() -> App {
    App {
        subscription_id: Uuid::from_u128(7),
        resource_group: "rg".to_owned(),
        name: "app".to_owned(),
        kind: AppKind::ContainerApp,
    }
}

fn identity(kind: IdentityKind) -> Identity {
    Identity {
        name: "id".to_owned(),
        kind,
        client_id: Uuid::from_u128(1),
        principal_id: Uuid::from_u128(2),
        resource_id: "/subscriptions/x/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id".to_owned(),
        lifecycle: Lifecycle::Main,
    }
}

fn input<'a>(app: &'a App, identity: &'a Identity, resource: &'a Resource) -> MintInput<'a> {
    MintInput {
        tenant_id: Uuid::from_u128(9),
        issuer: "https://sts.windows.net/t/",
        app,
        identity,
        resource,
        now: 1_700_000_000,
        lifetime_secs: 86_700,
    }
}

#[test]
fn system_identity_claims_point_at_the_app_and_omit_xms_az_rid() {
    let (app, id) = (app(), identity(IdentityKind::System));
    let resource = Resource::parse("https://vault.azure.net").unwrap();
    let c = claims(&input(&app, &id, &resource));
    assert_eq!(c.xms_mirid, app.resource_id());
    assert_eq!(c.xms_az_rid, None);
    assert_eq!(c.aud, "https://vault.azure.net");
    assert_eq!(
        (c.iat, c.nbf, c.exp),
        (1_700_000_000, 1_700_000_000, 1_700_086_700)
    );
    assert_eq!(c.appid, Uuid::from_u128(1).to_string());
    assert_eq!(c.oid, c.sub);
    assert_eq!(c.idp, c.iss);
    assert_eq!(
        (c.appidacr.as_str(), c.idtyp.as_str(), c.ver.as_str()),
        ("2", "app", "1.0")
    );
}

#[test]
fn user_identity_claims_carry_both_arm_ids() {
    let (app, id) = (app(), identity(IdentityKind::User));
    let resource = Resource::parse("api://x").unwrap();
    let c = claims(&input(&app, &id, &resource));
    assert_eq!(c.xms_mirid, id.resource_id);
    assert_eq!(c.xms_az_rid, Some(app.resource_id()));
}

#[test]
fn every_token_gets_its_own_uti() {
    let (app, id) = (app(), identity(IdentityKind::System));
    let resource = Resource::parse("api://x").unwrap();
    let a = claims(&input(&app, &id, &resource));
    let b = claims(&input(&app, &id, &resource));
    assert_ne!(a.uti, b.uti);
    assert_eq!(a.uti.len(), 22);
}

#[test]
fn minted_tokens_verify_with_the_published_key() {
    let key = SigningKey::generate(1_700_000_000).unwrap();
    let (app, id) = (app(), identity(IdentityKind::User));
    let resource = Resource::parse("https://storage.azure.com").unwrap();
    let token = mint(
        &dangerously_admit_without_caller(),
        &key,
        &input(&app, &id, &resource),
    )
    .unwrap();

    let header = jsonwebtoken::decode_header(&token.jwt).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    assert_eq!(header.kid.as_deref(), Some(key.kid()));
    assert_eq!(header.x5t.as_deref(), Some(key.kid()));
    assert_eq!(header.typ.as_deref(), Some("JWT"));

    let jwk = key.jwk();
    let decoding = jsonwebtoken::DecodingKey::from_rsa_components(&jwk.n, &jwk.e).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&["https://storage.azure.com"]);
    validation.validate_exp = false;
    let decoded = jsonwebtoken::decode::<Claims>(&token.jwt, &decoding, &validation).unwrap();
    assert_eq!(decoded.claims, token.claims);

    let other = SigningKey::generate(1_700_000_000).unwrap();
    let wrong =
        jsonwebtoken::DecodingKey::from_rsa_components(&other.jwk().n, &other.jwk().e).unwrap();
    assert!(jsonwebtoken::decode::<Claims>(&token.jwt, &wrong, &validation).is_err());
}
