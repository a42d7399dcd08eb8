//! Roster frames that views have not been sent yet, kept once for all.
//!
//! While the overview ticks, a join or leave far from a view does not wake
//! it (see [`super::Fanout::set_overview_carries_roster`]). Instead of one
//! queue entry per view per broadcast (thousands of views, tens of
//! broadcasts a second), each roster frame is kept here once, by the number
//! of the broadcast that encoded it, and a view only remembers the first
//! one it has not been sent. Its frames join its queue, joined into one
//! (shared by the views that waited since the same broadcast: at an
//! overview, nearly all of them), just before its next delivery.

use std::collections::VecDeque;

use bytes::BytesMut;

use super::Encoded;

/// Most frames kept: past it, views are sent their roster frames at once
/// again, so a stalled overview cannot make this grow without bound.
pub const MAX_HELD_FRAMES: usize = 1024;

/// Roster frames by broadcast number, oldest first.
#[derive(Debug, Default)]
pub struct HeldRoster {
    frames: VecDeque<(u64, Encoded)>,
    /// The kept frames joined by [`HeldRoster::since`].
    joined: Option<Joined>,
}

/// Frames joined into one buffer, and where each starts.
#[derive(Debug)]
struct Joined {
    /// The broadcast of the last frame.
    through: u64,
    bytes: bytes::Bytes,
    messages: u64,
    /// Per frame: its broadcast, its offset and the messages before it.
    starts: Vec<(u64, usize, u64)>,
}

impl Joined {
    fn of(frames: &VecDeque<(u64, Encoded)>) -> Joined {
        let mut bytes = BytesMut::new();
        let mut messages = 0;
        let mut starts = Vec::with_capacity(frames.len());
        for (generation, frame) in frames {
            starts.push((*generation, bytes.len(), messages));
            bytes.extend_from_slice(&frame.bytes);
            messages += frame.messages;
        }
        Joined {
            through: frames.back().map_or(0, |(generation, _)| *generation),
            bytes: bytes.freeze(),
            messages,
            starts,
        }
    }

    /// The frames from the one of broadcast `first` on (which it holds).
    fn from(&self, first: u64) -> Encoded {
        let at = self
            .starts
            .partition_point(|(generation, ..)| *generation < first);
        let (_, offset, before) = self.starts[at];
        Encoded {
            bytes: self.bytes.slice(offset..),
            messages: self.messages - before,
        }
    }
}

impl HeldRoster {
    /// Keeps the roster frame of broadcast `generation`; returns false (and
    /// keeps nothing) when [`MAX_HELD_FRAMES`] are kept already.
    pub fn keep(&mut self, generation: u64, frame: &Encoded) -> bool {
        if self.frames.len() >= MAX_HELD_FRAMES {
            return false;
        }
        self.frames.push_back((generation, frame.clone()));
        true
    }

    /// The frames of broadcast `from` and later, oldest first, as one
    /// (`None` if there is none): a slice of every kept frame joined once,
    /// so views that waited since different broadcasts share its bytes.
    pub fn since(&mut self, from: u64) -> Option<Encoded> {
        let start = self
            .frames
            .partition_point(|(generation, _)| *generation < from);
        let (first, _) = *self.frames.get(start)?;
        let through = self.frames.back()?.0;
        if start + 1 == self.frames.len() {
            return Some(self.frames[start].1.clone());
        }
        let stale = self.joined.as_ref().is_none_or(|joined| {
            joined.through != through || joined.starts.first().is_none_or(|s| s.0 > first)
        });
        if stale {
            self.joined = Some(Joined::of(&self.frames));
        }
        self.joined.as_ref().map(|joined| joined.from(first))
    }

    /// Forgets the frames no view waits for: those before `oldest` (the
    /// first frame the furthest-behind view has not been sent), or all.
    pub fn forget_before(&mut self, oldest: Option<u64>) {
        match oldest {
            Some(oldest) => {
                let stale = self
                    .frames
                    .partition_point(|(generation, _)| *generation < oldest);
                self.frames.drain(..stale);
            }
            None => {
                self.frames.clear();
                self.joined = None;
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.frames.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(byte: u8) -> Encoded {
        Encoded {
            bytes: bytes::Bytes::from(vec![byte]),
            messages: 1,
        }
    }

    #[test]
    fn frames_since_a_broadcast_come_in_order_and_forgotten_ones_are_gone() {
        let mut held = HeldRoster::default();
        for generation in [3, 5, 8] {
            assert!(held.keep(generation, &frame(generation as u8)));
        }
        let since = |held: &mut HeldRoster, from| -> Vec<u8> {
            held.since(from).map_or(Vec::new(), |f| f.bytes.to_vec())
        };
        assert_eq!(since(&mut held, 4), [5, 8]);
        assert_eq!(since(&mut held, 0), [3, 5, 8]);
        assert_eq!(since(&mut held, 6), [8]);
        assert!(since(&mut held, 9).is_empty());
        // Views that waited since different broadcasts share one copy.
        let (a, b) = (held.since(0).unwrap(), held.since(4).unwrap());
        assert_eq!(a.bytes.as_ptr().wrapping_add(1), b.bytes.as_ptr());
        assert_eq!((a.messages, b.messages), (3, 2));
        // A newer frame: joined again.
        held.keep(9, &frame(9));
        assert_eq!(since(&mut held, 4), [5, 8, 9]);
        held.forget_before(Some(5));
        assert_eq!(since(&mut held, 0), [5, 8, 9]);
        held.forget_before(None);
        assert_eq!(held.len(), 0);
    }

    #[test]
    fn it_keeps_at_most_its_limit() {
        let mut held = HeldRoster::default();
        for generation in 0..MAX_HELD_FRAMES as u64 {
            assert!(held.keep(generation, &frame(0)));
        }
        assert!(!held.keep(u64::MAX, &frame(0)));
        assert_eq!(held.len(), MAX_HELD_FRAMES);
    }
}
