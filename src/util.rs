//! Small formatting helpers shared by the screen and the CLI.

use std::time::Duration;

/// Bytes in decimal units, as disk vendors and `df -H` count (GB = 10^9): one decimal below
/// 100 of a unit, none from 100 (`1.5 kB`, `22.0 GB`, `250 GB`), so a size fits a narrow
/// column. The one byte formatter of the screen, the CLI and the remotes' messages.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < UNITS.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else if v >= 100.0 {
        format!("{v:.0} {}", UNITS[i])
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

/// A duration as the two largest units: `3h12m`, `41m`, `9s`, `2d4h`.
pub fn duration(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, mins, secs) = (s / 86_400, (s / 3600) % 24, (s / 60) % 60, s % 60);
    if days > 0 {
        format!("{days}d{hours}h")
    } else if hours > 0 {
        format!("{hours}h{mins:02}m")
    } else if mins > 0 {
        format!("{mins}m{secs:02}s")
    } else {
        format!("{secs}s")
    }
}

/// A text bar of `width` cells, filled to `pct` percent.
pub fn bar(pct: f64, width: usize) -> String {
    let pct = pct.clamp(0.0, 100.0);
    let filled = ((pct / 100.0) * width as f64).round() as usize;
    let filled = filled.min(width);
    format!("{}{}", "█".repeat(filled), "░".repeat(width - filled))
}

/// Cuts `s` to at most `max` terminal cells, marking the cut with `…`. Widths are display
/// widths (`unicode-width`): a CJK character or an emoji takes two cells, a combining mark
/// none, so a cut path never spills past its column.
pub fn ellipsize(s: &str, max: usize) -> String {
    use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};
    if s.width() <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = c.width().unwrap_or(0);
        if used + w > max - 1 {
            break;
        }
        used += w;
        out.push(c);
    }
    out.push('…');
    out
}

/// Cuts `s` to at most `max` terminal cells from its start, marking the cut with `…`
/// (`…/proj/.venv/bin/`): for paths, whose end matters most. Display widths, as
/// [`ellipsize`]: a wide character is never split and never spills past the column.
pub fn ellipsize_start(s: &str, max: usize) -> String {
    use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};
    if s.width() <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut used = 0;
    let mut start = s.len();
    for (i, c) in s.char_indices().rev() {
        let w = c.width().unwrap_or(0);
        if used + w > max - 1 {
            break;
        }
        used += w;
        start = i;
    }
    format!("…{}", &s[start..])
}

/// `s` without its first `cells` terminal cells, for a view scrolled sideways: a wide
/// character that straddles the edge is dropped whole. Also says how many cells were
/// dropped beyond `cells` (0 or 1), so a caller can pad to keep columns aligned.
pub fn skip_cells(s: &str, cells: usize) -> (&str, usize) {
    use unicode_width::UnicodeWidthChar;
    let mut used = 0;
    for (i, c) in s.char_indices() {
        if used >= cells {
            return (&s[i..], used - cells);
        }
        used += c.width().unwrap_or(0);
    }
    ("", used.saturating_sub(cells))
}

/// `s` cut into rows of at most `cols` terminal cells that join back into `s` exactly:
/// a row breaks after its last space when it has one (so `2.00` is never split into `2.`
/// and `00`), else at the column (a long path or number goes on on the next row). A wide
/// character is never split; an empty `s` is one empty row; a character wider than `cols`
/// has a row of its own.
pub fn wrap_cells(s: &str, cols: usize) -> Vec<&str> {
    use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};
    let cols = cols.max(1);
    let mut rows = Vec::new();
    let mut rest = s;
    loop {
        if rest.width() <= cols {
            rows.push(rest);
            return rows;
        }
        let mut used = 0;
        let mut end = 0;
        for (i, c) in rest.char_indices() {
            let w = c.width().unwrap_or(0);
            if used + w > cols {
                break;
            }
            used += w;
            end = i + c.len_utf8();
        }
        if end == 0 {
            end = rest.chars().next().map_or(rest.len(), char::len_utf8);
        }
        let cut = match rest[..end].rfind(' ') {
            Some(i) if !rest[..i].trim().is_empty() => i + 1,
            _ => end,
        };
        rows.push(&rest[..cut]);
        rest = &rest[cut..];
    }
}

/// The instant every tick of the process counts its grid from (`crate::ticker`: the frame
/// tick, the collectors' turns, the log's lead points): the first time any part of
/// the process asked for it.
pub fn grid_base() -> std::time::Instant {
    use std::sync::OnceLock;
    static BASE: OnceLock<std::time::Instant> = OnceLock::new();
    *BASE.get_or_init(std::time::Instant::now)
}

/// Points a little ahead of the grid's ticks of `period`: for a thread
/// that prepares what a tick will use (the log follower reads the log `lead` before each
/// frame's tick, so the frame shows what was written until then).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lead {
    pub period: Duration,
    pub lead: Duration,
}

impl Lead {
    /// `lead` ahead of the ticks of `period` (at most half a period ahead).
    pub fn new(period: Duration, lead: Duration) -> Self {
        let period = period.max(Duration::from_millis(1));
        Self { period, lead: lead.min(period / 2) }
    }

    /// The first point at least `gap` after `now`.
    pub fn next_after(&self, now: std::time::Instant, gap: Duration) -> std::time::Instant {
        self.next_after_from(grid_base(), now, gap)
    }

    fn next_after_from(&self, base: std::time::Instant, now: std::time::Instant, gap: Duration) -> std::time::Instant {
        // Points are base + n * period - lead for n >= 1.
        let earliest = (now + gap).saturating_duration_since(base) + self.lead;
        let n = (earliest.as_nanos().div_ceil(self.period.as_nanos())).max(1);
        let at = Duration::from_nanos(u64::try_from(n.saturating_mul(self.period.as_nanos())).unwrap_or(u64::MAX));
        base + at - self.lead
    }
}

/// What a path is, in words (`a directory`, `a FIFO`, …), for errors about files that
/// must be regular files.
pub fn file_kind(ft: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO (named pipe)"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_symlink() {
        "a symbolic link"
    } else {
        "a regular file"
    }
}

/// Opens a regular file for reading, refusing anything else (a FIFO, a device, a
/// directory) with an error that says what it is, and never blocking on a FIFO while
/// finding out.
pub fn open_regular(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOCTTY).bits() as i32)
        .open(path)?;
    let ft = file.metadata()?.file_type();
    if !ft.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} is {}, not a regular file", path.display(), file_kind(ft)),
        ));
    }
    Ok(file)
}

/// Text safe to print on a terminal: control characters (an escape sequence in a file
/// name, a bell, a carriage return) are written as `\x1b`, `\x07`, `\r`… instead of being
/// obeyed by the terminal.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() && (c as u32) < 0x100 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ellipsize_counts_display_cells() {
        use unicode_width::UnicodeWidthStr;
        assert_eq!(ellipsize("checkpoints", 20), "checkpoints");
        assert_eq!(ellipsize("checkpoints", 6), "check…");
        assert_eq!(ellipsize("abc", 0), "");
        // Two cells each: cut to fit eight cells with the mark.
        let cut = ellipsize("実験データ/重み.pt", 8);
        assert_eq!(cut, "実験デ…");
        assert!(cut.width() <= 8, "{cut:?} is {} cells", cut.width());
        let emoji = ellipsize("🚀🚀🚀🚀 run", 6);
        assert_eq!(emoji, "🚀🚀…");
        assert!(emoji.width() <= 6);
    }

    #[test]
    fn ellipsize_start_counts_display_cells() {
        use unicode_width::UnicodeWidthStr;
        assert_eq!(ellipsize_start("/home/me/proj/.venv/bin/python", 12), "…/bin/python");
        assert_eq!(ellipsize_start("short", 12), "short");
        assert_eq!(ellipsize_start("abc", 0), "");
        assert_eq!(ellipsize_start("abc", 1), "…");
        // Two cells each: `…` plus three wide characters is seven cells, a fourth would
        // make nine.
        let cut = ellipsize_start("データ/実験重み.pt", 8);
        assert_eq!(cut, "…重み.pt");
        assert!(cut.width() <= 8, "{cut:?} is {} cells", cut.width());
        let cut = ellipsize_start("実験データ重み", 8);
        assert_eq!(cut, "…タ重み");
        assert_eq!(cut.width(), 7, "{cut:?}: a wide char that does not fit whole is left out");
        let emoji = ellipsize_start("run 🚀🚀🚀🚀", 6);
        assert_eq!(emoji, "…🚀🚀");
        assert!(emoji.width() <= 6);
        // A combining mark takes no cell and stays with its letter.
        assert_eq!(ellipsize_start("xxxxe\u{301}", 3), "…xe\u{301}");
    }

    #[test]
    fn skip_cells_drops_whole_characters() {
        assert_eq!(skip_cells("abcdef", 2), ("cdef", 0));
        assert_eq!(skip_cells("abc", 5), ("", 0));
        assert_eq!(skip_cells("実験データ", 2), ("験データ", 0));
        // Half of a wide character: it goes, and the extra cell is reported.
        assert_eq!(skip_cells("実験データ", 3), ("データ", 1));
        assert_eq!(skip_cells("a🚀b", 2), ("b", 1));
    }

    #[test]
    fn wrap_cells_breaks_at_spaces_else_at_the_column() {
        assert_eq!(wrap_cells("", 4), [""]);
        assert_eq!(wrap_cells("abcdefghij", 4), ["abcd", "efgh", "ij"]);
        assert_eq!(wrap_cells("abcd", 4), ["abcd"]);
        // At the last space that fits: `2.00` stays whole.
        assert_eq!(wrap_cells("allocate 2.00 GiB", 12), ["allocate ", "2.00 GiB"]);
        assert_eq!(wrap_cells("CUDA out of memory. Tried", 12), ["CUDA out of ", "memory. ", "Tried"]);
        // Leading spaces are not a break (the indentation of a traceback frame).
        assert_eq!(wrap_cells("    abcdefgh", 6), ["    ab", "cdefgh"]);
        // A wide character that would straddle the edge starts the next row.
        assert_eq!(wrap_cells("abc実験", 4), ["abc", "実験"]);
        assert_eq!(wrap_cells("🚀🚀🚀", 5), ["🚀🚀", "🚀"]);
        assert_eq!(wrap_cells("実x", 1), ["実", "x"]);
        let v = "'learning_rate': 2.6999999999999995e-4, 'epoch': 0.5";
        for cols in 1..20 {
            let rows = wrap_cells(v, cols);
            assert_eq!(rows.concat(), v, "nothing lost at {cols}");
            assert!(rows.iter().all(|r| unicode_width::UnicodeWidthStr::width(*r) <= cols), "{rows:?}");
        }
    }

    #[test]
    fn control_characters_are_shown_not_obeyed() {
        assert_eq!(printable("a.pt"), "a.pt");
        assert_eq!(printable("v1\u{1b}[31mRED\u{7}\n.pt"), "v1\\x1b[31mRED\\x07\\n.pt");
        assert_eq!(printable("x\u{9b}y"), "x\\x9by");
    }

    #[test]
    fn lead_points_fall_just_before_the_grid() {
        let ms = Duration::from_millis;
        let base = std::time::Instant::now();
        let lead = Lead::new(ms(1000), ms(25));
        // From just after the base: the first point is 25 ms before the first tick.
        assert_eq!(lead.next_after_from(base, base, ms(0)), base + ms(975));
        // Exactly on a point, with no gap asked: that point; with a gap, the next one.
        let p = base + ms(1975);
        assert_eq!(lead.next_after_from(base, p, ms(0)), p);
        assert_eq!(lead.next_after_from(base, p, ms(1)), base + ms(2975));
        // Between two points: the next one, unless it is closer than the gap.
        let now = base + ms(2900);
        assert_eq!(lead.next_after_from(base, now, ms(50)), base + ms(2975));
        assert_eq!(lead.next_after_from(base, now, ms(100)), base + ms(3975));
        // Every point lies `lead` before a multiple of the period.
        for t in [0u64, 1, 974, 975, 976, 5_000, 123_456] {
            let at = lead.next_after_from(base, base + ms(t), ms(10));
            assert!(at >= base + ms(t + 10), "{t}");
            assert!(at < base + ms(t + 10 + 1000), "{t}");
            assert_eq!((at - base + ms(25)).as_nanos() % ms(1000).as_nanos(), 0, "{t}");
        }
        // The lead is at most half a period.
        assert_eq!(Lead::new(ms(40), ms(25)).lead, ms(20));
    }

    #[test]
    fn bytes_in_decimal_units() {
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1_500), "1.5 kB");
        assert_eq!(bytes(22_000_000_000), "22.0 GB");
        assert_eq!(bytes(250_000_000_000), "250 GB");
        assert_eq!(bytes(12_345_678), "12.3 MB");
    }

    #[test]
    fn durations_use_two_units() {
        assert_eq!(duration(Duration::from_secs(9)), "9s");
        assert_eq!(duration(Duration::from_secs(41 * 60 + 3)), "41m03s");
        assert_eq!(duration(Duration::from_secs(3 * 3600 + 12 * 60)), "3h12m");
        assert_eq!(duration(Duration::from_secs(2 * 86_400 + 4 * 3600)), "2d4h");
    }

    #[test]
    fn bars_and_ellipsis() {
        assert_eq!(bar(50.0, 4), "██░░");
        assert_eq!(bar(150.0, 2), "██");
        assert_eq!(ellipsize("checkpoints", 6), "check…");
        assert_eq!(ellipsize("ok", 6), "ok");
    }
}
