//! Players as entities: the server's roster (snapshot / joined / left) and
//! position broadcast become sprites with labels, and remote sprites glide
//! toward their latest received position instead of teleporting.

use std::collections::VecDeque;

use bevy::platform::collections::{HashMap, HashSet};
use bevy::prelude::*;
use rand::Rng;
use shared::ClientId;
use shared::legacy::Position;
use shared::native::{PlayerInfo, PlayerKind};

use crate::net_thread::NetEvent;
use crate::network::{LocalPlayerId, NetSystems, ServerEvent, apply_connection_events};
use crate::{ClientSettings, ControlMode};

/// Screen pixels per world unit: a legacy walker's ±1 steps move 4 px.
pub const PIXELS_PER_UNIT: f32 = 4.0;
/// Fraction of the remaining gap to the target closed per second is
/// `1 - e^(-rate)`: at 12/s a 10 Hz update is 70 % reached by the next one, so
/// motion is smooth yet lags the server by well under 0.2 s.
pub const INTERPOLATION_RATE_PER_SEC: f32 = 12.0;
/// A jump longer than this (in world units) is a teleport on the server's
/// side (respawn, reconnect): snap instead of sliding across the map.
pub const SNAP_DISTANCE_UNITS: f32 = 400.0;
/// A sprite this close to its target (pixels) counts as arrived.
pub const SETTLED_PX: f32 = 0.01;
/// Raw samples kept per remote player for the network overlay.
pub const POSITION_HISTORY_LEN: usize = 24;
/// Side of a player sprite, in pixels.
pub const PLAYER_SPRITE_PX: f32 = 20.0;
/// A fresh local player appears this far (in units) around the origin at most.
pub const SPAWN_SPREAD_UNITS: f32 = 30.0;
/// Z of remote sprites, the local sprite and labels (relative to their sprite).
pub const REMOTE_Z: f32 = 10.0;
pub const LOCAL_Z: f32 = 20.0;
const LABEL_Z: f32 = 1.0;
const LABEL_OFFSET_PX: f32 = 16.0;
const LABEL_FONT_PX: f32 = 12.0;

/// Colour of legacy (Python) players: they use another sprite and this tint.
pub const LEGACY_TINT: Color = Color::srgb(1.0, 0.75, 0.3);
/// Colour of other native players.
pub const NATIVE_TINT: Color = Color::srgb(0.55, 0.8, 1.0);
/// Colour of the local player.
pub const LOCAL_TINT: Color = Color::srgb(0.5, 1.0, 0.55);

/// Any player sprite, local or remote.
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlayerId(pub ClientId);

/// Someone else, moved by the server's broadcast.
#[derive(Component, Debug, Default)]
pub struct RemotePlayer;

/// Us, moved by the keyboard or the wander logic.
#[derive(Component, Debug, Default)]
pub struct LocalPlayer;

/// A legacy Python positions client.
#[derive(Component, Debug, Default)]
pub struct LegacyPlayer;

#[derive(Component, Debug, Clone, PartialEq, Eq)]
pub struct PlayerName(pub String);

/// The name/id text above a sprite (a child entity).
#[derive(Component, Debug, Default)]
pub struct PlayerLabel;

/// The overlay's "last update N ms ago" text under a remote sprite (a child).
#[derive(Component, Debug, Default)]
pub struct UpdateAgeLabel;

/// The latest position the server sent for a remote player (world units) and
/// when it arrived (`Time` seconds). `None` until its first position.
#[derive(Component, Debug, Default, Clone, Copy)]
pub struct NetTarget {
    pub position: Option<Vec2>,
    pub received_at_secs: f64,
}

/// The raw positions received lately (world units, `Time` seconds), newest last.
#[derive(Component, Debug, Default, Clone)]
pub struct PositionHistory(pub VecDeque<(Vec2, f64)>);

/// Where the local player is, in world units (kept as floats so slow speeds
/// accumulate; rounded when sent).
#[derive(Component, Debug, Default, Clone, Copy)]
pub struct LocalPosition(pub Vec2);

/// Remote player entities by id.
#[derive(Resource, Debug, Default)]
pub struct PlayerIndex(pub HashMap<ClientId, Entity>);

/// Sprite images (default handles without an `AssetServer`, e.g. headless).
#[derive(Resource, Debug, Clone)]
pub struct PlayerSprites {
    pub native: Handle<Image>,
    pub legacy: Handle<Image>,
    pub local: Handle<Image>,
}

impl FromWorld for PlayerSprites {
    fn from_world(world: &mut World) -> Self {
        match world.get_resource::<AssetServer>() {
            Some(assets) => PlayerSprites {
                native: assets.load("sprites/player_native.png"),
                legacy: assets.load("sprites/player_legacy.png"),
                local: assets.load("sprites/player_local.png"),
            },
            None => PlayerSprites {
                native: Handle::default(),
                legacy: Handle::default(),
                local: Handle::default(),
            },
        }
    }
}

/// World units → pixels.
pub fn units_to_px(units: Vec2) -> Vec2 {
    units * PIXELS_PER_UNIT
}

pub fn position_to_units(position: Position) -> Vec2 {
    Vec2::new(f32::from(position.x), f32::from(position.y))
}

/// The text of a player's label.
pub fn label_text(id: ClientId, name: &str, kind: PlayerKind) -> String {
    match kind {
        PlayerKind::Legacy => format!("[py] {name} #{id}"),
        PlayerKind::Native => format!("{name} #{id}"),
    }
}

pub struct PlayersPlugin;

impl Plugin for PlayersPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<PlayerIndex>()
            .init_resource::<PlayerSprites>()
            .add_systems(
                Update,
                (
                    apply_roster_events,
                    apply_server_positions,
                    spawn_local_player_on_welcome,
                )
                    .chain()
                    .in_set(NetSystems::Apply)
                    // Our id must be known before the snapshot that follows
                    // Welcome, or we would spawn ourselves as a remote player.
                    .after(apply_connection_events),
            )
            .add_systems(Update, interpolate_remote_players.after(NetSystems::Apply));
    }
}

fn label_bundle(text: String) -> impl Bundle {
    (
        PlayerLabel,
        Text2d::new(text),
        TextFont::from_font_size(LABEL_FONT_PX),
        TextColor(Color::WHITE),
        Transform::from_xyz(0.0, LABEL_OFFSET_PX, LABEL_Z),
    )
}

fn spawn_remote_player(
    commands: &mut Commands,
    sprites: &PlayerSprites,
    info: &PlayerInfo,
    position: Option<Vec2>,
    now_secs: f64,
) -> Entity {
    let (image, tint) = match info.kind {
        PlayerKind::Legacy => (sprites.legacy.clone(), LEGACY_TINT),
        PlayerKind::Native => (sprites.native.clone(), NATIVE_TINT),
    };
    let pixels = units_to_px(position.unwrap_or_default());
    let mut history = PositionHistory::default();
    if let Some(position) = position {
        history.0.push_back((position, now_secs));
    }
    let mut entity = commands.spawn((
        RemotePlayer,
        PlayerId(info.id),
        PlayerName(info.name.clone()),
        Sprite {
            image,
            color: tint,
            custom_size: Some(Vec2::splat(PLAYER_SPRITE_PX)),
            ..default()
        },
        Transform::from_translation(pixels.extend(REMOTE_Z)),
        // Hidden until the server tells us where it is.
        if position.is_some() {
            Visibility::Inherited
        } else {
            Visibility::Hidden
        },
        NetTarget {
            position,
            received_at_secs: now_secs,
        },
        history,
        children![
            label_bundle(label_text(info.id, &info.name, info.kind)),
            (
                UpdateAgeLabel,
                Text2d::default(),
                TextFont::from_font_size(LABEL_FONT_PX * 0.8),
                TextColor(Color::srgb(1.0, 1.0, 0.5)),
                Transform::from_xyz(0.0, -LABEL_OFFSET_PX, LABEL_Z),
                Visibility::Hidden,
            )
        ],
    ));
    if info.kind == PlayerKind::Legacy {
        entity.insert(LegacyPlayer);
    }
    entity.id()
}

fn kind_label(kind: PlayerKind) -> &'static str {
    match kind {
        PlayerKind::Native => "native",
        PlayerKind::Legacy => "legacy",
    }
}

/// Snapshot / joined / left / disconnected → spawn and despawn remote players.
pub fn apply_roster_events(
    mut messages: MessageReader<ServerEvent>,
    mut commands: Commands,
    mut index: ResMut<PlayerIndex>,
    local_id: Res<LocalPlayerId>,
    sprites: Res<PlayerSprites>,
    time: Res<Time>,
    mut targets: Query<(&mut NetTarget, &mut PositionHistory, &mut Visibility)>,
) {
    let now = time.elapsed_secs_f64();
    for ServerEvent(event) in messages.read() {
        match event {
            NetEvent::Snapshot(players) => {
                let present: HashSet<ClientId> = players.iter().map(|p| p.info.id).collect();
                index.0.retain(|id, entity| {
                    let keep = present.contains(id);
                    if !keep {
                        info!("player gone (not in snapshot) id={id}");
                        commands.entity(*entity).despawn();
                    }
                    keep
                });
                for player in players {
                    let id = player.info.id;
                    if Some(id) == local_id.0 {
                        continue;
                    }
                    let position = player.position.map(position_to_units);
                    match index.0.get(&id) {
                        Some(&entity) => {
                            if let (Some(position), Ok((mut target, mut history, mut visibility))) =
                                (position, targets.get_mut(entity))
                            {
                                target.position = Some(position);
                                target.received_at_secs = now;
                                push_history(&mut history, position, now);
                                *visibility = Visibility::Inherited;
                            }
                        }
                        None => {
                            info!(
                                "player seen id={id} name={:?} kind={} at {:?}",
                                player.info.name,
                                kind_label(player.info.kind),
                                player.position.map(|p| (p.x, p.y))
                            );
                            let entity = spawn_remote_player(
                                &mut commands,
                                &sprites,
                                &player.info,
                                position,
                                now,
                            );
                            index.0.insert(id, entity);
                        }
                    }
                }
            }
            NetEvent::Joined(info) => {
                if Some(info.id) == local_id.0 || index.0.contains_key(&info.id) {
                    continue;
                }
                info!(
                    "player joined id={} name={:?} kind={}",
                    info.id,
                    info.name,
                    kind_label(info.kind)
                );
                let entity = spawn_remote_player(&mut commands, &sprites, info, None, now);
                index.0.insert(info.id, entity);
            }
            NetEvent::Left(id) => {
                if let Some(entity) = index.0.remove(id) {
                    info!("player left id={id}");
                    commands.entity(entity).despawn();
                }
            }
            NetEvent::Disconnected { .. } => {
                // The view is stale the moment the connection is gone; the
                // next Welcome brings a fresh snapshot.
                for (_, entity) in index.0.drain() {
                    commands.entity(entity).despawn();
                }
            }
            _ => {}
        }
    }
}

fn push_history(history: &mut PositionHistory, position: Vec2, now: f64) {
    if history.0.len() >= POSITION_HISTORY_LEN {
        history.0.pop_front();
    }
    history.0.push_back((position, now));
}

/// The position broadcast → each remote player's target (and overlay history).
/// Our own echo is ignored: the local player is driven locally.
pub fn apply_server_positions(
    mut messages: MessageReader<ServerEvent>,
    index: Res<PlayerIndex>,
    local_id: Res<LocalPlayerId>,
    time: Res<Time>,
    mut players: Query<(
        &mut NetTarget,
        &mut PositionHistory,
        &mut Transform,
        &mut Visibility,
    )>,
) {
    let now = time.elapsed_secs_f64();
    for ServerEvent(event) in messages.read() {
        let NetEvent::Positions(positions) = event else {
            continue;
        };
        for update in positions {
            if Some(update.id) == local_id.0 {
                continue;
            }
            let Some(&entity) = index.0.get(&update.id) else {
                continue;
            };
            let Ok((mut target, mut history, mut transform, mut visibility)) =
                players.get_mut(entity)
            else {
                continue;
            };
            let position = position_to_units(update.position);
            if target.position.is_none() {
                // First sighting: appear in place rather than slide from 0,0.
                transform.translation = units_to_px(position).extend(REMOTE_Z);
                *visibility = Visibility::Inherited;
            }
            target.position = Some(position);
            target.received_at_secs = now;
            push_history(&mut history, position, now);
        }
    }
}

/// Remote sprites glide toward their target (exponential smoothing).
pub fn interpolate_remote_players(
    time: Res<Time>,
    mut players: Query<(&NetTarget, &mut Transform), With<RemotePlayer>>,
) {
    if time.delta_secs() == 0.0 {
        return;
    }
    let alpha = 1.0 - (-INTERPOLATION_RATE_PER_SEC * time.delta_secs()).exp();
    for (target, mut transform) in &mut players {
        let Some(goal_units) = target.position else {
            continue;
        };
        let goal = units_to_px(goal_units);
        let current = transform.translation.truncate();
        // Settled sprites are not written, so change detection (and
        // transform propagation) skips them.
        if current.distance_squared(goal) < SETTLED_PX * SETTLED_PX {
            continue;
        }
        let next = if current.distance(goal) > SNAP_DISTANCE_UNITS * PIXELS_PER_UNIT {
            goal
        } else {
            current.lerp(goal, alpha)
        };
        transform.translation = next.extend(REMOTE_Z);
    }
}

/// On Welcome, make sure our own sprite exists and carries our new id.
pub fn spawn_local_player_on_welcome(
    mut messages: MessageReader<ServerEvent>,
    mut commands: Commands,
    settings: Res<ClientSettings>,
    sprites: Res<PlayerSprites>,
    mut local: Query<(Entity, &mut PlayerId), With<LocalPlayer>>,
    mut labels: Query<(&ChildOf, &mut Text2d), With<PlayerLabel>>,
) {
    for ServerEvent(event) in messages.read() {
        let NetEvent::Welcome { id, .. } = event else {
            continue;
        };
        if settings.control == ControlMode::Spectate {
            continue;
        }
        let text = format!("{} #{id} (you)", settings.name);
        if let Ok((entity, mut player_id)) = local.single_mut() {
            player_id.0 = *id;
            for (parent, mut label) in &mut labels {
                if parent.parent() == entity {
                    label.0.clone_from(&text);
                }
            }
            continue;
        }
        let spread = SPAWN_SPREAD_UNITS;
        let start = {
            let mut rng = rand::rng();
            Vec2::new(
                rng.random_range(-spread..=spread).round(),
                rng.random_range(-spread..=spread).round(),
            )
        };
        commands.spawn((
            LocalPlayer,
            PlayerId(*id),
            PlayerName(settings.name.clone()),
            LocalPosition(start),
            Sprite {
                image: sprites.local.clone(),
                color: LOCAL_TINT,
                custom_size: Some(Vec2::splat(PLAYER_SPRITE_PX)),
                ..default()
            },
            Transform::from_translation(units_to_px(start).extend(LOCAL_Z)),
            children![label_bundle(text)],
        ));
    }
}
