//! What a client without a window runs on: a 60 Hz loop, logs, states,
//! input resources (the systems read them) and Ctrl-C.

use std::time::Duration;

use bevy::app::{ScheduleRunnerPlugin, TerminalCtrlCHandlerPlugin};
use bevy::log::LogPlugin;
use bevy::prelude::*;
use bevy::state::app::StatesPlugin;

/// Frame period of the headless loop (60 Hz).
pub const HEADLESS_FRAME_PERIOD: Duration = Duration::from_nanos(16_666_667);

/// Bevy's plugins for `--headless` (the live client and `netgame replay`).
pub struct HeadlessPlugin;

impl Plugin for HeadlessPlugin {
    fn build(&self, app: &mut App) {
        app.add_plugins((
            MinimalPlugins.set(ScheduleRunnerPlugin::run_loop(HEADLESS_FRAME_PERIOD)),
            LogPlugin::default(),
            StatesPlugin,
            bevy::input::InputPlugin,
            TerminalCtrlCHandlerPlugin,
        ));
    }
}
