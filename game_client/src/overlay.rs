//! F1 network overlay: for each remote player, the raw positions the server
//! sent (fading dots) next to the interpolated sprite, a line from the sprite
//! to its target, and the age of its last update.
//!
//! It makes the broadcast visible: the gap between dots is the update rate,
//! the line is the interpolation lag, the age shows stalls.

use bevy::prelude::*;

use crate::players::{
    NetTarget, PIXELS_PER_UNIT, PositionHistory, RemotePlayer, UpdateAgeLabel, units_to_px,
};

/// Dots fade out over this many seconds.
pub const DOT_FADE_SECS: f64 = 3.0;
/// Radius of a raw-position dot, pixels.
pub const DOT_RADIUS_PX: f32 = 2.5;

/// Whether the overlay is shown (toggled by F1).
#[derive(Resource, Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OverlayEnabled(pub bool);

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
                    (draw_raw_positions, show_update_ages)
                        .after(crate::players::interpolate_remote_players),
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

pub fn draw_raw_positions(
    enabled: Res<OverlayEnabled>,
    time: Res<Time>,
    mut gizmos: Gizmos,
    players: Query<(&PositionHistory, &NetTarget, &Transform), With<RemotePlayer>>,
) {
    if !enabled.0 {
        return;
    }
    let now = time.elapsed_secs_f64();
    for (history, target, transform) in &players {
        for &(position, at) in &history.0 {
            let fade = (1.0 - (now - at) / DOT_FADE_SECS).clamp(0.0, 1.0) as f32;
            if fade > 0.0 {
                gizmos.circle_2d(
                    units_to_px(position),
                    DOT_RADIUS_PX,
                    Color::srgba(1.0, 0.2, 0.8, fade),
                );
            }
        }
        if let Some(goal) = target.position {
            gizmos.line_2d(
                transform.translation.truncate(),
                units_to_px(goal),
                Color::srgba(1.0, 1.0, 1.0, 0.6),
            );
            // The server's cell for this player: one world unit.
            gizmos.rect_2d(
                units_to_px(goal),
                Vec2::splat(PIXELS_PER_UNIT),
                Color::srgb(1.0, 0.2, 0.8),
            );
        }
    }
}

pub fn show_update_ages(
    enabled: Res<OverlayEnabled>,
    time: Res<Time>,
    players: Query<&NetTarget, With<RemotePlayer>>,
    mut labels: Query<(&ChildOf, &mut Text2d, &mut Visibility), With<UpdateAgeLabel>>,
) {
    let now = time.elapsed_secs_f64();
    for (parent, mut text, mut visibility) in &mut labels {
        if !enabled.0 {
            visibility.set_if_neq(Visibility::Hidden);
            continue;
        }
        visibility.set_if_neq(Visibility::Inherited);
        if let Ok(target) = players.get(parent.parent()) {
            let age_ms = ((now - target.received_at_secs) * 1000.0).max(0.0);
            let shown = format!("{age_ms:.0} ms ago");
            if text.0 != shown {
                text.0 = shown;
            }
        }
    }
}
