//! Signed tokens of every scheme: HS256, RS256, ES256 and EdDSA keys chosen
//! by `kid`, from PEM files or a JWKS that rotates; issuer, audience,
//! leeway; each refusal's exact reply.

use jim_e2e::*;
use jim_gateway::PublicKey;
use jim_gateway::auth::{Claims, SigningKey, claims_for};
use jim_protocol::Command;
use jim_test_util::document::DocumentServer;
use jim_test_util::*;
use serde_json::json;

const ISSUER: &str = "https://id.example";
const AUDIENCE: &str = "jim";

fn key_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/keys")
        .join(name)
}

/// A signing key of the test fixtures: `ec-a` is `ec-a.pem`, ES256.
fn signer(name: &str, kid: Option<&str>) -> SigningKey {
    let pem = std::fs::read(key_path(&format!("{name}.pem"))).unwrap();
    SigningKey::private_pem(alg_of(name), &pem, kid).unwrap()
}

/// The algorithm of a fixture key, from its name.
fn alg_of(name: &str) -> &'static str {
    match &name[..2] {
        "rs" => "RS256",
        "ec" => "ES256",
        _ => "EdDSA",
    }
}

fn public(name: &str, kid: &str) -> PublicKey {
    PublicKey {
        kid: Some(kid.to_owned()),
        alg: alg_of(name).to_owned(),
        pem: key_path(&format!("{name}.pub.pem")),
    }
}

/// Claims from the expected issuer, for the expected audience.
fn claims(user: &str) -> Claims {
    let mut claims = claims_for(user, 600, None, None);
    claims.iss = Some(ISSUER.to_owned());
    claims.aud = Some(AUDIENCE.to_owned());
    claims
}

/// The gateway's reply to a `B001` with `token`, and whether it then
/// closed (1008).
async fn login(gw: &Gw, kind: Kind, token: &str) -> serde_json::Value {
    let mut raw = gw.raw(kind).await;
    let reply = raw
        .request(Command::Auth, 1, &format!(r#"{{"token":"{token}"}}"#))
        .await;
    match reply.cmd {
        Command::AuthOk => json!({"ok": json(&reply)["user_id"]}),
        Command::AuthFailed => {
            assert_eq!(raw.expect_close(1008).await, "authentication failed");
            json(&reply)
        }
        other => panic!("{other:?}: {}", body_str(&reply)),
    }
}

fn refused(reason: &str) -> serde_json::Value {
    json!({"code": 4001, "reason": reason})
}

fn production(c: &mut jim_gateway::Config) {
    c.auth.dev = false;
    c.admin.key = Some(ADMIN_KEY.into());
}

#[tokio::test]
async fn each_scheme_is_accepted_with_its_key_and_each_refusal_gets_its_reply() {
    let gw = Gw::with(|c| {
        production(c);
        c.auth.jwt_secret = Some(JWT_SECRET.into());
        c.auth.keys = vec![public("rsa-a", "r1"), public("ec-a", "e1"), public("ed-a", "d1")];
        c.auth.issuer = Some(ISSUER.into());
        c.auth.audience = Some(AUDIENCE.into());
    })
    .await;
    let bystander = gw.raw(Kind::Ws).await;
    let mut bystander = bystander;
    bystander
        .auth(
            &SigningKey::secret(JWT_SECRET.as_bytes())
                .mint(&claims("carol"))
                .unwrap(),
        )
        .await;

    for (key, kid) in [("rsa-a", "r1"), ("ec-a", "e1"), ("ed-a", "d1")] {
        let token = signer(key, Some(kid)).mint(&claims("alice")).unwrap();
        assert_eq!(
            login(&gw, Kind::Tcp, &token).await,
            json!({"ok": "alice"}),
            "{key}"
        );
    }

    let mut wrong_issuer = claims("alice");
    wrong_issuer.iss = Some("https://evil.example".into());
    let mut no_issuer = claims("alice");
    no_issuer.iss = None;
    let mut wrong_audience = claims("alice");
    wrong_audience.aud = Some("another-app".into());
    let mut long_expired = claims("alice");
    long_expired.exp -= 3_600;
    let cases = [
        // A kid the gateway does not hold.
        (
            signer("ec-a", Some("nope")).mint(&claims("alice")),
            "invalid token: unknown signing key",
        ),
        // Another key, claiming to be e1.
        (
            signer("ec-b", Some("e1")).mint(&claims("alice")),
            "invalid token: bad signature (signed with another key than the gateway's?)",
        ),
        // An ES256 token naming the RSA key.
        (
            signer("ec-a", Some("r1")).mint(&claims("alice")),
            "invalid token: algorithm not accepted",
        ),
        // No kid, and the gateway holds one key of its algorithm: that one.
        (
            signer("ed-b", None).mint(&claims("alice")),
            "invalid token: bad signature (signed with another key than the gateway's?)",
        ),
        (
            signer("ec-a", Some("e1")).mint(&wrong_issuer),
            "invalid token: issuer not accepted",
        ),
        (
            signer("ec-a", Some("e1")).mint(&no_issuer),
            "invalid token: the claim `iss` is missing",
        ),
        (
            signer("ec-a", Some("e1")).mint(&wrong_audience),
            "invalid token: audience not accepted",
        ),
        (signer("ec-a", Some("e1")).mint(&long_expired), "token expired"),
    ];
    for (token, reason) in cases {
        assert_eq!(
            login(&gw, Kind::Tcp, &token.unwrap()).await,
            refused(reason),
            "{reason}"
        );
    }

    // Within the leeway (5 s), a token just past its exp is still good.
    let mut just_expired = claims("alice");
    just_expired.exp = just_expired.iat.unwrap() - 2;
    let token = signer("ed-a", Some("d1")).mint(&just_expired).unwrap();
    assert_eq!(login(&gw, Kind::Ws, &token).await, json!({"ok": "alice"}));

    // The bystander saw none of it.
    bystander.request(Command::Ping, 9, "").await;
}

#[tokio::test]
async fn without_a_secret_hs256_tokens_are_refused() {
    let gw = Gw::with(|c| {
        production(c);
        c.auth.keys = vec![public("ec-a", "e1")];
    })
    .await;
    let token = SigningKey::secret(JWT_SECRET.as_bytes())
        .mint(&claims("alice"))
        .unwrap();
    assert_eq!(
        login(&gw, Kind::Tcp, &token).await,
        refused("invalid token: algorithm not accepted")
    );
    // One ES256 key, no kid in the token: that key.
    let token = signer("ec-a", None).mint(&claims("alice")).unwrap();
    assert_eq!(login(&gw, Kind::Tcp, &token).await, json!({"ok": "alice"}));
}

fn jwks(keys: &[(&str, &str)]) -> String {
    let keys: Vec<serde_json::Value> = keys
        .iter()
        .map(|(name, kid)| {
            let document = signer(name, Some(kid)).public_jwks().unwrap();
            serde_json::from_str::<serde_json::Value>(&document).unwrap()["keys"][0].clone()
        })
        .collect();
    json!({ "keys": keys }).to_string()
}

#[tokio::test]
async fn jwks_keys_rotate_without_a_restart() {
    let server = DocumentServer::start(jwks(&[("ec-a", "2026-10")])).await;
    let gw = Gw::with(|c| {
        production(c);
        c.auth.jwks = Some(server.url());
        c.auth.jwks_refresh_secs = 1;
        c.auth.jwks_unknown_kid_secs = 0;
    })
    .await;
    let old = signer("ec-a", Some("2026-10"))
        .mint(&claims_for("alice", 600, None, None))
        .unwrap();
    let new = signer("ed-a", Some("2026-11"))
        .mint(&claims_for("bob", 600, None, None))
        .unwrap();
    let mut alice = gw.raw(Kind::Tcp).await;
    alice.auth(&old).await;

    // A new key is published: a token naming it has the JWKS read at once.
    server.set(jwks(&[("ec-a", "2026-10"), ("ed-a", "2026-11")]));
    assert_eq!(login(&gw, Kind::Ws, &new).await, json!({"ok": "bob"}));

    // The old key is withdrawn: once read again, its tokens are refused.
    server.set(jwks(&[("ed-a", "2026-11")]));
    // Two reads begun, and applied, after the change.
    server.read_more_than(server.reads() + 2).await;
    assert_eq!(
        login(&gw, Kind::Tcp, &old).await,
        refused("invalid token: unknown signing key")
    );
    assert_eq!(login(&gw, Kind::Tcp, &new).await, json!({"ok": "bob"}));
    // A session logged in before goes on until its token expires.
    alice.request(Command::Ping, 2, "").await;

    // A document that does not parse keeps the keys read before.
    server.set("not json");
    server.read_more_than(server.reads() + 2).await;
    assert_eq!(login(&gw, Kind::Tcp, &new).await, json!({"ok": "bob"}));
}

#[tokio::test]
async fn tokens_naming_unknown_keys_read_the_jwks_at_a_bounded_rate() {
    let server = DocumentServer::start(jwks(&[("ec-a", "k1")])).await;
    let gw = Gw::with(|c| {
        production(c);
        c.auth.jwks = Some(server.url());
        c.auth.jwks_unknown_kid_secs = 3_600;
    })
    .await;
    assert_eq!(server.reads(), 1, "read once, before the gateway listens");
    let token = signer("ec-a", Some("k1"))
        .mint(&claims_for("alice", 600, None, None))
        .unwrap();
    assert_eq!(login(&gw, Kind::Tcp, &token).await, json!({"ok": "alice"}));
    for i in 0..20 {
        let forged = signer("ec-b", Some(&format!("made-up-{i}")))
            .mint(&claims_for("mallory", 600, None, None))
            .unwrap();
        assert_eq!(
            login(&gw, Kind::Tcp, &forged).await,
            refused("invalid token: unknown signing key")
        );
    }
    assert_eq!(
        server.reads(),
        1,
        "unknown kids did not make the gateway read again"
    );
}

#[tokio::test]
async fn a_jwks_over_https_is_read_with_the_configured_ca_and_refused_without() {
    let ca = jim_test_util::tls::TestCa::new();
    let server = DocumentServer::start_tls(jwks(&[("ed-a", "k1")]), &ca).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let token = signer("ed-a", Some("k1"))
        .mint(&claims_for("alice", 600, None, None))
        .unwrap();
    let trusting = Gw::with(|c| {
        production(c);
        c.auth.jwks = Some(server.url());
        c.auth.jwks_ca = Some(ca_file);
    })
    .await;
    assert!(server.url().starts_with("https://"));
    assert_eq!(login(&trusting, Kind::Tcp, &token).await, json!({"ok": "alice"}));

    // Mozilla's roots do not know the test CA: the gateway starts with no
    // key from it, and says so.
    let reads = server.reads();
    let untrusting = Gw::with(|c| {
        production(c);
        c.auth.jwks = Some(server.url());
        c.auth.jwks_unknown_kid_secs = 3_600;
    })
    .await;
    assert_eq!(
        login(&untrusting, Kind::Tcp, &token).await,
        refused("invalid token: unknown signing key")
    );
    assert_eq!(server.reads(), reads, "no document was served to it");
    untrusting
        .wait_metric(r#"jim_jwks_reads_total{outcome="error"} 1"#)
        .await;
}
