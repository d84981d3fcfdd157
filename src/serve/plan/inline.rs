//! Small values the planner makes per request, kept inline so that planning
//! a GET or a range GET allocates nothing (issue 13).
//!
//! Owns: [`InlineVec`], a list that holds its first `N` items in place and
//! moves to the heap only past them (a multipart request with many ranges, an
//! answer with more fields than usual), and [`InlineText`], a short field
//! value rendered with `write!` into bytes held in place. It is pure, and must
//! never change what a list or a value holds: only where it is kept.

use std::fmt;
use std::ops::{Deref, DerefMut};

/// A list of `T` that holds up to `N` items without allocating.
pub struct InlineVec<T, const N: usize> {
    /// Items in place (the first `len`), while `spill` is empty.
    items: [T; N],
    len: usize,
    /// Every item, once there were more than `N`.
    spill: Vec<T>,
}

impl<T: Default, const N: usize> InlineVec<T, N> {
    pub fn new() -> Self {
        InlineVec {
            items: std::array::from_fn(|_| T::default()),
            len: 0,
            spill: Vec::new(),
        }
    }

    /// Adds `item` at the end (moving every item to the heap past `N`).
    pub fn push(&mut self, item: T) {
        if self.spill.is_empty() && self.len < N {
            self.items[self.len] = item;
            self.len += 1;
            return;
        }
        if self.spill.is_empty() {
            self.spill.reserve(2 * N.max(1));
            for slot in &mut self.items[..self.len] {
                self.spill.push(std::mem::take(slot));
            }
            self.len = 0;
        }
        self.spill.push(item);
    }

    /// Whether the items moved to the heap.
    pub fn spilled(&self) -> bool {
        !self.spill.is_empty()
    }
}

impl<T: Default, const N: usize> Default for InlineVec<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, const N: usize> Deref for InlineVec<T, N> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        if self.spill.is_empty() {
            &self.items[..self.len]
        } else {
            &self.spill
        }
    }
}

impl<T, const N: usize> DerefMut for InlineVec<T, N> {
    fn deref_mut(&mut self) -> &mut [T] {
        if self.spill.is_empty() {
            &mut self.items[..self.len]
        } else {
            &mut self.spill
        }
    }
}

impl<T: Default, const N: usize> FromIterator<T> for InlineVec<T, N> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut list = Self::new();
        for item in iter {
            list.push(item);
        }
        list
    }
}

impl<T: Default, const N: usize> From<Vec<T>> for InlineVec<T, N> {
    fn from(items: Vec<T>) -> Self {
        items.into_iter().collect()
    }
}

impl<T: Default + Clone, const N: usize> Clone for InlineVec<T, N> {
    fn clone(&self) -> Self {
        self.iter().cloned().collect()
    }
}

impl<T: fmt::Debug, const N: usize> fmt::Debug for InlineVec<T, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<T: PartialEq, const N: usize> PartialEq for InlineVec<T, N> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<T: Eq, const N: usize> Eq for InlineVec<T, N> {}

/// The most bytes an [`InlineText`] holds: a Content-Range of three 20-digit
/// numbers (`bytes 18446744073709551615-…/…`, 68 bytes) fits.
pub const INLINE_TEXT: usize = 68;

/// A short text held in place.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct InlineText {
    len: u8,
    bytes: [u8; INLINE_TEXT],
}

impl InlineText {
    /// `args` rendered in place; `None` when it needs more than
    /// [`INLINE_TEXT`] bytes.
    pub fn format(args: fmt::Arguments<'_>) -> Option<InlineText> {
        let mut text = InlineText {
            len: 0,
            bytes: [0; INLINE_TEXT],
        };
        fmt::write(&mut text, args).ok()?;
        Some(text)
    }

    pub fn as_str(&self) -> &str {
        // Only whole `str`s are ever written in (see `write_str`).
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl fmt::Write for InlineText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let at = usize::from(self.len);
        let end = at + s.len();
        if end > INLINE_TEXT {
            return Err(fmt::Error);
        }
        self.bytes[at..end].copy_from_slice(s.as_bytes());
        self.len = end as u8;
        Ok(())
    }
}

impl fmt::Debug for InlineText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_stays_in_place_then_moves_whole() {
        let mut l: InlineVec<u32, 2> = InlineVec::new();
        l.push(1);
        l.push(2);
        assert!(!l.spilled());
        assert_eq!(&*l, &[1, 2]);
        l.push(3);
        assert!(l.spilled());
        assert_eq!(&*l, &[1, 2, 3]);
        assert_eq!(l.clone(), InlineVec::from(vec![1, 2, 3]));
        assert_eq!(format!("{l:?}"), "[1, 2, 3]");
        let empty: InlineVec<u32, 0> = [7].into_iter().collect();
        assert_eq!(&*empty, &[7]);
    }

    #[test]
    fn text_in_place_up_to_its_capacity() {
        let max = u64::MAX;
        let range = InlineText::format(format_args!("bytes {max}-{max}/{max}"));
        assert_eq!(
            range.map(|t| t.as_str().len()),
            Some(INLINE_TEXT),
            "the longest Content-Range fits"
        );
        let long = "x".repeat(INLINE_TEXT + 1);
        assert_eq!(InlineText::format(format_args!("{long}")), None);
    }
}
