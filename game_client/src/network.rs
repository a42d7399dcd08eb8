//! Network → ECS: one system drains the network thread's channel each frame
//! into [`ServerEvent`] messages; the `Apply` systems of every feature turn
//! them into ECS state; the `Send` systems push commands back.

use bevy::prelude::*;
use bevy::state::app::StatesPlugin;
use crossbeam_channel::{Receiver, Sender};
use shared::ClientId;

use crate::ClientSettings;
use crate::net_thread::{NetCommand, NetEvent, spawn_network_thread};

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

/// The order of network work inside `Update`: drain the channel, apply what
/// arrived, then send what the frame produced.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NetSystems {
    Receive,
    Apply,
    Send,
}

/// One event from the network thread, as a Bevy message.
#[derive(Message, Debug, Clone, PartialEq)]
pub struct ServerEvent(pub NetEvent);

/// The ECS end of the network thread's event channel.
#[derive(Resource)]
pub struct NetEvents(pub Receiver<NetEvent>);

/// The ECS end of the command channel.
#[derive(Resource, Clone)]
pub struct NetCommands(pub Sender<NetCommand>);

impl NetCommands {
    /// Queues a command. A closed channel means the thread is stopping (the
    /// app is exiting), so there is nothing useful to do with the error.
    pub fn send(&self, command: NetCommand) {
        let _ = self.0.send(command);
    }
}

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
    let (event_tx, event_rx) = crossbeam_channel::unbounded();
    let (command_tx, command_rx) = crossbeam_channel::unbounded();
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
            .add_message::<ServerEvent>()
            .configure_sets(
                Update,
                (NetSystems::Receive, NetSystems::Apply, NetSystems::Send).chain(),
            )
            .add_systems(Update, drain_network_events.in_set(NetSystems::Receive))
            .add_systems(Update, apply_connection_events.in_set(NetSystems::Apply))
            .add_systems(Last, stop_network_on_exit);
    }
}

/// Spawns the network thread at startup and inserts its channel ends.
pub struct NetworkThreadPlugin {
    /// `HOST:PORT` of the server's native game port.
    pub target: String,
    pub name: String,
}

impl Plugin for NetworkThreadPlugin {
    fn build(&self, app: &mut App) {
        info!("connecting to {} as {:?}", self.target, self.name);
        match spawn_network_thread(self.target.clone(), self.name.clone()) {
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

/// Moves everything the network thread queued into this frame's messages.
pub fn drain_network_events(
    events: Option<Res<NetEvents>>,
    mut messages: MessageWriter<ServerEvent>,
) {
    let Some(events) = events else { return };
    messages.write_batch(
        events
            .0
            .try_iter()
            .take(MAX_NET_EVENTS_PER_FRAME)
            .map(ServerEvent),
    );
}

/// Welcome / disconnect → state, our id and the connection info (and logs).
pub fn apply_connection_events(
    mut messages: MessageReader<ServerEvent>,
    mut next_state: ResMut<NextState<ConnectionState>>,
    mut local_id: ResMut<LocalPlayerId>,
    mut info: ResMut<ConnectionInfo>,
    time: Res<Time<Real>>,
    settings: Res<ClientSettings>,
) {
    for ServerEvent(event) in messages.read() {
        match event {
            NetEvent::Connecting { target } => {
                info.target.clone_from(target);
                info.retry_at_secs = None;
                NextState::set_if_neq(&mut next_state, ConnectionState::Connecting);
            }
            NetEvent::Welcome { id, server } => {
                info!("welcome id={id} name={} server={server:?}", settings.name);
                local_id.0 = Some(*id);
                info.server.clone_from(server);
                info.last_error = None;
                info.retry_at_secs = None;
                NextState::set_if_neq(&mut next_state, ConnectionState::Playing);
            }
            NetEvent::Disconnected { reason, retry_in } => {
                warn!(
                    "disconnected: {reason}; retrying in {:.1} s",
                    retry_in.as_secs_f32()
                );
                info.last_error = Some(reason.clone());
                info.retry_at_secs = Some(time.elapsed_secs_f64() + retry_in.as_secs_f64());
                NextState::set_if_neq(&mut next_state, ConnectionState::Disconnected);
            }
            _ => {}
        }
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
