//! Auth over HTTP: basic auth from an htpasswd file, bearer tokens from the
//! built-in issuer, and per-repository rights from an ACL file.

mod common;

use base64::Engine as _;
use common::*;
use hoist_oci::Digest;
use hoist_registry::{Auth, AuthConfig, IssueConfig, TokenConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const ACL: &str = "\
alice  alice/*           *
bob    alice/*           pull
carol  carol/*           pull,push
*      public/*          pull
alice  public/*          push
admin  registry:catalog  *
";

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/auth")
        .join(name)
}

/// Writes an htpasswd file (cost 4: tests need not be slow) and the ACL.
fn files(dir: &Path) -> (PathBuf, PathBuf) {
    let mut h = String::new();
    for u in ["alice", "bob", "carol", "admin"] {
        h.push_str(&format!(
            "{u}:{}\n",
            bcrypt::hash(format!("{u}-pw"), 4).unwrap()
        ));
    }
    let hp = dir.join("htpasswd");
    std::fs::write(&hp, h).unwrap();
    let ap = dir.join("acl");
    std::fs::write(&ap, ACL).unwrap();
    (hp, ap)
}

fn basic(user: &str, pass: &str) -> String {
    let b = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    format!("Basic {b}")
}

fn user(u: &str) -> String {
    basic(u, &format!("{u}-pw"))
}

async fn basic_server(root: &Path, with_acl: bool) -> TestServer {
    let (hp, ap) = files(root);
    let cfg = AuthConfig {
        realm: "test realm".into(),
        htpasswd: Some(hp),
        acl: with_acl.then_some(ap),
        token: None,
    };
    let auth = Arc::new(Auth::load(&cfg).unwrap());
    TestServer::start_with(&root.join("reg"), |c| c.auth = Some(auth)).await
}

/// A monolithic blob push with an Authorization header.
async fn push_blob(s: &TestServer, repo: &str, data: &[u8], authz: &str) -> (Resp, Digest) {
    let d = Digest::sha256(data);
    let r = s
        .send(
            "POST",
            &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
            &[("authorization", authz)],
            data.to_vec(),
        )
        .await;
    (r, d)
}

/// Pushes a config, a layer and a manifest under `tag`; returns its digest.
async fn push_image(s: &TestServer, repo: &str, tag: &str, authz: &str) -> Digest {
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layer = b"some layer bytes".repeat(50);
    let (r, c) = push_blob(s, repo, config, authz).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let (r, l) = push_blob(s, repo, &layer, authz).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let m = schema2((&c, config.len()), &[(&l, layer.len())]);
    let r = s
        .send(
            "PUT",
            &format!("/v2/{repo}/manifests/{tag}"),
            &[("content-type", DOCKER_MANIFEST), ("authorization", authz)],
            m.clone(),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    Digest::sha256(&m)
}

async fn get(s: &TestServer, path: &str, authz: &str) -> Resp {
    s.send("GET", path, &[("authorization", authz)], Vec::new())
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_challenges_anonymous_and_wrong_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let s = basic_server(dir.path(), false).await;
    for (authz, why) in [
        (None, "no credentials"),
        (Some(basic("alice", "nope")), "a wrong password"),
        (Some(basic("mallory", "alice-pw")), "an unknown user"),
        (Some("Basic !!!notbase64".to_owned()), "a malformed header"),
        (Some("Bearer abc".to_owned()), "another scheme"),
    ] {
        let h: Vec<(&str, &str)> = authz
            .iter()
            .map(|a| ("authorization", a.as_str()))
            .collect();
        let r = s.send("GET", "/v2/", &h, Vec::new()).await;
        assert_eq!(r.status, 401, "{why}");
        assert_eq!(
            r.header("www-authenticate"),
            Some("Basic realm=\"test realm\""),
            "{why}"
        );
        assert_eq!(r.code(), "UNAUTHORIZED", "{why}");
        assert_eq!(
            r.header("docker-distribution-api-version"),
            Some("registry/2.0")
        );
    }
    assert_eq!(get(&s, "/v2/", &user("alice")).await.status, 200);
    assert_eq!(
        s.req("GET", "/healthz").await.status,
        200,
        "/healthz stays open"
    );
    // Without an ACL, every authenticated user may do everything...
    push_image(&s, "bob/x", "v1", &user("carol")).await;
    assert_eq!(get(&s, "/v2/_catalog", &user("bob")).await.status, 200);
    // ...and anonymous clients nothing.
    let r = s.req("GET", "/v2/bob/x/manifests/v1").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["errors"][0]["detail"][0]["Action"], "pull");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_rights_per_repository() {
    let dir = tempfile::tempdir().unwrap();
    let s = basic_server(dir.path(), true).await;
    let (alice, bob, admin) = (user("alice"), user("bob"), user("admin"));
    let m = push_image(&s, "alice/app", "v1", &alice).await;

    // bob: pull only.
    let r = get(&s, "/v2/alice/app/manifests/v1", &bob).await;
    assert_eq!(r.status, 200);
    assert_eq!(get(&s, "/v2/alice/app/tags/list", &bob).await.status, 200);
    let (r, _) = push_blob(&s, "alice/app", b"bob's", &bob).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.code(), "DENIED");
    assert_eq!(r.json()["errors"][0]["detail"][0]["Action"], "push");
    let del = format!("/v2/alice/app/manifests/{m}");
    let r = s
        .send("DELETE", &del, &[("authorization", &bob)], Vec::new())
        .await;
    assert_eq!((r.status, r.code().as_str()), (403, "DENIED"));
    // bob has nothing on other repositories.
    assert_eq!(get(&s, "/v2/carol/x/tags/list", &bob).await.status, 403);

    // Anonymous: pull on public/* only; elsewhere a challenge.
    let r = s.req("GET", "/v2/public/x/tags/list").await;
    assert_eq!(
        r.status,
        404,
        "allowed through to the storage: {}",
        r.text()
    );
    assert_eq!(s.req("GET", "/v2/alice/app/manifests/v1").await.status, 401);
    let (r, _) = push_blob(&s, "public/x", b"anon", "").await;
    assert_eq!(r.status, 401);
    // /v2/ still challenges anonymous clients (docker login's probe).
    assert_eq!(s.req("GET", "/v2/").await.status, 401);
    // alice may push to public/* on top of everyone's pull.
    push_image(&s, "public/x", "latest", &alice).await;
    assert_eq!(
        s.req("GET", "/v2/public/x/manifests/latest").await.status,
        200
    );

    // The catalog needs registry:catalog.
    let r = get(&s, "/v2/_catalog", &alice).await;
    assert_eq!((r.status, r.code().as_str()), (403, "DENIED"));
    let r = get(&s, "/v2/_catalog", &admin).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()["repositories"],
        serde_json::json!(["alice/app", "public/x"])
    );

    // alice may delete in her repositories.
    let r = s
        .send("DELETE", &del, &[("authorization", &alice)], Vec::new())
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mount_needs_pull_on_from_and_auth_turns_off_automatic_mounts() {
    let dir = tempfile::tempdir().unwrap();
    let s = basic_server(dir.path(), true).await;
    let (alice, carol) = (user("alice"), user("carol"));
    let (r, d) = push_blob(&s, "alice/app", b"alice's secret layer", &alice).await;
    assert_eq!(r.status, 201);
    let mount = format!("/v2/carol/x/blobs/uploads/?mount={d}&from=alice/app");
    let r = s
        .send("POST", &mount, &[("authorization", &carol)], Vec::new())
        .await;
    assert_eq!((r.status, r.code().as_str()), (403, "DENIED"));
    assert_eq!(r.json()["errors"][0]["detail"][1]["Name"], "alice/app");
    // Without `from` the server would have looked everywhere: with auth it
    // starts a plain upload instead (202), nothing mounted.
    let r = s
        .send(
            "POST",
            &format!("/v2/carol/x/blobs/uploads/?mount={d}"),
            &[("authorization", &carol)],
            Vec::new(),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let r = get(&s, &format!("/v2/carol/x/blobs/{d}"), &carol).await;
    assert_eq!(r.status, 404);
    // alice may mount from her own repository into public/x.
    let mount = format!("/v2/public/x/blobs/uploads/?mount={d}&from=alice/app");
    let r = s
        .send("POST", &mount, &[("authorization", &alice)], Vec::new())
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_are_refused_before_rights_are_matched() {
    let dir = tempfile::tempdir().unwrap();
    let s = basic_server(dir.path(), true).await;
    // `alice/*` would match `alice/../bob` as text: the name is refused.
    let r = get(&s, "/v2/alice/../carol/x/tags/list", &user("alice")).await;
    assert_eq!((r.status, r.code().as_str()), (400, "NAME_INVALID"));
    let r = get(&s, "/v2/alice/%2e%2e/carol/x/tags/list", &user("alice")).await;
    assert_eq!(r.status, 400);
    let mount = "/v2/alice/app/blobs/uploads/?mount=sha256:00&from=../x";
    let r = s
        .send(
            "POST",
            mount,
            &[("authorization", &user("alice"))],
            Vec::new(),
        )
        .await;
    assert_eq!((r.status, r.code().as_str()), (400, "NAME_INVALID"));
}

fn token_config(dir: &Path, addr_hint: &str, issue: bool) -> AuthConfig {
    let (hp, ap) = files(dir);
    AuthConfig {
        realm: String::new(),
        // Users and rights are the issuer's business.
        htpasswd: issue.then_some(hp),
        acl: issue.then_some(ap),
        token: Some(TokenConfig {
            realm: format!("http://{addr_hint}/token"),
            service: "test-registry".into(),
            issuer: "test-issuer".into(),
            rootcertbundle: data("issuer.crt"),
            issue: issue.then(|| IssueConfig {
                key: data("issuer.key"),
                path: "/token".into(),
                ttl: Duration::from_secs(300),
            }),
        }),
    }
}

async fn token_server(root: &Path) -> TestServer {
    let auth = Arc::new(Auth::load(&token_config(root, "registry.test", true)).unwrap());
    TestServer::start_with(&root.join("reg"), |c| c.auth = Some(auth)).await
}

/// Gets a token from the built-in issuer.
async fn token(s: &TestServer, authz: Option<&str>, scopes: &[&str]) -> Resp {
    let mut q = String::from("/token?service=test-registry");
    for sc in scopes {
        q.push_str(&format!("&scope={sc}"));
    }
    let h: Vec<(&str, &str)> = authz.iter().map(|a| ("authorization", *a)).collect();
    s.send("GET", &q, &h, Vec::new()).await
}

async fn bearer(s: &TestServer, authz: Option<&str>, scopes: &[&str]) -> String {
    let r = token(s, authz, scopes).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert_eq!(j["token"], j["access_token"]);
    assert_eq!(j["expires_in"], 300);
    assert!(j["issued_at"].as_str().unwrap().ends_with('Z'));
    format!("Bearer {}", j["token"].as_str().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_flow_challenges_and_scopes() {
    let dir = tempfile::tempdir().unwrap();
    let s = token_server(dir.path()).await;
    let r = s.req("GET", "/v2/").await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"http://registry.test/token\",service=\"test-registry\"")
    );
    let r = s.req("POST", "/v2/alice/app/blobs/uploads/").await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"http://registry.test/token\",service=\"test-registry\",scope=\"repository:alice/app:push\"")
    );
    assert_eq!(r.code(), "UNAUTHORIZED");

    // The issuer wants a right password, and serves only its own service.
    let r = token(
        &s,
        Some(&basic("alice", "bad")),
        &["repository:alice/app:pull"],
    )
    .await;
    assert_eq!(r.status, 401);
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .starts_with("Basic realm="));
    let r = s.req("GET", "/token?service=elsewhere").await;
    assert_eq!(r.status, 400, "{}", r.text());

    // alice gets pull+push on her repository and pushes with the token.
    let alice = bearer(
        &s,
        Some(&user("alice")),
        &["repository:alice/app:pull,push"],
    )
    .await;
    push_image(&s, "alice/app", "v1", &alice).await;
    assert_eq!(get(&s, "/v2/", &alice).await.status, 200);

    // bob asks for pull,push but his rights give him pull only.
    let bob = bearer(&s, Some(&user("bob")), &["repository:alice/app:pull,push"]).await;
    assert_eq!(
        get(&s, "/v2/alice/app/manifests/v1", &bob).await.status,
        200
    );
    let (r, _) = push_blob(&s, "alice/app", b"x", &bob).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"http://registry.test/token\",service=\"test-registry\",scope=\"repository:alice/app:push\",error=\"insufficient_scope\"")
    );
    // A token is for the repository it names only.
    assert_eq!(
        get(&s, "/v2/alice/other/tags/list", &alice).await.status,
        401
    );

    // Catalog: registry:catalog:* for admin only.
    let a = bearer(&s, Some(&user("admin")), &["registry:catalog:*"]).await;
    assert_eq!(get(&s, "/v2/_catalog", &a).await.status, 200);
    let b = bearer(&s, Some(&user("bob")), &["registry:catalog:*"]).await;
    assert_eq!(get(&s, "/v2/_catalog", &b).await.status, 401);

    // Anonymous: the ACL gives `*` pull on public/*, so the issuer serves
    // clients without credentials with just that.
    let anon = bearer(
        &s,
        None,
        &["repository:public/x:pull,push", "repository:alice/app:pull"],
    )
    .await;
    assert_eq!(get(&s, "/v2/public/x/tags/list", &anon).await.status, 404);
    assert_eq!(get(&s, "/v2/alice/app/tags/list", &anon).await.status, 401);

    // A bound on the scopes of one request.
    let many: Vec<String> = (0..101)
        .map(|i| format!("repository:public/r{i}:pull"))
        .collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let r = token(&s, Some(&user("alice")), &many).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("the limit is 100"));

    // Garbage and forged tokens.
    let r = get(&s, "/v2/alice/app/tags/list", "Bearer not.a.token").await;
    assert_eq!(r.status, 401);
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .ends_with("error=\"invalid_token\""));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_signed_by_another_key_with_the_trusted_kid_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = token_server(dir.path()).await;
    let good = bearer(&s, Some(&user("alice")), &["repository:alice/app:pull"]).await;
    let good = good.strip_prefix("Bearer ").unwrap();
    let header = jsonwebtoken::decode_header(good).unwrap();
    let claims: serde_json::Value =
        jsonwebtoken::dangerous::insecure_decode::<serde_json::Value>(good)
            .unwrap()
            .claims;
    let other =
        jsonwebtoken::EncodingKey::from_ec_pem(&std::fs::read(data("other.key")).unwrap()).unwrap();
    let forged = jsonwebtoken::encode(&header, &claims, &other).unwrap();
    assert_eq!(
        get(&s, "/v2/alice/app/tags/list", &format!("Bearer {good}"))
            .await
            .status,
        404
    );
    let r = get(&s, "/v2/alice/app/tags/list", &format!("Bearer {forged}")).await;
    assert_eq!(r.status, 401);
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .contains("invalid_token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validating_registry_takes_tokens_of_a_separate_issuer() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = token_server(dir.path()).await;
    // The second registry has no htpasswd, no issuer: only the bundle.
    let cfg = token_config(dir.path(), "registry.test", false);
    let auth = Arc::new(Auth::load(&cfg).unwrap());
    let reg = TestServer::start_with(&dir.path().join("reg2"), |c| c.auth = Some(auth)).await;
    assert_eq!(
        reg.req("GET", "/token").await.status,
        401,
        "no issuer on the validating registry"
    );
    let t = bearer(
        &issuer,
        Some(&user("carol")),
        &["repository:carol/x:pull,push"],
    )
    .await;
    push_image(&reg, "carol/x", "v1", &t).await;
    assert_eq!(get(&reg, "/v2/carol/x/manifests/v1", &t).await.status, 200);
}

#[test]
fn bad_auth_settings_are_refused_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    let e = |cfg: AuthConfig| Auth::load(&cfg).unwrap_err().to_string();
    let mut c = token_config(dir.path(), "h", true);
    c.token.as_mut().unwrap().issue.as_mut().unwrap().path = "/v2/token".into();
    assert!(e(c).contains("under /v2"));
    let mut c = token_config(dir.path(), "h", false);
    c.token.as_mut().unwrap().realm = "registry.test/token".into();
    assert!(e(c).contains("not an absolute URL"));
    let mut c = token_config(dir.path(), "h", false);
    c.token.as_mut().unwrap().service = " ".into();
    assert!(e(c).contains("service is empty"));
    let mut c = token_config(dir.path(), "h", false);
    c.token.as_mut().unwrap().rootcertbundle = dir.path().join("missing.pem");
    assert!(e(c).contains("cannot read the token root certificate bundle"));
    assert!(e(AuthConfig::default()).contains("htpasswd file"));
    // htpasswd and ACL files do nothing when another issuer signs: refused.
    let mut c = token_config(dir.path(), "h", false);
    c.acl = Some(dir.path().join("acl"));
    assert!(e(c).contains("give its signing key too"));
    let hp = dir.path().join("md5");
    std::fs::write(&hp, "bob:$apr1$x$y\n").unwrap();
    let msg = e(AuthConfig {
        htpasswd: Some(hp.clone()),
        ..Default::default()
    });
    assert!(
        msg.contains(&format!("{}:1", hp.display())) && msg.contains("htpasswd -B"),
        "{msg}"
    );
}

/// The web page under basic auth: its list of repositories is the catalog
/// (`registry:catalog`), a repository's pages need pull on it; a browser
/// without credentials gets the Basic challenge that makes it ask.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_page_asks_for_catalog_and_pull_rights() {
    let dir = tempfile::tempdir().unwrap();
    let s = basic_server(dir.path(), true).await;
    let (alice, bob, admin) = (user("alice"), user("bob"), user("admin"));
    push_image(&s, "alice/app", "v1", &alice).await;

    let r = s.req("GET", "/").await;
    assert_eq!(r.status, 401);
    assert!(r
        .header("www-authenticate")
        .is_some_and(|h| h.starts_with("Basic ")));
    assert_eq!(get(&s, "/", &alice).await.status, 403);
    let r = get(&s, "/", &admin).await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains("alice/app"), "{}", r.text());

    // bob may pull alice/app: its pages; carol may not.
    for page in ["/ui/r/alice/app", "/ui/r/alice/app/_tags/v1"] {
        let r = get(&s, page, &bob).await;
        assert_eq!(r.status, 200, "{page}: {}", r.text());
        assert_eq!(get(&s, page, &user("carol")).await.status, 403, "{page}");
        assert_eq!(s.req("GET", page).await.status, 401, "{page}");
    }
    // A name the storage would refuse is refused before any rule.
    assert_eq!(get(&s, "/ui/r/Alice/../x", &admin).await.status, 400);
    s.stop().await;
}
