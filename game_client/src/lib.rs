//! The Bevy game client: every player connected to the server is a sprite on
//! a 2D map, moved by the server's position broadcast.
//!
//! The crate is a library of plugins so that the binary, the headless mode,
//! the ECS benchmark and the tests all run the very same systems:
//!
//! * [`GameLogicPlugins`]: network → ECS, players, local input, math, stats.
//!   Needs no window and no GPU.
//! * view plugins ([`camera`], [`world_map`], [`hud`], [`overlay`]): what a
//!   windowed client adds on top.
//! * [`net_thread`]: the network thread behind the crossbeam channels.

use bevy::app::PluginGroupBuilder;
use bevy::prelude::*;

pub mod auto_exit;
pub mod bench;
pub mod camera;
pub mod cli;
pub mod demo;
pub mod embedded_server;
pub mod hud;
pub mod local_input;
pub mod math_panel;
pub mod net_thread;
pub mod network;
pub mod overlay;
pub mod players;
pub mod stats;
pub mod world_map;

/// How the local player is driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ControlMode {
    /// WASD / arrow keys.
    #[default]
    Keyboard,
    /// Keyboard while the window has focus, wandering on its own otherwise
    /// (the multi-window demo: only the focused window is steered).
    KeyboardWhenFocused,
    /// Always wanders on its own.
    Bot,
    /// No player of our own: the camera pans and zooms over everyone.
    Spectate,
}

/// Who we are and how we play; read by most plugins.
#[derive(Resource, Debug, Clone)]
pub struct ClientSettings {
    pub name: String,
    pub control: ControlMode,
    /// No window: log what happens instead of drawing it.
    pub headless: bool,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            name: "Player".into(),
            control: ControlMode::Keyboard,
            headless: true,
        }
    }
}

/// Everything a client does that needs no window: the same systems run in the
/// windowed client, `--headless`, `bench-ecs` and the tests.
///
/// Needs `MinimalPlugins` (or `DefaultPlugins`), `InputPlugin` and the
/// [`network::NetEvents`] / [`network::NetCommands`] channel ends (inserted by
/// [`network::NetworkThreadPlugin`] or by a test).
pub struct GameLogicPlugins;

impl PluginGroup for GameLogicPlugins {
    fn build(self) -> PluginGroupBuilder {
        PluginGroupBuilder::start::<Self>()
            .add(network::NetworkPlugin)
            .add(players::PlayersPlugin)
            .add(local_input::LocalInputPlugin)
            .add(math_panel::MathPanelPlugin)
            .add(stats::NetStatsPlugin)
    }
}

/// What a windowed client draws on top of [`GameLogicPlugins`].
pub struct ViewPlugins;

impl PluginGroup for ViewPlugins {
    fn build(self) -> PluginGroupBuilder {
        PluginGroupBuilder::start::<Self>()
            .add(camera::CameraPlugin)
            .add(world_map::WorldMapPlugin)
            .add(hud::HudPlugin)
            .add(overlay::OverlayPlugin::default())
    }
}
