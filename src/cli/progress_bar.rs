//! Progress on the CLI as one line redrawn in place when stderr is a terminal.
//!
//! Why: a batch over a cohort runs for minutes to hours; a bar that says how far it is
//! (`done/total`), which volume is in flight, how long it has run and about how long it
//! has left answers the user's question in one line instead of a scrolling log. When
//! stderr is not a terminal (a pipe, a file, CI) the CLI keeps its plain lines, which
//! scripts and tests read.
//!
//! Layout: [`render`] is the pure core (one frame in, one line out, never wider than the
//! terminal); [`TerminalBar`] is the I/O edge (throttled redraws with `\r` and
//! clear-to-end-of-line, a final newline); [`ProgressMode`] is the `--progress` flag.
//!
//! Log lines while the bar is drawn: `run` and `run-batch` install no tracing
//! subscriber, so library logs never reach the terminal during a run (the upstream's
//! own output goes to the pack's `logs/`). The CLI's own lines printed during a run
//! (the Ctrl-C notice) go through [`TerminalBar::println`], which clears the bar,
//! prints the line and redraws the bar below it, so nothing is garbled.

use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::call::Progress;

/// Redraws closer together than this are skipped (the final state is always drawn).
pub(crate) const MIN_REDRAW_INTERVAL: Duration = Duration::from_millis(100);
/// Cells inside the brackets on a wide enough terminal.
const BAR_CELLS: usize = 20;
/// A label shorter than this (ellipsis included) says nothing; drop it instead.
const MIN_LABEL_WIDTH: usize = 8;
/// Between the parts of a line.
const GAP: &str = "  ";

/// `--progress`: how run and run-batch report progress on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub(crate) enum ProgressMode {
    /// A bar when stderr is a terminal (and TERM is not `dumb`), plain lines otherwise.
    #[default]
    Auto,
    /// Always the bar (the terminal width is read from stderr, else $COLUMNS, else 80).
    Bar,
    /// Plain lines, one per change.
    Plain,
    /// No progress output (the final summary and errors are still printed).
    None,
}

/// What [`ProgressMode`] comes to on this stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProgressStyle {
    Bar,
    Plain,
    Quiet,
}

impl ProgressMode {
    /// Decide `auto` from whether stderr is a terminal and the `TERM` variable.
    pub(crate) fn resolve(self, stderr_is_terminal: bool, term: Option<&str>) -> ProgressStyle {
        match self {
            ProgressMode::Bar => ProgressStyle::Bar,
            ProgressMode::Plain => ProgressStyle::Plain,
            ProgressMode::None => ProgressStyle::Quiet,
            ProgressMode::Auto if stderr_is_terminal && term != Some("dumb") => ProgressStyle::Bar,
            ProgressMode::Auto => ProgressStyle::Plain,
        }
    }

    /// [`Self::resolve`] against this process's stderr and environment.
    pub(crate) fn resolve_for_stderr(self) -> ProgressStyle {
        use std::io::IsTerminal;
        let term = std::env::var("TERM").ok();
        self.resolve(std::io::stderr().is_terminal(), term.as_deref())
    }
}

/// How progress values read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Units {
    /// Things counted (volumes): `2/5`, with an estimate of the time left.
    Count,
    /// A percentage of phases (one run): no count, no estimate (phases are not even).
    Percent,
}

/// One state of the bar.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Frame<'a> {
    pub progress: f64,
    pub total: Option<f64>,
    /// Progress at the first report: what was already done (reused volumes) took no
    /// time and must not speed up the estimate.
    pub baseline: f64,
    /// The thing in flight (a volume id, a phase).
    pub label: &'a str,
    pub elapsed: Duration,
    pub units: Units,
    /// (elapsed, progress) when progress first passed the baseline: the start-up lies
    /// before it, so the estimate takes the pace from there once more is done.
    pub first_done: Option<(Duration, f64)>,
}

/// The fraction done in [0, 1]; `None` when the total is unknown. A zero total means
/// there was nothing to do, which is done.
pub(crate) fn fraction(progress: f64, total: Option<f64>) -> Option<f64> {
    let total = total.filter(|t| t.is_finite())?;
    if total <= 0.0 {
        return Some(1.0);
    }
    let progress = if progress.is_finite() { progress } else { 0.0 };
    Some((progress / total).clamp(0.0, 1.0))
}

/// Time left at the pace so far ([`crate::call::estimate_seconds_left`]): `None` until
/// something was done in this run, when the total is unknown, or when nothing is left.
pub(crate) fn estimate_left(
    progress: f64,
    total: Option<f64>,
    baseline: f64,
    elapsed: Duration,
    first_done: Option<(Duration, f64)>,
) -> Option<Duration> {
    let total = total.filter(|t| t.is_finite() && *t > 0.0)?;
    if !progress.is_finite() || !baseline.is_finite() {
        return None;
    }
    let seconds = crate::call::estimate_seconds_left(
        progress - baseline,
        total - progress,
        elapsed.as_secs_f64(),
        first_done.map(|(at, p)| (at.as_secs_f64(), p - baseline)),
    )?;
    Duration::try_from_secs_f64(seconds).ok()
}

/// `m:ss`, or `h:mm:ss` from an hour on.
pub(crate) fn clock(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// A count as people write it: whole numbers without a fraction.
fn count(v: f64) -> String {
    if !v.is_finite() {
        "?".into()
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Columns a character takes on a terminal: 0 for combining marks and zero-width
/// characters, 2 for East Asian wide characters and emoji, 1 otherwise. An
/// approximation of `wcwidth` for the ranges a file name plausibly holds.
pub(crate) fn char_width(c: char) -> usize {
    let u = c as u32;
    match u {
        0x0300..=0x036F | 0x200B..=0x200F | 0x20D0..=0x20FF | 0xFE00..=0xFE0F => 0,
        0x1100..=0x115F
        | 0x2E80..=0x303E
        | 0x3041..=0x33FF
        | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF
        | 0xA000..=0xA4CF
        | 0xAC00..=0xD7A3
        | 0xF900..=0xFAFF
        | 0xFE30..=0xFE4F
        | 0xFF00..=0xFF60
        | 0xFFE0..=0xFFE6
        | 0x1F300..=0x1F64F
        | 0x1F900..=0x1F9FF
        | 0x20000..=0x3FFFD => 2,
        _ => 1,
    }
}

/// Columns a string takes on a terminal (see [`char_width`]).
pub(crate) fn display_width(s: &str) -> usize {
    s.chars().map(char_width).sum()
}

/// `s` cut to at most `width` columns, ending in `…` when cut.
pub(crate) fn truncate_to_width(s: &str, width: usize) -> String {
    if display_width(s) <= width {
        return s.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = char_width(c);
        if used + w > width - 1 {
            break;
        }
        out.push(c);
        used += w;
    }
    out.push('…');
    out
}

/// Control characters (a stray `\r`, `\n`, tab or escape in an upstream line) would
/// move the cursor and break the redraw; each run of them becomes one space.
pub(crate) fn sanitize(label: &str) -> String {
    let mut out = String::with_capacity(label.len());
    let mut in_control = false;
    for c in label.chars() {
        if c.is_control() {
            if !in_control {
                out.push(' ');
            }
            in_control = true;
        } else {
            out.push(c);
            in_control = false;
        }
    }
    out.trim().to_string()
}

/// One line for `frame` that fits in a terminal `width` columns wide, e.g.
/// `[########............] 2/5   40%  t2.nii.gz  elapsed 0:41  ~1:02 left`.
///
/// The line stays one column short of the width (some terminals wrap when the last
/// column is written, which would break the redraw). When it does not fit, the label
/// is shortened with `…`, then dropped, then the elapsed time, then the bar narrows,
/// then the estimate goes; what still does not fit is cut.
pub(crate) fn render(frame: &Frame, width: usize) -> String {
    let max = width.saturating_sub(1).max(1);
    let fraction = fraction(frame.progress, frame.total);
    let count = match (frame.units, frame.total) {
        (Units::Count, Some(t)) if t.is_finite() => {
            format!("{}/{}", count(frame.progress), count(t))
        }
        (Units::Count, _) => format!("{} done", count(frame.progress)),
        (Units::Percent, _) => String::new(),
    };
    // Floor, so 100% means complete, not 99.6%.
    let percent = fraction.map(|f| format!("{:>3.0}%", (f * 100.0).floor()));
    let elapsed = format!("elapsed {}", clock(frame.elapsed));
    let left = match frame.units {
        Units::Count => estimate_left(
            frame.progress,
            frame.total,
            frame.baseline,
            frame.elapsed,
            frame.first_done,
        )
        .map(|d| format!("~{} left", clock(d))),
        Units::Percent => None,
    };
    let label = sanitize(frame.label);

    let compose = |cells: usize, label: &str, with_elapsed: bool, with_left: bool| {
        let mut head = String::new();
        if let (Some(f), true) = (fraction, cells > 0) {
            let filled = ((f * cells as f64).floor() as usize).min(cells);
            head.push('[');
            head.push_str(&"#".repeat(filled));
            head.push_str(&".".repeat(cells - filled));
            head.push(']');
        }
        let mut parts: Vec<&str> = Vec::new();
        let head_and_count = match (head.is_empty(), count.is_empty()) {
            (false, false) => format!("{head} {count}"),
            (false, true) => head,
            (true, _) => count.clone(),
        };
        if !head_and_count.is_empty() {
            parts.push(&head_and_count);
        }
        if let Some(p) = &percent {
            parts.push(p);
        }
        if !label.is_empty() {
            parts.push(label);
        }
        if with_elapsed {
            parts.push(&elapsed);
        }
        if let (true, Some(l)) = (with_left, &left) {
            parts.push(l);
        }
        parts.join(GAP)
    };

    // (bar cells, label, elapsed, estimate), from the fullest line to the barest.
    let variants = [
        (BAR_CELLS, true, true, true),
        (BAR_CELLS, false, true, true),
        (BAR_CELLS, false, false, true),
        (BAR_CELLS / 2, false, false, true),
        (0, false, false, true),
        (0, false, false, false),
    ];
    for (cells, with_label, with_elapsed, with_left) in variants {
        if with_label && !label.is_empty() {
            let full = compose(cells, &label, with_elapsed, with_left);
            if display_width(&full) <= max {
                return full;
            }
            let bare = compose(cells, "", with_elapsed, with_left);
            let room = max.saturating_sub(display_width(&bare) + GAP.len());
            if room >= MIN_LABEL_WIDTH {
                return compose(
                    cells,
                    &truncate_to_width(&label, room),
                    with_elapsed,
                    with_left,
                );
            }
            continue;
        }
        let line = compose(cells, "", with_elapsed, with_left);
        if display_width(&line) <= max {
            return line;
        }
    }
    truncate_to_width(&compose(0, "", false, false), max)
}

/// Columns of the terminal on stderr, else `$COLUMNS`, else 80.
pub(crate) fn terminal_width() -> usize {
    #[cfg(unix)]
    {
        // SAFETY: TIOCGWINSZ writes one winsize into the zeroed struct we own; a
        // failure (stderr not a terminal) leaves it untouched and returns -1.
        let mut size: libc::winsize = unsafe { std::mem::zeroed() };
        let ok = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
        if ok && size.ws_col > 0 {
            return usize::from(size.ws_col);
        }
    }
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|c| *c > 0)
        .unwrap_or(80)
}

/// Whether a redraw is due: the first always, then at most one per
/// [`MIN_REDRAW_INTERVAL`].
pub(crate) fn redraw_due(last_draw: Option<Instant>, now: Instant) -> bool {
    last_draw.is_none_or(|last| now.saturating_duration_since(last) >= MIN_REDRAW_INTERVAL)
}

/// The latest report, kept to redraw (elapsed time moves) and to draw at the end.
struct Latest {
    progress: f64,
    total: Option<f64>,
    label: String,
}

struct BarState {
    out: Box<dyn Write + Send>,
    started: Instant,
    baseline: Option<f64>,
    /// (elapsed, progress) at the first report past the baseline.
    first_done: Option<(Duration, f64)>,
    latest: Option<Latest>,
    last_draw: Option<Instant>,
    /// The line on screen, if the bar is on the current line (to clear it before a
    /// log line, and to skip redraws that would change nothing).
    on_screen: Option<String>,
    finished: bool,
}

/// The bar on a terminal: [`update`](Self::update) as reports come, [`tick`](Self::tick)
/// to move the elapsed time, [`println`](Self::println) for a line in between, and
/// [`finish`](Self::finish) before the final summary. Write errors are ignored: a
/// closed stderr must not stop a run.
pub(crate) struct TerminalBar {
    state: Mutex<BarState>,
    units: Units,
    width: Box<dyn Fn() -> usize + Send + Sync>,
}

impl TerminalBar {
    /// The bar on this process's stderr, sized to its terminal.
    pub(crate) fn stderr(units: Units) -> Self {
        TerminalBar::new(
            Box::new(std::io::stderr()),
            units,
            Box::new(terminal_width),
            Instant::now(),
        )
    }

    pub(crate) fn new(
        out: Box<dyn Write + Send>,
        units: Units,
        width: Box<dyn Fn() -> usize + Send + Sync>,
        started: Instant,
    ) -> Self {
        TerminalBar {
            state: Mutex::new(BarState {
                out,
                started,
                baseline: None,
                first_done: None,
                latest: None,
                last_draw: None,
                on_screen: None,
                finished: false,
            }),
            units,
            width,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BarState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new report; redrawn unless the last redraw was too recent.
    pub(crate) fn update(&self, report: Progress) {
        self.update_at(report, Instant::now());
    }

    /// [`Self::update`] at a given instant (tests drive the clock).
    pub(crate) fn update_at(&self, report: Progress, now: Instant) {
        let mut s = self.lock();
        if s.finished {
            return;
        }
        let baseline = *s.baseline.get_or_insert(report.progress);
        if s.first_done.is_none() && report.progress > baseline {
            s.first_done = Some((now.saturating_duration_since(s.started), report.progress));
        }
        let label = match (report.message, s.latest.take()) {
            (Some(m), _) => m,
            (None, Some(previous)) => previous.label,
            (None, None) => String::new(),
        };
        s.latest = Some(Latest {
            progress: report.progress,
            total: report.total,
            label,
        });
        if redraw_due(s.last_draw, now) {
            self.draw(&mut s, now);
        }
    }

    /// Redraw the latest state so the elapsed time moves (throttled like updates).
    pub(crate) fn tick_at(&self, now: Instant) {
        let mut s = self.lock();
        if !s.finished && s.latest.is_some() && redraw_due(s.last_draw, now) {
            self.draw(&mut s, now);
        }
    }

    /// [`Self::tick_at`] now.
    pub(crate) fn tick(&self) {
        self.tick_at(Instant::now());
    }

    /// Print `line` on its own line without garbling the bar: clear the bar, print,
    /// and draw the bar again below it.
    pub(crate) fn println(&self, line: &str) {
        let mut s = self.lock();
        if s.on_screen.take().is_some() {
            let _ = s.out.write_all(b"\r\x1b[K");
        }
        let _ = writeln!(s.out, "{line}");
        let _ = s.out.flush();
        if !s.finished && s.latest.is_some() {
            let now = Instant::now();
            self.draw(&mut s, now);
        }
    }

    /// Draw the final state (however recent the last redraw) and end the line, so what
    /// is printed next starts on a fresh line. Later calls do nothing.
    pub(crate) fn finish(&self) {
        self.finish_at(Instant::now());
    }

    /// [`Self::finish`] at a given instant.
    pub(crate) fn finish_at(&self, now: Instant) {
        let mut s = self.lock();
        if s.finished {
            return;
        }
        if s.latest.is_some() {
            self.draw(&mut s, now);
        }
        if s.on_screen.take().is_some() {
            let _ = s.out.write_all(b"\n");
            let _ = s.out.flush();
        }
        s.finished = true;
    }

    fn draw(&self, s: &mut BarState, now: Instant) {
        let Some(latest) = &s.latest else { return };
        let frame = Frame {
            progress: latest.progress,
            total: latest.total,
            baseline: s.baseline.unwrap_or(latest.progress),
            label: &latest.label,
            elapsed: now.saturating_duration_since(s.started),
            units: self.units,
            first_done: s.first_done,
        };
        let line = render(&frame, (self.width)());
        s.last_draw = Some(now);
        if s.on_screen.as_ref() == Some(&line) {
            return;
        }
        // One write per frame: a frame split over several writes could flicker.
        let _ = s.out.write_all(format!("\r{line}\x1b[K").as_bytes());
        let _ = s.out.flush();
        s.on_screen = Some(line);
    }
}

/// A `tracing` writer that prints each log event through the bar (cleared, printed,
/// drawn again below), so warnings reach the terminal without garbling the bar.
pub(crate) struct LogThroughBar(pub std::sync::Arc<TerminalBar>);

/// One log event on its way to [`TerminalBar::println`], printed when dropped.
pub(crate) struct BarLogLine {
    bar: std::sync::Arc<TerminalBar>,
    text: Vec<u8>,
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogThroughBar {
    type Writer = BarLogLine;

    fn make_writer(&'a self) -> BarLogLine {
        BarLogLine {
            bar: self.0.clone(),
            text: Vec::new(),
        }
    }
}

impl Write for BarLogLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.text.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for BarLogLine {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.text);
        let line = text.trim_end_matches('\n');
        if !line.is_empty() {
            self.bar.println(line);
        }
    }
}

#[cfg(test)]
mod tests;
