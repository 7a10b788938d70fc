//! Drawing pull progress: bars in a terminal (one line per layer and a
//! total; indicatif keeps concurrent lines apart), plain lines at sensible
//! intervals when stderr is not a terminal (CI logs: no escape bytes), one
//! JSON object per event with `--json`, nothing with `-q`. No colours are
//! used, so `NO_COLOR` holds by construction.

use crate::oci::digest::Digest;
use crate::progress::{BlobState, Reporter};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub(crate) fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
}

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Bars,
    Plain,
    Json,
    Quiet,
}

impl Mode {
    /// `--json` wins, then `-q`; bars only on a terminal that can draw them.
    pub fn choose(json: bool, quiet: bool) -> Mode {
        let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
        if json {
            Mode::Json
        } else if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() && !dumb {
            Mode::Bars
        } else {
            Mode::Plain
        }
    }
}

/// A terminal: one bar per blob and a total.
pub struct Bars {
    multi: MultiProgress,
    total: ProgressBar,
    bars: Mutex<HashMap<Digest, ProgressBar>>,
    verbose: bool,
}

impl Bars {
    pub fn new(verbose: bool) -> Bars {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(8));
        let total = multi.add(ProgressBar::new(0));
        total.set_style(Self::style());
        total.set_prefix("total");
        Bars {
            multi,
            total,
            bars: Mutex::new(HashMap::new()),
            verbose,
        }
    }

    fn style() -> ProgressStyle {
        ProgressStyle::with_template(
            "{prefix:<12} [{bar:30}] {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec:>12} ETA {eta:<4} {msg}",
        )
        .expect("valid template")
        .progress_chars("=> ")
    }

    fn bar(&self, digest: &Digest) -> Option<ProgressBar> {
        self.bars
            .lock()
            .expect("no panics while held")
            .get(digest)
            .cloned()
    }
}

impl Reporter for Bars {
    fn blob_start(&self, digest: &Digest, size: u64, cached: bool) {
        // Layers go above the total line.
        let pb = self
            .multi
            .insert_before(&self.total, ProgressBar::new(size));
        pb.set_style(Self::style());
        pb.set_prefix(digest.short().to_string());
        self.total.inc_length(size);
        if cached {
            pb.set_position(size);
            self.total.inc(size);
            pb.finish_with_message("cached");
        } else {
            pb.set_message("downloading");
        }
        self.bars
            .lock()
            .expect("no panics while held")
            .insert(digest.clone(), pb);
    }

    fn blob_upload(&self, digest: &Digest, size: u64) {
        self.blob_start(digest, size, false);
        if let Some(pb) = self.bar(digest) {
            pb.set_message("pushing");
        }
    }

    fn blob_progress(&self, digest: &Digest, bytes: u64) {
        if let Some(pb) = self.bar(digest) {
            pb.inc(bytes);
            self.total.inc(bytes);
        }
    }

    fn blob_state(&self, digest: &Digest, state: BlobState) {
        let Some(pb) = self.bar(digest) else { return };
        let before = pb.position();
        let now = match state {
            BlobState::Resuming { from } => from,
            BlobState::StartingOver => 0,
            BlobState::Verifying => before,
            BlobState::AlreadyThere | BlobState::Mounted => pb.length().unwrap_or(before),
        };
        pb.set_position(now);
        self.total
            .set_position((self.total.position() + now).saturating_sub(before));
        pb.set_message(state.name());
    }

    fn blob_done(&self, digest: &Digest) {
        if let Some(pb) = self.bar(digest) {
            if !pb.is_finished() {
                pb.finish_with_message("done");
            }
        }
    }

    fn info(&self, message: &str) {
        if self.verbose {
            let _ = self
                .multi
                .println(crate::util::text::terminal_safe(message));
        }
    }

    fn warn(&self, message: &str) {
        let _ = self.multi.println(format!(
            "warning: {}",
            crate::util::text::terminal_safe(message)
        ));
    }

    fn pushed(&self, report: &crate::progress::PushReport) {
        self.multi.suspend(|| super::report::pushed(report));
    }
}

impl Bars {
    /// Close the total line before the summary is printed.
    pub fn finish(&self) {
        self.total.finish_with_message("done");
    }

    /// The pull failed: freeze every bar still moving, marked as stopped,
    /// so the screen shows where it ended (no ETA ticking on above the
    /// error).
    pub fn stop(&self) {
        for pb in self.bars.lock().expect("no panics while held").values() {
            if !pb.is_finished() {
                pb.abandon_with_message("stopped");
            }
        }
        self.total.abandon_with_message("failed");
    }
}

/// Not a terminal: a line when a blob starts and ends, and one progress
/// line at most every few seconds.
pub struct Plain {
    verbose: bool,
    state: Mutex<PlainState>,
}

struct PlainState {
    total: u64,
    done: u64,
    /// Bytes held per blob (so a resume or restart corrects `done`).
    held: HashMap<Digest, u64>,
    last: Instant,
    started: Instant,
}

impl Plain {
    /// Seconds between progress lines.
    const EVERY: Duration = Duration::from_secs(5);

    pub fn new(verbose: bool) -> Plain {
        let now = Instant::now();
        Plain {
            verbose,
            state: Mutex::new(PlainState {
                total: 0,
                done: 0,
                held: HashMap::new(),
                last: now,
                started: now,
            }),
        }
    }
}

impl Reporter for Plain {
    fn blob_start(&self, digest: &Digest, size: u64, cached: bool) {
        let mut s = self.state.lock().expect("no panics while held");
        s.total += size;
        if cached {
            s.done += size;
        }
        let state = if cached { "cached" } else { "downloading" };
        eprintln!("{}: {state} ({:.1} MB)", digest.short(), mb(size));
    }

    fn blob_upload(&self, digest: &Digest, size: u64) {
        self.state.lock().expect("no panics while held").total += size;
        eprintln!("{}: pushing ({:.1} MB)", digest.short(), mb(size));
    }

    fn blob_progress(&self, digest: &Digest, bytes: u64) {
        let mut s = self.state.lock().expect("no panics while held");
        s.done += bytes;
        *s.held.entry(digest.clone()).or_default() += bytes;
        if s.last.elapsed() >= Self::EVERY {
            s.last = Instant::now();
            let secs = s.started.elapsed().as_secs_f64().max(0.001);
            eprintln!(
                "progress: {:.1}/{:.1} MB ({:.1} MB/s)",
                mb(s.done),
                mb(s.total),
                mb(s.done) / secs
            );
        }
    }

    fn blob_state(&self, digest: &Digest, state: BlobState) {
        let now = match state {
            BlobState::Resuming { from } => Some(from),
            BlobState::StartingOver => Some(0),
            BlobState::Verifying => None,
            BlobState::AlreadyThere | BlobState::Mounted => None,
        };
        if let Some(now) = now {
            let mut s = self.state.lock().expect("no panics while held");
            let before = s.held.insert(digest.clone(), now).unwrap_or(0);
            s.done = (s.done + now).saturating_sub(before);
        }
        match state {
            BlobState::Resuming { from } => {
                eprintln!("{}: resuming at {:.1} MB", digest.short(), mb(from))
            }
            BlobState::StartingOver => eprintln!("{}: starting over", digest.short()),
            BlobState::Verifying if self.verbose => eprintln!("{}: verifying", digest.short()),
            BlobState::Verifying => {}
            BlobState::AlreadyThere | BlobState::Mounted => {
                eprintln!("{}: {}", digest.short(), state.name())
            }
        }
    }

    fn blob_done(&self, digest: &Digest) {
        if self.verbose {
            eprintln!("{}: done", digest.short());
        }
    }

    fn info(&self, message: &str) {
        if self.verbose {
            eprintln!("{}", crate::util::text::terminal_safe(message));
        }
    }

    fn warn(&self, message: &str) {
        eprintln!("warning: {}", crate::util::text::terminal_safe(message));
    }

    fn pushed(&self, report: &crate::progress::PushReport) {
        super::report::pushed(report);
    }
}

/// `--json`: one object per line on stdout. Progress is throttled to a few
/// lines a second per blob.
pub struct Json {
    verbose: bool,
    last: Mutex<HashMap<Digest, (Instant, u64)>>,
}

impl Json {
    const EVERY: Duration = Duration::from_millis(500);

    pub fn new(verbose: bool) -> Json {
        Json {
            verbose,
            last: Mutex::new(HashMap::new()),
        }
    }
}

/// Print one JSON event line on stdout.
pub fn emit(v: serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

impl Reporter for Json {
    fn blob_start(&self, digest: &Digest, size: u64, cached: bool) {
        self.last
            .lock()
            .expect("no panics while held")
            .insert(digest.clone(), (Instant::now(), 0));
        emit(json!({"event": "start", "digest": digest, "size": size, "cached": cached}));
    }

    fn blob_progress(&self, digest: &Digest, bytes: u64) {
        let mut last = self.last.lock().expect("no panics while held");
        let Some((at, done)) = last.get_mut(digest) else {
            return;
        };
        *done += bytes;
        if at.elapsed() >= Self::EVERY {
            *at = Instant::now();
            emit(json!({"event": "progress", "digest": digest, "bytes": *done}));
        }
    }

    fn blob_upload(&self, digest: &Digest, size: u64) {
        self.last
            .lock()
            .expect("no panics while held")
            .insert(digest.clone(), (Instant::now(), 0));
        emit(json!({"event": "start", "digest": digest, "size": size, "upload": true}));
    }

    fn blob_state(&self, digest: &Digest, state: BlobState) {
        let mut last = self.last.lock().expect("no panics while held");
        if let Some((_, done)) = last.get_mut(digest) {
            match state {
                BlobState::Resuming { from } => *done = from,
                BlobState::StartingOver => *done = 0,
                BlobState::Verifying | BlobState::AlreadyThere | BlobState::Mounted => {}
            }
        }
        let mut v = json!({"event": "state", "digest": digest, "state": state.name()});
        if let BlobState::Resuming { from } = state {
            v["from"] = json!(from);
        }
        emit(v);
    }

    fn blob_done(&self, digest: &Digest) {
        emit(json!({"event": "done", "digest": digest}));
    }

    fn info(&self, message: &str) {
        if self.verbose {
            emit(json!({"event": "info", "message": message}));
        }
    }

    fn warn(&self, message: &str) {
        emit(json!({"event": "warning", "message": message}));
    }

    fn pushed(&self, report: &crate::progress::PushReport) {
        let mut v = serde_json::to_value(report).unwrap_or_default();
        v["event"] = "pushed".into();
        emit(v);
    }
}
