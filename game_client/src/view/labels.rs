//! Name labels that stay readable in a crowd: they fade out as the camera
//! zooms out, and at most `MAX_NAMED_PLAYERS` remote players — the nearest to
//! the view's centre — carry a name at all. Our own label always shows.

use bevy::prelude::*;

use super::camera::{CameraSystems, MainCamera, projection_scale};
use crate::logic::players::{PlayerLabel, RemotePlayer};

/// Names drawn at most, nearest first.
pub const MAX_NAMED_PLAYERS: usize = 60;
/// Labels are fully opaque up to this zoom-out (orthographic scale)…
pub const LABEL_FADE_START_SCALE: f32 = 1.5;
/// …and gone from this one on.
pub const LABEL_FADE_END_SCALE: f32 = 4.0;
/// The nearest-first choice is refreshed this often, seconds.
pub const LABEL_REFRESH_SECS: f64 = 0.2;

pub struct LabelsPlugin;

impl Plugin for LabelsPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(PostUpdate, choose_labels.after(CameraSystems));
    }
}

/// Label opacity at a zoom-out `scale`.
pub fn label_alpha(scale: f32) -> f32 {
    let t = (scale - LABEL_FADE_START_SCALE) / (LABEL_FADE_END_SCALE - LABEL_FADE_START_SCALE);
    1.0 - t.clamp(0.0, 1.0)
}

/// A label's parent, whether it shows, and its colour (for the fade).
type LabelParts = (
    &'static ChildOf,
    &'static mut Visibility,
    &'static mut TextColor,
);

/// Remote players (never the camera).
type RemoteFilter = (With<RemotePlayer>, Without<MainCamera>);

pub fn choose_labels(
    time: Res<Time<Real>>,
    camera: Query<(&Transform, &Projection), With<MainCamera>>,
    players: Query<(Entity, &Transform, &Visibility), RemoteFilter>,
    mut labels: Query<LabelParts, (With<PlayerLabel>, Without<RemotePlayer>)>,
    mut last_refresh: Local<f64>,
    mut last_scale: Local<f32>,
) {
    let Ok((camera, projection)) = camera.single() else {
        return;
    };
    let scale = projection_scale(projection);
    let now = time.elapsed_secs_f64();
    if now - *last_refresh < LABEL_REFRESH_SECS && scale == *last_scale {
        return;
    }
    *last_refresh = now;
    *last_scale = scale;
    let alpha = label_alpha(scale);
    let center = camera.translation.truncate();
    let mut by_distance: Vec<(f32, Entity)> = players
        .iter()
        // Hidden sprites (far from the view) keep a stale Transform.
        .filter(|(_, _, visibility)| **visibility != Visibility::Hidden)
        .map(|(entity, t, _)| (t.translation.truncate().distance_squared(center), entity))
        .collect();
    let named = MAX_NAMED_PLAYERS.min(by_distance.len());
    if named < by_distance.len() && named > 0 {
        by_distance.select_nth_unstable_by(named - 1, |a, b| a.0.total_cmp(&b.0));
    }
    let chosen: bevy::platform::collections::HashSet<Entity> =
        by_distance[..named].iter().map(|(_, e)| *e).collect();
    for (parent, mut visibility, mut color) in &mut labels {
        let remote = players.contains(parent.parent());
        // Our own label stays; remote ones obey the cap and the fade.
        let show = !remote || (alpha > 0.0 && chosen.contains(&parent.parent()));
        let wanted = if show {
            Visibility::Inherited
        } else {
            Visibility::Hidden
        };
        visibility.set_if_neq(wanted);
        if remote && show {
            let faded = TextColor(Color::WHITE.with_alpha(alpha));
            color.set_if_neq(faded);
        }
    }
}
