//! The camera: follows the local player, or in spectator mode pans with the
//! keys / mouse drag, zooms with the wheel, and `F` fits everyone in view.

use bevy::input::mouse::{AccumulatedMouseMotion, AccumulatedMouseScroll, MouseScrollUnit};
use bevy::prelude::*;
use bevy::window::PrimaryWindow;

use crate::players::{LocalPlayer, RemotePlayer};
use crate::{ClientSettings, ControlMode};

/// How quickly the camera catches up with the player (per second, exponential).
pub const FOLLOW_RATE_PER_SEC: f32 = 6.0;
/// Spectator pan speed at zoom 1, pixels per second.
pub const PAN_SPEED_PX_PER_SEC: f32 = 600.0;
/// Zoom factor per wheel line.
pub const ZOOM_STEP: f32 = 1.15;
/// Zoom limits (orthographic scale: >1 shows more of the world).
pub const ZOOM_MIN: f32 = 0.25;
pub const ZOOM_MAX: f32 = 64.0;
/// Margin around everyone when fitting the view, pixels.
const FIT_MARGIN_PX: f32 = 80.0;

#[derive(Component, Debug, Default)]
pub struct MainCamera;

/// Where a remote sprite is and whether it is shown.
type RemoteSpriteView = (&'static Transform, &'static Visibility);

pub struct CameraPlugin;

impl Plugin for CameraPlugin {
    fn build(&self, app: &mut App) {
        let spectating = |settings: Res<ClientSettings>| settings.control == ControlMode::Spectate;
        app.add_systems(Startup, spawn_camera).add_systems(
            PostUpdate,
            (
                follow_local_player.run_if(not(spectating)),
                (
                    pan_spectator_camera,
                    zoom_spectator_camera,
                    fit_everyone_in_view,
                )
                    .run_if(spectating),
            )
                .before(TransformSystems::Propagate),
        );
    }
}

fn spawn_camera(mut commands: Commands) {
    commands.spawn((MainCamera, Camera2d));
}

pub fn follow_local_player(
    time: Res<Time>,
    player: Query<&Transform, (With<LocalPlayer>, Without<MainCamera>)>,
    mut camera: Query<&mut Transform, With<MainCamera>>,
) {
    let (Ok(player), Ok(mut camera)) = (player.single(), camera.single_mut()) else {
        return;
    };
    let alpha = 1.0 - (-FOLLOW_RATE_PER_SEC * time.delta_secs()).exp();
    let next = camera
        .translation
        .truncate()
        .lerp(player.translation.truncate(), alpha);
    camera.translation = next.extend(camera.translation.z);
}

fn current_scale(projection: &Projection) -> f32 {
    match projection {
        Projection::Orthographic(ortho) => ortho.scale,
        _ => 1.0,
    }
}

fn set_scale(projection: &mut Projection, scale: f32) {
    if let Projection::Orthographic(ortho) = projection {
        ortho.scale = scale.clamp(ZOOM_MIN, ZOOM_MAX);
    }
}

pub fn pan_spectator_camera(
    time: Res<Time>,
    keys: Res<ButtonInput<KeyCode>>,
    buttons: Res<ButtonInput<MouseButton>>,
    motion: Res<AccumulatedMouseMotion>,
    mut camera: Query<(&mut Transform, &Projection), With<MainCamera>>,
) {
    let Ok((mut transform, projection)) = camera.single_mut() else {
        return;
    };
    let scale = current_scale(projection);
    let mut direction = Vec2::ZERO;
    if keys.any_pressed([KeyCode::KeyW, KeyCode::ArrowUp]) {
        direction.y += 1.0;
    }
    if keys.any_pressed([KeyCode::KeyS, KeyCode::ArrowDown]) {
        direction.y -= 1.0;
    }
    if keys.any_pressed([KeyCode::KeyA, KeyCode::ArrowLeft]) {
        direction.x -= 1.0;
    }
    if keys.any_pressed([KeyCode::KeyD, KeyCode::ArrowRight]) {
        direction.x += 1.0;
    }
    let mut delta =
        direction.normalize_or_zero() * PAN_SPEED_PX_PER_SEC * scale * time.delta_secs();
    if buttons.any_pressed([MouseButton::Left, MouseButton::Right, MouseButton::Middle]) {
        // Dragging moves the world with the cursor (screen y points down).
        delta += Vec2::new(-motion.delta.x, motion.delta.y) * scale;
    }
    transform.translation += delta.extend(0.0);
}

pub fn zoom_spectator_camera(
    scroll: Res<AccumulatedMouseScroll>,
    mut camera: Query<&mut Projection, With<MainCamera>>,
) {
    if scroll.delta.y == 0.0 {
        return;
    }
    let Ok(mut projection) = camera.single_mut() else {
        return;
    };
    let lines = match scroll.unit {
        MouseScrollUnit::Line => scroll.delta.y,
        MouseScrollUnit::Pixel => scroll.delta.y / 40.0,
    };
    let scale = current_scale(&projection) * ZOOM_STEP.powf(-lines);
    set_scale(&mut projection, scale);
}

/// `F`: center on everyone and zoom so they all fit.
pub fn fit_everyone_in_view(
    keys: Res<ButtonInput<KeyCode>>,
    windows: Query<&Window, With<PrimaryWindow>>,
    players: Query<RemoteSpriteView, (With<RemotePlayer>, Without<MainCamera>)>,
    mut camera: Query<(&mut Transform, &mut Projection), With<MainCamera>>,
) {
    if !keys.just_pressed(KeyCode::KeyF) {
        return;
    }
    let (Ok(window), Ok((mut transform, mut projection))) = (windows.single(), camera.single_mut())
    else {
        return;
    };
    let mut bounds: Option<Rect> = None;
    for (player, visibility) in &players {
        if *visibility == Visibility::Hidden {
            continue;
        }
        let point = player.translation.truncate();
        bounds = Some(match bounds {
            Some(rect) => rect.union_point(point),
            None => Rect::from_center_size(point, Vec2::ZERO),
        });
    }
    let Some(bounds) = bounds else { return };
    let size = bounds.size() + Vec2::splat(FIT_MARGIN_PX * 2.0);
    let scale = (size.x / window.width()).max(size.y / window.height());
    transform.translation = bounds.center().extend(transform.translation.z);
    set_scale(&mut projection, scale.max(1.0));
}
