//! Assembles the replay app: the client's logic (and, with a window, its
//! views) fed by [`ReplayFeedPlugin`] instead of the network thread.

use std::process::ExitCode;

use bevy::prelude::*;
use bevy::window::WindowResolution;
use shared::recording::Recording;

use super::feed::{ReplayClock, ReplayFeedPlugin};
use super::print::print_world_at;
use super::timeline::TimelinePlugin;
use crate::app::auto_exit::AutoExitPlugin;
use crate::app::cli::ReplayArgs;
use crate::app::headless::HeadlessPlugin;
use crate::{ClientSettings, ControlMode, DEFAULT_WINDOW_PX, GameLogicPlugins, ViewPlugins};

/// `netgame replay PATH …`.
pub fn run_replay(args: &ReplayArgs) -> ExitCode {
    if args.print {
        return print_world_at(&args.path, args.at_ms.unwrap_or(0));
    }
    let recording = match Recording::open(&args.path) {
        Ok(recording) => recording,
        Err(err) => {
            eprintln!("netgame: cannot replay: {err}");
            return ExitCode::FAILURE;
        }
    };
    let label = args.path.display().to_string();
    let settings = ClientSettings {
        name: "replay".into(),
        control: ControlMode::Spectate,
        headless: args.headless,
    };
    let mut app = App::new();
    if args.headless {
        app.add_plugins(HeadlessPlugin);
    } else {
        app.add_plugins(
            DefaultPlugins
                .set(WindowPlugin {
                    primary_window: Some(Window {
                        title: format!("netgame — replay of {label}"),
                        resolution: WindowResolution::new(DEFAULT_WINDOW_PX.0, DEFAULT_WINDOW_PX.1),
                        ..default()
                    }),
                    ..default()
                })
                .set(AssetPlugin {
                    file_path: concat!(env!("CARGO_MANIFEST_DIR"), "/../assets").into(),
                    ..default()
                }),
        );
    }
    for skipped in recording.skipped() {
        warn!("{skipped}; playing what comes before it");
    }
    info!(
        "replaying {label}: {:.1} s, {} file(s)",
        recording.duration_ms() as f64 / 1000.0,
        recording.paths().count()
    );
    app.insert_resource(settings).add_plugins((
        ReplayFeedPlugin {
            recording,
            label,
            exit_at_end: args.headless,
        },
        GameLogicPlugins,
        AutoExitPlugin {
            exit_after_secs: args.exit_after,
            screenshot: args.screenshot.clone(),
        },
    ));
    {
        let mut clock = app.world_mut().resource_mut::<ReplayClock>();
        clock.speed = args.speed;
        clock.seek_to = args.at_ms;
    }
    if !args.headless {
        app.add_plugins((ViewPlugins, TimelinePlugin));
    }
    match app.run() {
        AppExit::Success => ExitCode::SUCCESS,
        AppExit::Error(code) => ExitCode::from(code.get()),
    }
}
