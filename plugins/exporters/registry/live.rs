//! A copy into a registry that uploads each layer as it downloads: the
//! bytes the download writes go on, piece by piece, into one PATCH per
//! blob (the registry checks the digest at the closing PUT, the cache
//! checks it too). A blob that does not arrive in one pass from its first
//! byte (a download resumed from an earlier run, started over, or found
//! in the cache) is uploaded at `finish`, from the cache, as any push is.

use crate::export::push::{push_rest, CacheBlobs, PushImage, PushSettings};
use crate::export::{Destination, ExportContext, ExportError, LiveOutput, SlotId};
use crate::oci::digest::Digest;
use crate::registry::redirect::{Payload, Taken};
use crate::registry::upload::Pushed;
use crate::registry::{RegistryClient, RegistryError};
use async_trait::async_trait;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Pieces that may wait for the upload of one blob.
const DEPTH: usize = 4;

type Pieces = Arc<Mutex<Option<mpsc::Receiver<Bytes>>>>;

/// Where one blob's upload stands.
enum Stream {
    /// No byte yet.
    Idle,
    /// Uploading: bytes up to `next` were handed over.
    Open { tx: mpsc::Sender<Bytes>, next: u64 },
    /// Every byte handed over, or given up on (a gap): `finish` decides.
    Closed,
}

struct Slot {
    digest: Digest,
    size: u64,
    /// Repositories of the registry it may be mounted from.
    mount_from: Vec<String>,
    stream: Stream,
    task: Option<JoinHandle<Result<Pushed, RegistryError>>>,
}

pub struct LiveUpload {
    client: Arc<RegistryClient>,
    image: PushImage,
    settings: PushSettings,
    runtime: tokio::runtime::Handle,
    slots: Mutex<Vec<Slot>>,
    name: PathBuf,
}

impl LiveUpload {
    pub fn new(client: RegistryClient, image: PushImage, settings: PushSettings) -> LiveUpload {
        let mut seen = BTreeMap::new();
        for d in image.manifests.iter().flat_map(|m| &m.blobs) {
            seen.insert(d.digest.clone(), d.size);
        }
        let known = crate::export::locations::Locations::load();
        let slots = seen
            .into_iter()
            .map(|(digest, size)| {
                let mut mount_from = image.mount_from.clone();
                mount_from.extend(known.of(&image.dest.registry, &digest));
                mount_from.retain(|r| *r != image.dest.repository);
                mount_from.truncate(2);
                Slot {
                    digest,
                    size,
                    mount_from,
                    stream: Stream::Idle,
                    task: None,
                }
            })
            .collect();
        LiveUpload {
            name: PathBuf::from(format!("docker://{}", image.dest)),
            client: Arc::new(client),
            image,
            settings,
            runtime: tokio::runtime::Handle::current(),
            slots: Mutex::new(slots),
        }
    }

    /// The upload of `slot`, fed from the pieces handed over.
    fn start(&self, slot: &mut Slot) -> mpsc::Sender<Bytes> {
        let (tx, rx) = mpsc::channel::<Bytes>(DEPTH);
        let pieces: Pieces = Arc::new(Mutex::new(Some(rx)));
        let body = body(pieces.clone(), slot.size);
        let client = self.client.clone();
        let repository = self.image.dest.repository.clone();
        let mount_from = slot.mount_from.clone();
        let (digest, size) = (slot.digest.clone(), slot.size);
        slot.task = Some(self.runtime.spawn(async move {
            let r = client
                .push_streamed(&repository, &digest, size, &mount_from, body)
                .await;
            // Not sent (the registry had it): take the rest, so the
            // download is not held up.
            let left = pieces.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(mut rx) = left {
                while rx.recv().await.is_some() {}
            }
            r
        }));
        tx
    }
}

/// The one-shot body of a streamed upload: the pieces, as they come.
fn body(pieces: Pieces, size: u64) -> Payload {
    let taken = Taken::default();
    let touch = taken.clone();
    Payload::stream("application/octet-stream", size, taken, move || {
        let rx = pieces.lock().unwrap_or_else(|e| e.into_inner()).take();
        let touch = touch.clone();
        let stream = futures_util::stream::unfold(rx, move |rx| {
            let touch = touch.clone();
            async move {
                let mut rx = rx?;
                let piece = rx.recv().await?;
                touch.touch();
                Some((Ok::<_, std::io::Error>(piece), Some(rx)))
            }
        });
        reqwest::Body::wrap_stream(stream)
    })
}

#[async_trait]
impl LiveOutput for LiveUpload {
    fn slot(&self, digest: &Digest) -> Option<SlotId> {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.iter().position(|s| s.digest == *digest).map(SlotId)
    }

    fn write_at(&self, slot: SlotId, at: u64, data: &[u8]) -> std::io::Result<()> {
        let tx = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            let Some(s) = slots.get_mut(slot.0) else {
                return Ok(());
            };
            if matches!(s.stream, Stream::Idle) {
                s.stream = if at == 0 {
                    Stream::Open {
                        tx: self.start(s),
                        next: 0,
                    }
                } else {
                    Stream::Closed
                };
            }
            let size = s.size;
            let Stream::Open { tx, next } = &mut s.stream else {
                return Ok(());
            };
            if *next != at || at + data.len() as u64 > size {
                // A gap or a rewind: the upload ends short and fails.
                s.stream = Stream::Closed;
                return Ok(());
            }
            *next += data.len() as u64;
            let tx = tx.clone();
            if *next == size {
                s.stream = Stream::Closed;
            }
            tx
        };
        // Outside the lock: an upload slower than the download holds up
        // this blob's download, not the others'.
        if tx.blocking_send(Bytes::copy_from_slice(data)).is_err() {
            self.close(slot);
        }
        Ok(())
    }

    fn mark_filled(&self, _slot: SlotId) {}

    fn path(&self) -> &Path {
        &self.name
    }

    fn discard(&self) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        for s in slots.iter_mut() {
            s.stream = Stream::Closed;
            if let Some(t) = s.task.take() {
                t.abort();
            }
        }
    }

    /// Wait for the streamed uploads; push what they did not (from the
    /// cache), then the manifests.
    async fn finish(
        &self,
        _dest: &Destination,
        cx: &ExportContext<'_>,
    ) -> Result<(usize, usize), ExportError> {
        let tasks: Vec<(Digest, JoinHandle<_>)> = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            slots
                .iter_mut()
                .filter_map(|s| {
                    s.stream = Stream::Closed;
                    Some((s.digest.clone(), s.task.take()?))
                })
                .collect()
        };
        let mut done = BTreeMap::new();
        for (digest, task) in tasks {
            match task.await {
                Ok(Ok(pushed)) => {
                    done.insert(digest, pushed);
                }
                Ok(Err(e)) => cx.reporter.info(&format!(
                    "{digest}: the upload beside the download failed ({e}); uploading it from the cache"
                )),
                Err(_) => {}
            }
        }
        let blobs = CacheBlobs(cx.cache);
        let report = push_rest(
            &self.client,
            &self.image,
            &blobs,
            &self.settings,
            cx.reporter,
            &done,
        )
        .await?;
        Ok((done.len(), report.blobs - done.len()))
    }
}

impl LiveUpload {
    fn close(&self, slot: SlotId) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = slots.get_mut(slot.0) {
            s.stream = Stream::Closed;
        }
    }
}
