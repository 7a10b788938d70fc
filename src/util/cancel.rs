//! Process-wide cancellation (Ctrl-C): long blocking work (writing an
//! output) checks it between steps and stops, removing what it started.

use std::sync::atomic::{AtomicBool, Ordering};

static CANCELLED: AtomicBool = AtomicBool::new(false);

/// Ask every running operation to stop.
pub fn request() {
    CANCELLED.store(true, Ordering::SeqCst);
}

pub fn requested() -> bool {
    CANCELLED.load(Ordering::SeqCst)
}
