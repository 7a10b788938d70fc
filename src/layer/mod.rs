//! Reading a layer blob as its uncompressed tar: gzip and zstd are told
//! apart by their magic bytes (registries mislabel media types), anything
//! else is read as a plain tar. Both decoders read every member / frame, as
//! `docker load` does for concatenated streams.

mod guard;
pub mod unpack;
pub use guard::{GuardError, TarGuard, MAX_RECORD};

use crate::cache::BlobSource;
use crate::oci::digest::{Digest, Verifier};
use std::io::{BufRead, BufReader, Read};

/// How a layer blob is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// Tell by the first bytes of the blob.
    pub fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
            || (head.len() >= 4 && head[0] & 0xf0 == 0x50 && head[1..4] == [0x2a, 0x4d, 0x18])
        {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// Open a layer blob for reading its tar stream, whatever its compression.
pub fn open(blob: &BlobSource) -> std::io::Result<Box<dyn Read + Send>> {
    let mut r = BufReader::with_capacity(1 << 20, blob.open()?);
    let kind = Compression::sniff(r.fill_buf()?);
    decoder(r, kind)
}

/// Wrap `r` in the decoder for `kind`.
pub fn decoder<R: BufRead + Send + 'static>(
    r: R,
    kind: Compression,
) -> std::io::Result<Box<dyn Read + Send>> {
    Ok(match kind {
        Compression::None => Box::new(r),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
        Compression::Zstd => Box::new(ZstdFrames::new(r)),
    })
}

/// How many uncompressed bytes one layer may yield (`max_layer_uncompressed`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Limit {
    /// 100 times the compressed size, and at least 1 GiB.
    #[default]
    Auto,
    Fixed(u64),
    Unlimited,
}

/// `auto`, `none` (or `unlimited`), or a size, in config and flags.
impl<'de> serde::Deserialize<'de> for Limit {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Limit, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Written {
            Bytes(u64),
            Text(String),
        }
        match Written::deserialize(d)? {
            Written::Bytes(n) => Ok(Limit::Fixed(n)),
            Written::Text(s) => Limit::parse(&s).map_err(|_| {
                serde::de::Error::invalid_value(
                    serde::de::Unexpected::Other("text it cannot read"),
                    &"a size like 20GiB, \"auto\" or \"none\"",
                )
            }),
        }
    }
}

impl serde::Serialize for Limit {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Limit::Auto => s.serialize_str("auto"),
            Limit::Unlimited => s.serialize_str("none"),
            Limit::Fixed(n) => s.serialize_str(&n.to_string()),
        }
    }
}

/// `auto`'s multiple of the compressed size, and its floor.
pub const AUTO_RATIO: u64 = 100;
pub const AUTO_FLOOR: u64 = 1 << 30;

impl Limit {
    /// `auto`, `none`, or a size (`20GiB`).
    pub fn parse(s: &str) -> Result<Limit, String> {
        match s.trim() {
            "auto" => Ok(Limit::Auto),
            "none" | "unlimited" => Ok(Limit::Unlimited),
            size => crate::util::units::parse_size(size)
                .map(Limit::Fixed)
                .map_err(|e| format!("{e}, or \"auto\" or \"none\"")),
        }
    }

    /// The bound for a layer whose blob is `compressed` bytes.
    pub fn bound(self, compressed: u64) -> Option<u64> {
        match self {
            Limit::Auto => Some(compressed.saturating_mul(AUTO_RATIO).max(AUTO_FLOOR)),
            Limit::Fixed(n) => Some(n),
            Limit::Unlimited => None,
        }
    }
}

static LIMIT: std::sync::Mutex<Limit> = std::sync::Mutex::new(Limit::Auto);

/// Set the process-wide bound (from the configuration, when an engine is made).
pub fn set_limit(limit: Limit) {
    *LIMIT.lock().unwrap_or_else(|e| e.into_inner()) = limit;
}

/// The bound for layer blob `blob`.
pub fn bound_for(blob: &BlobSource) -> Option<u64> {
    let limit = *LIMIT.lock().unwrap_or_else(|e| e.into_inner());
    limit.bound(blob.size().unwrap_or(0))
}

/// Why a layer could not be uncompressed.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("layer uncompresses to {found}, but the image config says {expected}")]
    DiffIdMismatch { expected: Digest, found: Digest },
    #[error("{0}")]
    Refused(GuardError),
}

impl LayerError {
    /// An I/O error of a guarded stream: the guard's refusal if it is one.
    pub fn from_io(e: std::io::Error) -> LayerError {
        if GuardError::find(&e).is_none() {
            return LayerError::Io(e);
        }
        match e.into_inner().map(|inner| inner.downcast::<GuardError>()) {
            Some(Ok(g)) => LayerError::Refused(*g),
            _ => unreachable!("found above"),
        }
    }
}

/// Decompress `src` into `out`, hashing the uncompressed bytes; fails when
/// they do not hash to `diff_id` (a corrupt or mislabelled layer is never
/// handed on) or pass the layer's bound. Returns the uncompressed size.
pub fn decompress_verified(
    src: &BlobSource,
    diff_id: &Digest,
    out: &mut impl std::io::Write,
) -> Result<u64, LayerError> {
    let mut verifier = Verifier::of(diff_id.algorithm());
    let mut r = TarGuard::bytes(open(src)?, bound_for(src));
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(LayerError::from_io(e)),
        };
        verifier.update(&buf[..n]);
        out.write_all(&buf[..n])?;
    }
    let len = verifier.len();
    let found = verifier.finish();
    if found != *diff_id {
        return Err(LayerError::DiffIdMismatch {
            expected: diff_id.clone(),
            found,
        });
    }
    Ok(len)
}

/// A reader that hashes what passes through it.
pub struct Hashing<R> {
    inner: R,
    verifier: Verifier,
}

impl<R: Read> Hashing<R> {
    pub fn new(inner: R, verifier: Verifier) -> Self {
        Hashing { inner, verifier }
    }

    /// Read what is left (tar padding past the end marker counts) and
    /// return the digest of everything.
    pub fn finish(mut self) -> std::io::Result<Digest> {
        std::io::copy(&mut self, &mut std::io::sink())?;
        Ok(self.verifier.finish())
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.verifier.update(&buf[..n]);
        Ok(n)
    }
}

/// A zstd stream of one or more frames; skippable frames (zstd:chunked
/// keeps its table of contents in them) are skipped.
struct ZstdFrames<R: BufRead> {
    r: R,
    dec: Box<ruzstd::decoding::FrameDecoder>,
    in_frame: bool,
}

/// The largest zstd window decoded: the decoder allocates the window a
/// frame asks for, so a few KiB of hostile zstd could take 128 MiB. zstd
/// levels up to 20 use at most this; `--long` and `--ultra` 21-22 need
/// more and are refused (README "Limits").
pub const MAX_ZSTD_WINDOW: u64 = 32 << 20;

impl<R: BufRead> ZstdFrames<R> {
    fn new(r: R) -> Self {
        let mut dec = Box::new(ruzstd::decoding::FrameDecoder::new());
        dec.set_max_window_size(MAX_ZSTD_WINDOW);
        ZstdFrames {
            r,
            dec,
            in_frame: false,
        }
    }
}

fn invalid(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, format!("zstd: {e}"))
}

impl<R: BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
        use ruzstd::decoding::BlockDecodingStrategy;
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if !self.in_frame {
                if self.r.fill_buf()?.is_empty() {
                    return Ok(0);
                }
                match self.dec.init(&mut self.r) {
                    Ok(()) => self.in_frame = true,
                    Err(FrameDecoderError::ReadFrameHeaderError(
                        ReadFrameHeaderError::SkipFrame { length, .. },
                    )) => {
                        let skipped = std::io::copy(
                            &mut (&mut self.r).take(u64::from(length)),
                            &mut std::io::sink(),
                        )?;
                        if skipped != u64::from(length) {
                            return Err(invalid("truncated skippable frame"));
                        }
                    }
                    Err(FrameDecoderError::WindowSizeTooBig { requested, .. }) => {
                        return Err(std::io::Error::other(GuardError::ZstdWindow { requested }))
                    }
                    Err(e) => return Err(invalid(e)),
                }
                continue;
            }
            while self.dec.can_collect() == 0 && !self.dec.is_finished() {
                self.dec
                    .decode_blocks(&mut self.r, BlockDecodingStrategy::UptoBlocks(1))
                    .map_err(invalid)?;
            }
            let n = self.dec.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            if self.dec.is_finished() {
                self.in_frame = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn roundtrip(kind: Compression, blob: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        decoder(std::io::Cursor::new(blob.to_vec()), kind)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn gzip_members_are_all_read() {
        let mut blob = Vec::new();
        for part in [b"hello ".as_slice(), b"world"] {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(part).unwrap();
            blob.extend(gz.finish().unwrap());
        }
        assert_eq!(Compression::sniff(&blob), Compression::Gzip);
        assert_eq!(roundtrip(Compression::Gzip, &blob), b"hello world");
    }

    #[test]
    fn zstd_frames_are_all_read() {
        let mut blob = Vec::new();
        for part in [b"hello ".as_slice(), b"world"] {
            blob.extend(ruzstd::encoding::compress_to_vec(
                part,
                ruzstd::encoding::CompressionLevel::Fastest,
            ));
        }
        assert_eq!(Compression::sniff(&blob), Compression::Zstd);
        assert_eq!(roundtrip(Compression::Zstd, &blob), b"hello world");
    }

    #[test]
    fn zstd_skippable_frames_are_skipped() {
        let mut blob = vec![0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 9, 9, 9];
        blob.extend(ruzstd::encoding::compress_to_vec(
            b"chunked".as_slice(),
            ruzstd::encoding::CompressionLevel::Fastest,
        ));
        blob.extend([0x5f, 0x2a, 0x4d, 0x18, 0, 0, 0, 0]);
        assert_eq!(roundtrip(Compression::Zstd, &blob), b"chunked");
    }

    #[test]
    fn garbage_zstd_is_an_error_not_a_panic() {
        let blob = [0x28, 0xb5, 0x2f, 0xfd, 0xff, 0xff, 0xff, 0x00, 0x01];
        let mut out = Vec::new();
        let r = decoder(std::io::Cursor::new(blob.to_vec()), Compression::Zstd)
            .unwrap()
            .read_to_end(&mut out);
        assert!(r.is_err());
    }

    #[test]
    fn a_wrong_diff_id_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("layer");
        std::fs::write(&p, b"plain tar bytes").unwrap();
        let p = BlobSource::File(p);
        let good = Digest::of(b"plain tar bytes");
        let mut out = Vec::new();
        assert_eq!(decompress_verified(&p, &good, &mut out).unwrap(), 15);
        let bad = Digest::of(b"other");
        let err = decompress_verified(&p, &bad, &mut Vec::new()).unwrap_err();
        assert!(
            matches!(err, LayerError::DiffIdMismatch { .. })
                && err.to_string().contains("image config says"),
            "{err}"
        );
    }
}
