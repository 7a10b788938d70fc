//! [`TeeWriter`]: a blob writer that also puts every byte into the blob's
//! place in a [`LiveOutput`] (a [`crate::export::PlacedTar`]), on a thread of its own (so the copy
//! runs beside the hashing, not after it). The place counts as filled only
//! when the cache verified the blob and every byte from 0 went both ways;
//! otherwise the output's `finish` copies the blob from the cache, so a
//! failure here costs time, never correctness.

use crate::cache::{BlobWriter, CacheError};
use crate::export::{LiveOutput, SlotId};
use crate::oci::digest::{Digest, Verifier};
use crate::transfer::hashing::{Gather, HashingWriter, Sink};
use async_trait::async_trait;
use bytes::Bytes;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Pieces that may wait for the thread.
const DEPTH: usize = 4;
/// Start writeback after this many bytes.
const WRITEBACK_EVERY: u64 = 8 * 1024 * 1024;

pub struct TeeWriter {
    inner: Box<dyn BlobWriter>,
    out: Arc<dyn LiveOutput>,
    slot: SlotId,
    /// Pieces for the thread: (offset in the blob, bytes).
    tx: mpsc::Sender<(u64, Bytes)>,
    /// The thread's last word, sent once it has let go of the output:
    /// were all writes good?
    done: oneshot::Receiver<bool>,
    /// Bytes not yet sent (they end at the inner writer's offset).
    gather: Gather,
    /// Every byte from 0 went through here.
    whole: bool,
}

impl TeeWriter {
    /// `inner`, also writing into `slot` of `out`; `inner` alone when no
    /// thread can be started.
    pub fn wrap(
        inner: Box<dyn BlobWriter>,
        out: Arc<dyn LiveOutput>,
        slot: SlotId,
    ) -> Box<dyn BlobWriter> {
        let (tx, mut rx) = mpsc::channel::<(u64, Bytes)>(DEPTH);
        let (done_tx, done) = oneshot::channel();
        let thread_out = out.clone();
        let spawned = std::thread::Builder::new()
            .name("imgpull-tee".into())
            .spawn(move || {
                let mut ok = true;
                let mut since = 0u64;
                while let Some((at, data)) = rx.blocking_recv() {
                    if ok {
                        ok = thread_out.write_at(slot, at, &data).is_ok();
                        since += data.len() as u64;
                        if since >= WRITEBACK_EVERY {
                            thread_out.start_writeback();
                            since = 0;
                        }
                    }
                }
                // Let go of the output first: whoever waits for this may
                // need to be its only owner.
                drop(thread_out);
                let _ = done_tx.send(ok);
            });
        if spawned.is_err() {
            return inner;
        }
        let whole = inner.offset() == 0;
        Box::new(TeeWriter {
            inner,
            out,
            slot,
            tx,
            done,
            gather: Gather::default(),
            whole,
        })
    }

    /// Hand `ready` pieces to the thread (waiting while it is behind).
    /// They are consecutive and end where the gathered bytes start, which
    /// end at the inner writer's offset.
    async fn send(&mut self, ready: [Option<Bytes>; 2]) {
        let ready_len: usize = ready.iter().flatten().map(Bytes::len).sum();
        let mut at = self.inner.offset() - (self.gather.held() + ready_len) as u64;
        for piece in ready.into_iter().flatten() {
            let len = piece.len() as u64;
            // The thread only ends when the sender is gone; a failed send
            // means it panicked: the place is simply not filled.
            if self.tx.send((at, piece)).await.is_err() {
                self.whole = false;
            }
            at += len;
        }
    }
}

#[async_trait]
impl BlobWriter for TeeWriter {
    fn offset(&self) -> u64 {
        self.inner.offset()
    }

    async fn restart(&mut self) -> Result<(), CacheError> {
        self.inner.restart().await?;
        // Earlier bytes are written over from 0.
        self.gather.clear();
        self.whole = true;
        Ok(())
    }

    async fn write(&mut self, chunk: Bytes) -> Result<(), CacheError> {
        self.inner.write(chunk.clone()).await?;
        let ready = self.gather.push(chunk);
        self.send(ready).await;
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<(), CacheError> {
        let rest = [self.gather.take(), None];
        self.send(rest).await;
        let TeeWriter {
            inner,
            out,
            slot,
            tx,
            done,
            whole,
            ..
        } = *self;
        // The thread writes what it has, lets go of the output and says
        // whether every write went well. A writer is only replaced after
        // its commit, so no stale write can land after a newer one.
        drop(tx);
        let written = done.await.unwrap_or(false);
        inner.commit().await?;
        if whole && written {
            out.mark_filled(slot);
        }
        Ok(())
    }
}

/// Where downloaded blobs also go, and whether the cache keeps them too.
#[derive(Clone)]
pub struct TeeTo {
    pub out: Arc<dyn LiveOutput>,
    /// A throwaway cache (`--no-cache`): a blob with a place in the output
    /// goes only there, hashed on its way, never into the cache.
    pub only: bool,
}

/// A blob's place in the output, as a [`Sink`].
struct Place {
    out: Arc<dyn LiveOutput>,
    slot: SlotId,
    at: u64,
}

impl Sink for Place {
    fn put(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.out.write_at(self.slot, self.at, data)?;
        self.at += data.len() as u64;
        Ok(())
    }

    fn complete(&mut self) -> std::io::Result<()> {
        Ok(())
    }

    fn clear(&mut self) -> std::io::Result<()> {
        self.at = 0;
        Ok(())
    }

    fn start_writeback(&mut self) {
        self.out.start_writeback();
    }
}

/// A blob written only into its place in the output, hashed on the way
/// (on a thread of its own) and checked at `commit`: with a throwaway
/// cache, storing it there too would be a second copy of every byte.
pub struct PlaceWriter {
    out: HashingWriter<Place>,
    digest: Digest,
    size: u64,
    path: std::path::PathBuf,
}

impl PlaceWriter {
    /// `None` for a digest algorithm we cannot compute (the cache's
    /// writer then refuses it).
    pub fn new(
        out: Arc<dyn LiveOutput>,
        slot: SlotId,
        digest: &Digest,
        size: u64,
    ) -> Option<PlaceWriter> {
        let verifier = Verifier::new(digest)?;
        let path = out.path().to_path_buf();
        let place = Place { out, slot, at: 0 };
        Some(PlaceWriter {
            out: HashingWriter::new(place, verifier, None, true),
            digest: digest.clone(),
            size,
            path,
        })
    }
}

#[async_trait]
impl BlobWriter for PlaceWriter {
    fn offset(&self) -> u64 {
        self.out.held()
    }

    async fn restart(&mut self) -> Result<(), CacheError> {
        let fresh = Verifier::new(&self.digest).expect("checked in new");
        self.out
            .restart(fresh)
            .await
            .map_err(|e| CacheError::io(&self.path, e))
    }

    async fn write(&mut self, chunk: Bytes) -> Result<(), CacheError> {
        if self.out.held() + chunk.len() as u64 > self.size {
            return Err(CacheError::SizeMismatch {
                digest: self.digest.clone(),
                expected: self.size,
                found: self.out.held() + chunk.len() as u64,
            });
        }
        self.out
            .write(chunk)
            .await
            .map_err(|e| CacheError::io(&self.path, e))
    }

    async fn commit(self: Box<Self>) -> Result<(), CacheError> {
        let PlaceWriter {
            out,
            digest,
            size,
            path,
        } = *self;
        let (place, verifier) = out
            .into_parts()
            .await
            .map_err(|e| CacheError::io(&path, e))?;
        if verifier.len() != size {
            return Err(CacheError::SizeMismatch {
                digest,
                expected: size,
                found: verifier.len(),
            });
        }
        let found = verifier.finish();
        if found != digest {
            return Err(CacheError::DigestMismatch {
                expected: digest,
                found,
            });
        }
        place.out.mark_filled(place.slot);
        Ok(())
    }
}
