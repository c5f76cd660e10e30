//! Progress on a terminal. A step that counts bytes (encrypting,
//! decrypting, verifying) gets a bar with bytes, rate and time left; a step
//! that does not (pushing, fetching) gets a spinner with the time it has
//! taken. Nothing is drawn when stderr is not a terminal or with
//! `--quiet`, so scripts and logs see only what they asked for. With `-v`,
//! each step and file is also told as one line on stderr, terminal or not.

use std::io::IsTerminal;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use mvault::model::text::escape;
use mvault::ops::progress::Progress;

/// What the CLI tells while the library works.
pub struct Feedback {
    draw: bool,
    verbose: bool,
    step: Mutex<Option<Step>>,
}

struct Step {
    name: String,
    done: u64,
    started: Instant,
    bar: Option<ProgressBar>,
}

impl Feedback {
    /// Draw when stderr is a terminal and not `--quiet`; tell steps in
    /// lines with `-v`.
    pub fn new(quiet: bool, verbose: u8) -> Self {
        Feedback {
            draw: !quiet && std::io::stderr().is_terminal(),
            verbose: verbose > 0 && !quiet,
            step: Mutex::new(None),
        }
    }

    fn step(&self) -> MutexGuard<'_, Option<Step>> {
        // A panic elsewhere must not take progress down with it.
        self.step.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn bar(name: &str, total: u64) -> ProgressBar {
    let target = ProgressDrawTarget::stderr();
    let bar = if total > 0 {
        let b = ProgressBar::with_draw_target(Some(total), target);
        b.set_style(
            ProgressStyle::with_template(
                "{msg} [{bar:16}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        b
    } else {
        let b = ProgressBar::with_draw_target(None, target);
        b.set_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed}").expect("a valid template"),
        );
        b.enable_steady_tick(Duration::from_millis(120));
        b
    };
    bar.set_message(name.to_owned());
    bar
}

impl Progress for Feedback {
    fn begin(&self, step: &str, total: u64) {
        let mut s = self.step();
        if let Some(old) = s.take().and_then(|o| o.bar) {
            old.finish_and_clear();
        }
        *s = Some(Step {
            name: step.to_owned(),
            done: 0,
            started: Instant::now(),
            bar: self.draw.then(|| bar(step, total)),
        });
    }

    fn file(&self, path: &str) {
        let s = self.step();
        let Some(step) = s.as_ref() else { return };
        let path = escape(path);
        if let Some(b) = &step.bar {
            b.set_message(format!("{} {path}", step.name));
        }
        if self.verbose {
            match &step.bar {
                Some(b) => b.suspend(|| eprintln!("mvault: {} {path}", step.name)),
                None => eprintln!("mvault: {} {path}", step.name),
            }
        }
    }

    fn advance(&self, bytes: u64) {
        let mut s = self.step();
        if let Some(step) = s.as_mut() {
            step.done += bytes;
            if let Some(b) = &step.bar {
                b.inc(bytes);
            }
        }
    }

    fn end(&self) {
        let Some(step) = self.step().take() else {
            return;
        };
        if let Some(b) = &step.bar {
            b.finish_and_clear();
        }
        if self.verbose {
            let secs = step.started.elapsed().as_secs_f64();
            if step.done > 0 {
                eprintln!(
                    "mvault: {} done: {} in {secs:.2} s ({}/s)",
                    step.name,
                    HumanBytes(step.done),
                    HumanBytes((step.done as f64 / secs.max(1e-3)) as u64)
                );
            } else {
                eprintln!("mvault: {} done in {secs:.2} s", step.name);
            }
        }
    }
}
