//! Off-screen indicators: a chip at the screen edge for each player outside
//! the view, in the player's colour (legacy orange, native blue), with an
//! arrow pointing at them. A chip alone names its player and gives the
//! distance; players whose chips would overlap share one chip with a count.
//!
//! A player out of the server's view of us is placed by the overview
//! (protocol 3), up to a second or so late: its chip says how old the
//! position is (`~2s`), and it is dropped once stale.

use bevy::platform::collections::HashMap;
use bevy::prelude::*;
use bevy::ui::UiSystems;
use bevy::window::PrimaryWindow;
use shared::native::PlayerKind;

use super::camera::{CameraSystems, MainCamera, projection_scale};
use super::layout::{self, Panels};
use super::link_panel::LinkPanelOpen;
use crate::logic::overview::{overview_age, shown};
use crate::logic::players::{
    Kind, LatestPosition, LocalPlayer, OutOfView, PIXELS_PER_UNIT, PLAYER_SPRITE_PX, PlayerName,
    RemotePlayer, kind_tint, units_to_px,
};

/// At most this many chips are shown (nearest clusters first).
pub const MAX_CHIPS: usize = 24;
/// Edge positions closer than this (screen pixels) share a chip.
pub const CLUSTER_CELL_PX: f32 = 56.0;
/// Arrow tips sit this far inside the window edge, pixels.
pub const ARROW_INSET_PX: f32 = 6.0;
/// Arrow length, screen pixels.
pub const ARROW_LENGTH_PX: f32 = 14.0;
/// Chips sit this far inside the window edge, pixels (inside the arrows).
pub const CHIP_INSET_PX: f32 = 24.0;
const CHIP_FONT_PX: f32 = 12.0;

/// The boxes of the chips shown this frame (screen pixels), for what must
/// keep clear of them (grid labels).
#[derive(Resource, Debug, Default, Clone, PartialEq)]
pub struct ChipBoxes(pub Vec<Rect>);

/// One chip of the pool; `.0` is its slot.
#[derive(Component, Debug)]
pub struct IndicatorChip(pub usize);

/// The text inside a chip.
#[derive(Component, Debug)]
pub struct IndicatorText;

/// Off-screen players grouped by where their indicator would sit.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// Sum of edge positions (screen pixels), for the mean.
    sum: Vec2,
    pub count: usize,
    pub legacy: usize,
    /// Nearest member: distance (world units) and name.
    pub nearest: (f32, String),
    /// Direction (world) from the view centre to the nearest member.
    pub direction: Vec2,
    /// How old the nearest member's position is when it comes from the
    /// overview, seconds; `None`: live.
    pub age: Option<f64>,
}

impl Cluster {
    pub fn position(&self) -> Vec2 {
        self.sum / self.count as f32
    }

    /// Orange if legacy players are the majority, else blue.
    pub fn color(&self) -> Color {
        if self.legacy * 2 > self.count {
            kind_tint(PlayerKind::Legacy)
        } else {
            kind_tint(PlayerKind::Native)
        }
    }

    pub fn label(&self) -> String {
        let (distance, name) = &self.nearest;
        let age = match self.age {
            Some(age) => format!(" ~{age:.0}s"),
            None => String::new(),
        };
        if self.count == 1 {
            format!("{name} {distance:.0}{age}")
        } else {
            format!("{} players {distance:.0}+{age}", self.count)
        }
    }
}

pub struct IndicatorsPlugin;

impl Plugin for IndicatorsPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<ChipBoxes>()
            .add_systems(Startup, spawn_chips)
            .add_systems(
                PostUpdate,
                update_indicators
                    .after(CameraSystems)
                    .before(UiSystems::Prepare),
            );
    }
}

fn spawn_chips(mut commands: Commands) {
    for slot in 0..MAX_CHIPS {
        commands
            .spawn((
                IndicatorChip(slot),
                Node {
                    position_type: PositionType::Absolute,
                    padding: UiRect::axes(Val::Px(4.0), Val::Px(1.0)),
                    border_radius: BorderRadius::all(Val::Px(4.0)),
                    ..default()
                },
                BackgroundColor(Color::NONE),
                Visibility::Hidden,
            ))
            .with_child((
                IndicatorText,
                Text::new(""),
                TextFont::from_font_size(CHIP_FONT_PX),
                TextColor(Color::BLACK),
            ));
    }
}

/// Where the indicator of a player `offset` (world pixels from the view
/// centre) sits: a point `inset` pixels inside the window edge, in screen
/// pixels (origin top-left, y down), or `None` if the player is on screen.
pub fn edge_point(offset: Vec2, scale: f32, window_size: Vec2, inset: f32) -> Option<Vec2> {
    let half = window_size / 2.0;
    let on_screen = Vec2::new(offset.x, -offset.y) / scale;
    let margin = PLAYER_SPRITE_PX / 2.0;
    if on_screen.x.abs() <= half.x + margin && on_screen.y.abs() <= half.y + margin {
        return None;
    }
    let room = (half - Vec2::splat(inset)).max(Vec2::ONE);
    let t = (room.x / on_screen.x.abs()).min(room.y / on_screen.y.abs());
    Some(half + on_screen * t)
}

type ChipParts<'a> = (
    &'a IndicatorChip,
    &'a mut Node,
    &'a mut BackgroundColor,
    &'a mut Visibility,
    &'a Children,
);

#[allow(clippy::too_many_arguments)]
pub fn update_indicators(
    windows: Query<&Window, With<PrimaryWindow>>,
    camera: Query<(&Transform, &Projection), With<MainCamera>>,
    local: Query<&Transform, (With<LocalPlayer>, Without<MainCamera>)>,
    players: Query<(&LatestPosition, &PlayerName, &Kind, Has<OutOfView>), With<RemotePlayer>>,
    clock: Res<Time>,
    link_panel: Option<Res<LinkPanelOpen>>,
    mut boxes: ResMut<ChipBoxes>,
    mut chips: Query<ChipParts, (Without<IndicatorText>, Without<RemotePlayer>)>,
    mut texts: Query<&mut Text, With<IndicatorText>>,
    mut gizmos: Gizmos,
) {
    let (Ok(window), Ok((camera, projection))) = (windows.single(), camera.single()) else {
        return;
    };
    let scale = projection_scale(projection);
    let window_size = Vec2::new(window.width(), window.height());
    let center = camera.translation.truncate();
    // Distances are from us when we play, from the view centre when spectating.
    let reference = local
        .single()
        .map(|t| t.translation.truncate())
        .unwrap_or(center);

    let mut clusters: HashMap<(i32, i32), Cluster> = HashMap::default();
    // Off-screen players are plain data (no interpolated sprite): their
    // newest sample, which is where the sprite would be ~0.1 s from now.
    let now = clock.elapsed_secs_f64();
    for (sample, name, kind, out_of_view) in &players {
        if !shown(sample, out_of_view, now) {
            continue;
        }
        let Some(latest) = sample.position() else {
            continue;
        };
        let position = units_to_px(latest);
        let offset = position - center;
        let Some(at) = edge_point(offset, scale, window_size, CHIP_INSET_PX) else {
            continue;
        };
        let distance = position.distance(reference) / PIXELS_PER_UNIT;
        let key = (
            (at.x / CLUSTER_CELL_PX) as i32,
            (at.y / CLUSTER_CELL_PX) as i32,
        );
        let cluster = clusters.entry(key).or_insert_with(|| Cluster {
            sum: Vec2::ZERO,
            count: 0,
            legacy: 0,
            nearest: (f32::INFINITY, String::new()),
            direction: offset,
            age: None,
        });
        cluster.sum += at;
        cluster.count += 1;
        cluster.legacy += usize::from(kind.0 == PlayerKind::Legacy);
        if distance < cluster.nearest.0 {
            cluster.nearest = (distance, name.0.clone());
            cluster.direction = offset;
            cluster.age = overview_age(sample, out_of_view, now);
        }
    }
    let mut nearest_first: Vec<Cluster> = clusters.into_values().collect();
    nearest_first.sort_by(|a, b| a.nearest.0.total_cmp(&b.nearest.0));
    // Chips keep clear of the panels (the link panel only while open) and
    // of each other: one that would overlap a nearer chip joins it.
    let panels = Panels::for_window(window_size);
    let mut avoid = vec![panels.hud, panels.math, panels.minimap];
    if link_panel.is_some_and(|open| open.0) {
        avoid.push(panels.link);
    }
    let shown = place_chips(nearest_first, window_size, &avoid);
    let placed: Vec<Rect> = shown.iter().map(|(_, _, chip)| *chip).collect();
    if boxes.0 != placed {
        boxes.0 = placed;
    }

    for (cluster, _, _) in &shown {
        // The arrow: at the very edge, pointing out toward the player.
        let direction = cluster.direction.normalize_or_zero();
        if let Some(tip) = edge_point(cluster.direction, scale, window_size, ARROW_INSET_PX) {
            let tip_world = center
                + Vec2::new(tip.x - window_size.x / 2.0, window_size.y / 2.0 - tip.y) * scale;
            let back = tip_world - direction * ARROW_LENGTH_PX * scale;
            let side = direction.perp() * ARROW_LENGTH_PX * 0.5 * scale;
            gizmos.linestrip_2d(
                [tip_world, back + side, back - side, tip_world],
                cluster.color(),
            );
        }
    }

    for (chip, mut node, mut background, mut visibility, children) in &mut chips {
        let Some((cluster, at, _)) = shown.get(chip.0) else {
            visibility.set_if_neq(Visibility::Hidden);
            continue;
        };
        let at = *at;
        // Anchor on the near edges so the chip grows into the window.
        let (left, right) = if at.x > window_size.x / 2.0 {
            (Val::Auto, Val::Px(window_size.x - at.x))
        } else {
            (Val::Px(at.x), Val::Auto)
        };
        let (top, bottom) = if at.y > window_size.y / 2.0 {
            (Val::Auto, Val::Px(window_size.y - at.y))
        } else {
            (Val::Px(at.y), Val::Auto)
        };
        if node.left != left || node.right != right || node.top != top || node.bottom != bottom {
            node.left = left;
            node.right = right;
            node.top = top;
            node.bottom = bottom;
        }
        background.set_if_neq(BackgroundColor(cluster.color()));
        visibility.set_if_neq(Visibility::Inherited);
        let label = cluster.label();
        for child in children.iter() {
            if let Ok(mut text) = texts.get_mut(child)
                && text.0 != label
            {
                text.0.clone_from(&label);
            }
        }
    }
}

/// Where the chips of `nearest_first` (clusters, nearest first) go in a
/// window of `window` pixels: each moved clear of the `panels`
/// ([`layout::keep_clear`]); one whose box would overlap a nearer chip's
/// joins that chip instead (its count and colour), so no two chips
/// overlap; at most [`MAX_CHIPS`]. Returns each chip's cluster, anchor and
/// largest box.
pub fn place_chips(
    nearest_first: Vec<Cluster>,
    window: Vec2,
    panels: &[Rect],
) -> Vec<(Cluster, Vec2, Rect)> {
    let mut shown: Vec<(Cluster, Vec2, Rect)> = Vec::new();
    for cluster in nearest_first {
        let at = layout::keep_clear(cluster.position(), window, panels);
        let chip = layout::chip_box(at, window);
        let full = shown.len() >= MAX_CHIPS;
        match shown
            .iter_mut()
            .find(|(_, _, placed)| layout::overlaps(*placed, chip))
        {
            Some((joined, _, _)) => {
                joined.count += cluster.count;
                joined.legacy += cluster.legacy;
            }
            None if !full => shown.push((cluster, at, chip)),
            None => {}
        }
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Vec2 = Vec2::new(800.0, 600.0);

    #[test]
    fn no_two_chips_overlap_and_none_sits_on_a_panel_at_both_sizes() {
        for window in [WINDOW, Vec2::new(1920.0, 1080.0)] {
            let panels = Panels::for_window(window).all();
            // A crowd all around, one cluster every 10 px of edge.
            let clusters: Vec<Cluster> = (0..400)
                .filter_map(|i| {
                    let angle = i as f32 / 400.0 * std::f32::consts::TAU;
                    let at = edge_point(Vec2::from_angle(angle) * 1e5, 1.0, window, CHIP_INSET_PX)?;
                    Some(Cluster {
                        sum: at,
                        count: 1,
                        legacy: i % 2,
                        nearest: (i as f32, format!("p{i}")),
                        direction: Vec2::from_angle(angle),
                        age: None,
                    })
                })
                .collect();
            let shown = place_chips(clusters, window, &panels);
            assert!(!shown.is_empty() && shown.len() <= MAX_CHIPS);
            let total: usize = shown.iter().map(|(c, _, _)| c.count).sum();
            assert!(total >= shown.len());
            for (i, (_, _, a)) in shown.iter().enumerate() {
                for panel in &panels {
                    assert!(
                        !layout::overlaps(*a, *panel),
                        "{a:?} on {panel:?} at {window}"
                    );
                }
                for (_, _, b) in &shown[i + 1..] {
                    assert!(!layout::overlaps(*a, *b), "{a:?} and {b:?} at {window}");
                }
            }
        }
    }

    #[test]
    fn a_chip_placed_by_the_overview_says_how_old_it_is() {
        let mut cluster = Cluster {
            sum: Vec2::ZERO,
            count: 1,
            legacy: 1,
            nearest: (4243.0, "py-5".into()),
            direction: Vec2::X,
            age: None,
        };
        assert_eq!(cluster.label(), "py-5 4243");
        assert_eq!(
            cluster.color(),
            kind_tint(PlayerKind::Legacy),
            "legacy orange"
        );
        cluster.age = Some(1.6);
        assert_eq!(cluster.label(), "py-5 4243 ~2s");
        cluster.count = 3;
        assert_eq!(cluster.label(), "3 players 4243+ ~2s");
    }

    #[test]
    fn players_on_screen_get_no_indicator() {
        assert_eq!(edge_point(Vec2::new(100.0, 100.0), 1.0, WINDOW, 10.0), None);
        // Zoomed out, a far player is on screen too.
        assert_eq!(edge_point(Vec2::new(1000.0, 0.0), 4.0, WINDOW, 10.0), None);
    }

    #[test]
    fn off_screen_players_are_pinned_to_the_nearest_edge() {
        // Far to the right, level with the centre: right edge, middle height.
        let at = edge_point(Vec2::new(5000.0, 0.0), 1.0, WINDOW, 10.0).unwrap();
        assert_eq!(at, Vec2::new(790.0, 300.0));
        // Above (world y up): top edge, screen y small.
        let at = edge_point(Vec2::new(0.0, 900.0), 1.0, WINDOW, 10.0).unwrap();
        assert_eq!(at, Vec2::new(400.0, 10.0));
    }
}
