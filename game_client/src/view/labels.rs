//! Name labels that stay readable in a crowd: they fade out as the camera
//! zooms out, and at most `MAX_NAMED_PLAYERS` remote players — the nearest to
//! the view's centre — carry a name at all. Our own label always shows.
//!
//! A label exists only while it is shown: this view spawns it (an entity of
//! its own, related to its player by `LabelOf`, not a child) when its player
//! is chosen and despawns it when it no longer is, so the crowd has no label
//! entities for transform propagation to look at. Only the labels shown are
//! moved with their player, here.

use bevy::prelude::*;

use super::camera::{CameraSystems, MainCamera, projection_scale};
use crate::logic::players::{
    Kind, LABEL_FONT_PX, LabelOf, LocalPlayer, NameLabel, PlayerId, PlayerLabel, PlayerName,
    RemotePlayer, label_text, label_translation, local_label_text,
};

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
            (choose_labels, retitle_local_label, follow_players)
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

/// What a label says and where it starts.
type Named = (
    Entity,
    &'static PlayerId,
    &'static PlayerName,
    Option<&'static Kind>,
    &'static Transform,
    Has<LocalPlayer>,
);

/// Remote players (never the camera).
type RemoteFilter = (With<RemotePlayer>, Without<MainCamera>);

/// The label entity shown above a player with these parts.
fn label_bundle(text: String, sprite: &Transform, alpha: f32) -> impl Bundle {
    (
        PlayerLabel,
        Text2d::new(text),
        TextFont::from_font_size(LABEL_FONT_PX),
        TextColor(Color::WHITE.with_alpha(alpha)),
        Transform::from_translation(label_translation(sprite.translation)),
    )
}

/// Every `LABEL_REFRESH_SECS` (or when the zoom changes): picks the remote
/// players to name, spawns their missing labels and despawns the others';
/// our own player always gets one.
#[allow(clippy::too_many_arguments)]
pub fn choose_labels(
    mut commands: Commands,
    time: Res<Time<Real>>,
    camera: Query<(&Transform, &Projection), With<MainCamera>>,
    players: Query<(Entity, &Transform, &Visibility), RemoteFilter>,
    named: Query<Named, Without<MainCamera>>,
    local: Query<Entity, (With<LocalPlayer>, Without<NameLabel>)>,
    mut labels: Query<(Entity, &LabelOf, &mut TextColor), With<PlayerLabel>>,
    mut last_refresh: Local<f64>,
    mut last_scale: Local<f32>,
) {
    let Ok((camera, projection)) = camera.single() else {
        return;
    };
    let scale = projection_scale(projection);
    let now = time.elapsed_secs_f64();
    if now - *last_refresh < LABEL_REFRESH_SECS && scale == *last_scale && local.is_empty() {
        return;
    }
    *last_refresh = now;
    *last_scale = scale;
    let alpha = label_alpha(scale);
    let center = camera.translation.truncate();
    let mut by_distance: Vec<(f32, Entity)> = if alpha > 0.0 {
        players
            .iter()
            // Hidden sprites (far from the view) keep a stale Transform.
            .filter(|(_, _, visibility)| **visibility != Visibility::Hidden)
            .map(|(entity, t, _)| (t.translation.truncate().distance_squared(center), entity))
            .collect()
    } else {
        Vec::new()
    };
    let chosen_len = MAX_NAMED_PLAYERS.min(by_distance.len());
    if chosen_len < by_distance.len() && chosen_len > 0 {
        by_distance.select_nth_unstable_by(chosen_len - 1, |a, b| a.0.total_cmp(&b.0));
    }
    let mut unlabelled: bevy::platform::collections::HashSet<Entity> =
        by_distance[..chosen_len].iter().map(|(_, e)| *e).collect();
    let faded = TextColor(Color::WHITE.with_alpha(alpha));
    for (label, of, mut color) in &mut labels {
        if !players.contains(of.0) {
            // Our own label stays as it is.
            continue;
        }
        if unlabelled.remove(&of.0) {
            color.set_if_neq(faded);
        } else {
            commands.entity(label).despawn();
        }
    }
    for player in unlabelled.into_iter().chain(&local) {
        let Ok((entity, id, name, kind, transform, is_local)) = named.get(player) else {
            continue;
        };
        let (text, alpha) = match kind {
            Some(kind) if !is_local => (label_text(id.0, &name.0, kind.0), alpha),
            _ => (local_label_text(id.0, &name.0), 1.0),
        };
        commands
            .entity(entity)
            .with_related::<LabelOf>(label_bundle(text, transform, alpha));
    }
}

/// Our own player, when its id changed.
type RenamedLocal = (With<LocalPlayer>, Changed<PlayerId>);

/// Our label follows our id (a new one after each Welcome).
pub fn retitle_local_label(
    local: Query<(&PlayerId, &PlayerName, &NameLabel), RenamedLocal>,
    mut labels: Query<&mut Text2d, With<PlayerLabel>>,
) {
    for (id, name, label) in &local {
        if let Ok(mut text) = labels.get_mut(label.entity()) {
            let wanted = local_label_text(id.0, &name.0);
            if text.0 != wanted {
                text.0 = wanted;
            }
        }
    }
}

/// Places each label above its player.
pub fn follow_players(
    players: Query<&Transform, Without<PlayerLabel>>,
    mut labels: Query<(&LabelOf, &mut Transform), With<PlayerLabel>>,
) {
    for (of, mut transform) in &mut labels {
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
    use shared::native::PlayerKind;

    fn labelled(world: &mut World, player: Entity) -> Option<(String, Vec3)> {
        let label = world.get::<NameLabel>(player)?.entity();
        let text = world.get::<Text2d>(label)?.0.clone();
        Some((text, world.get::<Transform>(label)?.translation))
    }

    fn set_camera(world: &mut World, x: f32, scale: f32) {
        let mut query =
            world.query_filtered::<(&mut Transform, &mut Projection), With<MainCamera>>();
        let (mut transform, mut projection) = query.single_mut(world).unwrap();
        transform.translation.x = x;
        if let Projection::Orthographic(ortho) = &mut *projection {
            ortho.scale = scale;
        }
    }

    #[test]
    fn only_the_nearest_players_and_we_have_labels_and_they_follow() {
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
                let id = i as i32 + 2;
                world
                    .spawn((
                        RemotePlayer,
                        PlayerId(id),
                        PlayerName(format!("p{i}")),
                        Kind(PlayerKind::Native),
                        at,
                        Visibility::Inherited,
                    ))
                    .id()
            })
            .collect();
        // Far from the view: hidden, never named.
        let hidden = world
            .spawn((
                RemotePlayer,
                PlayerId(999),
                PlayerName("far".into()),
                Kind(PlayerKind::Legacy),
                Transform::default(),
                Visibility::Hidden,
            ))
            .id();
        let me = world
            .spawn((
                LocalPlayer,
                PlayerId(1),
                PlayerName("me".into()),
                Transform::from_xyz(5000.0, 0.0, 20.0),
            ))
            .id();
        let mut schedule = Schedule::default();
        schedule.add_systems((choose_labels, retitle_local_label, follow_players).chain());
        schedule.run(&mut world);

        for (i, player) in players.iter().enumerate() {
            let label = labelled(&mut world, *player);
            if i < MAX_NAMED_PLAYERS {
                let (text, placed) = label.unwrap_or_else(|| panic!("player {i} named"));
                assert_eq!(text, format!("p{i} #{}", i + 2));
                let sprite = world.get::<Transform>(*player).unwrap().translation;
                assert_eq!(placed, label_translation(sprite));
            } else {
                assert_eq!(label, None, "player {i} has no label entity");
            }
        }
        assert_eq!(labelled(&mut world, hidden), None);
        let (text, _) = labelled(&mut world, me).expect("our label");
        assert_eq!(text, "me #1 (you)");
        let count = |world: &mut World| {
            world
                .query_filtered::<(), With<PlayerLabel>>()
                .iter(world)
                .count()
        };
        assert_eq!(count(&mut world), MAX_NAMED_PLAYERS + 1);

        // A labelled player moves: its label follows.
        world
            .get_mut::<Transform>(players[0])
            .unwrap()
            .translation
            .y = 40.0;
        // The view moves to the other end (a zoom change refreshes at once):
        // the first ones lose their labels, the last ones get them.
        set_camera(&mut world, 3000.0, 1.2);
        schedule.run(&mut world);
        assert_eq!(count(&mut world), MAX_NAMED_PLAYERS + 1);
        assert_eq!(labelled(&mut world, players[0]), None);
        let last = *players.last().unwrap();
        let (_, placed) = labelled(&mut world, last).expect("nearest now");
        assert_eq!(
            placed,
            label_translation(world.get::<Transform>(last).unwrap().translation)
        );

        // A new id after a reconnect renames us.
        world.get_mut::<PlayerId>(me).unwrap().0 = 7;
        schedule.run(&mut world);
        assert_eq!(labelled(&mut world, me).unwrap().0, "me #7 (you)");

        // Zoomed far out: no remote names at all, ours stays.
        set_camera(&mut world, 3000.0, LABEL_FADE_END_SCALE);
        schedule.run(&mut world);
        assert_eq!(count(&mut world), 1);
        assert!(labelled(&mut world, me).is_some());

        // A player despawned takes its label along.
        set_camera(&mut world, 0.0, 1.0);
        schedule.run(&mut world);
        let label = world.get::<NameLabel>(players[0]).unwrap().entity();
        world.despawn(players[0]);
        assert!(world.get_entity(label).is_err());
    }

    #[test]
    fn a_label_fades_with_the_zoom() {
        assert_eq!(label_alpha(1.0), 1.0);
        assert_eq!(label_alpha(LABEL_FADE_END_SCALE), 0.0);
        let mid = label_alpha((LABEL_FADE_START_SCALE + LABEL_FADE_END_SCALE) / 2.0);
        assert!((mid - 0.5).abs() < 1e-6);
    }
}
