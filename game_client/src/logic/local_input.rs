//! The local player: moved by WASD / arrow keys or by the wander logic (bots,
//! unfocused demo windows), and reported to the server at a bounded rate.

use bevy::prelude::*;
use bevy::window::PrimaryWindow;
use rand::Rng;
use shared::legacy::Position;

use shared::native::ClientMessage;

use crate::logic::players::{LOCAL_Z, LocalPlayer, LocalPosition, units_to_px};
use crate::net::{ConnectionEvent, ConnectionState, NetCommands, NetSystems};
use crate::{ClientSettings, ControlMode};

/// Walking speed, world units per second (120 px/s at 4 px per unit).
pub const WALK_SPEED_UNITS_PER_SEC: f32 = 30.0;
/// Wandering is a bit slower than a human so the demo stays readable.
pub const WANDER_SPEED_UNITS_PER_SEC: f32 = 15.0;
/// A wanderer keeps a heading this long (random within the range), seconds.
pub const WANDER_LEG_SECS: std::ops::Range<f64> = 0.8..2.5;
/// Wanderers turn back toward the origin beyond this distance (units).
pub const WANDER_RADIUS_UNITS: f32 = 120.0;
/// At most one position update per this many seconds (≤ 20 Hz).
pub const SEND_INTERVAL_SECS: f64 = 0.05;
/// World coordinates are i16, and (-32768, -32768) is the legacy leave marker.
const COORD_LIMIT: f32 = 32767.0;

/// The wanderer's current heading and when it changes.
#[derive(Resource, Debug, Default)]
pub struct Wander {
    pub heading: Vec2,
    pub until_secs: f64,
}

/// The last position we sent and when; `None` forces the next send (after Welcome).
#[derive(Resource, Debug, Default)]
pub struct LastSentPosition {
    pub position: Option<Position>,
    pub at_secs: f64,
}

pub struct LocalInputPlugin;

impl Plugin for LocalInputPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<Wander>()
            .init_resource::<LastSentPosition>()
            .add_systems(
                Update,
                forget_sent_position_on_welcome.in_set(NetSystems::Apply),
            )
            .add_systems(
                Update,
                move_local_player
                    .after(NetSystems::Apply)
                    .before(NetSystems::Send),
            )
            .add_systems(
                Update,
                send_local_position
                    .in_set(NetSystems::Send)
                    .run_if(in_state(ConnectionState::Playing)),
            );
    }
}

/// Whether this frame's motion comes from the wander logic.
fn wanders(settings: &ClientSettings, window: Option<&Window>) -> bool {
    match settings.control {
        ControlMode::Bot => true,
        ControlMode::KeyboardWhenFocused => window.is_some_and(|w| !w.focused),
        ControlMode::Keyboard | ControlMode::Spectate => false,
    }
}

fn keyboard_direction(keys: &ButtonInput<KeyCode>) -> Vec2 {
    let mut direction = Vec2::ZERO;
    if keys.pressed(KeyCode::KeyW) || keys.pressed(KeyCode::ArrowUp) {
        direction.y += 1.0;
    }
    if keys.pressed(KeyCode::KeyS) || keys.pressed(KeyCode::ArrowDown) {
        direction.y -= 1.0;
    }
    if keys.pressed(KeyCode::KeyA) || keys.pressed(KeyCode::ArrowLeft) {
        direction.x -= 1.0;
    }
    if keys.pressed(KeyCode::KeyD) || keys.pressed(KeyCode::ArrowRight) {
        direction.x += 1.0;
    }
    direction.normalize_or_zero()
}

/// Moves our sprite by keyboard or wander logic.
pub fn move_local_player(
    settings: Res<ClientSettings>,
    keys: Option<Res<ButtonInput<KeyCode>>>,
    windows: Query<&Window, With<PrimaryWindow>>,
    time: Res<Time>,
    mut wander: ResMut<Wander>,
    mut local: Query<(&mut LocalPosition, &mut Transform), With<LocalPlayer>>,
) {
    let Ok((mut position, mut transform)) = local.single_mut() else {
        return;
    };
    let window = windows.single().ok();
    let velocity = if wanders(&settings, window) {
        let now = time.elapsed_secs_f64();
        if now >= wander.until_secs || wander.heading == Vec2::ZERO {
            let mut rng = rand::rng();
            let angle = rng.random_range(0.0..std::f32::consts::TAU);
            let mut heading = Vec2::from_angle(angle);
            if position.0.length() > WANDER_RADIUS_UNITS {
                heading = (-position.0).normalize_or_zero();
            }
            wander.heading = heading;
            wander.until_secs = now + rng.random_range(WANDER_LEG_SECS);
        }
        wander.heading * WANDER_SPEED_UNITS_PER_SEC
    } else {
        let direction = keys.map(|k| keyboard_direction(&k)).unwrap_or_default();
        direction * WALK_SPEED_UNITS_PER_SEC
    };
    if velocity == Vec2::ZERO {
        return;
    }
    let next = (position.0 + velocity * time.delta_secs())
        .clamp(Vec2::splat(-COORD_LIMIT), Vec2::splat(COORD_LIMIT));
    position.0 = next;
    transform.translation = units_to_px(next).extend(LOCAL_Z);
}

/// Rounds a float world position to the wire's i16 grid.
pub fn to_wire_position(units: Vec2) -> Position {
    let clamp = |v: f32| v.round().clamp(-COORD_LIMIT, COORD_LIMIT) as i16;
    Position::new(clamp(units.x), clamp(units.y))
}

/// A reconnect gives us a new id with no position: send ours again at once.
pub fn forget_sent_position_on_welcome(
    mut messages: MessageReader<ConnectionEvent>,
    mut last: ResMut<LastSentPosition>,
) {
    if messages
        .read()
        .any(|e| matches!(e, ConnectionEvent::Welcome { .. }))
    {
        last.position = None;
    }
}

/// Sends our position when it changed on the wire grid, at most every 50 ms.
pub fn send_local_position(
    time: Res<Time<Real>>,
    net: Res<NetCommands>,
    mut last: ResMut<LastSentPosition>,
    local: Query<&LocalPosition, With<LocalPlayer>>,
) {
    let Ok(position) = local.single() else {
        return;
    };
    let now = time.elapsed_secs_f64();
    let wire = to_wire_position(position.0);
    if last.position == Some(wire)
        || (last.position.is_some() && now - last.at_secs < SEND_INTERVAL_SECS)
    {
        return;
    }
    net.send_message(ClientMessage::MyPosition(wire));
    last.position = Some(wire);
    last.at_secs = now;
}
