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
    LABEL_OFFSET_PX, LatestPosition, PIXELS_PER_UNIT, PositionHistory, RemotePlayer, Sample,
    units_to_px,
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

/// The overlay's "last update N ms ago" text under a remote sprite. It exists
/// only while the overlay is on and its player is drawn, and is an entity of
/// its own, not a child: players stay single-entity roots for transform
/// propagation (which runs without its static-tree bookkeeping, see
/// `PlayersPlugin`).
#[derive(Component, Debug, Default)]
pub struct UpdateAgeLabel;

/// The player an age label is under (despawned with it).
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq)]
#[relationship(relationship_target = UpdateAge)]
pub struct UpdateAgeOf(pub Entity);

/// A player's age label.
#[derive(Component, Debug)]
#[relationship_target(relationship = UpdateAgeOf, linked_spawn)]
pub struct UpdateAge(Entity);

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

/// Where an age label goes for a sprite at `sprite` (world pixels).
pub fn age_translation(sprite: Vec3) -> Vec3 {
    sprite + Vec3::new(0.0, -LABEL_OFFSET_PX, AGE_Z)
}

/// A player's age label while the overlay is on: spawned for each drawn
/// player, kept under it and up to date, despawned when it is hidden or the
/// overlay goes off.
pub fn show_update_ages(
    mut commands: Commands,
    enabled: Res<OverlayEnabled>,
    time: Res<Time>,
    players: Query<AgedPlayer, With<RemotePlayer>>,
    mut labels: Query<(Entity, &mut Text2d, &mut Transform), AgeLabelFilter>,
) {
    if !enabled.0 {
        if enabled.is_changed() {
            for (label, _, _) in &labels {
                commands.entity(label).despawn();
            }
        }
        return;
    }
    let now = time.elapsed_secs_f64();
    for (player, latest, sprite, visibility, age) in &players {
        let drawn = *visibility != Visibility::Hidden;
        let shown = latest
            .0
            .map(|(_, at)| format!("{:.0} ms ago", ((now - at) * 1000.0).max(0.0)));
        match (drawn, age, shown) {
            (true, None, Some(shown)) => {
                commands.entity(player).with_related::<UpdateAgeOf>((
                    UpdateAgeLabel,
                    Text2d::new(shown),
                    TextFont::from_font_size(AGE_FONT_PX),
                    TextColor(Color::srgb(1.0, 1.0, 0.5)),
                    Transform::from_translation(age_translation(sprite.translation)),
                ));
            }
            (true, Some(age), Some(shown)) => {
                if let Ok((_, mut text, mut transform)) = labels.get_mut(age.0) {
                    if text.0 != shown {
                        text.0 = shown;
                    }
                    let goal = age_translation(sprite.translation);
                    if transform.translation != goal {
                        transform.translation = goal;
                    }
                }
            }
            (false, Some(age), _) => commands.entity(age.0).despawn(),
            _ => {}
        }
    }
}

/// What an age label needs of its player.
type AgedPlayer = (
    Entity,
    &'static LatestPosition,
    &'static Transform,
    &'static Visibility,
    Option<&'static UpdateAge>,
);

/// Age labels (never a player).
type AgeLabelFilter = (With<UpdateAgeLabel>, Without<RemotePlayer>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_labels_exist_only_under_drawn_players_while_the_overlay_is_on() {
        let mut world = World::new();
        world.init_resource::<Time>();
        world.insert_resource(OverlayEnabled(true));
        let player = |world: &mut World, x: f32, visibility: Visibility| {
            world
                .spawn((
                    RemotePlayer,
                    LatestPosition(Some((Vec2::new(x, 0.0), 0.0))),
                    Transform::from_xyz(x * PIXELS_PER_UNIT, 0.0, 10.0),
                    visibility,
                ))
                .id()
        };
        let drawn = player(&mut world, 1.0, Visibility::Inherited);
        let far = player(&mut world, 900.0, Visibility::Hidden);
        let mut schedule = Schedule::default();
        schedule.add_systems(show_update_ages);
        schedule.run(&mut world);

        let label = world.get::<UpdateAge>(drawn).expect("drawn: labelled").0;
        assert!(world.get::<UpdateAge>(far).is_none(), "hidden: no label");
        assert!(world.get::<ChildOf>(label).is_none(), "not a child");
        assert_eq!(world.get::<Text2d>(label).unwrap().0, "0 ms ago");
        assert_eq!(
            world.get::<Transform>(label).unwrap().translation,
            age_translation(Vec3::new(PIXELS_PER_UNIT, 0.0, 10.0))
        );

        // The player moves: its label follows.
        world.get_mut::<Transform>(drawn).unwrap().translation.x = 40.0;
        schedule.run(&mut world);
        assert_eq!(world.get::<Transform>(label).unwrap().translation.x, 40.0);

        // Off: every age label goes.
        world.resource_mut::<OverlayEnabled>().0 = false;
        schedule.run(&mut world);
        assert!(world.get_entity(label).is_err());
        assert!(world.get::<UpdateAge>(drawn).is_none());
    }
}
