//! The ground: a grid in world units with coordinate labels, drawn only where
//! the camera looks, so motion is readable anywhere on the i16 map.

use bevy::platform::collections::HashMap;
use bevy::prelude::*;
use bevy::window::PrimaryWindow;

use crate::logic::players::PIXELS_PER_UNIT;
use crate::view::camera::MainCamera;

/// Minor grid lines every this many world units.
pub const MINOR_STEP_UNITS: i32 = 10;
/// Major lines (and coordinate labels) every this many world units at zoom 1.
pub const MAJOR_STEP_UNITS: i32 = 50;
/// If more labels than this would be visible, the label step doubles.
pub const MAX_LABELS: usize = 120;
/// Lines are skipped when they would be closer than this on screen, pixels.
const MIN_LINE_GAP_PX: f32 = 12.0;
const LABEL_FONT_PX: f32 = 11.0;
const GROUND_Z: f32 = -10.0;
const BACKGROUND: Color = Color::srgb(0.08, 0.10, 0.13);

/// A coordinate label at a major grid intersection.
#[derive(Component, Debug)]
pub struct GridLabel;

/// Labels currently spawned, by grid coordinate (world units).
#[derive(Resource, Debug, Default)]
pub struct GridLabels(pub HashMap<(i32, i32), Entity>);

pub struct WorldMapPlugin;

impl Plugin for WorldMapPlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(ClearColor(BACKGROUND))
            .init_resource::<GridLabels>()
            .add_systems(
                PostUpdate,
                (draw_ground_grid, place_grid_labels).after(TransformSystems::Propagate),
            )
            .add_systems(
                PostUpdate,
                hide_covered_grid_labels
                    .after(place_grid_labels)
                    .after(super::indicators::update_indicators),
            );
    }
}

/// The world-unit rectangle the camera shows, and pixels per unit on screen.
fn visible_units(
    windows: &Query<&Window, With<PrimaryWindow>>,
    camera: &Query<(&GlobalTransform, &Projection), With<MainCamera>>,
) -> Option<(Rect, f32)> {
    let window = windows.single().ok()?;
    let (transform, projection) = camera.single().ok()?;
    let scale = match projection {
        Projection::Orthographic(ortho) => ortho.scale,
        _ => 1.0,
    };
    let center = transform.translation().truncate() / PIXELS_PER_UNIT;
    let half = Vec2::new(window.width(), window.height()) * scale / PIXELS_PER_UNIT / 2.0;
    Some((
        Rect::from_center_half_size(center, half),
        PIXELS_PER_UNIT / scale,
    ))
}

/// A step (units) at least `min_gap_px` apart on screen, by doubling `base`.
fn readable_step(base: i32, px_per_unit_on_screen: f32, min_gap_px: f32) -> i32 {
    let mut step = base;
    while (step as f32) * px_per_unit_on_screen < min_gap_px && step < 1 << 14 {
        step *= 2;
    }
    step
}

fn grid_range(min: f32, max: f32, step: i32) -> impl Iterator<Item = i32> {
    let first = (min / step as f32).floor() as i32;
    let last = (max / step as f32).ceil() as i32;
    (first..=last).map(move |i| i * step)
}

pub fn draw_ground_grid(
    windows: Query<&Window, With<PrimaryWindow>>,
    camera: Query<(&GlobalTransform, &Projection), With<MainCamera>>,
    mut gizmos: Gizmos,
) {
    let Some((view, px_per_unit)) = visible_units(&windows, &camera) else {
        return;
    };
    let minor = readable_step(MINOR_STEP_UNITS, px_per_unit, MIN_LINE_GAP_PX);
    let major = readable_step(MAJOR_STEP_UNITS, px_per_unit, MIN_LINE_GAP_PX * 5.0);
    let to_px = |units: f32| units * PIXELS_PER_UNIT;
    for x in grid_range(view.min.x, view.max.x, minor) {
        let color = match x {
            0 => Color::srgba(0.9, 0.4, 0.4, 0.8),
            x if x % major == 0 => Color::srgba(1.0, 1.0, 1.0, 0.25),
            _ => Color::srgba(1.0, 1.0, 1.0, 0.07),
        };
        gizmos.line_2d(
            Vec2::new(to_px(x as f32), to_px(view.min.y)),
            Vec2::new(to_px(x as f32), to_px(view.max.y)),
            color,
        );
    }
    for y in grid_range(view.min.y, view.max.y, minor) {
        let color = match y {
            0 => Color::srgba(0.4, 0.9, 0.4, 0.8),
            y if y % major == 0 => Color::srgba(1.0, 1.0, 1.0, 0.25),
            _ => Color::srgba(1.0, 1.0, 1.0, 0.07),
        };
        gizmos.line_2d(
            Vec2::new(to_px(view.min.x), to_px(y as f32)),
            Vec2::new(to_px(view.max.x), to_px(y as f32)),
            color,
        );
    }
}

/// Keeps one "(x, y)" label per visible major intersection.
pub fn place_grid_labels(
    mut commands: Commands,
    windows: Query<&Window, With<PrimaryWindow>>,
    camera: Query<(&GlobalTransform, &Projection), With<MainCamera>>,
    mut labels: ResMut<GridLabels>,
) {
    let Some((view, px_per_unit)) = visible_units(&windows, &camera) else {
        return;
    };
    let mut step = readable_step(MAJOR_STEP_UNITS, px_per_unit, MIN_LINE_GAP_PX * 5.0);
    loop {
        let columns = (view.width() / step as f32) as usize + 2;
        let rows = (view.height() / step as f32) as usize + 2;
        if columns * rows <= MAX_LABELS {
            break;
        }
        step *= 2;
    }
    let mut wanted = Vec::new();
    for x in grid_range(view.min.x, view.max.x, step) {
        for y in grid_range(view.min.y, view.max.y, step) {
            wanted.push((x, y));
        }
    }
    labels.0.retain(|key, entity| {
        let keep = wanted.contains(key);
        if !keep {
            commands.entity(*entity).despawn();
        }
        keep
    });
    for (x, y) in wanted {
        labels.0.entry((x, y)).or_insert_with(|| {
            commands
                .spawn((
                    GridLabel,
                    Text2d::new(format!("({x}, {y})")),
                    TextFont::from_font_size(LABEL_FONT_PX),
                    TextColor(Color::srgba(1.0, 1.0, 1.0, 0.35)),
                    bevy::sprite::Anchor::BOTTOM_LEFT,
                    Transform::from_xyz(
                        x as f32 * PIXELS_PER_UNIT + 2.0,
                        y as f32 * PIXELS_PER_UNIT + 2.0,
                        GROUND_Z,
                    ),
                ))
                .id()
        });
    }
}

/// Hides the grid labels a panel or an edge chip would cover (their text
/// under a panel's translucent box was unreadable clutter).
pub fn hide_covered_grid_labels(
    windows: Query<&Window, With<PrimaryWindow>>,
    camera: Query<(&GlobalTransform, &Projection), With<MainCamera>>,
    chips: Option<Res<super::indicators::ChipBoxes>>,
    link_panel: Option<Res<super::link_panel::LinkPanelOpen>>,
    mut labels: Query<(&Transform, &mut Visibility), With<GridLabel>>,
) {
    let (Ok(window), Ok((camera, projection))) = (windows.single(), camera.single()) else {
        return;
    };
    let scale = match projection {
        Projection::Orthographic(ortho) => ortho.scale,
        _ => 1.0,
    };
    let size = Vec2::new(window.width(), window.height());
    let panels = super::layout::Panels::for_window(size);
    let mut boxes = vec![panels.hud, panels.math, panels.minimap];
    if link_panel.is_some_and(|open| open.0) {
        boxes.push(panels.link);
    }
    if let Some(chips) = chips {
        boxes.extend_from_slice(&chips.0);
    }
    let center = camera.translation().truncate();
    for (transform, mut visibility) in &mut labels {
        let offset = (transform.translation.truncate() - center) / scale;
        let at = Vec2::new(size.x / 2.0 + offset.x, size.y / 2.0 - offset.y);
        let wanted = if super::layout::covered(at, &boxes) {
            Visibility::Hidden
        } else {
            Visibility::Inherited
        };
        visibility.set_if_neq(wanted);
    }
}
