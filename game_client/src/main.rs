//! `netgame`: parses the command line and assembles plugins; everything
//! else lives in the library (see `lib.rs`).

use std::process::ExitCode;

use bevy::prelude::*;
use bevy::window::{WindowPosition, WindowResolution};
use clap::Parser;
use game_client::app::auto_exit::AutoExitPlugin;
use game_client::app::cli::{Cli, Command, RunArgs};
use game_client::app::embedded_server::{EmbeddedServerPlugin, ensure_local_server};
use game_client::app::headless::HeadlessPlugin;
use game_client::app::window_layout::{WindowLayoutPlugin, WindowTile};
use game_client::app::{bench, demo};
use game_client::net::NetworkThreadPlugin;
use game_client::view::overlay::OverlayPlugin;
use game_client::{DEFAULT_WINDOW_PX, GameLogicPlugins, ViewPlugins};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Demo(args)) => demo::run_demo(&args),
        Some(Command::BenchEcs(args)) => bench::run_bench(&args),
        Some(Command::Replay(args)) => game_client::replay::run_replay(&args),
        None => run_client(&cli.run),
    }
}

fn run_client(args: &RunArgs) -> ExitCode {
    let settings = args.settings();
    let mut app = App::new();
    if args.headless {
        app.add_plugins(HeadlessPlugin);
    } else {
        let position = match args.window_at {
            Some((x, y)) => WindowPosition::At(IVec2::new(x, y)),
            None => WindowPosition::Automatic,
        };
        app.add_plugins(
            DefaultPlugins
                .set(WindowPlugin {
                    primary_window: Some(Window {
                        title: format!("netgame — {}", settings.name),
                        resolution: WindowResolution::new(DEFAULT_WINDOW_PX.0, DEFAULT_WINDOW_PX.1),
                        position,
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
    // After the log plugin, so what the embedded server does is logged.
    let (target, embedded) = match &args.connect {
        Some(target) => (target.clone(), None),
        None => ensure_local_server(!args.no_bots),
    };
    app.insert_resource(settings.clone()).add_plugins((
        EmbeddedServerPlugin::new(embedded),
        NetworkThreadPlugin {
            target,
            name: settings.name.clone(),
            conditions: args.link_conditions(),
        },
        GameLogicPlugins,
        AutoExitPlugin {
            exit_after_secs: args.exit_after,
            screenshot: args.screenshot.clone(),
        },
    ));
    if !args.headless {
        app.add_plugins((
            ViewPlugins.set(OverlayPlugin {
                start_enabled: args.overlay,
            }),
            WindowLayoutPlugin {
                tile: args.tile.map(|(index, count)| WindowTile { index, count }),
            },
        ));
    }
    match app.run() {
        AppExit::Success => ExitCode::SUCCESS,
        AppExit::Error(code) => ExitCode::from(code.get()),
    }
}
