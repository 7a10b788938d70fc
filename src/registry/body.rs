//! Reading response bodies under two time rules, so that no server can
//! hold a pull without end:
//!
//! - no byte for `stall_timeout`: the read fails (reqwest's read timeout);
//! - fewer than `min_speed` bytes per second over a whole `stall_timeout`
//!   window: the read fails too (a server dripping a byte every few
//!   seconds never trips the first rule).
//!
//! Both failures are network errors: a blob download resumes from where
//! it stopped, within its retry budget ([`Tries`]).

use super::{classify, RegistryError};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The minimum-speed rule over windows of `window`.
#[derive(Clone, Copy, Debug)]
pub struct Pace {
    pub window: Duration,
    /// Bytes per second; 0 turns the rule off.
    pub min_speed: u64,
}

/// A response body, read chunk by chunk under the [`Pace`] rules.
pub struct Body {
    inner: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    registry: String,
    url: String,
    pace: Pace,
    started: Instant,
    got: u64,
}

impl Body {
    pub(crate) fn new(resp: reqwest::Response, registry: &str, pace: Pace) -> Body {
        Body {
            url: resp.url().to_string(),
            inner: Box::pin(resp.bytes_stream()),
            registry: registry.to_string(),
            pace,
            started: Instant::now(),
            got: 0,
        }
    }

    /// The next chunk; `None` at the end of the body.
    pub async fn next(&mut self) -> Option<Result<Bytes, RegistryError>> {
        let chunk = match self.inner.next().await? {
            Ok(c) => c,
            Err(e) => return Some(Err(classify(&self.registry, &self.url, &e))),
        };
        self.got += chunk.len() as u64;
        let spent = self.started.elapsed();
        if self.pace.min_speed > 0 && spent >= self.pace.window {
            let floor = self.pace.min_speed.saturating_mul(spent.as_secs().max(1));
            if self.got < floor {
                return Some(Err(RegistryError::Network {
                    registry: self.registry.clone(),
                    url: super::shown_url(&self.url),
                    detail: format!(
                        "{} bytes in {} s, below the minimum speed of {} bytes/s (min_speed)",
                        self.got,
                        spent.as_secs(),
                        self.pace.min_speed
                    ),
                }));
            }
            // A new window.
            self.started = Instant::now();
            self.got = 0;
        }
        Some(Ok(chunk))
    }
}

/// A retry budget shared by every request made for one thing (a blob, a
/// manifest): each try takes one, whether it is the first request, a
/// resume after a reset, a piece of a chunked download or a retry after a
/// 5xx. So retries never multiply across layers of the stack.
#[derive(Debug)]
pub struct Tries(AtomicU32);

impl Tries {
    pub fn new(n: u32) -> Tries {
        Tries(AtomicU32::new(n.max(1)))
    }

    /// Take one try; returns how many are left after it (0: this is the
    /// last). When none is left a try is still made, as the last.
    pub fn take(&self) -> u32 {
        let before = self
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                Some(n.saturating_sub(1))
            })
            .unwrap_or(0);
        before.saturating_sub(1)
    }

    pub fn left(&self) -> u32 {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tries_run_out_and_stay_out() {
        let t = Tries::new(3);
        assert_eq!((t.take(), t.take(), t.take()), (2, 1, 0));
        assert_eq!(t.take(), 0);
        assert_eq!(t.left(), 0);
        assert_eq!(Tries::new(0).take(), 0, "never zero tries");
    }
}
