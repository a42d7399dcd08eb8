//! Command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::{ClientSettings, ControlMode};

/// Bevy client of the netgame demo: every connected player is a sprite on a 2D map.
///
/// Without --connect it joins 127.0.0.1:7000, starting the server in-process
/// if nothing answers there, so one command gives a working demo.
#[derive(Debug, Parser)]
#[command(name = "game_client", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Several client windows as separate players, in one command.
    ///
    /// Ensures a server (embedded if none answers on 127.0.0.1:7000), then starts
    /// N client processes of this binary. Unfocused windows wander on their own;
    /// the focused one is steered by the keyboard. Ctrl-C stops everything.
    Demo(DemoArgs),
    /// Measure the ECS cost of a crowd: N synthetic remote players moving at
    /// RATE Hz, fed through the network channel, no window. Prints per-frame
    /// update time p50/p99/max.
    BenchEcs(BenchArgs),
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Server to join (the native game port); without it: 127.0.0.1:7000 or an embedded server.
    #[arg(long, value_name = "HOST:PORT")]
    pub connect: Option<String>,
    /// Player name shown to everyone [default: Player-<pid>].
    #[arg(long)]
    pub name: Option<String>,
    /// Wander automatically instead of reading the keyboard.
    #[arg(long, conflicts_with = "spectate")]
    pub bot: bool,
    /// No player of your own: pan with WASD/arrows or mouse drag, zoom with the wheel, F fits everyone.
    #[arg(long)]
    pub spectate: bool,
    /// No window, no GPU: the same ECS logic on a 60 Hz loop, logging what happens.
    #[arg(long)]
    pub headless: bool,
    /// Save a PNG of the window shortly before exiting (see --exit-after).
    #[arg(long, value_name = "FILE", conflicts_with = "headless")]
    pub screenshot: Option<PathBuf>,
    /// Start with the F1 network overlay on.
    #[arg(long, conflicts_with = "headless")]
    pub overlay: bool,
    /// Exit after this many seconds.
    #[arg(long, value_name = "SECS")]
    pub exit_after: Option<f64>,
    /// Keyboard while focused, wander while unfocused (used by `demo`).
    #[arg(long, hide = true)]
    pub wander_unfocused: bool,
    /// Initial window position in screen pixels (used by `demo`).
    #[arg(long, hide = true, value_name = "X,Y", value_parser = parse_pair)]
    pub window_at: Option<(i32, i32)>,
}

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Number of client windows.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub windows: u32,
    /// Join this server instead of 127.0.0.1:7000 / an embedded one.
    #[arg(long, value_name = "HOST:PORT")]
    pub connect: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Synthetic remote players.
    #[arg(long, default_value_t = 1000)]
    pub players: usize,
    /// Measured duration (after a 1 s warm-up).
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Position updates per player per second.
    #[arg(long, default_value_t = 10.0)]
    pub rate_hz: f64,
}

fn parse_pair(text: &str) -> Result<(i32, i32), String> {
    let (x, y) = text
        .split_once(',')
        .ok_or_else(|| format!("expected X,Y, got {text:?}"))?;
    let parse = |v: &str| v.trim().parse::<i32>().map_err(|e| format!("{v:?}: {e}"));
    Ok((parse(x)?, parse(y)?))
}

impl RunArgs {
    pub fn settings(&self) -> ClientSettings {
        let control = if self.spectate {
            ControlMode::Spectate
        } else if self.bot {
            ControlMode::Bot
        } else if self.wander_unfocused {
            ControlMode::KeyboardWhenFocused
        } else {
            ControlMode::Keyboard
        };
        ClientSettings {
            name: self
                .name
                .clone()
                .unwrap_or_else(|| format!("Player-{}", std::process::id())),
            control,
            headless: self.headless,
        }
    }
}
