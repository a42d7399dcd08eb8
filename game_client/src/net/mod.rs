//! Network → ECS: one system drains the network thread's channel each frame
//! into typed Bevy messages (connection, roster, positions, math answers,
//! measurements), so each feature reads only what it needs; the `Send`
//! systems push commands back.

pub mod conditioner;
pub mod event;
pub mod outbox;
pub mod thread;

use std::time::Duration;

use bevy::prelude::*;
use bevy::state::app::StatesPlugin;
use crossbeam_channel::{Receiver, Sender};
use shared::ClientId;
use shared::math::MathStatus;
use shared::native::{
    ClientMessage, Overview, PlayerInfo, PlayerPosition, PlayerState, ServerMessage,
};

use crate::ClientSettings;
use conditioner::LinkConditions;
use thread::{NetCommand, NetEvent, spawn_network_thread};

/// At most this many network events are applied in one frame, so a flood
/// (e.g. after a stall) spreads over a few frames instead of freezing one.
pub const MAX_NET_EVENTS_PER_FRAME: usize = 50_000;

/// The connection as the rest of the game sees it.
#[derive(States, Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ConnectionState {
    /// Connecting / handshaking (the first state, and after each retry starts).
    #[default]
    Connecting,
    /// Welcomed: we have an id and the world is live.
    Playing,
    /// The connection is lost; the network thread retries with backoff.
    Disconnected,
}

/// The order of network work inside `Update`: drain the channel, apply the
/// connection changes (our id first), then everything else that arrived,
/// then send what the frame produced. Other plugins order themselves against
/// these sets.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NetSystems {
    Receive,
    Connection,
    Apply,
    Send,
}

/// The connection came up, went down or is being retried.
#[derive(Message, Debug, Clone, PartialEq)]
pub enum ConnectionEvent {
    Connecting { target: String },
    Welcome { id: ClientId, server: String },
    Disconnected { reason: String, retry_in: Duration },
}

/// Who is in the world. In arrival order, because order matters here
/// (a snapshot replaces what came before it).
///
/// `Snapshot`, `Joined` and `Left` are about the server's view of us: the
/// whole world without an area of interest, else who is in it. The roster
/// events (protocol 3) are about who is connected, wherever they are.
#[derive(Message, Debug, Clone, PartialEq)]
pub enum RosterEvent {
    /// The authoritative view; replaces everything we knew of it.
    Snapshot(Vec<PlayerState>),
    Joined(PlayerInfo),
    Left(ClientId),
    /// Everyone connected now (protocol 3): replaces the roster.
    Roster(Vec<PlayerInfo>),
    /// Someone connected, wherever they are (protocol 3).
    Connected(PlayerInfo),
    /// Someone disconnected, wherever they were (protocol 3).
    Disconnected(ClientId),
    /// The connection is gone: the view is stale.
    Cleared,
}

/// The server's low-rate overview of the whole world (protocol 3, sent
/// while we have an area of interest).
#[derive(Message, Debug, Clone, PartialEq)]
pub struct OverviewReceived(pub Overview);

/// One batch of the position broadcast.
#[derive(Message, Debug, Clone, PartialEq)]
pub struct PositionsReceived(pub Vec<PlayerPosition>);

/// The answer to one of our math queries.
#[derive(Message, Debug, Clone, Copy, PartialEq)]
pub struct MathAnswerReceived {
    pub request_id: u32,
    pub status: MathStatus,
    pub value: f64,
}

/// What the network thread measured about the link.
#[derive(Message, Debug, Clone, Copy, PartialEq)]
pub enum LinkMeasurement {
    Rtt(Duration),
    Traffic { bytes: u64 },
}

/// The ECS end of the network thread's event channel.
#[derive(Resource)]
pub struct NetEvents(pub Receiver<NetEvent>);

/// The ECS end of the command channel.
#[derive(Resource, Clone)]
pub struct NetCommands(pub Sender<NetCommand>);

impl NetCommands {
    /// Queues a command, never waiting (a frame must not block on the
    /// network). A closed channel means the thread is stopping (the app is
    /// exiting); a full one, that its writes are stuck (it reconnects
    /// within its write timeout): either way the command is stale.
    pub fn send(&self, command: NetCommand) {
        if let Err(crossbeam_channel::TrySendError::Full(command)) = self.0.try_send(command) {
            warn!("network thread busy: dropped {command:?}");
        }
    }

    /// Queues a message for the server.
    pub fn send_message(&self, message: ClientMessage) {
        self.send(NetCommand::Send(message));
    }
}

/// The link conditioner's settings as the ECS knows them (flags, F2 panel);
/// changes are sent to the network thread.
#[derive(Resource, Debug, Default, Clone, Copy, PartialEq)]
pub struct LinkSettings(pub LinkConditions);

/// Our own id, once welcomed (kept after a disconnect until the next Welcome).
#[derive(Resource, Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LocalPlayerId(pub Option<ClientId>);

/// What the HUD and logs say about the connection.
#[derive(Resource, Debug, Default, Clone)]
pub struct ConnectionInfo {
    pub target: String,
    pub server: String,
    pub last_error: Option<String>,
    /// `Time<Real>` seconds at which the next attempt starts.
    pub retry_at_secs: Option<f64>,
}

/// Both ends of fresh channels: the ECS resources and the "network thread"
/// ends (for tests and the benchmark, which play the network thread).
pub fn channel_pair() -> (
    NetEvents,
    NetCommands,
    Sender<NetEvent>,
    Receiver<NetCommand>,
) {
    let (event_tx, event_rx) = crossbeam_channel::bounded(outbox::EVENT_CHANNEL_CAPACITY);
    let (command_tx, command_rx) = crossbeam_channel::bounded(thread::COMMAND_CHANNEL_CAPACITY);
    (
        NetEvents(event_rx),
        NetCommands(command_tx),
        event_tx,
        command_rx,
    )
}

/// States, sets, messages and the channel drain. Expects [`NetEvents`] and
/// [`NetCommands`] to be inserted (by [`NetworkThreadPlugin`] or a test).
pub struct NetworkPlugin;

impl Plugin for NetworkPlugin {
    fn build(&self, app: &mut App) {
        if !app.is_plugin_added::<StatesPlugin>() {
            app.add_plugins(StatesPlugin);
        }
        app.init_state::<ConnectionState>()
            .init_resource::<ClientSettings>()
            .init_resource::<LocalPlayerId>()
            .init_resource::<ConnectionInfo>()
            .init_resource::<LinkSettings>()
            .add_message::<ConnectionEvent>()
            .add_message::<RosterEvent>()
            .add_message::<PositionsReceived>()
            .add_message::<OverviewReceived>()
            .add_message::<MathAnswerReceived>()
            .add_message::<LinkMeasurement>()
            .configure_sets(
                Update,
                (
                    NetSystems::Receive,
                    NetSystems::Connection,
                    NetSystems::Apply,
                    NetSystems::Send,
                )
                    .chain(),
            )
            .add_systems(Update, drain_network_events.in_set(NetSystems::Receive))
            .add_systems(
                Update,
                apply_connection_events.in_set(NetSystems::Connection),
            )
            .add_systems(
                Update,
                send_link_settings
                    .in_set(NetSystems::Send)
                    .run_if(resource_changed::<LinkSettings>),
            )
            .add_systems(Last, stop_network_on_exit);
    }
}

/// Spawns the network thread at startup and inserts its channel ends.
pub struct NetworkThreadPlugin {
    /// `HOST:PORT` of the server's native game port.
    pub target: String,
    pub name: String,
    /// The link conditioner's settings at start.
    pub conditions: LinkConditions,
}

impl Plugin for NetworkThreadPlugin {
    fn build(&self, app: &mut App) {
        info!("connecting to {} as {:?}", self.target, self.name);
        if !self.conditions.is_clear() {
            info!("link conditioner: {}", self.conditions.describe());
        }
        app.insert_resource(LinkSettings(self.conditions));
        match spawn_network_thread(self.target.clone(), self.name.clone(), self.conditions) {
            Ok(link) => {
                app.insert_resource(NetEvents(link.events))
                    .insert_resource(NetCommands(link.commands));
            }
            Err(e) => {
                // Without a thread the client still runs and says so on screen.
                error!("cannot start the network thread: {e}");
                let (events, commands, _, _) = channel_pair();
                app.insert_resource(events).insert_resource(commands);
            }
        }
        app.insert_resource(ConnectionInfo {
            target: self.target.clone(),
            ..default()
        });
    }
}

/// The typed writers the drain fills.
#[derive(bevy::ecs::system::SystemParam)]
pub struct NetMessageWriters<'w> {
    connection: MessageWriter<'w, ConnectionEvent>,
    roster: MessageWriter<'w, RosterEvent>,
    positions: MessageWriter<'w, PositionsReceived>,
    overview: MessageWriter<'w, OverviewReceived>,
    math: MessageWriter<'w, MathAnswerReceived>,
    link: MessageWriter<'w, LinkMeasurement>,
}

/// Moves everything the network thread queued into this frame's messages,
/// one typed message per kind.
pub fn drain_network_events(events: Option<Res<NetEvents>>, mut out: NetMessageWriters) {
    let Some(events) = events else { return };
    for event in events.0.try_iter().take(MAX_NET_EVENTS_PER_FRAME) {
        match event {
            NetEvent::Connecting { target } => {
                out.connection.write(ConnectionEvent::Connecting { target });
            }
            NetEvent::Disconnected { reason, retry_in } => {
                out.connection
                    .write(ConnectionEvent::Disconnected { reason, retry_in });
                out.roster.write(RosterEvent::Cleared);
            }
            NetEvent::Rtt(rtt) => {
                out.link.write(LinkMeasurement::Rtt(rtt));
            }
            NetEvent::Traffic { bytes } => {
                out.link.write(LinkMeasurement::Traffic { bytes });
            }
            NetEvent::Server(message) => match message {
                ServerMessage::Welcome { id, server, .. } => {
                    out.connection
                        .write(ConnectionEvent::Welcome { id, server });
                }
                ServerMessage::Snapshot { players } => {
                    out.roster.write(RosterEvent::Snapshot(players));
                }
                ServerMessage::PlayerJoined(info) => {
                    out.roster.write(RosterEvent::Joined(info));
                }
                ServerMessage::PlayerLeft { id } => {
                    out.roster.write(RosterEvent::Left(id));
                }
                ServerMessage::Positions(positions) => {
                    out.positions.write(PositionsReceived(positions));
                }
                ServerMessage::Roster(players) => {
                    out.roster.write(RosterEvent::Roster(players));
                }
                ServerMessage::RosterJoined(info) => {
                    out.roster.write(RosterEvent::Connected(info));
                }
                ServerMessage::RosterLeft { id } => {
                    out.roster.write(RosterEvent::Disconnected(id));
                }
                ServerMessage::Overview(overview) => {
                    out.overview.write(OverviewReceived(overview));
                }
                ServerMessage::MathAnswer {
                    request_id,
                    status,
                    value,
                } => {
                    out.math.write(MathAnswerReceived {
                        request_id,
                        status,
                        value,
                    });
                }
                // Handled on the network thread; nothing for the ECS.
                ServerMessage::Rejected { .. }
                | ServerMessage::Ping { .. }
                | ServerMessage::Pong { .. }
                | ServerMessage::Goodbye { .. } => {}
            },
        }
    }
}

/// Welcome / disconnect → state, our id and the connection info (and logs).
pub fn apply_connection_events(
    mut messages: MessageReader<ConnectionEvent>,
    mut next_state: ResMut<NextState<ConnectionState>>,
    mut local_id: ResMut<LocalPlayerId>,
    mut info: ResMut<ConnectionInfo>,
    time: Res<Time<Real>>,
    settings: Res<ClientSettings>,
) {
    for event in messages.read() {
        match event {
            ConnectionEvent::Connecting { target } => {
                info.target.clone_from(target);
                info.retry_at_secs = None;
                NextState::set_if_neq(&mut next_state, ConnectionState::Connecting);
            }
            ConnectionEvent::Welcome { id, server } => {
                info!("welcome id={id} name={} server={server:?}", settings.name);
                local_id.0 = Some(*id);
                info.server.clone_from(server);
                info.last_error = None;
                info.retry_at_secs = None;
                NextState::set_if_neq(&mut next_state, ConnectionState::Playing);
            }
            ConnectionEvent::Disconnected { reason, retry_in } => {
                warn!(
                    "disconnected: {reason}; retrying in {:.1} s",
                    retry_in.as_secs_f32()
                );
                info.last_error = Some(reason.clone());
                info.retry_at_secs = Some(time.elapsed_secs_f64() + retry_in.as_secs_f64());
                NextState::set_if_neq(&mut next_state, ConnectionState::Disconnected);
            }
        }
    }
}

/// Hands the conditioner's new settings to the network thread.
pub fn send_link_settings(settings: Res<LinkSettings>, commands: Option<Res<NetCommands>>) {
    if let Some(commands) = commands {
        commands.send(NetCommand::SetLinkConditions(settings.0));
    }
}

/// Says `Bye` to the server when the app exits.
pub fn stop_network_on_exit(mut exits: MessageReader<AppExit>, commands: Option<Res<NetCommands>>) {
    if exits.read().next().is_some()
        && let Some(commands) = commands
    {
        commands.send(NetCommand::Shutdown);
    }
}
