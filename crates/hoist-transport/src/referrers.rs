//! Referrers (signatures, SBOMs…) at a destination registry without the
//! referrers API: the tag schema of the distribution spec, an OCI index
//! tagged `<alg>-<hex>` of the subject listing every manifest naming it,
//! as regclient and oras keep it.

use crate::source::RawManifest;
use hoist_oci::{media_type, Descriptor, Digest, Document, Index};
use hoist_registry_client::blocking::RegistryClient;
use hoist_registry_client::Error as ClientError;
use std::collections::BTreeMap;

/// The subject `m` names and the entry a referrers index lists for `m`;
/// None when `m` names no subject.
pub(crate) fn referrer_entry(m: &RawManifest) -> Option<(Digest, Descriptor)> {
    let doc = Document::parse(&m.bytes, Some(&m.media_type)).ok()?;
    let mut entry = m.descriptor();
    let subject = match doc {
        Document::Manifest(man) => {
            // The spec: the artifactType, else the config's media type.
            entry.artifact_type = Some(
                man.artifact_type
                    .unwrap_or_else(|| man.config.media_type.clone()),
            );
            entry.annotations = man.annotations;
            man.subject?
        }
        Document::Index(idx) => {
            entry.artifact_type = idx.artifact_type;
            entry.annotations = idx.annotations;
            idx.subject?
        }
    };
    Some((subject.digest, entry))
}

/// Adds `entry` to the tag-schema referrers index of `subject` in `repo`.
pub(crate) fn add_to_tag_index(
    client: &RegistryClient,
    repo: &str,
    subject: &Digest,
    entry: Descriptor,
) -> Result<(), ClientError> {
    let tag = format!("{}-{}", subject.algorithm().as_str(), subject.hex());
    let mut manifests = match client.get_manifest(repo, &tag) {
        Ok(m) => match Document::parse(&m.bytes, Some(&m.media_type)) {
            Ok(Document::Index(idx)) => idx.manifests,
            // Something else holds the tag: it is not ours to keep.
            _ => Vec::new(),
        },
        Err(e) if e.is_not_found() => Vec::new(),
        Err(e) => return Err(e),
    };
    if manifests.iter().any(|d| d.digest == entry.digest) {
        return Ok(());
    }
    manifests.push(entry);
    let idx = Index {
        schema_version: 2,
        media_type: Some(media_type::OCI_INDEX.to_owned()),
        artifact_type: None,
        manifests,
        subject: None,
        annotations: BTreeMap::new(),
    };
    let bytes = serde_json::to_vec(&idx).expect("an index serialises");
    client.put_manifest(repo, &tag, &bytes, media_type::OCI_INDEX)?;
    Ok(())
}
