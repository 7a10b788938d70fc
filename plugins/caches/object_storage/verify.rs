//! `imgpull cache verify --store`: every object under `PREFIX/blobs/`
//! re-hashed as it streams, against the digest its key names.

use super::Shared;
use crate::cache::ops::Bad;
use crate::cache::CacheError;
use crate::oci::digest::{Digest, Verifier};
use futures_util::StreamExt;
use object_store::ObjectStoreExt;

fn store_error(s: &Shared, e: impl std::fmt::Display) -> CacheError {
    CacheError::io(&s.url, std::io::Error::other(super::said(&e)))
}

/// How many objects were checked, and the bad ones (removed with `repair`).
pub async fn verify(s: &Shared, repair: bool) -> Result<(usize, Vec<Bad>), CacheError> {
    let root = s.key_root();
    let mut listing = s.get.list(Some(&root));
    let mut keys = Vec::new();
    while let Some(m) = listing.next().await {
        keys.push(m.map_err(|e| store_error(s, e))?.location);
    }
    let (mut checked, mut bad) = (0, Vec::new());
    for key in keys {
        let mut parts: Vec<String> = key.parts().map(|p| p.as_ref().to_string()).collect();
        let (Some(hex), Some(alg)) = (parts.pop(), parts.pop()) else {
            continue;
        };
        let Ok(digest) = format!("{alg}:{hex}").parse::<Digest>() else {
            continue; // not a blob (nor ours)
        };
        let Some(found) = hash(s, &key, &digest).await? else {
            continue; // gone since the listing
        };
        checked += 1;
        if found != digest {
            let removed = repair && s.put.delete(&key).await.is_ok();
            bad.push(Bad {
                digest,
                found: Some(found),
                removed,
            });
        }
    }
    Ok((checked, bad))
}

/// What the object at `key` hashes to (`None`: it is not there). A store
/// that does not answer, or stands still, is an error: it says nothing
/// about the object.
async fn hash(
    s: &Shared,
    key: &object_store::path::Path,
    like: &Digest,
) -> Result<Option<Digest>, CacheError> {
    let silent = || store_error(s, format!("no answer in {:?}", s.timeout));
    let got = match tokio::time::timeout(s.timeout, s.get.get(key)).await {
        Err(_) => return Err(silent()),
        Ok(Ok(g)) => g,
        Ok(Err(object_store::Error::NotFound { .. })) => return Ok(None),
        Ok(Err(e)) => return Err(store_error(s, e)),
    };
    let mut v = Verifier::of(like.algorithm());
    let mut body = super::body_of(got);
    loop {
        match tokio::time::timeout(s.timeout, body.next()).await {
            Err(_) => return Err(silent()),
            Ok(None) => break,
            // A broken read says nothing about the object: an error, not "bad".
            Ok(Some(chunk)) => v.update(&chunk.map_err(|e| store_error(s, e))?),
        }
    }
    Ok(Some(v.finish()))
}
