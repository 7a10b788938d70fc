//! Outputs written while their blobs download: the [`LiveOutput`] trait.
//! [`super::PlacedTar`] (a tar laid out in advance) is one; an exporter
//! that pushes could be another.

use super::{Destination, ExportContext, ExportError};
use crate::oci::digest::Digest;
use async_trait::async_trait;
use std::path::Path;

/// A blob's place in a live output, for the writer that fills it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotId(pub usize);

/// An output laid out before its blobs arrive, so their bytes go into it
/// as they download, beside the cache.
///
/// Contract:
/// - `write_at` puts bytes of one blob at an offset inside that blob's
///   place and never past it; it may be called from several threads at
///   once.
/// - `mark_filled` says every byte of the blob is in place and the cache
///   verified them; `finish` copies in, from the cache, every blob not
///   marked.
/// - Nothing at the destination looks complete before `finish` returns
///   `Ok` (called once, when no writer holds the output any more).
///   `discard` removes what was written at once, even while a writer still
///   holds the output; dropping an unfinished output removes it too.
#[async_trait]
pub trait LiveOutput: Send + Sync {
    /// The place of `digest`'s bytes, if this output holds that blob.
    fn slot(&self, digest: &Digest) -> Option<SlotId>;

    /// Write `data` at `at` bytes into `slot` (never past its end).
    fn write_at(&self, slot: SlotId, at: u64, data: &[u8]) -> std::io::Result<()>;

    /// Every byte of `slot`'s blob is in place and verified.
    fn mark_filled(&self, slot: SlotId);

    /// Start writing back what is written so far (a hint).
    fn start_writeback(&self) {}

    /// How messages name it (a tar's temporary file; any name for an
    /// output that is not a file).
    fn path(&self) -> &Path;

    /// Remove what was written, now (a failed pull).
    fn discard(&self);

    /// Copy in what did not arrive live, from `cx.cache`, and make the
    /// output visible at `dest`. Says how many blobs were written live and
    /// how many were copied.
    async fn finish(
        &self,
        dest: &Destination,
        cx: &ExportContext<'_>,
    ) -> Result<(usize, usize), ExportError>;
}
