//! `docker-daemon:REF` as a copy source and destination, over the Engine
//! API client of [`docker_daemon`](crate::docker_daemon).
//!
//! The daemon speaks images only as `docker save` archives, and an archive
//! on a socket is read once, in the daemon's order (the manifest comes last).
//! The source therefore reads the export as [`ArchiveSource`] reads a piped
//! archive: big members staged into the store's `ingest/` as they arrive,
//! hashed on the way, then handed out from there. The destination writes a
//! `docker-archive:` straight into `POST /images/load`, never to disk.

use crate::archive_dest::{ArchiveDestination, ArchiveKind, SaveOutput};
use crate::archive_source::{ArchiveSource, LoadInput};
use crate::destination::ImageDestination;
use crate::docker_daemon::{DockerDaemon, LoadWriter};
use crate::source::{BlobBody, ImageSource, RawManifest};
use crate::{Progress, TransportError};
use hoist_oci::{Descriptor, Digest, Reference};
use hoist_store::Store;
use std::io::{self, Write};
use std::sync::{Arc, Mutex, MutexGuard};

/// One image exported by a Docker daemon, as a copy source.
pub struct DockerDaemonSource {
    archive: ArchiveSource,
}

impl DockerDaemonSource {
    /// Exports image `name` (a reference or an ID, as `docker save` takes)
    /// from `daemon`, staging its layers into `store`'s ingest as they
    /// stream in (reported to `progress`).
    pub fn open(
        daemon: &DockerDaemon,
        name: &str,
        store: &Store,
        progress: &dyn Progress,
    ) -> Result<Self, TransportError> {
        let export = daemon.export(&[&daemon_name(name)])?;
        let archive = ArchiveSource::open(LoadInput::Stream(Box::new(export)), store, progress)?;
        match archive.images().len() {
            1 => Ok(DockerDaemonSource { archive }),
            n => Err(TransportError::Archive(format!(
                "the Docker daemon at unix://{} exported {n} images for {name}, expected one",
                daemon.socket().display()
            ))),
        }
    }
}

impl ImageSource for DockerDaemonSource {
    fn top(&self) -> Result<RawManifest, TransportError> {
        self.archive.image(0).top()
    }

    fn manifest(&self, d: &Descriptor) -> Result<RawManifest, TransportError> {
        self.archive.image(0).manifest(d)
    }

    fn blob(&self, d: &Descriptor, offset: u64) -> Result<BlobBody, TransportError> {
        self.archive.image(0).blob(d, offset)
    }

    fn blame(&self, d: &Descriptor, e: TransportError) -> TransportError {
        self.archive.image(0).blame(d, e)
    }
}

/// The name to export: a bare repository means its `:latest`, as skopeo
/// takes it (`docker save REPO` would export every tag); IDs stay as given.
fn daemon_name(name: &str) -> String {
    let hex = name.strip_prefix("sha256:").unwrap_or(name);
    let is_id = hex.bytes().all(|b| b.is_ascii_hexdigit());
    match Reference::parse(name) {
        Ok(r) if !is_id && r.tag().is_none() && r.digest().is_none() => format!("{name}:latest"),
        _ => name.to_owned(),
    }
}

/// The load request, shared by the archive writing into it and the
/// destination that ends it.
type SharedLoad = Arc<Mutex<Option<LoadWriter>>>;

fn lock(l: &SharedLoad) -> MutexGuard<'_, Option<LoadWriter>> {
    l.lock().unwrap_or_else(|e| e.into_inner())
}

/// The archive's end of the load request.
struct LoadSink(SharedLoad);

impl Write for LoadSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match lock(&self.0).as_mut() {
            Some(w) => w.write(data),
            None => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the load into the Docker daemon was abandoned",
            )),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match lock(&self.0).as_mut() {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

/// A Docker daemon as a copy destination: `docker load` of a
/// `docker-archive:` written as the copy goes. Nothing is loaded unless the
/// copy commits; a failed copy aborts the request.
pub struct DockerDaemonDestination {
    archive: ArchiveDestination<'static>,
    load: SharedLoad,
}

impl DockerDaemonDestination {
    /// Refuses a name Docker cannot load an image under (a digest), so that
    /// a caller can check it before any byte moves; `tag` checks it too.
    pub fn check_name(name: &str) -> Result<(), TransportError> {
        if name.contains('@') {
            return Err(TransportError::BadReference(format!(
                "docker-daemon:{name}: Docker loads images under a tag, not a digest; give NAME[:TAG]"
            )));
        }
        Ok(())
    }

    /// Starts a load into `daemon`.
    pub fn new(daemon: &DockerDaemon) -> Result<Self, TransportError> {
        let load: SharedLoad = Arc::new(Mutex::new(Some(daemon.load_writer()?)));
        let sink = LoadSink(Arc::clone(&load));
        Ok(DockerDaemonDestination {
            archive: ArchiveDestination::new(
                SaveOutput::Owned(Box::new(sink)),
                ArchiveKind::Docker,
            ),
            load,
        })
    }
}

/// `e` ended the copy: when the daemon had refused the archive, its answer
/// is the error to give; the request is ended either way.
fn failed(load: &SharedLoad, e: TransportError) -> TransportError {
    let abandoned = lock(load).take().and_then(LoadWriter::abandon);
    abandoned.map(TransportError::from).unwrap_or(e)
}

impl ImageDestination for DockerDaemonDestination {
    fn has_blob(&self, d: &Descriptor) -> Result<bool, TransportError> {
        self.archive.has_blob(d)
    }

    fn put_blob(
        &self,
        d: &Descriptor,
        diff_id: Option<&Digest>,
        body: BlobBody,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<(), TransportError> {
        self.archive
            .put_blob(d, diff_id, body, progress)
            .map_err(|e| failed(&self.load, e))
    }

    fn put_manifest(&self, m: &RawManifest) -> Result<(), TransportError> {
        self.archive
            .put_manifest(m)
            .map_err(|e| failed(&self.load, e))
    }

    fn tag(&self, top: &RawManifest, tags: &[String]) -> Result<(), TransportError> {
        if let Err(e) = tags.iter().try_for_each(|t| Self::check_name(t)) {
            return Err(failed(&self.load, e));
        }
        self.archive
            .tag(top, tags)
            .map_err(|e| failed(&self.load, e))
    }

    fn commit(self: Box<Self>) -> Result<(), TransportError> {
        let DockerDaemonDestination { archive, load } = *self;
        if let Err(e) = Box::new(archive).commit() {
            return Err(failed(&load, e));
        }
        let writer = lock(&load).take().ok_or_else(|| {
            TransportError::Archive("the load into the Docker daemon was abandoned".into())
        })?;
        writer.finish()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_destination_named_by_digest_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let daemon = DockerDaemon::new(dir.path().join("nothing.sock")).unwrap();
        let dst = DockerDaemonDestination::new(&daemon).unwrap();
        let top = RawManifest::new(b"{}".to_vec(), hoist_oci::media_type::OCI_MANIFEST);
        let name = format!("busybox@sha256:{}", "a".repeat(64));
        assert!(DockerDaemonDestination::check_name(&name).is_err());
        assert!(DockerDaemonDestination::check_name("busybox:1.36").is_ok());
        let err = dst.tag(&top, std::slice::from_ref(&name)).unwrap_err();
        assert!(
            matches!(&err, TransportError::BadReference(m) if m.contains(&name)),
            "{err}"
        );
    }

    #[test]
    fn a_bare_repository_is_exported_as_its_latest_tag_and_ids_stay() {
        assert_eq!(daemon_name("busybox"), "busybox:latest");
        assert_eq!(
            daemon_name("localhost:5000/a/b"),
            "localhost:5000/a/b:latest"
        );
        assert_eq!(daemon_name("busybox:1.36"), "busybox:1.36");
        let digest = format!("busybox@sha256:{}", "a".repeat(64));
        assert_eq!(daemon_name(&digest), digest);
        assert_eq!(daemon_name("3310b8f0453d"), "3310b8f0453d");
        let id = format!("sha256:{}", "b".repeat(64));
        assert_eq!(daemon_name(&id), id);
    }
}
