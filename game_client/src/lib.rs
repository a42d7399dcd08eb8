//! The Bevy game client: every player connected to the server is a sprite on
//! a 2D map, moved by the server's position broadcast.
//!
//! The crate is a library of plugins so that the binary, the headless mode,
//! the ECS benchmark and the tests all run the very same systems. Its folders
//! follow the plugin groups:
//!
//! * [`net`]: the network thread (with its link conditioner) and the drain
//!   that turns what it reports into typed Bevy messages.
//! * [`logic`] ([`GameLogicPlugins`]): players, interpolation, local input,
//!   math, stats. Needs no window and no GPU.
//! * [`view`] ([`ViewPlugins`]): camera, ground, HUD, overlay, off-screen
//!   indicators, minimap, labels, the link panel — what a window adds.
//! * [`app`]: the command line, the multi-window demo, the benchmark, the
//!   embedded server and its wandering bots.
//! * [`replay`]: `netgame replay`, a recording played into the same
//!   channel the network thread feeds.

use bevy::app::PluginGroupBuilder;
use bevy::prelude::*;

pub mod app;
pub mod logic;
pub mod net;
pub mod replay;
pub mod view;

/// The window's size at start, logical pixels (the benchmark's view too).
pub const DEFAULT_WINDOW_PX: (u32, u32) = (800, 600);

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
/// [`net::NetEvents`] / [`net::NetCommands`] channel ends (inserted by
/// [`net::NetworkThreadPlugin`] or by a test).
pub struct GameLogicPlugins;

impl PluginGroup for GameLogicPlugins {
    fn build(self) -> PluginGroupBuilder {
        PluginGroupBuilder::start::<Self>()
            .add(logic::schedules::SerialSchedulesPlugin)
            .add(net::NetworkPlugin)
            .add(logic::players::PlayersPlugin)
            .add(logic::overview::OverviewPlugin)
            .add(logic::interpolation::InterpolationPlugin)
            .add(logic::local_input::LocalInputPlugin)
            .add(logic::math_panel::MathPanelPlugin)
            .add(logic::stats::NetStatsPlugin)
    }
}

/// What a windowed client draws on top of [`GameLogicPlugins`].
pub struct ViewPlugins;

impl PluginGroup for ViewPlugins {
    fn build(self) -> PluginGroupBuilder {
        PluginGroupBuilder::start::<Self>()
            .add(view::camera::CameraPlugin)
            .add(view::world_map::WorldMapPlugin)
            .add(view::hud::HudPlugin)
            .add(view::labels::LabelsPlugin)
            .add(view::indicators::IndicatorsPlugin)
            .add(view::interest::InterestPlugin)
            .add(view::minimap::MinimapPlugin)
            .add(view::link_panel::LinkPanelPlugin)
            .add(view::overlay::OverlayPlugin::default())
    }
}
