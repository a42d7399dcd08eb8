//! The camera: follows the local player, or in spectator mode pans with the
//! keys / mouse drag. In both modes the wheel zooms and `F` fits everyone in
//! view (in player mode, around the player; `F` again returns to zoom 1).

use bevy::input::mouse::{AccumulatedMouseMotion, AccumulatedMouseScroll, MouseScrollUnit};
use bevy::prelude::*;
use bevy::window::PrimaryWindow;

use crate::logic::players::{LatestPosition, LocalPlayer, RemotePlayer, units_to_px};
use crate::{ClientSettings, ControlMode};

/// Whether the pointer is over the minimap (so a drag there does not also
/// pan): set by the minimap, read by the camera.
#[derive(Resource, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PointerOverMinimap(pub bool);

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

/// The camera's systems (PostUpdate, before transform propagation); the
/// minimap, indicators and labels run after them.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CameraSystems;

/// The world rectangle (pixels) a camera shows in a window of `window_size`
/// (logical pixels).
pub fn visible_rect(center: Vec2, scale: f32, window_size: Vec2) -> Rect {
    Rect::from_center_half_size(center, window_size * scale / 2.0)
}

/// The orthographic scale of a projection (1 for anything else).
pub fn projection_scale(projection: &Projection) -> f32 {
    current_scale(projection)
}

pub struct CameraPlugin;

impl Plugin for CameraPlugin {
    fn build(&self, app: &mut App) {
        let spectating = |settings: Res<ClientSettings>| settings.control == ControlMode::Spectate;
        app.configure_sets(
            PostUpdate,
            CameraSystems.before(TransformSystems::Propagate),
        )
        .add_systems(Startup, spawn_camera)
        .add_systems(
            PostUpdate,
            (
                follow_local_player.run_if(not(spectating)),
                pan_spectator_camera.run_if(spectating),
                zoom_camera,
                fit_everyone_in_view,
            )
                .chain()
                .in_set(CameraSystems),
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
    over_minimap: Option<Res<PointerOverMinimap>>,
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
    let on_minimap = over_minimap.is_some_and(|over| over.0);
    if !on_minimap
        && buttons.any_pressed([MouseButton::Left, MouseButton::Right, MouseButton::Middle])
    {
        // Dragging moves the world with the cursor (screen y points down).
        delta += Vec2::new(-motion.delta.x, motion.delta.y) * scale;
    }
    transform.translation += delta.extend(0.0);
}

pub fn zoom_camera(
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

/// `F`: zoom so everyone fits. Spectating, the camera also centres on
/// everyone; playing, it keeps following the player, and `F` again returns
/// to zoom 1.
pub fn fit_everyone_in_view(
    keys: Res<ButtonInput<KeyCode>>,
    settings: Res<ClientSettings>,
    windows: Query<&Window, With<PrimaryWindow>>,
    players: Query<&LatestPosition, With<RemotePlayer>>,
    local: Query<&Transform, (With<LocalPlayer>, Without<MainCamera>)>,
    mut camera: Query<(&mut Transform, &mut Projection), With<MainCamera>>,
) {
    if !keys.just_pressed(KeyCode::KeyF) {
        return;
    }
    let (Ok(window), Ok((mut transform, mut projection))) = (windows.single(), camera.single_mut())
    else {
        return;
    };
    // Newest samples: most players are off screen, with no drawn sprite.
    let shown = players
        .iter()
        .filter_map(|latest| latest.position().map(units_to_px));
    let window_size = Vec2::new(window.width(), window.height());
    let spectating = settings.control == ControlMode::Spectate;
    let me = local.single().ok().map(|t| t.translation.truncate());
    match (spectating, me) {
        (false, Some(me)) => {
            if current_scale(&projection) > 1.0 + f32::EPSILON {
                set_scale(&mut projection, 1.0);
                return;
            }
            // The view stays centred on us: fit the farthest player on each axis.
            let reach = shown.fold(Vec2::ZERO, |reach, p| reach.max((p - me).abs()));
            let size = reach * 2.0 + Vec2::splat(FIT_MARGIN_PX * 2.0);
            set_scale(&mut projection, fit_scale(size, window_size));
        }
        _ => {
            let Some(bounds) = shown.fold(None, |bounds: Option<Rect>, point| {
                Some(match bounds {
                    Some(rect) => rect.union_point(point),
                    None => Rect::from_center_size(point, Vec2::ZERO),
                })
            }) else {
                return;
            };
            let size = bounds.size() + Vec2::splat(FIT_MARGIN_PX * 2.0);
            transform.translation = bounds.center().extend(transform.translation.z);
            set_scale(&mut projection, fit_scale(size, window_size));
        }
    }
}

/// The scale at which `size` (world pixels) fits the window, never below 1.
fn fit_scale(size: Vec2, window_size: Vec2) -> f32 {
    (size.x / window_size.x)
        .max(size.y / window_size.y)
        .max(1.0)
}
