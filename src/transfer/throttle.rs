//! `--limit-rate`: one token bucket shared by every connection of a pull,
//! so the total stays under the cap however many layers are in flight.

use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct RateLimiter {
    /// Bytes per second.
    rate: f64,
    /// Most bytes that may go at once after a quiet spell.
    burst: f64,
    state: Mutex<Bucket>,
}

struct Bucket {
    /// May go below zero: a debt paid by waiting.
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// `rate` bytes per second (above zero); starts empty, so the average
    /// from the first byte on holds the cap.
    pub fn new(rate: u64) -> RateLimiter {
        let rate = rate.max(1) as f64;
        RateLimiter {
            rate,
            burst: (rate / 10.0).max(16.0 * 1024.0),
            state: Mutex::new(Bucket {
                tokens: 0.0,
                at: Instant::now(),
            }),
        }
    }

    /// Account for `n` bytes received; waits as long as the cap requires.
    pub async fn take(&self, n: usize) {
        let wait = {
            let mut b = self.state.lock().expect("no panics while held");
            let now = Instant::now();
            let earned = now.duration_since(b.at).as_secs_f64() * self.rate;
            b.tokens = (b.tokens + earned).min(self.burst) - n as f64;
            b.at = now;
            if b.tokens < 0.0 {
                Duration::from_secs_f64(-b.tokens / self.rate)
            } else {
                Duration::ZERO
            }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn holds_the_average_rate_across_tasks() {
        let limiter = std::sync::Arc::new(RateLimiter::new(4 * 1024 * 1024));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let l = limiter.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..16 {
                    l.take(32 * 1024).await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        // 2 MiB at 4 MiB/s: about half a second.
        let took = started.elapsed().as_secs_f64();
        assert!((0.45..2.0).contains(&took), "{took}");
    }
}
