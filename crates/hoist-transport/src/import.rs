//! `import`: a rootfs tarball (plain, gzip or zstd) becomes a one-layer
//! image, as `docker import` does. The tarball is stored byte for byte as the
//! layer blob; in the same pass it is decompressed, hashed (the diffID) and
//! walked as a tar so that a file which is not a tarball, or a hostile one, is
//! refused. Like `load`, everything is staged first and committed only once
//! the whole input checked out.

use crate::TransportError;
use hoist_archive::{compression, sanitize_entry_path, HashingReader, TarReader};
use hoist_oci::media_type::{self, Compression};
use hoist_oci::{
    Algorithm, Config, Descriptor, Digest, HistoryEntry, ImageConfig, Manifest, Platform,
    Reference, RootFs,
};
use hoist_store::{BlobWriter, LayerRecord, LockMode, NewImage, NewLayer, Store};
use std::collections::BTreeMap;
use std::io::{self, BufReader, Read, Write};

/// The Dockerfile instructions `--change` accepts, for error messages.
const SUPPORTED: &str = "CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR";

/// Why an import failed; each names the input or the change at fault.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The store or staging failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The input is not a readable tarball.
    #[error("cannot import {source_name}: {reason}")]
    Input {
        /// The input as the user named it (`-` for stdin).
        source_name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `--change` instruction is not valid Dockerfile syntax or not supported.
    #[error("invalid --change {change:?}: {reason}")]
    Change {
        /// The instruction as given.
        change: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The reference to tag the image with is unusable.
    #[error("invalid reference {reference:?} for import: {reason}")]
    Reference {
        /// The reference as given.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl From<hoist_store::StoreError> for ImportError {
    fn from(e: hoist_store::StoreError) -> Self {
        ImportError::Transport(e.into())
    }
}

/// What to record in the imported image.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// The input as the user named it (a path or `-`), for the history comment.
    pub source_name: String,
    /// The reference to tag the image with, if any.
    pub reference: Option<String>,
    /// The image's `created` time (RFC 3339); the caller supplies "now" so
    /// that builds can pin it (SOURCE_DATE_EPOCH) and this crate needs no clock.
    pub created: String,
    /// The platform to record; the host's when `None`.
    pub platform: Option<Platform>,
    /// Dockerfile instructions applied to the config (`CMD ["sh"]`, `ENV A=b`…).
    pub changes: Vec<String>,
    /// The history comment; `Imported from SOURCE` when `None`, as Docker does.
    pub message: Option<String>,
}

/// The image an import created.
#[derive(Clone, Debug)]
pub struct ImportedImage {
    /// The image ID (config digest).
    pub id: Digest,
    /// The reference now pointing at it, if one was given.
    pub reference: Option<Reference>,
    /// The image the reference pointed to before, if it moved.
    pub moved: Option<Digest>,
    /// The layer blob's digest (the tarball as given).
    pub layer: Digest,
    /// The layer's diffID (sha256 of the uncompressed tar).
    pub diff_id: Digest,
}

/// Copies every byte read into a blob writer, so the stored blob is the input exactly.
struct Tee<'a, R> {
    inner: R,
    out: &'a mut BlobWriter,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// Splits shell-style words: whitespace separates, `'…'` is literal, `"…"`
/// and a bare backslash escape, as Dockerfile `ENV`/`LABEL` values are quoted.
fn shell_words(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err("unterminated single quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(e @ ('"' | '\\' | '$' | '`')) => cur.push(e),
                            Some(other) => {
                                cur.push('\\');
                                cur.push(other);
                            }
                            None => return Err("unterminated double quote".into()),
                        },
                        Some(c) => cur.push(c),
                        None => return Err("unterminated double quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(e) => cur.push(e),
                    None => return Err("trailing backslash".into()),
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// `KEY=VALUE …` pairs, or the legacy `KEY VALUE` form, of `ENV` and `LABEL`.
fn key_values(rest: &str) -> Result<Vec<(String, String)>, String> {
    let words = shell_words(rest)?;
    let Some(first) = words.first() else {
        return Err("needs at least one KEY=VALUE".into());
    };
    if !first.contains('=') {
        // Legacy form: the first word is the key, the rest of the line its value.
        let value = rest
            .trim_start()
            .split_once(char::is_whitespace)
            .map_or("", |(_, v)| v)
            .trim();
        if value.is_empty() {
            return Err(format!("{first} has no value: use KEY=VALUE"));
        }
        let value = shell_words(value)?.join(" ");
        return Ok(vec![(first.clone(), value)]);
    }
    words
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some(("", _)) => Err(format!("{w:?} has an empty key")),
            Some((k, v)) => Ok((k.to_owned(), v.to_owned())),
            None => Err(format!("{w:?} is not KEY=VALUE")),
        })
        .collect()
}

/// The exec form (`["a","b"]`) when `rest` is a JSON array of strings, else
/// the shell form run through `/bin/sh -c`, as Dockerfile `CMD` reads it.
fn exec_or_shell(rest: &str) -> Vec<String> {
    let t = rest.trim();
    if t.starts_with('[') {
        if let Ok(v) = serde_json::from_str::<Vec<String>>(t) {
            return v;
        }
    }
    vec!["/bin/sh".into(), "-c".into(), t.to_owned()]
}

/// Expands `EXPOSE` specs (`80`, `53/udp`, `8000-8002/tcp`) into `port/proto` keys.
fn exposed_ports(rest: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for spec in rest.split_whitespace() {
        let (ports, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
        let proto = proto.to_lowercase();
        if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
            return Err(format!("{spec:?}: protocol must be tcp, udp or sctp"));
        }
        let port = |p: &str| {
            p.parse::<u16>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("{p:?} is not a port number (1-65535)"))
        };
        let (lo, hi) = match ports.split_once('-') {
            Some((a, b)) => (port(a)?, port(b)?),
            None => {
                let p = port(ports)?;
                (p, p)
            }
        };
        if hi < lo {
            return Err(format!("{spec:?}: the range ends before it starts"));
        }
        out.extend((lo..=hi).map(|p| format!("{p}/{proto}")));
    }
    if out.is_empty() {
        return Err("needs at least one port".into());
    }
    Ok(out)
}

/// Applies one Dockerfile instruction to an image config, as `docker import --change` does.
pub fn apply_change(cfg: &mut ImageConfig, change: &str) -> Result<(), ImportError> {
    let err = |reason: String| ImportError::Change {
        change: change.to_owned(),
        reason,
    };
    let trimmed = change.trim();
    let (instr, rest) = trimmed
        .split_once(char::is_whitespace)
        .map_or((trimmed, ""), |(i, r)| (i, r.trim()));
    let instr = instr.to_uppercase();
    if rest.is_empty() {
        return Err(err(format!("{instr} needs an argument")));
    }
    match instr.as_str() {
        "CMD" => cfg.cmd = Some(exec_or_shell(rest)),
        "ENTRYPOINT" => cfg.entrypoint = Some(exec_or_shell(rest)),
        "ENV" => {
            let env = cfg.env.get_or_insert_with(Vec::new);
            for (k, v) in key_values(rest).map_err(err)? {
                // A later ENV of the same key replaces the earlier value, as in a Dockerfile.
                env.retain(|e| e.split_once('=').map_or(e.as_str(), |(ek, _)| ek) != k);
                env.push(format!("{k}={v}"));
            }
        }
        "LABEL" => {
            let labels = cfg.labels.get_or_insert_with(BTreeMap::new);
            for (k, v) in key_values(rest).map_err(err)? {
                labels.insert(k, v);
            }
        }
        "EXPOSE" => {
            let ports = cfg.exposed_ports.get_or_insert_with(BTreeMap::new);
            for p in exposed_ports(rest).map_err(err)? {
                ports.insert(p, serde_json::json!({}));
            }
        }
        "VOLUME" => {
            let list = if rest.starts_with('[') {
                serde_json::from_str::<Vec<String>>(rest)
                    .map_err(|e| err(format!("not a JSON array of strings: {e}")))?
            } else {
                rest.split_whitespace().map(str::to_owned).collect()
            };
            let vols = cfg.volumes.get_or_insert_with(BTreeMap::new);
            for v in list.into_iter().filter(|v| !v.is_empty()) {
                vols.insert(v, serde_json::json!({}));
            }
        }
        "WORKDIR" => {
            let dir = shell_words(rest).map_err(err)?.join(" ");
            // A relative WORKDIR continues from the previous one, as in a Dockerfile.
            cfg.working_dir = Some(if dir.starts_with('/') {
                dir
            } else {
                let base = cfg.working_dir.as_deref().unwrap_or("/");
                format!("{}/{dir}", base.trim_end_matches('/'))
            });
        }
        "USER" => cfg.user = Some(rest.to_owned()),
        "STOPSIGNAL" => {
            if rest.split_whitespace().count() != 1 {
                return Err(err("STOPSIGNAL takes one signal name or number".into()));
            }
            cfg.stop_signal = Some(rest.to_owned());
        }
        other => {
            return Err(err(format!(
                "{other} is not supported by import; use one of {SUPPORTED}"
            )))
        }
    }
    Ok(())
}

/// Streams the tarball into a staged blob, checking it is a tar and hashing its diffID.
fn stage_layer(
    store: &Store,
    input: Box<dyn Read + Send>,
    source_name: &str,
) -> Result<(hoist_store::StagedBlob, Compression, Digest, u64), ImportError> {
    let bad = |reason: String| ImportError::Input {
        source_name: source_name.to_owned(),
        reason,
    };
    // `sniff` reads until it has the whole magic: one read from a pipe may
    // return fewer bytes, and a cut magic would pass gzip for a plain tar.
    let (comp, sniffed) = compression::sniff(BufReader::with_capacity(1 << 20, input))
        .map_err(|e| bad(format!("cannot read it: {e}")))?;
    if sniffed.get_ref().0.get_ref().is_empty() {
        return Err(bad(
            "the input is empty; give a rootfs tarball (tar, tar.gz or tar.zst)".into(),
        ));
    }
    let mut br = sniffed;
    let mut writer = store.blob_writer()?;
    let (diff_id, size) = {
        let mut tee = Tee {
            inner: &mut br,
            out: &mut writer,
        };
        let plain = compression::decompress_reader(&mut tee, comp)
            .map_err(|e| bad(format!("cannot start {comp:?} decompression: {e}")))?;
        let mut tar = TarReader::new(HashingReader::new(plain, Algorithm::Sha256));
        let mut entries = 0u64;
        while let Some(entry) = tar.next_entry().map_err(|e| bad(e.to_string()))? {
            // Unpacking sanitises names too; refusing here keeps a hostile
            // tarball out of the store altogether.
            sanitize_entry_path(&entry.path).map_err(|e| bad(e.to_string()))?;
            entries += 1;
        }
        if entries == 0 && tar.get_mut().count() == 0 {
            return Err(bad("it is not a tar archive".into()));
        }
        let hashing = tar.finish().map_err(|e| bad(e.to_string()))?;
        let (_, diff_id, size) = hashing.into_parts();
        // The decompressor may stop at its end marker; keep any bytes after it
        // so that the blob is exactly the input.
        io::copy(&mut tee, &mut io::sink()).map_err(|e| bad(format!("cannot read it: {e}")))?;
        (diff_id, size)
    };
    let staged = writer.finish()?;
    Ok((staged, comp, diff_id, size))
}

/// Imports a rootfs tarball as a one-layer image, tagging it if asked.
pub fn import(
    store: &mut Store,
    input: Box<dyn Read + Send>,
    opts: &ImportOptions,
) -> Result<ImportedImage, ImportError> {
    // Parse everything the user typed before reading a byte of the input.
    let reference = opts
        .reference
        .as_deref()
        .map(|r| {
            let bad = |reason: String| ImportError::Reference {
                reference: r.to_owned(),
                reason,
            };
            let parsed = Reference::parse(r).map_err(|e| bad(e.to_string()))?;
            if parsed.digest().is_some() {
                return Err(bad("a tag cannot contain a digest".into()));
            }
            Ok(parsed.with_default_tag())
        })
        .transpose()?;
    let mut image_config = ImageConfig::default();
    for c in &opts.changes {
        apply_change(&mut image_config, c)?;
    }
    let platform = opts.platform.clone().unwrap_or_else(Platform::host);

    let _lock = store.lock(LockMode::Shared)?;
    let (layer_blob, comp, diff_id, size) = stage_layer(store, input, &opts.source_name)?;
    // Docker writes the message both as the image's comment and as its one history entry's.
    let comment = opts
        .message
        .clone()
        .unwrap_or_else(|| format!("Imported from {}", opts.source_name));
    let config = Config {
        created: Some(opts.created.clone()),
        author: None,
        comment: Some(comment.clone()),
        architecture: platform.architecture.clone(),
        os: platform.os.clone(),
        variant: platform.variant.clone(),
        config: Some(image_config),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: vec![diff_id.clone()],
        },
        history: vec![HistoryEntry {
            created: Some(opts.created.clone()),
            created_by: Some("hoist import".into()),
            author: None,
            comment: Some(comment),
            empty_layer: false,
        }],
    };
    // hoist creates this config, so serialising it is the source of truth (rule 1
    // concerns documents received, not made).
    let config_bytes = serde_json::to_vec(&config)
        .map_err(|e| TransportError::Archive(format!("cannot serialise the config: {e}")))?;
    let layer = NewLayer {
        layer: LayerRecord {
            chain_id: diff_id.clone(),
            diff_id: diff_id.clone(),
            parent: None,
            size,
        },
        blob: layer_blob.digest().clone(),
        media_type: media_type::oci_layer(comp).to_owned(),
        blob_size: layer_blob.size(),
    };
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(media_type::OCI_MANIFEST.to_owned()),
        artifact_type: None,
        config: Descriptor::new(
            media_type::OCI_CONFIG,
            Digest::sha256(&config_bytes),
            config_bytes.len() as u64,
        ),
        layers: vec![Descriptor::new(
            &layer.media_type,
            layer.blob.clone(),
            layer.blob_size,
        )],
        subject: None,
        annotations: BTreeMap::new(),
    };
    let manifest_bytes = serde_json::to_vec(&manifest)
        .map_err(|e| TransportError::Archive(format!("cannot serialise the manifest: {e}")))?;
    let config_blob = store.stage_bytes(&config_bytes, None)?;
    let manifest_blob = store.stage_bytes(&manifest_bytes, None)?;
    let image = NewImage {
        id: config_blob.digest().clone(),
        config_size: config_blob.size(),
        manifest: manifest_blob.digest().clone(),
        manifest_media_type: media_type::OCI_MANIFEST.to_owned(),
        created: config.created.clone(),
        layers: vec![layer],
        tags: reference.iter().map(|r| r.to_string()).collect(),
    };
    for s in [layer_blob, config_blob, manifest_blob] {
        store.commit_blob(s)?;
    }
    store.sync_blobs()?;
    let moved = store.index_mut().add_image(&image)?;
    Ok(ImportedImage {
        id: image.id,
        reference,
        moved: moved.into_iter().next().map(|(_, d)| d),
        layer: image.layers[0].blob.clone(),
        diff_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(changes: &[&str]) -> ImageConfig {
        let mut c = ImageConfig::default();
        for ch in changes {
            apply_change(&mut c, ch).unwrap();
        }
        c
    }

    #[test]
    fn cmd_takes_exec_and_shell_forms() {
        assert_eq!(applied(&[r#"CMD ["a", "b c"]"#]).cmd.unwrap(), ["a", "b c"]);
        assert_eq!(
            applied(&["cmd echo hi"]).cmd.unwrap(),
            ["/bin/sh", "-c", "echo hi"]
        );
        assert_eq!(
            applied(&["ENTRYPOINT [not json"]).entrypoint.unwrap(),
            ["/bin/sh", "-c", "[not json"]
        );
    }

    #[test]
    fn env_and_label_pairs_with_quotes_and_legacy_form() {
        let c = applied(&[
            r#"ENV A=1 B="two words" C='x y'"#,
            "ENV D legacy value",
            "ENV A=3",
            r#"LABEL org.x="y z" k=v"#,
        ]);
        assert_eq!(
            c.env.unwrap(),
            ["B=two words", "C=x y", "D=legacy value", "A=3"]
        );
        let l = c.labels.unwrap();
        assert_eq!(l["org.x"], "y z");
        assert_eq!(l["k"], "v");
    }

    #[test]
    fn expose_volume_workdir_user_stopsignal() {
        let c = applied(&[
            "EXPOSE 80 53/udp 8000-8001",
            r#"VOLUME ["/data", "/logs"]"#,
            "VOLUME /cache",
            "WORKDIR /srv",
            "WORKDIR app",
            "USER 1000:1000",
            "STOPSIGNAL SIGINT",
        ]);
        let ports: Vec<_> = c.exposed_ports.unwrap().into_keys().collect();
        assert_eq!(ports, ["53/udp", "80/tcp", "8000/tcp", "8001/tcp"]);
        let vols: Vec<_> = c.volumes.unwrap().into_keys().collect();
        assert_eq!(vols, ["/cache", "/data", "/logs"]);
        assert_eq!(c.working_dir.unwrap(), "/srv/app");
        assert_eq!(c.user.unwrap(), "1000:1000");
        assert_eq!(c.stop_signal.unwrap(), "SIGINT");
    }

    #[test]
    fn bad_changes_are_refused_with_the_reason() {
        let mut c = ImageConfig::default();
        for bad in [
            "RUN make",
            "CMD",
            "EXPOSE 99999",
            "EXPOSE 80/xyz",
            r#"ENV A="open"#,
            "ENV =x",
            "STOPSIGNAL A B",
        ] {
            let e = apply_change(&mut c, bad).unwrap_err();
            assert!(matches!(e, ImportError::Change { .. }), "{bad}: {e}");
        }
    }
}
