//! The progress bar's tests: the pure renderer frame by frame, and the terminal edge
//! through a captured writer. A file of their own keeps `progress_bar.rs` to the code.

use super::*;
use std::sync::Arc;

fn frame(progress: f64, total: Option<f64>, label: &str, elapsed_s: u64) -> Frame<'_> {
    Frame {
        progress,
        total,
        baseline: 0.0,
        label,
        elapsed: Duration::from_secs(elapsed_s),
        units: Units::Count,
        first_done: None,
    }
}

#[test]
fn a_wide_terminal_gets_every_part() {
    assert_eq!(
        render(&frame(2.0, Some(5.0), "t2.nii.gz", 41), 100),
        "[########............] 2/5   40%  t2.nii.gz  elapsed 0:41  ~1:01 left"
    );
}

#[test]
fn no_estimate_before_the_first_volume_is_done() {
    assert_eq!(
        render(&frame(0.0, Some(3.0), "a", 12), 100),
        "[....................] 0/3    0%  a  elapsed 0:12"
    );
}

#[test]
fn the_estimate_ignores_what_was_done_before_the_run() {
    // 3 reused at the start, 1 processed in 60 s, 1 left: about 60 s, not 15 s.
    let f = Frame {
        baseline: 3.0,
        ..frame(4.0, Some(5.0), "e", 60)
    };
    assert!(render(&f, 100).ends_with("elapsed 1:00  ~1:00 left"));
    assert_eq!(
        estimate_left(4.0, Some(5.0), 3.0, Duration::from_secs(60), None),
        Some(Duration::from_secs(60))
    );
}

#[test]
fn after_start_up_the_estimate_follows_the_pace_since_the_first_volume() {
    // 30 s to the first of 10 volumes (start-up), then 3 s each: at 4/10 after 39 s,
    // 6 left at 3 s = 18 s (not 39/4 * 6 = 58 s).
    let f = Frame {
        first_done: Some((Duration::from_secs(30), 1.0)),
        ..frame(4.0, Some(10.0), "e", 39)
    };
    assert!(
        render(&f, 100).ends_with("elapsed 0:39  ~0:18 left"),
        "{}",
        render(&f, 100)
    );
    // The bar records the first completion itself.
    let screen = Screen::default();
    let t0 = Instant::now();
    let bar = TerminalBar::new(Box::new(screen.clone()), Units::Count, Box::new(|| 80), t0);
    let tenth = |p: f64| Progress {
        progress: p,
        total: Some(10.0),
        message: None,
        item: None,
    };
    bar.update_at(tenth(0.0), t0);
    bar.update_at(tenth(1.0), t0 + Duration::from_secs(30));
    bar.update_at(tenth(4.0), t0 + Duration::from_secs(39));
    assert!(
        screen.text().ends_with("~0:18 left\x1b[K"),
        "{:?}",
        screen.text()
    );
}

#[test]
fn zero_total_is_complete() {
    assert_eq!(
        render(&frame(0.0, Some(0.0), "", 1), 100),
        "[####################] 0/0  100%  elapsed 0:01"
    );
    assert_eq!(
        estimate_left(0.0, Some(0.0), 0.0, Duration::from_secs(1), None),
        None
    );
}

#[test]
fn unknown_total_has_no_bar_percent_or_estimate() {
    assert_eq!(
        render(&frame(3.0, None, "c", 75), 100),
        "3 done  c  elapsed 1:15"
    );
    assert_eq!(fraction(3.0, Some(f64::NAN)), None);
}

#[test]
fn progress_beyond_total_is_clamped_not_negative() {
    let line = render(&frame(7.0, Some(5.0), "x", 10), 100);
    assert_eq!(line, "[####################] 7/5  100%  x  elapsed 0:10");
    assert_eq!(fraction(-1.0, Some(5.0)), Some(0.0));
    assert_eq!(fraction(f64::NAN, Some(5.0)), Some(0.0));
}

#[test]
fn percent_units_show_no_count_and_no_estimate() {
    let f = Frame {
        units: Units::Percent,
        ..frame(10.0, Some(100.0), "inference", 30)
    };
    assert_eq!(
        render(&f, 100),
        "[##..................]   10%  inference  elapsed 0:30"
    );
}

#[test]
fn long_labels_are_shortened_with_an_ellipsis_to_the_width() {
    let name = "a_really_long_volume_identifier_from_a_cohort_export_0001";
    let line = render(&frame(1.0, Some(4.0), name, 10), 80);
    assert_eq!(display_width(&line), 79, "{line}");
    assert!(line.contains("a_really_long_volu…"), "{line}");
    assert!(line.contains('…') && line.ends_with("~0:30 left"), "{line}");
}

#[test]
fn narrow_terminals_drop_parts_in_order_and_never_overflow() {
    let f = frame(2.0, Some(5.0), "t2.nii.gz", 41);
    // No room for a label: it goes first, then the elapsed time.
    assert_eq!(
        render(&f, 50),
        "[########............] 2/5   40%  ~1:01 left"
    );
    assert_eq!(render(&f, 40), "[####......] 2/5   40%  ~1:01 left");
    assert_eq!(render(&f, 30), "2/5   40%  ~1:01 left");
    assert_eq!(render(&f, 12), "2/5   40%");
    assert_eq!(render(&f, 6), "2/5 …");
    for width in 0..120 {
        let line = render(&f, width);
        assert!(
            display_width(&line) <= width.saturating_sub(1).max(1),
            "{width}: {line}"
        );
    }
}

#[test]
fn unicode_labels_are_measured_in_columns() {
    assert_eq!(display_width("肝臓.nii.gz"), 11);
    assert_eq!(display_width("e\u{301}"), 1);
    assert_eq!(truncate_to_width("肝臓肝臓肝臓", 5), "肝臓…");
    assert_eq!(truncate_to_width("éèê.nii", 4), "éèê…");
    let name = "患者_0001_腹部CT_造影_動脈相.nii.gz";
    for width in 30..90 {
        let line = render(&frame(1.0, Some(2.0), name, 5), width);
        assert!(display_width(&line) < width, "{width}: {line}");
    }
}

#[test]
fn control_characters_cannot_move_the_cursor() {
    assert_eq!(sanitize("epoch 1\r\x1b[2Kdone\n"), "epoch 1 [2Kdone");
    let line = render(&frame(1.0, Some(2.0), "a\rb\tc", 5), 80);
    assert!(!line.chars().any(char::is_control), "{line:?}");
}

#[test]
fn clock_reads_minutes_then_hours() {
    assert_eq!(clock(Duration::from_secs(0)), "0:00");
    assert_eq!(clock(Duration::from_secs(62)), "1:02");
    assert_eq!(clock(Duration::from_secs(3 * 3600 + 5 * 60 + 9)), "3:05:09");
}

#[test]
fn auto_is_the_bar_only_on_a_real_terminal() {
    assert_eq!(
        ProgressMode::Auto.resolve(true, Some("xterm")),
        ProgressStyle::Bar
    );
    assert_eq!(
        ProgressMode::Auto.resolve(true, Some("dumb")),
        ProgressStyle::Plain
    );
    assert_eq!(
        ProgressMode::Auto.resolve(false, None),
        ProgressStyle::Plain
    );
    assert_eq!(ProgressMode::Bar.resolve(false, None), ProgressStyle::Bar);
    assert_eq!(ProgressMode::None.resolve(true, None), ProgressStyle::Quiet);
}

/// A writer the test can read back.
#[derive(Clone, Default)]
struct Screen(Arc<Mutex<Vec<u8>>>);

impl Write for Screen {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Screen {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

fn report(progress: f64, message: Option<&str>) -> Progress {
    Progress {
        progress,
        total: Some(2.0),
        message: message.map(str::to_string),
        item: None,
    }
}

#[test]
fn redraws_are_throttled_but_the_final_state_is_always_drawn() {
    let screen = Screen::default();
    let t0 = Instant::now();
    let bar = TerminalBar::new(Box::new(screen.clone()), Units::Count, Box::new(|| 60), t0);
    bar.update_at(report(0.0, Some("a")), t0);
    // 10 ms later: too soon, not drawn.
    bar.update_at(report(1.0, Some("b")), t0 + Duration::from_millis(10));
    assert_eq!(
        screen.text(),
        "\r[....................] 0/2    0%  a  elapsed 0:00\x1b[K"
    );
    // The label carries over a report without a message.
    bar.update_at(report(2.0, None), t0 + Duration::from_millis(20));
    bar.finish_at(t0 + Duration::from_secs(3));
    let text = screen.text();
    assert!(
        text.ends_with("\r[####################] 2/2  100%  b  elapsed 0:03\x1b[K\n"),
        "{text:?}"
    );
    assert_eq!(text.matches('\r').count(), 2, "{text:?}");
    // After finish nothing more is drawn.
    bar.update_at(report(1.0, Some("late")), t0 + Duration::from_secs(9));
    bar.tick_at(t0 + Duration::from_secs(9));
    bar.finish();
    assert_eq!(screen.text(), text);
}

#[test]
fn ticks_move_the_elapsed_time() {
    let screen = Screen::default();
    let t0 = Instant::now();
    let bar = TerminalBar::new(Box::new(screen.clone()), Units::Count, Box::new(|| 60), t0);
    bar.tick_at(t0);
    assert_eq!(screen.text(), "", "nothing to draw before the first report");
    bar.update_at(report(0.0, Some("a")), t0);
    bar.tick_at(t0 + Duration::from_millis(500));
    assert_eq!(
        screen.text().matches('\r').count(),
        1,
        "a redraw that changes nothing is skipped"
    );
    bar.tick_at(t0 + Duration::from_secs(65));
    assert!(
        screen.text().ends_with("a  elapsed 1:05\x1b[K"),
        "{:?}",
        screen.text()
    );
}

#[test]
fn a_line_in_between_clears_the_bar_and_redraws_it_below() {
    let screen = Screen::default();
    let t0 = Instant::now();
    let bar = TerminalBar::new(Box::new(screen.clone()), Units::Count, Box::new(|| 60), t0);
    bar.update_at(report(1.0, Some("a")), t0);
    let before = screen.text();
    bar.println("interrupted");
    let after = screen.text();
    let added = &after[before.len()..];
    assert!(
        added.starts_with("\r\x1b[Kinterrupted\n\r[##########"),
        "{added:?}"
    );
    bar.finish();
    assert!(screen.text().ends_with("\x1b[K\n"));
}

#[test]
fn log_events_go_through_the_bar() {
    use tracing_subscriber::fmt::MakeWriter;
    let screen = Screen::default();
    let t0 = Instant::now();
    let bar = Arc::new(TerminalBar::new(
        Box::new(screen.clone()),
        Units::Count,
        Box::new(|| 60),
        t0,
    ));
    bar.update_at(report(1.0, Some("a")), t0);
    let before = screen.text();
    let logs = LogThroughBar(bar.clone());
    let mut event = logs.make_writer();
    event.write_all(b"WARN cannot move ").unwrap();
    event.write_all(b"the mask\n").unwrap();
    assert_eq!(screen.text(), before, "printed once the event is complete");
    drop(event);
    let added = screen.text()[before.len()..].to_string();
    assert!(
        added.starts_with("\r\x1b[KWARN cannot move the mask\n\r[##########"),
        "{added:?}"
    );
    drop(logs.make_writer());
    assert_eq!(
        screen.text()[before.len()..],
        added,
        "an empty event prints nothing"
    );
}

#[test]
fn finish_without_reports_prints_nothing() {
    let screen = Screen::default();
    let bar = TerminalBar::new(
        Box::new(screen.clone()),
        Units::Percent,
        Box::new(|| 60),
        Instant::now(),
    );
    bar.finish();
    assert_eq!(screen.text(), "");
}
