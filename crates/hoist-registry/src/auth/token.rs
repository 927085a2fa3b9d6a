//! Bearer tokens per the distribution token specification: JWTs whose
//! `access` claim lists `{type, name, actions}`, signed by an issuer whose
//! certificates or public keys the registry trusts (its "root certificate
//! bundle"), checked for `iss`, `aud`, `exp` and `nbf`. (Over 600 lines
//! through its tests only: the code is under 400.)

use super::AuthError;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use x509_cert::der::{Decode, Encode};
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::Certificate;

mod x5c;

/// Seconds of clock skew tolerated on `exp` and `nbf`, as distribution does.
const LEEWAY: u64 = 60;

const OID_EC: &str = "1.2.840.10045.2.1";
const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";

/// One entry of a token's `access` claim.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceActions {
    /// `repository` or `registry`.
    #[serde(rename = "type")]
    pub typ: String,
    /// The repository name, or `catalog`.
    pub name: String,
    /// `pull`, `push`, `delete`, or `*`.
    #[serde(default)]
    pub actions: Vec<String>,
}

/// The claims of a registry token.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The issuer.
    pub iss: String,
    /// The user the token was issued to (empty: anonymous).
    #[serde(default)]
    pub sub: String,
    /// The service (registry) the token is for; a string or a list.
    pub aud: serde_json::Value,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Not before, seconds since the epoch.
    #[serde(default)]
    pub nbf: u64,
    /// Issued at, seconds since the epoch.
    #[serde(default)]
    pub iat: u64,
    /// A unique id.
    #[serde(default)]
    pub jti: String,
    /// What the token grants.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub access: Vec<ResourceActions>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<ResourceActions>, D::Error> {
    Ok(Option::<Vec<ResourceActions>>::deserialize(d)?.unwrap_or_default())
}

impl Claims {
    /// Whether the token grants `action` on `typ:name`.
    pub fn grants(&self, typ: &str, name: &str, action: &str) -> bool {
        self.access.iter().any(|a| {
            a.typ == typ && a.name == name && a.actions.iter().any(|x| x == action || x == "*")
        })
    }
}

/// A key the registry trusts to sign tokens.
struct TrustedKey {
    /// libtrust key id of the public key (what distribution puts in `kid`).
    kid: String,
    key: DecodingKey,
    algs: &'static [Algorithm],
}

/// Checks tokens against the keys of a root certificate bundle.
pub struct Verifier {
    keys: Vec<TrustedKey>,
    roots: x5c::Roots,
    issuer: String,
    service: String,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self.keys.iter().map(|k| k.kid.as_str()).collect();
        f.debug_struct("Verifier")
            .field("issuer", &self.issuer)
            .field("service", &self.service)
            .field("kids", &kids)
            .finish()
    }
}

/// The distribution registry's (libtrust) key id: the first 240 bits of
/// the sha256 of the DER public key, base32, in groups of four joined by
/// `:`. Written here because no maintained crate implements libtrust.
pub fn libtrust_kid(spki_der: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let sum = Sha256::digest(spki_der);
    let mut b32 = String::with_capacity(48);
    // 30 bytes = 240 bits = exactly 48 base32 digits, no padding.
    for chunk in sum[..30].chunks(5) {
        let v = chunk.iter().fold(0u64, |acc, &b| acc << 8 | b as u64);
        for i in (0..8).rev() {
            b32.push(ALPHABET[(v >> (i * 5)) as usize & 31] as char);
        }
    }
    let groups: Vec<&str> = (0..12).map(|i| &b32[i * 4..i * 4 + 4]).collect();
    groups.join(":")
}

/// The algorithms a public key can check, and the key itself.
fn decoding_key(spki: &SubjectPublicKeyInfoOwned) -> Option<(DecodingKey, &'static [Algorithm])> {
    let raw = spki.subject_public_key.raw_bytes();
    match spki.algorithm.oid.to_string().as_str() {
        OID_RSA => Some((
            DecodingKey::from_rsa_der(raw),
            &[
                Algorithm::RS256,
                Algorithm::RS384,
                Algorithm::RS512,
                Algorithm::PS256,
                Algorithm::PS384,
                Algorithm::PS512,
            ],
        )),
        OID_EC => {
            let algs: &'static [Algorithm] = match ec_curve(spki)?.as_str() {
                OID_P256 => &[Algorithm::ES256],
                OID_P384 => &[Algorithm::ES384],
                _ => return None,
            };
            Some((DecodingKey::from_ec_der(raw), algs))
        }
        _ => None,
    }
}

/// The curve OID of an EC public key.
fn ec_curve(spki: &SubjectPublicKeyInfoOwned) -> Option<String> {
    let p = spki.algorithm.parameters.as_ref()?;
    let oid = p
        .decode_as::<x509_cert::der::asn1::ObjectIdentifier>()
        .ok()?;
    Some(oid.to_string())
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Verifier {
    /// Loads the trusted keys: every `CERTIFICATE` and `PUBLIC KEY` block of
    /// a PEM file (RSA, or EC on P-256/P-384).
    pub fn load(bundle: &Path, issuer: &str, service: &str) -> Result<Self, AuthError> {
        let bytes = std::fs::read(bundle).map_err(|source| AuthError::Io {
            what: "token root certificate bundle",
            path: bundle.to_owned(),
            source,
        })?;
        let bad = |msg: String| AuthError::Key {
            path: bundle.to_owned(),
            msg,
        };
        let blocks = pem::parse_many(&bytes).map_err(|e| bad(format!("not PEM: {e}")))?;
        let mut keys = Vec::new();
        let mut roots = x5c::Roots::default();
        for (i, b) in blocks.iter().enumerate() {
            let spki = match b.tag() {
                "CERTIFICATE" => {
                    let c = Certificate::from_der(b.contents())
                        .map_err(|e| bad(format!("PEM block {}: bad certificate: {e}", i + 1)))?;
                    let spki = c.tbs_certificate.subject_public_key_info.clone();
                    roots.add(b.contents(), c);
                    spki
                }
                "PUBLIC KEY" => SubjectPublicKeyInfoOwned::from_der(b.contents())
                    .map_err(|e| bad(format!("PEM block {}: bad public key: {e}", i + 1)))?,
                other => {
                    return Err(bad(format!(
                        "PEM block {} is a {other:?}; the bundle holds CERTIFICATE or PUBLIC KEY blocks",
                        i + 1
                    )))
                }
            };
            let der = spki
                .to_der()
                .map_err(|e| bad(format!("PEM block {}: {e}", i + 1)))?;
            let (key, algs) = decoding_key(&spki).ok_or_else(|| {
                bad(format!(
                    "PEM block {}: unsupported key type {}; use RSA or EC P-256/P-384",
                    i + 1,
                    spki.algorithm.oid
                ))
            })?;
            keys.push(TrustedKey {
                kid: libtrust_kid(&der),
                key,
                algs,
            });
        }
        if keys.is_empty() {
            return Err(bad("no CERTIFICATE or PUBLIC KEY block in the file".into()));
        }
        Ok(Verifier {
            keys,
            roots,
            issuer: issuer.to_owned(),
            service: service.to_owned(),
        })
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.leeway = LEEWAY;
        v.validate_nbf = true;
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[&self.service]);
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        v
    }

    /// Checks a token's signature, issuer, audience and lifetime.
    ///
    /// The signing key is the `x5c` leaf certificate's when the header has
    /// one (the chain must lead to a certificate of the bundle), else the
    /// bundle key whose id is `kid`. Either way the signature must verify
    /// with that key: a matching `kid` alone proves nothing.
    pub fn verify(&self, token: &str) -> Result<Claims, String> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| format!("malformed token: {e}"))?;
        let x5c = header
            .x5c_der()
            .map_err(|e| format!("malformed x5c header: {e}"))?;
        let from_chain;
        let (key, algs) = match (&x5c, &header.kid) {
            (Some(chain), _) => {
                let leaf = self.roots.check(chain, rustls_pki_types::UnixTime::now())?;
                from_chain =
                    decoding_key(&leaf).ok_or("the x5c certificate's key type is not supported")?;
                (&from_chain.0, from_chain.1)
            }
            (None, Some(kid)) => {
                let k = self
                    .keys
                    .iter()
                    .find(|k| &k.kid == kid)
                    .ok_or_else(|| format!("no trusted key has the id {kid:?}"))?;
                (&k.key, k.algs)
            }
            (None, None) => return Err("the token names no key (neither kid nor x5c)".into()),
        };
        if !algs.contains(&header.alg) {
            return Err(format!("algorithm {:?} does not fit the key", header.alg));
        }
        let data = jsonwebtoken::decode::<Claims>(token, key, &self.validation(header.alg))
            .map_err(|e| format!("token rejected: {e}"))?;
        Ok(data.claims)
    }
}

/// Signs tokens with the issuer's private key.
pub struct Issuer {
    key: EncodingKey,
    alg: Algorithm,
    kid: String,
    issuer: String,
    ttl: Duration,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .field("issuer", &self.issuer)
            .finish()
    }
}

impl Issuer {
    /// Loads a PEM private key (PKCS#8 EC P-256/P-384, or RSA) and finds the
    /// bundle key that checks its signatures, whose id goes in `kid`.
    pub fn load(
        key: &Path,
        verifier: &Verifier,
        bundle: &Path,
        ttl: Duration,
    ) -> Result<Self, AuthError> {
        let pem = std::fs::read(key).map_err(|source| AuthError::Io {
            what: "token signing key",
            path: key.to_owned(),
            source,
        })?;
        let bad = |msg: String| AuthError::Key {
            path: key.to_owned(),
            msg,
        };
        let text = String::from_utf8_lossy(&pem);
        if text.contains("BEGIN EC PRIVATE KEY") {
            return Err(bad("an SEC1 EC key; convert it to PKCS#8 with \
                 `openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.p8`"
                .into()));
        }
        let candidates: Vec<(EncodingKey, Algorithm)> = [
            (EncodingKey::from_ec_pem(&pem), Algorithm::ES256),
            (EncodingKey::from_ec_pem(&pem), Algorithm::ES384),
            (EncodingKey::from_rsa_pem(&pem), Algorithm::RS256),
        ]
        .into_iter()
        .filter_map(|(k, a)| k.ok().map(|k| (k, a)))
        .collect();
        if candidates.is_empty() {
            return Err(bad("not a PEM private key (PKCS#8 EC or RSA)".into()));
        }
        let issuer = verifier.issuer.clone();
        for (k, alg) in candidates {
            let mut me = Issuer {
                key: k,
                alg,
                kid: String::new(),
                issuer: issuer.clone(),
                ttl,
            };
            for tk in verifier.keys.iter().filter(|tk| tk.algs.contains(&alg)) {
                me.kid = tk.kid.clone();
                let Ok(probe) = me.sign("", &verifier.service, Vec::new()) else {
                    break;
                };
                if verifier.verify(&probe.0).is_ok() {
                    return Ok(me);
                }
            }
        }
        Err(bad(format!(
            "no certificate or public key in the root certificate bundle {} matches this key; \
             add its certificate (`openssl req -new -x509 -key KEY -subj /CN=issuer`)",
            bundle.display()
        )))
    }

    /// How long issued tokens live.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Signs a token for `sub` (empty: anonymous) on `service` granting
    /// `access`. Returns the token and its issue time (seconds).
    pub fn sign(
        &self,
        sub: &str,
        service: &str,
        access: Vec<ResourceActions>,
    ) -> Result<(String, u64), String> {
        let now = now_secs();
        let mut jti = [0u8; 16];
        rand::Rng::fill(&mut rand::rng(), &mut jti);
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: sub.to_owned(),
            aud: serde_json::Value::String(service.to_owned()),
            exp: now + self.ttl.as_secs(),
            nbf: now.saturating_sub(1),
            iat: now,
            jti: hex::encode(jti),
            access,
        };
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map(|t| (t, now))
            .map_err(|e| format!("cannot sign the token: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use std::path::PathBuf;

    fn data(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/auth")
            .join(name)
    }

    fn verifier(bundle: &str) -> Verifier {
        Verifier::load(&data(bundle), "test-issuer", "test-service").unwrap()
    }

    fn claims(exp_in: i64, nbf_in: i64, aud: &str, iss: &str) -> Claims {
        let now = now_secs() as i64;
        Claims {
            iss: iss.into(),
            sub: "alice".into(),
            aud: serde_json::Value::String(aud.into()),
            exp: (now + exp_in) as u64,
            nbf: (now + nbf_in) as u64,
            iat: now as u64,
            jti: "j".into(),
            access: vec![ResourceActions {
                typ: "repository".into(),
                name: "alice/app".into(),
                actions: vec!["pull".into()],
            }],
        }
    }

    fn sign_with(key: &str, kid: Option<String>, x5c: Option<&[&str]>, c: &Claims) -> String {
        let pem = std::fs::read(data(key)).unwrap();
        let mut h = Header::new(Algorithm::ES256);
        h.kid = kid;
        if let Some(certs) = x5c {
            let b64 = base64::engine::general_purpose::STANDARD;
            let ders = certs
                .iter()
                .map(|f| {
                    b64.encode(
                        pem::parse(std::fs::read(data(f)).unwrap())
                            .unwrap()
                            .contents(),
                    )
                })
                .collect();
            h.x5c = Some(ders);
        }
        jsonwebtoken::encode(&h, c, &EncodingKey::from_ec_pem(&pem).unwrap()).unwrap()
    }

    fn issuer_kid(v: &Verifier) -> String {
        v.keys[0].kid.clone()
    }

    #[test]
    fn libtrust_kid_has_its_shape() {
        let k = libtrust_kid(b"x");
        assert_eq!(k.len(), 12 * 4 + 11);
        assert!(k.split(':').all(|g| g.len() == 4
            && g.bytes()
                .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))));
        assert_ne!(k, libtrust_kid(b"y"));
    }

    #[test]
    fn issued_tokens_verify_and_carry_the_access() {
        let v = verifier("issuer.crt");
        let i = Issuer::load(
            &data("issuer.key"),
            &v,
            &data("issuer.crt"),
            Duration::from_secs(300),
        )
        .unwrap();
        let access = vec![ResourceActions {
            typ: "repository".into(),
            name: "a/b".into(),
            actions: vec!["pull".into(), "push".into()],
        }];
        let (t, _) = i.sign("alice", "test-service", access).unwrap();
        let c = v.verify(&t).unwrap();
        assert_eq!(c.sub, "alice");
        assert!(c.grants("repository", "a/b", "push"));
        assert!(!c.grants("repository", "a/b", "delete"));
        assert!(!c.grants("repository", "a/c", "pull"));
    }

    #[test]
    fn rsa_keys_from_public_key_blocks_work() {
        let v = verifier("rsa.pub");
        let i = Issuer::load(
            &data("rsa.key"),
            &v,
            &data("rsa.pub"),
            Duration::from_secs(60),
        )
        .unwrap();
        assert_eq!(i.alg, Algorithm::RS256);
        let (t, _) = i.sign("", "test-service", Vec::new()).unwrap();
        assert!(v.verify(&t).is_ok());
    }

    #[test]
    fn another_key_with_the_trusted_kid_is_rejected() {
        let v = verifier("issuer.crt");
        let c = claims(300, -1, "test-service", "test-issuer");
        let good = sign_with("issuer.key", Some(issuer_kid(&v)), None, &c);
        assert!(v.verify(&good).is_ok());
        let forged = sign_with("other.key", Some(issuer_kid(&v)), None, &c);
        let e = v.verify(&forged).unwrap_err();
        assert!(e.contains("rejected"), "{e}");
        let unknown = sign_with("other.key", Some("AAAA:BBBB".into()), None, &c);
        assert!(v.verify(&unknown).unwrap_err().contains("no trusted key"));
        let nokid = sign_with("issuer.key", None, None, &c);
        assert!(v
            .verify(&nokid)
            .unwrap_err()
            .contains("neither kid nor x5c"));
    }

    #[test]
    fn x5c_must_be_a_bundle_certificate_and_sign_the_token() {
        let v = verifier("issuer.crt");
        let c = claims(300, -1, "test-service", "test-issuer");
        assert!(v
            .verify(&sign_with("issuer.key", None, Some(&["issuer.crt"]), &c))
            .is_ok());
        // The trusted certificate in x5c, but signed by another key.
        let e = v
            .verify(&sign_with("other.key", None, Some(&["issuer.crt"]), &c))
            .unwrap_err();
        assert!(e.contains("rejected"), "{e}");
        // A certificate the bundle does not hold.
        let e = v
            .verify(&sign_with("other.key", None, Some(&["other.crt"]), &c))
            .unwrap_err();
        assert!(e.contains("not in the root certificate bundle"), "{e}");
    }

    #[test]
    fn x5c_chains_through_intermediates_to_the_bundle() {
        let v = verifier("root.crt");
        let c = claims(300, -1, "test-service", "test-issuer");
        let chain = ["leaf.crt", "intermediate.crt"];
        assert!(v
            .verify(&sign_with("leaf.key", None, Some(&chain), &c))
            .is_ok());
        // The chain may end with the root itself.
        let full = ["leaf.crt", "intermediate.crt", "root.crt"];
        assert!(v
            .verify(&sign_with("leaf.key", None, Some(&full), &c))
            .is_ok());
        // A good chain, but the token signed by another key.
        let e = v
            .verify(&sign_with("other.key", None, Some(&chain), &c))
            .unwrap_err();
        assert!(e.contains("rejected"), "{e}");
        // The intermediate left out: no path to the bundle.
        let e = v
            .verify(&sign_with("leaf.key", None, Some(&["leaf.crt"]), &c))
            .unwrap_err();
        assert!(e.contains("does not lead"), "{e}");
        // A self-made certificate with the root's name is not the root.
        let e = v
            .verify(&sign_with("other.key", None, Some(&["fake-root.crt"]), &c))
            .unwrap_err();
        assert!(e.contains("not in the root certificate bundle"), "{e}");
        // A certificate signed by the leaf, which is no CA.
        let nonca = ["nonca-child.crt", "leaf.crt", "intermediate.crt"];
        let e = v
            .verify(&sign_with("other.key", None, Some(&nonca), &c))
            .unwrap_err();
        assert!(e.contains("not a CA"), "{e}");
        // Intermediates in any order, as Go's x509 (docker-registry) takes them.
        let swapped = ["leaf.crt", "root.crt", "intermediate.crt"];
        assert!(v
            .verify(&sign_with("leaf.key", None, Some(&swapped), &c))
            .is_ok());
        // The root's kid with the leaf's signature: the kid names the key.
        let kid = issuer_kid(&v);
        let e = v
            .verify(&sign_with("leaf.key", Some(kid), None, &c))
            .unwrap_err();
        assert!(
            e.contains("rejected"),
            "the leaf's key is not the root's: {e}"
        );
    }

    #[test]
    fn expired_early_wrong_audience_or_issuer_are_rejected() {
        let v = verifier("issuer.crt");
        let kid = Some(issuer_kid(&v));
        for (c, why) in [
            (
                claims(-3600, -7200, "test-service", "test-issuer"),
                "expired",
            ),
            (
                claims(7200, 3600, "test-service", "test-issuer"),
                "not yet valid",
            ),
            (claims(300, -1, "other-service", "test-issuer"), "audience"),
            (claims(300, -1, "test-service", "someone-else"), "issuer"),
        ] {
            let t = sign_with("issuer.key", kid.clone(), None, &c);
            assert!(v.verify(&t).is_err(), "a token with a bad {why} passed");
        }
    }

    #[test]
    fn a_tampered_payload_is_rejected() {
        let v = verifier("issuer.crt");
        let c = claims(300, -1, "test-service", "test-issuer");
        let t = sign_with("issuer.key", Some(issuer_kid(&v)), None, &c);
        let parts: Vec<&str> = t.split('.').collect();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let payload = String::from_utf8(b64.decode(parts[1]).unwrap()).unwrap();
        let evil = payload.replace("\"pull\"", "\"push\"");
        assert_ne!(evil, payload);
        let forged = format!("{}.{}.{}", parts[0], b64.encode(evil), parts[2]);
        assert!(v.verify(&forged).unwrap_err().contains("rejected"));
    }

    #[test]
    fn bad_keys_and_bundles_are_refused_at_load() {
        let v = verifier("issuer.crt");
        let ttl = Duration::from_secs(60);
        let e = Issuer::load(&data("other.key"), &v, &data("issuer.crt"), ttl)
            .unwrap_err()
            .to_string();
        assert!(e.contains("matches this key"), "{e}");
        let e = Issuer::load(&data("sec1.key"), &v, &data("issuer.crt"), ttl)
            .unwrap_err()
            .to_string();
        assert!(e.contains("openssl pkcs8 -topk8"), "{e}");
        let e = Verifier::load(&data("issuer.key"), "i", "s")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"PRIVATE KEY\"") && e.contains("CERTIFICATE or PUBLIC KEY"),
            "{e}"
        );
        let e = Verifier::load(&data("README.md"), "i", "s")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no CERTIFICATE or PUBLIC KEY"), "{e}");
    }
}
