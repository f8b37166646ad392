//! Logging of untrusted text.
//!
//! Anything that comes from a request (or that the runtime may have copied from one, such
//! as an operator's reason echoed in a reply) is logged through [`Escaped`], so that a
//! caller cannot forge log lines with newlines, rewrite the terminal with ANSI escapes or
//! reorder text with bidirectional overrides. Events that an unauthenticated caller can
//! trigger at will are logged through a [`LogLimiter`], so that a flood of them costs one
//! line per interval instead of one line per call.

use std::fmt::{self, Write as _};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Longest text shown before it is cut (in characters).
pub const MAX_LOGGED_CHARS: usize = 512;

/// Displays a string with every control character (C0, DEL, C1), line or paragraph
/// separator and bidirectional formatting character escaped as `\n`, `\r`, `\t` or
/// `\u{..}`, backslashes doubled so that the escapes are unambiguous and double quotes
/// escaped so that a quoted value cannot be closed early. Text longer
/// than [`MAX_LOGGED_CHARS`] characters is cut and ends with `…`.
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(pub &'a str);

/// True for the characters [`Escaped`] rewrites.
fn must_escape(c: char) -> bool {
    c.is_control()
        || c == '\\'
        || c == '"'
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}' | '\u{feff}'
        )
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.0.chars().enumerate() {
            if i == MAX_LOGGED_CHARS {
                return f.write_char('…');
            }
            if !must_escape(c) {
                f.write_char(c)?;
                continue;
            }
            match c {
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                '\\' => f.write_str("\\\\")?,
                '"' => f.write_str("\\\"")?,
                c => write!(f, "\\u{{{:x}}}", u32::from(c))?,
            }
        }
        Ok(())
    }
}

/// The escaped form of `s` (see [`Escaped`]).
pub fn escape(s: &str) -> String {
    Escaped(s).to_string()
}

/// Allows one log line per interval and counts the ones it holds back.
#[derive(Debug)]
pub struct LogLimiter {
    interval: Duration,
    state: Mutex<LimiterState>,
}

#[derive(Debug, Default)]
struct LimiterState {
    last: Option<Instant>,
    suppressed: u64,
}

impl LogLimiter {
    /// At most one line per `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            state: Mutex::new(LimiterState::default()),
        }
    }

    /// Records one occurrence. `Some(n)` when it should be logged now, `n` being the
    /// occurrences held back since the last line; `None` when it is held back.
    pub fn check(&self) -> Option<u64> {
        self.check_at(Instant::now())
    }

    fn check_at(&self, now: Instant) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match s.last {
            Some(last) if now.saturating_duration_since(last) < self.interval => {
                s.suppressed = s.suppressed.saturating_add(1);
                None
            }
            _ => {
                s.last = Some(now);
                Some(std::mem::take(&mut s.suppressed))
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape("plain text: ok"), "plain text: ok");
        assert_eq!(
            escape("a\nWARN forged\r\t\u{1b}[31mred\u{7f}\u{85}"),
            "a\\nWARN forged\\r\\t\\u{1b}[31mred\\u{7f}\\u{85}"
        );
        assert_eq!(escape("x\\ny"), "x\\\\ny");
        assert_eq!(escape("say \"hi\""), "say \\\"hi\\\"");
        assert_eq!(escape("abc\u{202e}cba\u{2028}"), "abc\\u{202e}cba\\u{2028}");
        assert_eq!(escape("héllo ✓"), "héllo ✓");
        let long = "x".repeat(MAX_LOGGED_CHARS + 10);
        let shown = escape(&long);
        assert_eq!(shown.chars().count(), MAX_LOGGED_CHARS + 1);
        assert!(shown.ends_with('…'));
        assert!(!escape("\u{0}\u{1f}\u{9b}").chars().any(char::is_control));
    }

    #[test]
    fn limiter_allows_one_line_per_interval() {
        let l = LogLimiter::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(l.check_at(t0), Some(0));
        for i in 1..100 {
            assert_eq!(l.check_at(t0 + Duration::from_millis(i)), None);
        }
        assert_eq!(l.check_at(t0 + Duration::from_secs(10)), Some(99));
        assert_eq!(l.check_at(t0 + Duration::from_secs(11)), None);
        assert_eq!(l.check_at(t0 + Duration::from_secs(25)), Some(1));
    }
}
