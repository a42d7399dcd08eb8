//! Players as entities: the server's roster (snapshot / joined / left) and
//! position broadcast become sprites with labels. Every received position,
//! whichever message brought it, goes through [`record_position`]; drawing
//! remote sprites between those samples is [`super::interpolation`]'s job.

use std::ops::DerefMut;

use bevy::platform::collections::HashSet;
use bevy::prelude::*;
use bevy::transform::systems::StaticTransformOptimizations;
use rand::Rng;
use shared::ClientId;
use shared::legacy::Position;
use shared::native::{PlayerInfo, PlayerKind};

pub use super::history::{POSITION_HISTORY_LEN, PositionHistory, Sample};
pub use super::player_index::PlayerIndex;
use crate::net::{ConnectionEvent, LocalPlayerId, NetSystems, PositionsReceived, RosterEvent};
use crate::{ClientSettings, ControlMode};

/// The drawn area reaches this fraction of the visible half size beyond
/// each edge, plus a sprite, so a player walking in is already in place.
pub const DRAWN_MARGIN: f32 = 0.25;

/// Where remote sprites are interpolated and shown (world pixels); `None`:
/// everywhere (no camera, e.g. the headless client and the tests). Players
/// outside it are plain data: their samples are still recorded (the
/// indicators and the minimap read those), but their sprite is hidden and
/// its `Transform` left alone. The camera keeps it on the visible rect plus
/// [`DRAWN_MARGIN`].
#[derive(Resource, Debug, Clone, Copy, Default, PartialEq)]
pub struct DrawnArea(pub Option<Rect>);

impl DrawnArea {
    /// The drawn area around a visible rect (world pixels).
    pub fn around(visible: Rect) -> DrawnArea {
        let margin = visible.half_size() * DRAWN_MARGIN + Vec2::splat(PLAYER_SPRITE_PX);
        DrawnArea(Some(Rect::from_center_half_size(
            visible.center(),
            visible.half_size() + margin,
        )))
    }

    /// Whether a player at `px` (world pixels) is drawn.
    pub fn contains(&self, px: Vec2) -> bool {
        self.0.is_none_or(|rect| rect.contains(px))
    }
}

/// Screen pixels per world unit: a legacy walker's ±1 steps move 4 px.
pub const PIXELS_PER_UNIT: f32 = 4.0;
/// Side of a player sprite, in pixels.
pub const PLAYER_SPRITE_PX: f32 = 20.0;
/// A fresh local player appears this far (in units) around the origin at most.
pub const SPAWN_SPREAD_UNITS: f32 = 30.0;
/// Z of remote sprites, the local sprite and labels (relative to their sprite).
pub const REMOTE_Z: f32 = 10.0;
pub const LOCAL_Z: f32 = 20.0;
const LABEL_Z: f32 = 1.0;
/// How far above its sprite a label sits, pixels.
pub const LABEL_OFFSET_PX: f32 = 16.0;
/// Font size of a name label, pixels.
pub const LABEL_FONT_PX: f32 = 12.0;

/// Colour of legacy (Python) players: they use another sprite and this tint.
pub const LEGACY_TINT: Color = Color::srgb(1.0, 0.75, 0.3);
/// The colour of a remote player of this kind.
pub fn kind_tint(kind: PlayerKind) -> Color {
    match kind {
        PlayerKind::Legacy => LEGACY_TINT,
        PlayerKind::Native => NATIVE_TINT,
    }
}

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

/// The name/id text above a sprite. A separate entity, not a child: a
/// moving player stays a single entity for transform propagation. Only the
/// view spawns them, for the few players it names (`view::labels`), so the
/// crowd's players carry no label entity (and no label `Transform`) at all.
#[derive(Component, Debug, Default)]
pub struct PlayerLabel;

/// The player a label names (despawned with it).
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq)]
#[relationship(relationship_target = NameLabel)]
pub struct LabelOf(pub Entity);

/// A player's label entity.
#[derive(Component, Debug)]
#[relationship_target(relationship = LabelOf, linked_spawn)]
pub struct NameLabel(Entity);

impl NameLabel {
    pub fn entity(&self) -> Entity {
        self.0
    }
}

/// A player the server's view of us does not hold (protocol 3): it is
/// known from the roster, and where it is comes from the overview, about
/// once a second, if at all. The minimap and the indicators show its age.
#[derive(Component, Debug, Default, Clone, Copy)]
pub struct OutOfView;

/// Whether the server sends the roster apart from the view (protocol 3:
/// it sent a `Roster`). Then a player leaving the view is not gone, only
/// [`OutOfView`]; it is gone when the roster says so.
#[derive(Resource, Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WholeRoster(pub bool);

/// The player's kind, for colours and the minimap.
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind(pub PlayerKind);

/// A remote player's newest received position (world units) and when it
/// arrived, kept beside the entity so a pass over every player (the
/// drawn-area check, the indicators, the minimap) reads dense data instead of
/// each history. `None` until the server says where the player is.
///
/// Players outside the [`DrawnArea`] only update this: their
/// [`PositionHistory`] is left as it was (nothing interpolates them) and
/// restarts from here when they are drawn again.
#[derive(Component, Debug, Default, Clone, Copy, PartialEq)]
pub struct LatestPosition(pub Option<Sample>);

impl LatestPosition {
    /// The newest position, world units.
    pub fn position(&self) -> Option<Vec2> {
        self.0.map(|(position, _)| position)
    }

    /// Whether `history` holds every sample up to this one (its newest is
    /// this one), so interpolating through it is up to date.
    pub fn recorded_in(&self, history: &PositionHistory) -> bool {
        history.latest() == self.0
    }
}

/// Where the local player is, in world units (kept as floats so slow speeds
/// accumulate; rounded when sent).
#[derive(Component, Debug, Default, Clone, Copy)]
pub struct LocalPosition(pub Vec2);

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

/// The text of a remote player's label.
pub fn label_text(id: ClientId, name: &str, kind: PlayerKind) -> String {
    match kind {
        PlayerKind::Legacy => format!("[py] {name} #{id}"),
        PlayerKind::Native => format!("{name} #{id}"),
    }
}

/// The text of our own label.
pub fn local_label_text(id: ClientId, name: &str) -> String {
    format!("{name} #{id} (you)")
}

/// The players' systems, for other plugins to order against.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlayerSystems {
    /// Spawn / despawn from the roster, record positions, spawn ourselves.
    Apply,
}

/// A remote player's new sample: how long since its previous sample (for
/// the interpolation delay's mean gap).
#[derive(Message, Debug, Clone, Copy, PartialEq)]
pub struct SampleInterval {
    pub gap_secs: f64,
}

pub struct PlayersPlugin;

impl Plugin for PlayersPlugin {
    fn build(&self, app: &mut App) {
        // Every player is a root without children (labels are entities of
        // their own), so the static-tree bookkeeping of transform
        // propagation only costs: with it on, every moved sprite (about
        // 1,400 a frame in `bench-ecs`) went through its channels and tasks.
        // Off, the few small trees (indicators) are recomputed each frame.
        app.insert_resource(StaticTransformOptimizations::Disabled)
            .init_resource::<PlayerIndex>()
            .init_resource::<WholeRoster>()
            .init_resource::<PlayerSprites>()
            .add_message::<SampleInterval>()
            .configure_sets(Update, PlayerSystems::Apply.in_set(NetSystems::Apply))
            .add_systems(
                Update,
                (
                    apply_roster_events,
                    apply_server_positions,
                    spawn_local_player_on_welcome,
                )
                    .chain()
                    .in_set(PlayerSystems::Apply),
            );
    }
}

/// Where a label goes for a sprite at `sprite` (world pixels).
pub fn label_translation(sprite: Vec3) -> Vec3 {
    sprite + Vec3::new(0.0, LABEL_OFFSET_PX, LABEL_Z)
}

/// The one way a remote player learns a position, whichever message brought
/// it (snapshot or broadcast). The first position places the sprite there and
/// shows it, so a player never slides in from (0, 0). Returns the gap since
/// the previous sample, if there was one.
///
/// The sprite is only dereferenced mutably for the first position: a later
/// sample leaves `Transform` and `Visibility` unchanged (no change detection,
/// no transform propagation); interpolation moves the sprite if it is near
/// the view.
///
/// Only a position inside the `area` goes into the history (the others are
/// not interpolated, so [`LatestPosition`] is all that is written: one cache
/// line instead of three). A history that missed samples while its player
/// was away restarts from the previous latest position.
pub fn record_position(
    history: &mut impl DerefMut<Target = PositionHistory>,
    latest: &mut LatestPosition,
    transform: &mut impl DerefMut<Target = Transform>,
    visibility: &mut impl DerefMut<Target = Visibility>,
    position: Vec2,
    now_secs: f64,
    area: DrawnArea,
) -> Option<SampleInterval> {
    let previous = latest.0;
    if previous.is_none() {
        transform.translation = units_to_px(position).extend(REMOTE_Z);
        **visibility = Visibility::Inherited;
    }
    if area.contains(units_to_px(position)) {
        if !latest.recorded_in(history) {
            history.clear();
            if let Some(previous) = previous {
                history.push(previous);
            }
        }
        history.push((position, now_secs));
    }
    latest.0 = Some((position, now_secs));
    previous.map(|(_, at)| SampleInterval {
        gap_secs: now_secs - at,
    })
}

fn spawn_remote_player(
    commands: &mut Commands,
    sprites: &PlayerSprites,
    info: &PlayerInfo,
    position: Option<Vec2>,
    now_secs: f64,
    area: DrawnArea,
) -> Entity {
    let image = match info.kind {
        PlayerKind::Legacy => sprites.legacy.clone(),
        PlayerKind::Native => sprites.native.clone(),
    };
    // Hidden until the server tells us where it is.
    let mut history = PositionHistory::default();
    let mut latest = LatestPosition::default();
    let mut transform = Transform::from_xyz(0.0, 0.0, REMOTE_Z);
    let mut visibility = Visibility::Hidden;
    if let Some(position) = position {
        record_position(
            &mut &mut history,
            &mut latest,
            &mut &mut transform,
            &mut &mut visibility,
            position,
            now_secs,
            area,
        );
    }
    let mut entity = commands.spawn((
        RemotePlayer,
        PlayerId(info.id),
        PlayerName(info.name.clone()),
        Kind(info.kind),
        Sprite {
            image,
            color: kind_tint(info.kind),
            custom_size: Some(Vec2::splat(PLAYER_SPRITE_PX)),
            ..default()
        },
        transform,
        visibility,
        history,
        latest,
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

/// What a remote player's position lives in.
type RemoteMotion = (
    &'static mut PositionHistory,
    &'static mut LatestPosition,
    &'static mut Transform,
    &'static mut Visibility,
);

/// Snapshot / joined / left / roster / cleared → spawn and despawn remote
/// players. With the whole roster (protocol 3) the view's events only say
/// who is [`OutOfView`]; the roster's events spawn and despawn.
#[allow(clippy::too_many_arguments)]
pub fn apply_roster_events(
    mut messages: MessageReader<RosterEvent>,
    mut commands: Commands,
    mut index: ResMut<PlayerIndex>,
    mut whole: ResMut<WholeRoster>,
    local_id: Res<LocalPlayerId>,
    sprites: Res<PlayerSprites>,
    time: Res<Time>,
    area: Res<DrawnArea>,
    mut players: Query<RemoteMotion, With<RemotePlayer>>,
    mut intervals: MessageWriter<SampleInterval>,
) {
    let now = time.elapsed_secs_f64();
    let area = *area;
    for event in messages.read() {
        match event {
            RosterEvent::Snapshot(players_now) => {
                let present: HashSet<ClientId> = players_now.iter().map(|p| p.info.id).collect();
                if whole.0 {
                    // Out of the view, not out of the world.
                    index.retain(|id, entity| {
                        if present.contains(&id) {
                            commands.entity(entity).remove::<OutOfView>();
                        } else {
                            commands.entity(entity).insert(OutOfView);
                        }
                        true
                    });
                } else {
                    index.retain(|id, entity| {
                        let keep = present.contains(&id);
                        if !keep {
                            info!("player gone (not in snapshot) id={id}");
                            commands.entity(entity).despawn();
                        }
                        keep
                    });
                }
                for player in players_now {
                    let id = player.info.id;
                    if Some(id) == local_id.0 {
                        continue;
                    }
                    let position = player.position.map(position_to_units);
                    match index.get(id) {
                        Some(entity) => {
                            if let (
                                Some(position),
                                Ok((mut history, mut latest, mut transform, mut visibility)),
                            ) = (position, players.get_mut(entity))
                                && let Some(gap) = record_position(
                                    &mut history,
                                    &mut latest,
                                    &mut transform,
                                    &mut visibility,
                                    position,
                                    now,
                                    area,
                                )
                            {
                                intervals.write(gap);
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
                                area,
                            );
                            index.insert(id, entity);
                        }
                    }
                }
            }
            RosterEvent::Joined(info) => {
                if Some(info.id) == local_id.0 {
                    continue;
                }
                if let Some(entity) = index.get(info.id) {
                    commands.entity(entity).remove::<OutOfView>();
                    continue;
                }
                info!(
                    "player joined id={} name={:?} kind={}",
                    info.id,
                    info.name,
                    kind_label(info.kind)
                );
                let entity = spawn_remote_player(&mut commands, &sprites, info, None, now, area);
                index.insert(info.id, entity);
            }
            RosterEvent::Left(id) => {
                if whole.0 {
                    if let Some(entity) = index.get(*id) {
                        commands.entity(entity).insert(OutOfView);
                    }
                } else if let Some(entity) = index.remove(*id) {
                    info!("player left id={id}");
                    commands.entity(entity).despawn();
                }
            }
            RosterEvent::Roster(everyone) => {
                whole.0 = true;
                let present: HashSet<ClientId> = everyone.iter().map(|p| p.id).collect();
                index.retain(|id, entity| {
                    let keep = present.contains(&id);
                    if !keep {
                        info!("player gone (not in roster) id={id}");
                        commands.entity(entity).despawn();
                    }
                    keep
                });
                for info in everyone {
                    if Some(info.id) != local_id.0 && !index.contains(info.id) {
                        info!(
                            "player seen id={} name={:?} kind={} at None",
                            info.id,
                            info.name,
                            kind_label(info.kind)
                        );
                        let entity =
                            spawn_remote_player(&mut commands, &sprites, info, None, now, area);
                        commands.entity(entity).insert(OutOfView);
                        index.insert(info.id, entity);
                    }
                }
                info!("roster of {} players", everyone.len());
            }
            RosterEvent::Connected(info) => {
                if Some(info.id) == local_id.0 || index.contains(info.id) {
                    continue;
                }
                info!(
                    "player joined id={} name={:?} kind={}",
                    info.id,
                    info.name,
                    kind_label(info.kind)
                );
                let entity = spawn_remote_player(&mut commands, &sprites, info, None, now, area);
                commands.entity(entity).insert(OutOfView);
                index.insert(info.id, entity);
            }
            RosterEvent::Disconnected(id) => {
                if let Some(entity) = index.remove(*id) {
                    info!("player left id={id}");
                    commands.entity(entity).despawn();
                }
            }
            RosterEvent::Cleared => {
                whole.0 = false;
                // The view is stale the moment the connection is gone; the
                // next Welcome brings a fresh snapshot.
                for (_, entity) in index.drain() {
                    commands.entity(entity).despawn();
                }
            }
        }
    }
}

/// The position broadcast → each remote player's samples.
/// Our own echo is ignored: the local player is driven locally.
pub fn apply_server_positions(
    mut messages: MessageReader<PositionsReceived>,
    index: Res<PlayerIndex>,
    local_id: Res<LocalPlayerId>,
    time: Res<Time>,
    area: Res<DrawnArea>,
    mut players: Query<RemoteMotion, With<RemotePlayer>>,
    mut intervals: MessageWriter<SampleInterval>,
) {
    let now = time.elapsed_secs_f64();
    let area = *area;
    for PositionsReceived(positions) in messages.read() {
        for update in positions {
            if Some(update.id) == local_id.0 {
                continue;
            }
            let Some(entity) = index.get(update.id) else {
                continue;
            };
            let Ok((mut history, mut latest, mut transform, mut visibility)) =
                players.get_mut(entity)
            else {
                continue;
            };
            let position = position_to_units(update.position);
            if let Some(gap) = record_position(
                &mut history,
                &mut latest,
                &mut transform,
                &mut visibility,
                position,
                now,
                area,
            ) {
                intervals.write(gap);
            }
        }
    }
}

/// On Welcome, make sure our own sprite exists and carries our new id.
pub fn spawn_local_player_on_welcome(
    mut messages: MessageReader<ConnectionEvent>,
    mut commands: Commands,
    settings: Res<ClientSettings>,
    sprites: Res<PlayerSprites>,
    mut local: Query<&mut PlayerId, With<LocalPlayer>>,
) {
    for event in messages.read() {
        let ConnectionEvent::Welcome { id, .. } = event else {
            continue;
        };
        if settings.control == ControlMode::Spectate {
            continue;
        }
        if let Ok(mut player_id) = local.single_mut() {
            player_id.0 = *id;
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
        let transform = Transform::from_translation(units_to_px(start).extend(LOCAL_Z));
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
            transform,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A remote player's parts as `spawn_remote_player` makes them.
    struct Parts {
        history: PositionHistory,
        latest: LatestPosition,
        transform: Transform,
        visibility: Visibility,
    }

    impl Parts {
        fn new() -> Parts {
            Parts {
                history: PositionHistory::default(),
                latest: LatestPosition::default(),
                transform: Transform::from_xyz(0.0, 0.0, REMOTE_Z),
                visibility: Visibility::Hidden,
            }
        }

        fn record(&mut self, x: f32, at: f64, area: DrawnArea) -> Option<SampleInterval> {
            record_position(
                &mut &mut self.history,
                &mut self.latest,
                &mut &mut self.transform,
                &mut &mut self.visibility,
                Vec2::new(x, 0.0),
                at,
                area,
            )
        }

        fn xs(&self) -> Vec<f32> {
            self.history.iter().map(|(p, _)| p.x).collect()
        }
    }

    /// Drawn: world pixels -100..100 each way (units -25..25).
    fn near_origin() -> DrawnArea {
        DrawnArea(Some(Rect::new(-100.0, -100.0, 100.0, 100.0)))
    }

    #[test]
    fn the_first_position_places_and_shows_the_sprite_even_far_away() {
        let mut far = Parts::new();
        assert_eq!(far.record(1000.0, 1.0, near_origin()), None);
        assert_eq!(far.transform.translation.x, 1000.0 * PIXELS_PER_UNIT);
        assert_eq!(far.visibility, Visibility::Inherited);
        assert_eq!(far.latest.0, Some((Vec2::new(1000.0, 0.0), 1.0)));
        assert!(far.history.is_empty(), "far away: no history");
    }

    #[test]
    fn a_player_away_from_the_drawn_area_keeps_only_its_latest_position() {
        let mut p = Parts::new();
        p.record(0.0, 1.0, near_origin());
        p.record(10.0, 1.1, near_origin());
        assert_eq!(p.xs(), vec![0.0, 10.0]);
        assert!(p.latest.recorded_in(&p.history));

        // It walks out: the history stays, the latest follows, gaps still count.
        let gap = p.record(40.0, 1.3, near_origin()).unwrap();
        assert!((gap.gap_secs - 0.2).abs() < 1e-9);
        p.record(50.0, 1.4, near_origin());
        assert_eq!(p.xs(), vec![0.0, 10.0]);
        assert_eq!(p.latest.position(), Some(Vec2::new(50.0, 0.0)));
        assert!(!p.latest.recorded_in(&p.history));
        // The sprite is left alone (interpolation hides it).
        assert_eq!(p.transform.translation.x, 0.0);

        // It walks back in: the history restarts from its last position.
        p.record(20.0, 1.5, near_origin());
        assert_eq!(p.xs(), vec![50.0, 20.0]);
        assert_eq!(p.history.oldest().unwrap().1, 1.4);
        assert!(p.latest.recorded_in(&p.history));
        p.record(21.0, 1.6, near_origin());
        assert_eq!(p.xs(), vec![50.0, 20.0, 21.0]);
    }

    #[test]
    fn without_a_drawn_area_every_sample_is_kept() {
        let mut p = Parts::new();
        for i in 0..5 {
            p.record(1000.0 * i as f32, f64::from(i), DrawnArea(None));
        }
        assert_eq!(p.history.len(), 5);
        assert!(p.latest.recorded_in(&p.history));
    }
}
