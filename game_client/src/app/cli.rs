//! Command line.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::net::conditioner::LinkConditions;
use crate::{ClientSettings, ControlMode};

/// Bevy client of the netgame demo: every connected player is a sprite on a 2D map.
///
/// Without --connect it joins 127.0.0.1:7000, starting the server in-process
/// (with two wandering bots, unless --no-bots) if nothing answers there, so
/// one command gives a working demo.
///
/// Keys: WASD/arrows move (or pan when spectating), wheel zooms, F fits
/// everyone, F1 network overlay, F2 link conditioner, M/1-4/Enter math.
#[derive(Debug, Parser)]
#[command(name = "netgame", version, args_conflicts_with_subcommands = true)]
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
    /// Play a recording made with `gameserver --record PATH`: the map,
    /// minimap, labels and indicators as live, with a timeline (Space
    /// pause, [ ] speed, ←/→ 10 s, click to jump). The rotated files
    /// PATH.1, PATH.2, … play after PATH as one recording.
    Replay(ReplayArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// The recording (the PATH given to `gameserver --record`).
    pub path: PathBuf,
    /// Start at this moment, in seconds from the recording's start (with
    /// --print: the moment to print).
    #[arg(long = "at", value_name = "SECONDS", value_parser = shared::recording::parse_seconds)]
    pub at_ms: Option<u64>,
    /// Print the world at --at, one line per player (`id name x y`), and exit.
    #[arg(long, requires = "at_ms", conflicts_with_all = ["headless", "screenshot"])]
    pub print: bool,
    /// No window: play the recording, logging the usual status lines, and
    /// exit at its end.
    #[arg(long)]
    pub headless: bool,
    /// Playback speed at start (0.25 to 16; [ and ] change it).
    #[arg(long, default_value_t = 1.0, value_parser = parse_speed)]
    pub speed: f64,
    /// Exit after this many seconds.
    #[arg(long, value_name = "SECS")]
    pub exit_after: Option<f64>,
    /// Save a PNG of the window shortly before exiting (see --exit-after).
    #[arg(long, value_name = "FILE", conflicts_with = "headless")]
    pub screenshot: Option<PathBuf>,
}

fn parse_speed(text: &str) -> Result<f64, String> {
    use crate::replay::feed::{MAX_SPEED, MIN_SPEED};
    let speed: f64 = text.trim().parse().map_err(|e| format!("{text:?}: {e}"))?;
    if (MIN_SPEED..=MAX_SPEED).contains(&speed) {
        Ok(speed)
    } else {
        Err(format!(
            "{speed} is not between {MIN_SPEED} and {MAX_SPEED}"
        ))
    }
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
    /// Initial window position in screen pixels.
    #[arg(long, hide = true, value_name = "X,Y", value_parser = parse_pair)]
    pub window_at: Option<(i32, i32)>,
    /// Size and place the window as tile I of N on the monitor (used by `demo`).
    #[arg(long, hide = true, value_name = "I/N", value_parser = parse_tile)]
    pub tile: Option<(u32, u32)>,
    /// Link conditioner: delay added to each direction, milliseconds
    /// (so the round trip grows by twice this).
    #[arg(long, value_name = "MS", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=2000))]
    pub lag_ms: u64,
    /// Link conditioner: extra random delay, uniform in 0..=MS, each direction.
    #[arg(long, value_name = "MS", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=2000))]
    pub jitter_ms: u64,
    /// Link conditioner: probability (0..1) that a position update is dropped, each direction.
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = parse_probability)]
    pub loss: f32,
    /// With an embedded server, do not start the two wandering bots.
    #[arg(long)]
    pub no_bots: bool,
}

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Number of client windows.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub windows: u32,
    /// Join this server instead of 127.0.0.1:7000 / an embedded one.
    #[arg(long, value_name = "HOST:PORT")]
    pub connect: Option<String>,
    /// Link conditioner for every window: delay per direction, milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=2000))]
    pub lag_ms: u64,
    /// Link conditioner for every window: extra random delay 0..=MS per direction.
    #[arg(long, value_name = "MS", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=2000))]
    pub jitter_ms: u64,
    /// Link conditioner for every window: probability of dropping a position update.
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = parse_probability)]
    pub loss: f32,
    /// Close every window after this many seconds.
    #[arg(long, value_name = "SECS")]
    pub exit_after: Option<f64>,
    /// Each window saves a PNG (demo-window-I.png) here before it closes (needs --exit-after).
    #[arg(long, value_name = "DIR", requires = "exit_after")]
    pub screenshot_dir: Option<PathBuf>,
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
    /// Measure whole frames in a window instead (1280x720, spectating the
    /// crowd with labels, indicators and minimap on, no vsync); prints frame
    /// time p50/p99/max and the renderer it ran on.
    #[arg(long)]
    pub render: bool,
    /// Exit with status 2 when the update p99 misses its 2 ms target (for
    /// scripts; the figures are printed either way).
    #[arg(long)]
    pub check: bool,
}

fn parse_probability(text: &str) -> Result<f32, String> {
    let p: f32 = text.trim().parse().map_err(|e| format!("{text:?}: {e}"))?;
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(format!("{p} is not a probability between 0 and 1"))
    }
}

fn parse_tile(text: &str) -> Result<(u32, u32), String> {
    let (i, n) = text
        .split_once('/')
        .ok_or_else(|| format!("expected I/N, got {text:?}"))?;
    let parse = |v: &str| v.trim().parse::<u32>().map_err(|e| format!("{v:?}: {e}"));
    let (i, n) = (parse(i)?, parse(n)?);
    if i == 0 || i > n {
        return Err(format!("tile {i} of {n}: I must be in 1..=N"));
    }
    Ok((i, n))
}

fn parse_pair(text: &str) -> Result<(i32, i32), String> {
    let (x, y) = text
        .split_once(',')
        .ok_or_else(|| format!("expected X,Y, got {text:?}"))?;
    let parse = |v: &str| v.trim().parse::<i32>().map_err(|e| format!("{v:?}: {e}"));
    Ok((parse(x)?, parse(y)?))
}

impl RunArgs {
    /// The link conditioner's settings from the flags.
    pub fn link_conditions(&self) -> LinkConditions {
        LinkConditions {
            lag: Duration::from_millis(self.lag_ms),
            jitter: Duration::from_millis(self.jitter_ms),
            loss: self.loss,
        }
    }

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
