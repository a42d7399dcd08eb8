//! F1 network overlay: for each remote player, the raw positions the server
//! sent (fading dots) against the drawn sprite, a line from the sprite to the
//! newest raw position, and the age of its last update.
//!
//! It makes the netcode visible: the gap between dots is the update rate, the
//! line is the interpolation delay (longer under jitter, see the HUD), the
//! age shows stalls and loss.

use bevy::prelude::*;

use crate::logic::interpolation::InterpolationSystems;
use crate::logic::players::{
    LABEL_OFFSET_PX, LatestPosition, PIXELS_PER_UNIT, PositionHistory, RemotePlayer, Sample, units_to_px,
};

/// Dots fade out over this many seconds.
pub const DOT_FADE_SECS: f64 = 3.0;
/// Radius of a raw-position dot, pixels.
pub const DOT_RADIUS_PX: f32 = 2.5;
const AGE_FONT_PX: f32 = 10.0;
const AGE_Z: f32 = 1.0;
/// Colour of the raw (received) positions.
pub const RAW_COLOR: Color = Color::srgb(1.0, 0.2, 0.8);

/// Whether the overlay is shown (toggled by F1).
#[derive(Resource, Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OverlayEnabled(pub bool);

/// The overlay's "last update N ms ago" text under a remote sprite (a child
/// the overlay adds to each remote player).
#[derive(Component, Debug, Default)]
pub struct UpdateAgeLabel;

#[derive(Debug, Default)]
pub struct OverlayPlugin {
    /// Show the overlay from the start (`--overlay`).
    pub start_enabled: bool,
}

impl Plugin for OverlayPlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(OverlayEnabled(self.start_enabled))
            .add_systems(
                Update,
                (
                    toggle_overlay,
                    add_update_age_labels,
                    (draw_raw_positions, show_update_ages).after(InterpolationSystems),
                )
                    .chain(),
            );
    }
}

pub fn toggle_overlay(keys: Res<ButtonInput<KeyCode>>, mut enabled: ResMut<OverlayEnabled>) {
    if keys.just_pressed(KeyCode::F1) {
        enabled.0 = !enabled.0;
        info!("network overlay {}", if enabled.0 { "on" } else { "off" });
    }
}

/// Gives each new remote player its age label.
pub fn add_update_age_labels(
    mut commands: Commands,
    added: Query<Entity, Added<RemotePlayer>>,
    enabled: Res<OverlayEnabled>,
) {
    let visibility = if enabled.0 {
        Visibility::Inherited
    } else {
        Visibility::Hidden
    };
    for player in &added {
        commands.spawn((
            UpdateAgeLabel,
            Text2d::default(),
            TextFont::from_font_size(AGE_FONT_PX),
            TextColor(Color::srgb(1.0, 1.0, 0.5)),
            Transform::from_xyz(0.0, -LABEL_OFFSET_PX, AGE_Z),
            visibility,
            ChildOf(player),
        ));
    }
}

pub fn draw_raw_positions(
    enabled: Res<OverlayEnabled>,
    time: Res<Time>,
    mut gizmos: Gizmos,
    players: Query<
        (
            &LatestPosition,
            &PositionHistory,
            &Transform,
            &ViewVisibility,
        ),
        With<RemotePlayer>,
    >,
) {
    if !enabled.0 {
        return;
    }
    let now = time.elapsed_secs_f64();
    for (latest, history, transform, view) in &players {
        if !view.get() {
            continue;
        }
        let mut dot = |(position, at): Sample| {
            let fade = (1.0 - (now - at) / DOT_FADE_SECS).clamp(0.0, 1.0) as f32;
            if fade > 0.0 {
                gizmos.circle_2d(
                    units_to_px(position),
                    DOT_RADIUS_PX,
                    RAW_COLOR.with_alpha(fade),
                );
            }
        };
        // A history that missed samples (its player was away) has a gap:
        // only the newest position is shown until it restarts.
        if latest.recorded_in(history) {
            history.iter().for_each(&mut dot);
        } else if let Some(newest) = latest.0 {
            dot(newest);
        }
        if let Some(newest) = latest.position() {
            gizmos.line_2d(
                transform.translation.truncate(),
                units_to_px(newest),
                Color::srgba(1.0, 1.0, 1.0, 0.6),
            );
            // The server's cell for this player: one world unit.
            gizmos.rect_2d(units_to_px(newest), Vec2::splat(PIXELS_PER_UNIT), RAW_COLOR);
        }
    }
}

pub fn show_update_ages(
    enabled: Res<OverlayEnabled>,
    time: Res<Time>,
    players: Query<&LatestPosition, With<RemotePlayer>>,
    mut labels: Query<(&ChildOf, &mut Text2d, &mut Visibility), With<UpdateAgeLabel>>,
) {
    if !enabled.0 && !enabled.is_changed() {
        return;
    }
    let now = time.elapsed_secs_f64();
    for (parent, mut text, mut visibility) in &mut labels {
        if !enabled.0 {
            visibility.set_if_neq(Visibility::Hidden);
            continue;
        }
        visibility.set_if_neq(Visibility::Inherited);
        if let Ok(latest) = players.get(parent.parent())
            && let Some((_, at)) = latest.0
        {
            let age_ms = ((now - at) * 1000.0).max(0.0);
            let shown = format!("{age_ms:.0} ms ago");
            if text.0 != shown {
                text.0 = shown;
            }
        }
    }
}
