//! Where the overlays sit on the window, as a pure function of its size, so
//! that "nothing overlaps" is a unit test rather than a screenshot review:
//! the HUD (top left), the link panel (top right), the math panel (bottom
//! left) and the minimap (bottom right) have fixed boxes; edge chips are
//! pushed inward past any panel on their edge ([`keep_clear`]) and merge
//! when they would overlap ([`chip_box`] is the largest a chip gets); grid
//! labels under a panel or a chip are hidden ([`covered`]).
//!
//! Screen coordinates: logical pixels, origin top left, y down.

use bevy::prelude::*;

/// Gap between a panel and the window edge, pixels.
pub const EDGE_GAP_PX: f32 = 10.0;
/// The HUD's box: seven lines of 15 px text (at most 40 characters) and
/// the 40 px graph.
pub const HUD_SIZE_PX: Vec2 = Vec2::new(380.0, 190.0);
/// The link panel's box (F2): five lines of 15 px text.
pub const LINK_PANEL_SIZE_PX: Vec2 = Vec2::new(370.0, 112.0);
/// The math panel's box: two lines of 15 px text (at most 52 characters).
pub const MATH_PANEL_SIZE_PX: Vec2 = Vec2::new(480.0, 50.0);
/// The minimap's box (its texture plus a 1 px border).
pub const MINIMAP_BOX_PX: f32 = super::minimap::MINIMAP_PX as f32 + 2.0;
/// Room kept between a chip and a panel it is pushed past, pixels.
pub const CHIP_GAP_PX: f32 = 4.0;
/// Width of one character of a chip's 12 px text, pixels (FiraMono's
/// advance is 0.6 em), plus its padding.
const CHIP_CHAR_PX: f32 = 7.2;
const CHIP_PADDING_PX: f32 = 8.0;
/// A chip's height: one line of 12 px text and its padding.
pub const CHIP_HEIGHT_PX: f32 = 18.0;
/// The longest chip label: "99 players 99999+ ~9s".
pub const CHIP_MAX_CHARS: usize = 21;
/// A grid label's box: "(-1000, -1000)" in 11 px text.
pub const GRID_LABEL_SIZE_PX: Vec2 = Vec2::new(95.0, 14.0);

/// The panels' boxes in a window of `window` logical pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Panels {
    pub hud: Rect,
    pub link: Rect,
    pub math: Rect,
    pub minimap: Rect,
}

impl Panels {
    pub fn for_window(window: Vec2) -> Panels {
        let corner = |x: f32, y: f32, size: Vec2| {
            Rect::from_corners(Vec2::new(x, y), Vec2::new(x, y) + size)
        };
        let minimap = Vec2::splat(MINIMAP_BOX_PX);
        Panels {
            hud: corner(EDGE_GAP_PX, EDGE_GAP_PX, HUD_SIZE_PX),
            link: corner(
                window.x - EDGE_GAP_PX - LINK_PANEL_SIZE_PX.x,
                EDGE_GAP_PX,
                LINK_PANEL_SIZE_PX,
            ),
            math: corner(
                EDGE_GAP_PX,
                window.y - EDGE_GAP_PX - MATH_PANEL_SIZE_PX.y,
                MATH_PANEL_SIZE_PX,
            ),
            minimap: corner(
                window.x - EDGE_GAP_PX - minimap.x,
                window.y - EDGE_GAP_PX - minimap.y,
                minimap,
            ),
        }
    }

    pub fn all(&self) -> [Rect; 4] {
        [self.hud, self.link, self.math, self.minimap]
    }
}

/// Whether two boxes share any area (touching edges do not count).
pub fn overlaps(a: Rect, b: Rect) -> bool {
    a.min.x < b.max.x && b.min.x < a.max.x && a.min.y < b.max.y && b.min.y < a.max.y
}

/// The largest box a chip anchored at `at` takes: it grows from `at`
/// toward the window's centre on both axes (as `update_indicators`
/// anchors it), whatever its label.
pub fn chip_box(at: Vec2, window: Vec2) -> Rect {
    let size = Vec2::new(
        CHIP_MAX_CHARS as f32 * CHIP_CHAR_PX + CHIP_PADDING_PX,
        CHIP_HEIGHT_PX,
    );
    let x = if at.x > window.x / 2.0 {
        at.x - size.x
    } else {
        at.x
    };
    let y = if at.y > window.y / 2.0 {
        at.y - size.y
    } else {
        at.y
    };
    Rect::from_corners(Vec2::new(x, y), Vec2::new(x, y) + size)
}

/// Moves a chip anchored at `at` (on the inset band along the window's
/// edges) the least it takes for its box to clear every one of `panels` by
/// [`CHIP_GAP_PX`] and stay on screen: tried are the boxes just past a panel
/// it overlaps (below, above, right, left of it), then past the next panel
/// from there, up to [`MAX_CHIP_MOVES`] moves; the nearest that fits wins.
/// A chip on the top edge over the HUD goes just below the HUD; one on the
/// bottom edge over the minimap, just above it: it still points its way.
pub fn keep_clear(at: Vec2, window: Vec2, panels: &[Rect]) -> Vec2 {
    let start = chip_box(at, window);
    let screen = Rect::from_corners(Vec2::ZERO, window);
    let fits = |chip: Rect| {
        screen.intersect(chip) == chip
            && !panels
                .iter()
                .any(|p| overlaps(chip.inflate(CHIP_GAP_PX), *p))
    };
    let mut frontier = vec![start];
    for _ in 0..=MAX_CHIP_MOVES {
        let best = frontier.iter().filter(|chip| fits(**chip)).min_by(|a, b| {
            let da = a.min.distance_squared(start.min);
            let db = b.min.distance_squared(start.min);
            da.total_cmp(&db)
        });
        if let Some(best) = best {
            return anchor_of(*best, window);
        }
        let mut next = Vec::new();
        for chip in &frontier {
            let size = chip.size();
            for panel in panels
                .iter()
                .filter(|p| overlaps(chip.inflate(CHIP_GAP_PX), **p))
            {
                let gap = CHIP_GAP_PX + 0.5;
                for min in [
                    Vec2::new(chip.min.x, panel.max.y + gap),
                    Vec2::new(chip.min.x, panel.min.y - gap - size.y),
                    Vec2::new(panel.max.x + gap, chip.min.y),
                    Vec2::new(panel.min.x - gap - size.x, chip.min.y),
                ] {
                    next.push(Rect::from_corners(min, min + size));
                }
            }
        }
        frontier = next;
    }
    // Nowhere fits (a window too small for its panels): leave it be.
    at
}

/// Most moves [`keep_clear`] tries in a row.
pub const MAX_CHIP_MOVES: usize = 3;

/// The anchor whose [`chip_box`] is `chip` (the box grows toward the
/// window's centre from its anchor).
fn anchor_of(chip: Rect, window: Vec2) -> Vec2 {
    let x = if chip.min.x > window.x / 2.0 {
        chip.max.x
    } else {
        chip.min.x
    };
    let y = if chip.min.y > window.y / 2.0 {
        chip.max.y
    } else {
        chip.min.y
    };
    Vec2::new(x, y)
}

/// Whether a grid label whose bottom-left corner is at `at` (screen
/// pixels) would be drawn under any of `boxes`.
pub fn covered(at: Vec2, boxes: &[Rect]) -> bool {
    let label = Rect::from_corners(
        at - Vec2::new(0.0, GRID_LABEL_SIZE_PX.y),
        at + Vec2::new(GRID_LABEL_SIZE_PX.x, 0.0),
    );
    boxes.iter().any(|b| overlaps(label, *b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZES: [Vec2; 2] = [Vec2::new(800.0, 600.0), Vec2::new(1920.0, 1080.0)];

    #[test]
    fn no_two_panels_overlap_and_all_fit_at_800x600_and_1920x1080() {
        for window in SIZES {
            let panels = Panels::for_window(window).all();
            let screen = Rect::from_corners(Vec2::ZERO, window);
            for (i, a) in panels.iter().enumerate() {
                assert_eq!(screen.intersect(*a), *a, "{a:?} inside {window}");
                for b in &panels[i + 1..] {
                    assert!(!overlaps(*a, *b), "{a:?} and {b:?} at {window}");
                }
            }
        }
    }

    /// Where `update_indicators` anchors a chip for a player in direction
    /// `angle`, far away (the inset band of `edge_point`).
    fn anchor(window: Vec2, angle: f32) -> Vec2 {
        let offset = Vec2::from_angle(angle) * 100_000.0;
        crate::view::indicators::edge_point(
            offset,
            1.0,
            window,
            crate::view::indicators::CHIP_INSET_PX,
        )
        .expect("far away is off screen")
    }

    #[test]
    fn chips_all_around_the_edges_keep_clear_of_every_panel() {
        for window in SIZES {
            let panels = Panels::for_window(window).all();
            let screen = Rect::from_corners(Vec2::ZERO, window);
            for step in 0..720 {
                let angle = step as f32 / 720.0 * std::f32::consts::TAU;
                let at = keep_clear(anchor(window, angle), window, &panels);
                let chip = chip_box(at, window);
                for panel in &panels {
                    assert!(
                        !overlaps(chip, *panel),
                        "chip {chip:?} on {panel:?} at {window}, angle {angle}"
                    );
                }
                assert_eq!(
                    screen.intersect(chip),
                    chip,
                    "chip {chip:?} off the {window} window"
                );
            }
        }
    }

    #[test]
    fn a_chip_pushed_past_a_panel_stays_on_its_side_of_the_window() {
        let window = SIZES[0];
        let panels = Panels::for_window(window);
        // Straight up-left: the top edge over the HUD, pushed below it.
        let at = keep_clear(Vec2::new(100.0, 24.0), window, &panels.all());
        assert_eq!(at.x, 100.0);
        assert!(at.y > panels.hud.max.y && at.y < panels.hud.max.y + 2.0 * CHIP_GAP_PX);
        // Bottom right, over the minimap: pushed above it.
        let at = keep_clear(Vec2::new(700.0, 576.0), window, &panels.all());
        assert_eq!(at.x, 700.0);
        assert!(at.y < panels.minimap.min.y && at.y > panels.minimap.min.y - 2.0 * CHIP_GAP_PX);
        // A free stretch of edge: left alone.
        let free = Vec2::new(24.0, 300.0);
        assert_eq!(keep_clear(free, window, &panels.all()), free);
    }

    #[test]
    fn grid_labels_under_a_panel_or_a_chip_are_covered() {
        let window = SIZES[0];
        let panels = Panels::for_window(window).all();
        assert!(covered(Vec2::new(50.0, 60.0), &panels), "under the HUD");
        assert!(
            covered(Vec2::new(700.0, 500.0), &panels),
            "under the minimap"
        );
        assert!(
            !covered(Vec2::new(400.0, 300.0), &panels),
            "the middle is free"
        );
        let chip = chip_box(Vec2::new(400.0, 24.0), window);
        assert!(covered(Vec2::new(410.0, 40.0), &[chip]));
    }
}
