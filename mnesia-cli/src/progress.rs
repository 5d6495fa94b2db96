//! Progress shown on a terminal while long work runs (on stderr, so that stdout stays what
//! the command prints); nothing at all when stderr is not a terminal (a pipe, a file, a test).

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// A spinner with a count of what is done, when stderr is a terminal.
pub(crate) fn counter(what: &str) -> Option<ProgressBar> {
    let bar = spinner(what)?;
    bar.set_style(ProgressStyle::with_template("{spinner} {pos} {msg} ({elapsed})").ok()?);
    Some(bar)
}

/// A spinner saying what runs, when stderr is a terminal.
pub(crate) fn spinner(what: &str) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new_spinner().with_message(what.to_owned());
    bar.enable_steady_tick(Duration::from_millis(100));
    Some(bar)
}

/// Clears a spinner once the work is done.
pub(crate) fn finish(bar: Option<ProgressBar>) {
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}
