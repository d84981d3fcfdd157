//! The fill window: when, in the appliance's local time of day, a fill may run.
//!
//! Owns: the window's forms (`always`, or a daily `HH:MM-HH:MM` that may wrap
//! midnight), the site start time a manifest can impose (every appliance of a
//! site starts together; the window keeps its length), and the question "is
//! it open at this minute". It is pure: the local minute of day comes in as a
//! value. It must never read a clock or a time zone.

use eddy_proto::manifest::parse_hhmm;

/// Minutes in a day.
const DAY: u32 = 24 * 60;

/// When fills may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// Any time (tests, the demo, an appliance filled by hand).
    Always,
    /// Daily from `start` for `len` minutes (local time; `len` < a day).
    Daily { start: u32, len: u32 },
}

/// Why a window's text is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a fill window is `always` or `HH:MM-HH:MM` with two different times, not {0:?}")]
pub struct WindowError(pub String);

impl Window {
    /// Parses `always` or `HH:MM-HH:MM` (for example `02:00-14:00`; `22:00-06:00` wraps midnight).
    pub fn parse(text: &str) -> Result<Window, WindowError> {
        let bad = || WindowError(text.to_owned());
        if text.trim() == "always" {
            return Ok(Window::Always);
        }
        let (a, b) = text.trim().split_once('-').ok_or_else(bad)?;
        let start = parse_hhmm(a.trim()).ok_or_else(bad)?;
        let end = parse_hhmm(b.trim()).ok_or_else(bad)?;
        if start == end {
            return Err(bad());
        }
        Ok(Window::Daily {
            start,
            len: (end + DAY - start) % DAY,
        })
    }

    /// The window with its start moved to the site's start (a manifest's
    /// `fill_start`, minutes after midnight), keeping its length.
    pub fn starting_at(self, site_start: Option<u32>) -> Window {
        match (self, site_start) {
            (Window::Daily { len, .. }, Some(start)) if start < DAY => Window::Daily { start, len },
            (w, _) => w,
        }
    }

    /// Whether a fill may run at `minute` after local midnight.
    pub fn is_open(self, minute: u32) -> bool {
        match self {
            Window::Always => true,
            Window::Daily { start, len } => (minute % DAY + DAY - start) % DAY < len,
        }
    }

    /// Minutes from `minute` until the window next opens (0 when open).
    pub fn minutes_until_open(self, minute: u32) -> u32 {
        match self {
            Window::Always => 0,
            w @ Window::Daily { start, .. } => {
                if w.is_open(minute) {
                    0
                } else {
                    (start + DAY - minute % DAY) % DAY
                }
            }
        }
    }
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Window::Always => f.write_str("always"),
            Window::Daily { start, len } => {
                let end = (start + len) % DAY;
                write!(
                    f,
                    "{:02}:{:02}-{:02}:{:02}",
                    start / 60,
                    start % 60,
                    end / 60,
                    end % 60
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_default_window_is_open_from_two_to_fourteen() -> Result<(), WindowError> {
        let w = Window::parse("02:00-14:00")?;
        assert!(!w.is_open(119));
        assert!(w.is_open(120));
        assert!(w.is_open(839));
        assert!(!w.is_open(840));
        assert_eq!(w.minutes_until_open(0), 120);
        assert_eq!(w.minutes_until_open(900), DAY - 900 + 120);
        assert_eq!(w.to_string(), "02:00-14:00");
        Ok(())
    }

    #[test]
    fn a_window_can_wrap_midnight_and_follow_the_site() -> Result<(), WindowError> {
        let w = Window::parse("22:00-06:00")?;
        assert!(w.is_open(23 * 60) && w.is_open(0) && w.is_open(359) && !w.is_open(360));
        let site = Window::parse("02:00-14:00")?.starting_at(Some(4 * 60));
        assert_eq!(
            site,
            Window::Daily {
                start: 240,
                len: 720
            }
        );
        assert_eq!(Window::Always.starting_at(Some(10)), Window::Always);
        Ok(())
    }

    #[test]
    fn bad_windows_are_refused() {
        for t in [
            "",
            "02:00",
            "02:00-02:00",
            "24:00-01:00",
            "2:00-14:00",
            "noon-night",
        ] {
            assert!(Window::parse(t).is_err(), "{t}");
        }
        assert_eq!(Window::parse("always"), Ok(Window::Always));
    }

    proptest! {
        #[test]
        fn open_exactly_len_minutes_a_day(start in 0u32..DAY, len in 1u32..DAY) {
            let w = Window::Daily { start, len };
            let open = (0..DAY).filter(|&m| w.is_open(m)).count() as u32;
            prop_assert_eq!(open, len);
            for m in (0..DAY).step_by(37) {
                let wait = w.minutes_until_open(m);
                prop_assert!(w.is_open(m + wait));
                prop_assert_eq!(wait == 0, w.is_open(m));
            }
        }
    }
}
