//! Name labels that stay readable in a crowd: they fade out as the camera
//! zooms out, and at most `MAX_NAMED_PLAYERS` remote players — the nearest to
//! the view's centre — carry a name at all. Our own label always shows.
//! Labels are entities of their own (not children of their sprite), so only
//! the labels shown are moved with their player, here.

use bevy::prelude::*;

use super::camera::{CameraSystems, MainCamera, projection_scale};
use crate::logic::players::{LabelOf, PlayerLabel, RemotePlayer, label_translation};

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
        app.add_systems(
            PostUpdate,
            (choose_labels, follow_players)
                .chain()
                .after(CameraSystems)
                .before(TransformSystems::Propagate),
        );
    }
}

/// Label opacity at a zoom-out `scale`.
pub fn label_alpha(scale: f32) -> f32 {
    let t = (scale - LABEL_FADE_START_SCALE) / (LABEL_FADE_END_SCALE - LABEL_FADE_START_SCALE);
    1.0 - t.clamp(0.0, 1.0)
}

/// A label's player, whether it shows, and its colour (for the fade).
type LabelParts = (
    &'static LabelOf,
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
    for (of, mut visibility, mut color) in &mut labels {
        let remote = players.contains(of.0);
        // Our own label stays; remote ones obey the cap and the fade.
        let show = !remote || (alpha > 0.0 && chosen.contains(&of.0));
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

/// Places each shown label above its player (hidden ones are left alone).
pub fn follow_players(
    players: Query<&Transform, Without<PlayerLabel>>,
    mut labels: Query<(&LabelOf, &Visibility, &mut Transform), With<PlayerLabel>>,
) {
    for (of, visibility, mut transform) in &mut labels {
        if *visibility == Visibility::Hidden {
            continue;
        }
        if let Ok(player) = players.get(of.0) {
            let goal = label_translation(player.translation);
            if transform.translation != goal {
                transform.translation = goal;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logic::players::{NameLabel, label_translation};

    #[test]
    fn the_nearest_players_are_named_and_their_labels_follow_them() {
        let mut world = World::new();
        world.init_resource::<Time<Real>>();
        world.spawn((
            MainCamera,
            Transform::default(),
            Projection::Orthographic(OrthographicProjection::default_2d()),
        ));
        let players: Vec<Entity> = (0..MAX_NAMED_PLAYERS + 20)
            .map(|i| {
                let at = Transform::from_xyz(i as f32 * 30.0, 0.0, 10.0);
                let player = world.spawn((RemotePlayer, at, Visibility::Inherited)).id();
                world.spawn((
                    PlayerLabel,
                    LabelOf(player),
                    Transform::default(),
                    Visibility::Hidden,
                    TextColor(Color::WHITE),
                ));
                player
            })
            .collect();
        let mut schedule = Schedule::default();
        schedule.add_systems((choose_labels, follow_players).chain());
        schedule.run(&mut world);

        for (i, player) in players.iter().enumerate() {
            let label = world.get::<NameLabel>(*player).unwrap().entity();
            let shown = world.get::<Visibility>(label) != Some(&Visibility::Hidden);
            assert_eq!(shown, i < MAX_NAMED_PLAYERS, "player {i}");
            if shown {
                let sprite = world.get::<Transform>(*player).unwrap().translation;
                let placed = world.get::<Transform>(label).unwrap().translation;
                assert_eq!(placed, label_translation(sprite));
            }
        }
    }
}
