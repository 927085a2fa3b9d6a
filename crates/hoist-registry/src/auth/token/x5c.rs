//! `x5c` certificate chains of tokens, checked by rustls's verifier
//! (`rustls-webpki`: path building, signatures, validity, basicConstraints
//! with pathLen, name constraints, unknown critical extensions), plus the
//! two rules webpki leaves to its caller and Go's `crypto/x509` (which
//! docker-registry uses) enforces: an issuer whose keyUsage lacks
//! keyCertSign signs nothing, and the bundle certificate itself must be a CA
//! whose pathLen bounds the intermediates below it.

use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use std::cell::RefCell;
use webpki::{EndEntityCert, KeyPurposeIdIter, VerifiedPath};
use x509_cert::der::Decode;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, KeyUsages};
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::Certificate;

/// Most certificates an `x5c` header may carry.
const MAX_CHAIN: usize = 8;

const OID_BASIC_CONSTRAINTS: &str = "2.5.29.19";
const OID_KEY_USAGE: &str = "2.5.29.15";

/// The certificates of the root certificate bundle, as chain anchors.
#[derive(Default)]
pub(super) struct Roots {
    /// Every bundle certificate, DER: one of them as the x5c leaf is trusted as is.
    ders: Vec<Vec<u8>>,
    /// The bundle certificates webpki takes as anchors, and each one parsed.
    anchors: Vec<TrustAnchor<'static>>,
    anchor_certs: Vec<Certificate>,
}

/// Token signing certificates may carry any extended key usage, as
/// distribution asks Go for `ExtKeyUsageAny`; the list must still parse.
struct AnyUsage;

impl webpki::ExtendedKeyUsageValidator for AnyUsage {
    fn validate(&self, iter: KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        for id in iter {
            id?;
        }
        Ok(())
    }
}

impl Roots {
    /// Adds a bundle certificate (already parsed as `cert`).
    pub(super) fn add(&mut self, der: &[u8], cert: Certificate) {
        self.ders.push(der.to_vec());
        // A certificate webpki cannot read (an X.509 v1, say) anchors no
        // chain; its key still checks `kid` tokens.
        if let Ok(a) = webpki::anchor_from_trusted_cert(&CertificateDer::from(der)) {
            self.anchors.push(a.to_owned());
            self.anchor_certs.push(cert);
        }
    }

    /// Checks an `x5c` chain (leaf first, then intermediates in any order)
    /// up to a certificate of the bundle at time `now`. Returns the leaf's
    /// public key.
    pub(super) fn check(
        &self,
        chain: &[Vec<u8>],
        now: UnixTime,
    ) -> Result<SubjectPublicKeyInfoOwned, String> {
        if chain.is_empty() || chain.len() > MAX_CHAIN {
            return Err(format!("x5c must hold 1 to {MAX_CHAIN} certificates"));
        }
        let leaf =
            Certificate::from_der(&chain[0]).map_err(|e| format!("bad x5c certificate: {e}"))?;
        let spki = leaf.tbs_certificate.subject_public_key_info;
        // A bundle certificate is trusted as itself (Go's x509 does the same).
        if self.ders.iter().any(|d| *d == chain[0]) {
            return Ok(spki);
        }
        let leaf_der = CertificateDer::from(chain[0].as_slice());
        let ee = EndEntityCert::try_from(&leaf_der)
            .map_err(|e| format!("bad x5c certificate: {}", reason(&e)))?;
        let intermediates: Vec<CertificateDer<'_>> = chain[1..]
            .iter()
            .map(|d| CertificateDer::from(d.as_slice()))
            .collect();
        let refused = RefCell::new(None);
        let extra = |path: &VerifiedPath<'_>| {
            self.caller_rules(path).map_err(|msg| {
                *refused.borrow_mut() = Some(msg);
                webpki::Error::UnknownIssuer
            })
        };
        match ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &self.anchors,
            &intermediates,
            now,
            AnyUsage,
            None,
            Some(&extra),
        ) {
            Ok(_) => Ok(spki),
            Err(e) => Err(refused.into_inner().unwrap_or_else(|| reason(&e))),
        }
    }

    /// The rules webpki leaves to the caller, on a path it verified.
    fn caller_rules(&self, path: &VerifiedPath<'_>) -> Result<(), String> {
        let root = self
            .anchors
            .iter()
            .position(|a| a == path.anchor())
            .map(|i| &self.anchor_certs[i])
            .ok_or("the chain's anchor is not a bundle certificate")?;
        let name = |c: &Certificate| c.tbs_certificate.subject.to_string();
        let bc = basic_constraints(root)?;
        if !bc.as_ref().is_some_and(|b| b.ca) {
            return Err(format!(
                "the bundle certificate {} is not a CA (basicConstraints cA), so it signs no chain",
                name(root)
            ));
        }
        let below = path.intermediate_certificates().count();
        if let Some(len) = bc.and_then(|b| b.path_len_constraint) {
            if below > len as usize {
                return Err(format!(
                    "the bundle certificate {} allows {len} intermediate CA(s) below it (pathLen), the chain has {below}",
                    name(root)
                ));
            }
        }
        let mut issuers = vec![root.clone()];
        for c in path.intermediate_certificates() {
            issuers.push(
                Certificate::from_der(c.der().as_ref())
                    .map_err(|e| format!("bad x5c certificate: {e}"))?,
            );
        }
        for c in &issuers {
            if !may_sign_certificates(c)? {
                return Err(format!(
                    "the certificate {} has a keyUsage without keyCertSign, so it may not sign certificates",
                    name(c)
                ));
            }
        }
        Ok(())
    }
}

/// A certificate's basicConstraints, if it has them.
fn basic_constraints(c: &Certificate) -> Result<Option<BasicConstraints>, String> {
    extension(c, OID_BASIC_CONSTRAINTS)
}

/// Whether keyUsage lets the certificate sign others (no keyUsage: yes).
fn may_sign_certificates(c: &Certificate) -> Result<bool, String> {
    Ok(extension::<KeyUsage>(c, OID_KEY_USAGE)?
        .is_none_or(|k| k.0.contains(KeyUsages::KeyCertSign)))
}

fn extension<'a, T: Decode<'a>>(c: &'a Certificate, oid: &str) -> Result<Option<T>, String> {
    let Some(e) = c
        .tbs_certificate
        .extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id.to_string() == oid)
    else {
        return Ok(None);
    };
    T::from_der(e.extn_value.as_bytes())
        .map(Some)
        .map_err(|err| {
            format!(
                "bad extension {oid} in certificate {}: {err}",
                c.tbs_certificate.subject
            )
        })
}

/// What a webpki refusal means for a token's chain.
fn reason(e: &webpki::Error) -> String {
    use webpki::Error as E;
    match e {
        E::UnknownIssuer => {
            "the x5c chain does not lead to a certificate of the root certificate bundle".into()
        }
        E::CertExpired { .. } => "an x5c certificate is expired".into(),
        E::CertNotValidYet { .. } => "an x5c certificate is not valid yet".into(),
        E::EndEntityUsedAsCa => {
            "an x5c certificate signs another but is not a CA (basicConstraints cA)".into()
        }
        E::CaUsedAsEndEntity => "the x5c leaf is a CA certificate that is not in the root \
             certificate bundle; a chain must start with an end-entity certificate"
            .into(),
        E::PathLenConstraintViolated => {
            "the x5c chain has more intermediate CAs than a pathLen constraint allows".into()
        }
        E::UnsupportedCriticalExtension => {
            "an x5c certificate has a critical extension the verifier does not know".into()
        }
        E::NameConstraintViolation => "an x5c certificate breaks a CA's name constraints".into(),
        E::InvalidSignatureForPublicKey => {
            "the x5c chain does not lead to a certificate of the root certificate bundle: \
             a signature does not verify with its issuer's key"
                .into()
        }
        other => format!("the x5c chain is not valid: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints as Bc, CertificateParams, CustomExtension, DnType, GeneralSubtree, IsCa,
        Issuer, KeyPair, KeyUsagePurpose as Ku, NameConstraints, SanType,
    };

    /// A made certificate and what it takes to sign others with it.
    struct Made {
        der: Vec<u8>,
        issuer: Issuer<'static, KeyPair>,
    }

    const CA_USAGE: &[Ku] = &[Ku::KeyCertSign, Ku::CrlSign, Ku::DigitalSignature];

    fn params(cn: &str, is_ca: IsCa, usages: &[Ku]) -> CertificateParams {
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.is_ca = is_ca;
        p.key_usages = usages.to_vec();
        p
    }

    fn ca(cn: &str) -> CertificateParams {
        params(cn, IsCa::Ca(Bc::Unconstrained), CA_USAGE)
    }

    fn leaf() -> CertificateParams {
        params("token-signer", IsCa::NoCa, &[Ku::DigitalSignature])
    }

    fn root(p: CertificateParams) -> Made {
        let key = KeyPair::generate().unwrap();
        let der = p.self_signed(&key).unwrap().der().to_vec();
        Made {
            der,
            issuer: Issuer::new(p, key),
        }
    }

    fn signed(p: CertificateParams, by: &Made) -> Made {
        let key = KeyPair::generate().unwrap();
        let der = p.signed_by(&key, &by.issuer).unwrap().der().to_vec();
        Made {
            der,
            issuer: Issuer::new(p, key),
        }
    }

    fn bundle(of: &[&Made]) -> Roots {
        let mut r = Roots::default();
        for m in of {
            r.add(&m.der, Certificate::from_der(&m.der).unwrap());
        }
        r
    }

    fn check(roots: &Roots, chain: &[&Made]) -> Result<SubjectPublicKeyInfoOwned, String> {
        let ders: Vec<Vec<u8>> = chain.iter().map(|m| m.der.clone()).collect();
        roots.check(&ders, UnixTime::now())
    }

    fn refused(roots: &Roots, chain: &[&Made], why: &str) {
        let e = check(roots, chain).expect_err("the chain was accepted");
        assert!(e.contains(why), "refused, but not for {why:?}: {e}");
    }

    #[test]
    fn a_good_chain_through_an_intermediate_is_accepted() {
        let r = root(ca("root"));
        let i = signed(ca("intermediate"), &r);
        let key = KeyPair::generate().unwrap();
        let l = leaf().signed_by(&key, &i.issuer).unwrap();
        let l = Made {
            der: l.der().to_vec(),
            issuer: Issuer::new(leaf(), key),
        };
        let roots = bundle(&[&r]);
        let spki = check(&roots, &[&l, &i]).unwrap();
        assert_eq!(
            spki.subject_public_key.raw_bytes(),
            l.issuer.key().public_key_raw(),
            "the leaf's key signs the token"
        );
        // Ending with the root itself, or intermediates in another order, as Go's x509.
        check(&roots, &[&l, &i, &r]).unwrap();
        check(&roots, &[&l, &r, &i]).unwrap();
        // A bundle certificate is trusted as itself.
        check(&roots, &[&r]).unwrap();
    }

    #[test]
    fn a_root_with_path_len_0_refuses_an_intermediate() {
        let r = root(params("root", IsCa::Ca(Bc::Constrained(0)), CA_USAGE));
        let i = signed(ca("intermediate"), &r);
        let l = signed(leaf(), &i);
        let roots = bundle(&[&r]);
        refused(&roots, &[&l, &i], "pathLen");
        // A leaf right under that root is fine.
        check(&roots, &[&signed(leaf(), &r)]).unwrap();
    }

    #[test]
    fn an_intermediate_with_path_len_0_refuses_a_second_intermediate() {
        let r = root(ca("root"));
        let i1 = signed(params("i1", IsCa::Ca(Bc::Constrained(0)), CA_USAGE), &r);
        let i2 = signed(ca("i2"), &i1);
        let l = signed(leaf(), &i2);
        refused(&bundle(&[&r]), &[&l, &i2, &i1], "pathLen");
    }

    #[test]
    fn an_intermediate_without_key_cert_sign_is_refused() {
        let r = root(ca("root"));
        let i = signed(
            params(
                "intermediate",
                IsCa::Ca(Bc::Unconstrained),
                &[Ku::DigitalSignature],
            ),
            &r,
        );
        let l = signed(leaf(), &i);
        refused(&bundle(&[&r]), &[&l, &i], "keyCertSign");
    }

    #[test]
    fn a_root_without_key_cert_sign_is_refused() {
        let r = root(params(
            "root",
            IsCa::Ca(Bc::Unconstrained),
            &[Ku::DigitalSignature],
        ));
        let l = signed(leaf(), &r);
        refused(&bundle(&[&r]), &[&l], "keyCertSign");
    }

    #[test]
    fn an_intermediate_that_is_not_a_ca_is_refused() {
        let r = root(ca("root"));
        let i = signed(params("intermediate", IsCa::ExplicitNoCa, CA_USAGE), &r);
        let l = signed(leaf(), &i);
        refused(&bundle(&[&r]), &[&l, &i], "not a CA");
    }

    #[test]
    fn a_root_that_is_not_a_ca_anchors_no_chain() {
        let r = root(params("root", IsCa::ExplicitNoCa, CA_USAGE));
        let l = signed(leaf(), &r);
        refused(&bundle(&[&r]), &[&l], "not a CA");
    }

    #[test]
    fn a_ca_certificate_as_the_leaf_is_refused() {
        let r = root(ca("root"));
        let l = signed(ca("signer"), &r);
        refused(
            &bundle(&[&r]),
            &[&l],
            "a chain must start with an end-entity",
        );
    }

    #[test]
    fn an_expired_certificate_is_refused() {
        let r = root(ca("root"));
        let mut p = leaf();
        p.not_before = rcgen::date_time_ymd(2000, 1, 1);
        p.not_after = rcgen::date_time_ymd(2001, 1, 1);
        refused(&bundle(&[&r]), &[&signed(p, &r)], "expired");
        let mut p = ca("intermediate");
        p.not_after = rcgen::date_time_ymd(2001, 1, 1);
        let i = signed(p, &r);
        refused(&bundle(&[&r]), &[&signed(leaf(), &i), &i], "expired");
    }

    #[test]
    fn a_certificate_not_valid_yet_is_refused() {
        let r = root(ca("root"));
        let mut p = leaf();
        p.not_before = rcgen::date_time_ymd(3000, 1, 1);
        p.not_after = rcgen::date_time_ymd(3001, 1, 1);
        refused(&bundle(&[&r]), &[&signed(p, &r)], "not valid yet");
    }

    #[test]
    fn a_chain_to_another_root_is_refused() {
        let trusted = root(ca("root"));
        // Same name as the trusted root, another key.
        let other = root(ca("root"));
        let i = signed(ca("intermediate"), &other);
        let roots = bundle(&[&trusted]);
        refused(&roots, &[&signed(leaf(), &i), &i], "does not lead");
        refused(&roots, &[&signed(leaf(), &other), &other], "does not lead");
        // The intermediate left out: no path.
        let i = signed(ca("intermediate"), &trusted);
        refused(&roots, &[&signed(leaf(), &i)], "does not lead");
    }

    #[test]
    fn an_unknown_critical_extension_is_refused() {
        let r = root(ca("root"));
        let mut p = leaf();
        let mut ext = CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 55555, 1], vec![5, 0]);
        ext.set_criticality(true);
        p.custom_extensions.push(ext);
        refused(&bundle(&[&r]), &[&signed(p, &r)], "critical extension");
    }

    #[test]
    fn a_name_outside_the_roots_name_constraints_is_refused() {
        let mut p = ca("root");
        p.name_constraints = Some(NameConstraints {
            permitted_subtrees: vec![GeneralSubtree::DnsName("example.com".into())],
            excluded_subtrees: Vec::new(),
        });
        let r = root(p);
        let mut p = leaf();
        p.subject_alt_names = vec![SanType::DnsName("evil.org".try_into().unwrap())];
        refused(&bundle(&[&r]), &[&signed(p, &r)], "name constraints");
        let mut p = leaf();
        p.subject_alt_names = vec![SanType::DnsName("auth.example.com".try_into().unwrap())];
        check(&bundle(&[&r]), &[&signed(p, &r)]).unwrap();
    }
}
